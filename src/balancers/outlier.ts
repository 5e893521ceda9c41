/**
 * Outlier filtering: instances the health tracker ejected are left out of balancing, unless so
 * few remain that every instance is used (panic mode). A wrapper around any balancer.
 */
import type { HealthMember, HealthTracker } from '../health.ts';
import { channels, type PanicMessage } from '../diagnostics.ts';
import type { Balancer, Instance } from '../types.ts';
import { allowed, anyNotExcluded, keysOf } from './exclude.ts';

const panicChannel = channels.balancerPanic;

const PANIC = 1;
const CLOSED = 2;

/**
 * The part of a balancer that leaves out ejected instances, as a base class so a service's
 * balancer is one object (a name in the cache costs as little heap as it can). Tracked by the
 * health tracker (for `maxEjectedPercent`), it runs `update` again with the same instances when
 * one of them is ejected or returns. While nothing is ejected, filtering looks at no state at all.
 */
export abstract class OutlierFilter implements HealthMember {
  /** The instances of the last `filter`, ejected ones included. */
  instances: readonly Instance[] = [];
  readonly #health: HealthTracker | undefined;
  readonly #name: string;
  /** In panic mode (PANIC), closed (CLOSED): one field for both, since every name has a balancer. */
  #bits = 0;

  constructor(health: HealthTracker | undefined, name = '') {
    this.#health = health;
    this.#name = name;
  }

  abstract update(instances: readonly Instance[]): void;

  /** @internal Called by the health tracker. */
  healthChanged(): void {
    this.update(this.instances);
  }

  /** The usable instances: those not ejected, or all of them in panic mode. */
  protected filter(instances: readonly Instance[]): readonly Instance[] {
    const health = this.#health;
    if (instances !== this.instances) {
      this.instances = instances;
      if (health !== undefined && (this.#bits & CLOSED) === 0) health.track(this);
    }
    if (health === undefined || !health.anyEjected) {
      this.#bits &= ~PANIC;
      return instances;
    }
    let ejected = 0;
    const out: boolean[] = [];
    for (const instance of instances) {
      const gone = health.peek(instance)?.ejected === true;
      out.push(gone);
      if (gone) ejected++;
    }
    if (ejected === 0) {
      this.#bits &= ~PANIC;
      return instances;
    }
    const usable = instances.length - ejected;
    const panic = usable * 100 < instances.length * health.panicThreshold;
    if (panic && (this.#bits & PANIC) === 0 && panicChannel.hasSubscribers) {
      panicChannel.publish({ name: this.#name, usable, total: instances.length } satisfies PanicMessage);
    }
    this.#bits = panic ? this.#bits | PANIC : this.#bits & ~PANIC;
    if (panic) return instances;
    return instances.filter((_, i) => !out[i]);
  }

  /** Whether `close` ran: `update` then changes nothing. */
  protected get closed(): boolean {
    return (this.#bits & CLOSED) !== 0;
  }

  /** Leaves the tracker: no more rebuilds. Returns false when it had already (close is idempotent). */
  protected leave(): boolean {
    if ((this.#bits & CLOSED) !== 0) return false;
    this.#bits |= CLOSED;
    this.#health?.untrack(this);
    return true;
  }
}

/** Balances over the instances that are not ejected, with `inner`. */
export class OutlierBalancer extends OutlierFilter implements Balancer {
  readonly #inner: Balancer;
  #usable: readonly Instance[] = [];
  #usableKeys: readonly string[] | undefined;

  constructor(inner: Balancer, health: HealthTracker, name = '') {
    super(health, name);
    this.#inner = inner;
  }

  update(instances: readonly Instance[]): void {
    if (this.closed) return;
    this.#usable = this.filter(instances);
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
    if (this.leave()) this.#inner.close?.();
  }
}
