/**
 * The DNS client every DNS-based resolver of one Discovery shares: A/AAAA through c-ares (Node's
 * `dns.promises.Resolver`, with TTLs), everything else (SRV) through signpost's own wire client,
 * because Node's `resolveSrv` drops TTLs.
 */
import { channel } from 'node:diagnostics_channel';
import { getServers, promises as dnsPromises } from 'node:dns';
import { setMaxListeners } from 'node:events';
import { isIP } from 'node:net';
import type { RecordType } from 'dns-packet';
import { ClosedError, NotFoundError, ResolveError } from '../errors.ts';
import type { DnsOptions } from '../options.ts';
import { checkDuration, checkInteger, checkKeys, checkObject, invalid } from '../validate.ts';
import { type DnsServer, type WireResponse, WireQueryError, wireQuery } from './wire.ts';

/** Time to wait for one answer, per try, in milliseconds. */
export const DEFAULT_DNS_TIMEOUT_MS = 2000;
/** Tries per server. */
export const DEFAULT_DNS_TRIES = 2;
/** The most tries per server: beyond this a dead server only delays the error. */
export const MAX_DNS_TRIES = 10;
/** Queries one client has in flight at most; more wait their turn. */
export const MAX_QUERIES_IN_FLIGHT = 128;
const DNS_PORT = 53;
/** Headroom on top of timeout × tries × servers before c-ares is given up on. */
const CARES_GUARD_SLACK_MS = 250;

/** One address with its TTL. */
export interface AddressRecord {
  readonly address: string;
  /** In milliseconds. */
  readonly ttl: number;
}

/**
 * Parses `ip`, `ip:port` or `[ipv6]:port`. Returns undefined for anything else.
 */
export function parseDnsServer(value: string): DnsServer | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value);
  if (bracketed) {
    const [, address = '', port] = bracketed;
    return isIP(address) === 6 ? server(address, port, 6, value) : undefined;
  }
  const family = isIP(value);
  if (family === 4 || family === 6) return server(value, undefined, family, value);
  const withPort = /^([^:]+):(\d{1,5})$/.exec(value);
  if (withPort) {
    const [, address = '', port] = withPort;
    return isIP(address) === 4 ? server(address, port, 4, value) : undefined;
  }
  return undefined;
}

function server(address: string, port: string | undefined, family: 4 | 6, label: string): DnsServer | undefined {
  const number = port === undefined ? DNS_PORT : Number(port);
  if (!Number.isInteger(number) || number < 1 || number > 65_535) return undefined;
  return { address, port: number, family, label };
}

/** Checks {@link DnsOptions}; throws InvalidArgumentError naming `path.<option>`. */
export function validateDnsOptions(options: unknown, path = 'dns'): asserts options is DnsOptions {
  checkObject(path, options);
  checkKeys(path, options, ['servers', 'timeout', 'tries']);
  const { servers, timeout, tries } = options;
  if (servers !== undefined) {
    if (!Array.isArray(servers) || servers.length === 0) {
      throw invalid(`${path}.servers`, servers, 'a non-empty array of "ip", "ip:port" or "[ipv6]:port" strings');
    }
    servers.forEach((entry: unknown, index) => {
      if (typeof entry !== 'string' || parseDnsServer(entry) === undefined) {
        throw invalid(`${path}.servers[${index}]`, entry, 'an IP address, "ip:port" or "[ipv6]:port" (port 1 to 65535)');
      }
    });
  }
  if (timeout !== undefined) checkDuration(`${path}.timeout`, timeout, 1);
  if (tries !== undefined) checkInteger(`${path}.tries`, tries, 1, MAX_DNS_TRIES);
}

/** c-ares error codes for a name that is not there, and for an answer with no records. */
const NXDOMAIN_CODES = new Set(['ENOTFOUND']);
const NODATA_CODES = new Set(['ENODATA']);

/**
 * `{ name, type, server, reason }` for every packet the wire client did not accept (wrong ID,
 * wrong question, undecodable, from another port): a steady stream suggests spoofing attempts.
 */
export const ignoredResponseChannel = channel('signpost:dns:ignored-response');

export class DnsClient {
  readonly #servers: readonly DnsServer[];
  readonly #timeout: number;
  readonly #tries: number;
  readonly #resolver: dnsPromises.Resolver;
  readonly #closing = new AbortController();
  #inflight = 0;
  readonly #waiting: Array<{ resolve: () => void }> = [];

  constructor(options: DnsOptions = {}) {
    validateDnsOptions(options);
    // Every query in flight listens on it; the listeners go when the query settles.
    setMaxListeners(0, this.#closing.signal);
    this.#timeout = options.timeout ?? DEFAULT_DNS_TIMEOUT_MS;
    this.#tries = options.tries ?? DEFAULT_DNS_TRIES;
    // The system list can be empty (no resolv.conf): that is a query-time failure, not bad options.
    const labels = options.servers ?? getServers();
    this.#servers = labels.map(parseDnsServer).filter((s): s is DnsServer => s !== undefined);
    // maxTimeout: c-ares doubles the timeout on each retry round unless capped, which would break
    // the "timeout per try" promise. Node's channel has its query cache off (qcache_max_ttl = 0,
    // nodejs/node#57640), so a record removed upstream is gone once its TTL runs out: signpost's
    // cache owns caching; test/dns/client.test.ts guards this.
    this.#resolver = new dnsPromises.Resolver({ timeout: this.#timeout, tries: this.#tries, maxTimeout: this.#timeout });
    if (this.#servers.length > 0) this.#resolver.setServers(this.#servers.map((s) => s.label));
  }

  /** The servers queried, as given (or as the system lists them). */
  get servers(): readonly string[] {
    return this.#servers.map((s) => s.label);
  }

  /** Per try, in milliseconds. */
  get timeout(): number {
    return this.#timeout;
  }

  get tries(): number {
    return this.#tries;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /**
   * The A (family 4) or AAAA (family 6) records of `name`, through c-ares. An empty array is
   * NODATA. Rejects with NotFoundError (NXDOMAIN), ResolveError (anything else failed, or
   * `signal` aborted) or ClosedError.
   */
  async resolveAddresses(name: string, family: 4 | 6, signal?: AbortSignal): Promise<AddressRecord[]> {
    const type = family === 4 ? 'A' : 'AAAA';
    this.#checkUsable(name, type);
    // Two signals raced side by side: AbortSignal.any would cost a dependent signal (and weak
    // references held until GC) per query, on every cold name.
    const closing = this.#closing.signal;
    const guardMs = this.#timeout * this.#tries * Math.max(1, this.#servers.length) + CARES_GUARD_SLACK_MS;
    let acquired = false;
    try {
      await this.#acquire(signal);
      acquired = true;
      const query =
        family === 4
          ? this.#resolver.resolve4(name, { ttl: true })
          : this.#resolver.resolve6(name, { ttl: true });
      // If the race below is lost, the c-ares query still settles later: nobody may see that.
      query.catch(() => {});
      const records = await raceWithSignal(query, signal, closing, guardMs);
      return records.map((r) => ({ address: r.address, ttl: r.ttl * 1000 }));
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && NODATA_CODES.has(code)) return [];
      // c-ares fails every query on a socket when one datagram does not parse, whatever its ID:
      // a junk packet would fail the lookup. Ask again over the wire client, which ignores
      // packets that do not match its question.
      if (code === 'EBADRESP' && !closing.aborted && signal?.aborted !== true) {
        this.#release();
        acquired = false;
        return this.#addressesOverWire(name, type, signal);
      }
      throw this.#toError(name, type, error, signal?.aborted === true ? signal : closing);
    } finally {
      if (acquired) this.#release();
    }
  }

  /**
   * Waits for one of the {@link MAX_QUERIES_IN_FLIGHT} query slots. A burst of cold names (a
   * service starting with many, or a cache emptied by an outage) would otherwise send thousands
   * of datagrams at once, overflow the server's socket buffer and turn into timeouts.
   */
  #acquire(signal: AbortSignal | undefined): Promise<void> | void {
    if (this.#inflight < MAX_QUERIES_IN_FLIGHT) {
      this.#inflight++;
      return;
    }
    return new Promise<void>((resolve, reject) => {
      const closing = this.#closing.signal;
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          closing.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        signal?.removeEventListener('abort', onAbort);
        closing.removeEventListener('abort', onAbort);
        reject(signal?.aborted === true ? signal.reason : closing.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      closing.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next.resolve();
    else this.#inflight--;
  }

  async #addressesOverWire(name: string, type: 'A' | 'AAAA', signal: AbortSignal | undefined): Promise<AddressRecord[]> {
    const response = await this.query(name, type, signal);
    if (response.rcode === 'NXDOMAIN') throw this.notFound(name, type);
    const family = type === 'A' ? 4 : 6;
    const records: AddressRecord[] = [];
    for (const answer of response.answers ?? []) {
      if (answer.type !== type || typeof answer.data !== 'string' || isIP(answer.data) !== family) continue;
      records.push({ address: answer.data, ttl: (answer.ttl ?? 0) * 1000 });
    }
    return records;
  }

  /**
   * Asks `type` of `name` over the wire. Settles with a NOERROR or NXDOMAIN response (the caller
   * reads both); rejects with ResolveError (every try failed, or `signal` aborted) or ClosedError.
   */
  async query(name: string, type: RecordType, signal?: AbortSignal): Promise<WireResponse> {
    const combined = this.#signal(signal);
    this.#checkUsable(name, type);
    let acquired = false;
    try {
      await this.#acquire(combined);
      acquired = true;
      return await wireQuery(this.#servers, { name, type }, {
        timeout: this.#timeout,
        tries: this.#tries,
        signal: combined,
        onIgnored: (server, reason) => {
          if (ignoredResponseChannel.hasSubscribers) {
            ignoredResponseChannel.publish({ name, type, server: server.label, reason });
          }
        },
      });
    } catch (error) {
      throw this.#toError(name, type, error, combined);
    } finally {
      if (acquired) this.#release();
    }
  }

  /** A NotFoundError for `name`, worded the same for both paths. */
  notFound(name: string, type: string): NotFoundError {
    return new NotFoundError(
      `DNS name ${name} does not exist (NXDOMAIN for ${type} from ${this.#serverList()}): ` +
        'is the Cloud Map namespace / service registry configured, and is this the right name?',
      { hostname: name },
    );
  }

  /** Cancels every query in flight and releases every socket and timer. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.#closing.abort(new ClosedError());
    this.#resolver.cancel();
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
  }

  #checkUsable(name: string, type: string): void {
    if (this.closed) throw new ClosedError();
    if (this.#servers.length === 0) {
      throw new ResolveError(
        `Cannot look up ${type} ${name}: no DNS servers are configured; set dns.servers or check /etc/resolv.conf`,
        { hostname: name },
      );
    }
  }

  #serverList(): string {
    return this.#servers.map((s) => s.label).join(', ');
  }

  #toError(name: string, type: string, error: unknown, signal: AbortSignal): Error {
    if (this.closed) return new ClosedError();
    const where = `${type} ${name} from ${this.#serverList()}`;
    if (signal.aborted) {
      return new ResolveError(`DNS query for ${where} was aborted before an answer came`, {
        hostname: name,
        cause: signal.reason,
      });
    }
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && NXDOMAIN_CODES.has(code)) return this.notFound(name, type);
    const budget = `${this.#timeout} ms × ${this.#tries} tries per server`;
    let what: string;
    if (error instanceof WireQueryError) {
      what = `every try failed (${error.message})`;
    } else if (code === 'ESERVFAIL') {
      what = 'the server answered SERVFAIL: check that the server is healthy and that the zone of this name loads';
    } else if (code === 'EREFUSED') {
      what = 'the server answered REFUSED: check that these servers serve this zone and allow queries from this host';
    } else if (code === 'ETIMEOUT' || code === 'SIGNPOST_GUARD_TIMEOUT') {
      what = `no answer within ${budget}: check that the servers are reachable (firewall, security groups) and dns.timeout`;
    } else if (code === 'ECONNREFUSED') {
      what = 'connection refused: check that a DNS server listens there (dns.servers)';
    } else {
      what = `c-ares failed with ${typeof code === 'string' ? code : String(error)}`;
    }
    return new ResolveError(`DNS query for ${where} failed: ${what}`, { hostname: name, cause: error });
  }
}

/** Settles as `promise` does, unless either signal aborts or `guardMs` passes first. */
function raceWithSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  closing: AbortSignal,
  guardMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => finish(() => reject(signal?.aborted === true ? signal.reason : closing.reason));
    const timer = setTimeout(
      () => finish(() => reject(Object.assign(new Error(`no answer within ${guardMs} ms`), { code: 'SIGNPOST_GUARD_TIMEOUT' }))),
      guardMs,
    );
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      closing.removeEventListener('abort', onAbort);
      settle();
    };
    if (signal?.aborted === true || closing.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    closing.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}
