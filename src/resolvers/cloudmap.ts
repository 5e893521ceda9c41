/**
 * Finds instances with the Cloud Map DiscoverInstances API, checking the cheap
 * DiscoverInstancesRevision first when the cache hands back an earlier answer of a service
 * without health checks.
 */
import { isIP } from 'node:net';
import type { HttpInstanceSummary } from '@aws-sdk/client-servicediscovery';
import { channels, type CloudMapSkippedEvent } from '../diagnostics.ts';
import { NotFoundError, ResolveError, SignpostError } from '../errors.ts';
import type { CloudMapServiceConfig } from '../options.ts';
import { normalizeName } from '../routing.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';
import { where, type CloudMapClient, type CloudMapTarget } from './cloudmap-client.ts';

export { CloudMapClient, parseCloudMapOptions, type CloudMapSettings } from './cloudmap-client.ts';

/** What one Cloud Map resolver looks up; every field is optional (see {@link CloudMapResolver}). */
/**
 * What one Cloud Map resolver looks up: the fields of a `via: 'cloudmap'` service, each optional
 * (see {@link CloudMapResolver}). Without `namespace`, the requested name without its first label;
 * without `service`, its first label; `healthStatus` and `ownerAccount` default to the client's.
 */
export type CloudMapResolverConfig = Partial<Omit<CloudMapServiceConfig, 'via'>>;

/**
 * Looks up the addresses of a DNS name, for instances registered by name (`AWS_ALIAS_DNS_NAME`,
 * `AWS_INSTANCE_CNAME`): A and AAAA records as instances with an `address`, and their TTL in
 * milliseconds. signpost's `via: 'dns'` resolver is one.
 */
export interface AddressLookup {
  resolve(name: string, context: ResolveContext): Promise<Resolution>;
}

/** What a Cloud Map resolution keeps for the next call (the `state` of its {@link Resolution}). */
export interface CloudMapState {
  /** The `InstancesRevision` of the last full DiscoverInstances, when Cloud Map gave one. */
  readonly revision: number | undefined;
  /** When that full DiscoverInstances finished, on the client's clock (ms). */
  readonly fullAt: number;
  /**
   * Revision-only polls left before the next full DiscoverInstances. Counting polls rather than
   * time keeps the full calls of many names spread out: after an outage they do not all fall
   * due at once.
   */
  readonly pollsToFull: number;
  /** Whether the service's instances report health (HEALTHY/UNHEALTHY): then polls are full calls. */
  readonly healthChecked: boolean;
  /** The instances of that call, kept only when some are registered by DNS name (re-resolved as their TTLs run out). */
  readonly summaries?: readonly HttpInstanceSummary[] | undefined;
  /** The addresses found for those DNS names, and when (client clock, ms) they expire. */
  readonly names?: ReadonlyMap<string, NameAnswer> | undefined;
}

interface NameAnswer {
  readonly addresses: readonly string[];
  readonly expiresAt: number;
}

const skippedChannel = channels.cloudMapInstanceSkipped;

/** Attributes Cloud Map (and ECS) define that become fields of the Instance. */
const IPV4 = 'AWS_INSTANCE_IPV4';
const IPV6 = 'AWS_INSTANCE_IPV6';
const ALIAS = 'AWS_ALIAS_DNS_NAME';
const CNAME = 'AWS_INSTANCE_CNAME';
const PORT = 'AWS_INSTANCE_PORT';
const ZONE = 'AVAILABILITY_ZONE';
const MAX_WEIGHT = 65_535;
/** A DNS name whose lookup failed keeps its last addresses, asked again this soon (ms). */
const NAME_RETRY_MS = 5000;

function readState(resolution: Resolution | undefined): CloudMapState | undefined {
  const state = resolution?.state as Partial<CloudMapState> | undefined;
  if (typeof state !== 'object' || state === null || typeof state.fullAt !== 'number') return undefined;
  return {
    revision: typeof state.revision === 'number' ? state.revision : undefined,
    fullAt: state.fullAt,
    pollsToFull: typeof state.pollsToFull === 'number' ? state.pollsToFull : 0,
    healthChecked: state.healthChecked === true,
    summaries: Array.isArray(state.summaries) ? state.summaries : undefined,
    names: state.names instanceof Map ? state.names : undefined,
  };
}

/** Whether any instance reports a health status: services without health checks report none (or UNKNOWN). */
function reportsHealth(summaries: readonly HttpInstanceSummary[]): boolean {
  return summaries.some((s) => s.HealthStatus === 'HEALTHY' || s.HealthStatus === 'UNHEALTHY');
}

/**
 * A {@link Resolver} over Cloud Map's DiscoverInstances. With `namespace` and `service` set, those
 * are looked up whatever the name; otherwise the name `<service>.<namespace>` is split at its
 * first dot, and a set `namespace` or `service` replaces the part it names (a namespace rule
 * may map `myapp.local` to the Cloud Map namespace `prod.myapp.local`).
 *
 * Instances: `AWS_INSTANCE_IPV4` (else `AWS_INSTANCE_IPV6`) is the address; an instance
 * registered by DNS name only (`AWS_ALIAS_DNS_NAME`, a load balancer, or `AWS_INSTANCE_CNAME`)
 * becomes one instance per address of that name, looked up with `lookup` and re-resolved as its
 * TTL runs out. `AWS_INSTANCE_PORT` is the port (else the config's `port`), `AVAILABILITY_ZONE`
 * the zone, the `weightAttribute` (default `weight`) the weight; every other attribute, including
 * an unused IPv6 address and the DNS name, stays in `attributes`. An instance without a usable
 * address, or with a port that is not one, is skipped and reported on
 * `signpost:cloudmap:instance-skipped`.
 *
 * The answer's `ttl` is the client's poll interval, jittered and stretched under throttling (and
 * no longer than a DNS name's TTL). When the cache hands back an earlier answer of a service
 * without health checks, only DiscoverInstancesRevision is called, and the full list is fetched
 * when the revision moved and every `fullRefreshInterval ÷ pollInterval` polls. A service with
 * health checks gets a full DiscoverInstances every `healthRefreshInterval ÷ pollInterval` polls
 * (by default every poll), since health changes leave the revision alone.
 */
export class CloudMapResolver implements Resolver {
  readonly #client: CloudMapClient;
  readonly #config: CloudMapResolverConfig;
  readonly #lookup: AddressLookup | undefined;

  /** `config` is checked where it is given (`services`, `namespaces`, the CLI's flags). */
  constructor(client: CloudMapClient, config: CloudMapResolverConfig = {}, lookup?: AddressLookup) {
    this.#client = client;
    this.#config = { ...config };
    this.#lookup = lookup;
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    try {
      return await this.#resolve(name, context);
    } catch (error) {
      // The contract: nothing but a SignpostError leaves a resolver.
      if (error instanceof SignpostError) throw error;
      throw new ResolveError(`${name}: Cloud Map lookup failed unexpectedly (${(error as Error | null)?.name ?? typeof error})`, {
        hostname: name,
        cause: error,
      });
    }
  }

  async #resolve(name: string, { signal, previous }: ResolveContext): Promise<Resolution> {
    const target = this.#target(name);
    this.#client.noteActive(name);
    const { fullRefreshInterval, healthRefreshInterval, pollInterval } = this.#client.options;
    const clock = this.#client.clock;
    const state = previous === undefined ? undefined : readState(previous);
    let followsRevision = false;
    if (
      previous !== undefined &&
      state !== undefined &&
      state.revision !== undefined &&
      state.pollsToFull > 0 &&
      this.#client.revisionAllowed()
    ) {
      followsRevision = true;
      const revision = await this.#client.discoverInstancesRevision(target, signal);
      if (revision === state.revision) {
        const next: CloudMapState = { ...state, pollsToFull: state.pollsToFull - 1 };
        if (state.summaries === undefined) return { instances: previous.instances, ttl: this.#client.nextPoll(false), state: next };
        return this.#build(target, state.summaries, next, state, signal);
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
      // No earlier answer: callers wait for this one (a cold name).
      previous === undefined ? 'cold' : followsRevision ? 'follow-up' : 'poll',
    );
    const summaries = response.Instances ?? [];
    // An empty answer (HealthStatus HEALTHY with none healthy) says nothing about health checks.
    const healthChecked = summaries.length === 0 ? (state?.healthChecked ?? false) : reportsHealth(summaries);
    // Every N-th poll is a full call; after a name's first full call the count starts at a random
    // poll from the 2nd to the N-th, so the names of a fleet started together are not refreshed
    // together (and no first poll repeats the call just made).
    const every = Math.max(1, Math.round((healthChecked ? healthRefreshInterval : fullRefreshInterval) / pollInterval));
    const next: CloudMapState = {
      revision: response.InstancesRevision,
      fullAt: clock.now(),
      pollsToFull: state === undefined && every > 1 ? 1 + this.#client.spread(every - 1) : every - 1,
      healthChecked,
    };
    return this.#build(target, summaries, next, state, signal);
  }

  /** Turns summaries into instances, looking up DNS names whose answers ran out. */
  async #build(
    target: CloudMapTarget,
    summaries: readonly HttpInstanceSummary[],
    next: CloudMapState,
    previous: CloudMapState | undefined,
    signal: AbortSignal,
  ): Promise<Resolution> {
    const clock = this.#client.clock;
    const instances: Instance[] = [];
    const byName: { summary: HttpInstanceSummary; dnsName: string }[] = [];
    for (const summary of summaries) {
      const found = this.#toInstance(summary, target);
      if (found === undefined) continue;
      if (typeof found === 'string') byName.push({ summary, dnsName: found });
      else instances.push(found);
    }
    let ttl = this.#client.nextPoll(previous === undefined);
    if (byName.length === 0) return this.#answer(target, summaries.length, { instances, ttl, state: next });

    const names = new Map<string, NameAnswer>();
    let failure: SignpostError | undefined;
    const wanted = [...new Set(byName.map((b) => b.dnsName))];
    await Promise.all(
      wanted.map(async (dnsName) => {
        const known = previous?.names?.get(dnsName);
        if (known !== undefined && known.expiresAt > clock.now()) {
          names.set(dnsName, known);
          return;
        }
        if (this.#lookup === undefined) return;
        try {
          const answer = await this.#lookup.resolve(dnsName, { signal });
          const addresses = answer.instances.map((i) => i.address);
          if (addresses.length > 0) names.set(dnsName, { addresses, expiresAt: clock.now() + Math.max(answer.ttl, 1000) });
        } catch (error) {
          if (error instanceof NotFoundError) return;
          failure ??= error instanceof SignpostError ? error : new ResolveError(`DNS lookup of ${dnsName} failed`, { cause: error });
          // Better the last addresses than none while the DNS server has trouble.
          if (known !== undefined) names.set(dnsName, { addresses: known.addresses, expiresAt: clock.now() + NAME_RETRY_MS });
        }
      }),
    );
    for (const { summary, dnsName } of byName) {
      const answer = names.get(dnsName);
      if (answer === undefined) {
        this.#skip(
          summary,
          target,
          this.#lookup === undefined
            ? `registered by DNS name ${dnsName}, and no DNS resolver was given to look it up`
            : `its DNS name ${dnsName} has no address${failure === undefined ? '' : ' (the lookup failed)'}`,
        );
        continue;
      }
      for (const address of answer.addresses) instances.push(this.#fromName(summary, address, target));
      ttl = Math.min(ttl, Math.max(1, answer.expiresAt - clock.now()));
    }
    if (instances.length === 0 && failure !== undefined) {
      throw new ResolveError(
        `${target.hostname}: the instances of Cloud Map service "${target.service}" are registered by DNS name, and looking them up failed: ${failure.message}`,
        { hostname: target.hostname, cause: failure },
      );
    }
    return this.#answer(target, summaries.length, { instances, ttl, state: { ...next, summaries, names } });
  }

  /** The resolution, with what to check when it holds no instance. */
  #answer(target: CloudMapTarget, returned: number, resolution: Resolution): Resolution {
    return resolution.instances.length > 0 ? resolution : { ...resolution, why: this.#whyEmpty(target, returned) };
  }

  /** What to check when Cloud Map answered a service with no usable instance (`returned`: how many it gave). */
  #whyEmpty(target: CloudMapTarget, returned: number): string {
    const healthStatus = this.#config.healthStatus ?? this.#client.options.healthStatus;
    const filters = [
      healthStatus === 'HEALTHY' ? 'healthStatus HEALTHY (instances failing their health checks are left out)' : undefined,
      this.#config.queryParameters === undefined ? undefined : `queryParameters ${JSON.stringify(this.#config.queryParameters)}`,
    ].filter((f) => f !== undefined);
    return (
      `${where(target)} has no instances${filters.length > 0 ? ` matching ${filters.join(' and ')}` : ''}` +
      (returned > 0 ? ` signpost can use (none of the ${returned} it returned has a usable address: see signpost:cloudmap:instance-skipped)` : '') +
      ': are its tasks running and registered (for ECS: the service\'s service registries), in this region and account?'
    );
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
    return { hostname: name, namespace, service, ownerAccount: this.#config.ownerAccount ?? this.#client.options.ownerAccount };
  }

  #skip(summary: HttpInstanceSummary, target: CloudMapTarget, reason: string): undefined {
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
  }

  /** An instance, the DNS name to look up for one registered by name, or undefined (skipped). */
  #toInstance(summary: HttpInstanceSummary, target: CloudMapTarget): Instance | string | undefined {
    const attributes = summary.Attributes ?? {};
    const ipv4 = attributes[IPV4];
    const ipv6 = attributes[IPV6];
    if (ipv4 !== undefined && isIP(ipv4) === 4) return this.#instance(summary, ipv4, IPV4, target);
    if (ipv6 !== undefined && isIP(ipv6) === 6) return this.#instance(summary, ipv6, IPV6, target);
    const dnsName = attributes[ALIAS] ?? attributes[CNAME];
    if (dnsName !== undefined) {
      const bare = dnsName.endsWith('.') ? dnsName.slice(0, -1) : dnsName;
      if (!/^[a-z0-9_.-]{1,253}$/i.test(bare) || bare.split('.').some((label) => label.length === 0 || label.length > 63)) {
        return this.#skip(summary, target, `${attributes[ALIAS] === undefined ? CNAME : ALIAS} ${JSON.stringify(dnsName)} is not a DNS name`);
      }
      if (this.#portOf(summary, target) === null) return undefined;
      return normalizeName(bare);
    }
    return this.#skip(
      summary,
      target,
      ipv4 === undefined && ipv6 === undefined
        ? `no ${IPV4}, ${IPV6}, ${ALIAS} or ${CNAME} attribute`
        : `neither ${IPV4} nor ${IPV6} is an IP address`,
    );
  }

  /** The instance's port: its own, else the config's; null (reported) when its own is not a port. */
  #portOf(summary: HttpInstanceSummary, target: CloudMapTarget): number | undefined | null {
    const raw = summary.Attributes?.[PORT];
    if (raw === undefined) return this.#config.port;
    const port = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
    // A wrong port would send traffic to the wrong place: better no instance than that.
    if (!(port >= 1 && port <= 65_535)) {
      this.#skip(summary, target, `${PORT} ${JSON.stringify(raw)} is not a port`);
      return null;
    }
    return port;
  }

  #instance(summary: HttpInstanceSummary, address: string, used: string, target: CloudMapTarget): Instance | undefined {
    const port = this.#portOf(summary, target);
    if (port === null) return undefined;
    const attributes: Record<string, string> = { ...summary.Attributes };
    delete attributes[used];
    return this.#finish(summary, address, port, attributes);
  }

  #fromName(summary: HttpInstanceSummary, address: string, target: CloudMapTarget): Instance {
    // The DNS name stays in attributes: it says where the addresses came from. Its port was
    // checked when the name was collected.
    const port = this.#portOf(summary, target) ?? undefined;
    return this.#finish(summary, address, port, { ...summary.Attributes });
  }

  #finish(summary: HttpInstanceSummary, address: string, port: number | undefined, attributes: Record<string, string>): Instance {
    delete attributes[PORT];
    const zone = attributes[ZONE];
    delete attributes[ZONE];
    let weight = 1;
    const weightAttribute = this.#client.options.weightAttribute;
    const rawWeight = attributes[weightAttribute];
    if (rawWeight !== undefined && /^\d{1,5}$/.test(rawWeight) && Number(rawWeight) <= MAX_WEIGHT) {
      weight = Number(rawWeight);
      delete attributes[weightAttribute];
    }
    const instance: { -readonly [K in keyof Instance]: Instance[K] } = {
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
