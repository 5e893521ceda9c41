/**
 * The options of {@link Discovery}. Every duration is in milliseconds. Each area's options are
 * validated by that area (`validate*` beside its code) when a Discovery is constructed.
 */
import type { ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import type { Clock } from './clock.ts';
import type { BalancerFactory } from './types.ts';

/** A fixed instance, for `via: 'static'` and the `SIGNPOST_STATIC` override. */
export interface StaticInstance {
  address: string;
  port?: number;
  zone?: string;
  /** @default 1 */
  weight?: number;
  /** @default 0 */
  priority?: number;
  /** @default the `address:port` */
  id?: string;
  attributes?: Record<string, string>;
}

/** Which address families a `via: 'dns'` service is looked up in. */
export type AddressFamily = 4 | 6 | 'any';

/** Find instances in A/AAAA records. Instances carry no port unless `port` is set. */
export interface DnsServiceConfig {
  via: 'dns';
  /** The port of every instance. @default the URL's port, else the scheme's */
  port?: number;
  /**
   * Which records to ask for: 4 (A), 6 (AAAA) or 'any' (both, in parallel; either may be empty).
   * @default 'any'
   */
  family?: AddressFamily;
}

/** Find instances in SRV records (RFC 2782): ports, priorities and weights from the records. */
export interface SrvServiceConfig {
  via: 'srv';
  /**
   * The SRV name to query. Cloud Map puts SRV records at the service name itself; Kubernetes
   * and Consul use `_port._proto.<name>` (`_http._tcp.orders.default.svc.cluster.local`).
   * @default the service name itself
   */
  srv?: string;
}

/** Cloud Map `HealthStatus` filter for DiscoverInstances. */
export type CloudMapHealthStatus = 'HEALTHY' | 'UNHEALTHY' | 'ALL' | 'HEALTHY_OR_ELSE_ALL';

/** Find instances with the Cloud Map DiscoverInstances API. */
export interface CloudMapServiceConfig {
  via: 'cloudmap';
  /** The Cloud Map namespace name (`myapp.local`). */
  namespace: string;
  /** The Cloud Map service name (`orders`). */
  service: string;
  /** @default {@link CloudMapOptions.healthStatus} */
  healthStatus?: CloudMapHealthStatus;
  /** Only instances whose custom attributes match all of these (`QueryParameters`). */
  queryParameters?: Record<string, string>;
  /** Prefer instances that match these; all if none do (`OptionalParameters`). */
  optionalParameters?: Record<string, string>;
}

/** Fixed instances, for local development and tests. */
export interface StaticServiceConfig {
  via: 'static';
  instances: StaticInstance[];
}

export type ServiceConfig =
  | DnsServiceConfig
  | SrvServiceConfig
  | CloudMapServiceConfig
  | StaticServiceConfig;

/**
 * A suffix rule: every `<service>.<namespace>` not listed in `services`.
 * For `cloudmap`, the Cloud Map namespace defaults to the suffix and the service to the first
 * label. For `srv`, `srvPrefix` (`_http._tcp`) is put in front of the name.
 */
export type NamespaceConfig =
  | DnsServiceConfig
  | (Omit<SrvServiceConfig, 'srv'> & { srvPrefix?: string })
  | (Omit<CloudMapServiceConfig, 'namespace' | 'service'> & { namespace?: string });

/** How an old name maps to its new one. */
export type AliasMode = 'redirect' | 'union' | 'fallback';

export interface AliasConfig {
  /** The new name. */
  to: string;
  /**
   * - `redirect`: the new name's instances only;
   * - `union`: old and new together (dual registration during a rename);
   * - `fallback`: the new name's, or the old name's while the new one has none.
   * @default 'redirect'
   */
  mode?: AliasMode;
}

export interface DnsOptions {
  /**
   * DNS servers as `ip` or `ip:port` (IPv6 as `[ip]:port`).
   * @default the system's servers (`dns.getServers()`)
   */
  servers?: string[];
  /** Time to wait for one answer, per try. @default 2000 */
  timeout?: number;
  /** Tries per server before the query fails. @default 2 */
  tries?: number;
}

export interface CloudMapOptions {
  /** @default the AWS SDK's own region resolution (`AWS_REGION`, profile) */
  region?: string;
  /** A custom endpoint for the Cloud Map data API. */
  endpoint?: string;
  /** Your own client; `region` and `endpoint` are then ignored. */
  client?: ServiceDiscoveryClient;
  /** @default 'HEALTHY_OR_ELSE_ALL' */
  healthStatus?: CloudMapHealthStatus;
  /**
   * Health changes do not change a service's revision, so a full DiscoverInstances is made at
   * least this often even when DiscoverInstancesRevision says nothing changed.
   * @default 30_000
   */
  fullRefreshInterval?: number;
  /**
   * The most Cloud Map calls this process makes per second, across every service. The account-wide
   * budget is about 1,000/s (bursts of 2,000) shared by the whole fleet.
   * @default 50
   */
  maxCallsPerSecond?: number;
  /** Retries of a throttled call (RequestLimitExceeded, ThrottlingException), with backoff. @default 3 */
  retries?: number;
}

export interface CacheOptions {
  /** Answers are kept at least this long, whatever their TTL. @default 1000 */
  minTtl?: number;
  /** Answers are kept at most this long, whatever their TTL. @default 300_000 */
  maxTtl?: number;
  /**
   * How long past expiry an answer may still be served while the registry fails (RFC 8767).
   * 0 turns serving stale off. @default 300_000
   */
  staleTtl?: number;
  /** How long NXDOMAIN, NODATA and not-found answers are cached. @default 5000 */
  negativeTtl?: number;
  /** How many names are cached at most; the least recently used go first. @default 10_000 */
  maxNames?: number;
  /**
   * A name in use is refreshed in the background when this share of its TTL has passed, so a
   * warm name never waits on the registry. Between 0.5 and 0.95. @default 0.8
   */
  refreshAhead?: number;
}

export type BalancerName = 'round-robin' | 'weighted' | 'least-request';

export interface DiscoveryOptions {
  /** Exact names and how to find their instances. */
  services?: Record<string, ServiceConfig>;
  /** Suffix rules for names not listed in `services`: the longest matching suffix wins. */
  namespaces?: Record<string, NamespaceConfig>;
  /** Renames: old name → new name. */
  aliases?: Record<string, AliasConfig | string>;
  /**
   * What to do with names matched by none of the above: `'passthrough'` leaves them to the
   * agent's plain undici Agent; `'dns'` gives them cached, balanced A/AAAA discovery too.
   * `resolve()` and `pick()` always resolve an unlisted name via DNS.
   * @default 'passthrough'
   */
  unlisted?: 'passthrough' | 'dns';
  dns?: DnsOptions;
  cloudMap?: CloudMapOptions;
  cache?: CacheOptions;
  /** @default 'round-robin' */
  balancer?: BalancerName | BalancerFactory;
  /**
   * The caller's availability zone: a name, or `'auto'` to read it from the ECS task metadata
   * (v4) endpoint. `SIGNPOST_ZONE` in the environment is used when this is not set.
   * @default undefined: no zone affinity
   */
  zone?: string;
  /** Prefer same-zone instances while at least `minLocal` of them are healthy. @default { minLocal: 2 } */
  zoneAffinity?: { minLocal?: number } | false;
  /** The zone of DNS/SRV-found addresses, by CIDR: `{ '10.0.1.0/24': 'us-east-1a' }`. */
  subnets?: Record<string, string>;
  /** A clock for tests. @default the real one */
  clock?: Clock;
}
