import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import dnsPacket from 'dns-packet';
import { DnsClient, dnsSettings, parseDnsOptions, parseDnsServer } from '../../src/dns/client.ts';
import { Discovery } from '../../src/discovery.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { FaultDns, reply } from '../support/fault-dns.ts';
import { handlesAbove, quietHandles } from '../support/handles.ts';
import { codeOf, settlesWithin } from './helpers.ts';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

describe('options', () => {
  const invalid = (options: unknown) => {
    try {
      new Discovery({ dns: options as never });
    } catch (error) {
      return (error as { code: string }).code;
    }
    return 'accepted';
  };

  test('servers', () => {
    for (const ok of [['127.0.0.1'], ['127.0.0.1:5353'], ['::1'], ['[::1]:5353'], ['10.0.0.2', '[fd00::1]:53']]) {
      expect(invalid({ servers: ok })).toBe('accepted');
    }
    for (const bad of [[], '127.0.0.1', ['localhost'], ['127.0.0.1:0'], ['127.0.0.1:65536'], ['::1:53:x'], ['[127.0.0.1]:53'], [53], ['1.2.3.4:']]) {
      expect(invalid({ servers: bad })).toBe('SIGNPOST_ERR_INVALID_ARG');
    }
  });

  test('timeout', () => {
    expect(invalid({ timeout: 1 })).toBe('accepted');
    for (const bad of [0, -1, 1.5, '2000', Number.NaN, Infinity, 2 ** 31]) {
      expect(invalid({ timeout: bad })).toBe('SIGNPOST_ERR_INVALID_ARG');
    }
  });

  test('tries', () => {
    expect(invalid({ tries: 1 })).toBe('accepted');
    for (const bad of [0, 11, 1.5, '2']) expect(invalid({ tries: bad })).toBe('SIGNPOST_ERR_INVALID_ARG');
  });

  test('unknown keys and non-objects', () => {
    expect(invalid({ server: ['127.0.0.1'] })).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(invalid(null)).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(() => parseDnsOptions({ timeout: 0 }, 'services.x.dns')).toThrow(/services\.x\.dns\.timeout/);
  });

  test('defaults and parsing', () => {
    const client = new DnsClient(dnsSettings({ servers: ['127.0.0.1:5353'] }));
    expect([client.timeout, client.tries, client.servers]).toEqual([2000, 2, ['127.0.0.1:5353']]);
    client.close();
    expect(parseDnsServer('[::1]:5353')).toMatchObject({ address: '::1', port: 5353, family: 6 });
    expect(parseDnsServer('127.0.0.1')).toMatchObject({ address: '127.0.0.1', port: 53, family: 4 });
  });
});

describe('A/AAAA through c-ares', () => {
  let bind: Bind9;
  beforeAll(async () => {
    bind = await Bind9.start({ zones: { 'test.local': 'a 60 IN A 127.0.0.2\nv6 45 IN AAAA ::1' } });
  });
  afterAll(async () => {
    await bind?.close();
  });

  test('gives TTLs in ms, and does not cache: a change within the TTL is seen at once', async () => {
    const client = new DnsClient(dnsSettings({ servers: [bind.server], timeout: 500 }));
    expect(await client.resolveAddresses('a.test.local', 4)).toEqual([{ address: '127.0.0.2', ttl: 60_000 }]);
    expect(await client.resolveAddresses('v6.test.local', 6)).toEqual([{ address: '::1', ttl: 45_000 }]);
    await bind.update(['update delete a.test.local A', 'update add a.test.local 60 A 127.0.0.9']);
    expect(await client.resolveAddresses('a.test.local', 4)).toEqual([{ address: '127.0.0.9', ttl: 60_000 }]);
    client.close();
  });

  test('abort and close reject with typed errors, and close is idempotent', async () => {
    await bind.pause();
    try {
      const client = new DnsClient(dnsSettings({ servers: [bind.server], timeout: 2000, tries: 1 }));
      const controller = new AbortController();
      const aborted = client.resolveAddresses('a.test.local', 4, controller.signal);
      controller.abort();
      expect(await codeOf(aborted)).toBe('SIGNPOST_ERR_RESOLVE');
      const pending = client.resolveAddresses('a.test.local', 4);
      client.close();
      client.close();
      expect(await codeOf(pending)).toBe('SIGNPOST_ERR_CLOSED');
      expect(await codeOf(client.resolveAddresses('a.test.local', 4))).toBe('SIGNPOST_ERR_CLOSED');
      expect(await codeOf(client.query('a.test.local', 'SRV'))).toBe('SIGNPOST_ERR_CLOSED');
    } finally {
      bind.resume();
    }
  });
});

describe('the wire client against hostile answers', () => {
  let fault: FaultDns;
  let client: DnsClient;
  const srv = (query: dnsPacket.DecodedPacket) =>
    reply(query, {
      answers: [{ type: 'SRV', name: query.questions?.[0]?.name ?? '', ttl: 30, data: { target: 'a.test.local', port: 8080, priority: 1, weight: 5 } }],
    });
  const garbage = Buffer.from('this is not a DNS message at all, just noise');

  beforeAll(async () => {
    fault = await FaultDns.start(() => []);
  });
  beforeEach(() => {
    fault.queries.length = 0;
    client = new DnsClient(dnsSettings({ servers: [fault.server], timeout: 300, tries: 2 }));
  });
  afterEach(() => client.close());
  afterAll(async () => {
    await fault?.close();
  });

  test('asks with a random ID, EDNS0 and the question; answers with its TTL', async () => {
    let asked: dnsPacket.DecodedPacket | undefined;
    fault.handler = (query) => {
      asked = query;
      return [srv(query)];
    };
    const response = await client.query('web.test.local', 'SRV');
    expect(response.answers?.[0]).toMatchObject({ type: 'SRV', ttl: 30, data: { port: 8080, priority: 1, weight: 5 } });
    expect(asked?.additionals?.[0]).toMatchObject({ type: 'OPT', udpPayloadSize: 1232 });
    await client.query('web.test.local', 'SRV');
    expect(new Set(fault.queries.map((q) => q.id)).size).toBe(2);
  });

  test('a spoofed wrong-ID answer, a wrong question, garbage and a reply from another port are ignored; the right one wins', async () => {
    const ignored: unknown[] = [];
    const onIgnored = (message: unknown): void => {
      ignored.push(message);
    };
    subscribe('signpost:dns:ignored-response', onIgnored);
    try {
      fault.handler = (query) => {
        const spoofed = reply(query, { id: ((query.id ?? 0) + 1) % 65_536, answers: [] });
        const wrongQuestion = reply(query, { questions: [{ name: 'evil.test.local', type: 'SRV', class: 'IN' }] });
        const queryEcho = dnsPacket.encode({ ...query, type: 'query' });
        const rightIdGarbage = Buffer.concat([reply(query).subarray(0, 12), Buffer.from([0xff, 0xff, 0xff])]);
        return [spoofed, wrongQuestion, garbage, rightIdGarbage, queryEcho, { bytes: srv(query), fromOtherPort: true }, srv(query)];
      };
      const response = await client.query('WEB.test.local', 'SRV');
      expect(response.answers?.[0]).toMatchObject({ data: { port: 8080 } });
      expect(fault.queries).toHaveLength(1);
      expect(ignored.map((m) => (m as { reason: string }).reason)).toEqual(
        expect.arrayContaining(['wrong ID', 'question does not match', 'undecodable', 'not a response (QR bit clear)']),
      );
    } finally {
      unsubscribe('signpost:dns:ignored-response', onIgnored);
    }
  });

  test('only garbage: a typed error within timeout × tries, never a crash', async () => {
    fault.handler = (query) => [garbage, Buffer.alloc(3), reply(query).subarray(0, 15)];
    const error = await settlesWithin(client.query('web.test.local', 'SRV').catch((e: unknown) => e), 300 * 2 + 1000);
    expect(error).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE', hostname: 'web.test.local' });
    expect(String((error as Error).message)).toMatch(/web\.test\.local.*undecodable/);
    expect(fault.queries).toHaveLength(2);
  });

  test('silence: a typed error after timeout × tries, then the next server', async () => {
    const second = await FaultDns.start((query) => [srv(query)], '127.0.0.3');
    try {
      fault.handler = () => [];
      const failover = new DnsClient(dnsSettings({ servers: [fault.server, second.server], timeout: 200, tries: 2 }));
      const response = await settlesWithin(failover.query('web.test.local', 'SRV'), 200 + 1000);
      expect(response.answers).toHaveLength(1);
      failover.close();
      expect(await codeOf(settlesWithin(client.query('web.test.local', 'SRV'), 300 * 2 + 1000))).toBe('SIGNPOST_ERR_RESOLVE');
      expect(fault.queries.length).toBeGreaterThanOrEqual(3);
    } finally {
      await second.close();
    }
  });

  test('TC bit set: asks again over TCP and takes the full answer', async () => {
    fault.handler = (query, transport) =>
      transport === 'udp' ? [reply(query, { truncated: true }).subarray(0, 20)] : [srv(query)];
    const response = await client.query('web.test.local', 'SRV');
    expect(response.answers?.[0]).toMatchObject({ data: { port: 8080 } });
    expect(fault.queries.map((q) => q.transport)).toEqual(['udp', 'tcp']);
  });

  test('TC bit set and a useless TCP answer: a typed error', async () => {
    fault.handler = (query, transport) => (transport === 'udp' ? [reply(query, { truncated: true })] : [garbage]);
    expect(await codeOf(client.query('web.test.local', 'SRV'))).toBe('SIGNPOST_ERR_RESOLVE');
  });

  test('SERVFAIL and REFUSED from every server are typed errors; NXDOMAIN is an answer', async () => {
    fault.handler = (query) => [reply(query, { rcode: 'SERVFAIL' })];
    expect(await codeOf(client.query('web.test.local', 'SRV'))).toBe('SIGNPOST_ERR_RESOLVE');
    fault.handler = (query) => [reply(query, { rcode: 'REFUSED' })];
    await expect(client.query('web.test.local', 'SRV')).rejects.toThrow(/REFUSED/);
    fault.handler = (query) => [reply(query, { rcode: 'NXDOMAIN' })];
    expect((await client.query('web.test.local', 'SRV')).rcode).toBe('NXDOMAIN');
  });

  test('abort stops a query at once with a typed error', async () => {
    fault.handler = () => [];
    const controller = new AbortController();
    const pending = client.query('web.test.local', 'SRV', controller.signal);
    setTimeout(() => controller.abort(), 20);
    expect(await codeOf(settlesWithin(pending, 250))).toBe('SIGNPOST_ERR_RESOLVE');
  });

  test('no socket or timer outlives close(), on any path', async () => {
    const before = await quietHandles();
    const leaky = new DnsClient(dnsSettings({ servers: [fault.server], timeout: 200, tries: 1 }));
    let calls = 0;
    fault.handler = (query, transport) => {
      calls++;
      if (calls === 1) return [srv(query)];
      if (calls === 2) return [garbage];
      if (transport === 'udp') return [reply(query, { truncated: true })];
      return [srv(query)];
    };
    await leaky.query('web.test.local', 'SRV');
    await leaky.query('web.test.local', 'SRV').catch(() => {});
    await leaky.query('web.test.local', 'SRV');
    fault.handler = () => [];
    const pending = leaky.query('web.test.local', 'SRV').catch(() => {});
    const pendingA = leaky.resolveAddresses('web.test.local', 4).catch(() => {});
    leaky.close();
    await Promise.all([pending, pendingA]);
    expect(await handlesAbove(before)).toEqual({});
  });
});
