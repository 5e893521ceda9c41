/**
 * The system's resolver configuration, read the way glibc reads it (resolv.conf(5)): up to three
 * `nameserver`s, `search` or `domain` (the last one wins), and `options` `ndots:n`, `timeout:n`,
 * `attempts:n`, `rotate` and `no-tld-query`; `LOCALDOMAIN` replaces the search list and
 * `RES_OPTIONS` adds options, as for getaddrinfo. Without a search list the domain of the host
 * name is searched; without a nameserver, the one on 127.0.0.1.
 */
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';

/** Where the system keeps it. */
export const RESOLV_CONF_PATH = '/etc/resolv.conf';
/** glibc's limits. */
const MAX_NAMESERVERS = 3;
export const MAX_NDOTS = 15;
const MAX_TIMEOUT_S = 30;
const MAX_ATTEMPTS = 5;

export interface ResolvConf {
  /** `ip` or `[ipv6]` strings; servers with a zone id (`fe80::1%eth0`) are left out. */
  readonly nameservers: readonly string[];
  /** Domains appended to short names, in order, without trailing dots. */
  readonly search: readonly string[];
  /** Names with fewer dots than this are tried with the search list first. */
  readonly ndots: number;
  /** `options timeout:n`, in milliseconds, when set. */
  readonly timeout: number | undefined;
  /** `options attempts:n`, when set. */
  readonly attempts: number | undefined;
  readonly rotate: boolean;
  /** `options no-tld-query`: a single-label name is never asked as it is. */
  readonly noTldQuery: boolean;
  /** Where this came from, for messages: the file, plus the environment variables that changed it. */
  readonly source: string;
}

export interface ResolvConfContext {
  /** `LOCALDOMAIN` and `RES_OPTIONS`. @default process.env */
  readonly env?: Record<string, string | undefined>;
  /** The host name whose domain is searched when the file names none. @default os.hostname() */
  readonly hostname?: string;
  readonly source?: string;
}

function cleanDomain(domain: string): string | undefined {
  const trimmed = domain.replace(/\.+$/, '').toLowerCase();
  return trimmed.length === 0 ? undefined : trimmed;
}

/** Parses resolv.conf text with glibc's rules. Never throws: unknown lines are ignored, as glibc does. */
export function parseResolvConf(text: string, context: ResolvConfContext = {}): ResolvConf {
  const env = context.env ?? process.env;
  const nameservers: string[] = [];
  let search: string[] | undefined;
  const settings = { ndots: 1, timeout: undefined as number | undefined, attempts: undefined as number | undefined, rotate: false, noTldQuery: false };
  const applyOptions = (words: readonly string[]): void => {
    for (const word of words) {
      const [key, value] = word.split(':', 2);
      const number = value === undefined || !/^\d+$/.test(value) ? undefined : Number(value);
      if (key === 'ndots' && number !== undefined) settings.ndots = Math.min(number, MAX_NDOTS);
      else if (key === 'timeout' && number !== undefined) settings.timeout = Math.min(Math.max(number, 1), MAX_TIMEOUT_S) * 1000;
      else if (key === 'attempts' && number !== undefined) settings.attempts = Math.min(Math.max(number, 1), MAX_ATTEMPTS);
      else if (key === 'rotate') settings.rotate = true;
      else if (key === 'no-tld-query') settings.noTldQuery = true;
    }
  };
  for (const raw of text.split('\n')) {
    // As glibc: a keyword counts only at the very start of its line.
    if (raw.startsWith('#') || raw.startsWith(';') || raw.startsWith(' ') || raw.startsWith('\t')) continue;
    const words = raw.split(/[ \t]+/).filter((w) => w.length > 0);
    const [keyword, ...rest] = words;
    const comment = rest.findIndex((x) => x.startsWith('#') || x.startsWith(';'));
    const args = comment < 0 ? rest : rest.slice(0, comment);
    if (keyword === 'nameserver' && args[0] !== undefined) {
      if (nameservers.length < MAX_NAMESERVERS && !args[0].includes('%')) {
        nameservers.push(args[0].includes(':') ? `[${args[0]}]` : args[0]);
      }
    } else if (keyword === 'domain' && args[0] !== undefined) {
      search = [args[0]];
    } else if (keyword === 'search') {
      search = args;
    } else if (keyword === 'options') {
      applyOptions(args);
    }
  }
  const changed: string[] = [];
  const localDomain = env.LOCALDOMAIN;
  if (localDomain !== undefined && localDomain.trim() !== '') {
    search = localDomain.trim().split(/[ \t]+/);
    changed.push('LOCALDOMAIN');
  }
  const resOptions = env.RES_OPTIONS;
  if (resOptions !== undefined && resOptions.trim() !== '') {
    applyOptions(resOptions.trim().split(/[ \t]+/));
    changed.push('RES_OPTIONS');
  }
  if (search === undefined) {
    const host = context.hostname ?? safeHostname();
    const dot = host.indexOf('.');
    search = dot > 0 ? [host.slice(dot + 1)] : [];
  }
  const source = [context.source ?? RESOLV_CONF_PATH, ...changed].join(' + ');
  return {
    nameservers: nameservers.length > 0 ? nameservers : ['127.0.0.1'],
    search: [...new Set(search.map(cleanDomain).filter((d): d is string => d !== undefined))],
    ...settings,
    source,
  };
}

function safeHostname(): string {
  try {
    return osHostname();
  } catch {
    return '';
  }
}

/**
 * Reads and parses `path`. A missing or unreadable file gives glibc's defaults (127.0.0.1, no
 * search list beyond the host name's domain, ndots 1), as getaddrinfo would use.
 */
export function readResolvConf(path: string = RESOLV_CONF_PATH, context: ResolvConfContext = {}): ResolvConf {
  let text = '';
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    // As glibc: no file is the defaults.
  }
  return parseResolvConf(text, { ...context, source: path });
}

/**
 * The names to ask for `name`, in order, with the search list applied as getaddrinfo applies it:
 * a name with at least `ndots` dots is tried as it is first, then with each search domain; a
 * shorter one with each search domain first, then as it is (never as it is for a single label
 * with `no-tld-query`).
 */
export function searchCandidates(
  name: string,
  config: { readonly search: readonly string[]; readonly ndots: number; readonly noTldQuery?: boolean },
): string[] {
  let dots = 0;
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) === 46) dots++;
  const expanded = config.search.map((domain) => `${name}.${domain}`);
  if (dots >= config.ndots) return [name, ...expanded];
  if (dots === 0 && config.noTldQuery === true && expanded.length > 0) return expanded;
  return [...expanded, name];
}
