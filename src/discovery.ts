/**
 * Discovery: name → alias → route → resolver → cache → balanced instance.
 *
 * Every requested host gets a *view*: the cache entries it draws on (one, or two for a `union`
 * or `fallback` alias) and a balancer over their instances. Views are rebuilt when an entry's
 * set changes, so `pickSync` is one Map lookup and one synchronous `pick`.
 */
import { channel } from 'node:diagnostics_channel';
import { CacheEntry, ResolutionCache, validateCacheOptions } from './cache.ts';
import { systemClock, type Clock } from './clock.ts';
import {
  ClosedError,
  NoInstancesError,
  NotFoundError,
  ResolveError,
  type SignpostError,
} from './errors.ts';
import { createBalancer, validateBalancerOptions } from './balancers/index.ts';
import { HealthTracker } from './health.ts';
import { instanceKey } from './instance.ts';
import { createSubnetMatcher, resolveCallerZone, validateZoneOptions } from './zone.ts';
import type { DiscoveryOptions, NamespaceConfig, ServiceConfig } from './options.ts';
import { CloudMapClient, CloudMapResolver, validateCloudMapOptions, type CloudMapResolverConfig } from './resolvers/cloudmap.ts';
import { DnsResolver } from './resolvers/dns.ts';
import { SrvResolver } from './resolvers/srv.ts';
import { parseStaticOverride, StaticResolver } from './resolvers/static.ts';
import { DnsClient, validateDnsOptions } from './dns/client.ts';
import { Aliases, isIpLiteral, normalizeName, Router, validateAliases, type Alias, type RouteRule } from './routing.ts';
import { validateNamespaces, validateServices } from './service-config.ts';
import type { Balancer, Instance, Resolver } from './types.ts';
import { checkKeys, checkObject, checkOneOf, isHostname } from './validate.ts';

const aliasChannel = channel('signpost:alias:use');

/** A change of the instances served for one resolved name. */
export interface InstancesChange {
  readonly name: string;
  readonly instances: readonly Instance[];
  readonly added: readonly Instance[];
  readonly removed: readonly Instance[];
}

class View {
  readonly host: string;
  readonly entries: readonly CacheEntry[];
  /** `entries[0]`, held apart so the hot path marks it used without a loop. */
  readonly primary: CacheEntry;
  readonly alias: Alias | undefined;
  readonly balancer: Balancer;
  instances: readonly Instance[] = [];

  constructor(host: string, entries: readonly CacheEntry[], alias: Alias | undefined, balancer: Balancer) {
    this.host = host;
    this.entries = entries;
    this.primary = entries[0]!;
    this.alias = alias;
    this.balancer = balancer;
  }
}

const KNOWN_OPTIONS = [
  'services',
  'namespaces',
  'aliases',
  'unlisted',
  'dns',
  'cloudMap',
  'cache',
  'balancer',
  'zone',
  'zoneAffinity',
  'subnets',
  'ejection',
  'clock',
] as const;

export class Discovery {
  readonly #clock: Clock;
  readonly #cache: ResolutionCache;
  readonly #router: Router;
  readonly #aliases: Aliases;
  readonly #unlistedDns: boolean;
  /** Host → view. Bounded by the cache: a view goes when one of its entries is evicted. */
  readonly #views = new Map<string, View>();
  /** Resolved name → the views drawing on it. */
  readonly #viewsByName = new Map<string, View[]>();
  /** Instance key → how many cache entries serve it (pools live while this is > 0). */
  readonly #live = new Map<string, number>();
  readonly #listeners = new Set<(change: InstancesChange) => void>();
  readonly #aliasUses = new Map<string, number>();
  readonly #options: DiscoveryOptions;
  #dns: DnsClient | undefined;
  #cloudMap: CloudMapClient | undefined;
  #closed = false;
  readonly #zone: { current: string | undefined } = { current: undefined };
  readonly #zoneWanted: boolean;
  /** Passive health: the agent reports request outcomes here; ejected instances are not picked. */
  readonly health: HealthTracker;

  constructor(options: DiscoveryOptions = {}) {
    const raw: unknown = options;
    checkObject('options', raw);
    checkKeys('', raw, KNOWN_OPTIONS);
    const services: Record<string, ServiceConfig> = { ...options.services };
    if (options.services !== undefined) validateServices(options.services);
    if (options.namespaces !== undefined) validateNamespaces(options.namespaces);
    if (options.aliases !== undefined) validateAliases(options.aliases);
    if (options.unlisted !== undefined) checkOneOf('unlisted', options.unlisted, ['passthrough', 'dns']);
    const cache = validateCacheOptions(options.cache ?? {});
    if (options.dns !== undefined) validateDnsOptions(options.dns);
    if (options.cloudMap !== undefined) validateCloudMapOptions(options.cloudMap);
    validateBalancerOptions(options);
    validateZoneOptions(options);
    this.#options = options;
    this.#clock = options.clock ?? systemClock;

    // Local development: SIGNPOST_STATIC overrides the registry for the names it lists.
    const override = process.env.SIGNPOST_STATIC;
    if (override) {
      for (const [name, instances] of parseStaticOverride(override)) {
        services[name] = { via: 'static', instances };
      }
    }

    this.#unlistedDns = options.unlisted === 'dns';
    this.#aliases = new Aliases(options.aliases ?? {});
    this.#router = new Router(services, options.namespaces ?? {}, (config, rule) => this.#makeResolver(config, rule));
    this.health = new HealthTracker(options.ejection, this.#clock);
    const zoneOf = options.subnets === undefined ? undefined : createSubnetMatcher(options.subnets);
    this.#cache = new ResolutionCache(cache, this.#clock, {
      onChange: (entry, previous) => this.#entryChanged(entry, previous),
      onEvict: (entry) => this.#entryEvicted(entry),
      ...(zoneOf && { mapInstances: (instances) => withZones(instances, zoneOf) }),
    });
    this.#zoneWanted = (options.zone ?? process.env.SIGNPOST_ZONE) !== undefined && options.zoneAffinity !== false;
    this.zone = this.#findZone(options.zone);
  }

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

  #makeResolver(config: ServiceConfig | NamespaceConfig, rule: RouteRule): Resolver {
    switch (config.via) {
      case 'static':
        return new StaticResolver(config.instances);
      case 'dns':
        return new DnsResolver(this.#dnsClient(), {
          ...(config.port !== undefined && { port: config.port }),
          ...(config.family !== undefined && { family: config.family }),
        });
      case 'srv': {
        let srv: string | ((name: string) => string) | undefined;
        if ('srv' in config) srv = config.srv;
        else if ('srvPrefix' in config && config.srvPrefix !== undefined) {
          const prefix = config.srvPrefix;
          srv = (name) => `${prefix}.${name}`;
        }
        return new SrvResolver(this.#dnsClient(), srv === undefined ? {} : { srv });
      }
      case 'cloudmap': {
        const target: CloudMapResolverConfig = {};
        if ('service' in config) {
          target.namespace = config.namespace;
          target.service = config.service;
        } else {
          target.namespace = config.namespace ?? (rule.kind === 'namespace' ? rule.suffix : undefined)!;
        }
        if (config.healthStatus !== undefined) target.healthStatus = config.healthStatus;
        if (config.queryParameters !== undefined) target.queryParameters = config.queryParameters;
        if (config.optionalParameters !== undefined) target.optionalParameters = config.optionalParameters;
        return new CloudMapResolver(this.#cloudMapClient(), target);
      }
    }
  }

  #dnsClient(): DnsClient {
    this.#dns ??= new DnsClient(this.#options.dns ?? {});
    return this.#dns;
  }

  #cloudMapClient(): CloudMapClient {
    this.#cloudMap ??= new CloudMapClient(this.#options.cloudMap ?? {}, this.#clock);
    return this.#cloudMap;
  }

  /**
   * Whether requests to this host are discovered (matched by `services`, `namespaces` or
   * `aliases`, or any DNS name with `unlisted: 'dns'`); the agent passes the others through.
   */
  handles(host: string): boolean {
    const name = normalizeName(host);
    if (isIpLiteral(name) || !isHostname(name)) return false;
    return this.#unlistedDns || this.#aliases.has(name) || this.#router.route(name).listed;
  }

  /**
   * The instances of a name. A warm name answers at once; a cold one waits for one query shared
   * with every concurrent caller. Rejects with a SignpostError: NOT_FOUND, NO_INSTANCES,
   * RESOLVE or CLOSED.
   */
  async resolve(host: string): Promise<Instance[]> {
    const view = this.#viewOf(host);
    if (view.instances.length === 0) {
      const pending: Array<Promise<void>> = [];
      for (const entry of view.entries) {
        const wait = this.#cache.ensure(entry);
        if (wait !== undefined) pending.push(wait);
      }
      if (pending.length > 0) await Promise.all(pending);
      if (this.#closed) throw new ClosedError();
      if (view.instances.length === 0) throw this.#emptyError(view);
    }
    this.#used(view);
    return view.instances.slice();
  }

  /** One balanced instance, resolving the name first if needed. */
  async pick(host: string): Promise<Instance> {
    await this.resolve(host);
    const view = this.#viewOf(host);
    const instance = view.balancer.pick();
    if (instance === undefined) throw this.#emptyError(view);
    return instance;
  }

  /**
   * The hot path: a balanced instance of a name that is already resolved, or undefined. No I/O,
   * no promise, no clock read. With `exclude` (instance keys already tried), the balancer returns
   * another usable (not ejected) instance while one remains, else undefined.
   */
  pickSync(host: string, exclude?: ReadonlySet<string>): Instance | undefined {
    // Views are keyed by the normalized name; only a miss pays for normalizing (`Orders.local.`).
    const view = this.#views.get(host) ?? this.#views.get(normalizeName(host));
    if (view === undefined) return undefined;
    view.primary.used = true;
    if (view.alias !== undefined) this.#aliasUsed(view);
    return view.balancer.pick(exclude);
  }

  /** The instances served for a host now, without I/O (empty when not resolved). */
  instancesSync(host: string): readonly Instance[] {
    return this.#views.get(normalizeName(host))?.instances ?? [];
  }

  /** True while some cached name still serves this instance key (`address:port`). */
  hasInstance(key: string): boolean {
    return this.#live.has(key);
  }

  /** Called whenever the instances of a resolved name change. Returns an unsubscribe function. */
  onChange(listener: (change: InstancesChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counters: names cached, queries sent upstream, uses of each alias. */
  stats(): { names: number; queries: number; aliasUses: Record<string, number> } {
    return {
      names: this.#cache.size,
      queries: this.#cache.queries,
      aliasUses: Object.fromEntries(this.#aliasUses),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.close();
    for (const view of this.#views.values()) view.balancer.close?.();
    this.#views.clear();
    this.#viewsByName.clear();
    this.health.close();
    this.#listeners.clear();
    this.#dns?.close();
    await this.#cloudMap?.close();
  }

  #used(view: View): void {
    view.primary.used = true;
    if (view.alias !== undefined) this.#aliasUsed(view);
  }

  #aliasUsed(view: View): void {
    const alias = view.alias!;
    const second = view.entries[1];
    if (second !== undefined) second.used = true;
    this.#aliasUses.set(alias.from, (this.#aliasUses.get(alias.from) ?? 0) + 1);
    if (aliasChannel.hasSubscribers) {
      aliasChannel.publish({ alias: alias.from, to: alias.to, mode: alias.mode });
    }
  }

  #viewOf(host: string): View {
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
      balancer: this.#options.balancer,
      zone: this.#zone,
      // Without a zone to prefer, the zone layer would only add a hop to every pick.
      zoneAffinity: this.#zoneWanted ? this.#options.zoneAffinity : false,
      health: this.health,
    });
    view = new View(name, entries, alias, balancer);
    this.#views.set(name, view);
    for (const n of names) {
      const list = this.#viewsByName.get(n);
      if (list === undefined) this.#viewsByName.set(n, [view]);
      else list.push(view);
    }
    this.#rebuild(view);
    return view;
  }

  #resolverFor(name: string): Resolver {
    if (isIpLiteral(name)) {
      const address = name.startsWith('[') ? name.slice(1, -1) : name;
      return new StaticResolver([{ address }]);
    }
    return this.#router.route(name).resolver;
  }

  #rebuild(view: View): void {
    let instances: readonly Instance[];
    const [first, second] = view.entries;
    if (second === undefined) instances = first!.instances;
    else if (view.alias?.mode === 'fallback') instances = first!.instances.length > 0 ? first!.instances : second.instances;
    else instances = union(first!.instances, second.instances);
    if (instances === view.instances) return;
    view.instances = instances;
    view.balancer.update(instances);
  }

  #entryChanged(entry: CacheEntry, previous: readonly Instance[]): void {
    for (const view of this.#viewsByName.get(entry.name) ?? []) this.#rebuild(view);
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
    for (const i of added) {
      const key = instanceKey(i);
      this.#live.set(key, (this.#live.get(key) ?? 0) + 1);
    }
    const gone: string[] = [];
    for (const i of removed) {
      const key = instanceKey(i);
      const count = (this.#live.get(key) ?? 1) - 1;
      if (count > 0) this.#live.set(key, count);
      else {
        this.#live.delete(key);
        gone.push(key);
      }
    }
    if (gone.length > 0) this.health.forget(gone);
    if (this.#listeners.size > 0 && (added.length > 0 || removed.length > 0)) {
      const change: InstancesChange = { name: entry.name, instances: entry.instances, added, removed };
      for (const listener of this.#listeners) listener(change);
    }
  }

  #entryEvicted(entry: CacheEntry): void {
    const views = this.#viewsByName.get(entry.name) ?? [];
    this.#viewsByName.delete(entry.name);
    for (const view of views) {
      this.#views.delete(view.host);
      view.balancer.close?.();
      for (const other of view.entries) {
        if (other === entry) continue;
        const list = this.#viewsByName.get(other.name);
        if (list) list.splice(list.indexOf(view), 1);
      }
    }
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

