/**
 * Body replay: whether a request body can be sent again on another instance. Buffers and strings
 * always can; a stream or a one-shot iterable only while nothing was read from it.
 */

/**
 * Whether the body can be sent again: buffers and strings always; a stream or an iterable only
 * while nothing was read from it (undici consumes it on the first attempt).
 */
export function bodyReplayable(body: unknown, iterated: boolean): boolean {
  if (body == null || typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer) return true;
  if (typeof (body as { pipe?: unknown }).pipe === 'function') {
    const stream = body as { readableDidRead?: boolean; destroyed?: boolean };
    return !iterated && stream.readableDidRead !== true && stream.destroyed !== true;
  }
  if (Array.isArray(body) || ArrayBuffer.isView(body)) return true;
  return !iterated;
}

/**
 * Wraps an iterable body so the request knows whether the first attempt began to read it (an
 * async generator, as fetch sends, cannot be read twice).
 */
export function trackIterable(
  body: AsyncIterable<unknown> | Iterable<unknown>,
  onIterate: () => void,
): AsyncIterable<unknown> {
  return {
    async *[Symbol.asyncIterator]() {
      onIterate();
      yield* body as AsyncIterable<unknown>;
    },
  };
}

/** Whether a body needs {@link trackIterable}: a non-stream iterable that is not an array or buffer. */
export function needsTracking(body: unknown): body is AsyncIterable<unknown> | Iterable<unknown> {
  if (body == null || typeof body !== 'object') return false;
  if (typeof (body as { pipe?: unknown }).pipe === 'function') return false;
  if (Array.isArray(body) || ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return false;
  // FormData and Blob are re-read by undici on every attempt.
  if (typeof Blob !== 'undefined' && body instanceof Blob) return false;
  if (typeof FormData !== 'undefined' && body instanceof FormData) return false;
  const tag = (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
  if (tag === 'FormData' || tag === 'Blob' || tag === 'File') return false;
  return Symbol.asyncIterator in body || Symbol.iterator in body;
}
