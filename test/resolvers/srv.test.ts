import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type dnsPacket from 'dns-packet';
import { DnsClient, dnsSettings } from '../../src/dns/client.ts';
import { Discovery } from '../../src/discovery.ts';
import { SrvResolver } from '../../src/resolvers/srv.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { FaultDns, reply } from '../support/fault-dns.ts';
import { codeOf, settlesWithin, withLate } from '../dns/helpers.ts';

const TIMEOUT_MS = 300;
const TRIES = 2;
const BOUND_MS = TIMEOUT_MS * TRIES + 1500;

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
const context = () => ({ signal: new AbortController().signal });
const summary = (instances: readonly { id: string; address: string; port?: number; priority: number; weight: number }[]) =>
  instances.map((i) => `${i.priority}/${i.weight} ${i.id} ${i.address}:${i.port}`);

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

test('config: srv is checked where it is given, a services entry, to be a DNS name', () => {
  const code = (srv: unknown) => {
    try {
      new Discovery({ services: { 'pay.test.local': { via: 'srv', srv } as never } });
    } catch (error) {
      return (error as { code: string }).code;
    }
    return 'accepted';
  };
  expect(code('_http._tcp.pay.test.local')).toBe('accepted');
  for (const srv of ['', 'http://x', 'a..b', 42, () => 'x']) expect(code(srv)).toBe('SIGNPOST_ERR_INVALID_ARG');
});

describe('against bind9', () => {
  let bind: Bind9;
  let client: DnsClient;
  beforeAll(async () => {
    bind = await Bind9.start({
      negativeTtl: 7,
      zones: {
        'test.local': [
          // Cloud Map style: SRV at the service name, targets <instance-id>.<service>.<namespace>.
          'web 50 IN SRV 10 60 8080 i-1.web.test.local.',
          'web 50 IN SRV 10 20 8081 i-2.web.test.local.',
          'web 50 IN SRV 20 0 9090 i-3.web.test.local.',
          'i-1.web 15 IN A 127.0.1.1',
          'i-2.web 35 IN A 127.0.1.2',
          'i-3.web 70 IN A 127.0.1.3',
          // RFC 2782 style: _service._proto.name, one target with two addresses.
          '_http._tcp.pay 40 IN SRV 0 5 7000 pay-a.test.local.',
          'pay-a 20 IN A 127.0.2.1',
          'pay-a 20 IN AAAA ::1',
          'nosrv 30 IN TXT "no SRV here"',
          'dot 30 IN SRV 0 0 0 .',
          'alias 45 IN CNAME web.test.local.',
        ].join('\n'),
      },
      brokenZones: ['broken.local'],
    });
    client = new DnsClient(dnsSettings({ servers: [bind.server], timeout: TIMEOUT_MS, tries: TRIES }));
  });
  afterAll(async () => {
    client?.close();
    await bind?.close();
  });

  test('Cloud Map style: ports, priorities, weights, targets, ordered; TTL the smallest of SRV and A', async () => {
    const resolution = await withLate(await new SrvResolver(client, {}).resolve('web.test.local', context()));
    expect(summary(resolution.instances)).toEqual([
      '10/60 i-1.web.test.local:8080 127.0.1.1:8080',
      '10/20 i-2.web.test.local:8081 127.0.1.2:8081',
      '20/0 i-3.web.test.local:9090 127.0.1.3:9090',
    ]);
    expect(resolution.instances[0]?.attributes).toEqual({ target: 'i-1.web.test.local' });
    expect(resolution.ttl).toBe(15_000);
  });

  test('RFC 2782 style, fixed name and namespace function: several addresses are several instances', async () => {
    const expected = ['0/5 127.0.2.1:7000 127.0.2.1:7000', '0/5 [::1]:7000 ::1:7000'];
    const fixed = await new SrvResolver(client, { srv: '_http._tcp.pay.test.local' }).resolve('pay.test.local', context());
    expect(summary(fixed.instances)).toEqual(expected);
    expect(fixed.ttl).toBe(20_000);
    const byRule = await new SrvResolver(client, { srv: (name) => `_http._tcp.${name}` }).resolve('pay.test.local', context());
    expect(summary(byRule.instances)).toEqual(expected);
  });

  test('a CNAME at the SRV name is followed, its TTL counted', async () => {
    const resolution = await withLate(await new SrvResolver(client, {}).resolve('alias.test.local', context()));
    expect(resolution.instances).toHaveLength(3);
    expect(resolution.ttl).toBe(15_000);
  });

  test('NXDOMAIN is SIGNPOST_ERR_NOT_FOUND; NODATA and target "." are empty', async () => {
    const resolver = new SrvResolver(client, {});
    const error = await resolver.resolve('nope.test.local', context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
    expect((error as Error).message).toMatch(/nope\.test\.local/);
    expect(await resolver.resolve('nosrv.test.local', context())).toMatchObject({ instances: [], ttl: 7000 });
    expect(await resolver.resolve('dot.test.local', context())).toMatchObject({ instances: [], ttl: 30_000, why: expect.stringMatching(/not available/) });
    expect((error as Error).message).toMatch(/NXDOMAIN for SRV .*: check the SRV name/);
  });

  test('records added and removed with nsupdate are seen on the next resolve', async () => {
    const resolver = new SrvResolver(client, {});
    await bind.update([
      'update add i-4.web.test.local 50 A 127.0.1.4',
      'update add web.test.local 50 SRV 10 10 8082 i-4.web.test.local.',
    ]);
    expect((await resolver.resolve('web.test.local', context())).instances.map((i) => i.id)).toContain('i-4.web.test.local:8082');
    await bind.update(['update delete web.test.local SRV 10 10 8082 i-4.web.test.local.']);
    expect((await resolver.resolve('web.test.local', context())).instances.map((i) => i.id)).not.toContain('i-4.web.test.local:8082');
  });

  test('SERVFAIL, REFUSED, a paused and a stopped server are SIGNPOST_ERR_RESOLVE within timeout × tries', async () => {
    const resolver = new SrvResolver(client, {});
    expect(await codeOf(settlesWithin(resolver.resolve('x.broken.local', context()), BOUND_MS))).toBe('SIGNPOST_ERR_RESOLVE');
    await expect(resolver.resolve('x.elsewhere', context())).rejects.toThrow(/x\.elsewhere.*REFUSED/);
    await bind.pause();
    try {
      const timedOut = await settlesWithin(resolver.resolve('web.test.local', context()).catch((e: unknown) => e), BOUND_MS);
      expect(timedOut).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
      expect((timedOut as Error).message).toMatch(/no answer within 300 ms/);
    } finally {
      bind.resume();
    }
    await bind.stop();
    try {
      expect(await codeOf(settlesWithin(resolver.resolve('web.test.local', context()), BOUND_MS))).toBe('SIGNPOST_ERR_RESOLVE');
    } finally {
      await bind.restart();
    }
    expect((await withLate(await resolver.resolve('web.test.local', context()))).instances).toHaveLength(3);
  });
});

describe('against the fault responder', () => {
  let fault: FaultDns;
  let client: DnsClient;
  type Zone = Record<string, dnsPacket.Answer[] | 'NXDOMAIN'>;
  let zone: Zone = {};
  const serve = (z: Zone) => {
    zone = z;
  };

  beforeAll(async () => {
    fault = await FaultDns.start((query) => {
      const question = query.questions?.[0];
      const records = zone[question?.name.toLowerCase() ?? ''];
      if (records === undefined || records === 'NXDOMAIN') return [reply(query, { rcode: 'NXDOMAIN' })];
      return [reply(query, { answers: records.filter((r) => r.type === question?.type || r.type === 'CNAME') })];
    });
    client = new DnsClient(dnsSettings({ servers: [fault.server], timeout: TIMEOUT_MS, tries: TRIES }));
  });
  afterAll(async () => {
    client?.close();
    await fault?.close();
  });

  test('without an additional section, targets are looked up (A and AAAA in parallel); one with no address is skipped and reported', async () => {
    serve({
      'svc.test.local': [
        { type: 'SRV', name: 'svc.test.local', ttl: 60, data: { priority: 1, weight: 1, port: 81, target: 'up.test.local' } },
        { type: 'SRV', name: 'svc.test.local', ttl: 60, data: { priority: 1, weight: 1, port: 82, target: 'gone.test.local' } },
        { type: 'SRV', name: 'svc.test.local', ttl: 60, data: { priority: 1, weight: 1, port: 83, target: 'empty.test.local' } },
      ],
      'up.test.local': [{ type: 'A', name: 'up.test.local', ttl: 12, data: '127.0.3.1' }],
      'gone.test.local': 'NXDOMAIN',
      'empty.test.local': [{ type: 'TXT', name: 'empty.test.local', ttl: 5, data: 'x' }],
    });
    const skipped: unknown[] = [];
    const onSkipped = (message: unknown): void => {
      skipped.push(message);
    };
    subscribe('signpost:dns:skipped-target', onSkipped);
    try {
      const resolution = await withLate(await new SrvResolver(client, {}).resolve('svc.test.local', context()));
      expect(summary(resolution.instances)).toEqual(['1/1 up.test.local:81 127.0.3.1:81']);
      expect(resolution.ttl).toBe(12_000);
      expect(skipped).toEqual([
        expect.objectContaining({ name: 'svc.test.local', target: 'gone.test.local', port: 82, reason: 'no address' }),
        expect.objectContaining({ name: 'svc.test.local', target: 'empty.test.local', port: 83, reason: 'no address' }),
      ]);
    } finally {
      unsubscribe('signpost:dns:skipped-target', onSkipped);
    }
  });

  test('addresses in the additional section are used as given: no lookups for those targets', async () => {
    serve({
      'svc.test.local': [
        { type: 'SRV', name: 'svc.test.local', ttl: 60, data: { priority: 2, weight: 3, port: 84, target: 'extra.test.local' } },
      ],
      'extra.test.local': 'NXDOMAIN',
    });
    const handler = fault.handler;
    fault.handler = (query, transport) =>
      query.questions?.[0]?.type === 'SRV'
        ? [
            reply(query, {
              answers: zone['svc.test.local'] as dnsPacket.Answer[],
              additionals: [
                { type: 'A', name: 'EXTRA.test.local', ttl: 8, data: '127.0.4.1' },
                { type: 'AAAA', name: 'extra.test.local', ttl: 60, data: '::1' },
              ],
            }),
          ]
        : handler(query, transport);
    fault.queries.length = 0;
    try {
      const resolution = await withLate(await new SrvResolver(client, {}).resolve('svc.test.local', context()));
      expect(summary(resolution.instances)).toEqual(['2/3 127.0.4.1:84 127.0.4.1:84', '2/3 [::1]:84 ::1:84']);
      expect(resolution.ttl).toBe(8000);
      expect(fault.queries.map((q) => q.type)).toEqual(['SRV']);
    } finally {
      fault.handler = handler;
    }
  });

  test('no target with an address: the name has no instances', async () => {
    serve({
      'svc.test.local': [{ type: 'SRV', name: 'svc.test.local', ttl: 60, data: { priority: 1, weight: 1, port: 82, target: 'gone.test.local' } }],
      'gone.test.local': 'NXDOMAIN',
    });
    expect((await withLate(await new SrvResolver(client, {}).resolve('svc.test.local', context()))).instances).toEqual([]);
  });

  test('a CNAME loop inside one answer, or across queries, is SIGNPOST_ERR_RESOLVE, not a hang', async () => {
    serve({
      'loop.test.local': [
        { type: 'CNAME', name: 'loop.test.local', ttl: 60, data: 'loop2.test.local' },
        { type: 'CNAME', name: 'loop2.test.local', ttl: 60, data: 'loop.test.local' },
      ],
      'a.test.local': [{ type: 'CNAME', name: 'a.test.local', ttl: 60, data: 'b.test.local' }],
      'b.test.local': [{ type: 'CNAME', name: 'b.test.local', ttl: 60, data: 'a.test.local' }],
    });
    const resolver = new SrvResolver(client, {});
    await expect(settlesWithin(resolver.resolve('loop.test.local', context()), BOUND_MS)).rejects.toThrow(/CNAME loop/);
    const error = await settlesWithin(resolver.resolve('a.test.local', context()).catch((e: unknown) => e), BOUND_MS);
    expect(error).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
    expect((error as Error).message).toMatch(/CNAME loop/);
  });

  test('a long CNAME chain hits the hop limit', async () => {
    const chain: Zone = {};
    for (let i = 0; i < 20; i++) {
      chain[`c${i}.test.local`] = [{ type: 'CNAME', name: `c${i}.test.local`, ttl: 60, data: `c${i + 1}.test.local` }];
    }
    serve(chain);
    await expect(new SrvResolver(client, {}).resolve('c0.test.local', context())).rejects.toThrow(/more than 8 CNAMEs/);
  });

  test('a CNAME into another answer is asked again at its target', async () => {
    serve({
      'out.test.local': [{ type: 'CNAME', name: 'out.test.local', ttl: 9, data: 'in.test.local' }],
      'in.test.local': [{ type: 'SRV', name: 'in.test.local', ttl: 60, data: { priority: 0, weight: 1, port: 90, target: 'up.test.local' } }],
      'up.test.local': [{ type: 'A', name: 'up.test.local', ttl: 12, data: '127.0.3.1' }],
    });
    const resolution = await withLate(await new SrvResolver(client, {}).resolve('out.test.local', context()));
    expect([summary(resolution.instances), resolution.ttl]).toEqual([['0/1 up.test.local:90 127.0.3.1:90'], 9000]);
  });
});
