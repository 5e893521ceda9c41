import { describe, expect, test } from 'vitest';
import { RoundRobinBalancer } from '../../src/balancers/round-robin.ts';
import { count, instance, share } from './helpers.ts';

const three = [instance('10.0.0.1'), instance('10.0.0.2'), instance('10.0.0.3')];

describe('RoundRobinBalancer', () => {
  test('spreads picks evenly: each of 3 instances gets a third of 30,000 picks', () => {
    const balancer = new RoundRobinBalancer();
    balancer.update(three);
    const counts = count(balancer, 30_000);
    for (const { address } of three) expect(share(counts, address, 30_000)).toBeCloseTo(1 / 3, 2);
  });

  test('visits every instance once per round', () => {
    const balancer = new RoundRobinBalancer();
    balancer.update(three);
    const round = new Set([balancer.pick(), balancer.pick(), balancer.pick()].map((i) => i?.address));
    expect(round.size).toBe(3);
  });

  test('starts each balancer at a random offset, so a fleet does not all hit the first instance', () => {
    const firsts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const balancer = new RoundRobinBalancer();
      balancer.update(three);
      const address = balancer.pick()?.address ?? 'none';
      firsts.set(address, (firsts.get(address) ?? 0) + 1);
    }
    for (const { address } of three) expect(share(firsts, address, 3000)).toBeGreaterThan(0.28);
  });

  test('uses only the lowest priority present (RFC 2782)', () => {
    const balancer = new RoundRobinBalancer();
    balancer.update([
      instance('10.0.0.1', { priority: 20 }),
      instance('10.0.0.2', { priority: 10 }),
      instance('10.0.0.3', { priority: 10 }),
    ]);
    const counts = count(balancer, 1000);
    expect(counts.get('10.0.0.1')).toBeUndefined();
    expect(counts.get('10.0.0.2')).toBe(500);
    expect(counts.get('10.0.0.3')).toBe(500);
  });

  test('gives undefined for an empty set, and recovers after an update', () => {
    const balancer = new RoundRobinBalancer();
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(three);
    expect(balancer.pick()).toBeDefined();
    balancer.update([instance('10.0.0.9')]);
    expect(balancer.pick()?.address).toBe('10.0.0.9');
    expect(balancer.pick()?.address).toBe('10.0.0.9');
  });
});
