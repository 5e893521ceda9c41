/**
 * The UDP sockets a DNS client shares between its queries (`src/dns/udp.ts`): answers never mix
 * between queries in flight on one socket, a forged reply carrying a pending query's ID but
 * another question settles nothing, a late answer is never taken for a later query, a socket is
 * replaced after its queries or after a packet no query accepted, a socket error fails only the
 * queries on that socket, and no socket outlives its client or keeps an idle process up.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import dnsPacket from 'dns-packet';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DnsClient, dnsSettings } from '../../src/dns/client.ts';
import { UdpSockets } from '../../src/dns/udp.ts';
import { exchange, type DnsServer } from '../../src/dns/wire.ts';
import { reply } from '../support/fault-dns.ts';
import { handlesAbove, openHandles, quietHandles } from '../support/handles.ts';

const a = (name: string, data: string) => ({ type: 'A' as const, name, ttl: 30, data });

interface Asked {
  readonly query: dnsPacket.DecodedPacket;
  readonly remote: RemoteInfo;
}

/** A UDP responder that holds every query until the test answers it. */
class Held {
  readonly socket: Socket = createSocket('udp4');
  readonly asked: Asked[] = [];
  #waiters: Array<() => void> = [];

  static async start(): Promise<Held> {
    const held = new Held();
    held.socket.on('message', (message, remote) => {
      held.asked.push({ query: dnsPacket.decode(message), remote });
      for (const wake of held.#waiters.splice(0)) wake();
    });
    await new Promise<void>((resolve) => held.socket.bind(0, '127.0.0.1', resolve));
    return held;
  }

  get server(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  async until(count: number): Promise<Asked[]> {
    while (this.asked.length < count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.asked.slice(0, count);
  }

  send(to: Asked, bytes: Buffer): void {
    this.socket.send(bytes, to.remote.port, to.remote.address);
  }

  close(): void {
    this.socket.close();
  }
}

const nameOf = (asked: Asked): string => asked.query.questions![0]!.name;

let held: Held;
let client: DnsClient;

beforeEach(async () => {
  held = await Held.start();
  client = new DnsClient(dnsSettings({ servers: [held.server], timeout: 500, tries: 1, udpMaxQueries: 16 }));
});
afterEach(() => {
  client.close();
  held.close();
});

describe('queries sharing a socket', () => {
  test('concurrent queries on one socket each get their own answer, whatever order the answers come in', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `n${i}.test`);
    const lookups = names.map((name) => client.lookup(name, [4]));
    const asked = await held.until(8);
    expect(new Set(asked.map((q) => q.remote.port)).size).toBe(1);
    expect(new Set(asked.map((q) => q.query.id)).size).toBe(8);
    // Answered last to first, each with an address of its own name.
    for (const query of [...asked].reverse()) {
      const i = Number(/^n(\d+)\./.exec(nameOf(query))![1]);
      held.send(query, reply(query.query, { answers: [a(nameOf(query), `127.0.1.${i}`)] }));
    }
    const found = await Promise.all(lookups);
    expect(found.map((f) => f.records.map((r) => r.address))).toEqual(names.map((_, i) => [`127.0.1.${i}`]));
  });

  test("a forged reply with a pending query's ID but another question is ignored, and settles no other query", async () => {
    const ignored: Array<{ name: string; reason: string }> = [];
    const onIgnored = (message: unknown): void => void ignored.push(message as { name: string; reason: string });
    subscribe('signpost:dns:ignored-response', onIgnored);
    try {
      const first = client.query('one.test', 'A');
      const second = client.query('two.test', 'A');
      const [one, two] = await held.until(2);
      expect(one!.remote.port).toBe(two!.remote.port);
      // The ID of one's query with two's question (and a forged address), then the same with
      // one's name but the wrong type: neither may settle one, nor two.
      held.send(one!, reply(one!.query, { questions: two!.query.questions!, answers: [a('two.test', '6.6.6.6')] }));
      held.send(one!, reply(one!.query, { questions: [{ name: 'one.test', type: 'AAAA', class: 'IN' }], answers: [] }));
      // Two's ID with a garbage body: rejected by two.
      held.send(two!, Buffer.concat([reply(two!.query).subarray(0, 12), Buffer.from([0xff, 0xff])]));
      await new Promise((resolve) => setTimeout(resolve, 50));
      held.send(two!, reply(two!.query, { answers: [a('two.test', '127.0.0.2')] }));
      held.send(one!, reply(one!.query, { answers: [a('one.test', '127.0.0.1')] }));
      expect((await first).answers).toMatchObject([{ name: 'one.test', data: '127.0.0.1' }]);
      expect((await second).answers).toMatchObject([{ name: 'two.test', data: '127.0.0.2' }]);
      expect(ignored).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: 'one.test', reason: 'question does not match' }),
          expect.objectContaining({ name: 'two.test', reason: 'undecodable' }),
        ]),
      );
      expect(ignored.filter((m) => m.name === 'one.test')).toHaveLength(2);
    } finally {
      unsubscribe('signpost:dns:ignored-response', onIgnored);
    }
  });

  test('a forgery alone ends in a timeout of the query it aimed at; a reply with no pending ID is reported, not accepted', async () => {
    const ignored: string[] = [];
    const onIgnored = (message: unknown): void => void ignored.push((message as { reason: string }).reason);
    subscribe('signpost:dns:ignored-response', onIgnored);
    try {
      const target = client.query('one.test', 'A').catch((error: unknown) => error);
      const other = client.query('two.test', 'A');
      const [one, two] = await held.until(2);
      held.send(one!, reply(one!.query, { questions: two!.query.questions!, answers: [a('two.test', '6.6.6.6')] }));
      const unused = (one!.query.id! ^ 0x8000) === two!.query.id ? one!.query.id! ^ 0x4000 : one!.query.id! ^ 0x8000;
      held.send(one!, reply({ ...one!.query, id: unused }, { answers: [a('one.test', '6.6.6.6')] }));
      held.send(two!, reply(two!.query, { answers: [a('two.test', '127.0.0.2')] }));
      expect((await other).answers).toMatchObject([{ data: '127.0.0.2' }]);
      const error = await target;
      expect(error).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
      expect(String((error as Error).message)).toMatch(/no answer within 500 ms \(ignored packets: /);
      expect(ignored).toEqual(expect.arrayContaining(['question does not match', 'wrong ID']));
    } finally {
      unsubscribe('signpost:dns:ignored-response', onIgnored);
    }
  });
});

describe('late and rejected packets', () => {
  test('a late answer to a query that timed out is dropped unreported, and never taken for a later query', async () => {
    const ignored: unknown[] = [];
    const onIgnored = (message: unknown): void => void ignored.push(message);
    subscribe('signpost:dns:ignored-response', onIgnored);
    const own = new DnsClient(dnsSettings({ servers: [held.server], timeout: 100, tries: 1, udpMaxQueries: 16 }));
    try {
      await expect(own.query('late.test', 'A')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
      const later = own.query('late.test', 'A');
      const [first, second] = await held.until(2);
      // The same socket (nothing was rejected on it), a fresh ID.
      expect(second!.remote.port).toBe(first!.remote.port);
      expect(second!.query.id).not.toBe(first!.query.id);
      // The first query's answer comes now, with an address the second must not get.
      // Datagrams from one socket to another arrive in order: the late one is handled first.
      held.send(first!, reply(first!.query, { answers: [a('late.test', '6.6.6.6')] }));
      held.send(second!, reply(second!.query, { answers: [a('late.test', '127.0.0.2')] }));
      expect((await later).answers).toMatchObject([{ data: '127.0.0.2' }]);
      expect(ignored).toEqual([]);
    } finally {
      unsubscribe('signpost:dns:ignored-response', onIgnored);
      own.close();
    }
  });

  test('a socket that received a packet no query accepted takes no new query', async () => {
    let rejected!: () => void;
    const seen = new Promise<void>((resolve) => (rejected = resolve));
    const onIgnored = (): void => rejected();
    subscribe('signpost:dns:ignored-response', onIgnored);
    const first = client.query('one.test', 'A');
    const [one] = await held.until(1);
    held.send(one!, reply(one!.query, { questions: [{ name: 'evil.test', type: 'A', class: 'IN' }], answers: [a('evil.test', '6.6.6.6')] }));
    await seen; // the forgery reached the socket and was turned away
    unsubscribe('signpost:dns:ignored-response', onIgnored);
    const second = client.query('two.test', 'A');
    const [, two] = await held.until(2);
    expect(two!.remote.port).not.toBe(one!.remote.port);
    held.send(one!, reply(one!.query, { answers: [a('one.test', '127.0.0.1')] }));
    held.send(two!, reply(two!.query, { answers: [a('two.test', '127.0.0.2')] }));
    expect((await first).answers).toMatchObject([{ data: '127.0.0.1' }]);
    expect((await second).answers).toMatchObject([{ data: '127.0.0.2' }]);
  });
});

describe('socket lifetime', () => {
  const target = (held: Held): DnsServer => ({ address: '127.0.0.1', port: held.socket.address().port, family: 4, label: held.server });
  const options = (sockets: UdpSockets) => ({ timeout: 1000, signal: new AbortController().signal, randomizeCase: false, edns: true, sockets });

  test('a socket is replaced after its N queries: the source port changes', async () => {
    held.socket.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      held.socket.send(reply(query, { answers: [a(query.questions![0]!.name, '127.0.0.2')] }), remote.port, remote.address);
    });
    const sockets = new UdpSockets({ maxQueries: 3 });
    try {
      for (let i = 0; i < 7; i++) await exchange(target(held), { name: `q${i}.test`, type: 'A' }, options(sockets));
      // Concurrent queries past the limit go to the next socket too.
      await Promise.all([7, 8, 9, 10].map((i) => exchange(target(held), { name: `q${i}.test`, type: 'A' }, options(sockets))));
    } finally {
      sockets.close();
    }
    const ports = held.asked.map((q) => q.remote.port);
    const runs: number[] = [];
    for (let i = 0; i < ports.length; i++) {
      if (i > 0 && ports[i] === ports[i - 1]) runs[runs.length - 1]!++;
      else runs.push(1);
    }
    expect(runs).toEqual([3, 3, 3, 2]);
    expect(new Set(ports).size).toBe(4);
  });

  test('a socket error fails only the queries in flight on that socket', async () => {
    const dead = createSocket('udp4');
    await new Promise<void>((resolve) => dead.bind(0, '127.0.0.1', resolve));
    const deadPort = dead.address().port;
    dead.close(); // nothing listens there: the kernel answers ICMP port unreachable
    const sockets = new UdpSockets({ maxQueries: 16 });
    try {
      const live = exchange(target(held), { name: 'live.test', type: 'A' }, options(sockets));
      const [asked] = await held.until(1);
      const refused = exchange({ address: '127.0.0.1', port: deadPort, family: 4, label: 'dead' }, { name: 'dead.test', type: 'A' }, options(sockets));
      await expect(refused).rejects.toMatchObject({ kind: 'network', message: expect.stringMatching(/ECONNREFUSED/) });
      held.send(asked!, reply(asked!.query, { answers: [a('live.test', '127.0.0.2')] }));
      expect((await live).answers).toMatchObject([{ data: '127.0.0.2' }]);
    } finally {
      sockets.close();
    }
  });

  test('an idle socket keeps no process alive and closes after the idle time', async () => {
    held.socket.on('message', (message, remote) => {
      held.socket.send(reply(dnsPacket.decode(message)), remote.port, remote.address);
    });
    const before = await quietHandles();
    const sockets = new UdpSockets({ idleMs: 1000, maxQueries: 16 });
    try {
      await exchange(target(held), { name: 'idle.test', type: 'A' }, options(sockets));
      expect(sockets.open).toBe(1);
      // Kept for the next query, but unreferenced: not among the handles that keep a process up.
      expect(openHandles().UDPWrap ?? 0).toBe(before.UDPWrap ?? 0);
      // Used again within the idle time: the same socket, whose idle time starts over (the
      // timer armed at the first idle finds it used since, and waits for the rest).
      await new Promise((resolve) => setTimeout(resolve, 20));
      await exchange(target(held), { name: 'again.test', type: 'A' }, options(sockets));
      expect(new Set(held.asked.map((q) => q.remote.port)).size).toBe(1);
      for (let i = 0; i < 200 && sockets.open > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(sockets.open).toBe(0);
    } finally {
      sockets.close();
    }
  });

  test('by default every query has a source port of its own, on a socket made while the one before waited', async () => {
    held.socket.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      held.socket.send(reply(query, { answers: [a(query.questions![0]!.name, '127.0.0.2')] }), remote.port, remote.address);
    });
    const sockets = new UdpSockets();
    try {
      const spares: number[] = [];
      for (let i = 0; i < 6; i++) {
        await exchange(target(held), { name: `own${i}.test`, type: 'A' }, options(sockets));
        await new Promise((resolve) => setImmediate(resolve));
        // The used socket closed; the spare is open, idle, and takes the next query.
        expect(sockets.open).toBe(1);
        spares.push(sockets.ports[0]!);
      }
      const ports = held.asked.map((q) => q.remote.port);
      expect(new Set(ports).size).toBe(6);
      expect(ports.slice(1)).toEqual(spares.slice(0, 5));
    } finally {
      sockets.close();
    }
  });

  test('a spare socket that receives anything before its first query is never used', async () => {
    held.socket.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      held.socket.send(reply(query, { answers: [a(query.questions![0]!.name, '127.0.0.2')] }), remote.port, remote.address);
    });
    const sockets = new UdpSockets();
    try {
      await exchange(target(held), { name: 'first.test', type: 'A' }, options(sockets));
      await new Promise((resolve) => setImmediate(resolve));
      const [spare] = sockets.ports;
      // Someone found the spare's port: a datagram from the server's own address and port.
      held.socket.send(Buffer.from([0x12, 0x34, 0x81, 0x80]), spare!, '127.0.0.1');
      for (let i = 0; i < 100 && sockets.ports.includes(spare!); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(sockets.ports).not.toContain(spare);
      await exchange(target(held), { name: 'second.test', type: 'A' }, options(sockets));
      expect(held.asked.map((q) => q.remote.port)).not.toContain(spare);
    } finally {
      sockets.close();
    }
  });

  test("the client's sockets close when the client closes, queries in flight or not", async () => {
    held.socket.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      if (query.questions![0]!.name !== 'silent.test') held.socket.send(reply(query), remote.port, remote.address);
    });
    const before = await quietHandles();
    const own = new DnsClient(dnsSettings({ servers: [held.server], timeout: 5000, tries: 1 }));
    await own.query('answered.test', 'A');
    expect(own.openSockets).toBe(1);
    const pending = own.query('silent.test', 'A').catch((error: unknown) => error);
    await held.until(2);
    own.close();
    expect(await pending).toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
    expect(own.openSockets).toBe(0);
    expect(await handlesAbove(before)).toEqual({});
  });
});
