/**
 * Zone affinity: a wrapper around any balancer that keeps requests in the caller's zone (no
 * cross-zone latency or transfer cost) while that zone has enough usable instances.
 *
 * With at least `minLocal` usable same-zone instances, every pick is local. With fewer, the local
 * instances get only their fair share and the rest spills to the other zones, as in Envoy's
 * zone-aware routing. signpost cannot see where the other callers run, so it assumes they are
 * spread over zones like the service's instances are (all of them, ejected ones included): the
 * local zone then keeps `usable share / expected share` of the traffic, and each other zone gets
 * the remainder in proportion to its spare capacity (`usable share - expected share`).
 * Instances with no zone are one more remote zone.
 */
import type { HealthTracker } from '../health.ts';
import type { Balancer, Instance } from '../types.ts';
import { allowed, anyNotExcluded, keysOf } from './exclude.ts';
import { OutlierFilter } from './outlier.ts';

export const DEFAULT_MIN_LOCAL = 2;

/** Where picks go, decided in `update`. */
type Mode = 'all' | 'local' | 'spill';

export interface ZoneAffinityOptions {
  /** The caller's zone; read at every `update`, so it may become known later. */
  zone: { readonly current: string | undefined };
  /** Usable same-zone instances needed to stay local, at least 1. @default 2 */
  minLocal?: number | undefined;
  /** Makes the balancer used within one zone (and over all zones when there is no affinity). */
  create: () => Balancer;
  /** Leaves out ejected instances, and rebuilds when one is ejected or returns. */
  health?: HealthTracker | undefined;
  /** The service name, for diagnostics. */
  name?: string | undefined;
}

interface ZoneGroup {
  total: number;
  usable: Instance[];
}

/** Shared by every balancer that has not spilled yet. */
const NO_SUMS = new Float64Array(0);

export class ZoneAffinityBalancer implements Balancer {
  readonly #zone: { readonly current: string | undefined };
  readonly #minLocal: number;
  readonly #create: () => Balancer;
  readonly #filter: OutlierFilter;
  /** One balancer per zone ('' for no zone), kept across updates so each keeps its position. */
  readonly #byZone = new Map<string, Balancer>();
  #all: Balancer | undefined;
  #instances: readonly Instance[] = [];
  #usable: readonly Instance[] = [];
  #usableKeys: readonly string[] | undefined;
  #mode: Mode = 'all';
  #target: Balancer | undefined;
  #spill: Balancer[] = [];
  /** Cumulative shares of `#spill`, the last one 1. */
  #spillSums = NO_SUMS;
  #closed = false;

  constructor(options: ZoneAffinityOptions) {
    this.#zone = options.zone;
    this.#minLocal = options.minLocal ?? DEFAULT_MIN_LOCAL;
    this.#create = options.create;
    this.#filter = new OutlierFilter(options.health, () => this.update(this.#instances), options.name);
  }

  /** How picks are routed since the last update: for `stats()` and tests. */
  get mode(): Mode {
    return this.#mode;
  }

  update(instances: readonly Instance[]): void {
    if (this.#closed) return;
    this.#instances = instances;
    const usable = this.#filter.filter(instances);
    this.#usable = usable;
    this.#usableKeys = undefined;
    const zone = this.#zone.current;
    if (zone === undefined || usable.length === 0) return this.#useAll(usable);

    const groups = new Map<string, ZoneGroup>();
    for (const instance of instances) {
      const key = instance.zone ?? '';
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = { total: 0, usable: [] }));
      group.total++;
    }
    for (const instance of usable) (groups.get(instance.zone ?? '') as ZoneGroup).usable.push(instance);
    // A caller in a zone the service does not run in has no local instances to prefer.
    const local = zone === '' ? undefined : groups.get(zone);
    if (local === undefined) return this.#useAll(usable);

    this.#dropZonesNotIn(groups);
    const expectedLocal = local.total / instances.length;
    const usableLocal = local.usable.length / usable.length;
    if (local.usable.length > 0 && (local.usable.length >= this.#minLocal || usableLocal >= expectedLocal)) {
      this.#mode = 'local';
      this.#target = this.#zoneBalancer(zone, local.usable);
      return;
    }

    const localShare = usableLocal / expectedLocal;
    const spill: Balancer[] = [];
    const shares: number[] = [];
    if (local.usable.length > 0) {
      spill.push(this.#zoneBalancer(zone, local.usable));
      shares.push(localShare);
    }
    let spare = 0;
    for (const [key, group] of groups) {
      if (key !== zone) spare += Math.max(0, group.usable.length / usable.length - group.total / instances.length);
    }
    for (const [key, group] of groups) {
      if (key === zone || group.usable.length === 0) continue;
      // Rounding can leave no zone with spare capacity: then spread by usable instances.
      const weight =
        spare > 1e-12
          ? Math.max(0, group.usable.length / usable.length - group.total / instances.length) / spare
          : group.usable.length / (usable.length - local.usable.length);
      if (weight <= 0) continue;
      spill.push(this.#zoneBalancer(key, group.usable));
      shares.push((1 - localShare) * weight);
    }
    const sums = new Float64Array(shares.length);
    let sum = 0;
    for (let i = 0; i < shares.length; i++) sums[i] = sum += shares[i] as number;
    for (let i = 0; i < sums.length; i++) sums[i] = (sums[i] as number) / sum;
    sums[sums.length - 1] = 1;
    this.#spill = spill;
    this.#spillSums = sums;
    this.#mode = 'spill';
    this.#target = undefined;
  }

  pick(exclude?: ReadonlySet<string>): Instance | undefined {
    let picked: Instance | undefined;
    if (this.#target !== undefined) picked = this.#target.pick(exclude);
    else {
      const sums = this.#spillSums;
      const r = Math.random();
      let i = 0;
      while ((sums[i] as number) <= r) i++;
      picked = this.#spill[i]?.pick(exclude);
    }
    if (exclude === undefined || allowed(picked, exclude)) return picked;
    // Every instance of the chosen zone was tried: a retry crosses to another zone rather than
    // going back to one that failed.
    return anyNotExcluded(this.#usable, (this.#usableKeys ??= keysOf(this.#usable)), exclude);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#filter.close();
    this.#all?.close?.();
    for (const balancer of this.#byZone.values()) balancer.close?.();
    this.#byZone.clear();
  }

  #useAll(usable: readonly Instance[]): void {
    this.#all ??= this.#create();
    this.#all.update(usable);
    this.#mode = 'all';
    this.#target = this.#all;
  }

  #zoneBalancer(zone: string, instances: readonly Instance[]): Balancer {
    let balancer = this.#byZone.get(zone);
    if (balancer === undefined) this.#byZone.set(zone, (balancer = this.#create()));
    balancer.update(instances);
    return balancer;
  }

  #dropZonesNotIn(groups: Map<string, ZoneGroup>): void {
    for (const [zone, balancer] of this.#byZone) {
      if (!groups.has(zone)) {
        balancer.close?.();
        this.#byZone.delete(zone);
      }
    }
  }
}
