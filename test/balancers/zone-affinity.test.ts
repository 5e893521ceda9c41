import { describe, expect, test } from 'vitest';
import { RoundRobinBalancer } from '../../src/balancers/round-robin.ts';
import { ZoneAffinityBalancer } from '../../src/balancers/zone-affinity.ts';
import { HealthTracker, parseEjectionOptions } from '../../src/health.ts';
import type { EjectionOptions } from '../../src/options.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { count, instance, share } from './helpers.ts';

const N = 40_000;
const local1 = instance('10.0.1.1', { zone: 'a' });
const local2 = instance('10.0.1.2', { zone: 'a' });
const b1 = instance('10.0.2.1', { zone: 'b' });
const b2 = instance('10.0.2.2', { zone: 'b' });
const c1 = instance('10.0.3.1', { zone: 'c' });
const c2 = instance('10.0.3.2', { zone: 'c' });
const six = [local1, local2, b1, b2, c1, c2];

function setup(zone: string | undefined, options: { minLocal?: number; ejection?: EjectionOptions } = {}) {
  const clock = new FakeClock();
  const health = new HealthTracker(parseEjectionOptions(options.ejection ?? {}), clock);
  const ref = { current: zone };
  const balancer = new ZoneAffinityBalancer({
    zone: ref,
    minLocal: options.minLocal,
    create: () => new RoundRobinBalancer(),
    health,
  });
  const eject = (address: string) => {
    const state = health.state({ address, port: 8080 });
    health.onStart(state);
    health.onFailure(state, 'connect');
    return state;
  };
  return { clock, health, ref, balancer, eject };
}

function zoneShares(counts: Map<string, number>) {
  const byZone = { a: 0, b: 0, c: 0, other: 0 };
  for (const [address, n] of counts) {
    const zone = address.startsWith('10.0.1.') ? 'a' : address.startsWith('10.0.2.') ? 'b' : address.startsWith('10.0.3.') ? 'c' : 'other';
    byZone[zone] += n / N;
  }
  return byZone;
}

describe('ZoneAffinityBalancer', () => {
  test('stays in the caller zone with 2 usable local instances', () => {
    const { balancer } = setup('a');
    balancer.update(six);
    expect(balancer.mode).toBe('local');
    const counts = count(balancer, N);
    expect(share(counts, '10.0.1.1', N) + share(counts, '10.0.1.2', N)).toBeGreaterThanOrEqual(0.99);
    expect(Math.abs(share(counts, '10.0.1.1', N) - 0.5)).toBeLessThan(0.02);
  });

  test('spills when a local instance is ejected, giving the local one only its fair share', () => {
    const { balancer, eject } = setup('a');
    balancer.update(six);
    eject('10.0.1.1');
    expect(balancer.mode).toBe('spill');
    const counts = count(balancer, N);
    expect(counts.get('10.0.1.1')).toBeUndefined();
    // Expected share of zone a: 2/6; usable share: 1/5; so a keeps 0.6 and b and c split 0.4.
    const shares = zoneShares(counts);
    expect(Math.abs(shares.a - 0.6)).toBeLessThan(0.02);
    expect(Math.abs(shares.b - 0.2)).toBeLessThan(0.02);
    expect(Math.abs(shares.c - 0.2)).toBeLessThan(0.02);
  });

  test('goes fully remote with every local instance ejected, and back to local after they return', () => {
    const { balancer, eject, clock } = setup('a');
    balancer.update(six);
    eject('10.0.1.1');
    eject('10.0.1.2');
    let shares = zoneShares(count(balancer, N));
    expect(shares.a).toBe(0);
    expect(Math.abs(shares.b - 0.5)).toBeLessThan(0.02);
    clock.advance(30_000);
    expect(balancer.mode).toBe('local');
    shares = zoneShares(count(balancer, N));
    expect(shares.a).toBeCloseTo(1, 9);
  });

  test('spills to the zones with spare capacity, in proportion to it', () => {
    const { balancer, eject } = setup('a', { ejection: { maxEjectedPercent: 100, panicThreshold: 0 } });
    const b3 = instance('10.0.2.3', { zone: 'b' });
    balancer.update([...six, b3]);
    eject('10.0.1.1');
    eject('10.0.1.2');
    eject('10.0.3.1');
    // Usable: b1 b2 b3 c2 (4); expected shares a 2/7, b 3/7, c 2/7; spare b 3/4-3/7, c 1/4-2/7 < 0.
    const shares = zoneShares(count(balancer, N));
    expect(shares.a).toBe(0);
    expect(shares.c).toBe(0);
    expect(shares.b).toBeCloseTo(1, 9);
  });

  test('counts instances without a zone as remote', () => {
    const { balancer, eject } = setup('a');
    const plain1 = instance('10.0.9.1');
    const plain2 = instance('10.0.9.2');
    balancer.update([local1, local2, plain1, plain2]);
    expect(zoneShares(count(balancer, N)).a).toBeCloseTo(1, 9);
    eject('10.0.1.1');
    eject('10.0.1.2');
    expect(zoneShares(count(balancer, N)).other).toBeCloseTo(1, 9);
  });

  test('balances over every zone while the caller zone is unknown, then applies it on update', () => {
    const { balancer, ref } = setup(undefined);
    balancer.update(six);
    expect(balancer.mode).toBe('all');
    expect(Math.abs(zoneShares(count(balancer, N)).a - 1 / 3)).toBeLessThan(0.02);
    ref.current = 'a';
    balancer.update(six);
    expect(zoneShares(count(balancer, N)).a).toBeCloseTo(1, 9);
  });

  test('balances over every zone when the caller zone has no instances', () => {
    const { balancer } = setup('d');
    balancer.update(six);
    expect(balancer.mode).toBe('all');
    expect(Math.abs(zoneShares(count(balancer, N)).b - 1 / 3)).toBeLessThan(0.02);
  });

  test('keeps a lone local instance when it is the zone fair share, and honours minLocal', () => {
    const { balancer } = setup('a');
    balancer.update([local1, b1, c1]);
    expect(zoneShares(count(balancer, N)).a).toBeCloseTo(1, 9);
    const strict = setup('a', { minLocal: 3 });
    strict.balancer.update(six);
    // Two local instances are the zone's fair share of six: still local.
    expect(strict.balancer.mode).toBe('local');
    strict.eject('10.0.2.1');
    expect(strict.balancer.mode).toBe('local');
    strict.eject('10.0.1.1');
    expect(strict.balancer.mode).toBe('spill');
  });

  test('panic mode: with too few usable instances, the ejections are ignored', () => {
    const { balancer, eject } = setup(undefined, { ejection: { maxEjectedPercent: 100, panicThreshold: 50 } });
    balancer.update(six);
    eject('10.0.1.1');
    eject('10.0.1.2');
    eject('10.0.2.1');
    expect(share(count(balancer, N), '10.0.1.1', N)).toBe(0);
    eject('10.0.2.2');
    // 2 of 6 usable is below 50%: every instance is used again.
    expect(Math.abs(share(count(balancer, N), '10.0.1.1', N) - 1 / 6)).toBeLessThan(0.02);
  });

  test('an empty set picks undefined', () => {
    const { balancer } = setup('a');
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
  });

  test('no policy balancer is made before the first instances, and one per zone preferred', () => {
    const made: string[] = [];
    const health = new HealthTracker(parseEjectionOptions({}), new FakeClock());
    const balancer = new ZoneAffinityBalancer({
      zone: { current: 'a' },
      create: () => {
        made.push('policy');
        return new RoundRobinBalancer();
      },
      health,
    });
    balancer.update([]);
    expect(balancer.pick(new Set(['10.0.1.1:8080']))).toBeUndefined();
    expect(made).toEqual([]);
    balancer.update(six);
    expect(made).toEqual(['policy']);
    // One usable local instance of the two needed: the other zones take their share, a balancer each.
    const state = health.state(local2);
    health.onStart(state);
    health.onFailure(state, 'connect');
    expect(balancer.mode).toBe('spill');
    expect(made).toHaveLength(3);
    balancer.update([...six]);
    expect(made).toHaveLength(3);
  });

  test('close stops rebuilding on health changes', () => {
    const { balancer, eject } = setup('a');
    balancer.update(six);
    balancer.close();
    eject('10.0.1.1');
    expect(balancer.mode).toBe('local');
  });
});
