/**
 * The options of {@link Discovery}. Every duration is in milliseconds. They are parsed once, when
 * a Discovery is constructed: each area's option by that area (`parse*Options` beside its code,
 * gathered by `parseDiscoveryOptions` in settings.ts) into settings with every default applied;
 * a bad value throws SIGNPOST_ERR_INVALID_ARG then, never later.
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
  /**
   * The 12-digit id of the account that owns the namespace, for a namespace shared with this
   * account through AWS RAM (sent as `OwnerAccount` on every call).
   * @default {@link CloudMapOptions.ownerAccount}: the caller's own account
   */
  ownerAccount?: string;
  /**
   * The port of instances registered without `AWS_INSTANCE_PORT` (A-record-only registrations,
   * load balancers registered by DNS name). An instance's own port always wins. From 1 to 65,535.
   * @default none: the URL's port, else the scheme's
   */
  port?: number;
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
   * DNS servers as `ip` or `ip:port` (IPv6 as `[ip]:port`), asked in order: a server that times
   * out or fails goes to the back of the line and is asked again in the background after 2 s
   * (doubling up to 30 s), so a dead first server costs one timeout, not one per query.
   * @default the `nameserver`s of {@link DnsOptions.resolvConf}
   */
  servers?: string[];
  /**
   * Time to wait for one answer, per try, in milliseconds (from 1).
   * @default resolv.conf's `timeout` when `servers` is not given and it sets one, else 2000
   */
  timeout?: number;
  /**
   * Tries per server before the query fails (rounds over the server list), from 1 to 10.
   * @default resolv.conf's `attempts` when `servers` is not given and it sets one, else 2
   */
  tries?: number;
  /**
   * Domains tried after short names, as resolv.conf's `search`: with
   * `['default.svc.cluster.local', 'svc.cluster.local']`, `http://orders/` is looked up as
   * `orders.default.svc.cluster.local`, then `orders.svc.cluster.local`, then `orders`, and the
   * first name that exists is used. `services` and `namespaces` rules are matched against each of
   * those names; the Host header and TLS servername stay what the caller wrote. A name that a
   * rule matches as written is taken as complete and never expanded, nor are `localhost` and the
   * names in /etc/hosts (getaddrinfo answers those first). A search domain whose server fails
   * (SERVFAIL, timeout) ends the search with that error. `[]` turns searching off.
   * Each entry is a DNS name (no trailing dot).
   * @default resolv.conf's `search` (or `domain`, or `LOCALDOMAIN`) when `servers` is not given; else `[]`
   */
  search?: string[];
  /**
   * A name with fewer dots than this is tried with the search list first, then as written; one
   * with at least this many dots as written first (resolv.conf's `options ndots:n`). Kubernetes
   * sets 5. An integer from 0 to 15.
   * @default resolv.conf's `ndots` (or `RES_OPTIONS`) when `servers` is not given, else 1
   */
  ndots?: number;
  /**
   * Spread queries over the servers in turn instead of always asking the first healthy one
   * first (resolv.conf's `options rotate`).
   * @default resolv.conf's `rotate` when `servers` is not given, else false
   */
  rotate?: boolean;
  /**
   * DNS 0x20: send every question with the case of its letters randomized and accept an answer
   * only when the server echoes that exact case: an off-path attacker must then guess the case
   * bits as well as the 16-bit ID and the source port. Turn on only for servers that keep the
   * case of questions (bind9, knot, unbound and dnsmasq do); with one that does not, every query
   * fails with a message saying so.
   * @default false
   */
  randomizeCase?: boolean;
  /**
   * Queries one UDP socket carries before a fresh socket (a fresh random source port) replaces
   * it. At 1, every query has a source port of its own, the strongest defence against off-path
   * spoofing: a forger must guess the port and the ID of each query. The next socket is made
   * while a query waits for its answer, so this costs no latency. Higher values share a socket
   * between queries as c-ares does (`udp_max_queries`): fewer sockets opened and closed, with the
   * port guessed once for several queries. From 1 to 256.
   * @default 1
   */
  udpMaxQueries?: number;
  /**
   * The resolv.conf read when `servers` is not given: its `nameserver`s (up to 3), `search` or
   * `domain`, and `options ndots`, `timeout`, `attempts` (used as `tries`), `rotate`,
   * `no-tld-query`; `LOCALDOMAIN` and `RES_OPTIONS` in the environment apply as for getaddrinfo.
   * Options set here override the file. An absolute path.
   * @default '/etc/resolv.conf'
   */
  resolvConf?: string;
}

export interface CloudMapOptions {
  /** @default the AWS SDK's own region resolution (`AWS_REGION`, profile) */
  region?: string;
  /**
   * A custom endpoint for the Cloud Map data API (`http://127.0.0.1:4566`, a VPC endpoint's
   * `https://vpce-….data-servicediscovery.us-east-1.vpce.amazonaws.com`). The SDK normally puts
   * `data-` in front of the host (DiscoverInstances is served by `data-servicediscovery.…`); for a
   * custom endpoint see {@link CloudMapOptions.hostPrefix}.
   */
  endpoint?: string;
  /**
   * Whether the SDK puts `data-` in front of the host of a custom `endpoint`. Wanted for Cloud
   * Map's own API hosts (`https://servicediscovery-fips.us-east-1.amazonaws.com` for FIPS becomes
   * `data-servicediscovery-fips.…`); not for a VPC endpoint's name or a local stand-in, which are
   * used as given.
   * @default true when the endpoint's host is a Cloud Map API host (`servicediscovery[-fips].<region>.amazonaws.com`, `….api.aws`), else false
   */
  hostPrefix?: boolean;
  /**
   * The 12-digit id of the account that owns the namespaces, when they are shared with this
   * account through AWS RAM: sent as `OwnerAccount` on every call. A service or namespace rule
   * may set its own.
   * @default none: the caller's own account
   */
  ownerAccount?: string;
  /**
   * Your own client; `region`, `endpoint`, `credentials`, `retries`, `retryMode`, `retryDelay`
   * and `timeout` are then ignored (its own settings apply), and `close()` leaves it open.
   * signpost still spends its call budget on every attempt the client makes.
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
   * answer (the API has none), jittered by ±10 % so that processes never poll together, and
   * stretched (up to 6 times) while Cloud Map throttles. A check is one DiscoverInstancesRevision
   * call while nothing changed, or one DiscoverInstances for a service with health checks (see
   * {@link CloudMapOptions.healthRefreshInterval}). A fleet of P processes each using S names
   * makes about P × S × 1000 / pollInterval calls per second. From 100 to 3,600,000.
   * @default 5000
   */
  pollInterval?: number;
  /**
   * For services without health checks (their instances report no health), a full
   * DiscoverInstances is made at least this often, in milliseconds, even when
   * DiscoverInstancesRevision says nothing changed. 0 makes every check a full one. From 0 to
   * 3,600,000.
   * @default 30_000
   */
  fullRefreshInterval?: number;
  /**
   * For services with health checks (their instances report HEALTHY or UNHEALTHY), a full
   * DiscoverInstances is made at least this often, in milliseconds: health changes do not move
   * the revision, so only a full call sees them. 0, the default, makes every poll a full call:
   * a health change is seen within one poll interval (plus jitter), at the cost of one
   * DiscoverInstances per poll per name, against the account's quota of about 1,000 a second.
   * A larger value saves DiscoverInstances calls and sees health changes that much later. From 0
   * to 3,600,000.
   * @default 0
   */
  healthRefreshInterval?: number;
  /**
   * The most Cloud Map calls this process makes per second, across every service, retries
   * included; up to one second's worth may go at once. Calls beyond it wait their turn. When
   * Cloud Map throttles (the account-wide quota, shared by every process, is about 1,000/s), the
   * process halves the rate it sends at, at most every 2 s, and the poll interval stretches to
   * match; once Cloud Map answers again the rate resumes at 70 % of the rate before the throttling and grows
   * back linearly over about a minute. From 0.1 to 10,000.
   * @default 50
   */
  maxCallsPerSecond?: number;
  /**
   * Retries of a call, made by the AWS SDK's retry strategy: throttling (RequestLimitExceeded),
   * server errors, timeouts and lost connections, with full-jitter exponential backoff (from 1 s
   * for throttling, from {@link CloudMapOptions.retryDelay} otherwise, up to 20 s) and the SDK's
   * retry quota. Each attempt spends the call budget. From 0 to 10.
   * @default 2 (the SDK's default of 3 attempts)
   */
  retries?: number;
  /**
   * The AWS SDK's retry mode: `'standard'`, or `'adaptive'`, which also rate-limits the client
   * on the SDK's side when it is throttled.
   * @default 'standard'
   */
  retryMode?: 'standard' | 'adaptive';
  /**
   * The base of the SDK's backoff for errors other than throttling, in milliseconds: the n-th
   * retry waits a random time up to retryDelay × 2ⁿ (capped at 20 s). From 1 to 60,000.
   * @default 50
   */
  retryDelay?: number;
  /** How long one attempt may take before it is abandoned (and retried), in milliseconds. @default 5000 */
  timeout?: number;
  /**
   * The custom attribute read as an instance's `weight` (an integer from 0 to
   * 65,535, as in SRV; 1 when absent or not such an integer); a weight read from it leaves
   * `attributes`. Register instances with it to send more traffic to bigger tasks under the
   * `'weighted'` balancer. {@link BalancerConfig.weightAttribute} is the same setting.
   * @default {@link BalancerConfig.weightAttribute} when given, else 'weight'
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
   * For answers without a DNS TTL (Cloud Map's poll interval): a name in use is refreshed in the
   * background when this share of its TTL has passed, less up to 10% (at most 500 ms) of jitter;
   * its answer is served meanwhile, so a warm name never waits on the registry. 1 refreshes when
   * the TTL runs out (one query per TTL); lower values refresh earlier at the cost of more
   * queries (0.8: 1.25 per TTL). Between 0.5 and 1.
   *
   * DNS answers are always refreshed 1 s after their TTL (plus up to 500 ms of jitter): a caching
   * resolver on the way keeps its copy up to a second past the TTL it gives, and an earlier
   * refresh would get that copy back with less time left (TTL 0 at the end), doubling the queries.
   * @default 1
   */
  refreshAhead?: number;
}

/**
 * Which addresses may be instances, as CIDR ranges (`10.0.0.0/8`, `fd00::/8`) or single
 * addresses. Whatever these say, unspecified (`0.0.0.0/8`, `::`), broadcast and multicast
 * addresses, and IPv6 addresses with a zone id (`fe80::1%eth0`), are never instances.
 * Link-local addresses (`169.254.0.0/16`, `fe80::/10`) and `fd00:ec2::254` are refused by
 * default: cloud instance and task metadata, with its credentials, lives there, and whoever
 * controls one registry answer must not reach it through a service name.
 *
 * The most specific range that holds an address decides; at equal length `deny` beats `allow`,
 * and both beat the defaults. Refused addresses are left out of the answer and reported on
 * `signpost:resolve:skipped-instance`; static services and `SIGNPOST_STATIC` with one fail in
 * the constructor.
 *
 * @example { allow: ['169.254.170.2'] }                          // one link-local address
 * @example { deny: ['0.0.0.0/0', '::/0'], allow: ['10.0.0.0/8'] } // only 10.0.0.0/8
 */
export interface AddressOptions {
  /** Ranges that may be instances (overriding the link-local default). @default [] */
  allow?: string[];
  /** Ranges that are never instances. @default [] */
  deny?: string[];
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
   * For `weighted`: the Cloud Map custom attribute that holds each instance's weight; the same
   * setting as {@link CloudMapOptions.weightAttribute} (one attribute, read into
   * {@link Instance.weight} by the Cloud Map resolver, with its rules). Giving both with
   * different values is SIGNPOST_ERR_INVALID_ARG.
   * @default {@link CloudMapOptions.weightAttribute}
   */
  weightAttribute?: string;
}

/**
 * Passive health checking (outlier ejection): an instance that keeps failing is taken out of
 * balancing for a while, then returns on its own. Failures are reported by the agent.
 */
export interface EjectionOptions {
  /**
   * Connect failures in a row that eject an instance: refused (nothing listens at the address:
   * a stopped task, a pod that is gone), timed out, unreachable, or a failed TLS handshake. A
   * strong signal that costs the caller little wait, so by default the first one ejects.
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
  /** Which addresses may be instances. @default link-local refused, see {@link AddressOptions} */
  addresses?: AddressOptions;
}
