/**
 * Power of two choices over requests in flight (as Finagle's and Envoy's least-request): draw
 * two distinct instances at random and take the one with fewer requests in flight. It avoids
 * the herd that "always the least loaded" causes when many clients see the same counts.
 */
import type { Balancer, Instance } from '../types.ts';
import { keysOf } from './exclude.ts';
import { lowestPriority } from './priority.ts';
import { random } from './random.ts';

/** What least-request reads of an instance: the health tracker's state object, kept live. */
export interface Load {
  readonly inflight: number;
}

export class LeastRequestBalancer implements Balancer {
  readonly #load: (instance: Instance) => Load;
  #instances: readonly Instance[] = [];
  #keys: readonly string[] = [];
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
    this.#keys = keysOf(this.#instances);
    this.#loads = this.#instances.map((instance) => this.#load(instance));
  }

  pick(exclude?: ReadonlySet<string>): Instance | undefined {
    if (exclude !== undefined && exclude.size > 0) return this.#pickExcluding(exclude);
    const n = this.#instances.length;
    if (n <= 1) return this.#instances[0];
    const a = (random() * n) | 0;
    const c = (random() * (n - 1)) | 0;
    // b = c < a ? c : c + 1, without a branch the CPU would mispredict half the time.
    const b = c + (((c - a) >>> 31) ^ 1);
    const loads = this.#loads;
    return this.#instances[(loads[b] as Load).inflight < (loads[a] as Load).inflight ? b : a];
  }

  /** Two choices among the instances not excluded (a retry: off the hot path). */
  #pickExcluding(exclude: ReadonlySet<string>): Instance | undefined {
    const open: number[] = [];
    for (let i = 0; i < this.#instances.length; i++) if (!exclude.has(this.#keys[i]!)) open.push(i);
    if (open.length === 0) return undefined;
    const a = open[(random() * open.length) | 0]!;
    const b = open[(random() * open.length) | 0]!;
    return this.#instances[(this.#loads[b] as Load).inflight < (this.#loads[a] as Load).inflight ? b : a];
  }
}
