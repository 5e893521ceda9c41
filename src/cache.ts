/**
 * The resolution cache: one entry per resolved name, holding the instances that are served now.
 *
 * Time is driven by timers, never read on the hot path: a name used since its last refresh is
 * refreshed in the background once `refreshAhead` of its TTL has passed (by default when the TTL
 * runs out, serving the answer until the new one arrives: one query per TTL and nobody waits);
 * an unused one lapses at expiry. While the registry fails, the last answer is served for up to
 * `staleTtl` (RFC 8767). Negative answers (not found, no instances) are kept for
 * `negativeTtl`. A registry failure on a name with nothing to serve is remembered too: callers get
 * the error at once until a jittered backoff (250 ms doubling to 1 s) has passed, so an outage
 * costs the registry about one query per name per second, however many callers ask. One query
 * per name is in flight at a time (single flight).
 *
 * Every answer passes the address policy here, whatever resolver gave it: refused addresses are
 * left out and reported on `signpost:resolve:skipped-instance`.
 *
 * The number of names is bounded by lru-cache, but a name with a query in flight or callers
 * waiting for its answer is never evicted: it is kept apart until it settles and its callers have
 * read it, so a burst of more cold names than `maxNames` fails none of them (the cache shrinks
 * back to the bound afterwards).
 */
import { setMaxListeners } from 'node:events';
import { LRUCache } from 'lru-cache';
import { AddressPolicy, refusePort } from './address-policy.ts';
import type { Clock } from './clock.ts';
import { channels, type ResolveDoneMessage, type ResolveErrorMessage, type SkippedInstanceMessage } from './diagnostics.ts';
import { DeadlineQueue, type Deadline } from './deadlines.ts';
import { NoInstancesError, NotFoundError, ResolveError, SignpostError } from './errors.ts';
import { instanceKey, sameInstances } from './instance.ts';
import { scrubError } from './redact.ts';
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
export const STALE_RETRY_MIN_MS = 1000;
/** RFC 8767 suggests 30 s between attempts while serving stale. */
export const STALE_RETRY_MAX_MS = 30_000;
/** First wait before a name the registry failed on, with nothing to serve, is asked about again. */
export const FAILED_RETRY_MIN_MS = 250;
/** The wait doubles up to this: about one query per failing name per second. */
export const FAILED_RETRY_MAX_MS = 1000;

/**
 * `ms` spread uniformly over ±25%: processes that failed together (one registry outage) must not
 * retry together.
 */
export function jitter(ms: number): number {
  return Math.round(ms * (0.75 + Math.random() * 0.5));
}

export type CacheSettings = Required<CacheOptions>;

export function parseCacheOptions(value: unknown, path = 'cache'): CacheSettings {
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
 * - `failed`: the registry failed and there is nothing to serve; callers get `error` at once
 *   until a jittered backoff has passed, then the entry is `cold` again.
 */
export type EntryState = 'cold' | 'fresh' | 'stale' | 'negative' | 'failed';

const EMPTY: readonly Instance[] = Object.freeze([]);

/** What an entry's one deadline does when it comes. */
const REFRESH_DUE = 1;
const EXPIRE = 2;
const BACK_TO_COLD = 3;
const STALE_RETRY = 4;
type Task = typeof REFRESH_DUE | typeof EXPIRE | typeof BACK_TO_COLD | typeof STALE_RETRY;
/** The bits of CacheEntry's packed state: the task, then flags. */
const TASK_MASK = 7;
const BUSY = 8;
const EVICTED = 16;
const EXPIRED = 32;

function byPriorityThenKey(a: Instance, b: Instance): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const ka = instanceKey(a);
  const kb = instanceKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

const { resolveDone: resolveChannel, resolveError: resolveErrorChannel, resolveStale: staleChannel, skippedInstance: skippedChannel } = channels;

/** Fields of an entry the rest of signpost reads. */
export class CacheEntry implements Deadline {
  readonly name: string;
  readonly resolver: Resolver;
  state: EntryState = 'cold';
  /** What is served now: empty unless fresh or stale. */
  instances: readonly Instance[] = EMPTY;
  /** The last answer's error when negative, or the last refresh failure. */
  error: SignpostError | undefined;
  /** Set by whoever serves this entry; read and cleared when a refresh is due. */
  used = false;
  /** Owned by whoever serves this entry (Discovery keeps its views of the name here). */
  views: unknown = undefined;
  /** The last successful resolution, when its resolver keeps state (revision gating). */
  resolution: Resolution | undefined;
  inflight: Promise<void> | undefined;
  /** The entry's one deadline (see {@link DeadlineQueue}); what it does is in {@link task}. */
  dueAt = 0;
  dueSeq = 0;
  deadlineIndex = -1;
  /** The clamped TTL of the answer served, for the refresh and expiry that follow it. */
  ttl = 0;
  /** When the refresh of the fresh answer is due, in ms after it came (see #refreshDelay). */
  refreshDelay = 0;
  /** Fresh answers taken so far: a late address family joins only the answer it belongs to. */
  answers = 0;
  /**
   * The longest DNS TTL seen for the name, in ms (-1: none yet; see {@link ResolutionCache}'s
   * #refreshDelay). A field rather than a WeakMap beside the cache: every DNS name has one, and a
   * WeakMap entry costs about 50 bytes of heap where a field costs 8.
   */
  longestTtl = -1;
  /** While stale: when the answer stops being served, on the cache's clock. */
  staleUntil = 0;
  /** The last backoff while the registry fails (stale retries, or a failed name); 0 when it does not. */
  retryMs = 0;
  /** Callers waiting for this entry's answer, or watching it: while any do, it is in use and not evicted. */
  waiters = 0;
  /**
   * `task` and the flags below, packed in one small integer: every field of an entry costs 8
   * bytes on every cached name. (`used`, written by every pick, stays a field of its own.)
   */
  #bits: number = REFRESH_DUE;

  constructor(name: string, resolver: Resolver) {
    this.name = name;
    this.resolver = resolver;
  }

  /** What the entry's deadline does when it comes. */
  get task(): Task {
    return (this.#bits & TASK_MASK) as Task;
  }
  set task(task: Task) {
    this.#bits = (this.#bits & ~TASK_MASK) | task;
  }

  /** Kept apart from the LRU (a query in flight or callers waiting): never evicted. */
  get busy(): boolean {
    return (this.#bits & BUSY) !== 0;
  }
  set busy(on: boolean) {
    this.#bits = on ? this.#bits | BUSY : this.#bits & ~BUSY;
  }

  /** Set when the entry leaves the cache: a query still in flight then changes nothing. */
  get evicted(): boolean {
    return (this.#bits & EVICTED) !== 0;
  }
  set evicted(on: boolean) {
    this.#bits = on ? this.#bits | EVICTED : this.#bits & ~EVICTED;
  }

  /** Past its TTL, waiting for a refresh in flight (served meanwhile). */
  get expired(): boolean {
    return (this.#bits & EXPIRED) !== 0;
  }
  set expired(on: boolean) {
    this.#bits = on ? this.#bits | EXPIRED : this.#bits & ~EXPIRED;
  }
}

export interface CacheHooks {
  /** The served set of an entry changed (also to or from empty). */
  onChange(entry: CacheEntry, previous: readonly Instance[]): void;
  /** The entry left the cache (evicted or closed). `instances` is already empty. */
  onEvict(entry: CacheEntry): void;
  /** Post-processing of a fresh answer (zones from subnets): returns a new array. */
  mapInstances?(instances: readonly Instance[]): readonly Instance[];
  /** Every answer from the registry (what `signpost:resolve:done` publishes). */
  onAnswer?(message: ResolveDoneMessage): void;
  /** Every failed query (what `signpost:resolve:error` publishes). */
  onError?(message: ResolveErrorMessage): void;
}

export class ResolutionCache {
  readonly settings: CacheSettings;
  readonly #clock: Clock;
  readonly #hooks: CacheHooks;
  readonly #policy: AddressPolicy;
  /** Entries that may be evicted, least recently used first out. */
  readonly #entries: LRUCache<string, CacheEntry>;
  /** Entries with a query in flight or callers waiting: never evicted. */
  readonly #busy = new Map<string, CacheEntry>();
  /** Aborted by close(): every query in flight stops. */
  readonly #abort = new AbortController();
  /** Every entry's refresh, expiry or backoff deadline, on one clock timer. */
  readonly #deadlines: DeadlineQueue<CacheEntry>;
  #warnedFull = false;
  /** Upstream queries started, for stats and tests. */
  queries = 0;

  constructor(settings: CacheSettings, clock: Clock, hooks: CacheHooks, policy = new AddressPolicy()) {
    this.settings = settings;
    this.#clock = clock;
    this.#hooks = hooks;
    this.#policy = policy;
    this.#deadlines = new DeadlineQueue(clock, (entry) => this.#due(entry));
    // Shared by every query in flight, each of which may listen on it until it settles.
    setMaxListeners(0, this.#abort.signal);
    this.#entries = new LRUCache<string, CacheEntry>({
      max: settings.maxNames,
      // Moving an entry to #busy deletes it here: only an eviction makes it leave the cache.
      dispose: (entry, _name, reason) => {
        if (reason === 'evict') this.#dispose(entry);
      },
    });
  }

  get size(): number {
    return this.#entries.size + this.#busy.size;
  }

  /** Deadlines waiting (one at most per entry), for tests. */
  get scheduled(): number {
    return this.#deadlines.size;
  }

  #at(entry: CacheEntry, delay: number, task: Task): void {
    entry.task = task;
    this.#deadlines.set(entry, delay);
  }

  #due(entry: CacheEntry): void {
    switch (entry.task) {
      case REFRESH_DUE:
        this.#refreshDue(entry, entry.ttl);
        return;
      case EXPIRE:
        this.#expired(entry);
        return;
      case BACK_TO_COLD: {
        const negative = entry.state === 'negative';
        entry.state = 'cold';
        // A negative answer still in use (the new name of a fallback alias, served by the old
        // one meanwhile) is asked for again now, as a fresh one is at its refresh: otherwise
        // nothing would ask while the old name serves, and its instances would never be seen.
        if (negative && entry.used) {
          entry.used = false;
          void this.refresh(entry);
        }
        return;
      }
      case STALE_RETRY:
        if (this.#clock.now() >= entry.staleUntil) {
          this.#drop(entry);
          return;
        }
        void this.refresh(entry);
        this.#nextStaleRetry(entry);
        return;
    }
  }

  /**
   * The entry for a name, created cold if new. A new entry is kept apart from the LRU until its
   * first query settles (or {@link release}): the caller is about to {@link ensure} it.
   */
  entry(name: string, resolver: Resolver): CacheEntry {
    let entry = this.#busy.get(name) ?? this.#entries.get(name);
    if (entry === undefined) {
      entry = new CacheEntry(name, resolver);
      entry.busy = true;
      this.#busy.set(name, entry);
    }
    return entry;
  }

  peek(name: string): CacheEntry | undefined {
    return this.#busy.get(name) ?? this.#entries.peek(name);
  }

  /**
   * A caller waits for the entry's answer: it is not evicted until {@link release}, so the
   * caller reads the answer its query brought.
   */
  hold(entry: CacheEntry): void {
    if (entry.evicted) return;
    entry.waiters++;
    this.#pin(entry);
  }

  /** The caller has read the entry. */
  release(entry: CacheEntry): void {
    if (entry.waiters > 0) entry.waiters--;
    this.#unpin(entry);
  }

  #pin(entry: CacheEntry): void {
    if (entry.busy) return;
    entry.busy = true;
    this.#entries.delete(entry.name);
    this.#busy.set(entry.name, entry);
  }

  #unpin(entry: CacheEntry): void {
    if (!entry.busy || entry.waiters > 0 || entry.inflight !== undefined || entry.evicted) return;
    entry.busy = false;
    this.#busy.delete(entry.name);
    this.#entries.set(entry.name, entry);
    // Busy entries count towards the bound: while a burst is being resolved, idle ones go first,
    // and an answer that cannot be kept goes once its callers have it.
    const { maxNames } = this.settings;
    if (this.#entries.size + this.#busy.size > maxNames && !this.#warnedFull) {
      this.#warnedFull = true;
      process.emitWarning(
        `signpost: more names are being resolved at once than cache.maxNames (${maxNames}) can keep: ` +
          'every caller gets its answer, but answers beyond the bound are dropped once read and asked for again ' +
          'on their next use; raise cache.maxNames above the number of names this process uses',
        { code: 'SIGNPOST_CACHE_FULL' },
      );
    }
    while (this.#entries.size > 0 && this.#entries.size + this.#busy.size > maxNames) this.#entries.pop();
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
    const started = resolveChannel.hasSubscribers || this.#hooks.onAnswer !== undefined ? this.#clock.now() : 0;
    let promise: Promise<Resolution>;
    try {
      promise = Promise.resolve(
        entry.resolver.resolve(entry.name, {
          signal: this.#abort.signal,
          previous: entry.resolution,
          notFound: entry.error instanceof NotFoundError,
        }),
      );
    } catch (error) {
      promise = Promise.reject(error);
    }
    this.#pin(entry);
    entry.inflight = promise.then(
      (resolution) => this.#settle(entry, resolution, undefined, started),
      (error: unknown) => this.#settle(entry, undefined, error, started),
    );
    return entry.inflight;
  }

  /** The end of a query: never throws (nobody may be waiting to catch it). */
  #settle(entry: CacheEntry, resolution: Resolution | undefined, error: unknown, started: number): void {
    entry.inflight = undefined;
    try {
      if (resolution === undefined) this.#failed(entry, error);
      else this.#succeeded(entry, resolution, started);
    } catch (bug) {
      try {
        this.#failed(entry, bug);
      } catch {
        // Reporting the failure failed too: the entry keeps its last state.
      }
    }
    this.#unpin(entry);
  }

  #succeeded(entry: CacheEntry, resolution: Resolution, started: number): void {
    if (entry.evicted) return;
    if (typeof resolution !== 'object' || resolution === null || !Array.isArray(resolution.instances)) {
      this.#failed(entry, new TypeError('the resolver answered without an instances array'));
      return;
    }
    const refused: string[] = [];
    const instances = this.#admit(entry.name, resolution.instances, refused);
    if (resolveChannel.hasSubscribers || this.#hooks.onAnswer !== undefined) {
      const message: ResolveDoneMessage = { name: entry.name, instances, ttl: resolution.ttl, duration: this.#clock.now() - started };
      if (resolveChannel.hasSubscribers) resolveChannel.publish(message);
      this.#hooks.onAnswer?.(message);
    }
    if (instances.length === 0) {
      this.#negative(
        entry,
        refused.length === 0
          ? new NoInstancesError(
              typeof resolution.why === 'string'
                ? `${entry.name} exists but has no instances: ${resolution.why}`
                : `${entry.name} exists but has no instances: check that its tasks/pods are running, ` +
                    'registered and passing health checks',
              { hostname: entry.name },
            )
          : new NoInstancesError(
              `${entry.name} has no instances signpost may use: the registry answered only ${refused.slice(0, 3).join('; ')}` +
                `${refused.length > 3 ? `; and ${refused.length - 3} more` : ''}. ` +
                'Check the addresses registered for it (a task or record pointing at the wrong address), or the addresses option',
              { hostname: entry.name },
            ),
      );
      return;
    }
    entry.error = undefined;
    entry.state = 'fresh';
    entry.expired = false;
    entry.retryMs = 0;
    entry.answers++;
    this.#clearTimers(entry);
    this.#serve(entry, instances);
    // Handed back on the next call for revision gating: only resolvers that keep state use it.
    entry.resolution =
      resolution.state === undefined ? undefined : { instances: entry.instances, ttl: resolution.ttl, state: resolution.state };
    const { minTtl, maxTtl } = this.settings;
    const ttl = Math.min(Math.max(Number.isFinite(resolution.ttl) ? resolution.ttl : maxTtl, minTtl), maxTtl);
    this.#scheduleRefresh(entry, ttl, resolution);
    if (resolution.late !== undefined) this.#joinLate(entry, resolution.late);
  }

  /** When a fresh answer's name is looked at again (the one place that decides it: {@link #refreshDelay}). */
  #scheduleRefresh(entry: CacheEntry, ttl: number, resolution: Resolution): void {
    entry.ttl = ttl;
    entry.refreshDelay = this.#refreshDelay(entry, resolution, ttl);
    this.#at(entry, entry.refreshDelay, REFRESH_DUE);
  }

  /**
   * The instances the address policy lets through (the same array when it refuses none); each
   * refused one is reported, and described in `refused`.
   */
  #admit(name: string, instances: readonly Instance[], refused: string[]): readonly Instance[] {
    let kept: Instance[] | undefined;
    for (let i = 0; i < instances.length; i++) {
      const instance = instances[i]!;
      const reason =
        typeof instance !== 'object' || instance === null
          ? 'not an instance'
          : (this.#policy.refuse(instance.address) ?? refusePort(instance.port));
      if (reason === undefined) {
        kept?.push(instance);
        continue;
      }
      kept ??= instances.slice(0, i);
      const address = typeof instance?.address === 'string' ? instance.address : String(instance?.address);
      refused.push(`${address} (${reason})`);
      if (skippedChannel.hasSubscribers) {
        skippedChannel.publish({
          name,
          id: String(instance?.id),
          address,
          port: typeof instance?.port === 'number' ? instance.port : undefined,
          reason,
        } satisfies SkippedInstanceMessage);
      }
    }
    return kept ?? instances;
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
    const longest = entry.longestTtl;
    const raised = this.#raisedTtl.get(entry);
    this.#raisedTtl.delete(entry);
    if (longest >= 0 && resolution.ttl > longest + 1000 && (raised === undefined || resolution.ttl > raised)) {
      this.#raisedTtl.set(entry, resolution.ttl);
      return Math.min(ttl, STALE_ANSWER_RETRY_MS) + jitter;
    }
    entry.longestTtl = Math.max(longest, resolution.ttl);
    return ttl + 1000 + jitter;
  }

  /**
   * A raised DNS TTL being checked (the longest one seen is kept on the entry). A TTL counted down by a
   * cache never grows past the record's own; one that does is either a record whose TTL was
   * raised, or an expired answer served with a fixed reply TTL (unbound's serve-expired without
   * EDE: 30 s) that would otherwise be kept that long. So it is asked for again after 500 ms: a
   * raised TTL holds up (and is taken), an expired answer gives way to the fresh one the
   * resolver fetched meanwhile.
   */
  readonly #raisedTtl = new WeakMap<CacheEntry, number>();

  /** A family that answered after the resolution delay joins the set, unless a newer answer came first. */
  #joinLate(entry: CacheEntry, late: Promise<Resolution | undefined>): void {
    const answers = entry.answers;
    late.then(
      (resolution) => {
        if (resolution === undefined || entry.answers !== answers || entry.evicted || entry.state !== 'fresh') return;
        this.#succeeded(entry, resolution, this.#clock.now());
      },
      () => {},
    );
  }

  /** Refresh point: refresh a name in use (used since the last refresh, or held); let an unused one lapse at expiry. */
  #refreshDue(entry: CacheEntry, ttl: number): void {
    const remaining = ttl - entry.refreshDelay;
    if (entry.used || entry.waiters > 0) {
      entry.used = false;
      // Served names stay recent in the LRU even though picks never touch it.
      this.#entries.get(entry.name);
      void this.refresh(entry);
    }
    if (remaining > 0) this.#at(entry, remaining, EXPIRE);
    else this.#expired(entry);
  }

  #expired(entry: CacheEntry): void {
    // A refresh that succeeded would have replaced this timer: one is in flight, failed, or was
    // never asked for.
    if (entry.inflight !== undefined && entry.error === undefined) {
      // Keep serving until it answers; #failed turns the entry stale if it does not.
      entry.expired = true;
      return;
    }
    if (!entry.used && entry.waiters === 0 && entry.error === undefined) {
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
    // A whole number of ms (rounded up): a fractional one would be a boxed number on every entry.
    entry.staleUntil = Math.ceil(this.#clock.now() + this.settings.staleTtl);
    // The query that just failed was the last try: the next one waits its (jittered) turn.
    entry.retryMs = STALE_RETRY_MIN_MS;
    this.#nextStaleRetry(entry);
  }

  /** The next retry while stale, or the end of serving stale if that comes first. */
  #nextStaleRetry(entry: CacheEntry): void {
    const wait = entry.retryMs;
    entry.retryMs = Math.min(wait * 2, STALE_RETRY_MAX_MS);
    this.#at(entry, Math.min(jitter(wait), entry.staleUntil - this.#clock.now()), STALE_RETRY);
  }

  #failed(entry: CacheEntry, cause: unknown): void {
    if (entry.evicted) return;
    const error = scrubError(
      cause instanceof SignpostError
        ? cause
        : new ResolveError(
            `Resolving ${entry.name} failed unexpectedly (${cause instanceof Error ? cause.name : typeof cause}): ` +
              'this is a bug in signpost, please report it',
            { hostname: entry.name, cause },
          ),
    );
    if (resolveErrorChannel.hasSubscribers || this.#hooks.onError !== undefined) {
      const message: ResolveErrorMessage = { name: entry.name, error, serving: entry.instances.length };
      if (resolveErrorChannel.hasSubscribers) resolveErrorChannel.publish(message);
      this.#hooks.onError?.(message);
    }
    if (error instanceof NotFoundError) {
      this.#negative(entry, error);
      return;
    }
    // A registry failure: keep serving what we have (fresh until expiry, then stale).
    entry.error = error;
    if (entry.state === 'negative') this.#clearTimers(entry);
    if (entry.expired) this.#stale(entry);
    else if (entry.state !== 'fresh' && entry.state !== 'stale') this.#failedCold(entry);
  }

  /**
   * Nothing to serve and the registry failed: callers get the error at once until the backoff
   * has passed (250 ms, doubling to 1 s, jittered); then the next caller asks again.
   */
  #failedCold(entry: CacheEntry): void {
    this.#clearTimers(entry);
    entry.state = 'failed';
    const wait = entry.retryMs === 0 ? FAILED_RETRY_MIN_MS : Math.min(entry.retryMs * 2, FAILED_RETRY_MAX_MS);
    entry.retryMs = wait;
    this.#at(entry, jitter(wait), BACK_TO_COLD);
  }

  #negative(entry: CacheEntry, error: SignpostError): void {
    this.#clearTimers(entry);
    entry.state = 'negative';
    entry.expired = false;
    entry.retryMs = 0;
    entry.error = error;
    entry.resolution = undefined;
    this.#serve(entry, EMPTY);
    this.#at(entry, this.settings.negativeTtl, BACK_TO_COLD);
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
    this.#deadlines.cancel(entry);
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

  /** Every entry cached, busy ones first. */
  *entries(): IterableIterator<CacheEntry> {
    yield* this.#busy.values();
    yield* this.#entries.values();
  }

  close(): void {
    this.#abort.abort();
    this.#deadlines.clear();
    const entries = [...this.#busy.values(), ...this.#entries.values()];
    this.#busy.clear();
    this.#entries.clear();
    for (const entry of entries) this.#dispose(entry);
  }
}
