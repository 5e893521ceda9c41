/**
 * The resolution cache: one entry per resolved name, holding the instances that are served now.
 *
 * Time is driven by timers, never read on the hot path: a name used since its last refresh is
 * refreshed in the background once `refreshAhead` of its TTL has passed (by default when the TTL
 * runs out, serving the answer until the new one arrives: one query per TTL and nobody waits);
 * an unused one lapses at expiry. While the registry fails, the last answer is served for up to
 * `staleTtl` (RFC 8767). Negative answers (not found, no instances) are kept for
 * `negativeTtl`. One query per name is in flight at a time (single flight), and the number of
 * names is bounded by lru-cache.
 */
import { channel } from 'node:diagnostics_channel';
import { setMaxListeners } from 'node:events';
import { LRUCache } from 'lru-cache';
import type { Clock, ClockTimer } from './clock.ts';
import { NoInstancesError, NotFoundError, ResolveError, SignpostError } from './errors.ts';
import { instanceKey, sameInstances } from './instance.ts';
import type { CacheOptions } from './options.ts';
import type { Instance, Resolution, Resolver } from './types.ts';
import { checkDuration, checkInteger, checkKeys, checkNumber, checkObject } from './validate.ts';

export const DEFAULT_MIN_TTL_MS = 1000;
export const DEFAULT_MAX_TTL_MS = 300_000;
export const DEFAULT_STALE_TTL_MS = 300_000;
export const DEFAULT_NEGATIVE_TTL_MS = 5000;
export const DEFAULT_MAX_NAMES = 10_000;
/** Refresh when the TTL runs out (the answer is served until the new one arrives): one query per TTL. */
export const DEFAULT_REFRESH_AHEAD = 1;
/** First wait before an answer a resolver served expired is asked for again; doubles up to its TTL. */
const STALE_ANSWER_RETRY_MS = 500;
/** First wait before a stale entry asks the registry again; doubles up to the max. */
const STALE_RETRY_MIN_MS = 1000;
/** RFC 8767 suggests 30 s between attempts while serving stale. */
const STALE_RETRY_MAX_MS = 30_000;

export type CacheSettings = Required<CacheOptions>;

export function validateCacheOptions(value: unknown, path = 'cache'): CacheSettings {
  checkObject(path, value);
  checkKeys(path, value, ['minTtl', 'maxTtl', 'staleTtl', 'negativeTtl', 'maxNames', 'refreshAhead']);
  const v = value as CacheOptions;
  const settings: CacheSettings = {
    minTtl: v.minTtl ?? DEFAULT_MIN_TTL_MS,
    maxTtl: v.maxTtl ?? DEFAULT_MAX_TTL_MS,
    staleTtl: v.staleTtl ?? DEFAULT_STALE_TTL_MS,
    negativeTtl: v.negativeTtl ?? DEFAULT_NEGATIVE_TTL_MS,
    maxNames: v.maxNames ?? DEFAULT_MAX_NAMES,
    refreshAhead: v.refreshAhead ?? DEFAULT_REFRESH_AHEAD,
  };
  // A TTL of 0 would make every pick wait on the registry: at least 1 ms.
  checkDuration(`${path}.minTtl`, settings.minTtl, 1);
  checkDuration(`${path}.maxTtl`, settings.maxTtl, 1);
  if (settings.maxTtl < settings.minTtl) {
    checkDuration(`${path}.maxTtl`, settings.maxTtl, settings.minTtl);
  }
  checkDuration(`${path}.staleTtl`, settings.staleTtl);
  checkDuration(`${path}.negativeTtl`, settings.negativeTtl);
  checkInteger(`${path}.maxNames`, settings.maxNames, 1, 10_000_000);
  checkNumber(`${path}.refreshAhead`, settings.refreshAhead, 0.5, 1);
  return settings;
}

/**
 * - `cold`: never answered, or dropped (unused at expiry, or stale for too long); the next
 *   `ensure` queries and waits.
 * - `fresh`: within its TTL.
 * - `stale`: past its TTL, the registry failing, still served for up to `staleTtl`.
 * - `negative`: not found / no instances, remembered for `negativeTtl`.
 */
export type EntryState = 'cold' | 'fresh' | 'stale' | 'negative';

const EMPTY: readonly Instance[] = Object.freeze([]);

function byPriorityThenKey(a: Instance, b: Instance): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const ka = instanceKey(a);
  const kb = instanceKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

const resolveChannel = channel('signpost:resolve:done');
const resolveErrorChannel = channel('signpost:resolve:error');
const staleChannel = channel('signpost:resolve:stale');

/** Fields of an entry the rest of signpost reads. */
export class CacheEntry {
  readonly name: string;
  readonly resolver: Resolver;
  state: EntryState = 'cold';
  /** What is served now: empty unless fresh or stale. */
  instances: readonly Instance[] = EMPTY;
  /** The last answer's error when negative, or the last refresh failure. */
  error: SignpostError | undefined;
  /** Set by whoever serves this entry; read and cleared when a refresh is due. */
  used = false;
  /** The last successful resolution, when its resolver keeps state (revision gating). */
  resolution: Resolution | undefined;
  inflight: Promise<void> | undefined;
  timer: ClockTimer | undefined;
  staleTimer: ClockTimer | undefined;
  staleRetryMs = STALE_RETRY_MIN_MS;
  /** Set when the entry leaves the cache: a query still in flight then changes nothing. */
  evicted = false;
  /** Past its TTL, waiting for a refresh in flight (served meanwhile). */
  expired = false;

  constructor(name: string, resolver: Resolver) {
    this.name = name;
    this.resolver = resolver;
  }
}

export interface CacheHooks {
  /** The served set of an entry changed (also to or from empty). */
  onChange(entry: CacheEntry, previous: readonly Instance[]): void;
  /** The entry left the cache (evicted or closed). `instances` is already empty. */
  onEvict(entry: CacheEntry): void;
  /** Post-processing of a fresh answer (zones from subnets): returns a new array. */
  mapInstances?(instances: readonly Instance[]): readonly Instance[];
}

export class ResolutionCache {
  readonly settings: CacheSettings;
  readonly #clock: Clock;
  readonly #hooks: CacheHooks;
  readonly #entries: LRUCache<string, CacheEntry>;
  /** Aborted by close(): every query in flight stops. */
  readonly #abort = new AbortController();
  /** Upstream queries started, for stats and tests. */
  queries = 0;

  constructor(settings: CacheSettings, clock: Clock, hooks: CacheHooks) {
    this.settings = settings;
    this.#clock = clock;
    this.#hooks = hooks;
    // Shared by every query in flight, each of which may listen on it until it settles.
    setMaxListeners(0, this.#abort.signal);
    this.#entries = new LRUCache<string, CacheEntry>({
      max: settings.maxNames,
      dispose: (entry) => this.#dispose(entry),
    });
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The entry for a name, created cold if new. */
  entry(name: string, resolver: Resolver): CacheEntry {
    let entry = this.#entries.get(name);
    if (entry === undefined) {
      entry = new CacheEntry(name, resolver);
      this.#entries.set(name, entry);
    }
    return entry;
  }

  peek(name: string): CacheEntry | undefined {
    return this.#entries.peek(name);
  }

  /**
   * Waits until the entry has something to say: at once when fresh, stale or negative;
   * otherwise after one query (shared with every concurrent caller).
   */
  ensure(entry: CacheEntry): Promise<void> | undefined {
    if (entry.state !== 'cold') return undefined;
    return this.refresh(entry);
  }

  /** Starts a query unless one is in flight; the promise never rejects. */
  refresh(entry: CacheEntry): Promise<void> {
    if (entry.inflight) return entry.inflight;
    if (entry.evicted) return Promise.resolve();
    this.queries++;
    const started = resolveChannel.hasSubscribers ? this.#clock.now() : 0;
    let promise: Promise<Resolution>;
    try {
      promise = entry.resolver.resolve(entry.name, {
        signal: this.#abort.signal,
        previous: entry.resolution,
      });
    } catch (error) {
      promise = Promise.reject(error);
    }
    const settled = promise.then(
      (resolution) => this.#succeeded(entry, resolution, started),
      (error: unknown) => this.#failed(entry, error),
    );
    entry.inflight = settled.finally(() => {
      entry.inflight = undefined;
    });
    return entry.inflight;
  }

  #succeeded(entry: CacheEntry, resolution: Resolution, started: number): void {
    if (entry.evicted) return;
    if (resolveChannel.hasSubscribers) {
      resolveChannel.publish({
        name: entry.name,
        instances: resolution.instances,
        ttl: resolution.ttl,
        duration: this.#clock.now() - started,
      });
    }
    if (resolution.instances.length === 0) {
      this.#negative(
        entry,
        new NoInstancesError(
          `${entry.name} exists but has no instances: check that its tasks/pods are running, ` +
            'registered and passing health checks',
          { hostname: entry.name },
        ),
      );
      return;
    }
    entry.error = undefined;
    entry.state = 'fresh';
    entry.expired = false;
    entry.staleRetryMs = STALE_RETRY_MIN_MS;
    this.#clearTimers(entry);
    this.#serve(entry, resolution.instances);
    // Handed back on the next call for revision gating: only resolvers that keep state use it.
    entry.resolution =
      resolution.state === undefined ? undefined : { instances: entry.instances, ttl: resolution.ttl, state: resolution.state };
    const { minTtl, maxTtl } = this.settings;
    const ttl = Math.min(Math.max(Number.isFinite(resolution.ttl) ? resolution.ttl : maxTtl, minTtl), maxTtl);
    const due = this.#refreshDelay(entry, resolution, ttl);
    entry.timer = this.#clock.setTimeout(() => this.#refreshDue(entry, ttl, due), due);
    if (resolution.late !== undefined) this.#joinLate(entry, resolution.late);
  }

  /** Entries whose last answers the registry served past their expiry, and how many in a row. */
  readonly #staleAnswers = new WeakMap<CacheEntry, number>();

  /**
   * When a fresh answer is refreshed (if in use), in ms from now; `ttl` is clamped already.
   *
   * - A DNS TTL is whole seconds, and a caching resolver on the way (unbound, dnsmasq, the VPC
   *   resolver, CoreDNS's cache) counts it down and keeps its copy up to a second past it,
   *   answering TTL 0 meanwhile. A refresh before that copy ends gets it back with less time
   *   left (TTL 0: clamped to `minTtl` and asked again, twice the queries). So DNS answers are
   *   refreshed just after it ends: 1 s for the rounding plus up to 500 ms of jitter, when the
   *   resolver has fetched a fresh copy. At most one query per TTL, and a change upstream is seen
   *   within TTL + 1.5 s (plus the resolver's own fetch). `refreshAhead` does not apply.
   * - Other answers (Cloud Map's poll interval) are refreshed at `refreshAhead` of their TTL,
   *   less up to 10% (at most 500 ms) of jitter.
   * - In both, the jitter keeps processes started together from querying in step.
   * - An answer the resolver served expired (RFC 8914 EDE 3) is not fresh: it is served, but
   *   asked for again after 500 ms (the resolver fetches a fresh copy meanwhile), doubling while
   *   it keeps serving stale (its upstream is down), at most its TTL; the name is reported on
   *   `signpost:resolve:stale`. A DNS TTL longer than any seen before for the name (how an
   *   expired answer looks without EDE) is asked for again once after 500 ms too.
   */
  #refreshDelay(entry: CacheEntry, resolution: Resolution, ttl: number): number {
    const jitter = Math.floor((this.#clock.random?.() ?? 0) * Math.min(ttl * 0.1, 500));
    if (resolution.stale === true) {
      const count = (this.#staleAnswers.get(entry) ?? 0) + 1;
      this.#staleAnswers.set(entry, count);
      if (count === 1 && staleChannel.hasSubscribers) {
        const error = new ResolveError(
          `The DNS server answered ${entry.name} with an expired record (Extended DNS Error: Stale Answer): ` +
            'its own upstream (the authority) is failing; signpost serves the answer and keeps asking',
          { hostname: entry.name },
        );
        staleChannel.publish({ name: entry.name, instances: entry.instances, error });
      }
      return Math.min(ttl, STALE_ANSWER_RETRY_MS * 2 ** Math.min(count - 1, 16)) + jitter;
    }
    this.#staleAnswers.delete(entry);
    if (resolution.dnsTtl !== true) return Math.max(Math.floor(ttl * this.settings.refreshAhead) - jitter, 1);
    const longest = this.#longestTtl.get(entry);
    const raised = this.#raisedTtl.get(entry);
    this.#raisedTtl.delete(entry);
    if (longest !== undefined && resolution.ttl > longest + 1000 && (raised === undefined || resolution.ttl > raised)) {
      this.#raisedTtl.set(entry, resolution.ttl);
      return Math.min(ttl, STALE_ANSWER_RETRY_MS) + jitter;
    }
    this.#longestTtl.set(entry, Math.max(longest ?? 0, resolution.ttl));
    return ttl + 1000 + jitter;
  }

  /**
   * The longest DNS TTL seen for a name, and a raised one being checked. A TTL counted down by a
   * cache never grows past the record's own; one that does is either a record whose TTL was
   * raised, or an expired answer served with a fixed reply TTL (unbound's serve-expired without
   * EDE: 30 s) that would otherwise be kept that long. So it is asked for again after 500 ms: a
   * raised TTL holds up (and is taken), an expired answer gives way to the fresh one the
   * resolver fetched meanwhile.
   */
  readonly #longestTtl = new WeakMap<CacheEntry, number>();
  readonly #raisedTtl = new WeakMap<CacheEntry, number>();

  /** A family that answered after the resolution delay joins the set, unless a newer answer came first. */
  #joinLate(entry: CacheEntry, late: Promise<Resolution | undefined>): void {
    const timer = entry.timer;
    late.then(
      (resolution) => {
        if (resolution === undefined || entry.timer !== timer || entry.evicted || entry.state !== 'fresh') return;
        this.#succeeded(entry, resolution, this.#clock.now());
      },
      () => {},
    );
  }

  /** Refresh point: refresh a name in use; let an unused one lapse at expiry. */
  #refreshDue(entry: CacheEntry, ttl: number, due: number): void {
    const remaining = ttl - due;
    if (entry.used) {
      entry.used = false;
      // Served names stay recent in the LRU even though picks never touch it.
      this.#entries.get(entry.name);
      void this.refresh(entry);
    }
    if (remaining > 0) entry.timer = this.#clock.setTimeout(() => this.#expired(entry), remaining);
    else this.#expired(entry);
  }

  #expired(entry: CacheEntry): void {
    entry.timer = undefined;
    // A refresh that succeeded would have replaced this timer: one is in flight, failed, or was
    // never asked for.
    if (entry.inflight !== undefined && entry.error === undefined) {
      // Keep serving until it answers; #failed turns the entry stale if it does not.
      entry.expired = true;
      return;
    }
    if (!entry.used && entry.error === undefined) {
      this.#drop(entry);
      return;
    }
    this.#stale(entry);
  }

  #stale(entry: CacheEntry): void {
    entry.expired = false;
    if (this.settings.staleTtl === 0) {
      this.#drop(entry);
      return;
    }
    entry.state = 'stale';
    if (staleChannel.hasSubscribers) {
      staleChannel.publish({ name: entry.name, instances: entry.instances, error: entry.error });
    }
    entry.staleTimer = this.#clock.setTimeout(() => {
      entry.staleTimer = undefined;
      this.#drop(entry);
    }, this.settings.staleTtl);
    this.#retryStale(entry);
  }

  #retryStale(entry: CacheEntry): void {
    void this.refresh(entry);
    const wait = entry.staleRetryMs;
    entry.staleRetryMs = Math.min(wait * 2, STALE_RETRY_MAX_MS);
    entry.timer = this.#clock.setTimeout(() => this.#retryStale(entry), wait);
  }

  #failed(entry: CacheEntry, cause: unknown): void {
    if (entry.evicted) return;
    const error =
      cause instanceof SignpostError
        ? cause
        : new ResolveError(`Resolving ${entry.name} failed unexpectedly: ${String(cause)}`, {
            hostname: entry.name,
            cause,
          });
    if (resolveErrorChannel.hasSubscribers) {
      resolveErrorChannel.publish({ name: entry.name, error, serving: entry.instances.length });
    }
    if (error instanceof NotFoundError) {
      this.#negative(entry, error);
      return;
    }
    // A registry failure: keep serving what we have (fresh until expiry, then stale).
    entry.error = error;
    if (entry.state === 'negative') this.#clearTimers(entry);
    if (entry.expired) this.#stale(entry);
    else if (entry.state !== 'fresh' && entry.state !== 'stale') entry.state = 'cold';
  }

  #negative(entry: CacheEntry, error: SignpostError): void {
    this.#clearTimers(entry);
    entry.state = 'negative';
    entry.expired = false;
    entry.error = error;
    entry.resolution = undefined;
    this.#serve(entry, EMPTY);
    entry.timer = this.#clock.setTimeout(() => {
      entry.timer = undefined;
      entry.state = 'cold';
    }, this.settings.negativeTtl);
  }

  /** Forget the answer: the next `ensure` queries again. */
  #drop(entry: CacheEntry): void {
    this.#clearTimers(entry);
    entry.state = 'cold';
    entry.used = false;
    entry.expired = false;
    this.#serve(entry, EMPTY);
  }

  #serve(entry: CacheEntry, instances: readonly Instance[]): void {
    const previous = entry.instances;
    let next = instances;
    if (next.length > 0) {
      // Registries rotate their answers; a stable order keeps an unchanged set unchanged.
      next = (this.#hooks.mapInstances ? this.#hooks.mapInstances(next) : next.slice()) as Instance[];
      (next as Instance[]).sort(byPriorityThenKey);
    }
    if (sameInstances(previous, next)) return;
    entry.instances = Object.freeze(next);
    this.#hooks.onChange(entry, previous);
  }

  #clearTimers(entry: CacheEntry): void {
    if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
    if (entry.staleTimer !== undefined) this.#clock.clearTimeout(entry.staleTimer);
    entry.timer = undefined;
    entry.staleTimer = undefined;
  }

  #dispose(entry: CacheEntry): void {
    this.#clearTimers(entry);
    entry.evicted = true;
    const previous = entry.instances;
    entry.instances = EMPTY;
    entry.state = 'cold';
    if (previous.length > 0) this.#hooks.onChange(entry, previous);
    this.#hooks.onEvict(entry);
  }

  close(): void {
    this.#abort.abort();
    this.#entries.clear();
  }
}
