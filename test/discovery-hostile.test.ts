/**
 * Discovery under hostile answers and overload, over real servers on loopback: a registry that
 * fails fast (no flood), a burst of more cold names than the cache holds (no name failed),
 * addresses that must never become instances (from DNS, Cloud Map, static config and
 * SIGNPOST_STATIC).
 */
process.env.AWS_EC2_METADATA_DISABLED = 'true';

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import { setupServer } from 'msw/node';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { DiscoveryAgent } from '../src/agent/index.ts';
import { Discovery } from '../src/discovery.ts';
import type { DiscoveryOptions } from '../src/options.ts';
import { Bind9 } from './fixtures/bind9.ts';
import { FakeCloudMap, TEST_CREDENTIALS, TEST_REGION } from './fixtures/cloud-map.ts';
import { FaultDns, reply } from './support/fault-dns.ts';

const BURST = 600;
const MAX_NAMES = BURST / 3;
const burstAddress = (i: number): string => `127.9.${i >> 8}.${i & 255}`;

let bind: Bind9;
const open: Array<{ close(): Promise<void> }> = [];
const cloudMap = new FakeCloudMap();
for (const instance of [
  { id: 'unspecified-6', attributes: { AWS_INSTANCE_IPV6: '::', AWS_INSTANCE_PORT: '8080' } },
  { id: 'multicast-6', attributes: { AWS_INSTANCE_IPV6: 'ff02::1', AWS_INSTANCE_PORT: '8080' } },
  { id: 'zone-id', attributes: { AWS_INSTANCE_IPV6: 'fe80::1%lo', AWS_INSTANCE_PORT: '8080' } },
  { id: 'link-local-6', attributes: { AWS_INSTANCE_IPV6: 'fe80::1', AWS_INSTANCE_PORT: '8080' } },
  { id: 'metadata', attributes: { AWS_INSTANCE_IPV4: '169.254.169.254', AWS_INSTANCE_PORT: '80' } },
  { id: 'broadcast', attributes: { AWS_INSTANCE_IPV4: '255.255.255.255', AWS_INSTANCE_PORT: '8080' } },
  { id: 'good', attributes: { AWS_INSTANCE_IPV4: '127.0.0.2', AWS_INSTANCE_PORT: '8080' } },
]) {
  cloudMap.register('myapp.local', 'orders', instance);
}
const msw = setupServer(cloudMap.handler);

beforeAll(async () => {
  msw.listen({ onUnhandledFrame: 'error' });
  const burst = Array.from({ length: BURST }, (_, i) => `b${i}.burst 60 IN A ${burstAddress(i)}`);
  bind = await Bind9.start({
    zones: {
      'hostile.local': [
        'mixed 60 IN A 0.0.0.0',
        'mixed 60 IN A 255.255.255.255',
        'mixed 60 IN A 224.0.0.1',
        'mixed 60 IN A 169.254.169.254',
        'mixed 60 IN A 127.0.0.5',
        'zero 60 IN A 0.0.0.0',
        'metadata 60 IN A 169.254.169.254',
        'srv 60 IN SRV 1 1 8080 meta.hostile.local.',
        'srv 60 IN SRV 1 1 8081 good.hostile.local.',
        'meta 60 IN A 169.254.169.254',
        'good 60 IN A 127.0.0.6',
        ...burst,
      ].join('\n'),
    },
    querylog: false,
  });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});

afterAll(async () => {
  msw.close();
  await bind?.close();
});

function discovery(options: DiscoveryOptions = {}): Discovery {
  const d = new Discovery({ dns: { servers: [bind.server], timeout: 1000, tries: 2 }, ...options });
  open.push(d);
  return d;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const addresses = (instances: ReadonlyArray<{ address: string }>): string[] => instances.map((i) => i.address).sort();

describe('a registry that fails fast', () => {
  test('32 callers on a cold SERVFAIL name: one query at a time, then about one per second; callers get the error at once', async () => {
    const fault = await FaultDns.start((query) => [reply(query, { rcode: 'SERVFAIL' })]);
    open.push(fault);
    const d = discovery({ dns: { servers: [fault.server], timeout: 1000, tries: 2 }, services: { 'down.hostile.local': { via: 'dns', family: 4 } } });
    let stop = false;
    let calls = 0;
    const codes = new Set<string>();
    const caller = async (): Promise<void> => {
      while (!stop) {
        calls++;
        await d.resolve('down.hostile.local').catch((error: { code: string }) => codes.add(error.code));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const started = performance.now();
    const callers = Promise.all(Array.from({ length: 32 }, caller));
    await sleep(2500);
    stop = true;
    await callers;
    const seconds = (performance.now() - started) / 1000;
    const queries = fault.queries.length;
    // c-ares asks `tries` times per lookup; lookups: the first, then 250 ms, 500 ms, 1 s ... (± 25%).
    const lookups = d.stats().queries;
    expect(codes).toEqual(new Set(['SIGNPOST_ERR_RESOLVE']));
    expect(calls).toBeGreaterThan(1000);
    expect(lookups).toBeLessThanOrEqual(3 + Math.ceil(seconds / 0.75));
    expect(queries).toBeLessThanOrEqual(lookups * 2);
  });
});

describe('a burst of three times maxNames', () => {
  test('every name resolves to its own answer; the cache goes back to its bound', async () => {
    const d = discovery({ namespaces: { 'burst.hostile.local': { via: 'dns', family: 4 } }, cache: { maxNames: MAX_NAMES } });
    const results = await Promise.allSettled(Array.from({ length: BURST }, (_, i) => d.resolve(`b${i}.burst.hostile.local`)));
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.map((r) => (r as PromiseRejectedResult).reason)).toEqual([]);
    results.forEach((r, i) => expect((r as PromiseFulfilledResult<Array<{ address: string }>>).value[0]?.address).toBe(burstAddress(i)));
    expect(d.stats().names).toBeLessThanOrEqual(MAX_NAMES);
    // pick() reads the answer its own query brought, too.
    const picks = await Promise.allSettled(Array.from({ length: BURST }, (_, i) => d.pick(`b${(i * 7) % BURST}.burst.hostile.local`)));
    expect(picks.filter((r) => r.status === 'rejected')).toEqual([]);
  });
});

describe('addresses that are never instances', () => {
  test('DNS: hostile A records are left out and reported; an answer of only hostile ones says why', async () => {
    const skipped: Array<{ name: string; address: string; reason: string }> = [];
    const onSkip = (message: unknown): void => void skipped.push(message as (typeof skipped)[number]);
    subscribe('signpost:resolve:skipped-instance', onSkip);
    try {
      const d = discovery({ namespaces: { 'hostile.local': { via: 'dns', family: 4, port: 8080 } } });
      expect(addresses(await d.resolve('mixed.hostile.local'))).toEqual(['127.0.0.5']);
      expect(skipped.map((s) => s.address).sort()).toEqual(['0.0.0.0', '169.254.169.254', '224.0.0.1', '255.255.255.255']);
      await expect(d.resolve('zero.hostile.local')).rejects.toMatchObject({
        code: 'SIGNPOST_ERR_NO_INSTANCES',
        message: expect.stringMatching(/0\.0\.0\.0 \(unspecified/),
      });
      await expect(d.pick('metadata.hostile.local')).rejects.toMatchObject({
        code: 'SIGNPOST_ERR_NO_INSTANCES',
        message: expect.stringMatching(/169\.254\.169\.254 \(link-local.*addresses\.allow/),
      });
    } finally {
      unsubscribe('signpost:resolve:skipped-instance', onSkip);
    }
  });

  test('SRV: a target pointing at the metadata address is left out', async () => {
    const d = discovery({ services: { 'srv.hostile.local': { via: 'srv' } } });
    expect((await d.resolve('srv.hostile.local')).map((i) => `${i.address}:${i.port}`)).toEqual(['127.0.0.6:8081']);
  });

  test('addresses.allow opens link-local for those who need it', async () => {
    const d = discovery({ namespaces: { 'hostile.local': { via: 'dns', family: 4 } }, addresses: { allow: ['169.254.169.254'] } });
    expect(addresses(await d.resolve('metadata.hostile.local'))).toEqual(['169.254.169.254']);
  });

  test('Cloud Map: unspecified, multicast, zone-id, link-local and broadcast addresses are left out', async () => {
    const d = discovery({
      namespaces: { 'myapp.local': { via: 'cloudmap' } },
      cloudMap: { region: TEST_REGION, credentials: TEST_CREDENTIALS, retryDelay: 1 },
    });
    expect((await d.resolve('orders.myapp.local')).map((i) => i.id)).toEqual(['good']);
  });

  test('an IP literal that is never an instance is NO_INSTANCES', async () => {
    const d = discovery();
    await expect(d.resolve('169.254.169.254')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
    await expect(d.resolve('0.0.0.0')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
    expect(addresses(await d.resolve('127.0.0.8'))).toEqual(['127.0.0.8']);
  });

  test.each([
    ['0.0.0.0', /unspecified/],
    ['255.255.255.255', /broadcast/],
    ['224.0.0.1', /multicast/],
    ['::', /unspecified/],
    ['ff02::1', /multicast/],
    ['169.254.169.254', /link-local/],
    ['fe80::1%lo', /zone id/],
  ])('static config and SIGNPOST_STATIC with %s: a constructor error', (address, reason) => {
    expect(() => new Discovery({ services: { 'a.local': { via: 'static', instances: [{ address, port: 80 }] } } })).toThrow(
      expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', message: expect.stringMatching(reason) }),
    );
    process.env.SIGNPOST_STATIC = `a.local=${address.includes(':') ? `[${address}]` : address}:80`;
    try {
      expect(() => new Discovery()).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', message: expect.stringMatching(/SIGNPOST_STATIC/) }));
    } finally {
      delete process.env.SIGNPOST_STATIC;
    }
  });

  test('through the agent, a name answering 0.0.0.0 never reaches a server on this host', async () => {
    const server = createServer((socket) => {
      reached++;
      socket.destroy();
    });
    let reached = 0;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const agent = new DiscoveryAgent({ dns: { servers: [bind.server], timeout: 1000, tries: 1 }, namespaces: { 'hostile.local': { via: 'dns', family: 4 } } });
    try {
      const error = await request(`http://zero.hostile.local:${port}/`, { dispatcher: agent }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
      expect(reached).toBe(0);
    } finally {
      await agent.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
