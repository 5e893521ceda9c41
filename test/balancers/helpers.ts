import type { Balancer, Instance } from '../../src/types.ts';

export function instance(address: string, extra: Partial<Instance> = {}): Instance {
  return { id: address, address, port: 8080, weight: 1, priority: 0, attributes: {}, ...extra };
}

/** Picks `n` times and counts picks per address. */
export function count(balancer: Balancer, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const picked = balancer.pick();
    const key = picked?.address ?? 'none';
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export function share(counts: Map<string, number>, address: string, n: number): number {
  return (counts.get(address) ?? 0) / n;
}

