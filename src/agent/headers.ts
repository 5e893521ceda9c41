/**
 * The Host header of a discovered request: the logical name, added to the caller's headers in
 * whichever form undici accepts them, every other header reaching the instance unchanged.
 */
import { errors, type Dispatcher } from 'undici';

type Headers = Dispatcher.DispatchOptions['headers'];

function isHost(key: unknown): boolean {
  return typeof key === 'string' && key.length === 4 && key.toLowerCase() === 'host';
}

/** undici's test for the iterable form (a Map, a Headers, a generator object). */
function hasSafeIterator(headers: object): boolean {
  const proto = Object.getPrototypeOf(headers) as unknown;
  return (
    Object.hasOwn(headers, Symbol.iterator) ||
    (proto != null && proto !== Object.prototype && typeof (headers as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function')
  );
}

/**
 * The request's headers with `host` set to the logical name, unless the caller set one. The forms
 * are undici's: a record (values a string or an array of strings), a flat array
 * `[name, value, name, value]` (values likewise), or an iterable of `[name, value]` pairs (a
 * `Map`, a `Headers`). Headers undici would reject are returned as they are, so undici rejects
 * them with its own error, exactly as without signpost. The caller's headers are never modified.
 */
export function withHostHeader(headers: Headers, host: string): Headers {
  if (headers == null) return { host };
  if (Array.isArray(headers)) {
    const list = headers as unknown[];
    if (list.length % 2 !== 0) return headers;
    for (let i = 0; i < list.length; i += 2) {
      const key = list[i];
      // Not a flat list undici reads (an array of pairs, say): left for undici to reject.
      if (typeof key !== 'string') return headers;
      if (isHost(key) && list[i + 1] != null) return headers;
    }
    return ['host', host, ...list] as Headers;
  }
  if (typeof headers !== 'object') return headers;
  if (hasSafeIterator(headers)) {
    // Read once (a generator cannot be read twice); every attempt then sends the same list.
    const flat: unknown[] = [];
    let hasHost = false;
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new errors.InvalidArgumentError('headers must be in key-value pair format');
      }
      if (isHost(pair[0]) && pair[1] != null) hasHost = true;
      flat.push(pair[0], pair[1]);
    }
    return (hasHost ? flat : ['host', host, ...flat]) as Headers;
  }
  const record = headers as Record<string, unknown>;
  for (const key in record) if (isHost(key) && record[key] != null) return headers;
  return { ...record, host } as Headers;
}
