/**
 * The shapes that flow between the parts of signpost: resolvers produce {@link Resolution}s of
 * {@link Instance}s, the cache keeps them, balancers pick among them.
 */

/** One reachable copy of a service. */
export interface Instance {
  /** Stable identity within the service: the Cloud Map instance id, the SRV target, or the address. */
  readonly id: string;
  /** An IPv4 or IPv6 address (never a hostname). */
  readonly address: string;
  /**
   * The port, when the registry or the service config knows it (SRV, Cloud Map, `port` option).
   * Absent for A/AAAA records without a configured port: the URL's port, or the scheme's
   * default, is used then.
   */
  readonly port?: number;
  /** The availability zone, from Cloud Map's `AVAILABILITY_ZONE` or the `subnets` map. */
  readonly zone?: string;
  /** Relative weight within its priority (RFC 2782). 1 for A/AAAA records. */
  readonly weight: number;
  /** Lower is preferred (RFC 2782). 0 for A/AAAA records. */
  readonly priority: number;
  /** Every other attribute the registry gave (Cloud Map custom attributes, for example). */
  readonly attributes: Readonly<Record<string, string>>;
  /** The registry's view of the instance's health, where it has one (Cloud Map). */
  readonly healthStatus?: string;
}

/** What a resolver found for a name. */
export interface Resolution {
  /** The instances; empty means the name exists but has none (NODATA). */
  readonly instances: readonly Instance[];
  /** How long the answer may be cached, in milliseconds, before the cache clamps it. */
  readonly ttl: number;
  /**
   * Opaque data a resolver wants back on the next call for the same name (Cloud Map keeps the
   * revision here). Resolvers hold no state of their own: the cache hands this back.
   */
  readonly state?: unknown;
  /**
   * The TTL came off the DNS wire: whole seconds, counted down by any caching resolver on the
   * way, which keeps its copy up to a second past what it says (answering TTL 0 meanwhile). The
   * cache then refreshes 1 s after the TTL runs out, when that copy has gone and the resolver
   * fetches a fresh one, rather than before, when it would hand back the same copy with less
   * time left.
   */
  readonly dnsTtl?: boolean;
  /**
   * The registry said this answer is past its expiry (a resolver serving stale data, RFC 8767,
   * told by RFC 8914 Extended DNS Error 3 or 19): it is served, but asked for again soon rather
   * than kept for its TTL.
   */
  readonly stale?: boolean;
  /**
   * A fuller answer on its way: an address family that answered after the resolution delay
   * (RFC 8305). It joins the set when it comes, unless a newer answer came first. Settles with
   * undefined when there is nothing to add; never rejects.
   */
  readonly late?: Promise<Resolution | undefined>;
  /**
   * For an answer without instances: why, in the terms of the registry that answered, and what
   * to check (for DNS, whether the name has the other kind of record). The cache puts it in the
   * SIGNPOST_ERR_NO_INSTANCES error.
   */
  readonly why?: string;
}

/** What a resolver is given besides the name. */
export interface ResolveContext {
  /** Aborted when the caller no longer needs the answer (close(), timeout). */
  readonly signal: AbortSignal;
  /** The last successful resolution of this name, if it carried `state`: for revision gating. */
  readonly previous?: Resolution | undefined;
  /**
   * The last answer for this name was that it does not exist (SIGNPOST_ERR_NOT_FOUND): a
   * resolver that asks several questions may ask one first, and the rest only if the name
   * exists now (a name that does not exist has no records of any type, RFC 8020).
   */
  readonly notFound?: boolean | undefined;
}

/**
 * Finds the instances of a name in one kind of registry.
 *
 * Contract: stateless and never caching (the ResolutionCache does that); `resolve` settles with
 * a {@link Resolution}, or rejects with a SignpostError: `SIGNPOST_ERR_NOT_FOUND` when the name
 * does not exist, `SIGNPOST_ERR_RESOLVE` when the registry failed. It never rejects with
 * anything else and never throws synchronously.
 */
export interface Resolver {
  resolve(name: string, context: ResolveContext): Promise<Resolution>;
  /** Releases clients and sockets. Idempotent. */
  close?(): void | Promise<void>;
}

/**
 * Picks an instance for one request. `update` is called whenever the set changes (and before the
 * first pick); all work that depends only on the set belongs there. `pick` is the hot path: it is
 * synchronous and must not allocate, read the clock or do I/O.
 */
export interface Balancer {
  update(instances: readonly Instance[]): void;
  /**
   * An instance, or undefined when the set is empty. With `exclude` (the keys of instances a
   * request already tried, see `instanceKey`), an instance whose key is not in it, or undefined
   * when every instance is excluded: a retry goes to another instance while one remains. A
   * balancer that ignores `exclude` still works: the wrappers around it pick again.
   */
  pick(exclude?: ReadonlySet<string>): Instance | undefined;
  /** Releases subscriptions (health changes). No `update` or `pick` follows. Idempotent. */
  close?(): void;
}

/** Makes a balancer for one service name. */
export type BalancerFactory = (name: string) => Balancer;
