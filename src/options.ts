/**
 * The options of {@link Discovery}. Every duration is in milliseconds. Each area's options are
 * validated by that area (`validate*` beside its code) when a Discovery is constructed.
 */
import type { ServiceDiscoveryClient, ServiceDiscoveryClientConfig } from '@aws-sdk/client-servicediscovery';
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
  /**
   * A custom endpoint for the Cloud Map data API (`http://127.0.0.1:4566`, a VPC endpoint). It is
   * used as given: the SDK's `data-` host prefix is not added to it.
   */
  endpoint?: string;
  /**
   * Your own client; `region` and `endpoint` are then ignored, and `close()` leaves it open.
   * Its own retry strategy still applies under signpost's, so consider `maxAttempts: 1` on it.
   */
  client?: ServiceDiscoveryClient;
  /**
   * Credentials for the client signpost creates: static keys or a provider function (from
   * `@aws-sdk/credential-providers`, for example). Ignored when `client` is given.
   * @default the AWS SDK's default credential chain (environment, profile, ECS task role, EC2)
   */
  credentials?: ServiceDiscoveryClientConfig['credentials'];
  /** @default 'HEALTHY_OR_ELSE_ALL' */
  healthStatus?: CloudMapHealthStatus;
  /**
   * How often a name in use is checked again, in milliseconds: the `ttl` of every Cloud Map
   * answer (the API has none). A check is one cheap DiscoverInstancesRevision call while nothing
   * changed. A fleet of P processes each using S names makes about P × S × 1000 / pollInterval
   * calls per second: 100 tasks using 10 names each make 200/s at the default, well inside the
   * account's ~1,000/s. From 100 to 3,600,000.
   * @default 5000
   */
  pollInterval?: number;
  /**
   * Health changes do not change a service's revision, so a full DiscoverInstances is made at
   * least this often, in milliseconds, even when DiscoverInstancesRevision says nothing changed.
   * 0 makes every check a full one. From 0 to 3,600,000.
   * @default 30_000
   */
  fullRefreshInterval?: number;
  /**
   * The most Cloud Map calls this process makes per second, across every service, retries
   * included; up to one second's worth may go at once. Calls beyond it wait their turn. The
   * account-wide budget is about 1,000/s (bursts of 2,000) shared by the whole fleet. From 0.1
   * to 10,000.
   * @default 50
   */
  maxCallsPerSecond?: number;
  /**
   * Retries of a call that was throttled (RequestLimitExceeded, ThrottlingException, HTTP 429),
   * failed on the server (5xx), timed out or lost its connection; with exponential backoff and
   * jitter. From 0 to 10.
   * @default 3
   */
  retries?: number;
  /**
   * The wait before the first retry, in milliseconds; it doubles with each retry, is randomized
   * up to twice that, and never exceeds 5,000. From 1 to 60,000.
   * @default 100
   */
  retryDelay?: number;
  /** How long one call may take before it is abandoned (and retried), in milliseconds. @default 5000 */
  timeout?: number;
  /**
   * The custom attribute read as an instance's `weight` (an integer from 0 to
   * 65,535, as in SRV; 1 when absent or not such an integer). Register instances with it to send
   * more traffic to bigger tasks under the `'weighted'` balancer.
   * @default 'weight'
   */
  weightAttribute?: string;
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
   * A name in use is refreshed in the background when this share of its TTL has passed; its
   * answer is served meanwhile, so a warm name never waits on the registry. 1 refreshes when the
   * TTL runs out (one query per TTL); lower values refresh earlier at the cost of more queries
   * (0.8: 1.25 per TTL). Between 0.5 and 1. @default 1
   */
  refreshAhead?: number;
}

export type BalancerName = 'round-robin' | 'weighted' | 'least-request';

/** A built-in balancing policy with its settings. */
export interface BalancerConfig {
  /**
   * - `round-robin`: each instance in turn, from a random start (so a fleet of clients does not
   *   all hit the same first instance); weights are ignored;
   * - `weighted`: weighted random (RFC 2782), weights from {@link Instance.weight} or
   *   {@link BalancerConfig.weightAttribute};
   * - `least-request`: of two instances drawn at random, the one with fewer requests in flight.
   *
   * Every policy uses only the lowest SRV priority that has usable instances.
   */
  policy: BalancerName;
  /**
   * For `weighted`: the registry attribute (a Cloud Map custom attribute) that holds each
   * instance's weight, a non-negative integer. Instances without it, or with a value that is not
   * such an integer, keep their {@link Instance.weight}.
   * @default undefined: the SRV weight ({@link Instance.weight})
   */
  weightAttribute?: string;
}

/**
 * Passive health checking (outlier ejection): an instance that keeps failing is taken out of
 * balancing for a while, then returns on its own. Failures are reported by the agent.
 */
export interface EjectionOptions {
  /**
   * Refused connections in a row that eject an instance. A refused connection means nothing
   * listens at the address (a stopped task, a pod that is gone), a strong signal that costs the
   * caller no wait, so by default the first one ejects.
   * @default 1
   */
  consecutiveConnectFailures?: number;
  /**
   * Failures of any kind in a row (5xx responses, timeouts, reset connections and refused
   * connections) that eject an instance. A success resets the count.
   * @default 5
   */
  consecutiveFailures?: number;
  /**
   * How long the first ejection lasts, in milliseconds. The n-th ejection of the same instance
   * lasts n times as long, up to {@link EjectionOptions.maxEjectionTime}; the count goes down by
   * one for every `baseEjectionTime` the instance spends back in service.
   * @default 30_000
   */
  baseEjectionTime?: number;
  /** The longest an ejection lasts, in milliseconds. At least `baseEjectionTime`. @default 300_000 */
  maxEjectionTime?: number;
  /**
   * The largest share of a service's instances, in percent (0 to 100), that may be ejected at
   * once (rounded down: with 50, one of 2 or 3 instances, none of 1). Ejections beyond it are
   * refused, so a fault on the caller's side cannot empty a service.
   * @default 50
   */
  maxEjectedPercent?: number;
  /**
   * When fewer than this share of a service's instances, in percent (0 to 100), are usable, the
   * ejections are ignored and every instance is used (panic mode): spreading the load over
   * instances that may fail beats overloading the few that are left. 0 turns panic mode off.
   * @default 50
   */
  panicThreshold?: number;
  /**
   * Failure-percentage ejection (Envoy's `outlier_detection` failure percentage): an instance
   * that fails at least `threshold` percent of its requests within `interval`, and at least twice
   * the share of the other instances of its services, is ejected, however the failures are
   * spread: a task failing every other request goes (consecutive counts never see it), while a
   * service failing alike everywhere (a dependency down) keeps its instances. `false` turns it
   * off.
   * @default { threshold: 30, minRequests: 20, interval: 10_000 }
   */
  failurePercentage?: FailurePercentageOptions | false;
  /**
   * Probing of ejected instances, so one that recovers comes back as soon as it answers rather
   * than when its ejection time ends. An instance ejected for refused or timed-out connections is
   * probed with a TCP connect; with `path`, every ejected instance is probed with an HTTP GET of
   * that path (an answer below 500 brings it back), which also tells a frozen instance (one that
   * accepts connections and answers nothing) from a recovered one. `false` turns probing off.
   * @default { interval: 1000, timeout: 1000 }
   */
  probe?: ProbeOptions | false;
  /**
   * The stall detector, in milliseconds: an instance that holds requests waiting for their
   * response headers and answers none of them for this long is frozen. It is ejected at once
   * (new requests go elsewhere), and the requests waiting on it move to another usable instance
   * when that is safe: those not written yet always, written ones when they may be sent again
   * (methods in `retry.methods`, a body that can be sent again) and their caller left
   * `headersTimeout` at undici's default. The others keep waiting, up to their `headersTimeout`.
   * Set it above the slowest response you expect; 0 turns it off. From 0 to 3,600,000.
   * @default 10_000
   */
  stallTimeout?: number;
}

/** Failure-percentage ejection, see {@link EjectionOptions.failurePercentage}. */
export interface FailurePercentageOptions {
  /** The share of failed requests, in percent (1 to 100), that ejects an instance. @default 30 */
  threshold?: number;
  /** Requests an instance must have had in the interval before its share is judged (1 to 1,000,000). @default 20 */
  minRequests?: number;
  /** The window over which requests and failures are counted, in milliseconds (at least 100). @default 10_000 */
  interval?: number;
}

/** Probing of ejected instances, see {@link EjectionOptions.probe}. */
export interface ProbeOptions {
  /** How often an ejected instance is probed, in milliseconds (at least 10). @default 1000 */
  interval?: number;
  /** How long a probe may take, in milliseconds (at least 10). @default 1000 */
  timeout?: number;
  /**
   * An HTTP health path (`/health`), requested with the Host header and TLS servername of a name
   * the instance serves. Without it, only instances ejected for connection failures are probed
   * (TCP connect); the others return when their ejection time ends.
   */
  path?: string;
}

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
  balancer?: BalancerName | BalancerConfig | BalancerFactory;
  /** Outlier ejection, or `false` to never eject. @default the defaults of {@link EjectionOptions} */
  ejection?: EjectionOptions | false;
  /**
   * The caller's availability zone: a name, or `'auto'` to read it from the ECS task metadata
   * (v4) endpoint. `SIGNPOST_ZONE` in the environment is used when this is not set.
   * @default undefined: no zone affinity
   */
  zone?: string;
  /**
   * With the caller's zone known, send requests only to same-zone instances while at least
   * `minLocal` of them are usable (not ejected). With fewer, the traffic spills to the other
   * zones in proportion to their spare instances (as Envoy's zone-aware routing does), so the
   * local ones get no more than their fair share. Instances with no zone count as remote.
   * `false` balances over every zone alike.
   * @default { minLocal: 2 }
   */
  zoneAffinity?: { minLocal?: number } | false;
  /** The zone of DNS/SRV-found addresses, by CIDR: `{ '10.0.1.0/24': 'us-east-1a' }`. */
  subnets?: Record<string, string>;
  /** A clock for tests. @default the real one */
  clock?: Clock;
}
