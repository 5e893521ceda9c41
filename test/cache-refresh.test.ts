/**
 * The cache's refresh timing at the TTL boundary: DNS answers refreshed 1 s after their TTL (a
 * caching resolver's copy is gone by then), other answers at `refreshAhead`, jitter from the
 * clock, answers served expired asked for again soon, and a late address family joining.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, test } from 'vitest';
import { ResolutionCache, parseCacheOptions } from '../src/cache.ts';
import type { Instance, Resolution, Resolver } from '../src/types.ts';
import { FakeClock, flush } from './support/fake-clock.ts';

const inst = (address: string): Instance => ({ id: address, address, port: 80, weight: 1, priority: 0, attributes: {} });

class Scripted implements Resolver {
  calls = 0;
  answer: () => Promise<Resolution> = async () => ({ instances: [inst('10.0.0.1')], ttl: 10_000 });
  resolve(): Promise<Resolution> {
    this.calls++;
    return this.answer();
  }
}

function setup(clock = new FakeClock(), cache: Parameters<typeof parseCacheOptions>[0] = {}) {
  const changes: string[][] = [];
  const c = new ResolutionCache(parseCacheOptions(cache), clock, {
    onChange: (entry) => changes.push(entry.instances.map((i) => i.address)),
    onEvict: () => {},
  });
  return { clock, cache: c, changes };
}

describe('refresh timing', () => {
  test('a DNS answer is refreshed 1 s after its TTL, not at it: a caching resolver would answer TTL 0 then', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 10_000, dnsTtl: true });
    const entry = cache.entry('a.test', r);
    await cache.ensure(entry);
    entry.used = true;
    await clock.run(10_999);
    expect(r.calls).toBe(1);
    expect(entry.instances).toHaveLength(1); // still served past the TTL, until the refresh answers
    await clock.run(1);
    expect(r.calls).toBe(2);
  });

  test('a TTL 0 DNS answer is kept minTtl, then refreshed a second later: no loop of 1 s TTLs', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 0, dnsTtl: true });
    const entry = cache.entry('a.test', r);
    await cache.ensure(entry);
    for (let i = 0; i < 5; i++) {
      entry.used = true;
      await clock.run(2000);
    }
    expect(r.calls).toBe(6); // one per 2 s
  });

  test('refreshAhead applies to answers without a DNS TTL (Cloud Map), not to DNS answers', async () => {
    const { clock, cache } = setup(new FakeClock(), { refreshAhead: 0.8 });
    const r = new Scripted();
    const plain = cache.entry('plain.test', r);
    await cache.ensure(plain);
    plain.used = true;
    await clock.run(8000);
    expect(r.calls).toBe(2);
    const dns = new Scripted();
    dns.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 10_000, dnsTtl: true });
    const entry = cache.entry('dns.test', dns);
    await cache.ensure(entry);
    entry.used = true;
    await clock.run(10_999);
    expect(dns.calls).toBe(1);
    await clock.run(1);
    expect(dns.calls).toBe(2);
  });

  test('with a clock that gives random numbers, refreshes spread over up to 500 ms (10% of short TTLs) past the point', async () => {
    const points = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      const clock = Object.assign(new FakeClock(), { random: () => ((seed * 7919) % 20) / 20 });
      const { cache } = setup(clock);
      const r = new Scripted();
      r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 30_000, dnsTtl: true });
      const entry = cache.entry('a.test', r);
      await cache.ensure(entry);
      entry.used = true;
      await clock.run(30_999);
      expect(r.calls).toBe(1);
      let at = 30_999;
      while (r.calls === 1) {
        await clock.run(1);
        at += 1;
      }
      expect(at).toBeGreaterThanOrEqual(31_000);
      expect(at).toBeLessThanOrEqual(31_500);
      points.add(at);
    }
    expect(points.size).toBeGreaterThan(5);
  });
});

describe('answers a resolver served expired (EDE 3)', () => {
  test('are served, asked for again after 500 ms, doubling while they stay stale, and reported once', async () => {
    const reports: unknown[] = [];
    const onStale = (message: unknown): void => {
      reports.push(message);
    };
    subscribe('signpost:resolve:stale', onStale);
    try {
      const { clock, cache } = setup();
      const r = new Scripted();
      r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 30_000, dnsTtl: true, stale: true });
      const entry = cache.entry('a.test', r);
      await cache.ensure(entry);
      expect(entry.instances).toHaveLength(1);
      const at: number[] = [];
      for (let t = 0; t <= 4000; t += 50) {
        entry.used = true;
        const before = r.calls;
        await clock.run(50);
        if (r.calls > before) at.push(t + 50);
      }
      expect(at).toEqual([500, 1500, 3500]);
      expect(reports).toHaveLength(1);
      expect((reports[0] as { error: Error }).error.message).toMatch(/a\.test with an expired record/);
      // Fresh again (the retry at 7.5 s): back to the DNS timing, next at 7.5 + 5 + 1 s.
      r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: 5000, dnsTtl: true });
      entry.used = true;
      await clock.run(7500 - 4050);
      expect(r.calls).toBe(5);
      entry.used = true;
      await clock.run(5999);
      expect(r.calls).toBe(5);
      await clock.run(1);
      expect(r.calls).toBe(6);
    } finally {
      unsubscribe('signpost:resolve:stale', onStale);
    }
  });
});

describe('a DNS TTL longer than any seen before for the name', () => {
  test('is asked for again after 500 ms: an expired answer served without EDE gives way; a raised TTL holds up', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    const ttls = [10_000, 30_000, 10_000, 60_000, 60_000, 60_000];
    let i = 0;
    r.answer = async () => ({ instances: [inst('10.0.0.1')], ttl: ttls[Math.min(i++, ttls.length - 1)]!, dnsTtl: true });
    const entry = cache.entry('a.test', r);
    await cache.ensure(entry);
    const at: number[] = [];
    for (let t = 0; t < 100_000; t += 100) {
      entry.used = true;
      const before = r.calls;
      await clock.run(100);
      if (r.calls > before) at.push(t + 100);
    }
    // 10 s (+1): then 30 s, suspect: 500 ms later 10 s; then 60 s, suspect: 500 ms later 60 s again, taken.
    expect(at).toEqual([11_000, 11_500, 22_500, 23_000, 84_000]);
  });
});

describe('a late address family', () => {
  test('joins the set when it comes', async () => {
    const { cache, changes } = setup();
    const r = new Scripted();
    let arrive: (value: Resolution | undefined) => void = () => {};
    r.answer = async () => ({
      instances: [inst('10.0.0.1')],
      ttl: 10_000,
      dnsTtl: true,
      late: new Promise((resolve) => (arrive = resolve)),
    });
    const entry = cache.entry('a.test', r);
    await cache.ensure(entry);
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.1']);
    arrive({ instances: [inst('10.0.0.1'), inst('::1')], ttl: 10_000, dnsTtl: true });
    await flush();
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.1', '::1']);
    expect(changes).toEqual([['10.0.0.1'], ['10.0.0.1', '::1']]);
  });

  test('is dropped when a newer answer came first', async () => {
    const { clock, cache } = setup();
    const r = new Scripted();
    let arrive: (value: Resolution | undefined) => void = () => {};
    r.answer = async () => ({
      instances: [inst('10.0.0.1')],
      ttl: 1000,
      dnsTtl: true,
      late: new Promise((resolve) => (arrive = resolve)),
    });
    const entry = cache.entry('a.test', r);
    await cache.ensure(entry);
    r.answer = async () => ({ instances: [inst('10.0.0.2')], ttl: 10_000, dnsTtl: true });
    entry.used = true;
    await clock.run(2000);
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.2']);
    arrive({ instances: [inst('10.0.0.1'), inst('::1')], ttl: 10_000, dnsTtl: true });
    await flush();
    expect(entry.instances.map((i) => i.address)).toEqual(['10.0.0.2']);
  });
});
