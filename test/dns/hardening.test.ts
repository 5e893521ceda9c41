/**
 * The wire client against spoofing and broken servers: a fresh source port and ID per query,
 * owner names checked along CNAME chains, 0x20, EDNS0 fallback, truncation over a path that
 * refuses TCP, server selection that remembers failures, and errors that name each server.
 */
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DnsClient, dnsSettings } from '../../src/dns/client.ts';
import { ServerSet } from '../../src/dns/servers.ts';
import type { DnsServer } from '../../src/dns/wire.ts';
import { DnsResolver } from '../../src/resolvers/dns.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { FaultDns, reply } from '../support/fault-dns.ts';
import { codeOf } from './helpers.ts';

const context = () => ({ signal: new AbortController().signal });
const a = (name: string, data: string, ttl = 30) => ({ type: 'A' as const, name, ttl, data });
const cname = (name: string, data: string, ttl = 30) => ({ type: 'CNAME' as const, name, ttl, data });

let fault: FaultDns;
let client: DnsClient;

beforeAll(async () => {
  fault = await FaultDns.start(() => []);
});
beforeEach(() => {
  fault.queries.length = 0;
  client = new DnsClient(dnsSettings({ servers: [fault.server], timeout: 300, tries: 1 }));
});
afterEach(() => client.close());
afterAll(async () => {
  await fault?.close();
});

describe('answers are checked record by record', () => {
  test('A records owned by another name than the one asked (or reached by CNAMEs) are never used', async () => {
    fault.handler = (query) => [
      reply(query, {
        answers: [
          a('evil.test', '6.6.6.6'),
          cname('web.test', 'real.test', 20),
          a('other.test', '6.6.6.7'),
          a('real.test', '127.0.0.2', 40),
        ],
      }),
    ];
    const found = await client.lookup('web.test', [4]);
    expect(found.records).toEqual([{ address: '127.0.0.2', ttl: 40_000 }]);
    expect(found.ttl).toBe(20_000); // the CNAME's TTL counts too
  });

  test('an A record whose data is not an IPv4 address is dropped', async () => {
    fault.handler = (query) => [reply(query, { answers: [{ type: 'AAAA', name: 'web.test', ttl: 30, data: '::1' }, a('web.test', '127.0.0.2')] })];
    expect((await client.lookup('web.test', [4])).records.map((r) => r.address)).toEqual(['127.0.0.2']);
  });

  test('a CNAME chain that leaves the answer is asked again at its end, each hop with its own query', async () => {
    fault.handler = (query) => {
      const name = query.questions![0]!.name;
      if (name === 'web.test') return [reply(query, { answers: [cname('web.test', 'hop.other')] })];
      if (name === 'hop.other') return [reply(query, { answers: [cname('hop.other', 'end.third')] })];
      return [reply(query, { answers: [a('end.third', '127.0.0.9')] })];
    };
    expect((await client.lookup('web.test', [4])).records.map((r) => r.address)).toEqual(['127.0.0.9']);
    expect(fault.queries.map((q) => q.name)).toEqual(['web.test', 'hop.other', 'end.third']);
  });

  test('CNAME loops and chains longer than 8 fail with SIGNPOST_ERR_RESOLVE, never hang', async () => {
    fault.handler = (query) => [reply(query, { answers: [cname('loop.test', 'back.test'), cname('back.test', 'loop.test')] })];
    await expect(client.lookup('loop.test', [4])).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE', message: expect.stringMatching(/loop/) });
    fault.handler = (query) => {
      const name = query.questions![0]!.name;
      const n = Number(/^c(\d+)\./.exec(name)?.[1] ?? 0);
      return [reply(query, { answers: [cname(name, `c${n + 1}.test`)] })];
    };
    await expect(client.lookup('c0.test', [4])).rejects.toMatchObject({ message: expect.stringMatching(/more than 8 CNAMEs/) });
  });

  test('NXDOMAIN at the end of a chain is SIGNPOST_ERR_NOT_FOUND naming the target', async () => {
    fault.handler = (query) => [reply(query, { rcode: 'NXDOMAIN', answers: [cname('web.test', 'gone.test')] })];
    const error = (await client.lookup('web.test', [4]).catch((e: unknown) => e)) as Error & { code: string };
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(error.message).toMatch(/web\.test \(CNAME target gone\.test\) does not exist/);
  });
});

describe('spoofing', () => {
  test('every query has its own source port and a random ID, also 32 at a time', async () => {
    const server: Socket = createSocket('udp4');
    const seen: Array<{ port: number; id: number }> = [];
    server.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      seen.push({ port: remote.port, id: query.id ?? 0 });
      server.send(reply(query, { answers: [a(query.questions![0]!.name, '127.0.0.2')] }), remote.port, remote.address);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const own = new DnsClient(dnsSettings({ servers: [`127.0.0.1:${server.address().port}`], timeout: 1000, tries: 1 }));
    try {
      for (let batch = 0; batch < 16; batch++) {
        await Promise.all(Array.from({ length: 32 }, (_, i) => own.lookup(`n${batch}-${i}.test`, [4])));
      }
      expect(seen).toHaveLength(512);
      // Queries in flight together never share a port; over time the kernel's random ephemeral
      // ports repeat now and then (a few in 512 draws), never in step.
      for (let batch = 0; batch < 16; batch++) {
        expect(new Set(seen.slice(batch * 32, batch * 32 + 32).map((s) => s.port)).size).toBe(32);
      }
      expect(new Set(seen.map((s) => s.port)).size).toBeGreaterThan(480);
      // 512 draws from 65,536: a few repeats at most, never a sequence.
      expect(new Set(seen.map((s) => s.id)).size).toBeGreaterThan(490);
    } finally {
      own.close();
      server.close();
    }
  });

  test('0x20: the question goes out in mixed case and an answer must echo it exactly', async () => {
    const mixed = new DnsClient(dnsSettings({ servers: [fault.server], timeout: 300, tries: 1, randomizeCase: true }));
    try {
      fault.handler = (query) => [reply(query, { answers: [a(query.questions![0]!.name, '127.0.0.2')] })];
      const names = new Set<string>();
      for (let i = 0; i < 8; i++) {
        expect((await mixed.lookup('casecheckedname.test', [4])).records).toHaveLength(1);
        names.add(fault.queries.at(-1)!.name);
      }
      expect(names.size).toBeGreaterThan(1);
      expect([...names].every((n) => n.toLowerCase() === 'casecheckedname.test')).toBe(true);

      // A server (or a forger) that lowercases the question is not believed, and the error says why.
      fault.handler = (query) => [
        reply(query, {
          questions: [{ ...query.questions![0]!, name: query.questions![0]!.name.toLowerCase() }],
          answers: [a('casecheckedname.test', '6.6.6.6')],
        }),
      ];
      const error = (await mixed.lookup('casecheckedname.test', [4]).catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/question case does not match \(0x20\).*turn dns\.randomizeCase off/);
    } finally {
      mixed.close();
    }
  });

  test('0x20 against bind9, which keeps the case of questions', async () => {
    const bind = await Bind9.start({ zones: { 'case.local': 'web 30 IN A 127.0.0.2\nweb 30 IN AAAA ::1' }, querylog: false });
    const mixed = new DnsClient(dnsSettings({ servers: [bind.server], timeout: 500, tries: 1, randomizeCase: true }));
    try {
      const resolution = await new DnsResolver(mixed, {}).resolve('web.case.local', context());
      expect(resolution.instances.map((i) => i.address).sort()).toEqual(['127.0.0.2', '::1']);
    } finally {
      mixed.close();
      await bind.close();
    }
  });
});

describe('servers that misbehave', () => {
  test('FORMERR to EDNS0: asked again without it, and that server is asked without it from then on', async () => {
    const asked: boolean[] = [];
    fault.handler = (query) => {
      const edns = (query.additionals ?? []).some((r) => r.type === 'OPT');
      asked.push(edns);
      return edns ? [reply(query, { rcode: 'FORMERR' as never })] : [reply(query, { answers: [a(query.questions![0]!.name, '127.0.0.2')] })];
    };
    expect((await client.lookup('old.test', [4])).records).toHaveLength(1);
    expect((await client.lookup('old2.test', [4])).records).toHaveLength(1);
    expect(asked).toEqual([true, false, false]);
  });

  test('EDNS0: a 1,000-byte A answer comes whole over UDP, where TCP is refused', async () => {
    const udpOnly: Socket = createSocket('udp4');
    udpOnly.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      const opt = (query.additionals ?? []).find((r) => r.type === 'OPT') as { udpPayloadSize?: number } | undefined;
      const name = query.questions![0]!.name;
      const answers = Array.from({ length: 40 }, (_, i) => a(name, `127.0.4.${i + 1}`)); // about 1,050 bytes
      let bytes = reply(query, { answers, additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as never] : [] });
      // As a server does: over the client's buffer (512 bytes without EDNS0), truncate.
      if (bytes.length > (opt?.udpPayloadSize ?? 512)) bytes = reply(query, { truncated: true });
      udpOnly.send(bytes, remote.port, remote.address);
    });
    await new Promise<void>((resolve) => udpOnly.bind(0, '127.0.0.1', resolve));
    const own = new DnsClient(dnsSettings({ servers: [`127.0.0.1:${udpOnly.address().port}`], timeout: 500, tries: 1 }));
    try {
      expect((await own.lookup('many.test', [4])).records).toHaveLength(40);
    } finally {
      own.close();
      udpOnly.close();
    }
  });

  test('a truncated answer over a path that refuses TCP says so', async () => {
    const udpOnly: Socket = createSocket('udp4');
    udpOnly.on('message', (message, remote) => {
      udpOnly.send(reply(dnsPacket.decode(message), { truncated: true }), remote.port, remote.address);
    });
    await new Promise<void>((resolve) => udpOnly.bind(0, '127.0.0.1', resolve));
    const own = new DnsClient(dnsSettings({ servers: [`127.0.0.1:${udpOnly.address().port}`], timeout: 500, tries: 1 }));
    try {
      const error = (await own.lookup('big.test', [4]).catch((e: unknown) => e)) as Error & { code: string };
      expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
      expect(error.message).toMatch(/did not fit in UDP \(truncated\) and TCP to port \d+ was refused.*allow TCP port 53/);
    } finally {
      own.close();
      udpOnly.close();
    }
  });

  test('a dead server and a REFUSED one are both named, with what each did and what to check', async () => {
    const refusing = await FaultDns.start((query) => [reply(query, { rcode: 'REFUSED' })], '127.0.0.3');
    const dead = await FaultDns.start(() => [], '127.0.0.4');
    const both = new DnsClient(dnsSettings({ servers: [dead.server, refusing.server], timeout: 200, tries: 1 }));
    try {
      const error = (await both.lookup('web.test', [4]).catch((e: unknown) => e)) as Error;
      expect(error.message).toContain(`${dead.server}: no answer within 200 ms`);
      expect(error.message).toContain(`${refusing.server}: answered REFUSED`);
      expect(error.message).toMatch(/does not serve this name/);
    } finally {
      both.close();
      await Promise.all([refusing.close(), dead.close()]);
    }
  });

  test('an answer marked stale (EDE 3) is flagged as such', async () => {
    fault.handler = (query) => [
      reply(query, {
        answers: [a('old.test', '127.0.0.2')],
        additionals: [
          { type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [{ code: 15, data: Buffer.from([0, 3]) }] } as never,
        ],
      }),
    ];
    const found = await client.lookup('old.test', [4]);
    expect(found.stale).toBe(true);
    expect((await new DnsResolver(client, { family: 4 }).resolve('old.test', context())).stale).toBe(true);
  });

  test('bad names never reach the wire', async () => {
    expect(await codeOf(client.lookup(`${'x'.repeat(64)}.test`, [4]))).toBe('SIGNPOST_ERR_RESOLVE');
    expect(fault.queries).toHaveLength(0);
  });
});

describe('ServerSet: which server first', () => {
  const servers: DnsServer[] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((address) => ({ address, port: 53, family: 4, label: address }));
  const labels = (list: readonly DnsServer[]) => list.map((s) => s.label);

  test('in order while all answer; a failed one goes to the back; an answer brings it back', () => {
    let now = 0;
    const set = new ServerSet(servers, { now: () => now });
    expect(labels(set.order())).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    set.failed(servers[0]!);
    expect(labels(set.order())).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.1']);
    set.failed(servers[1]!);
    set.failed(servers[1]!);
    expect(labels(set.order())).toEqual(['10.0.0.3', '10.0.0.1', '10.0.0.2']);
    set.succeeded(servers[0]!);
    expect(labels(set.order())).toEqual(['10.0.0.1', '10.0.0.3', '10.0.0.2']);
    now = 1;
  });

  test('a failed server is due for a probe after 2 s, then after 4 s, ... at most 30 s; one probe at a time', () => {
    let now = 0;
    const set = new ServerSet(servers, { now: () => now });
    set.failed(servers[0]!);
    now = 1999;
    expect(set.due()).toEqual([]);
    now = 2000;
    expect(labels(set.due())).toEqual(['10.0.0.1']);
    expect(set.due()).toEqual([]); // being probed
    set.failed(servers[0]!);
    now = 2000 + 3999;
    expect(set.due()).toEqual([]);
    now = 2000 + 4000;
    expect(labels(set.due())).toEqual(['10.0.0.1']);
    for (let i = 0; i < 10; i++) set.failed(servers[0]!);
    now += 30_000;
    expect(labels(set.due())).toEqual(['10.0.0.1']);
  });

  test('rotate: each query starts at the next healthy server', () => {
    const set = new ServerSet(servers, { rotate: true });
    expect([0, 1, 2, 3].map(() => set.order()[0]!.label)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1']);
  });
});
