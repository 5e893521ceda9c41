/**
 * The one DNS client every DNS-based resolver of a Discovery shares: A, AAAA and SRV over
 * signpost's own hardened wire client (`wire.ts`), with server selection that remembers failing
 * servers (`servers.ts`), CNAME chains followed with owner-name checks, and the system's
 * resolv.conf semantics when no servers are given (`resolv-conf.ts`).
 */
import { getServers } from 'node:dns';
import { setMaxListeners } from 'node:events';
import { isIP } from 'node:net';
import type { Answer, OptAnswer, RecordType, SoaData } from 'dns-packet';
import { channels } from '../diagnostics.ts';
import { ClosedError, NotFoundError, ResolveError } from '../errors.ts';
import type { DnsOptions } from '../options.ts';
import { normalizeName } from '../routing.ts';
import { checkDuration, checkHostname, checkInteger, checkKeys, checkObject, checkString, invalid } from '../validate.ts';
import { MAX_NDOTS, RESOLV_CONF_PATH, readResolvConf } from './resolv-conf.ts';
import { ServerSet } from './servers.ts';
import { UdpSockets } from './udp.ts';
import {
  type DnsServer,
  EDE_STALE_ANSWER,
  EDE_STALE_NXDOMAIN,
  exchange,
  ExchangeError,
  type WireQuestion,
  type WireResponse,
} from './wire.ts';

/** Time to wait for one answer, per try, in milliseconds. */
export const DEFAULT_DNS_TIMEOUT_MS = 2000;
/** Tries per server. */
export const DEFAULT_DNS_TRIES = 2;
/** The most tries per server: beyond this a dead server only delays the error. */
export const MAX_DNS_TRIES = 10;
/** The most queries `dns.udpMaxQueries` lets one UDP socket carry. */
export const MAX_UDP_QUERIES = 256;
/** Queries one client has in flight at most; more wait their turn. */
export const MAX_QUERIES_IN_FLIGHT = 128;
/** CNAMEs followed from a name before giving up: a loop must fail, not hang. */
export const MAX_CNAME_HOPS = 8;
/**
 * RFC 8305's Resolution Delay: once one address family has answered with addresses, the other
 * gets this long before the answer goes out without it (it joins later if it comes).
 */
export const RESOLUTION_DELAY_MS = 50;
const DNS_PORT = 53;

/** A record of any type but OPT. */
export type DnsRecord = Exclude<Answer, OptAnswer>;

/** One address with its TTL. */
export interface AddressRecord {
  readonly address: string;
  /** In milliseconds. */
  readonly ttl: number;
}

/** What one or two address lookups of a name found. */
export interface AddressLookup {
  /** Empty when the name exists without addresses of the families asked (NODATA). */
  readonly records: readonly AddressRecord[];
  /** The smallest TTL along the way (CNAMEs and addresses), in ms; Infinity when there were no records. */
  readonly ttl: number;
  /** Some answer came from a caching resolver (not authoritative): its TTL was counting down. */
  readonly fromCache: boolean;
  /** The server said some answer is past its expiry (RFC 8914 EDE 3 or 19). */
  readonly stale: boolean;
  /**
   * When a family was still on its way after {@link RESOLUTION_DELAY_MS}: settles with the full
   * lookup once it answers (undefined when it added nothing or failed). Never rejects.
   */
  readonly late?: Promise<AddressLookup | undefined>;
}

/** The records of one type at the end of a name's CNAME chain. */
export interface ChainAnswer {
  /** The name the records belong to (the end of the chain). */
  readonly name: string;
  /** Records of the type asked, owned by `name`. */
  readonly records: readonly DnsRecord[];
  /** The smallest TTL of the CNAMEs and records, in ms (Infinity when none). */
  readonly ttl: number;
  /** The last response (its additional and authority sections). */
  readonly response: WireResponse;
  readonly fromCache: boolean;
  readonly stale: boolean;
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

const DNS_OPTION_KEYS = ['servers', 'timeout', 'tries', 'search', 'ndots', 'rotate', 'randomizeCase', 'udpMaxQueries', 'resolvConf'];

/**
 * Checks {@link DnsOptions} (throws InvalidArgumentError naming `path.<option>`) and returns a
 * frozen copy. The defaults that depend on resolv.conf are applied by {@link dnsSettings}, when
 * DNS is first used.
 */
export function parseDnsOptions(options: unknown, path = 'dns'): DnsOptions {
  checkDnsOptions(options, path);
  const copy: DnsOptions = { ...options };
  if (options.servers !== undefined) copy.servers = [...options.servers];
  if (options.search !== undefined) copy.search = [...options.search];
  return Object.freeze(copy);
}

function checkDnsOptions(options: unknown, path: string): asserts options is DnsOptions {
  checkObject(path, options);
  checkKeys(path, options, DNS_OPTION_KEYS);
  const { servers, timeout, tries, search, ndots, rotate, randomizeCase, udpMaxQueries, resolvConf } = options;
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
  if (search !== undefined) {
    if (!Array.isArray(search)) throw invalid(`${path}.search`, search, 'an array of DNS domains such as ["default.svc.cluster.local"] ([] for none)');
    search.forEach((domain: unknown, index) => checkHostname(`${path}.search[${index}]`, domain));
  }
  if (ndots !== undefined) checkInteger(`${path}.ndots`, ndots, 0, MAX_NDOTS);
  if (rotate !== undefined && typeof rotate !== 'boolean') throw invalid(`${path}.rotate`, rotate, 'true or false');
  if (randomizeCase !== undefined && typeof randomizeCase !== 'boolean') throw invalid(`${path}.randomizeCase`, randomizeCase, 'true or false');
  if (udpMaxQueries !== undefined) checkInteger(`${path}.udpMaxQueries`, udpMaxQueries, 1, MAX_UDP_QUERIES);
  if (resolvConf !== undefined) {
    checkString(`${path}.resolvConf`, resolvConf);
    if (!resolvConf.startsWith('/')) throw invalid(`${path}.resolvConf`, resolvConf, 'an absolute path such as "/etc/resolv.conf"');
  }
}

/** Every DNS setting in force, from the options and (without `servers`) the system's resolv.conf. */
export interface DnsSettings {
  readonly servers: readonly DnsServer[];
  readonly timeout: number;
  readonly tries: number;
  readonly rotate: boolean;
  readonly randomizeCase: boolean;
  readonly udpMaxQueries: number;
  readonly search: readonly string[];
  readonly ndots: number;
  readonly noTldQuery: boolean;
  /** Where the servers come from, for messages. */
  readonly source: string;
  /** Where the search list and ndots come from, for messages. */
  readonly searchSource: string;
}

/**
 * The settings in force for `options` (checked by {@link parseDnsOptions}). Without
 * `dns.servers`, the servers, search list, ndots, timeout, attempts and rotate come from
 * resolv.conf, and the options given override them; with `dns.servers`, the system's file is not
 * read at all.
 */
export function dnsSettings(options: DnsOptions = {}): DnsSettings {
  const base = {
    timeout: options.timeout ?? DEFAULT_DNS_TIMEOUT_MS,
    tries: options.tries ?? DEFAULT_DNS_TRIES,
    rotate: options.rotate ?? false,
    randomizeCase: options.randomizeCase ?? false,
    udpMaxQueries: options.udpMaxQueries ?? 1,
  };
  if (options.servers !== undefined) {
    return {
      ...base,
      servers: options.servers.map((s) => parseDnsServer(s)!),
      search: (options.search ?? []).map(normalizeName),
      ndots: options.ndots ?? 1,
      noTldQuery: false,
      source: 'dns.servers',
      searchSource: options.search === undefined ? 'dns.servers (no search list without one)' : 'dns.search',
    };
  }
  const path = options.resolvConf ?? RESOLV_CONF_PATH;
  // Windows has no resolv.conf: Node's own list of the system's servers, no search list.
  const system =
    process.platform === 'win32' && options.resolvConf === undefined
      ? { nameservers: getServers(), search: [], ndots: 1, timeout: undefined, attempts: undefined, rotate: false, noTldQuery: false, source: 'the system' }
      : readResolvConf(path);
  const servers = system.nameservers.map(parseDnsServer).filter((s): s is DnsServer => s !== undefined);
  return {
    timeout: options.timeout ?? system.timeout ?? DEFAULT_DNS_TIMEOUT_MS,
    tries: options.tries ?? system.attempts ?? DEFAULT_DNS_TRIES,
    rotate: options.rotate ?? system.rotate,
    randomizeCase: base.randomizeCase,
    udpMaxQueries: base.udpMaxQueries,
    servers,
    search: (options.search ?? system.search).map(normalizeName),
    ndots: options.ndots ?? system.ndots,
    noTldQuery: system.noTldQuery,
    source: system.source,
    searchSource: options.search === undefined ? system.source : 'dns.search',
  };
}

const ignoredResponseChannel = channels.dnsIgnoredResponse;

const FAMILY_TYPE = { 4: 'A', 6: 'AAAA' } as const;

const refusedEverywhere = new WeakSet<Error>();

/**
 * Whether every server answered REFUSED: they do not serve that name to this host, a lasting
 * statement about the name (the search list moves on), not a passing failure.
 */
export function isRefused(error: unknown): boolean {
  return error instanceof Error && refusedEverywhere.has(error);
}

export class DnsClient {
  readonly settings: DnsSettings;
  readonly #pool: ServerSet;
  readonly #closing = new AbortController();
  /** Servers that answered FORMERR to EDNS0 and then answered without it. */
  readonly #noEdns = new Set<DnsServer>();
  /** The UDP sockets of this client's queries (`udp.ts`): `udpMaxQueries` queries each. */
  readonly #sockets: UdpSockets;
  #inflight = 0;
  readonly #waiting: Array<{ resolve: () => void }> = [];

  constructor(settings: DnsSettings) {
    this.settings = settings;
    // Every query in flight listens on it; the listeners go when the query settles.
    setMaxListeners(0, this.#closing.signal);
    this.#pool = new ServerSet(this.settings.servers, { rotate: this.settings.rotate });
    this.#sockets = new UdpSockets({ maxQueries: this.settings.udpMaxQueries });
  }

  /** The servers queried, as given (or as the system lists them). */
  get servers(): readonly string[] {
    return this.settings.servers.map((s) => s.label);
  }

  /** Per try, in milliseconds. */
  get timeout(): number {
    return this.settings.timeout;
  }

  get tries(): number {
    return this.settings.tries;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /**
   * The A (family 4) or AAAA (family 6) addresses of `name` with their TTLs in ms, after
   * following CNAMEs; or, for `'any'`, both, answered {@link RESOLUTION_DELAY_MS} after the first
   * family with addresses (a family still on its way then is left out of this answer). An empty
   * array is NODATA. Rejects with NotFoundError (NXDOMAIN), ResolveError (every server failed,
   * or `signal` aborted) or ClosedError.
   *
   * This is the entry point for "the addresses of this DNS name" (Cloud Map instances registered
   * by DNS name use it); {@link lookup} gives the TTL details and the late family too.
   */
  async resolveAddresses(name: string, family: 4 | 6 | 'any', signal?: AbortSignal): Promise<AddressRecord[]> {
    const found = await this.lookup(name, family === 'any' ? [4, 6] : [family], signal);
    return found.records.slice();
  }

  /**
   * A and/or AAAA of `name` (CNAMEs followed), asked in parallel. Settles as soon as every
   * family answered, or {@link RESOLUTION_DELAY_MS} after the first family that has addresses
   * (then `late` brings the rest): a server that drops AAAA queries costs 50 ms, not its timeout.
   * Addresses from one family win over a failure of the other. With `haveAddresses` (the caller
   * already holds addresses of this name), the delay starts at once, even for one family.
   */
  lookup(
    name: string,
    families: readonly (4 | 6)[],
    signal?: AbortSignal,
    options: { readonly haveAddresses?: boolean } = {},
  ): Promise<AddressLookup> {
    if (families.length === 1 && options.haveAddresses !== true) return this.#addresses(name, families[0]!, signal);
    return new Promise<AddressLookup>((resolve, reject) => {
      const outcomes: Array<Outcome | undefined> = families.map(() => undefined);
      let pending = families.length;
      let timer: NodeJS.Timeout | undefined;
      let early: AddressLookup | undefined;
      let settleLate: (value: AddressLookup | undefined) => void = () => {};
      const answer = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        const result = combine(outcomes.filter((o): o is Outcome => o !== undefined));
        if ('error' in result) reject(result.error);
        else if (pending === 0) resolve(result.ok);
        else {
          early = result.ok;
          resolve({ ...early, late: new Promise((r) => (settleLate = r)) });
        }
      };
      // Addresses known from elsewhere (an SRV answer's additional section): the delay runs now.
      if (options.haveAddresses === true) timer = setTimeout(answer, RESOLUTION_DELAY_MS);
      families.forEach((family, index) => {
        void this.#addresses(name, family, signal)
          .then(
            (ok): Outcome => ({ ok }),
            (error: unknown): Outcome => ({ error }),
          )
          .then((outcome) => {
            outcomes[index] = outcome;
            pending--;
            if (early !== undefined) {
              if (pending > 0) return;
              const full = combine(outcomes as Outcome[]);
              settleLate('ok' in full && full.ok.records.length > early.records.length ? full.ok : undefined);
            } else if (pending === 0) {
              answer();
            } else if (timer === undefined && 'ok' in outcome && outcome.ok.records.length > 0) {
              timer = setTimeout(answer, RESOLUTION_DELAY_MS);
            }
          });
      });
    });
  }

  async #addresses(name: string, family: 4 | 6, signal: AbortSignal | undefined): Promise<AddressLookup> {
    const type = FAMILY_TYPE[family];
    const chain = await this.follow(name, type, signal);
    if (chain.response.rcode === 'NXDOMAIN' && chain.records.length === 0) throw this.notFound(name, type, chain.name);
    const records: AddressRecord[] = [];
    for (const record of chain.records) {
      // A record whose data is not an address of its type must never become an instance.
      if (typeof record.data !== 'string' || isIP(record.data) !== family) continue;
      records.push({ address: record.data, ttl: (record.ttl ?? 0) * 1000 });
    }
    return { records, ttl: records.length > 0 ? chain.ttl : Infinity, fromCache: chain.fromCache, stale: chain.stale };
  }

  /**
   * The `type` records of `name` after its CNAME chain: the chain is followed inside each answer
   * (only records owned by the name the chain has reached count), and a chain that leaves the
   * answer (a CNAME into a zone this server does not serve) is asked again at its end, up to
   * {@link MAX_CNAME_HOPS} CNAMEs. An NXDOMAIN response is returned (rcode NXDOMAIN, no records);
   * rejects with ResolveError for loops, long chains and failed servers.
   */
  async follow(name: string, type: RecordType, signal?: AbortSignal): Promise<ChainAnswer> {
    const aliased = new Set<string>();
    let queryName = normalizeName(name);
    let ttl = Infinity;
    let fromCache = false;
    let stale = false;
    for (;;) {
      const response = await this.query(queryName, type, signal);
      fromCache ||= !response.authoritative;
      stale ||= response.ede.includes(EDE_STALE_ANSWER) || response.ede.includes(EDE_STALE_NXDOMAIN);
      const answers = (response.answers ?? []) as DnsRecord[];
      let current = queryName;
      for (;;) {
        let cname: DnsRecord | undefined;
        for (const answer of answers) {
          if (answer.type === 'CNAME' && normalizeName(answer.name) === current) {
            cname = answer;
            break;
          }
        }
        if (cname === undefined) break;
        if (aliased.size >= MAX_CNAME_HOPS) {
          throw new ResolveError(
            `${type} lookup for ${name} followed more than ${MAX_CNAME_HOPS} CNAMEs: fix the CNAME chain`,
            { hostname: name },
          );
        }
        aliased.add(current);
        const next = normalizeName(String(cname.data));
        if (aliased.has(next)) {
          throw new ResolveError(`${type} lookup for ${name} met a CNAME loop at ${next}: fix the CNAME records`, {
            hostname: name,
          });
        }
        ttl = Math.min(ttl, (cname.ttl ?? 0) * 1000);
        current = next;
      }
      const records = answers.filter((a) => a.type === type && normalizeName(a.name) === current);
      for (const record of records) ttl = Math.min(ttl, (record.ttl ?? 0) * 1000);
      // The chain left this server's answer (a CNAME into another zone): ask at its end.
      if (records.length === 0 && current !== queryName && response.rcode === 'NOERROR') {
        queryName = current;
        continue;
      }
      return { name: current, records, ttl, response, fromCache, stale };
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

  /**
   * Asks `type` of `name` over the wire, servers in the order {@link ServerSet} gives, `tries`
   * rounds over the list. Settles with a NOERROR or NXDOMAIN response (the caller reads both);
   * rejects with ResolveError (every try failed, or `signal` aborted) or ClosedError.
   */
  async query(name: string, type: RecordType, signal?: AbortSignal): Promise<WireResponse> {
    this.#checkUsable(name, type);
    const closing = this.#closing.signal;
    // Two signals listened to side by side: AbortSignal.any would cost a dependent signal (and
    // weak references held until GC) per query, on every cold name.
    const combined = signal ?? closing;
    const aborted = (): boolean => combined.aborted || closing.aborted;
    const question: WireQuestion = { name, type };
    const failures: ExchangeError[] = [];
    let acquired = false;
    try {
      const wait = this.#acquire(signal);
      if (wait !== undefined) await wait;
      acquired = true;
      const order = this.#pool.order();
      for (const due of this.#pool.due()) this.#probe(due, question);
      for (let round = 0; round < this.settings.tries; round++) {
        for (const server of order) {
          if (aborted()) throw new Error('aborted');
          try {
            const response = await this.#exchange(server, question, combined);
            this.#pool.succeeded(server);
            return response;
          } catch (error) {
            if (aborted()) throw error;
            const failure =
              error instanceof ExchangeError ? error : new ExchangeError('network', server, String(error), { cause: error });
            failures.push(failure);
            this.#pool.failed(server);
          }
        }
      }
      throw new Error('every server failed');
    } catch (error) {
      throw this.#toError(name, type, failures, error, combined.aborted ? combined : closing);
    } finally {
      if (acquired) this.#release();
    }
  }

  /** One try on one server, again without EDNS0 if the server is one that rejects it (FORMERR). */
  async #exchange(server: DnsServer, question: WireQuestion, signal: AbortSignal): Promise<WireResponse> {
    const options = {
      timeout: this.settings.timeout,
      signal,
      closing: this.#closing.signal,
      randomizeCase: this.settings.randomizeCase,
      edns: !this.#noEdns.has(server),
      sockets: this.#sockets,
      onIgnored: (from: DnsServer, reason: string) => {
        if (ignoredResponseChannel.hasSubscribers) {
          ignoredResponseChannel.publish({ name: question.name, type: question.type, server: from.label, reason });
        }
      },
    };
    try {
      return await exchange(server, question, options);
    } catch (error) {
      // RFC 6891 §7: a server that does not know EDNS0 answers FORMERR; ask it the old way.
      if (!(error instanceof ExchangeError) || error.rcode !== 'FORMERR' || !options.edns) throw error;
      const response = await exchange(server, question, { ...options, edns: false });
      this.#noEdns.add(server);
      return response;
    }
  }

  /** Asks a failing server again in the background; only its health is read from the outcome. */
  #probe(server: DnsServer, question: WireQuestion): void {
    void this.#exchange(server, question, this.#closing.signal).then(
      () => this.#pool.succeeded(server),
      () => {
        if (this.closed) this.#pool.released(server);
        else this.#pool.failed(server);
      },
    );
  }

  /**
   * A NotFoundError for `name`, with what to check for the records asked: for SRV, where
   * registries put them; for addresses, the name and its zone.
   */
  notFound(name: string, type: string, end: string = name): NotFoundError {
    const chain = normalizeName(end) === normalizeName(name) ? '' : ` (CNAME target ${end})`;
    const check =
      type === 'SRV'
        ? 'check the SRV name (Kubernetes and Consul publish SRV records under _<port>._<proto>.<name>, ' +
          'a Cloud Map DNS namespace at the service name itself) and that the service registers SRV records'
        : `check the name, and that the DNS zone serving it has ${type === 'A' || type === 'AAAA' ? 'address' : type} records ` +
          'for it (or that the registry writing that zone registers it)';
    return new NotFoundError(
      `DNS name ${name}${chain} does not exist (NXDOMAIN for ${type} from ${this.serverList()}): ${check}.${this.#shortNameHint(name)}`,
      { hostname: name },
    );
  }

  /** Cancels every query in flight and releases every socket and timer. Idempotent. */
  close(): void {
    if (this.closed) return;
    // Every query in flight settles first (and leaves its socket), then the sockets close.
    this.#closing.abort(new ClosedError());
    this.#sockets.close();
  }

  /** UDP sockets open now (queries in flight, or kept idle for the next ones), for tests. */
  get openSockets(): number {
    return this.#sockets.open;
  }

  #checkUsable(name: string, type: string): void {
    if (this.closed) throw new ClosedError();
    if (this.settings.servers.length === 0) {
      throw new ResolveError(
        `Cannot look up ${type} ${name}: no usable DNS server in ${this.settings.source}; set dns.servers`,
        { hostname: name },
      );
    }
  }

  /** The servers asked, for messages: `127.0.0.1:53` or `10.0.0.2 (from /etc/resolv.conf)`. */
  serverList(): string {
    const list = this.settings.servers.map((s) => s.label).join(', ');
    return this.settings.source === 'dns.servers' ? list : `${list} (from ${this.settings.source})`;
  }

  /** For a single-label name: how the search list would have made it a full one. */
  #shortNameHint(name: string): string {
    if (name.includes('.')) return '';
    const { search } = this.settings;
    return search.length === 0
      ? ` ${name} is a short name and no search list is set: call it by its full name, or set dns.search (or search in resolv.conf)`
      : ` ${name} is a short name: the search list (${search.join(', ')}) applies to the names Discovery resolves`;
  }

  #toError(name: string, type: string, failures: readonly ExchangeError[], error: unknown, signal: AbortSignal): Error {
    if (this.closed) return new ClosedError();
    const where = `${type} ${name}`;
    if (signal.aborted) {
      return new ResolveError(`DNS query for ${where} was aborted before an answer came`, {
        hostname: name,
        cause: signal.reason,
      });
    }
    if (failures.length === 0) {
      return new ResolveError(`DNS query for ${where} failed: ${String(error)}`, { hostname: name, cause: error });
    }
    // One entry per server and kind of failure, in the order asked, with how often it repeated;
    // each piece of advice once, at the end.
    const lines = new Map<string, number>();
    const advice = new Set<string>();
    for (const failure of failures) {
      const { what, check } = describeFailure(failure, this.settings.timeout);
      const text = this.settings.servers.length === 1 ? what : `${failure.server.label}: ${what}`;
      lines.set(text, (lines.get(text) ?? 0) + 1);
      advice.add(check);
    }
    const what = [...lines]
      .map(([text, count]) => (count === 1 ? text : text.includes(' ms') ? `${text} × ${count} tries` : `${text} (${count} tries)`))
      .join('; ');
    const result = new ResolveError(`DNS query for ${where} from ${this.serverList()} failed: ${what}: ${[...advice].join('; ')}.${this.#shortNameHint(name)}`, {
      hostname: name,
      cause: failures.at(-1),
    });
    if (failures.every((f) => f.rcode === 'REFUSED')) refusedEverywhere.add(result);
    return result;
  }
}

/** What went wrong with one server, and what to check about it. */
function describeFailure(failure: ExchangeError, timeout: number): { what: string; check: string } {
  switch (failure.kind) {
    case 'timeout': {
      const ignored = /\((ignored packets: [^)]*)\)/.exec(failure.message)?.[1];
      if (ignored?.includes('0x20')) {
        return {
          what: `no usable answer within ${timeout} ms (${ignored})`,
          check: 'this server does not keep the case of questions: turn dns.randomizeCase off',
        };
      }
      return {
        what: `no answer within ${timeout} ms${ignored === undefined ? '' : ` (${ignored})`}`,
        check: 'check that the servers are reachable (firewall, security groups) and running, and dns.timeout',
      };
    }
    case 'network':
      return /ECONNREFUSED/.test(failure.message)
        ? { what: 'connection refused (ECONNREFUSED)', check: 'check that a DNS server listens there (dns.servers)' }
        : { what: `unreachable (${failure.message})`, check: 'check the route to the server (dns.servers)' };
    case 'rcode':
      if (failure.rcode === 'REFUSED') {
        return { what: failure.message, check: 'REFUSED: the server does not serve this name to this host; check its zones and who it allows to query' };
      }
      if (failure.rcode === 'SERVFAIL') {
        return { what: failure.message, check: 'SERVFAIL: the server could not get an answer (its zone did not load, or its upstream is failing)' };
      }
      return { what: failure.message, check: `${failure.rcode ?? 'an error'}: check the server's logs` };
    case 'tcp':
      return { what: failure.message, check: 'allow TCP port 53 to the server (firewall, security groups), or make the answer smaller' };
    default:
      return { what: failure.message, check: 'check the server' };
  }
}

type Outcome = { readonly ok: AddressLookup } | { readonly error: unknown };

/**
 * One lookup from several families' outcomes: addresses from any family win over failures of
 * another; with no addresses, a failure that is not NXDOMAIN wins, then NXDOMAIN (when no family
 * said the name exists), then NODATA.
 */
function combine(outcomes: readonly Outcome[]): { ok: AddressLookup } | { error: unknown } {
  const records: AddressRecord[] = [];
  let ttl = Infinity;
  let fromCache = false;
  let stale = false;
  let answered = false;
  let failure: unknown;
  let notFound: unknown;
  for (const outcome of outcomes) {
    if ('ok' in outcome) {
      answered = true;
      records.push(...outcome.ok.records);
      ttl = Math.min(ttl, outcome.ok.ttl);
      fromCache ||= outcome.ok.fromCache;
      stale ||= outcome.ok.stale;
    } else if (outcome.error instanceof NotFoundError) {
      notFound = outcome.error;
    } else {
      failure ??= outcome.error;
    }
  }
  if (records.length === 0) {
    if (failure !== undefined) return { error: failure };
    if (notFound !== undefined && !answered) return { error: notFound };
  }
  return { ok: { records, ttl, fromCache, stale } };
}

/** RFC 2308: a negative answer may be cached for min(SOA TTL, SOA minimum); in ms (0 without an SOA). */
export function negativeTtl(response: WireResponse): number {
  const soa = (response.authorities ?? []).find((a) => a.type === 'SOA');
  if (soa === undefined) return 0;
  const minimum = (soa.data as SoaData).minimum ?? 0;
  return Math.min(soa.ttl ?? 0, minimum) * 1000;
}
