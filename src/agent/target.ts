/**
 * What the agent needs to know about a request's origin, worked out once per origin string:
 * whether discovery handles it, the logical name, and the Host header to keep.
 */
import { normalizeName } from '../routing.ts';
import type { Dispatcher } from 'undici';

export interface Target {
  /** The logical name, lower-case, without a trailing dot (what Discovery is asked about). */
  readonly name: string;
  readonly protocol: 'http:' | 'https:';
  /** The URL's explicit port, if it had one. */
  readonly urlPort: number | undefined;
  /** The scheme's default port. */
  readonly defaultPort: number;
  /** The Host header sent to every instance: the logical name, with the URL's port if it had one. */
  readonly hostHeader: string;
  /** `{ host: hostHeader }`, frozen: the headers of every request that brings none of its own. */
  readonly hostHeaders: Readonly<Record<string, string>>;
  /**
   * `['host', hostHeader]`, frozen: the same, in the form an undici Pool reads fastest (no
   * iterator check, no key list), for requests that go straight to a Pool.
   */
  readonly hostHeaderList: readonly string[];
}

/** Parses an origin; undefined when it is not an http(s) URL with a host name. */
export function parseTarget(origin: string | URL): Target | undefined {
  let url: URL;
  try {
    url = typeof origin === 'string' ? new URL(origin) : origin;
  } catch {
    return undefined;
  }
  const protocol = url.protocol;
  if (protocol !== 'http:' && protocol !== 'https:') return undefined;
  const hostname = url.hostname;
  if (hostname === '' || hostname.startsWith('[')) return undefined;
  const name = normalizeName(hostname);
  const urlPort = url.port === '' ? undefined : Number(url.port);
  const hostHeader = urlPort === undefined ? name : `${name}:${urlPort}`;
  return {
    name,
    protocol,
    urlPort,
    defaultPort: protocol === 'https:' ? 443 : 80,
    hostHeader,
    hostHeaders: Object.freeze({ host: hostHeader }),
    hostHeaderList: Object.freeze(['host', hostHeader]),
  };
}

type Headers = Dispatcher.DispatchOptions['headers'];

function isHost(key: unknown): boolean {
  return typeof key === 'string' && key.length === 4 && key.toLowerCase() === 'host';
}

/**
 * The request's headers with `host` set to the logical name, unless the caller set one. Accepts
 * every form undici does: a record, a flat array, an array of pairs, or an iterable of pairs.
 * Headers that already name a host are returned as they are (never modified); the caller's
 * headers are never modified either.
 */
export function withHostHeader(headers: Headers, host: string): Headers {
  if (headers == null) return { host };
  if (Array.isArray(headers)) {
    const list = headers as unknown[];
    let flatOnly = true;
    for (let i = 0; i < list.length; i++) {
      if (Array.isArray(list[i])) {
        flatOnly = false;
        break;
      }
    }
    if (flatOnly) {
      // The common array form (`['accept', 'x', …]`): one copy, only when host is missing.
      for (let i = 0; i < list.length; i += 2) if (isHost(list[i])) return headers;
      return ['host', host, ...list] as Headers;
    }
    const flat: unknown[] = [];
    for (const item of headers as unknown[]) {
      if (Array.isArray(item)) flat.push(item[0], item[1]);
      else flat.push(item);
    }
    for (let i = 0; i < flat.length; i += 2) if (isHost(flat[i])) return flat as Headers;
    return ['host', host, ...flat] as Headers;
  }
  const record = headers as Record<string, unknown>;
  const proto = Object.getPrototypeOf(record) as unknown;
  if (proto !== Object.prototype && proto !== null && typeof (record as unknown as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const flat: unknown[] = [];
    for (const pair of record as unknown as Iterable<[unknown, unknown]>) flat.push(pair[0], pair[1]);
    return withHostHeader(flat as Headers, host);
  }
  for (const key in record) if (isHost(key)) return headers;
  return { host, ...record } as Headers;
}
