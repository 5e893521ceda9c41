/**
 * Builds the balancer of one service: outlier filtering (ejected instances left out, with panic
 * mode), then zone affinity, then the policy (round-robin, weighted, least-request or the
 * caller's own factory) within each zone.
 */
import type { HealthTracker } from '../health.ts';
import type { BalancerConfig, BalancerName } from '../options.ts';
import type { Balancer, BalancerFactory } from '../types.ts';
import { checkInteger, checkKeys, checkObject, checkOneOf, checkString, invalid } from '../validate.ts';
import { LeastRequestBalancer } from './least-request.ts';
import { OutlierBalancer } from './outlier.ts';
import { RoundRobinBalancer } from './round-robin.ts';
import { WeightedBalancer } from './weighted.ts';
import { ZoneAffinityBalancer } from './zone-affinity.ts';

export { LeastRequestBalancer, type Load } from './least-request.ts';
export { OutlierBalancer, OutlierFilter } from './outlier.ts';
export { lowestPriority } from './priority.ts';
export { RoundRobinBalancer } from './round-robin.ts';
export { WeightedBalancer, ZERO_WEIGHT_SHARE } from './weighted.ts';
export { DEFAULT_MIN_LOCAL, ZoneAffinityBalancer, type ZoneAffinityOptions } from './zone-affinity.ts';

export const BALANCER_NAMES: readonly BalancerName[] = ['round-robin', 'weighted', 'least-request'];

export interface CreateBalancerOptions {
  /** @default 'round-robin' */
  balancer?: BalancerName | BalancerFactory | undefined;
  /**
   * The caller's zone, shared by every balancer; when it becomes known (zone 'auto' resolves
   * after start), call `update` again with the same instances to apply it.
   */
  zone?: { readonly current: string | undefined } | undefined;
  /** @default { minLocal: 2 } */
  zoneAffinity?: { minLocal?: number } | false | undefined;
  health: HealthTracker;
}

const NO_ZONE: { readonly current: string | undefined } = { current: undefined };

/** Factories that close over nothing, shared by every name (a closure per name costs ~100 B of heap). */
const newRoundRobin = (): Balancer => new RoundRobinBalancer();
const newWeighted = (): Balancer => new WeightedBalancer();

/**
 * The balancer of service `name`. It rebuilds itself when one of its instances is ejected or
 * returns; `close()` stops that.
 */
export function createBalancer(name: string, options: CreateBalancerOptions): Balancer {
  const { health } = options;
  const create = policyFactory(name, options.balancer, health);
  if (options.zoneAffinity === false) return new OutlierBalancer(create(), health, name);
  return new ZoneAffinityBalancer({
    zone: options.zone ?? NO_ZONE,
    minLocal: options.zoneAffinity?.minLocal,
    create,
    health,
    name,
  });
}

function policyFactory(name: string, balancer: BalancerName | BalancerFactory | undefined, health: HealthTracker): () => Balancer {
  if (typeof balancer === 'function') return () => balancer(name);
  switch (balancer) {
    case 'weighted':
      return newWeighted;
    case 'least-request':
      return () => new LeastRequestBalancer((instance) => health.state(instance));
    default:
      return newRoundRobin;
  }
}

/** The `balancer` and `zoneAffinity` options, checked, with their defaults. */
export interface BalancerSettings {
  /** A built-in policy, or the caller's factory. */
  readonly policy: BalancerName | BalancerFactory;
  /**
   * `balancer.weightAttribute`, when given: the attribute Cloud Map instances' weights are read
   * from (the same setting as `cloudMap.weightAttribute`).
   */
  readonly weightAttribute: string | undefined;
  readonly zoneAffinity: { readonly minLocal?: number } | false;
}

/**
 * Checks the `balancer` and `zoneAffinity` options and applies their defaults; throws
 * InvalidArgumentError (SIGNPOST_ERR_INVALID_ARG) naming the bad value.
 */
export function parseBalancerOptions(options: { balancer?: unknown; zoneAffinity?: unknown }): BalancerSettings {
  checkBalancerOptions(options);
  const balancer = options.balancer as BalancerName | BalancerConfig | BalancerFactory | undefined;
  const zoneAffinity = options.zoneAffinity as { minLocal?: number } | false | undefined;
  const config = typeof balancer === 'object' ? balancer : undefined;
  return Object.freeze({
    policy: config?.policy ?? (balancer as BalancerName | BalancerFactory | undefined) ?? 'round-robin',
    weightAttribute: config?.weightAttribute,
    zoneAffinity: zoneAffinity === false ? false : Object.freeze({ ...zoneAffinity }),
  });
}

function checkBalancerOptions(options: { balancer?: unknown; zoneAffinity?: unknown }): void {
  const { balancer, zoneAffinity } = options;
  if (balancer !== undefined && typeof balancer !== 'function') {
    if (typeof balancer === 'string') {
      checkOneOf('balancer', balancer, BALANCER_NAMES);
    } else {
      if (typeof balancer !== 'object' || balancer === null || Array.isArray(balancer)) {
        throw invalid('balancer', balancer, `one of ${BALANCER_NAMES.map((n) => `"${n}"`).join(', ')}, { policy, weightAttribute } or a function`);
      }
      checkObject('balancer', balancer);
      checkKeys('balancer', balancer, ['policy', 'weightAttribute']);
      checkOneOf('balancer.policy', balancer.policy, BALANCER_NAMES);
      if (balancer.weightAttribute !== undefined) {
        checkString('balancer.weightAttribute', balancer.weightAttribute);
        if (balancer.policy !== 'weighted') {
          throw invalid('balancer.weightAttribute', balancer.weightAttribute, 'only with policy "weighted"');
        }
      }
    }
  }
  if (zoneAffinity !== undefined && zoneAffinity !== false) {
    checkObject('zoneAffinity', zoneAffinity);
    checkKeys('zoneAffinity', zoneAffinity, ['minLocal']);
    if (zoneAffinity.minLocal !== undefined) checkInteger('zoneAffinity.minLocal', zoneAffinity.minLocal, 1, 1_000_000);
  }
}
