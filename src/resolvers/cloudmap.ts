/**
 * Finds instances with the Cloud Map DiscoverInstances API, checking the cheap
 * DiscoverInstancesRevision first when the cache hands back an earlier answer.
 */
import { channel } from 'node:diagnostics_channel';
import { isIP } from 'node:net';
import type { HttpInstanceSummary } from '@aws-sdk/client-servicediscovery';
import { NotFoundError, ResolveError, SignpostError } from '../errors.ts';
import type { CloudMapHealthStatus } from '../options.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';
import { checkHostname, checkKeys, checkObject, checkOneOf, checkString, invalid } from '../validate.ts';
import { CLOUD_MAP_HEALTH_STATUSES, type CloudMapClient, type CloudMapTarget } from './cloudmap-client.ts';

export {
  CloudMapClient,
  validateCloudMapOptions,
  type CloudMapCallEvent,
  type CloudMapRetryEvent,
} from './cloudmap-client.ts';

/** What one Cloud Map resolver looks up; every field is optional (see {@link CloudMapResolver}). */
export interface CloudMapResolverConfig {
  /** The Cloud Map namespace name. @default the requested name without its first label */
  namespace?: string;
  /** The Cloud Map service name. @default the first label of the requested name */
  service?: string;
  /** @default the client's `healthStatus` (`CloudMapOptions.healthStatus`) */
  healthStatus?: CloudMapHealthStatus;
  /** Only instances whose custom attributes match all of these (`QueryParameters`). */
  queryParameters?: Record<string, string>;
  /** Prefer instances that match these; all if none do (`OptionalParameters`). */
  optionalParameters?: Record<string, string>;
}

/** What a Cloud Map resolution keeps for the next call (the `state` of its {@link Resolution}). */
export interface CloudMapState {
  /** The `InstancesRevision` of the last full DiscoverInstances, when Cloud Map gave one. */
  readonly revision: number | undefined;
  /** When that full DiscoverInstances finished, on the client's clock (ms). */
  readonly fullAt: number;
}

/** Published on `signpost:cloudmap:instance-skipped` for an instance that cannot be used. */
export interface CloudMapSkippedEvent {
  hostname: string;
  namespace: string;
  service: string;
  instanceId: string | undefined;
  reason: string;
}

const skippedChannel = channel('signpost:cloudmap:instance-skipped');

/** Attributes Cloud Map (and ECS) define that become fields of the Instance. */
const IPV4 = 'AWS_INSTANCE_IPV4';
const IPV6 = 'AWS_INSTANCE_IPV6';
const PORT = 'AWS_INSTANCE_PORT';
const ZONE = 'AVAILABILITY_ZONE';
const MAX_WEIGHT = 65_535;

const CONFIG_KEYS = ['namespace', 'service', 'healthStatus', 'queryParameters', 'optionalParameters'] as const;

function checkParameters(path: string, value: unknown): void {
  checkObject(path, value);
  for (const [key, item] of Object.entries(value)) {
    if (key.length === 0 || typeof item !== 'string') throw invalid(`${path}.${key}`, item, 'a string');
  }
}

/**
 * Checks a {@link CloudMapResolverConfig}; throws InvalidArgumentError (SIGNPOST_ERR_INVALID_ARG).
 * Keys other than the resolver's own (`via`, for example) are for the caller to check.
 */
export function validateCloudMapResolverConfig(
  config: unknown,
  path = 'cloudMap',
  extraKeys: readonly string[] = [],
): asserts config is CloudMapResolverConfig {
  checkObject(path, config);
  checkKeys(path, config, [...CONFIG_KEYS, ...extraKeys]);
  if (config.namespace !== undefined) checkHostname(`${path}.namespace`, config.namespace);
  if (config.service !== undefined) {
    checkString(`${path}.service`, config.service);
    if (config.service.includes('.')) throw invalid(`${path}.service`, config.service, 'a Cloud Map service name without dots');
  }
  if (config.healthStatus !== undefined) checkOneOf(`${path}.healthStatus`, config.healthStatus, CLOUD_MAP_HEALTH_STATUSES);
  if (config.queryParameters !== undefined) checkParameters(`${path}.queryParameters`, config.queryParameters);
  if (config.optionalParameters !== undefined) checkParameters(`${path}.optionalParameters`, config.optionalParameters);
}

function readState(resolution: Resolution | undefined): CloudMapState | undefined {
  const state = resolution?.state as Partial<CloudMapState> | undefined;
  if (typeof state !== 'object' || state === null || typeof state.fullAt !== 'number') return undefined;
  return { revision: typeof state.revision === 'number' ? state.revision : undefined, fullAt: state.fullAt };
}

/**
 * A {@link Resolver} over Cloud Map's DiscoverInstances. With `namespace` and `service` set, those
 * are looked up whatever the name; otherwise the name `<service>.<namespace>` is split at its
 * first dot, and a set `namespace` or `service` replaces the part it names (a namespace rule
 * may map `myapp.local` to the Cloud Map namespace `prod.myapp.local`).
 *
 * Instances: `AWS_INSTANCE_IPV4` (else `AWS_INSTANCE_IPV6`) is the address, `AWS_INSTANCE_PORT`
 * the port, `AVAILABILITY_ZONE` the zone, the `weightAttribute` (default `weight`) the weight;
 * every other attribute, including an unused IPv6 address, stays in `attributes`. An instance
 * without a usable address, or with a port that is not one, is skipped and reported on
 * `signpost:cloudmap:instance-skipped`.
 *
 * The answer's `ttl` is `CloudMapOptions.pollInterval`. When the cache hands back an earlier
 * answer, only DiscoverInstancesRevision is called; the full list is fetched again when the
 * revision moved or `fullRefreshInterval` has passed (health changes leave the revision alone).
 */
export class CloudMapResolver implements Resolver {
  readonly #client: CloudMapClient;
  readonly #config: CloudMapResolverConfig;

  constructor(client: CloudMapClient, config: CloudMapResolverConfig = {}) {
    validateCloudMapResolverConfig(config);
    this.#client = client;
    this.#config = { ...config };
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    try {
      return await this.#resolve(name, context);
    } catch (error) {
      // The contract: nothing but a SignpostError leaves a resolver.
      if (error instanceof SignpostError) throw error;
      throw new ResolveError(`${name}: Cloud Map lookup failed unexpectedly: ${(error as Error | null)?.message ?? String(error)}`, {
        hostname: name,
        cause: error,
      });
    }
  }

  async #resolve(name: string, { signal, previous }: ResolveContext): Promise<Resolution> {
    const target = this.#target(name);
    const { fullRefreshInterval, pollInterval } = this.#client.options;
    const clock = this.#client.clock;
    const state = readState(previous);
    // Once a full refresh is due anyway, asking for the revision first would be a wasted call.
    if (
      previous !== undefined &&
      state !== undefined &&
      state.revision !== undefined &&
      clock.now() - state.fullAt < fullRefreshInterval
    ) {
      const revision = await this.#client.discoverInstancesRevision(target, signal);
      if (revision === state.revision && clock.now() - state.fullAt < fullRefreshInterval) {
        return { instances: previous.instances, ttl: pollInterval, state };
      }
    }
    const response = await this.#client.discoverInstances(
      target,
      {
        healthStatus: this.#config.healthStatus ?? this.#client.options.healthStatus,
        queryParameters: this.#config.queryParameters,
        optionalParameters: this.#config.optionalParameters,
      },
      signal,
    );
    const instances: Instance[] = [];
    for (const summary of response.Instances ?? []) {
      const instance = this.#toInstance(summary, target);
      if (instance !== undefined) instances.push(instance);
    }
    const next: CloudMapState = { revision: response.InstancesRevision, fullAt: clock.now() };
    return { instances, ttl: pollInterval, state: next };
  }

  #target(name: string): CloudMapTarget {
    const hostname = name.endsWith('.') ? name.slice(0, -1) : name;
    const dot = hostname.indexOf('.');
    const service = this.#config.service ?? (dot > 0 ? hostname.slice(0, dot) : undefined);
    const namespace = this.#config.namespace ?? (dot > 0 && dot < hostname.length - 1 ? hostname.slice(dot + 1) : undefined);
    if (service === undefined || namespace === undefined) {
      throw new NotFoundError(
        `${name}: not a Cloud Map name of the form <service>.<namespace>: set namespace and service for it in signpost's services`,
        { hostname: name },
      );
    }
    return { hostname: name, namespace, service };
  }

  #toInstance(summary: HttpInstanceSummary, target: CloudMapTarget): Instance | undefined {
    const attributes: Record<string, string> = { ...summary.Attributes };
    const skip = (reason: string): undefined => {
      if (skippedChannel.hasSubscribers) {
        skippedChannel.publish({
          hostname: target.hostname,
          namespace: target.namespace,
          service: target.service,
          instanceId: summary.InstanceId,
          reason,
        } satisfies CloudMapSkippedEvent);
      }
      return undefined;
    };

    const ipv4 = attributes[IPV4];
    const ipv6 = attributes[IPV6];
    let address: string;
    if (ipv4 !== undefined && isIP(ipv4) === 4) {
      address = ipv4;
      delete attributes[IPV4];
    } else if (ipv6 !== undefined && isIP(ipv6) === 6) {
      address = ipv6;
      delete attributes[IPV6];
    } else {
      return skip(
        ipv4 === undefined && ipv6 === undefined
          ? `no ${IPV4} or ${IPV6} attribute`
          : `neither ${IPV4} nor ${IPV6} is an IP address`,
      );
    }

    let port: number | undefined;
    const rawPort = attributes[PORT];
    if (rawPort !== undefined) {
      port = /^\d{1,5}$/.test(rawPort) ? Number(rawPort) : Number.NaN;
      // A wrong port would send traffic to the wrong place: better no instance than that.
      if (!(port >= 1 && port <= 65_535)) return skip(`${PORT} ${JSON.stringify(rawPort)} is not a port`);
      delete attributes[PORT];
    }

    const zone = attributes[ZONE];
    delete attributes[ZONE];

    let weight = 1;
    const weightAttribute = this.#client.options.weightAttribute;
    const rawWeight = attributes[weightAttribute];
    if (rawWeight !== undefined && /^\d{1,5}$/.test(rawWeight) && Number(rawWeight) <= MAX_WEIGHT) {
      weight = Number(rawWeight);
      delete attributes[weightAttribute];
    }

    const instance: {
      -readonly [K in keyof Instance]: Instance[K];
    } = {
      id: summary.InstanceId ?? address,
      address,
      weight,
      priority: 0,
      attributes,
    };
    if (port !== undefined) instance.port = port;
    if (zone !== undefined && zone.length > 0) instance.zone = zone;
    if (summary.HealthStatus !== undefined) instance.healthStatus = summary.HealthStatus;
    return instance;
  }
}
