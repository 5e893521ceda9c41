import { describe, expect, test } from 'vitest';
import { LeastRequestBalancer } from '../../src/balancers/least-request.ts';
import type { Instance } from '../../src/types.ts';
import { count, instance, share } from './helpers.ts';

describe('LeastRequestBalancer', () => {
  test('prefers the less loaded of two choices', () => {
    const loads = new Map<string, { inflight: number }>([
      ['10.0.0.1', { inflight: 0 }],
      ['10.0.0.2', { inflight: 10 }],
    ]);
    const balancer = new LeastRequestBalancer((i: Instance) => loads.get(i.address) ?? { inflight: 0 });
    balancer.update([instance('10.0.0.1'), instance('10.0.0.2')]);
    expect(share(count(balancer, 1000), '10.0.0.1', 1000)).toBe(1);
  });

  test('reads live counts without an update: the load objects are resolved once', () => {
    const a = { inflight: 0 };
    const b = { inflight: 0 };
    const c = { inflight: 0 };
    const byAddress: Record<string, { inflight: number }> = { '10.0.0.1': a, '10.0.0.2': b, '10.0.0.3': c };
    const balancer = new LeastRequestBalancer((i) => byAddress[i.address] ?? { inflight: 0 });
    balancer.update([instance('10.0.0.1'), instance('10.0.0.2'), instance('10.0.0.3')]);
    a.inflight = 5;
    b.inflight = 5;
    const n = 30_000;
    const counts = count(balancer, n);
    // c wins whenever it is one of the two drawn: 2 of the 3 pairs.
    expect(Math.abs(share(counts, '10.0.0.3', n) - 2 / 3)).toBeLessThan(0.02);
  });

  test('spreads evenly among equally loaded instances', () => {
    const balancer = new LeastRequestBalancer(() => ({ inflight: 0 }));
    const set = [instance('10.0.0.1'), instance('10.0.0.2'), instance('10.0.0.3')];
    balancer.update(set);
    const n = 30_000;
    const counts = count(balancer, n);
    // Ties go to the first drawn, which is uniform.
    for (const { address } of set) expect(Math.abs(share(counts, address, n) - 1 / 3)).toBeLessThan(0.03);
  });

  test('with simulated requests, keeps in-flight counts balanced', () => {
    const loads = new Map<string, { inflight: number }>();
    const balancer = new LeastRequestBalancer((i) => {
      const load = { inflight: 0 };
      loads.set(i.address, load);
      return load;
    });
    balancer.update([instance('10.0.0.1'), instance('10.0.0.2'), instance('10.0.0.3'), instance('10.0.0.4')]);
    for (let i = 0; i < 400; i++) {
      const picked = balancer.pick();
      const load = loads.get(picked?.address ?? '');
      if (load) load.inflight++;
    }
    const counts = [...loads.values()].map((l) => l.inflight);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(10);
  });

  test('uses only the lowest priority; empty and single sets', () => {
    const balancer = new LeastRequestBalancer(() => ({ inflight: 0 }));
    expect(balancer.pick()).toBeUndefined();
    balancer.update([instance('10.0.0.1', { priority: 5 }), instance('10.0.0.2', { priority: 1 })]);
    expect(share(count(balancer, 100), '10.0.0.2', 100)).toBe(1);
  });
});
