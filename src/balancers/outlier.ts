/**
 * Outlier filtering: instances the health tracker ejected are left out of balancing, unless so
 * few remain that every instance is used (panic mode). A wrapper around any balancer.
 */
import { channel } from 'node:diagnostics_channel';
import type { HealthGroup, HealthTracker } from '../health.ts';
import type { Balancer, Instance } from '../types.ts';
import { allowed, anyNotExcluded, keysOf } from './exclude.ts';

/** The message of `signpost:balancer:panic`, published when a set enters panic mode. */
export interface PanicMessage {
  /** The service name. */
  readonly name: string;
  /** Instances not ejected. */
  readonly usable: number;
  /** Instances in all. */
  readonly total: number;
}

const panicChannel = channel('signpost:balancer:panic');

/**
 * Keeps one balancer's view of its instances' health: registers them with the tracker (for
 * `maxEjectedPercent`) and calls `onChange` when one of them is ejected or returns.
 */
export class OutlierFilter {
  readonly #group: HealthGroup | undefined;
  readonly #panicThreshold: number;
  readonly #name: string;
  #panic = false;

  constructor(health: HealthTracker | undefined, onChange: () => void, name = '') {
    this.#name = name;
    this.#group = health?.group(onChange);
    this.#panicThreshold = health?.panicThreshold ?? 0;
  }

  /** Whether the last `filter` ignored ejections because too few instances were usable. */
  get panic(): boolean {
    return this.#panic;
  }

  /** The usable instances: those not ejected, or all of them in panic mode. */
  filter(instances: readonly Instance[]): readonly Instance[] {
    if (this.#group === undefined) return instances;
    const states = this.#group.set(instances);
    let ejected = 0;
    for (const state of states) if (state.ejected) ejected++;
    if (ejected === 0) {
      this.#panic = false;
      return instances;
    }
    const usable = instances.length - ejected;
    const panic = usable * 100 < instances.length * this.#panicThreshold;
    if (panic && !this.#panic && panicChannel.hasSubscribers) {
      panicChannel.publish({ name: this.#name, usable, total: instances.length } satisfies PanicMessage);
    }
    this.#panic = panic;
    if (panic) return instances;
    return instances.filter((_, i) => !states[i]?.ejected);
  }

  close(): void {
    this.#group?.close();
  }
}

/** Balances over the instances that are not ejected, with `inner`. */
export class OutlierBalancer implements Balancer {
  readonly #inner: Balancer;
  readonly #filter: OutlierFilter;
  #instances: readonly Instance[] = [];
  #usable: readonly Instance[] = [];
  #usableKeys: readonly string[] | undefined;
  #closed = false;

  constructor(inner: Balancer, health: HealthTracker, name = '') {
    this.#inner = inner;
    this.#filter = new OutlierFilter(health, () => this.update(this.#instances), name);
  }

  update(instances: readonly Instance[]): void {
    if (this.#closed) return;
    this.#instances = instances;
    this.#usable = this.#filter.filter(instances);
    this.#usableKeys = undefined;
    this.#inner.update(this.#usable);
  }

  pick(exclude?: ReadonlySet<string>): Instance | undefined {
    const picked = this.#inner.pick(exclude);
    if (exclude === undefined || allowed(picked, exclude)) return picked;
    // A policy that does not take `exclude` (a custom one): any usable instance not tried yet.
    return anyNotExcluded(this.#usable, (this.#usableKeys ??= keysOf(this.#usable)), exclude);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#filter.close();
    this.#inner.close?.();
  }
}
