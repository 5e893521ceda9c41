import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DnsClient, dnsSettings } from '../../src/dns/client.ts';
import { Discovery } from '../../src/discovery.ts';
import { DnsResolver } from '../../src/resolvers/dns.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { FaultDns, reply } from '../support/fault-dns.ts';
import { codeOf, settlesWithin, withLate } from '../dns/helpers.ts';

const TIMEOUT_MS = 300;
const TRIES = 2;
/** timeout × tries, plus room for a loaded machine. */
const BOUND_MS = TIMEOUT_MS * TRIES + 1500;

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

let bind: Bind9;
let client: DnsClient;
const context = () => ({ signal: new AbortController().signal });

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  bind = await Bind9.start({
    zones: {
      'test.local': [
        'api 30 IN A 127.0.0.2',
        'api 30 IN A 127.0.0.3',
        'api 40 IN AAAA ::1',
        'v4only 25 IN A 127.0.0.4',
        'v6only 35 IN AAAA ::1',
        'txtonly 10 IN TXT "no addresses here"',
      ].join('\n'),
    },
    brokenZones: ['broken.local'],
  });
  client = new DnsClient(dnsSettings({ servers: [bind.server], timeout: TIMEOUT_MS, tries: TRIES }));
});
afterAll(async () => {
  client?.close();
  await bind?.close();
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

describe('config', () => {
  test('port and family are checked where they are given: a services entry', () => {
    const code = (config: object) => {
      try {
        new Discovery({ services: { 'api.test.local': { via: 'dns', ...config } as never } });
      } catch (error) {
        return (error as { code: string }).code;
      }
      return 'accepted';
    };
    expect(code({ port: 8080, family: 6 })).toBe('accepted');
    for (const port of [0, 65_536, 80.5, '80']) expect(code({ port })).toBe('SIGNPOST_ERR_INVALID_ARG');
    for (const family of [5, 'ipv4', 'both']) expect(code({ family })).toBe('SIGNPOST_ERR_INVALID_ARG');
  });
});

describe('against bind9', () => {
  test("family 'any': A and AAAA together, TTL the smallest, no port unless configured", async () => {
    const resolution = await withLate(await new DnsResolver(client, {}).resolve('api.test.local', context()));
    expect(resolution.ttl).toBe(30_000);
    expect(resolution.instances.map((i) => i.address).sort()).toEqual(['127.0.0.2', '127.0.0.3', '::1']);
    expect(resolution.instances.find((i) => i.address === '::1')).toEqual({
      id: '::1',
      address: '::1',
      weight: 1,
      priority: 0,
      attributes: {},
    });
    const withPort = await new DnsResolver(client, { port: 8080 }).resolve('api.test.local', context());
    expect(withPort.instances.every((i) => i.port === 8080)).toBe(true);
  });

  test('family 4 and 6 ask for one record type each, with its TTL', async () => {
    const v4 = await new DnsResolver(client, { family: 4 }).resolve('api.test.local', context());
    expect([v4.instances.map((i) => i.address).sort(), v4.ttl]).toEqual([['127.0.0.2', '127.0.0.3'], 30_000]);
    const v6 = await new DnsResolver(client, { family: 6 }).resolve('api.test.local', context());
    expect([v6.instances.map((i) => i.address), v6.ttl]).toEqual([['::1'], 40_000]);
  });

  test('data in one family and NODATA in the other is data; NODATA alone is empty', async () => {
    const any = new DnsResolver(client, { family: 'any' });
    expect(await any.resolve('v4only.test.local', context())).toMatchObject({ ttl: 25_000, instances: [{ address: '127.0.0.4' }] });
    expect(await any.resolve('v6only.test.local', context())).toMatchObject({ ttl: 35_000, instances: [{ address: '::1' }] });
    const empty = await new DnsResolver(client, { family: 4 }).resolve('v6only.test.local', context());
    expect(empty).toMatchObject({ instances: [], ttl: 0 });
    expect(empty.why).toMatch(/^v6only\.test\.local has no A records \(NODATA from 127\.0\.0\.1:\d+\): the name exists, but no instance is registered/);
    expect((await any.resolve('txtonly.test.local', context())).instances).toEqual([]);
  });

  test('NXDOMAIN is SIGNPOST_ERR_NOT_FOUND, naming the name', async () => {
    const error = await new DnsResolver(client, {}).resolve('nope.test.local', context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND', hostname: 'nope.test.local' });
    expect((error as Error).message).toMatch(/nope\.test\.local does not exist \(NXDOMAIN for A(AAA)? from .*\): check the name, and that the DNS zone serving it/);
    expect((error as Error).message).not.toMatch(/Cloud Map/);
  });

  test('records added and removed with nsupdate are seen on the next resolve', async () => {
    const resolver = new DnsResolver(client, { family: 4 });
    await bind.update(['update add web.test.local 7 A 127.0.0.7']);
    expect(await resolver.resolve('web.test.local', context())).toMatchObject({ ttl: 7000, instances: [{ id: '127.0.0.7' }] });
    await bind.update(['update add web.test.local 7 A 127.0.0.8']);
    expect((await resolver.resolve('web.test.local', context())).instances.map((i) => i.id).sort()).toEqual(['127.0.0.7', '127.0.0.8']);
    await bind.update(['update delete web.test.local A 127.0.0.7']);
    expect((await resolver.resolve('web.test.local', context())).instances.map((i) => i.id)).toEqual(['127.0.0.8']);
    await bind.update(['update delete web.test.local A']);
    expect(await codeOf(resolver.resolve('web.test.local', context()))).toBe('SIGNPOST_ERR_NOT_FOUND');
  });

  test('SERVFAIL and REFUSED are SIGNPOST_ERR_RESOLVE within timeout × tries', async () => {
    const resolver = new DnsResolver(client, {});
    const servfail = await settlesWithin(resolver.resolve('x.broken.local', context()).catch((e: unknown) => e), BOUND_MS);
    expect(servfail).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE', hostname: 'x.broken.local' });
    expect((servfail as Error).message).toMatch(/SERVFAIL/);
    const refused = await settlesWithin(resolver.resolve('x.elsewhere', context()).catch((e: unknown) => e), BOUND_MS);
    expect(refused).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
    expect((refused as Error).message).toMatch(/REFUSED/);
  });

  test('a paused server (timeout) and a stopped one are SIGNPOST_ERR_RESOLVE within timeout × tries', async () => {
    const resolver = new DnsResolver(client, {});
    await bind.pause();
    try {
      const timedOut = await settlesWithin(resolver.resolve('api.test.local', context()).catch((e: unknown) => e), BOUND_MS);
      expect(timedOut).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
      expect((timedOut as Error).message).toMatch(/no answer within 300 ms × 2 tries/);
    } finally {
      bind.resume();
    }
    await bind.stop();
    try {
      expect(await codeOf(settlesWithin(resolver.resolve('api.test.local', context()), BOUND_MS))).toBe('SIGNPOST_ERR_RESOLVE');
    } finally {
      await bind.restart();
    }
    expect((await withLate(await resolver.resolve('api.test.local', context()))).instances).toHaveLength(3);
  });
});

describe('against the fault responder', () => {
  let fault: FaultDns;
  let faultClient: DnsClient;
  beforeAll(async () => {
    fault = await FaultDns.start(() => []);
    faultClient = new DnsClient(dnsSettings({ servers: [fault.server], timeout: TIMEOUT_MS, tries: TRIES }));
  });
  afterAll(async () => {
    faultClient?.close();
    await fault?.close();
  });

  test('NXDOMAIN on one family and data on the other is data', async () => {
    fault.handler = (query) =>
      query.questions?.[0]?.type === 'A'
        ? [reply(query, { answers: [{ type: 'A', name: 'odd.test.local', ttl: 11, data: '127.0.5.1' }] })]
        : [reply(query, { rcode: 'NXDOMAIN' })];
    expect(await new DnsResolver(faultClient, {}).resolve('odd.test.local', context())).toMatchObject({
      ttl: 11_000,
      instances: [{ id: '127.0.5.1' }],
    });
  });

  test('a family that times out does not hide the other one; both failing is SIGNPOST_ERR_RESOLVE', async () => {
    fault.handler = (query) =>
      query.questions?.[0]?.type === 'A'
        ? [reply(query, { answers: [{ type: 'A', name: 'slow6.test.local', ttl: 11, data: '127.0.5.2' }] })]
        : [];
    const resolution = await settlesWithin(new DnsResolver(faultClient, {}).resolve('slow6.test.local', context()), BOUND_MS);
    expect(resolution.instances.map((i) => i.id)).toEqual(['127.0.5.2']);
    fault.handler = (query) => [reply(query, { rcode: 'SERVFAIL' })];
    expect(await codeOf(new DnsResolver(faultClient, {}).resolve('slow6.test.local', context()))).toBe('SIGNPOST_ERR_RESOLVE');
  });
});
