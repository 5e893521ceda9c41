/**
 * Composition with undici's interceptors. The natural order puts signpost innermost, next to the
 * connections: `agent.compose(interceptors.retry(), interceptors.redirect(), …)` (each sees the
 * logical origin). undici's `interceptors.dns()` composed around signpost would resolve the name
 * with the system resolver first, then hand signpost an IP address: discovery would be silently
 * bypassed. That is refused, at compose time for the agent and at dispatch time for the
 * interceptor.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.ts';

/** undici's `kRequestOrigin`: where the DNS interceptor (and redirect, cache) keep the origin they rewrote. */
export function rewrittenOrigin(opts: object): unknown {
  for (const symbol of Object.getOwnPropertySymbols(opts)) {
    if (symbol.description === 'request origin') return (opts as Record<symbol, unknown>)[symbol];
  }
  return undefined;
}

export function dnsAroundSignpost(name: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `undici's DNS interceptor resolved ${name} before signpost saw the request: it then went to an address the ` +
      'system resolver chose, bypassing discovery. signpost resolves and balances the names it discovers itself: ' +
      'remove interceptors.dns(), or compose it inside signpost (before discoveryInterceptor in the list), where it ' +
      'only sees the instance addresses',
    { hostname: name },
  );
}

/** True for the dispatch function undici's `interceptors.dns()` returns. */
export function isDnsInterceptor(dispatch: unknown): boolean {
  return typeof dispatch === 'function' && dispatch.name === 'dnsInterceptor';
}

/** Whether an origin names an IP address rather than a host name. */
export function isIpOrigin(origin: unknown): boolean {
  if (origin == null) return false;
  try {
    const hostname = (typeof origin === 'string' ? new URL(origin) : (origin as URL)).hostname;
    return isIP(hostname.startsWith('[') ? hostname.slice(1, -1) : hostname) !== 0;
  } catch {
    return false;
  }
}

/** The Host header in any of undici's header forms (lower-cased name), or undefined. */
export function hostHeaderOf(headers: unknown): string | undefined {
  if (headers == null || typeof headers !== 'object') return undefined;
  const entries: unknown[] = [];
  if (Array.isArray(headers)) entries.push(...(headers as unknown[]));
  else if (Symbol.iterator in headers) for (const pair of headers as Iterable<unknown[]>) entries.push(pair[0], pair[1]);
  else for (const [key, value] of Object.entries(headers)) entries.push(key, value);
  for (let i = 0; i < entries.length; i += 2) {
    if (typeof entries[i] === 'string' && (entries[i] as string).toLowerCase() === 'host') return String(entries[i + 1]);
  }
  return undefined;
}
