import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Discovery } from '../src/discovery.ts';
import type { DiscoveryOptions } from '../src/options.ts';
import { Bind9 } from './fixtures/bind9.ts';
import { FakeClock } from './support/fake-clock.ts';

let bind: Bind9;
const open: Discovery[] = [];

beforeAll(async () => {
  bind = await Bind9.start({
    zones: {
      'test.local': [
        'api 2 IN A 127.0.0.2',
        'api 2 IN A 127.0.0.3',
        'legacy 2 IN A 127.0.0.9',
        'fb 1 IN A 127.0.0.8',
        'newsvc 1 IN TXT "registered, no tasks yet"',
        'empty 1 IN TXT "no addresses"',
        'stale 1 IN A 127.0.0.6',
        'paused 1 IN A 127.0.0.7',
        'cold 1 IN A 127.0.0.10',
        'live 3 IN A 127.0.0.2',
        'v6 1 IN AAAA ::1',
        'srvonly 1 IN SRV 0 1 8080 api.test.local.',
      ].join('\n'),
    },
    brokenZones: ['broken.local'],
  });
});

afterAll(async () => {
  await bind?.close();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

function discovery(options: DiscoveryOptions = {}): Discovery {
  const d = new Discovery({ dns: { servers: [bind.server], timeout: 300, tries: 1 }, ...options });
  open.push(d);
  return d;
}

const addresses = (instances: Array<{ address: string }>) => instances.map((i) => i.address).sort();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Settles after the registry's next answer (or failure) for `name`: with the fake clock, time
 * jumps to the refresh at once, and the query it sends to bind9 is real.
 */
function nextQuery(d: Discovery, name: string): Promise<void> {
  return new Promise((resolve) => {
    const done = (event: { name: string }): void => {
      if (event.name !== name) return;
      offAnswer();
      offError();
      resolve();
    };
    const offAnswer = d.onResolve(done);
    const offError = d.onError(done);
  });
}

describe('Discovery over bind9', () => {
  test('A and AAAA records become instances with the configured port', async () => {
    const d = discovery({ services: { 'api.test.local': { via: 'dns', port: 8080 } } });
    const instances = await d.resolve('api.test.local');
    expect(addresses(instances)).toEqual(['127.0.0.2', '127.0.0.3']);
    expect(instances.every((i) => i.port === 8080 && i.weight === 1 && i.priority === 0)).toBe(true);
    expect(addresses(await d.resolve('v6.test.local'))).toEqual(['::1']);
  });

  test('pickSync is undefined until resolved, then balances without I/O', async () => {
    const d = discovery({ services: { 'api.test.local': { via: 'dns', port: 8080 } } });
    expect(d.pickSync('api.test.local')).toBeUndefined();
    await d.resolve('api.test.local');
    const seen = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const pick = d.pickSync('api.test.local')!;
      seen.set(pick.address, (seen.get(pick.address) ?? 0) + 1);
    }
    expect([...seen.values()]).toEqual([500, 500]);
    expect((await d.pick('api.test.local')).port).toBe(8080);
    expect(d.pickSync('API.test.local.')?.port).toBe(8080); // any spelling of the name
    expect(d.pickSync('other.test.local')).toBeUndefined();
  });

  test('1,000 concurrent resolves of a cold name send one query per record type', async () => {
    const d = discovery();
    const before = { a: bind.queries('cold.test.local', 'A'), aaaa: bind.queries('cold.test.local', 'AAAA') };
    const results = await Promise.all(Array.from({ length: 1000 }, () => d.resolve('cold.test.local')));
    expect(results.every((r) => r[0]?.address === '127.0.0.10')).toBe(true);
    await sleep(50); // named writes its query log asynchronously
    expect(bind.queries('cold.test.local', 'A') - before.a).toBe(1);
    expect(bind.queries('cold.test.local', 'AAAA') - before.aaaa).toBe(1);
    expect(d.stats().queries).toBe(1);
  });

  test('a record added or removed shows once the TTL has run out, not before', async () => {
    // TTL 3 s; a name in use is refreshed 1 s after its DNS TTL runs out (the fake clock draws no jitter).
    const clock = new FakeClock();
    const d = discovery({ clock });
    expect(addresses(await d.resolve('live.test.local'))).toEqual(['127.0.0.2']);
    await bind.update(['update add live.test.local 3 A 127.0.0.5']);
    await clock.run(3999);
    expect(addresses(await d.resolve('live.test.local'))).toEqual(['127.0.0.2']);
    expect(d.stats().queries).toBe(1);
    let answered = nextQuery(d, 'live.test.local');
    await clock.run(1); // t = 4 s: the refresh
    await answered;
    expect(addresses(await d.resolve('live.test.local'))).toEqual(['127.0.0.2', '127.0.0.5']);
    await bind.update(['update delete live.test.local A 127.0.0.2']);
    await clock.run(3999); // the next refresh is at 8 s
    expect(addresses(await d.resolve('live.test.local'))).toEqual(['127.0.0.2', '127.0.0.5']);
    answered = nextQuery(d, 'live.test.local');
    await clock.run(1);
    await answered;
    expect(addresses(await d.resolve('live.test.local'))).toEqual(['127.0.0.5']);
    expect(d.stats().queries).toBe(3);
  });

  test('NXDOMAIN is SIGNPOST_ERR_NOT_FOUND and is cached for negativeTtl', async () => {
    const d = discovery({ cache: { negativeTtl: 60_000 } });
    await expect(d.resolve('missing.test.local')).rejects.toMatchObject({
      code: 'SIGNPOST_ERR_NOT_FOUND',
      hostname: 'missing.test.local',
    });
    await expect(d.resolve('missing.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
    expect(d.stats().queries).toBe(1);
  });

  test('a name that stays missing costs one query per negativeTtl after the first answer, and is found once it exists', async () => {
    const clock = new FakeClock();
    const d = discovery({ clock, cache: { negativeTtl: 5000 } });
    const name = 'appears.test.local';
    await expect(d.resolve(name)).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
    // The first time, A and AAAA go out together (nothing was known).
    expect(bind.queries(name)).toBe(2);
    clock.advance(5001);
    await expect(d.resolve(name)).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
    // Known missing: A alone says it still is.
    expect(bind.queries(name)).toBe(3);
    await bind.update([`update add ${name} 1 A 127.0.0.11`, `update add ${name} 1 AAAA ::1`]);
    clock.advance(5001);
    expect(addresses(await d.resolve(name))).toEqual(['127.0.0.11', '::1']);
    await bind.update([`update delete ${name} A`, `update delete ${name} AAAA`]);
  });

  test('a name with no addresses is SIGNPOST_ERR_NO_INSTANCES and is cached', async () => {
    const d = discovery({ cache: { negativeTtl: 60_000 } });
    await expect(d.resolve('empty.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
    await expect(d.pick('empty.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
    expect(d.stats().queries).toBe(1);
  });

  test('SERVFAIL and REFUSED are SIGNPOST_ERR_RESOLVE', async () => {
    const d = discovery();
    await expect(d.resolve('x.broken.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
    await expect(d.resolve('x.not-served.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
  });

  test('with the server stopped, stale answers are served within staleTtl, then SIGNPOST_ERR_RESOLVE', async () => {
    const clock = new FakeClock();
    const d = discovery({ clock, cache: { staleTtl: 1500 } });
    expect(addresses(await d.resolve('stale.test.local'))).toEqual(['127.0.0.6']);
    await bind.stop();
    try {
      // Past the 1 s TTL, the refresh at 2 s fails: the answer is served stale until 3.5 s.
      const failed = nextQuery(d, 'stale.test.local');
      await clock.run(2000);
      await failed;
      expect(addresses(await d.resolve('stale.test.local'))).toEqual(['127.0.0.6']);
      expect(d.pickSync('stale.test.local')?.address).toBe('127.0.0.6');
      await clock.run(1500); // past staleTtl (the retry meanwhile fails too)
      await expect(d.resolve('stale.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
      expect(d.pickSync('stale.test.local')).toBeUndefined();
    } finally {
      await bind.restart();
    }
    // The failure is remembered for a jittered backoff (at most 1.25 s): then the name resolves.
    await clock.run(1300);
    expect(addresses(await d.resolve('stale.test.local'))).toEqual(['127.0.0.6']);
  });

  test('with the server silent (timeouts), stale answers are served the same way', async () => {
    const clock = new FakeClock();
    const d = discovery({ clock, cache: { staleTtl: 60_000 } });
    await d.resolve('paused.test.local');
    await bind.pause();
    try {
      const failed = nextQuery(d, 'paused.test.local');
      await clock.run(2000); // the refresh times out: the answer is served stale
      await failed;
      expect(addresses(await d.resolve('paused.test.local'))).toEqual(['127.0.0.7']);
      await expect(d.resolve('never-seen.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE' });
    } finally {
      bind.resume();
    }
  });
});

describe('aliases', () => {
  test('redirect: the old name gets the new name only, and every use is counted', async () => {
    const uses: unknown[] = [];
    const onUse = (message: unknown) => uses.push(message);
    subscribe('signpost:alias:use', onUse);
    try {
      const d = discovery({ aliases: { 'old.test.local': 'api.test.local' } });
      expect(addresses(await d.resolve('old.test.local'))).toEqual(['127.0.0.2', '127.0.0.3']);
      d.pickSync('old.test.local');
      d.pickSync('old.test.local');
      expect(d.stats().aliasUses).toEqual({ 'old.test.local': 3 });
      expect(uses).toEqual(Array(3).fill({ alias: 'old.test.local', to: 'api.test.local', mode: 'redirect' }));
    } finally {
      unsubscribe('signpost:alias:use', onUse);
    }
  });

  test('union: old and new together, during dual registration', async () => {
    const d = discovery({ aliases: { 'legacy.test.local': { to: 'api.test.local', mode: 'union' } } });
    expect(addresses(await d.resolve('legacy.test.local'))).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.9']);
  });

  test('fallback: the old name while the new one has no instances, the new one once it has', async () => {
    const clock = new FakeClock();
    const d = discovery({ clock, aliases: { 'fb.test.local': { to: 'newsvc.test.local', mode: 'fallback' } } });
    expect(addresses(await d.resolve('fb.test.local'))).toEqual(['127.0.0.8']);
    await bind.update(['update add newsvc.test.local 1 A 127.0.0.11']);
    await clock.run(4999); // the negative answer for newsvc is kept for negativeTtl (5 s)
    expect(addresses(await d.resolve('fb.test.local'))).toEqual(['127.0.0.8']);
    // Then newsvc is asked again, because the alias is in use, although fb still serves.
    const answered = nextQuery(d, 'newsvc.test.local');
    await clock.run(1);
    await answered;
    expect(addresses(await d.resolve('fb.test.local'))).toEqual(['127.0.0.11']);
  });

  test('an alias whose names are both missing says so', async () => {
    const d = discovery({ aliases: { 'gone.test.local': { to: 'nowhere.test.local', mode: 'union' } } });
    await expect(d.resolve('gone.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
  });
});

describe('routing', () => {
  test('unknown names pass through untouched unless unlisted is "dns"', () => {
    const d = discovery({
      services: { 'api.test.local': { via: 'dns' } },
      namespaces: { 'svc.local': { via: 'dns' } },
      aliases: { 'old.test.local': 'api.test.local' },
    });
    expect(d.handles('api.test.local')).toBe(true);
    expect(d.handles('API.Test.Local.')).toBe(true);
    expect(d.handles('orders.svc.local')).toBe(true);
    expect(d.handles('old.test.local')).toBe(true);
    expect(d.handles('example.com')).toBe(false);
    expect(d.handles('127.0.0.1')).toBe(false);
    expect(d.handles('[::1]')).toBe(false);
    const all = discovery({ unlisted: 'dns' });
    expect(all.handles('example.com')).toBe(true);
    expect(all.handles('127.0.0.1')).toBe(false);
  });

  test('static services, and the SIGNPOST_STATIC override for local development', async () => {
    process.env.SIGNPOST_STATIC = 'api.test.local=127.0.0.1:3000,[::1]:3001; other.local=127.0.0.4';
    try {
      const d = discovery({
        services: {
          'api.test.local': { via: 'dns', port: 8080 },
          'dev.local': { via: 'static', instances: [{ address: '127.0.0.1', port: 3000, zone: 'a' }] },
        },
      });
      expect((await d.resolve('api.test.local')).map((i) => `${i.address}:${i.port}`)).toEqual([
        '127.0.0.1:3000',
        '::1:3001',
      ]);
      expect(await d.resolve('other.local')).toMatchObject([{ address: '127.0.0.4' }]);
      expect(await d.resolve('dev.local')).toMatchObject([{ address: '127.0.0.1', port: 3000, zone: 'a' }]);
    } finally {
      delete process.env.SIGNPOST_STATIC;
    }
  });

  test('a bad SIGNPOST_STATIC is a constructor error naming the variable', () => {
    process.env.SIGNPOST_STATIC = 'api.test.local=localhost:3000';
    try {
      expect(() => new Discovery()).toThrow(/SIGNPOST_STATIC/);
    } finally {
      delete process.env.SIGNPOST_STATIC;
    }
  });

  test('a malformed name is a typed error, not a query', async () => {
    const d = discovery();
    await expect(d.resolve('http://api.test.local/x')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
    await expect(d.resolve('')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
    expect(d.stats().queries).toBe(0);
  });

  test('use after close() is SIGNPOST_ERR_CLOSED; close() is idempotent; pending resolves settle', async () => {
    const d = discovery();
    const pending = d.resolve('cold-close.test.local');
    await d.close();
    await d.close();
    await expect(pending).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
    await expect(d.resolve('api.test.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
    expect(d.pickSync('api.test.local')).toBeUndefined();
  });
});

describe('option validation', () => {
  test.each<[string, unknown]>([
    ['unknown option', { service: {} }],
    ['services not an object', { services: [] }],
    ['service with a bad name', { services: { 'http://x': { via: 'dns' } } }],
    ['service with an unknown via', { services: { 'a.local': { via: 'consul' } } }],
    ['dns port out of range', { services: { 'a.local': { via: 'dns', port: 70_000 } } }],
    ['dns family', { services: { 'a.local': { via: 'dns', family: 5 } } }],
    ['dns unknown key', { services: { 'a.local': { via: 'dns', srv: 'x' } } }],
    ['srv name', { services: { 'a.local': { via: 'srv', srv: 'bad name' } } }],
    ['cloudmap without service', { services: { 'a.local': { via: 'cloudmap', namespace: 'local' } } }],
    ['cloudmap healthStatus', { services: { 'a.local': { via: 'cloudmap', namespace: 'x', service: 'a', healthStatus: 'OK' } } }],
    ['cloudmap queryParameters', { services: { 'a.local': { via: 'cloudmap', namespace: 'x', service: 'a', queryParameters: { v: 1 } } } }],
    ['static empty', { services: { 'a.local': { via: 'static', instances: [] } } }],
    ['static bad address', { services: { 'a.local': { via: 'static', instances: [{ address: 'localhost' }] } } }],
    ['static bad port', { services: { 'a.local': { via: 'static', instances: [{ address: '127.0.0.1', port: 0 }] } } }],
    ['namespace via static', { namespaces: { 'myapp.local': { via: 'static', instances: [] } } }],
    ['namespace srvPrefix', { namespaces: { 'myapp.local': { via: 'srv', srvPrefix: '_http _tcp' } } }],
    ['alias to itself', { aliases: { 'a.local': 'a.local' } }],
    ['alias chain', { aliases: { 'a.local': 'b.local', 'b.local': 'c.local' } }],
    ['alias mode', { aliases: { 'a.local': { to: 'b.local', mode: 'mirror' } } }],
    ['alias target', { aliases: { 'a.local': { to: '' } } }],
    ['unlisted', { unlisted: 'all' }],
    ['cache', { cache: { minTtl: -5 } }],
    ['dns servers', { dns: { servers: ['not-an-ip'] } }],
    ['dns timeout', { dns: { timeout: 0 } }],
    ['cloudMap healthStatus', { cloudMap: { healthStatus: 'GOOD' } }],
  ])('%s → SIGNPOST_ERR_INVALID_ARG', (_label, options) => {
    expect(() => new Discovery(options as DiscoveryOptions)).toThrow(
      expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }),
    );
  });
});

describe('zones', () => {
  test('subnets give DNS-found instances their zone, and zone affinity keeps picks local', async () => {
    const d = discovery({
      services: { 'api.test.local': { via: 'dns', port: 8080 } },
      subnets: { '127.0.0.2/32': 'zone-a', '127.0.0.0/8': 'zone-b' },
      zone: 'zone-b',
      zoneAffinity: { minLocal: 1 },
    });
    expect(await d.zone).toBe('zone-b');
    const instances = await d.resolve('api.test.local');
    expect(Object.fromEntries(instances.map((i) => [i.address, i.zone]))).toEqual({
      '127.0.0.2': 'zone-a',
      '127.0.0.3': 'zone-b',
    });
    for (let i = 0; i < 100; i++) expect(d.pickSync('api.test.local')?.address).toBe('127.0.0.3');
  });
});

describe('hooks, health and error texts', () => {
  test('onError and onResolve tell every answer and failure of the registry, once per query; a throwing listener is contained', async () => {
    const clock = new FakeClock();
    const d = discovery({ clock, cache: { negativeTtl: 60_000 } });
    const answers: Array<[string, number]> = [];
    const errors: Array<[string, string, number]> = [];
    d.onResolve(({ name, instances }) => answers.push([name, instances.length]));
    const off = d.onError(({ name, error, serving }) => errors.push([name, error.code, serving]));
    d.onError(() => {
      throw new Error('a listener of yours');
    });
    await Promise.all([d.resolve('api.test.local'), d.resolve('api.test.local')]);
    await Promise.all([1, 2, 3].map(() => d.resolve('missing.test.local').catch(() => undefined)));
    await d.resolve('x.broken.local').catch(() => undefined);
    expect(answers).toEqual([['api.test.local', 2]]);
    expect(errors).toEqual([
      ['missing.test.local', 'SIGNPOST_ERR_NOT_FOUND', 0],
      ['x.broken.local', 'SIGNPOST_ERR_RESOLVE', 0],
    ]);
    // The refresh of a name in use is an answer too, changed or not (onChange tells only changes).
    const answered = nextQuery(d, 'api.test.local');
    await clock.run(3000);
    await answered;
    expect(answers).toEqual([['api.test.local', 2], ['api.test.local', 2]]);
    off();
    await d.resolve('y.broken.local').catch(() => undefined);
    expect(errors).toHaveLength(2);
    expect(() => d.onError('not a function' as never)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
    expect(() => d.onResolve(undefined as never)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
  });

  test('health is read-only: stats only, nothing a caller could report or close', async () => {
    const d = discovery();
    await d.resolve('api.test.local');
    expect(d.health.stats()).toMatchObject({ ejected: 0, totalEjections: 0 });
    expect(Object.keys(d.health)).toEqual(['stats']);
    expect(Object.isFrozen(d.health)).toBe(true);
    for (const method of ['onFailure', 'onSuccess', 'close', 'forget', 'setProber']) expect(method in d.health).toBe(false);
  });

  test('a DNS name without addresses, but with SRV records, says so; and the other way round', async () => {
    const d = discovery({
      cache: { negativeTtl: 60_000 },
      services: { 'srvonly.test.local': { via: 'dns' }, 'api.test.local': { via: 'srv' }, 'empty.test.local': { via: 'srv' } },
    });
    const viaDns = await d.resolve('srvonly.test.local').catch((e: unknown) => e);
    expect(viaDns).toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
    expect((viaDns as Error).message).toMatch(
      /srvonly\.test\.local has no A\/AAAA records \(NODATA from 127\.0\.0\.1:\d+\), but it has SRV records \(api\.test\.local:8080\): find its instances with via: 'srv'/,
    );
    const viaSrv = await d.resolve('api.test.local').catch((e: unknown) => e);
    expect((viaSrv as Error).message).toMatch(
      /api\.test\.local has no SRV records \(NODATA from .*\), but api\.test\.local has A\/AAAA records \(127\.0\.0\.2, 127\.0\.0\.3\): find its instances with via: 'dns' and a port/,
    );
    const neither = await d.resolve('empty.test.local').catch((e: unknown) => e);
    expect((neither as Error).message).toMatch(/no SRV records .* and empty\.test\.local has no A\/AAAA records either: does the service register SRV records/);
    for (const error of [viaDns, viaSrv, neither]) expect((error as Error).message).not.toMatch(/Cloud Map namespace/);
  });
});

