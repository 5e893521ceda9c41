/**
 * Discovery: name → alias → route → resolver → cache → balanced instance.
 *
 * Every requested host gets a *view*: the cache entries it draws on (one, or two for a `union`
 * or `fallback` alias) and a balancer over their instances. Views are rebuilt when an entry's
 * set changes, so `pickSync` is one Map lookup and one synchronous `pick`.
 */
import { CacheEntry, ResolutionCache } from './cache.ts';
import { systemClock, type Clock } from './clock.ts';
import { CallbackReporter, containBalancerFactory, containClock, type CallbackKind } from './contain.ts';
import { channels, type ResolveDoneMessage, type ResolveErrorMessage } from './diagnostics.ts';
import {
  ClosedError,
  InvalidArgumentError,
  NoInstancesError,
  NotFoundError,
  ResolveError,
  type SignpostError,
} from './errors.ts';
import { createBalancer, type BalancerSettings } from './balancers/index.ts';
import { HealthTracker, type HealthStats } from './health.ts';
import { instanceKey } from './instance.ts';
import { LiveInstances } from './live.ts';
import { createLookup, type DiscoveryLookup } from './lookup.ts';
import { resolveCallerZone } from './zone.ts';
import type { DiscoveryOptions } from './options.ts';
import { createResolver, ResolverClients } from './resolvers/index.ts';
import { candidatesOf, SearchResolver, searchSettings, type SearchSettings } from './dns/search.ts';
import { isIpLiteral, normalizeName, Router, type Alias, type Aliases } from './routing.ts';
import { parseDiscoveryOptions, type DiscoverySettings } from './settings.ts';
import type { Balancer, BalancerFactory, Instance, Resolver } from './types.ts';
import { checkFunction, checkHostArgument, describe as describeValue, isHostname } from './validate.ts';

const aliasChannel = channels.aliasUse;

/** A change of the instances served for one resolved name. */
export interface InstancesChange {
  readonly name: string;
  readonly instances: readonly Instance[];
  readonly added: readonly Instance[];
  readonly removed: readonly Instance[];
}

class View {
  readonly host: string;
  /** The entry the view draws on (for an alias, its target's), marked used by the hot path. */
  readonly primary: CacheEntry;
  /**
   * The second entry of a `union` or `fallback` alias (the old name's). Two fields rather than an
   * array of entries: an array of one costs 56 bytes on every name.
   */
  readonly secondary: CacheEntry | undefined;
  readonly alias: Alias | undefined;
  readonly balancer: Balancer;
  instances: readonly Instance[] = [];

  constructor(host: string, entries: readonly CacheEntry[], alias: Alias | undefined, balancer: Balancer) {
    this.host = host;
    this.primary = entries[0]!;
    this.secondary = entries[1];
    this.alias = alias;
    this.balancer = balancer;
  }

  /** The entries the view draws on, for the paths that are not hot (a new array each time). */
  get entries(): readonly CacheEntry[] {
    return this.secondary === undefined ? [this.primary] : [this.primary, this.secondary];
  }
}

/**
 * A read-only view of passive health (outlier ejection): what the agent's request outcomes did to
 * each instance. Outcomes are reported by the agent, never by callers.
 */
export interface DiscoveryHealth {
  /** Instances tracked, ejected now, ejections so far, and each instance's counters. */
  stats(): HealthStats;
}

/** The tracker behind a Discovery, for the parts of signpost that report request outcomes (see {@link discoveryHealth}). */
let healthOf!: (discovery: Discovery) => HealthTracker;

export class Discovery {
  readonly #clock: Clock;
  readonly #cache: ResolutionCache;
  /** Reports the user's callbacks (listeners, balancers, clock) that throw. */
  readonly #reporter = new CallbackReporter();
  readonly #balancer: BalancerSettings['policy'];
  readonly #zoneAffinity: BalancerSettings['zoneAffinity'];
  readonly #router: Router;
  readonly #aliases: Aliases;
  readonly #unlistedDns: boolean;
  /** Host → view. Bounded by the cache: a view goes when one of its entries is evicted. */
  readonly #views = new Map<string, View>();
  /**
   * The watchers of each watched view, called with the instances after every change (see
   * `watch`). Kept here, not on the views: few names are watched, and a field costs every name.
   */
  readonly #watchers = new Map<View, Set<(instances: readonly Instance[]) => void>>();
  /**
   * The instances cache entries serve, with how many serve each (pools live while one does).
   * Made from the cache on the first {@link hasInstance} (the agents ask it; a Discovery only
   * resolved and picked from never does) and kept up to date from then on: it holds a Map entry
   * per instance, 60 to 180 bytes of heap per name of three.
   */
  #live: LiveInstances | undefined;
  readonly #listeners = new Set<(change: InstancesChange) => void>();
  readonly #errorListeners = new Set<(event: ResolveErrorMessage) => void>();
  readonly #resolveListeners = new Set<(event: ResolveDoneMessage) => void>();
  readonly #aliasUses = new Map<string, number>();
  readonly #clients: ResolverClients;
  #closed = false;
  readonly #zone: { current: string | undefined } = { current: undefined };
  readonly #zoneWanted: boolean;
  /** Passive health: the agent reports request outcomes here; ejected instances are not picked. */
  readonly #health: HealthTracker;

  static {
    healthOf = (discovery) => discovery.#health;
  }

  constructor(options: DiscoveryOptions = {}) {
    const settings: DiscoverySettings = parseDiscoveryOptions(options);
    this.#clock = containClock(settings.clock ?? systemClock, this.#reporter);
    const { policy } = settings.balancer;
    this.#balancer = typeof policy === 'function' ? containBalancerFactory(policy as BalancerFactory, this.#reporter) : policy;
    this.#unlistedDns = settings.unlisted === 'dns';
    this.#aliases = settings.aliases;
    this.#clients = new ResolverClients(settings.dns, settings.cloudMap, this.#clock);
    this.#router = new Router(settings.services, settings.namespaces, (config, rule) =>
      createResolver(config, this.#clients, rule.kind === 'namespace' ? rule.suffix : undefined),
    );
    this.#health = new HealthTracker(settings.ejection, this.#clock);
    const { zoneOf } = settings.zone;
    this.#cache = new ResolutionCache(
      settings.cache,
      this.#clock,
      {
        onChange: (entry, previous) => this.#entryChanged(entry, previous),
        onEvict: (entry) => this.#entryEvicted(entry),
        onAnswer: (message) => this.#tell(this.#resolveListeners, 'onResolve listener', message),
        onError: (message) => this.#tell(this.#errorListeners, 'onError listener', message),
        ...(zoneOf && { mapInstances: (instances) => withZones(instances, zoneOf) }),
      },
      settings.addresses,
    );
    const zone = settings.zone.zone;
    this.#zoneAffinity = settings.balancer.zoneAffinity;
    this.#zoneWanted = (zone ?? process.env.SIGNPOST_ZONE) !== undefined && this.#zoneAffinity !== false;
    this.zone = this.#findZone(zone);
    this.lookup = createLookup(this);
  }

  /**
   * Passive health, read-only: per-instance in-flight counts, failures and ejections, as the
   * agent's request outcomes left them.
   */
  readonly health: DiscoveryHealth = Object.freeze({ stats: () => this.#health.stats() });

  /**
   * A `dns.lookup`-compatible function (bound: pass it as it is) for `http.Agent`, `https.Agent`,
   * `net.connect`, `tls.connect` and the clients built on them. Each call gives a balanced, not
   * ejected, zone-preferred address of a discovered name; other names go to `dns.lookup`. It
   * returns addresses only: the port is the caller's (see `DiscoveryHttpAgent` for SRV and Cloud
   * Map ports). A discovery failure is a getaddrinfo-style error (`ENOTFOUND`, `EAI_AGAIN`,
   * `EAI_FAIL`) whose `cause` is the SignpostError.
   */
  readonly lookup: DiscoveryLookup;

  /**
   * The caller's zone once known (`zone` option, `SIGNPOST_ZONE`, or the ECS task metadata for
   * 'auto'); undefined when there is none. Zone affinity applies from then on.
   */
  readonly zone: Promise<string | undefined>;

  async #findZone(zone: string | undefined): Promise<string | undefined> {
    const found = await resolveCallerZone(zone === undefined ? {} : { zone });
    if (found !== undefined && !this.#closed) {
      this.#zone.current = found;
      for (const view of this.#views.values()) view.balancer.update(view.instances);
    }
    return found;
  }

  /**
   * Whether requests to this host are discovered (matched by `services`, `namespaces` or
   * `aliases`, or any DNS name with `unlisted: 'dns'`); the agent passes the others through.
   */
  handles(host: string): boolean {
    checkHostArgument('handles()', host);
    const name = normalizeName(host);
    if (isIpLiteral(name) || !isHostname(name)) return false;
    return (
      this.#unlistedDns ||
      this.#aliases.has(name) ||
      this.#router.route(name).listed ||
      this.#candidates(name).some((candidate) => this.#router.route(candidate).listed)
    );
  }

  #search: SearchSettings | undefined;

  /** The names a host is looked up as: the DNS search list applied as getaddrinfo applies it. */
  #candidates(name: string): string[] {
    this.#search ??= searchSettings(this.#clients.dnsSettings());
    return candidatesOf(name, this.#search);
  }

  /**
   * The instances of a name. A warm name answers at once; a cold one waits for one query shared
   * with every concurrent caller. Rejects with a SignpostError: NOT_FOUND, NO_INSTANCES,
   * RESOLVE, INVALID_ARG or CLOSED.
   */
  resolve(host: string): Promise<Instance[]> {
    let view: View;
    try {
      view = this.#viewOf(host, 'resolve()');
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (view.instances.length > 0) {
      this.#used(view);
      return Promise.resolve(copyInstances(view));
    }
    return this.#whenReady(view, copyInstances);
  }

  /** One balanced instance, resolving the name first if needed. */
  pick(host: string): Promise<Instance> {
    let view: View;
    try {
      view = this.#viewOf(host, 'pick()');
    } catch (error) {
      return Promise.reject(error as Error);
    }
    // A warm name: no async function, no await, one settled promise.
    if (view.instances.length > 0) {
      this.#used(view);
      const instance = view.balancer.pick();
      return instance === undefined ? Promise.reject(this.#emptyError(view)) : Promise.resolve(instance);
    }
    return this.#whenReady(view, (ready) => {
      const instance = ready.balancer.pick();
      if (instance === undefined) throw this.#emptyError(ready);
      return instance;
    });
  }

  /**
   * Waits until the view's entries have an answer, then reads it with `read`. The entries are
   * held meanwhile: however many names are resolved at once, the cache bound never evicts an
   * entry before its callers have read it.
   */
  async #whenReady<T>(view: View, read: (view: View) => T): Promise<T> {
    const pending: Array<Promise<void>> = [];
    const entries = view.entries;
    for (const entry of entries) {
      const wait = this.#cache.ensure(entry);
      if (wait !== undefined) pending.push(wait);
    }
    const cache = this.#cache;
    for (const entry of entries) cache.hold(entry);
    try {
      if (pending.length > 0) await Promise.all(pending);
      if (this.#closed) throw new ClosedError();
      if (view.instances.length === 0) throw this.#emptyError(view);
      this.#used(view);
      return read(view);
    } finally {
      for (const entry of entries) cache.release(entry);
    }
  }

  /**
   * The hot path: a balanced instance of a name that is already resolved, or undefined. No I/O,
   * no promise, no clock read. With `exclude` (instance keys already tried), the balancer returns
   * another usable (not ejected) instance while one remains, else undefined.
   */
  pickSync(host: string, exclude?: ReadonlySet<string>): Instance | undefined {
    if (typeof host !== 'string') checkHostArgument('pickSync()', host);
    if (exclude !== undefined && typeof (exclude as Partial<ReadonlySet<string>>).has !== 'function') {
      throw new InvalidArgumentError(
        `Invalid argument to pickSync(): exclude is ${describeValue(exclude)}; expected a Set of instance keys (address:port)`,
      );
    }
    // Views are keyed by the normalized name; only a miss pays for normalizing (`Orders.local.`).
    const view = this.#views.get(host) ?? this.#views.get(normalizeName(host));
    if (view === undefined) return undefined;
    view.primary.used = true;
    if (view.alias !== undefined) this.#aliasUsed(view);
    return view.balancer.pick(exclude);
  }

  /**
   * Keeps a name resolved, refreshed and cached for as long as it is watched, for a
   * client that holds connections and balances on its own (the gRPC resolver): such a client
   * never picks, and a name nobody picks would otherwise lapse at expiry. `listener` gets the
   * instances after every change (an empty list when the name lost them: `resolve()` then says
   * why). The first answer comes from `resolve()`. Returns the function that stops watching.
   */
  watch(host: string, listener: (instances: readonly Instance[]) => void): () => void {
    checkFunction('watch() listener', listener);
    const view = this.#viewOf(host, 'watch()');
    const cache = this.#cache;
    for (const entry of view.entries) cache.hold(entry);
    let watchers = this.#watchers.get(view);
    if (watchers === undefined) this.#watchers.set(view, (watchers = new Set()));
    watchers.add(listener);
    let watching = true;
    return () => {
      if (!watching) return;
      watching = false;
      const now = this.#watchers.get(view);
      now?.delete(listener);
      if (now?.size === 0) this.#watchers.delete(view);
      for (const entry of view.entries) cache.release(entry);
    };
  }

  /** The instances served for a host now, without I/O (empty when not resolved). */
  instancesSync(host: string): readonly Instance[] {
    checkHostArgument('instancesSync()', host);
    return (this.#views.get(host) ?? this.#views.get(normalizeName(host)))?.instances ?? [];
  }

  /** True while some cached name still serves this instance key (`address:port`). */
  hasInstance(key: string): boolean {
    if (typeof key !== 'string') {
      throw new InvalidArgumentError(
        `Invalid argument to hasInstance(): got ${describeValue(key)}; expected an instance key such as "10.0.1.5:8080"`,
      );
    }
    return (this.#live ??= this.#indexLive()).has(key);
  }

  /**
   * Called whenever the instances of a resolved name change. Returns an unsubscribe function.
   * A listener that throws is contained: reported on `signpost:callback:error` (and once as a
   * `SIGNPOST_CALLBACK_ERROR` warning), never stopping the cache or the other listeners.
   */
  onChange(listener: (change: InstancesChange) => void): () => void {
    checkFunction('onChange() listener', listener);
    if (this.#closed) return () => false;
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Called whenever a query for a name fails: the registry failed (`SIGNPOST_ERR_RESOLVE`, with
   * `serving` the instances still served meanwhile, fresh then stale), or the name does not exist
   * (`SIGNPOST_ERR_NOT_FOUND`). The error says what to check for the kind of registry asked (DNS,
   * SRV or Cloud Map). Once per failed query, not per caller. Returns an unsubscribe function; a
   * listener that throws is contained, as for {@link onChange}.
   */
  onError(listener: (event: ResolveErrorMessage) => void): () => void {
    checkFunction('onError() listener', listener);
    if (this.#closed) return () => false;
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /**
   * Called after every answer the registry gives for a name (each query that succeeded, whether
   * or not the instances changed; {@link onChange} tells only changes): `{ name, instances, ttl,
   * duration }`. Returns an unsubscribe function; a listener that throws is contained.
   */
  onResolve(listener: (event: ResolveDoneMessage) => void): () => void {
    checkFunction('onResolve() listener', listener);
    if (this.#closed) return () => false;
    this.#resolveListeners.add(listener);
    return () => this.#resolveListeners.delete(listener);
  }

  #tell<M extends { readonly name: string }>(listeners: ReadonlySet<(message: M) => void>, kind: CallbackKind, message: M): void {
    if (this.#closed) return;
    for (const listener of listeners) {
      try {
        listener(message);
      } catch (error) {
        this.#reporter.report(kind, error, message.name);
      }
    }
  }

  /** Counters: names cached, queries sent upstream, uses of each alias. */
  stats(): { names: number; queries: number; aliasUses: Record<string, number> } {
    return {
      names: this.#cache.size,
      queries: this.#cache.queries,
      aliasUses: Object.fromEntries(this.#aliasUses),
    };
  }

  /**
   * Stops every query and timer and releases every cached name, even while this object stays
   * referenced. Idempotent; afterwards `resolve()` and `pick()` reject with SIGNPOST_ERR_CLOSED.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.close();
    for (const view of this.#views.values()) view.balancer.close?.();
    this.#views.clear();
    this.#watchers.clear();
    // The balancers have left the tracker: the health state of every instance can go.
    if (this.#live !== undefined) this.#health.forget([...this.#live.keys()]);
    this.#health.close();
    this.#live = undefined;
    this.#aliasUses.clear();
    this.#listeners.clear();
    this.#errorListeners.clear();
    this.#resolveListeners.clear();
    await this.#clients.close();
  }

  #used(view: View): void {
    view.primary.used = true;
    if (view.alias !== undefined) this.#aliasUsed(view);
  }

  #aliasUsed(view: View): void {
    const alias = view.alias!;
    const second = view.secondary;
    if (second !== undefined) second.used = true;
    this.#aliasUses.set(alias.from, (this.#aliasUses.get(alias.from) ?? 0) + 1);
    if (aliasChannel.hasSubscribers) {
      aliasChannel.publish({ alias: alias.from, to: alias.to, mode: alias.mode });
    }
  }

  #viewOf(host: string, method: string): View {
    checkHostArgument(method, host);
    if (this.#closed) throw new ClosedError();
    let view = this.#views.get(host);
    if (view !== undefined) return view;
    const name = normalizeName(host);
    view = this.#views.get(name);
    if (view !== undefined) return view;
    if (!isHostname(name) && !isIpLiteral(name)) {
      throw new NotFoundError(
        `${JSON.stringify(host)} is not a valid host name: expected a DNS name such as "orders.myapp.local"`,
        { hostname: host },
      );
    }
    const alias = this.#aliases.get(name);
    let names: string[];
    if (alias === undefined) names = [name];
    else if (alias.mode === 'redirect') names = [alias.to];
    else names = [alias.to, alias.from];
    const entries = names.map((n) => this.#cache.entry(n, this.#resolverFor(n)));
    const balancer = createBalancer(name, {
      balancer: this.#balancer,
      zone: this.#zone,
      // Without a zone to prefer, the zone layer would only add a hop to every pick.
      zoneAffinity: this.#zoneWanted ? this.#zoneAffinity : false,
      health: this.#health,
    });
    view = new View(name, entries, alias, balancer);
    this.#views.set(name, view);
    for (const entry of entries) addView(entry, view);
    this.#rebuild(view);
    return view;
  }

  #resolverFor(name: string): Resolver {
    if (isIpLiteral(name)) {
      const address = name.startsWith('[') ? name.slice(1, -1) : name;
      return createResolver({ via: 'static', instances: [{ address }] }, this.#clients);
    }
    // A name a rule matches as written is complete; any other goes through the search list,
    // each name tried routed on its own.
    const route = this.#router.route(name);
    if (route.listed) return route.resolver;
    const candidates = this.#candidates(name);
    if (candidates.length === 1 && candidates[0] === name) return route.resolver;
    return new SearchResolver(
      candidates.map((candidate) => ({ name: candidate, resolver: this.#router.route(candidate).resolver })),
      this.#search!,
    );
  }

  #rebuild(view: View): void {
    let instances: readonly Instance[];
    const first = view.primary;
    const second = view.secondary;
    if (second === undefined) instances = first.instances;
    else if (view.alias?.mode === 'fallback') instances = first.instances.length > 0 ? first.instances : second.instances;
    else instances = union(first.instances, second.instances);
    if (instances === view.instances) return;
    view.instances = instances;
    view.balancer.update(instances);
    const watchers = this.#watchers.size === 0 ? undefined : this.#watchers.get(view);
    if (watchers !== undefined) {
      for (const watcher of watchers) {
        try {
          watcher(instances);
        } catch (error) {
          this.#reporter.report('onChange listener', error, view.host);
        }
      }
    }
  }

  #entryChanged(entry: CacheEntry, previous: readonly Instance[]): void {
    const views = entry.views as View | View[] | undefined;
    if (views instanceof View) this.#rebuild(views);
    else if (views !== undefined) for (const view of views) this.#rebuild(view);
    let added: readonly Instance[];
    let removed: readonly Instance[];
    if (previous.length === 0 || entry.instances.length === 0) {
      // A first answer, or an emptied name: nothing to compare.
      added = entry.instances;
      removed = previous;
    } else {
      const before = new Set(previous.map(instanceKey));
      const after = new Set(entry.instances.map(instanceKey));
      added = entry.instances.filter((i) => !before.has(instanceKey(i)));
      removed = previous.filter((i) => !after.has(instanceKey(i)));
    }
    const live = this.#live;
    const gone: string[] = [];
    if (live !== undefined) {
      for (const i of added) live.add(i);
      for (const i of removed) if (live.remove(i)) gone.push(instanceKey(i));
    } else {
      // Without the index, every instance that left: the tracker keeps the state of one that another
      // name's balancer still has.
      for (const i of removed) gone.push(instanceKey(i));
    }
    if (gone.length > 0) this.#health.forget(gone);
    // close() empties the cache: that is the end of watching, not a change to report.
    if (!this.#closed && this.#listeners.size > 0 && (added.length > 0 || removed.length > 0)) {
      const change: InstancesChange = { name: entry.name, instances: entry.instances, added, removed };
      for (const listener of this.#listeners) {
        try {
          listener(change);
        } catch (error) {
          this.#reporter.report('onChange listener', error, entry.name);
        }
      }
    }
  }

  #entryEvicted(entry: CacheEntry): void {
    const held = entry.views as View | View[] | undefined;
    entry.views = undefined;
    for (const view of held === undefined ? [] : held instanceof View ? [held] : held) {
      this.#views.delete(view.host);
      this.#watchers.delete(view);
      view.balancer.close?.();
      for (const other of view.entries) if (other !== entry) removeView(other, view);
    }
  }

  /** The index of the instances served, from every cache entry (see {@link #live}). */
  #indexLive(): LiveInstances {
    const live = new LiveInstances();
    for (const entry of this.#cache.entries()) for (const instance of entry.instances) live.add(instance);
    return live;
  }

  #emptyError(view: View): SignpostError {
    const errors = view.entries.map((e) => e.error);
    const transient = errors.find((e) => e instanceof ResolveError);
    if (transient) return transient;
    const names = view.entries.map((e) => e.name);
    if (errors.every((e) => e instanceof NotFoundError)) {
      if (errors.length === 1) return errors[0]!;
      return new NotFoundError(
        `Neither ${names.join(' nor ')} exists (alias ${view.host}, mode ${view.alias?.mode}): ` +
          'check that at least one of them is registered',
        { hostname: view.host, cause: errors[0] },
      );
    }
    const found = errors.find((e) => e instanceof NoInstancesError);
    if (found && errors.length === 1) return found;
    return new NoInstancesError(
      `${view.host} has no instances` +
        (view.alias ? ` (alias of ${view.alias.to}, mode ${view.alias.mode}; looked at ${names.join(' and ')})` : '') +
        ': check that its tasks/pods are running, registered and passing health checks',
      { hostname: view.host },
    );
  }
}

/** Views are kept on the entries they draw on: one (most names), or an array (aliases). */
function addView(entry: CacheEntry, view: View): void {
  const views = entry.views as View | View[] | undefined;
  if (views === undefined) entry.views = view;
  else if (views instanceof View) entry.views = [views, view];
  else views.push(view);
}

function removeView(entry: CacheEntry, view: View): void {
  const views = entry.views as View | View[] | undefined;
  if (views === view) entry.views = undefined;
  else if (Array.isArray(views)) {
    const at = views.indexOf(view);
    if (at >= 0) views.splice(at, 1);
    if (views.length === 1) entry.views = views[0];
    else if (views.length === 0) entry.views = undefined;
  }
}

/**
 * A copy the caller may change. Spread, not slice(): the cache's arrays are frozen, and V8's
 * slice() of a frozen array takes its generic path, ten times slower than copying by iteration.
 */
function copyInstances(view: View): Instance[] {
  return [...view.instances];
}

function withZones(instances: readonly Instance[], zoneOf: (address: string) => string | undefined): Instance[] {
  return instances.map((instance) => {
    if (instance.zone !== undefined) return instance;
    const zone = zoneOf(instance.address);
    return zone === undefined ? instance : Object.freeze({ ...instance, zone });
  });
}

function union(a: readonly Instance[], b: readonly Instance[]): readonly Instance[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const seen = new Set(a.map(instanceKey));
  const merged = a.slice();
  for (const i of b) if (!seen.has(instanceKey(i))) merged.push(i);
  return Object.freeze(merged);
}

/**
 * The health tracker behind a Discovery: the way the request path (the agent, the interceptor,
 * `discovery.lookup` and other clients signpost serves) reports request outcomes and probes
 * ejected instances. Not part of the public API: callers read `discovery.health.stats()`.
 */
export function discoveryHealth(discovery: Discovery): HealthTracker {
  return healthOf(discovery);
}
