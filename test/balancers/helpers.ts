import type { Clock } from '../../src/clock.ts';
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

interface Timer {
  at: number;
  fn: () => void;
}

/** A clock that moves only when told to, synchronously. */
export class ManualClock implements Clock {
  time = 0;
  readonly timers = new Set<Timer>();

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.time + ms, fn };
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(timer: unknown): void {
    this.timers.delete(timer as Timer);
  }

  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.timers) if (t.at <= target && (next === undefined || t.at < next.at)) next = t;
      if (next === undefined) break;
      this.timers.delete(next);
      this.time = next.at;
      next.fn();
    }
    this.time = target;
  }
}
