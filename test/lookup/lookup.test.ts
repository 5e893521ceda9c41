/**
 * discovery.lookup against bind9 on loopback: Node's dns.lookup contract (arguments, callback
 * shapes, options, errors), balancing, ejection and the pass-through of names signpost does not
 * discover. Nothing here reaches getaddrinfo for a test name: pass-through is observed with a spy.
 */
import dns from 'node:dns';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Discovery, discoveryHealth } from '../../src/discovery.ts';
import { SignpostError } from '../../src/errors.ts';
import { Bind9 } from '../fixtures/bind9.ts';

const ZONE = 'lookup.test';
const API = `api.${ZONE}`;
const MIXED = `mixed.${ZONE}`;
const V6 = `six.${ZONE}`;
const ADDRESSES = ['127.0.0.61', '127.0.0.62', '127.0.0.63'];

type Callback = (err: NodeJS.ErrnoException | null, address?: unknown, family?: number) => void;
type Loose = (hostname: unknown, options?: unknown, callback?: unknown) => unknown;

/** Calls a lookup and settles with what its callback got, and whether it was called synchronously. */
function call(lookup: unknown, hostname: unknown, options?: unknown): Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family: unknown; sync: boolean }> {
  return new Promise((resolve) => {
    let returned = false;
    const callback: Callback = (err, address, family) => resolve({ err, address, family, sync: !returned });
    if (options === undefined) (lookup as Loose)(hostname, callback);
    else (lookup as Loose)(hostname, options, callback);
    returned = true;
  });
}

describe('discovery.lookup', () => {
  let bind: Bind9;
  let discovery: Discovery;

  beforeAll(async () => {
    bind = await Bind9.start({
      zones: {
        [ZONE]: [
          ...ADDRESSES.map((a) => `api 30 IN A ${a}`),
          'mixed 30 IN A 127.0.0.61',
          'mixed 30 IN AAAA ::1',
          'six 30 IN AAAA ::1',
          'txtonly 30 IN TXT "no addresses"',
        ].join('\n'),
      },
      brokenZones: ['broken.test'],
    });
    discovery = new Discovery({
      namespaces: { [ZONE]: { via: 'dns' }, 'broken.test': { via: 'dns' } },
      dns: { servers: [bind.server], timeout: 500, tries: 1 },
    });
  });

  afterAll(async () => {
    await discovery?.close();
    await bind?.close();
  });

  it('answers a cold name after one query and a warm one at once, always on a later tick', async () => {
    const cold = await call(discovery.lookup, API);
    expect(cold.err).toBeNull();
    expect(ADDRESSES).toContain(cold.address);
    expect(cold.family).toBe(4);
    expect(cold.sync).toBe(false);
    const warm = await call(discovery.lookup, API, { family: 4 });
    expect(ADDRESSES).toContain(warm.address);
    expect(warm.sync).toBe(false);
  });

  it('spreads calls evenly over the instances, from any spelling of the name', async () => {
    const counts = new Map<unknown, number>();
    for (let i = 0; i < 300; i++) {
      const { address } = await call(discovery.lookup, i % 2 === 0 ? API : `API.${ZONE}.`);
      counts.set(address, (counts.get(address) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(ADDRESSES);
    for (const count of counts.values()) expect(count).toBe(100);
  });

  it('with all: true, gives every address, the balanced one first', async () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const { err, address } = await call(discovery.lookup, API, { all: true });
      expect(err).toBeNull();
      const list = address as dns.LookupAddress[];
      expect(list.map((a) => a.address).sort()).toEqual(ADDRESSES);
      expect(list.every((a) => a.family === 4)).toBe(true);
      firsts.add(list[0]!.address);
    }
    expect(firsts.size).toBe(3);
  });

  it('leaves an ejected instance out, and takes it back when it returns', async () => {
    const d = new Discovery({
      namespaces: { [ZONE]: { via: 'dns' } },
      dns: { servers: [bind.server], timeout: 500, tries: 1 },
      ejection: { baseEjectionTime: 200, maxEjectionTime: 200 },
    });
    try {
      await d.resolve(API);
      const health = discoveryHealth(d);
      const state = health.state({ address: '127.0.0.62' });
      health.onStart(state);
      health.onFailure(state, 'connect');
      expect(state.ejected).toBe(true);
      for (let i = 0; i < 30; i++) expect((await call(d.lookup, API)).address).not.toBe('127.0.0.62');
      const { address: all } = await call(d.lookup, API, { all: true });
      expect((all as dns.LookupAddress[]).map((a) => a.address).sort()).toEqual(['127.0.0.61', '127.0.0.63']);
      await vi.waitFor(() => expect(state.ejected).toBe(false), { timeout: 5000 });
      const seen = new Set<unknown>();
      for (let i = 0; i < 6; i++) seen.add((await call(d.lookup, API)).address);
      expect(seen.has('127.0.0.62')).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('honours family, order, verbatim and V4MAPPED on a name with both families', async () => {
    await discovery.resolve(MIXED);
    for (let i = 0; i < 4; i++) {
      expect(await call(discovery.lookup, MIXED, 4)).toMatchObject({ address: '127.0.0.61', family: 4 });
      expect(await call(discovery.lookup, MIXED, { family: 'IPv6' })).toMatchObject({ address: '::1', family: 6 });
      expect(await call(discovery.lookup, MIXED, { order: 'ipv4first' })).toMatchObject({ address: '127.0.0.61', family: 4 });
      expect(await call(discovery.lookup, MIXED, { order: 'ipv6first' })).toMatchObject({ address: '::1', family: 6 });
      expect(await call(discovery.lookup, MIXED, { verbatim: false })).toMatchObject({ address: '127.0.0.61', family: 4 });
    }
    const v4first = await call(discovery.lookup, MIXED, { all: true, order: 'ipv4first' });
    expect(v4first.address).toEqual([
      { address: '127.0.0.61', family: 4 },
      { address: '::1', family: 6 },
    ]);
    const only6 = await call(discovery.lookup, MIXED, { all: true, family: 6 });
    expect(only6.address).toEqual([{ address: '::1', family: 6 }]);
    // IPv6 asked of an IPv4-only name: nothing, unless V4MAPPED maps them.
    const none = await call(discovery.lookup, API, { family: 6 });
    expect(none.err).toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: API });
    expect((none.err!.cause as SignpostError).code).toBe('SIGNPOST_ERR_NO_INSTANCES');
    const mapped = await call(discovery.lookup, API, { family: 6, hints: dns.V4MAPPED });
    expect(mapped.family).toBe(6);
    expect(ADDRESSES.map((a) => `::ffff:${a}`)).toContain(mapped.address);
    const mappedAll = await call(discovery.lookup, MIXED, { family: 6, all: true, hints: dns.V4MAPPED | dns.ALL });
    expect((mappedAll.address as dns.LookupAddress[]).map((a) => a.address).sort()).toEqual(['::1', '::ffff:127.0.0.61']);
    expect(await call(discovery.lookup, V6, { all: true })).toMatchObject({ address: [{ address: '::1', family: 6 }] });
  });

  it('fails as getaddrinfo does, with the SignpostError as cause: ENOTFOUND, EAI_AGAIN, EAI_FAIL', async () => {
    const missing = await call(discovery.lookup, `nope.${ZONE}`);
    expect(missing.err).toBeInstanceOf(Error);
    expect(missing.err).toMatchObject({ code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', hostname: `nope.${ZONE}` });
    expect(missing.err!.message).toMatch(new RegExp(`^getaddrinfo ENOTFOUND nope\\.${ZONE} \\(SIGNPOST_ERR_NOT_FOUND: `));
    expect(missing.err!.cause).toBeInstanceOf(SignpostError);
    expect(missing.sync).toBe(false);
    // The own properties a getaddrinfo error has, and no others.
    expect(Object.keys(missing.err!).sort()).toEqual(['code', 'errno', 'hostname', 'syscall']);

    const empty = await call(discovery.lookup, `txtonly.${ZONE}`, { all: true });
    expect(empty.err).toMatchObject({ code: 'ENOTFOUND' });
    expect((empty.err!.cause as SignpostError).code).toBe('SIGNPOST_ERR_NO_INSTANCES');

    const servfail = await call(discovery.lookup, 'x.broken.test');
    expect(servfail.err).toMatchObject({ code: 'EAI_AGAIN', errno: -3001, syscall: 'getaddrinfo', hostname: 'x.broken.test' });
    expect((servfail.err!.cause as SignpostError).code).toBe('SIGNPOST_ERR_RESOLVE');

    const closed = new Discovery({ namespaces: { [ZONE]: { via: 'dns' } }, dns: { servers: [bind.server] } });
    await closed.close();
    const afterClose = await call(closed.lookup, API);
    expect(afterClose.err).toMatchObject({ code: 'EAI_FAIL', syscall: 'getaddrinfo' });
    expect((afterClose.err!.cause as SignpostError).code).toBe('SIGNPOST_ERR_CLOSED');
  });

  it('works with util.promisify as dns.lookup does', async () => {
    const lookup = promisify(discovery.lookup) as unknown as (hostname: string, options?: dns.LookupOptions) => Promise<unknown>;
    const one = (await lookup(API)) as unknown as dns.LookupAddress;
    expect(ADDRESSES).toContain(one.address);
    expect(one.family).toBe(4);
    const all = (await lookup(API, { all: true })) as unknown as dns.LookupAddress[];
    expect(all).toHaveLength(3);
    await expect(lookup(`nope.${ZONE}`)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('passes names it does not discover, and localhost, to dns.lookup as they came', async () => {
    const spy = vi.spyOn(dns, 'lookup').mockImplementation(((_h: string, o: unknown, cb?: Callback) => {
      process.nextTick((cb ?? o) as Callback, null, '192.0.2.1', 4);
    }) as unknown as typeof dns.lookup);
    try {
      const options = { family: 4, hints: dns.ADDRCONFIG };
      const other = await call(discovery.lookup, 'db.elsewhere.example', options);
      expect(other).toMatchObject({ err: null, address: '192.0.2.1', family: 4 });
      expect(spy).toHaveBeenCalledTimes(1);
      expect(spy.mock.calls[0]![0]).toBe('db.elsewhere.example');
      expect(spy.mock.calls[0]![1]).toBe(options);
      await call(discovery.lookup, 'localhost');
      expect(spy.mock.calls[1]![0]).toBe('localhost');
      // A discovered name never reaches it.
      await call(discovery.lookup, API);
      expect(spy).toHaveBeenCalledTimes(2);
      // localhost is the system's even when every other name is discovered (RFC 6761).
      const everything = new Discovery({ unlisted: 'dns', dns: { servers: [bind.server] } });
      await call(everything.lookup, 'LocalHost.');
      await call(everything.lookup, 'app.localhost');
      expect(spy.mock.calls.slice(2).map((c) => c[0])).toEqual(['LocalHost.', 'app.localhost']);
      await everything.close();
      // Installed as dns.lookup itself, a lookup does not call itself for other names.
      spy.mockRestore();
      const unlisted = new Discovery({ dns: { servers: [bind.server] } });
      const original = dns.lookup;
      dns.lookup = unlisted.lookup as typeof dns.lookup;
      try {
        expect(await call(dns.lookup, '127.0.0.1')).toMatchObject({ err: null, address: '127.0.0.1', family: 4 });
      } finally {
        dns.lookup = original;
        await unlisted.close();
      }
    } finally {
      spy.mockRestore();
    }
  });

  describe('conformance with dns.lookup where Node answers without DNS', () => {
    const inputs: Array<[unknown, unknown]> = [];
    for (const host of ['127.0.0.1', '::1', '192.0.2.7', 'fe80::1']) {
      for (const options of [
        undefined,
        0,
        4,
        6,
        {},
        null,
        { all: true },
        { family: 4 },
        { family: 'IPv6', all: true },
        { hints: dns.ADDRCONFIG | dns.V4MAPPED },
        { order: 'ipv6first', all: true },
        { verbatim: false },
      ]) {
        inputs.push([host, options]);
      }
    }

    it('gives the same answers for IP literals and localhost, with every option', async () => {
      for (const [host, options] of [...inputs, ['localhost', { all: true }] as [unknown, unknown], ['localhost', undefined] as [unknown, unknown]]) {
        const ours = await call(discovery.lookup, host, options);
        const node = await call(dns.lookup, host, options);
        expect(ours, `${String(host)} ${JSON.stringify(options)}`).toEqual(node);
      }
    });

    it('throws the same errors for bad arguments, for discovered names too', () => {
      const bad: unknown[][] = [
        [API, { family: 5 }, () => undefined],
        [API, { family: '4' }, () => undefined],
        [API, { hints: 9999 }, () => undefined],
        [API, { hints: '1' }, () => undefined],
        [API, { all: 'yes' }, () => undefined],
        [API, { verbatim: 1 }, () => undefined],
        [API, { order: 'random' }, () => undefined],
        [API, 5, () => undefined],
        [API, 'x', () => undefined],
        [API, {}, 'not a function'],
        [API, 4],
        [API],
        [42, () => undefined],
        [{ host: API }, {}, () => undefined],
        ['127.0.0.1', { family: 5 }, () => undefined],
      ];
      for (const args of bad) {
        const thrown = (fn: unknown): unknown => {
          try {
            (fn as (...a: unknown[]) => unknown)(...args);
          } catch (error) {
            return error;
          }
          return undefined;
        };
        const node = thrown(dns.lookup) as NodeJS.ErrnoException;
        const ours = thrown(discovery.lookup) as NodeJS.ErrnoException;
        expect(node, JSON.stringify(args.map(String))).toBeInstanceOf(Error);
        expect(ours?.constructor, JSON.stringify(args.map(String))).toBe(node.constructor);
        expect(ours.code).toBe(node.code);
        expect(ours.message).toBe(node.message);
      }
    });

    it('answers the empty name as Node does', () => {
      for (const options of [{ all: true }, 6]) {
        let node: unknown;
        let ours: unknown;
        try {
          dns.lookup('', options as dns.LookupOptions, () => undefined);
        } catch (error) {
          node = error;
        }
        try {
          discovery.lookup('', options as dns.LookupOptions, () => undefined);
        } catch (error) {
          ours = error;
        }
        expect(ours).toEqual(node);
      }
    });
  });
});
