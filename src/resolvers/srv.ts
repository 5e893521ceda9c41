/**
 * `via: 'srv'`: the instances of a name are the targets of its SRV records (RFC 2782), with the
 * records' ports, priorities and weights. The SRV records are read off the wire (for their TTLs);
 * target addresses come from the additional section when the server put them there (Cloud Map,
 * Consul, Kubernetes do), else from A/AAAA queries. Stateless; the cache owns caching.
 */
import { channel } from 'node:diagnostics_channel';
import { isIP } from 'node:net';
import type { SoaData, SrvData, StringAnswer } from 'dns-packet';
import { DnsClient, type AddressRecord } from '../dns/client.ts';
import { normalizeName, type WireResponse } from '../dns/wire.ts';
import { InvalidArgumentError, NotFoundError, ResolveError, SignpostError } from '../errors.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';
import { checkHostname } from '../validate.ts';

export interface SrvResolverConfig {
  /**
   * The SRV name: a fixed name (`_http._tcp.pay.myapp.local`), or a function of the requested
   * name (`(name) => '_http._tcp.' + name`).
   * @default the requested name itself (Cloud Map style)
   */
  srv?: string | ((name: string) => string);
}

/** CNAMEs followed from the SRV name before giving up: a loop must fail, not hang. */
export const MAX_CNAME_HOPS = 8;

/**
 * `{ name, srv, target, port, reason, error? }` for each SRV target left out because it has no
 * address (or its lookup failed while others succeeded).
 */
export const skippedTargetChannel = channel('signpost:dns:skipped-target');

interface SrvRecord {
  readonly target: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

type Lookup = { readonly records: readonly AddressRecord[] } | { readonly error: SignpostError };

export class SrvResolver implements Resolver {
  readonly #client: DnsClient;
  readonly #srv: ((name: string) => string) | undefined;

  constructor(client: DnsClient, config: SrvResolverConfig = {}) {
    if (!(client instanceof DnsClient)) throw new InvalidArgumentError('SrvResolver needs a DnsClient');
    const { srv } = config;
    if (typeof srv === 'string') {
      checkHostname('srv', srv);
      this.#srv = () => srv;
    } else if (typeof srv === 'function' || srv === undefined) {
      this.#srv = srv;
    } else {
      throw new InvalidArgumentError('Invalid srv: expected an SRV name or a function from the service name to one');
    }
    this.#client = client;
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    const srvName = this.#srvName(name);
    const { records, ttl: srvTtl, response } = await this.#querySrv(name, srvName, context.signal);
    if (records.length === 0) return { instances: [], ttl: srvTtl ?? negativeTtl(response) };

    const additional = addressesIn(response);
    const targets = [...new Set(records.map((r) => normalizeName(r.target)))];
    const lookups = new Map<string, Lookup>(
      await Promise.all(
        targets.map(async (target): Promise<[string, Lookup]> => [
          target,
          additional.get(target) !== undefined
            ? { records: additional.get(target) ?? [] }
            : await this.#lookupTarget(target, context.signal),
        ]),
      ),
    );

    const instances: Instance[] = [];
    const ids = new Set<string>();
    let ttl = srvTtl ?? Infinity;
    let firstError: SignpostError | undefined;
    for (const record of records) {
      const target = normalizeName(record.target);
      const lookup = lookups.get(target);
      if (lookup === undefined || 'error' in lookup || lookup.records.length === 0) {
        const error = lookup !== undefined && 'error' in lookup ? lookup.error : undefined;
        if (error && !(error instanceof NotFoundError)) firstError ??= error;
        if (skippedTargetChannel.hasSubscribers) {
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
      const several = lookup.records.length > 1;
      for (const address of lookup.records) {
        ttl = Math.min(ttl, address.ttl);
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
    instances.sort((a, b) => a.priority - b.priority || b.weight - a.weight || compare(a.id, b.id));
    return { instances, ttl };
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
   * The SRV records at `srvName` after CNAMEs, with the smallest SRV/CNAME TTL met on the way
   * (ms; undefined when there was no SRV record at all).
   */
  async #querySrv(
    name: string,
    srvName: string,
    signal: AbortSignal,
  ): Promise<{ records: SrvRecord[]; ttl: number | undefined; response: WireResponse }> {
    // Every name that had a CNAME: each query below either ends the walk or adds to it.
    const aliased = new Set<string>();
    let queryName = normalizeName(srvName);
    let ttl = Infinity;
    for (;;) {
      const response = await this.#client.query(queryName, 'SRV', signal);
      let current = queryName;
      // The chain the server already followed inside this answer.
      for (;;) {
        const cname = (response.answers ?? []).find(
          (a): a is StringAnswer => a.type === 'CNAME' && normalizeName(a.name) === current,
        );
        if (cname === undefined) break;
        if (aliased.size >= MAX_CNAME_HOPS) {
          throw new ResolveError(
            `SRV lookup for ${name} followed more than ${MAX_CNAME_HOPS} CNAMEs from ${srvName}: fix the CNAME chain`,
            { hostname: name },
          );
        }
        aliased.add(current);
        const next = normalizeName(cname.data);
        if (aliased.has(next)) {
          throw new ResolveError(
            `SRV lookup for ${name} met a CNAME loop at ${next} (from ${srvName}): fix the CNAME records of the SRV name`,
            { hostname: name },
          );
        }
        ttl = Math.min(ttl, (cname.ttl ?? 0) * 1000);
        current = next;
      }
      const records: SrvRecord[] = [];
      let found = false;
      for (const answer of response.answers ?? []) {
        if (answer.type !== 'SRV' || normalizeName(answer.name) !== current) continue;
        found = true;
        ttl = Math.min(ttl, (answer.ttl ?? 0) * 1000);
        const data = answer.data as SrvData;
        // RFC 2782: a target of "." means the service is decidedly not available here.
        if (data.target === '.' || data.target === '') continue;
        records.push({ target: data.target, port: data.port, priority: data.priority ?? 0, weight: data.weight ?? 0 });
      }
      if (found) return { records, ttl, response };
      if (response.rcode === 'NXDOMAIN') {
        throw this.#client.notFound(current === queryName && aliased.size === 0 ? srvName : `${current} (CNAME target of ${srvName})`, 'SRV');
      }
      // The chain left this server's answer (a CNAME into another zone): ask at its end.
      if (current !== queryName) {
        queryName = current;
        continue;
      }
      return { records, ttl: undefined, response };
    }
  }

  async #lookupTarget(target: string, signal: AbortSignal): Promise<Lookup> {
    const settled = await Promise.allSettled([
      this.#client.resolveAddresses(target, 4, signal),
      this.#client.resolveAddresses(target, 6, signal),
    ]);
    const records: AddressRecord[] = [];
    let error: SignpostError | undefined;
    for (const result of settled) {
      if (result.status === 'fulfilled') records.push(...result.value);
      else if (!(result.reason instanceof NotFoundError) || error === undefined) {
        error = result.reason instanceof SignpostError ? result.reason : new ResolveError(String(result.reason), { cause: result.reason });
      }
    }
    if (records.length > 0 || error === undefined) return { records };
    return { error };
  }
}

/** RFC 2308: a negative answer may be cached for min(SOA TTL, SOA minimum); in ms. */
function negativeTtl(response: WireResponse): number {
  const soa = (response.authorities ?? []).find((a) => a.type === 'SOA');
  if (soa === undefined) return 0;
  const minimum = (soa.data as SoaData).minimum ?? 0;
  return Math.min(soa.ttl ?? 0, minimum) * 1000;
}

/** A and AAAA records in the additional section, by owner name. */
function addressesIn(response: WireResponse): Map<string, AddressRecord[]> {
  const byName = new Map<string, AddressRecord[]>();
  for (const record of response.additionals ?? []) {
    if (record.type !== 'A' && record.type !== 'AAAA') continue;
    // A record whose data is not an address of its type (a mangled or hostile packet) must never
    // become an instance: the agent would dial whatever string it decoded to.
    if (typeof record.data !== 'string' || isIP(record.data) !== (record.type === 'A' ? 4 : 6)) continue;
    const owner = normalizeName(record.name);
    const list = byName.get(owner) ?? [];
    list.push({ address: record.data, ttl: (record.ttl ?? 0) * 1000 });
    byName.set(owner, list);
  }
  return byName;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
