/**
 * Power of two choices over requests in flight (as Finagle's and Envoy's least-request): draw
 * two distinct instances at random and take the one with fewer requests in flight. It avoids
 * the herd that "always the least loaded" causes when many clients see the same counts.
 */
import type { Balancer, Instance } from '../types.ts';
import { lowestPriority } from './priority.ts';

/** What least-request reads of an instance: the health tracker's state object, kept live. */
export interface Load {
  readonly inflight: number;
}

export class LeastRequestBalancer implements Balancer {
  readonly #load: (instance: Instance) => Load;
  #instances: readonly Instance[] = [];
  #loads: readonly Load[] = [];

  /**
   * @param load gives the live load object of an instance; called in `update` only, so a pick
   *   reads counters without a lookup.
   */
  constructor(load: (instance: Instance) => Load) {
    this.#load = load;
  }

  update(instances: readonly Instance[]): void {
    this.#instances = lowestPriority(instances);
    this.#loads = this.#instances.map((instance) => this.#load(instance));
  }

  pick(): Instance | undefined {
    const n = this.#instances.length;
    if (n <= 1) return this.#instances[0];
    const a = Math.floor(Math.random() * n);
    let b = Math.floor(Math.random() * (n - 1));
    if (b >= a) b++;
    const loads = this.#loads;
    return this.#instances[(loads[b] as Load).inflight < (loads[a] as Load).inflight ? b : a];
  }
}
