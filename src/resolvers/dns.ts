/**
 * `via: 'dns'`: the instances of a name are its A and/or AAAA records, through the shared
 * {@link DnsClient}. Stateless; the cache owns caching.
 */
import { DnsClient, type AddressRecord } from '../dns/client.ts';
import { InvalidArgumentError, NotFoundError, ResolveError, SignpostError } from '../errors.ts';
import { NO_ATTRIBUTES } from '../instance.ts';
import type { AddressFamily } from '../options.ts';
import type { Instance, Resolution, ResolveContext, Resolver } from '../types.ts';
import { checkOneOf, checkPort } from '../validate.ts';

export interface DnsResolverConfig {
  /** The port of every instance. @default none: the URL's port, else the scheme's */
  port?: number;
  /** 4 (A), 6 (AAAA) or 'any' (both, in parallel). @default 'any' */
  family?: AddressFamily;
}

/** TTL of an answer without records (NODATA): c-ares does not give the SOA, so the cache's negativeTtl applies. */
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
    const settled = await Promise.allSettled(
      this.#families.map((family) => this.#client.resolveAddresses(name, family, context.signal)),
    );
    const records: AddressRecord[] = [];
    let failure: SignpostError | undefined;
    let notFound: NotFoundError | undefined;
    let answered = false;
    for (const result of settled) {
      if (result.status === 'fulfilled') {
        answered = true;
        records.push(...result.value);
      } else if (result.reason instanceof NotFoundError) {
        notFound = result.reason;
      } else {
        failure ??=
          result.reason instanceof SignpostError
            ? result.reason
            : new ResolveError(`DNS lookup of ${name} failed unexpectedly`, { hostname: name, cause: result.reason });
      }
    }
    // Data from one family wins over a failure of the other: some servers time out on AAAA only,
    // and the addresses found are right even so.
    if (records.length === 0) {
      if (failure) throw failure;
      if (notFound && !answered) throw notFound;
    }
    if (records.length === 0) return { instances: [], ttl: NODATA_TTL_MS };
    const seen = new Set<string>();
    const instances: Instance[] = [];
    let ttl = Infinity;
    for (const record of records) {
      ttl = Math.min(ttl, record.ttl);
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
    return { instances, ttl };
  }
}
