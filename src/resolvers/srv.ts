/**
 * `via: 'srv'`: the instances of a name are the targets of its SRV records (RFC 2782), with the
 * records' ports, priorities and weights. The SRV records are read off the wire (for their TTLs),
 * CNAMEs followed. A target's addresses come from the additional section when the server put
 * every family there (Cloud Map, Consul, Kubernetes do), or when the answer had room to spare
 * (the server had space and gave none of that family: there is none); a full answer may have been
 * trimmed silently, so a family missing from it is asked for. Stateless; the cache owns caching.
 */
import { isIP } from 'node:net';
import type { SrvData } from 'dns-packet';
import { channels } from '../diagnostics.ts';
import { MAX_CNAME_HOPS, negativeTtl, type AddressLookup, type AddressRecord, type DnsClient } from '../dns/client.ts';
import type { WireResponse } from '../dns/wire.ts';
import { listOf } from './dns.ts';
import { normalizeName } from '../routing.ts';
import { NotFoundError, ResolveError, SignpostError } from '../errors.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';

export { MAX_CNAME_HOPS };

export interface SrvResolverConfig {
  /**
   * The SRV name: a fixed name (`_http._tcp.pay.myapp.local`), or a function of the requested
   * name (`(name) => '_http._tcp.' + name`).
   * @default the requested name itself (Cloud Map style)
   */
  srv?: string | ((name: string) => string);
}

const skippedTargetChannel = channels.dnsSkippedTarget;

interface SrvRecord {
  readonly target: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

/** Bytes an AAAA record for `name` takes at most in the additional section (name uncompressed). */
function addressRecordBytes(name: string): number {
  return name.length + 2 + 10 + 16;
}

type Lookup = { readonly found: AddressLookup } | { readonly error: SignpostError };

const FAMILIES: readonly (4 | 6)[] = [4, 6];

export class SrvResolver implements Resolver {
  readonly #client: DnsClient;
  readonly #srv: ((name: string) => string) | undefined;

  /** `config` is checked where it is given (`services`, `namespaces`, the CLI's flags). */
  constructor(client: DnsClient, config: SrvResolverConfig = {}) {
    const { srv } = config;
    this.#srv = typeof srv === 'string' ? () => srv : srv;
    this.#client = client;
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    const srvName = this.#srvName(name);
    const chain = await this.#client.follow(srvName, 'SRV', context.signal);
    const { response } = chain;
    if (chain.records.length === 0 && response.rcode === 'NXDOMAIN') {
      throw this.#client.notFound(srvName, 'SRV', chain.name);
    }
    const records: SrvRecord[] = [];
    for (const answer of chain.records) {
      const data = answer.data as SrvData;
      // RFC 2782: a target of "." means the service is decidedly not available here.
      if (data.target === '.' || data.target === '') continue;
      records.push({ target: data.target, port: data.port, priority: data.priority ?? 0, weight: data.weight ?? 0 });
    }
    const flags = { fromCache: chain.fromCache, stale: chain.stale };
    if (records.length === 0) {
      return {
        instances: [],
        ttl: chain.records.length > 0 ? chain.ttl : negativeTtl(response),
        why:
          chain.records.length > 0
            ? `${srvName} has only SRV records with target ".": the service says it is not available at this name (RFC 2782)`
            : await this.#whyEmpty(name, srvName, context.signal),
      };
    }

    const additional = addressesIn(response);
    const roomy = response.limit - response.bytes;
    const targets = [...new Set(records.map((r) => normalizeName(r.target)))];
    const lookups = new Map<string, Lookup>(
      await Promise.all(
        targets.map(async (target): Promise<[string, Lookup]> => [
          target,
          await this.#lookupTarget(target, additional.get(target), roomy >= addressRecordBytes(target), context.signal),
        ]),
      ),
    );
    return this.#build(name, srvName, records, chain.ttl, flags, lookups);
  }

  /** The instances from the SRV records and each target's addresses (and the late families, if any). */
  #build(
    name: string,
    srvName: string,
    records: readonly SrvRecord[],
    srvTtl: number,
    flags: { fromCache: boolean; stale: boolean },
    lookups: ReadonlyMap<string, Lookup>,
    late = false,
  ): Resolution {
    const instances: Instance[] = [];
    const ids = new Set<string>();
    let ttl = srvTtl;
    let fromCache = flags.fromCache;
    let stale = flags.stale;
    let firstError: SignpostError | undefined;
    for (const record of records) {
      const target = normalizeName(record.target);
      const lookup = lookups.get(target);
      if (lookup === undefined || 'error' in lookup || lookup.found.records.length === 0) {
        const error = lookup !== undefined && 'error' in lookup ? lookup.error : undefined;
        if (error && !(error instanceof NotFoundError)) firstError ??= error;
        if (skippedTargetChannel.hasSubscribers && !late) {
          skippedTargetChannel.publish({
            name,
            srv: srvName,
            target,
            port: record.port,
            reason: error && !(error instanceof NotFoundError) ? 'lookup failed' : 'no address',
            ...(error ? { error } : {}),
          });
        }
        continue;
      }
      const { found } = lookup;
      ttl = Math.min(ttl, found.ttl);
      fromCache ||= found.fromCache;
      stale ||= found.stale;
      const several = found.records.length > 1;
      for (const address of found.records) {
        // With several addresses one target is several instances: name each by where it dials.
        const id = several ? hostPort(address.address, record.port) : `${target}:${record.port}`;
        if (ids.has(id)) continue;
        ids.add(id);
        instances.push({
          id,
          address: address.address,
          port: record.port,
          weight: record.weight,
          priority: record.priority,
          attributes: { target },
        });
      }
    }
    // Only when nothing could be found and something failed: serving stale beats serving nothing.
    if (instances.length === 0 && firstError) throw firstError;
    const why =
      instances.length === 0
        ? `the SRV records of ${srvName} point at targets without addresses (${listOf([...new Set(records.map((r) => normalizeName(r.target)))])}): ` +
          'check that each target has A/AAAA records (in the additional section or its zone)'
        : undefined;
    instances.sort((a, b) => a.priority - b.priority || b.weight - a.weight || compare(a.id, b.id));
    const resolution: { -readonly [K in keyof Resolution]: Resolution[K] } = { instances, ttl, ...only({ fromCache, stale }) };
    if (why !== undefined) resolution.why = why;
    if (!late) {
      const pending = [...lookups].filter(([, l]) => 'found' in l && l.found.late !== undefined);
      if (pending.length > 0) {
        resolution.late = Promise.all(pending.map(async ([target, l]) => [target, await (l as { found: AddressLookup }).found.late] as const)).then(
          (arrived) => {
            const fuller = new Map(lookups);
            let added = false;
            for (const [target, found] of arrived) {
              if (found === undefined) continue;
              fuller.set(target, { found });
              added = true;
            }
            if (!added) return undefined;
            try {
              return this.#build(name, srvName, records, srvTtl, flags, fuller, true);
            } catch {
              return undefined;
            }
          },
        );
      }
    }
    return resolution;
  }

  /**
   * An SRV name without records: whether the service name has addresses instead (the usual
   * mistake is asking for SRV records of a name that has A records), asked once, for one try's time.
   */
  async #whyEmpty(name: string, srvName: string, signal: AbortSignal): Promise<string> {
    const nodata = `${srvName} has no SRV records (NODATA from ${this.#client.serverList()})`;
    let addresses: string[] = [];
    try {
      const found = await this.#client.lookup(name, FAMILIES, AbortSignal.any([signal, AbortSignal.timeout(this.#client.timeout)]));
      addresses = [...new Set(found.records.map((r) => r.address))];
    } catch {
      // A hint only: its failure says nothing more.
    }
    if (addresses.length > 0) {
      return (
        `${nodata}, but ${name} has A/AAAA records (${listOf(addresses.sort())}): find its instances with via: 'dns' and a port ` +
        `(signpost resolve --via dns --port N), or set srv to the name its SRV records are under (such as _http._tcp.${name})`
      );
    }
    return (
      `${nodata}, and ${name} has no A/AAAA records either: does the service register SRV records (a Cloud Map service ` +
      `with DnsRecords of type SRV; a Kubernetes headless service's named port, under _<port>._tcp.${name}) and are its instances running?`
    );
  }

  #srvName(name: string): string {
    if (this.#srv === undefined) return name;
    try {
      const srvName = this.#srv(name);
      if (typeof srvName === 'string' && srvName.length > 0) return srvName;
    } catch (error) {
      throw new ResolveError(`The srv function threw for ${name}`, { hostname: name, cause: error });
    }
    throw new ResolveError(`The srv function gave no SRV name for ${name}: it must return a DNS name`, { hostname: name });
  }

  /**
   * The addresses of one target: the additional section's when it holds every family (or had
   * room for the missing ones), else those plus a lookup of the missing families, answered within
   * the resolution delay once some address is in hand.
   */
  async #lookupTarget(
    target: string,
    given: { readonly 4: AddressRecord[]; readonly 6: AddressRecord[] } | undefined,
    complete: boolean,
    signal: AbortSignal,
  ): Promise<Lookup> {
    const have = given === undefined ? [] : [...given[4], ...given[6]];
    const haveTtl = have.reduce((min, r) => Math.min(min, r.ttl), Infinity);
    const missing = given === undefined ? FAMILIES : complete ? [] : FAMILIES.filter((f) => given[f].length === 0);
    const fromAdditional: AddressLookup = { records: have, ttl: haveTtl, fromCache: false, stale: false };
    if (missing.length === 0) return { found: fromAdditional };
    try {
      const found = await this.#client.lookup(target, missing, signal, { haveAddresses: have.length > 0 });
      return { found: merge(fromAdditional, found) };
    } catch (error) {
      if (have.length > 0) return { found: fromAdditional };
      return {
        error: error instanceof SignpostError ? error : new ResolveError(String(error), { hostname: target, cause: error }),
      };
    }
  }
}

/** Addresses in hand plus a lookup's, with the lookup's late family merged the same way. */
function merge(have: AddressLookup, found: AddressLookup): AddressLookup {
  if (have.records.length === 0) return found;
  const merged: { -readonly [K in keyof AddressLookup]: AddressLookup[K] } = {
    records: [...have.records, ...found.records],
    ttl: Math.min(have.ttl, found.ttl),
    fromCache: found.fromCache,
    stale: found.stale,
  };
  if (found.late !== undefined) merged.late = found.late.then((late) => (late === undefined ? undefined : merge(have, late)));
  return merged;
}

function only(flags: { fromCache: boolean; stale: boolean }): { dnsTtl: true; stale?: true } {
  return { dnsTtl: true, ...(flags.stale && { stale: true }) };
}

/** A and AAAA records in the additional section, by owner name and family. */
function addressesIn(response: WireResponse): Map<string, { 4: AddressRecord[]; 6: AddressRecord[] }> {
  const byName = new Map<string, { 4: AddressRecord[]; 6: AddressRecord[] }>();
  for (const record of response.additionals ?? []) {
    if (record.type !== 'A' && record.type !== 'AAAA') continue;
    const family = record.type === 'A' ? 4 : 6;
    // A record whose data is not an address of its type (a mangled or hostile packet) must never
    // become an instance: the agent would dial whatever string it decoded to.
    if (typeof record.data !== 'string' || isIP(record.data) !== family) continue;
    const owner = normalizeName(record.name);
    let entry = byName.get(owner);
    if (entry === undefined) {
      entry = { 4: [], 6: [] };
      byName.set(owner, entry);
    }
    entry[family].push({ address: record.data, ttl: (record.ttl ?? 0) * 1000 });
  }
  return byName;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
