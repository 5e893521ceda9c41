/**
 * `discovery.lookup`: a function with the contract of `dns.lookup`, for the clients that take a
 * lookup hook (`http.Agent`, `https.Agent`, `net.connect`, `tls.connect`, and the libraries built
 * on them). Each call gives a balanced, not ejected, zone-preferred address of a discovered name;
 * every other name (and IP literals, `localhost`, bad arguments) goes to Node's own `dns.lookup`,
 * so what the caller sees there is exactly Node's.
 *
 * Node's contract, kept: the callback is always called on a later tick, never inside a promise;
 * `(err, address, family)`, or `(err, addresses)` with `all: true`; `family` 0/4/6/'IPv4'/'IPv6';
 * `hints` (ADDRCONFIG, V4MAPPED, ALL); `order` and `verbatim`; argument errors are thrown
 * synchronously, and are Node's own errors. A discovery failure is a getaddrinfo-style error
 * (`code` ENOTFOUND, EAI_AGAIN or EAI_FAIL, with `errno`, `syscall` and `hostname`, as clients
 * expect from a lookup) whose `cause` is the SignpostError saying what to check.
 */
import dns from 'node:dns';
import { networkInterfaces } from 'node:os';
import { getSystemErrorMap, promisify } from 'node:util';
import { discoveryHealth, type Discovery } from './discovery.ts';
import { NoInstancesError, SignpostError } from './errors.ts';
import { instanceKey } from './instance.ts';
import { coldWaits } from './process-hold.ts';
import type { Instance } from './types.ts';

/** The overloads of `dns.lookup`: a `DiscoveryLookup` goes wherever `dns.lookup` does. */
export interface DiscoveryLookup {
  (hostname: string, family: number, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void;
  (
    hostname: string,
    options: dns.LookupOneOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
  ): void;
  (
    hostname: string,
    options: dns.LookupAllOptions,
    callback: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
  ): void;
  (
    hostname: string,
    options: dns.LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family: number) => void,
  ): void;
  (hostname: string, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void;
}

type Order = 'verbatim' | 'ipv4first' | 'ipv6first';
type AnyCallback = (err: NodeJS.ErrnoException | null, address?: string | dns.LookupAddress[] | null, family?: number) => void;

interface Query {
  readonly family: 0 | 4 | 6;
  readonly hints: number;
  readonly all: boolean;
  readonly order: Order;
}

type AnyLookup = (...args: unknown[]) => unknown;
/** Marks signpost's lookups, so that `dns.lookup = discovery.lookup` never makes one call itself. */
const kSignpostLookup = Symbol('signpost.lookup');
/** Node's own lookup as it was when signpost loaded. */
const originalLookup = dns.lookup as AnyLookup;

/**
 * `dns.lookup` as it is now (a wrapper someone installed is kept, as net would call it), unless
 * it is a signpost lookup itself.
 */
function nodeLookup(...args: unknown[]): unknown {
  const current = dns.lookup as AnyLookup & { [kSignpostLookup]?: true };
  return (current[kSignpostLookup] === true ? originalLookup : current)(...args);
}
const HINT_FLAGS = dns.ADDRCONFIG | dns.ALL | dns.V4MAPPED;
const ORDERS: readonly string[] = ['verbatim', 'ipv4first', 'ipv6first'];
/** Names whose handling (discovered or passed through) is remembered before the memory is cleared. */
const MAX_REMEMBERED_NAMES = 4096;
/** How long the host's configured address families (for ADDRCONFIG) are trusted, in milliseconds. */
const HOST_FAMILIES_TTL_MS = 10_000;

/** What one instance set holds, worked out once per set (sets are replaced, never changed). */
interface SetInfo {
  readonly hasV4: boolean;
  readonly hasV6: boolean;
  /** Keys of the IPv4 instances: excluded when only IPv6 may be given. */
  readonly v4Keys: ReadonlySet<string>;
  /** Keys of the IPv6 instances: excluded when only IPv4 may be given. */
  readonly v6Keys: ReadonlySet<string>;
}

const setInfos = new WeakMap<readonly Instance[], SetInfo>();
const warnedPorts = new Set<string>();

function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

function infoOf(name: string, instances: readonly Instance[]): SetInfo {
  let info = setInfos.get(instances);
  if (info !== undefined) return info;
  const v4Keys = new Set<string>();
  const v6Keys = new Set<string>();
  const ports = new Set<number>();
  for (const instance of instances) {
    (familyOf(instance.address) === 4 ? v4Keys : v6Keys).add(instanceKey(instance));
    if (instance.port !== undefined) ports.add(instance.port);
  }
  info = { hasV4: v4Keys.size > 0, hasV6: v6Keys.size > 0, v4Keys, v6Keys };
  setInfos.set(instances, info);
  if (ports.size > 1 && !warnedPorts.has(name) && warnedPorts.size < MAX_REMEMBERED_NAMES) {
    warnedPorts.add(name);
    process.emitWarning(
      `signpost: the instances of ${name} listen on different ports (${[...ports].slice(0, 4).join(', ')}${ports.size > 4 ? ', …' : ''}), ` +
        'but a lookup function returns addresses only: connections made through discovery.lookup use the port the caller gave. ' +
        'Use DiscoveryHttpAgent / DiscoveryHttpsAgent for HTTP, or discovery.pick() for { address, port }',
      { code: 'SIGNPOST_LOOKUP_PORTS' },
    );
  }
  return info;
}

/** The address families this host has configured beyond loopback and link-local, as ADDRCONFIG asks. */
let hostFamilies: { v4: boolean; v6: boolean; until: number } | undefined;

function configuredFamilies(): { v4: boolean; v6: boolean } {
  const now = Date.now();
  if (hostFamilies !== undefined && now < hostFamilies.until) return hostFamilies;
  let v4 = false;
  let v6 = false;
  try {
    for (const list of Object.values(networkInterfaces())) {
      for (const entry of list ?? []) {
        if (entry.internal) continue;
        if (entry.family === 'IPv4') v4 = true;
        else if (!entry.address.toLowerCase().startsWith('fe80:')) v6 = true;
      }
    }
  } catch {
    // Unknown: filter nothing.
  }
  hostFamilies = { v4, v6, until: now + HOST_FAMILIES_TTL_MS };
  return hostFamilies;
}

/**
 * The family an answer may hold: 4, 6, 0 for either, or 'mapped' (IPv6 asked with V4MAPPED: IPv4
 * addresses too, given as IPv4-mapped IPv6). ADDRCONFIG drops a family this host has no address
 * of; a host with neither configured (loopback only) drops nothing, as instances on loopback
 * are then all it can reach anyway.
 */
function allowedFamily(query: Query, info: SetInfo): 0 | 4 | 6 | 'mapped' {
  if (query.family === 4) return 4;
  if (query.family === 6) {
    if ((query.hints & dns.V4MAPPED) !== 0 && info.hasV4 && (!info.hasV6 || (query.all && (query.hints & dns.ALL) !== 0))) {
      return 'mapped';
    }
    return 6;
  }
  if ((query.hints & dns.ADDRCONFIG) !== 0 && info.hasV4 && info.hasV6) {
    const host = configuredFamilies();
    if (host.v4 && !host.v6) return 4;
    if (host.v6 && !host.v4) return 6;
  }
  return 0;
}

/** The family the first address should be of, by `order`, when the set has it and it is allowed. */
function preferredFamily(query: Query, info: SetInfo, allowed: 0 | 4 | 6 | 'mapped'): 0 | 4 | 6 {
  if (allowed !== 0) return 0;
  if (query.order === 'ipv4first' && info.hasV4) return 4;
  if (query.order === 'ipv6first' && info.hasV6) return 6;
  return 0;
}

function excludedFor(want: 0 | 4 | 6 | 'mapped', info: SetInfo): ReadonlySet<string> | undefined {
  if (want === 4) return info.v6Keys.size > 0 ? info.v6Keys : undefined;
  if (want === 6) return info.v4Keys.size > 0 ? info.v4Keys : undefined;
  return undefined;
}

function fits(address: string, want: 0 | 4 | 6 | 'mapped'): boolean {
  return want === 0 || want === 'mapped' || familyOf(address) === want;
}

function toAnswer(address: string, want: 0 | 4 | 6 | 'mapped'): dns.LookupAddress {
  if (want === 'mapped' && familyOf(address) === 4) return { address: `::ffff:${address}`, family: 6 };
  return { address, family: familyOf(address) };
}

const errnos = new Map<string, number>();
function errnoOf(name: string): number | undefined {
  if (errnos.size === 0) for (const [errno, [code]] of getSystemErrorMap()) errnos.set(code, errno);
  return errnos.get(name);
}

/**
 * The error a lookup gives when discovery failed, shaped as getaddrinfo's: `ENOTFOUND` for a name
 * that does not exist or has no (usable) instance, `EAI_AGAIN` when the registry failed (a
 * temporary failure, as a resolver timing out is), `EAI_FAIL` for a closed Discovery. The
 * SignpostError is its `cause`, and its message follows Node's own.
 */
export function lookupError(hostname: string, cause: unknown): NodeJS.ErrnoException {
  const signpost = cause instanceof SignpostError ? cause : undefined;
  const code =
    signpost?.code === 'SIGNPOST_ERR_RESOLVE' ? 'EAI_AGAIN' : signpost?.code === 'SIGNPOST_ERR_CLOSED' ? 'EAI_FAIL' : 'ENOTFOUND';
  const detail = signpost !== undefined ? ` (${signpost.code}: ${signpost.message})` : '';
  const error = new Error(`getaddrinfo ${code} ${hostname}${detail}`, { cause }) as NodeJS.ErrnoException & { hostname: string };
  const errno = errnoOf(code === 'ENOTFOUND' ? 'EAI_NONAME' : code);
  if (errno !== undefined) error.errno = errno;
  error.code = code;
  error.syscall = 'getaddrinfo';
  error.hostname = hostname;
  return error;
}

/** The options of a call, as Node reads them; undefined when Node would throw. */
function parseOptions(options: unknown, callback: unknown): { query: Query; callback: AnyCallback } | undefined {
  if (typeof options === 'function') {
    return { query: { family: 0, hints: 0, all: false, order: defaultOrder() }, callback: options as AnyCallback };
  }
  if (typeof callback !== 'function') return undefined;
  if (typeof options === 'number') {
    if (options !== 0 && options !== 4 && options !== 6) return undefined;
    return { query: { family: options, hints: 0, all: false, order: defaultOrder() }, callback: callback as AnyCallback };
  }
  if (options !== undefined && typeof options !== 'object') return undefined;
  const o = (options ?? {}) as Record<string, unknown>;
  let family: 0 | 4 | 6 = 0;
  let hints = 0;
  let all = false;
  let order: Order = defaultOrder();
  if (o.hints != null) {
    if (typeof o.hints !== 'number') return undefined;
    hints = o.hints >>> 0;
    if ((hints & ~HINT_FLAGS) !== 0) return undefined;
  }
  if (o.family != null) {
    if (o.family === 'IPv4' || o.family === 4) family = 4;
    else if (o.family === 'IPv6' || o.family === 6) family = 6;
    else if (o.family !== 0) return undefined;
  }
  if (o.all != null) {
    if (typeof o.all !== 'boolean') return undefined;
    all = o.all;
  }
  if (o.verbatim != null) {
    if (typeof o.verbatim !== 'boolean') return undefined;
    order = o.verbatim ? 'verbatim' : 'ipv4first';
  }
  if (o.order != null) {
    if (typeof o.order !== 'string' || !ORDERS.includes(o.order)) return undefined;
    order = o.order as Order;
  }
  return { query: { family, hints, all, order }, callback: callback as AnyCallback };
}

function defaultOrder(): Order {
  return dns.getDefaultResultOrder() as Order;
}

/**
 * Throws the error Node's own `dns.lookup` throws for these arguments (an IP literal stands in
 * for the name, so nothing is looked up); a valid call there would answer a no-op callback.
 */
function throwAsNode(options: unknown, callback: unknown): never {
  nodeLookup('127.0.0.1', options, typeof callback === 'function' ? () => undefined : callback);
  throw new TypeError('Invalid arguments to lookup(): see dns.lookup for the options it takes');
}

/** Builds `discovery.lookup`. */
export function createLookup(discovery: Discovery): DiscoveryLookup {
  /** Name → whether discovery handles it (else it goes to dns.lookup). */
  const handled = new Map<string, boolean>();
  let zone: string | undefined;
  discovery.zone.then(
    (found) => (zone = found),
    () => undefined,
  );

  const handles = (hostname: string): boolean => {
    let known = handled.get(hostname);
    if (known === undefined) {
      const lower = hostname.toLowerCase();
      // localhost is never a DNS name (RFC 6761): getaddrinfo answers it, whatever `unlisted` says.
      known = lower !== 'localhost' && lower !== 'localhost.' && !lower.endsWith('.localhost') && discovery.handles(hostname);
      if (handled.size >= MAX_REMEMBERED_NAMES) handled.clear();
      handled.set(hostname, known);
    }
    return known;
  };

  /** The answer for a resolved name, or undefined when it has no instance of a family asked for. */
  const answer = (hostname: string, query: Query): dns.LookupAddress[] | dns.LookupAddress | undefined => {
    let picked = discovery.pickSync(hostname);
    if (picked === undefined) return undefined;
    const instances = discovery.instancesSync(hostname);
    const info = instances.length > 1 || query.family !== 0 || query.all ? infoOf(hostname, instances) : undefined;
    let want: 0 | 4 | 6 | 'mapped' = 0;
    let prefer: 0 | 4 | 6 = 0;
    if (info !== undefined) {
      want = allowedFamily(query, info);
      prefer = preferredFamily(query, info, want);
      const first = prefer === 0 ? want : prefer;
      if (!fits(picked.address, first)) {
        const exclude = excludedFor(first, info);
        picked = exclude === undefined ? undefined : discovery.pickSync(hostname, exclude);
        if (picked === undefined || !fits(picked.address, first)) return undefined;
      }
    }
    if (!query.all) return toAnswer(picked.address, want);
    const at = instances.indexOf(picked);
    const list = [want === 'mapped' || at < 0 ? toAnswer(picked.address, want) : statesOf(instances).answers[at]!];
    fallbacks(instances, picked, at, want, list);
    // `order` sorts the whole list (stably: the balanced address, of the preferred family, stays first).
    if (prefer !== 0) list.sort((a, b) => (a.family === prefer ? 0 : 1) - (b.family === prefer ? 0 : 1));
    return list;
  };

  interface SetStates {
    /** The health state of each instance (read for `ejected` on every call; the objects stay). */
    readonly states: Array<{ readonly ejected?: boolean }>;
    /** Each instance's answer, frozen and shared by every call, as cacheable-lookup shares its entries. */
    readonly answers: readonly dns.LookupAddress[];
    /** Whether addresses repeat (SRV: one host, several ports). */
    readonly repeats: boolean;
  }
  const setStates = new WeakMap<readonly Instance[], SetStates>();
  const statesOf = (instances: readonly Instance[]): SetStates => {
    let known = setStates.get(instances);
    if (known === undefined) {
      const addresses = new Set(instances.map((i) => i.address));
      known = {
        states: instances.map((i) => discoveryHealth(discovery).state(i)),
        answers: instances.map((i) => Object.freeze(toAnswer(i.address, 0))),
        repeats: addresses.size < instances.length,
      };
      setStates.set(instances, known);
    }
    return known;
  };

  /**
   * The addresses after the balanced one, for `all: true` (net tries them in turn when a connect
   * fails): the other usable instances of the families asked for, not ejected, the caller's zone
   * first, each address once, starting after the one picked so callers spread.
   */
  const fallbacks = (
    instances: readonly Instance[],
    picked: Instance,
    pickedAt: number,
    want: 0 | 4 | 6 | 'mapped',
    into: dns.LookupAddress[],
  ): void => {
    const n = instances.length;
    if (n < 2) return;
    const { states, answers, repeats } = statesOf(instances);
    const start = Math.max(0, pickedAt) + 1;
    const seen = repeats ? new Set<string>([picked.address]) : undefined;
    let other: dns.LookupAddress[] | undefined;
    for (let i = 0; i < n - 1; i++) {
      const at = (start + i) % n;
      const instance = instances[at]!;
      if (states[at]!.ejected === true || !fits(instance.address, want)) continue;
      if (seen !== undefined) {
        if (seen.has(instance.address)) continue;
        seen.add(instance.address);
      }
      const answer = want === 'mapped' ? toAnswer(instance.address, want) : answers[at]!;
      if (zone !== undefined && instance.zone !== undefined && instance.zone !== zone) (other ??= []).push(answer);
      else into.push(answer);
    }
    if (other !== undefined) for (const answer of other) into.push(answer);
  };

  const deliver = (callback: AnyCallback, query: Query, result: dns.LookupAddress[] | dns.LookupAddress): void => {
    if (Array.isArray(result)) process.nextTick(callback, null, result);
    else if (query.all) process.nextTick(callback, null, [result]);
    else process.nextTick(callback, null, result.address, result.family);
  };

  const lookup = function lookup(hostname: unknown, options?: unknown, callback?: unknown): unknown {
    // Anything Node answers without a DNS name (bad or empty names, IP literals), and names signpost
    // does not discover, are Node's: same answer, same errors, same warnings.
    if (typeof hostname !== 'string' || hostname === '' || !handles(hostname)) {
      return nodeLookup(hostname, options, callback);
    }
    const parsed = parseOptions(options, callback);
    if (parsed === undefined) throwAsNode(options, callback);
    const { query, callback: done } = parsed;
    const warm = answer(hostname, query);
    if (warm !== undefined) {
      deliver(done, query, warm);
      return {};
    }
    // Cold, or no instance of the family asked for: resolve (one query shared with every caller),
    // then answer from what is served.
    coldWaits.hold();
    discovery.resolve(hostname).then(
      () => {
        coldWaits.release();
        let result: dns.LookupAddress[] | dns.LookupAddress | undefined;
        try {
          result = answer(hostname, query);
        } catch (error) {
          process.nextTick(done, lookupError(hostname, error));
          return;
        }
        if (result !== undefined) deliver(done, query, result);
        else process.nextTick(done, lookupError(hostname, noFamily(hostname, query)));
      },
      (error: unknown) => {
        coldWaits.release();
        process.nextTick(done, lookupError(hostname, error));
      },
    );
    return {};
  } as DiscoveryLookup;

  Object.defineProperty(lookup, kSignpostLookup, { value: true });
  // util.promisify(discovery.lookup) resolves as promisified dns.lookup does: { address, family },
  // or the array with all: true.
  Object.defineProperty(lookup, promisify.custom, {
    value: (hostname: string, options?: unknown) =>
      new Promise((resolve, reject) => {
        const all = typeof options === 'object' && options !== null && (options as { all?: unknown }).all === true;
        (lookup as (h: string, o: unknown, c: AnyCallback) => unknown)(hostname, options ?? {}, (err, address, family) => {
          if (err) reject(err);
          else resolve(all ? address : { address, family });
        });
      }),
  });
  return lookup;
}

function noFamily(hostname: string, query: Query): SignpostError {
  const family = query.family === 0 ? 'usable' : `IPv${query.family}`;
  return new NoInstancesError(
    `${hostname} has no ${family} instance: its instances are all of the other address family` +
      (query.family === 0 ? ' (hints ADDRCONFIG or order)' : '') +
      '; check the family the caller asks for (family option), or the records the registry holds (A or AAAA)',
    { hostname },
  );
}
