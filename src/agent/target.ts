/**
 * What the agent needs to know about a request's origin, worked out once per origin string:
 * the logical name Discovery is asked about, the Host header to keep, and the logical origin
 * that events and errors name.
 */
import { normalizeName } from '../routing.ts';

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
  /** The logical origin (`https://orders.myapp.local:8443`), as events name it. */
  readonly url: URL;
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
    // Only the origin: no credentials, path or query (they may hold secrets).
    url: new URL(`${protocol}//${hostHeader}`),
  };
}
