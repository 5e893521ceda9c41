/**
 * Each instance in turn. Every balancer starts at a random offset: a fleet of clients that all
 * start at the first address would send their first requests, and every request after a
 * synchronized update, to the same instance.
 */
import type { Balancer, Instance } from '../types.ts';
import { lowestPriority } from './priority.ts';

export class RoundRobinBalancer implements Balancer {
  #instances: readonly Instance[] = [];
  #next = -1;

  update(instances: readonly Instance[]): void {
    this.#instances = lowestPriority(instances);
    const n = this.#instances.length;
    if (n === 0) return;
    // The position survives updates, so clients stay spread over the set after a change.
    this.#next = this.#next < 0 ? Math.floor(Math.random() * n) : this.#next % n;
  }

  pick(): Instance | undefined {
    const instances = this.#instances;
    if (instances.length === 0) return undefined;
    const i = this.#next;
    this.#next = i + 1 === instances.length ? 0 : i + 1;
    return instances[i];
  }
}
