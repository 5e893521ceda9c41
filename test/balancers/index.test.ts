import { describe, expect, test } from 'vitest';
import { createBalancer, parseBalancerOptions } from '../../src/balancers/index.ts';
import type { SignpostError } from '../../src/errors.ts';
import { HealthTracker, parseEjectionOptions } from '../../src/health.ts';
import type { Balancer, Instance } from '../../src/types.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { count, instance, share } from './helpers.ts';

const N = 30_000;
const set = [
  instance('10.0.1.1', { zone: 'a', weight: 1 }),
  instance('10.0.1.2', { zone: 'a', weight: 3 }),
  instance('10.0.2.1', { zone: 'b', weight: 1 }),
  instance('10.0.2.2', { zone: 'b', weight: 1 }),
];

function tracker() {
  const clock = new FakeClock();
  return { clock, health: new HealthTracker(parseEjectionOptions({}), clock) };
}

function eject(health: HealthTracker, target: Instance) {
  const state = health.state(target);
  health.onStart(state);
  health.onFailure(state, 'connect');
}

describe('createBalancer', () => {
  test('round-robin by default, over every zone while the zone is unknown', () => {
    const { health } = tracker();
    const balancer = createBalancer('orders.myapp.local', { health });
    balancer.update(set);
    const counts = count(balancer, N);
    for (const { address } of set) expect(share(counts, address, N)).toBeCloseTo(0.25, 2);
  });

  test('weighted, with zone affinity once the zone is known', () => {
    const { health } = tracker();
    const zone = { current: undefined as string | undefined };
    const balancer = createBalancer('orders.myapp.local', { health, zone, balancer: 'weighted' });
    balancer.update(set);
    zone.current = 'a';
    balancer.update(set);
    const counts = count(balancer, N);
    expect(Math.abs(share(counts, '10.0.1.2', N) - 0.75)).toBeLessThan(0.02);
    expect(counts.get('10.0.2.1')).toBeUndefined();
  });

  test('least-request reads the tracker in-flight counts', () => {
    const { health } = tracker();
    const balancer = createBalancer('orders', { health, balancer: 'least-request', zoneAffinity: false });
    const busy = instance('10.0.0.1');
    balancer.update([busy, instance('10.0.0.2')]);
    health.onStart(health.state(busy));
    expect(share(count(balancer, 1000), '10.0.0.2', 1000)).toBe(1);
  });

  test('a custom factory gets the name, once per zone in use', () => {
    const { health } = tracker();
    const names: string[] = [];
    const factory = (name: string): Balancer => {
      names.push(name);
      let instances: readonly Instance[] = [];
      return { update: (next) => void (instances = next), pick: () => instances[0] };
    };
    const balancer = createBalancer('orders', { health, balancer: factory, zone: { current: 'b' } });
    balancer.update(set);
    expect(balancer.pick()?.zone).toBe('b');
    expect(names).toEqual(['orders']);
  });

  test('leaves ejected instances out and takes them back on return, with or without zone affinity', () => {
    for (const zoneAffinity of [false, undefined] as const) {
      const { health, clock } = tracker();
      const balancer = createBalancer('orders', { health, zoneAffinity });
      balancer.update(set);
      eject(health, set[0] as Instance);
      expect(count(balancer, 1000).get('10.0.1.1')).toBeUndefined();
      clock.advance(30_000);
      expect(share(count(balancer, 1000), '10.0.1.1', 1000)).toBeCloseTo(0.25, 2);
      balancer.close?.();
      balancer.close?.();
    }
  });

  test('close stops rebuilds', () => {
    const { health } = tracker();
    const balancer = createBalancer('orders', { health, zoneAffinity: false });
    balancer.update(set);
    balancer.close?.();
    eject(health, set[0] as Instance);
    expect(share(count(balancer, 1000), '10.0.1.1', 1000)).toBeCloseTo(0.25, 2);
  });
});

describe('parseBalancerOptions', () => {
  const bad: [string, Record<string, unknown>][] = [
    ['balancer name', { balancer: 'random' }],
    ['balancer type', { balancer: 42 }],
    ['balancer null', { balancer: null }],
    ['balancer.policy', { balancer: { policy: 'fastest' } }],
    ['balancer unknown key', { balancer: { policy: 'weighted', weight: 'w' } }],
    ['balancer.weightAttribute empty', { balancer: { policy: 'weighted', weightAttribute: '' } }],
    ['balancer.weightAttribute without weighted', { balancer: { policy: 'round-robin', weightAttribute: 'w' } }],
    ['zoneAffinity type', { zoneAffinity: true }],
    ['zoneAffinity unknown key', { zoneAffinity: { min: 2 } }],
    ['zoneAffinity.minLocal 0', { zoneAffinity: { minLocal: 0 } }],
    ['zoneAffinity.minLocal fraction', { zoneAffinity: { minLocal: 1.5 } }],
  ];
  test.each(bad)('%s is rejected with SIGNPOST_ERR_INVALID_ARG', (_, options) => {
    let error: SignpostError | undefined;
    try {
      parseBalancerOptions(options);
    } catch (e) {
      error = e as SignpostError;
    }
    expect(error?.code).toBe('SIGNPOST_ERR_INVALID_ARG');
  });

  test('accepts every valid form', () => {
    for (const balancer of ['round-robin', 'weighted', 'least-request', () => ({ update() {}, pick: () => undefined })]) {
      expect(() => parseBalancerOptions({ balancer })).not.toThrow();
    }
    expect(() =>
      parseBalancerOptions({ balancer: { policy: 'weighted', weightAttribute: 'w' }, zoneAffinity: { minLocal: 1 } }),
    ).not.toThrow();
    expect(() => parseBalancerOptions({ zoneAffinity: false })).not.toThrow();
    expect(() => parseBalancerOptions({})).not.toThrow();
  });
});
