/**
 * `via: 'dns'`: the instances of a name are its A and/or AAAA records, through the shared
 * {@link DnsClient}. Stateless; the cache owns caching.
 */
import { DnsClient, type AddressLookup } from '../dns/client.ts';
import { InvalidArgumentError } from '../errors.ts';
import { NO_ATTRIBUTES } from '../instance.ts';
import type { AddressFamily } from '../options.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';
import { checkOneOf, checkPort } from '../validate.ts';

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

  constructor(client: DnsClient, config: DnsResolverConfig = {}) {
    if (!(client instanceof DnsClient)) throw new InvalidArgumentError('DnsResolver needs a DnsClient');
    if (config.port !== undefined) checkPort('port', config.port);
    if (config.family !== undefined) checkOneOf<AddressFamily>('family', config.family, [4, 6, 'any']);
    this.#client = client;
    this.#port = config.port;
    const family = config.family ?? 'any';
    this.#families = family === 'any' ? [4, 6] : [family];
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    return this.#resolution(await this.#client.lookup(name, this.#families, context.signal));
  }

  #resolution(found: AddressLookup): Resolution {
    const instances: Instance[] = [];
    const seen = new Set<string>();
    for (const record of found.records) {
      if (seen.has(record.address)) continue;
      seen.add(record.address);
      instances.push({
        id: record.address,
        address: record.address,
        ...(this.#port === undefined ? {} : { port: this.#port }),
        weight: 1,
        priority: 0,
        attributes: NO_ATTRIBUTES,
      });
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
