import { describe, expect, test } from 'vitest';
import { WeightedBalancer, ZERO_WEIGHT_SHARE } from '../../src/balancers/weighted.ts';
import { count, instance, share } from './helpers.ts';

const N = 40_000;

describe('WeightedBalancer', () => {
  test('picks in proportion to the SRV weights', () => {
    const balancer = new WeightedBalancer();
    balancer.update([
      instance('10.0.0.1', { weight: 1 }),
      instance('10.0.0.2', { weight: 3 }),
      instance('10.0.0.3', { weight: 6 }),
    ]);
    const counts = count(balancer, N);
    expect(share(counts, '10.0.0.1', N)).toBeCloseTo(0.1, 1);
    expect(Math.abs(share(counts, '10.0.0.2', N) - 0.3)).toBeLessThan(0.02);
    expect(Math.abs(share(counts, '10.0.0.3', N) - 0.6)).toBeLessThan(0.02);
  });

  test('uses only the lowest priority group', () => {
    const balancer = new WeightedBalancer();
    balancer.update([
      instance('10.0.0.1', { priority: 1, weight: 100 }),
      instance('10.0.0.2', { priority: 0, weight: 1 }),
      instance('10.0.0.3', { priority: 0, weight: 1 }),
    ]);
    const counts = count(balancer, N);
    expect(counts.get('10.0.0.1')).toBeUndefined();
    expect(Math.abs(share(counts, '10.0.0.2', N) - 0.5)).toBeLessThan(0.02);
  });

  test('gives weight-0 entries a small chance, as RFC 2782 says', () => {
    const balancer = new WeightedBalancer();
    balancer.update([instance('10.0.0.1', { weight: 0 }), instance('10.0.0.2', { weight: 10 })]);
    const n = 200_000;
    const zero = share(count(balancer, n), '10.0.0.1', n);
    expect(zero).toBeGreaterThan(0);
    expect(zero).toBeLessThan(ZERO_WEIGHT_SHARE * 3);
  });

  test('spreads evenly when every weight is 0', () => {
    const balancer = new WeightedBalancer();
    balancer.update([instance('10.0.0.1', { weight: 0 }), instance('10.0.0.2', { weight: 0 })]);
    expect(Math.abs(share(count(balancer, N), '10.0.0.1', N) - 0.5)).toBeLessThan(0.02);
  });

  test('handles empty and single sets', () => {
    const balancer = new WeightedBalancer();
    expect(balancer.pick()).toBeUndefined();
    balancer.update([instance('10.0.0.1')]);
    expect(balancer.pick()?.address).toBe('10.0.0.1');
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
  });
});
