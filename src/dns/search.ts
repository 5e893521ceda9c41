/**
 * Short names, the way getaddrinfo treats them: `http://orders/` under
 * `search default.svc.cluster.local svc.cluster.local` is looked up as
 * `orders.default.svc.cluster.local`, then `orders.svc.cluster.local`, then `orders`, and the
 * first name that exists wins. Each of those names is routed on its own (`services` and
 * `namespaces` rules match the expanded name); the cache keeps the answer under the name the
 * caller wrote, which also stays the Host header.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { NotFoundError } from '../errors.ts';
import { normalizeName } from '../routing.ts';
import type { Resolution, ResolveContext, Resolver } from '../types.ts';
import { isHostname } from '../validate.ts';
import { isRefused, type DnsSettings } from './client.ts';
import { searchCandidates } from './resolv-conf.ts';

export interface SearchSettings {
  readonly search: readonly string[];
  readonly ndots: number;
  readonly noTldQuery: boolean;
  /** Where they come from, for messages. */
  readonly source: string;
  /** Names of the hosts file: getaddrinfo answers them before any DNS search, so they are never expanded. */
  readonly hosts: ReadonlySet<string>;
}

/** Where the system keeps host names that getaddrinfo reads before DNS. */
export const HOSTS_PATH = '/etc/hosts';

/** The names in a hosts file (lower case); an unreadable file has none. */
export function readHostsFile(path: string = HOSTS_PATH): Set<string> {
  const names = new Set<string>();
  let text = '';
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return names;
  }
  for (const line of text.split('\n')) {
    const [address, ...aliases] = (line.split('#', 1)[0] ?? '').trim().split(/\s+/);
    if (address === undefined || address === '' || isIP(address) === 0) continue;
    for (const alias of aliases) names.add(normalizeName(alias));
  }
  return names;
}

/** The search settings in force: `dns.search`/`dns.ndots`, else resolv.conf's (without `dns.servers`). */
export function searchSettings(settings: DnsSettings): SearchSettings {
  return {
    search: settings.search,
    ndots: settings.ndots,
    noTldQuery: settings.noTldQuery,
    source: settings.searchSource,
    hosts: settings.search.length === 0 ? new Set() : readHostsFile(),
  };
}

/** A name to try and the resolver its route gives it. */
export interface SearchCandidate {
  readonly name: string;
  readonly resolver: Resolver;
}

/** The names to try for `name`, valid host names only; just `[name]` without a search list. */
export function candidatesOf(name: string, settings: SearchSettings): string[] {
  if (settings.search.length === 0) return [name];
  // As getaddrinfo: the hosts file first (a container's own name, host.docker.internal), and
  // localhost is never a DNS name at all (RFC 6761).
  if (settings.hosts.has(name) || name === 'localhost' || name.endsWith('.localhost')) return [name];
  return searchCandidates(name, settings).filter(isHostname);
}

/**
 * Tries each candidate in turn: the first with instances wins. A name that does not exist, has no
 * records, or that every server refuses (not its zone) moves on to the next (as getaddrinfo
 * does); a registry that fails (SERVFAIL,
 * timeout) ends the search with its error, so a passing fault never sends traffic to a
 * different name further down the list (the answer in hand is served stale meanwhile).
 */
export class SearchResolver implements Resolver {
  readonly #candidates: readonly SearchCandidate[];
  readonly #settings: SearchSettings;

  constructor(candidates: readonly SearchCandidate[], settings: SearchSettings) {
    this.#candidates = candidates;
    this.#settings = settings;
  }

  async resolve(name: string, context: ResolveContext): Promise<Resolution> {
    let empty: Resolution | undefined;
    let refused: unknown;
    let found = false;
    const tried: string[] = [];
    for (const candidate of this.#candidates) {
      let resolution: Resolution;
      try {
        resolution = await candidate.resolver.resolve(candidate.name, context);
      } catch (error) {
        if (isRefused(error)) {
          refused = error;
          tried.push(`${candidate.name} (refused: not served here)`);
          continue;
        }
        if (!(error instanceof NotFoundError)) throw error;
        found = true;
        tried.push(`${candidate.name} (does not exist)`);
        continue;
      }
      if (resolution.instances.length > 0) return resolution;
      empty ??= resolution;
      tried.push(`${candidate.name} (no records)`);
    }
    if (empty !== undefined) return empty;
    // Refused under every name: the servers serve none of them to this host (a configuration matter).
    if (!found && refused !== undefined) throw refused;
    const { search, ndots, source } = this.#settings;
    throw new NotFoundError(
      `${name} was not found under any name of the search list: tried ${tried.join(', ')}. ` +
        `The search list (${search.join(' ')}) and ndots (${ndots}) come from ${source}: ` +
        'call the service by its full name, or set dns.search and dns.ndots',
      { hostname: name },
    );
  }
}
