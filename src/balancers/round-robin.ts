/**
 * Each instance in turn. Every balancer starts at a random offset: a fleet of clients that all
 * start at the first address would send their first requests, and every request after a
 * synchronized update, to the same instance.
 */
import type { Balancer, Instance } from '../types.ts';
import { keysOf } from './exclude.ts';
import { lowestPriority } from './priority.ts';

export class RoundRobinBalancer implements Balancer {
  #instances: readonly Instance[] = [];
  #keys: readonly string[] = [];
  #next = -1;

  update(instances: readonly Instance[]): void {
    this.#instances = lowestPriority(instances);
    this.#keys = keysOf(this.#instances);
    const n = this.#instances.length;
    if (n === 0) return;
    // The position survives updates, so clients stay spread over the set after a change.
    this.#next = this.#next < 0 ? Math.floor(Math.random() * n) : this.#next % n;
  }

  pick(exclude?: ReadonlySet<string>): Instance | undefined {
    const instances = this.#instances;
    const n = instances.length;
    if (n === 0) return undefined;
    if (exclude === undefined || exclude.size === 0) {
      const i = this.#next;
      this.#next = i + 1 === n ? 0 : i + 1;
      return instances[i];
    }
    // The next one in turn that was not tried.
    for (let step = 0, i = this.#next; step < n; step++, i = i + 1 === n ? 0 : i + 1) {
      if (exclude.has(this.#keys[i]!)) continue;
      this.#next = i + 1 === n ? 0 : i + 1;
      return instances[i];
    }
    return undefined;
  }
}
