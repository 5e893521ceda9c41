/**
 * `via: 'dns'`: the instances of a name are its A and/or AAAA records, through the shared
 * {@link DnsClient}. Stateless; the cache owns caching.
 */
import type { AddressLookup, DnsClient } from '../dns/client.ts';
import { NO_ATTRIBUTES } from '../instance.ts';
import type { AddressFamily } from '../options.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';

export interface DnsResolverConfig {
  /** The port of every instance. @default none: the URL's port, else the scheme's */
  port?: number;
  /**
   * 4 (A), 6 (AAAA) or 'any' (both, in parallel: the answer goes out 50 ms after the first
   * family with addresses, and a family that comes later joins the set then). @default 'any'
   */
  family?: AddressFamily;
}

/** TTL of an answer without records (NODATA): the cache's negativeTtl applies. */
const NODATA_TTL_MS = 0;

export class DnsResolver implements Resolver {
  readonly #client: DnsClient;
  readonly #port: number | undefined;
  readonly #families: readonly (4 | 6)[];

  /** `config` is checked where it is given (`services`, `namespaces`, the CLI's flags). */
  constructor(client: DnsClient, config: DnsResolverConfig = {}) {
    this.#client = client;
    this.#port = config.port;
    const family = config.family ?? 'any';
    this.#families = family === 'any' ? [4, 6] : [family];
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    if (context.notFound === true && this.#families.length === 2) {
      // The name did not exist at the last answer: one question (A) says whether it still does
      // not (NXDOMAIN is thrown from here), so a name that stays missing costs one query per
      // negativeTtl, not two. When it exists now, both families are asked as usual.
      await this.#client.lookup(name, [this.#families[0]!], context.signal);
    }
    const resolution = this.#resolution(await this.#client.lookup(name, this.#families, context.signal));
    if (resolution.instances.length > 0) return resolution;
    return { ...resolution, why: await this.#whyEmpty(name, context.signal) };
  }

  /**
   * A name without addresses: whether it has SRV records instead (the usual mistake is asking
   * for the addresses of a name that publishes SRV records), asked once, for one try's time.
   */
  async #whyEmpty(name: string, signal: AbortSignal): Promise<string> {
    const records = this.#families.length === 2 ? 'A/AAAA records' : this.#families[0] === 4 ? 'A records' : 'AAAA records';
    const nodata = `${name} has no ${records} (NODATA from ${this.#client.serverList()})`;
    let targets: string[] = [];
    try {
      const chain = await this.#client.follow(name, 'SRV', AbortSignal.any([signal, AbortSignal.timeout(this.#client.timeout)]));
      targets = chain.records.map((r) => {
        const data = r.data as { target?: unknown; port?: unknown };
        return `${String(data.target)}:${String(data.port)}`;
      });
    } catch {
      // A hint only: its failure says nothing more.
    }
    if (targets.length > 0) {
      const list = listOf(targets.sort());
      return `${nodata}, but it has SRV records (${list}): find its instances with via: 'srv' (signpost resolve --via srv)`;
    }
    return `${nodata}: the name exists, but no instance is registered under it. Are its tasks or pods running, registered and passing their health checks?`;
  }

  #resolution(found: AddressLookup): Resolution {
    const instances: Instance[] = [];
    const seen = new Set<string>();
    for (const record of found.records) {
      if (seen.has(record.address)) continue;
      seen.add(record.address);
      const { address } = record;
      // Two plain literals rather than a spread in the middle of one, which V8 builds property
      // by property (every cold answer makes these objects).
      instances.push(
        this.#port === undefined
          ? { id: address, address, weight: 1, priority: 0, attributes: NO_ATTRIBUTES }
          : { id: address, address, port: this.#port, weight: 1, priority: 0, attributes: NO_ATTRIBUTES },
      );
    }
    const resolution: { -readonly [K in keyof Resolution]: Resolution[K] } = {
      instances,
      ttl: instances.length === 0 ? NODATA_TTL_MS : found.ttl,
    };
    if (instances.length > 0) resolution.dnsTtl = true;
    if (found.stale) resolution.stale = true;
    if (found.late !== undefined) {
      resolution.late = found.late.then((late) => (late === undefined ? undefined : this.#resolution(late)));
    }
    return resolution;
  }
}

/** "a, b, c, d, and 3 more": the first few of a list, for messages. */
export function listOf(items: readonly string[], shown = 4): string {
  const more = items.length > shown ? `, and ${items.length - shown} more` : '';
  return items.slice(0, shown).join(', ') + more;
}
