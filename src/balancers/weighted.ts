/**
 * Weighted random within the lowest priority (RFC 2782). Picks cost a binary search over prefix
 * sums built in `update`.
 */
import type { Balancer, Instance } from '../types.ts';
import { lowestPriority } from './priority.ts';

/**
 * RFC 2782 gives weight-0 targets "a very small chance of being selected" when others have
 * weight: each gets this share of the group's positive weight (about 0.1% of the picks).
 */
export const ZERO_WEIGHT_SHARE = 0.001;

const MAX_ATTRIBUTE_WEIGHT = 1_000_000;
const INTEGER = /^\d{1,7}$/;

export interface WeightedBalancerOptions {
  /**
   * The attribute that holds each instance's weight, a non-negative integer; instances without
   * a valid one keep {@link Instance.weight}.
   * @default undefined: {@link Instance.weight}
   */
  weightAttribute?: string | undefined;
}

export class WeightedBalancer implements Balancer {
  readonly #weightAttribute: string | undefined;
  #instances: readonly Instance[] = [];
  /** `#sums[i]` is the total weight of instances 0..i. */
  #sums = new Float64Array(0);
  #total = 0;

  constructor(options: WeightedBalancerOptions = {}) {
    this.#weightAttribute = options.weightAttribute;
  }

  update(instances: readonly Instance[]): void {
    const group = lowestPriority(instances);
    const weights = group.map((instance) => this.#weightOf(instance));
    let positive = 0;
    for (const weight of weights) if (weight > 0) positive += weight;
    // All zero: nothing to prefer, so every target is equally likely.
    const zeroWeight = positive === 0 ? 1 : positive * ZERO_WEIGHT_SHARE;
    const sums = new Float64Array(group.length);
    let total = 0;
    for (let i = 0; i < group.length; i++) {
      const weight = weights[i] ?? 0;
      total += weight > 0 ? weight : zeroWeight;
      sums[i] = total;
    }
    this.#instances = group;
    this.#sums = sums;
    this.#total = total;
  }

  pick(): Instance | undefined {
    const n = this.#instances.length;
    if (n <= 1) return this.#instances[0];
    const sums = this.#sums;
    const target = Math.random() * this.#total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((sums[mid] as number) > target) high = mid;
      else low = mid + 1;
    }
    return this.#instances[low];
  }

  #weightOf(instance: Instance): number {
    if (this.#weightAttribute !== undefined) {
      const value = instance.attributes[this.#weightAttribute];
      if (value !== undefined && INTEGER.test(value)) {
        const weight = Number(value);
        if (weight <= MAX_ATTRIBUTE_WEIGHT) return weight;
      }
    }
    return Number.isFinite(instance.weight) && instance.weight > 0 ? instance.weight : 0;
  }
}
