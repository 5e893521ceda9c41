import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, test } from 'vitest';
import { AddressPolicy } from '../src/address-policy.ts';
import { CacheEntry, ResolutionCache, parseCacheOptions, type CacheHooks } from '../src/cache.ts';
import { NotFoundError, ResolveError } from '../src/errors.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../src/types.ts';
import { FakeClock, flush } from './support/fake-clock.ts';

const inst = (address: string, port = 80): Instance => ({
  id: address,
  address,
  port,
  weight: 1,
  priority: 0,
  attributes: {},
});

/** A resolver whose answers the test scripts; it counts its calls. */
class Scripted implements Resolver {
  calls = 0;
  contexts: ResolveContext[] = [];
  answer: () => Promise<Resolution> = async () => ({ instances: [inst('10.0.0.1')], ttl: 10_000 });
  resolve(_name: string, context: ResolveContext): Promise<Resolution> {
    this.calls++;
    this.contexts.push(context);
    return this.answer();
  }
}

function setup(cache: Parameters<typeof parseCacheOptions>[0] = {}) {
  const clock = new FakeClock();
  const changes: Array<{ name: string; instances: readonly Instance[] }> = [];
  const evicted: string[] = [];
  const hooks: CacheHooks = {
    onChange: (entry) => changes.push({ name: entry.name, instances: entry.instances }),
    onEvict: (entry) => evicted.push(entry.name),
  };
  const c = new ResolutionCache(parseCacheOptions(cache), clock, hooks);
  return { clock, cache: c, changes, evicted };
}

async function warm(cache: ResolutionCache, resolver: Resolver, name = 'a.test'): Promise<CacheEntry> {
  const entry = cache.entry(name, resolver);
  await cache.ensure(entry);
  return entry;
}

describe('ResolutionCache', () => {
  test('1,000 concurrent cold lookups share one query', async () => {
    const { cache } = setup();
    const r = new Scripted();
    const entry = cache.entry('a.test', r);
    await Promise.all(Array.from({ length: 1000 }, () => cache.ensure(entry)));
    expect(r.calls).toBe(1);
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.1']);
    expect(entry.state).toBe('fresh');
  });

  test('by default a name in use is refreshed as its TTL runs out, served until the answer comes', async () => {
    const { clock, cache, changes } = setup();
    const r = new Scripted();
    let answer: ((resolution: Resolution) => void) | undefined;
    const entry = await warm(cache, r);
    r.answer = () => new Promise((resolve) => (answer = resolve));
    entry.used = true;
    await clock.run(9999);
    expect(r.calls).toBe(1);
    await clock.run(1);
    expect(r.calls).toBe(2); // one query per TTL
    expect(entry.instances).toHaveLength(1); // still served while the refresh is in flight
    await clock.run(500);
    expect(entry.instances).toHaveLength(1);
    answer!({ instances: [inst('10.0.0.9')], ttl: 10_000 });
    await flush();
    expect(entry.state).toBe('fresh');
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.9']);
    expect(changes).toHaveLength(2);
  });

  test('a refresh in flight at expiry that fails turns the entry stale', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    let fail: ((error: Error) => void) | undefined;
    const entry = await warm(cache, r);
    r.answer = () => new Promise((_, reject) => (fail = reject));
    entry.used = true;
    await clock.run(10_000);
    expect(entry.state).toBe('fresh');
    fail!(new ResolveError('timeout', { hostname: 'a.test' }));
    await flush();
    expect(entry.state).toBe('stale');
    expect(entry.instances).toHaveLength(1);
  });

  test('with refreshAhead, a name in use is refreshed before expiry', async () => {
    const { clock, cache } = setup({ refreshAhead: 0.8 });
    const r = new Scripted();
    const entry = await warm(cache, r);
    entry.used = true;
    await clock.run(7999);
    expect(r.calls).toBe(1);
    await clock.run(1);
    expect(r.calls).toBe(2); // at 80% of the 10 s TTL
    expect(entry.state).toBe('fresh');
    expect(entry.instances).toHaveLength(1); // never empty while refreshing
  });

  test('an unused name lapses at expiry and is queried again on next use', async () => {
    const { clock, cache, changes } = setup();
    const r = new Scripted();
    const entry = await warm(cache, r);
    await clock.run(9999);
    expect(entry.instances).toHaveLength(1);
    await clock.run(1);
    expect(entry.state).toBe('cold');
    expect(entry.instances).toHaveLength(0);
    expect(changes.at(-1)?.instances).toHaveLength(0);
    await cache.ensure(entry);
    expect(r.calls).toBe(2);
  });

  test('TTLs are clamped to minTtl and maxTtl', async () => {
    const { clock, cache } = setup({ minTtl: 2000, maxTtl: 60_000 });
    const r = new Scripted();
    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 0 });
    const short = await warm(cache, r, 'short.test');
    await clock.run(1999);
    expect(short.state).toBe('fresh');
    await clock.run(1);
    expect(short.state).toBe('cold');

    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 86_400_000 });
    const long = await warm(cache, r, 'long.test');
    await clock.run(59_999);
    expect(long.state).toBe('fresh');
    await clock.run(1);
    expect(long.state).toBe('cold');
  });

  test('while the registry fails, the last answer is served stale for staleTtl, then dropped', async () => {
    const { clock, cache } = setup({ staleTtl: 30_000, refreshAhead: 0.8 });
    const r = new Scripted();
    const entry = await warm(cache, r);
    r.answer = async () => {
      throw new ResolveError('SERVFAIL', { hostname: 'a.test' });
    };
    entry.used = true;
    await clock.run(10_000); // refresh at 8 s fails; expiry at 10 s
    expect(entry.state).toBe('stale');
    expect(entry.instances).toHaveLength(1);
    expect(entry.error?.code).toBe('SIGNPOST_ERR_RESOLVE');
    await clock.run(29_999);
    expect(entry.state).toBe('stale');
    expect(entry.instances).toHaveLength(1);
    const retries = r.calls;
    expect(retries).toBeGreaterThan(3); // it kept asking, with backoff
    expect(retries).toBeLessThan(12);
    await clock.run(1);
    expect(entry.state).toBe('cold');
    expect(entry.instances).toHaveLength(0);
    expect(entry.error?.code).toBe('SIGNPOST_ERR_RESOLVE');
  });

  test('the registry recovering while stale makes the entry fresh again', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    const entry = await warm(cache, r);
    const good = r.answer;
    r.answer = async () => {
      throw new ResolveError('timeout', { hostname: 'a.test' });
    };
    entry.used = true;
    await clock.run(12_000);
    expect(entry.state).toBe('stale');
    r.answer = async () => ({ instances: [inst('10.0.0.2')], ttl: 10_000 });
    await clock.run(5000);
    expect(entry.state).toBe('fresh');
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.2']);
    expect(entry.error).toBeUndefined();
    r.answer = good;
  });

  test('staleTtl 0 turns serving stale off', async () => {
    const { clock, cache } = setup({ staleTtl: 0 });
    const r = new Scripted();
    const entry = await warm(cache, r);
    r.answer = async () => {
      throw new ResolveError('down', { hostname: 'a.test' });
    };
    entry.used = true;
    await clock.run(10_000);
    expect(entry.state).toBe('cold');
    expect(entry.instances).toHaveLength(0);
  });

  test('not found and no instances are cached for negativeTtl', async () => {
    const { clock, cache } = setup({ negativeTtl: 5000 });
    const r = new Scripted();
    r.answer = async () => {
      throw new NotFoundError('NXDOMAIN', { hostname: 'a.test' });
    };
    const entry = await warm(cache, r);
    expect(entry.state).toBe('negative');
    expect(entry.error?.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(cache.ensure(entry)).toBeUndefined(); // answered from the cache
    await clock.run(4999);
    expect(cache.ensure(entry)).toBeUndefined();
    expect(r.calls).toBe(1);
    await clock.run(1);
    r.answer = async () => ({ instances: [], ttl: 10_000 });
    await cache.ensure(entry);
    expect(r.calls).toBe(2);
    expect(entry.state).toBe('negative');
    expect(entry.error?.code).toBe('SIGNPOST_ERR_NO_INSTANCES');
  });

  test('a name that stops existing is dropped at once (the registry is authoritative)', async () => {
    const { clock, cache } = setup({ refreshAhead: 0.8 });
    const r = new Scripted();
    const entry = await warm(cache, r);
    r.answer = async () => {
      throw new NotFoundError('NXDOMAIN', { hostname: 'a.test' });
    };
    entry.used = true;
    await clock.run(8000);
    expect(entry.state).toBe('negative');
    expect(entry.instances).toHaveLength(0);
  });

  test('the previous resolution is handed back to the resolver', async () => {
    const { clock, cache } = setup({ refreshAhead: 0.8 });
    const r = new Scripted();
    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 10_000, state: { revision: 7 } });
    const entry = await warm(cache, r);
    entry.used = true;
    await clock.run(8000);
    expect(r.contexts[0]?.previous).toBeUndefined();
    expect(r.contexts[1]?.previous?.state).toEqual({ revision: 7 });
  });

  test('an unchanged answer in another order is not a change', async () => {
    const { clock, cache, changes } = setup({ refreshAhead: 0.8 });
    const r = new Scripted();
    let flip = false;
    r.answer = async () => {
      flip = !flip;
      const set = [inst('10.0.0.1'), inst('10.0.0.2'), inst('10.0.0.3')];
      return { instances: flip ? set : set.reverse(), ttl: 10_000 };
    };
    const entry = await warm(cache, r);
    const first = entry.instances;
    entry.used = true;
    await clock.run(8000);
    expect(r.calls).toBe(2);
    expect(changes).toHaveLength(1);
    expect(entry.instances).toBe(first);
  });

  test('resolver bugs (a synchronous throw, a non-signpost rejection) become typed errors', async () => {
    const { cache } = setup();
    const entry = await warm(cache, {
      resolve() {
        throw new TypeError('boom');
      },
    });
    expect(entry.error?.code).toBe('SIGNPOST_ERR_RESOLVE');
    // The foreign error is kept by name only: its message may hold anything.
    expect(entry.error?.cause).toMatchObject({ name: 'TypeError' });
    expect(String((entry.error?.cause as Error).message)).not.toContain('boom');
  });

  test('maxNames bounds the cache; an evicted entry leaves no timer and aborts its query', async () => {
    const { clock, cache, evicted } = setup({ maxNames: 2 });
    const r = new Scripted();
    await warm(cache, r, 'a.test');
    await warm(cache, r, 'b.test');
    await warm(cache, r, 'c.test');
    expect(cache.size).toBe(2);
    expect(evicted).toEqual(['a.test']);
    // One deadline per cached name, all on one clock timer.
    expect(cache.scheduled).toBe(2);
    expect(clock.pending).toBe(1);
    let signal: AbortSignal | undefined;
    r.answer = (() => {
      signal = r.contexts.at(-1)?.signal;
      return new Promise<never>(() => {});
    }) as typeof r.answer;
    const pending = cache.entry('d.test', r);
    void cache.ensure(pending);
    cache.close();
    await flush();
    expect(signal?.aborted).toBe(true);
    expect(cache.scheduled).toBe(0);
    expect(clock.pending).toBe(0);
  });

  test.each([
    [{ minTtl: 0 }],
    [{ minTtl: -1 }],
    [{ minTtl: 1.5 }],
    [{ maxTtl: 'x' }],
    [{ minTtl: 5000, maxTtl: 1000 }],
    [{ staleTtl: -1 }],
    [{ negativeTtl: Number.NaN }],
    [{ maxNames: 0 }],
    [{ refreshAhead: 1.5 }],
    [{ refreshAhead: 0.1 }],
    [{ ttl: 5 }],
    ['fast'],
  ])('invalid cache options %j are rejected with SIGNPOST_ERR_INVALID_ARG', (options) => {
    expect(() => parseCacheOptions(options)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
  });
});

describe('failure caching', () => {
  const servfail = async (): Promise<Resolution> => {
    throw new ResolveError('SERVFAIL', { hostname: 'a.test' });
  };

  test('a cold name the registry fails on: one query, then the error at once until a jittered backoff', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    r.answer = servfail;
    const entry = cache.entry('a.test', r);
    await Promise.all(Array.from({ length: 32 }, () => cache.ensure(entry)));
    expect(r.calls).toBe(1);
    expect(entry.state).toBe('failed');
    expect(entry.error?.code).toBe('SIGNPOST_ERR_RESOLVE');
    // Within the backoff (250 ms ± 25%), callers get the error without a query.
    await clock.run(187);
    expect(cache.ensure(entry)).toBeUndefined();
    expect(r.calls).toBe(1);
    await clock.run(126); // past 250 ms + 25%
    expect(entry.state).toBe('cold');
    await cache.ensure(entry);
    expect(r.calls).toBe(2);
  });

  test('the backoff doubles to about a second: ~1 query per second per failing name, however many callers', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    r.answer = servfail;
    const entry = cache.entry('a.test', r);
    // 32 callers asking every 10 ms for 60 s.
    for (let t = 0; t < 60_000; t += 10) {
      for (let c = 0; c < 32; c++) void cache.ensure(entry);
      await clock.run(10);
    }
    // 250 + 500 + 1000 × n (each ± 25%): 60 s hold at most 3 + 60 / 0.75 queries, on average 61.
    expect(r.calls).toBeGreaterThan(45);
    expect(r.calls).toBeLessThanOrEqual(3 + 60 / 0.75);
  });

  test('a success resets the backoff; NXDOMAIN is negative, not failed', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    r.answer = servfail;
    const entry = cache.entry('a.test', r);
    for (let i = 0; i < 4; i++) {
      await cache.ensure(entry);
      await clock.run(1300);
    }
    expect(entry.retryMs).toBe(1000);
    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 10_000 });
    await cache.ensure(entry);
    expect(entry.state).toBe('fresh');
    expect(entry.retryMs).toBe(0);
    await clock.run(10_000); // unused: lapses
    r.answer = async () => {
      throw new NotFoundError('NXDOMAIN', { hostname: 'a.test' });
    };
    await cache.ensure(entry);
    expect(entry.state).toBe('negative');
  });

  test('stale retries are jittered: a fleet that failed together does not retry together', async () => {
    const times: number[][] = [];
    for (let p = 0; p < 8; p++) {
      const { clock, cache } = setup({ staleTtl: 300_000 });
      const r = new Scripted();
      const entry = await warm(cache, r);
      entry.used = true;
      const at: number[] = [];
      r.answer = async () => {
        at.push(clock.now());
        throw new ResolveError('timeout', { hostname: 'a.test' });
      };
      await clock.run(70_000);
      times.push(at);
    }
    // Each process: the refresh at 10 s, then retries after ~1, 2, 4, 8, 16, 30 s (each ± 25%).
    for (const at of times) {
      expect(at[0]).toBe(10_000);
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      const nominal = [1000, 2000, 4000, 8000, 16_000, 30_000];
      gaps.forEach((gap, i) => {
        expect(gap).toBeGreaterThanOrEqual(nominal[i]! * 0.75 - 1);
        expect(gap).toBeLessThanOrEqual(nominal[i]! * 1.25 + 1);
      });
    }
    const firstRetries = new Set(times.map((at) => at[1]));
    expect(firstRetries.size).toBeGreaterThan(4);
  });
});

describe('the bound never fails a name being resolved', () => {
  test('entries with a query in flight or callers waiting are not evicted; the cache shrinks back after', async () => {
    const { cache, evicted } = setup({ maxNames: 10 });
    const answers: Array<() => void> = [];
    const r = new Scripted();
    r.answer = () =>
      new Promise((resolve) => {
        const address = `10.0.${answers.length >> 8}.${answers.length & 255}`;
        answers.push(() => resolve({ instances: [inst(address)], ttl: 10_000 }));
      });
    const entries = Array.from({ length: 30 }, (_, i) => cache.entry(`n${i}.test`, r));
    const read: Array<Promise<string | undefined>> = entries.map(async (entry) => {
      cache.hold(entry);
      try {
        await cache.ensure(entry);
        return entry.instances[0]?.address;
      } finally {
        cache.release(entry);
      }
    });
    expect(cache.size).toBe(30);
    expect(evicted).toEqual([]);
    for (const answer of answers) answer();
    const addresses = await Promise.all(read);
    expect(addresses.every((a) => a?.startsWith('10.0.'))).toBe(true);
    expect(new Set(addresses).size).toBe(30);
    expect(cache.size).toBe(10);
    expect(evicted).toHaveLength(20);
  });

  test('idle entries go first, least recently used first', async () => {
    const { cache, evicted } = setup({ maxNames: 3 });
    const r = new Scripted();
    await warm(cache, r, 'a.test');
    await warm(cache, r, 'b.test');
    await warm(cache, r, 'c.test');
    await warm(cache, r, 'd.test');
    expect(evicted).toEqual(['a.test']);
    expect(cache.peek('d.test')?.state).toBe('fresh');
  });
});

describe('the address policy, applied to every answer', () => {
  test('hostile addresses and bad ports are left out and reported', async () => {
    const { cache } = setup();
    const skipped: unknown[] = [];
    const onSkip = (message: unknown): void => void skipped.push(message);
    subscribe('signpost:resolve:skipped-instance', onSkip);
    try {
      const r = new Scripted();
      r.answer = async () => ({
        instances: [
          inst('0.0.0.0'),
          inst('255.255.255.255'),
          inst('224.0.0.1'),
          inst('::'),
          inst('ff02::1'),
          inst('169.254.169.254'),
          inst('fe80::1%lo'),
          inst('10.0.0.7', 0),
          inst('10.0.0.8', 70_000),
          inst('10.0.0.1'),
        ],
        ttl: 10_000,
      });
      const entry = await warm(cache, r);
      expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.1']);
      expect(skipped).toHaveLength(9);
      expect(skipped[5]).toMatchObject({ name: 'a.test', address: '169.254.169.254', port: 80, reason: expect.stringMatching(/link-local/) });
    } finally {
      unsubscribe('signpost:resolve:skipped-instance', onSkip);
    }
  });

  test('an answer of only refused addresses is NO_INSTANCES saying why', async () => {
    const { cache } = setup();
    const r = new Scripted();
    r.answer = async () => ({ instances: [inst('169.254.169.254'), inst('0.0.0.0')], ttl: 10_000 });
    const entry = await warm(cache, r);
    expect(entry.state).toBe('negative');
    expect(entry.error?.code).toBe('SIGNPOST_ERR_NO_INSTANCES');
    expect(entry.error?.message).toMatch(/169\.254\.169\.254 \(link-local.*addresses\.allow/);
    expect(entry.error?.message).toMatch(/0\.0\.0\.0 \(unspecified/);
  });

  test('addresses.allow lets a link-local address through', async () => {
    const clock = new FakeClock();
    const c = new ResolutionCache(parseCacheOptions({}), clock, { onChange() {}, onEvict() {} }, new AddressPolicy({ allow: ['169.254.170.2'] }));
    const r = new Scripted();
    r.answer = async () => ({ instances: [inst('169.254.170.2'), inst('169.254.169.254')], ttl: 10_000 });
    const entry = await warm(c, r);
    expect(entry.instances.map((i) => i.address)).toEqual(['169.254.170.2']);
  });

  test('a malformed answer is a typed error, not a crash', async () => {
    const { cache } = setup();
    const entry = await warm(cache, { resolve: async () => ({ ttl: 5 }) as unknown as Resolution });
    expect(entry.error?.code).toBe('SIGNPOST_ERR_RESOLVE');
    const nulls = await warm(cache, { resolve: async () => ({ instances: [null, 7, inst('10.0.0.1')], ttl: 5 }) as unknown as Resolution }, 'b.test');
    expect(nulls.instances.map((i) => i.address)).toEqual(['10.0.0.1']);
  });
});
