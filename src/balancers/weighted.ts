/**
 * Weighted random within the lowest priority (RFC 2782). The tables are built in `update`; a
 * pick costs the same for 2 instances or 2,000.
 */
import type { Balancer, Instance } from '../types.ts';
import { keysOf } from './exclude.ts';
import { lowestPriority } from './priority.ts';
import { random } from './random.ts';

/**
 * RFC 2782 gives weight-0 targets "a very small chance of being selected" when others have
 * weight: each gets this share of the group's positive weight (about 0.1% of the picks).
 */
export const ZERO_WEIGHT_SHARE = 0.001;

export class WeightedBalancer implements Balancer {
  #instances: readonly Instance[] = [];
  /** The instances' keys, for picks that exclude some: worked out on the first such pick (a retry), not per update. */
  #keys: readonly string[] | undefined;
  #weights: readonly number[] = [];
  // Vose's alias method: slot i is instance i with probability #keep[i], else #alias[i], so a pick
  // is one random number and one comparison whatever the number of instances.
  #keep = new Float64Array(0);
  #alias = new Int32Array(0);

  update(instances: readonly Instance[]): void {
    const group = lowestPriority(instances);
    const n = group.length;
    const weights = group.map(weightOf);
    let positive = 0;
    for (const weight of weights) positive += weight;
    // All zero: nothing to prefer, so every target is equally likely.
    const zeroWeight = positive === 0 ? 1 : positive * ZERO_WEIGHT_SHARE;
    let total = 0;
    for (let i = 0; i < n; i++) total += (weights[i] as number) > 0 ? (weights[i] as number) : zeroWeight;
    const scaled = weights.map((weight) => ((weight > 0 ? weight : zeroWeight) * n) / total);
    const keep = new Float64Array(n).fill(1);
    const alias = new Int32Array(n);
    for (let i = 0; i < n; i++) alias[i] = i;
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i));
    while (small.length > 0 && large.length > 0) {
      const s = small.pop() as number;
      const l = large.pop() as number;
      keep[s] = scaled[s] as number;
      alias[s] = l;
      scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1;
      ((scaled[l] as number) < 1 ? small : large).push(l);
    }
    this.#instances = group;
    this.#keys = undefined;
    this.#weights = weights.map((weight) => (weight > 0 ? weight : zeroWeight));
    this.#keep = keep;
    this.#alias = alias;
  }

  pick(exclude?: ReadonlySet<string>): Instance | undefined {
    const n = this.#instances.length;
    if (exclude !== undefined && exclude.size > 0) return this.#pickExcluding(exclude);
    if (n <= 1) return this.#instances[0];
    const r = random() * n;
    const i = r | 0;
    return this.#instances[r - i < (this.#keep[i] as number) ? i : (this.#alias[i] as number)];
  }

  /** Weighted random over the instances not excluded (a retry: linear, off the hot path). */
  #pickExcluding(exclude: ReadonlySet<string>): Instance | undefined {
    const keys = (this.#keys ??= keysOf(this.#instances));
    let total = 0;
    for (let i = 0; i < this.#instances.length; i++) if (!exclude.has(keys[i]!)) total += this.#weights[i]!;
    if (total === 0) return undefined;
    let r = random() * total;
    let last: Instance | undefined;
    for (let i = 0; i < this.#instances.length; i++) {
      if (exclude.has(keys[i]!)) continue;
      last = this.#instances[i];
      r -= this.#weights[i]!;
      if (r < 0) return last;
    }
    return last;
  }
}

/** {@link Instance.weight} (read from the registry: SRV, `cloudMap.weightAttribute`, static); 0 when not positive. */
function weightOf(instance: Instance): number {
  return Number.isFinite(instance.weight) && instance.weight > 0 ? instance.weight : 0;
}
