/**
 * Keeping secrets out of what signpost hands back: errors, their `cause` chains and diagnostics
 * messages. Errors that are not signpost's own (a credential provider's TypeError, an SDK error
 * echoing a signed request, a user callback's throw) are never passed on as they are: they are
 * replaced by a copy that keeps only their name, `code`, `errno`, `syscall`, HTTP status and
 * request id (`$metadata`), never their message or stack. signpost's own messages are scrubbed of URL query
 * strings, URL credentials and `key=value` secrets, in case a value from outside slipped into one.
 */
import { SignpostError } from './errors.ts';

/** How deep a cause chain is followed: deeper causes are dropped. */
const MAX_CAUSE_DEPTH = 4;

const REDACTED = '<redacted>';

const PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  // URL query strings and fragments: tokens and API keys travel there.
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s?#"'<>]*)[?#][^\s"'<>]*/gi, `$1?${REDACTED}`],
  // Credentials in a URL (`https://user:pass@host`).
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/@"'<>]+@/gi, `$1${REDACTED}@`],
  // `Authorization: Bearer x`, `X-Amz-Security-Token: x`, `password=x`, `"apiKey": "x"`.
  [
    /\b(authorization|proxy-authorization|x-amz-security-token|x-amz-signature|x-amz-credential|signature|credential|secret(?:access)?key|secret|token|session[_-]?token|password|passwd|api[_-]?key|access[_-]?key(?:[_-]?id)?|cookie)("?\s*[:=]\s*"?)(?:(?:bearer|basic|aws4-hmac-sha256)\s+)?[^\s"',;&]+/gi,
    `$1$2${REDACTED}`,
  ],
  [/\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // AWS access key ids.
  [/\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g, REDACTED],
];

/** `text` without URL query strings, URL credentials or `key=value` secrets. */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** An error from outside signpost, reduced to what cannot carry a secret. */
export class ForeignError extends Error {
  declare readonly code?: string;
  declare readonly errno?: number;
  declare readonly syscall?: string;
  /** The HTTP status and request id, for errors of AWS SDK calls. */
  declare readonly $metadata?: { readonly httpStatusCode?: number; readonly requestId?: string };

  constructor(original: unknown, depth = 0) {
    const o = (typeof original === 'object' && original !== null ? original : {}) as Record<string, unknown>;
    const name = safeWord(o.name) ?? (original instanceof Error ? 'Error' : typeof original);
    const code = safeWord(o.code);
    const meta = o.$metadata as Record<string, unknown> | undefined;
    const status =
      typeof meta?.httpStatusCode === 'number' ? meta.httpStatusCode : typeof o.statusCode === 'number' ? o.statusCode : undefined;
    const requestId = safeWord(meta?.requestId);
    const cause = depth < MAX_CAUSE_DEPTH && o.cause !== undefined ? sanitizeCause(o.cause, depth + 1) : undefined;
    super(
      `${name}${code === undefined ? '' : ` ${code}`}${status === undefined ? '' : ` (HTTP ${status})`} (message withheld: it may hold credentials)`,
      cause === undefined ? undefined : { cause },
    );
    this.name = name;
    const self = this as { -readonly [K in 'code' | 'errno' | 'syscall' | '$metadata']?: ForeignError[K] };
    if (code !== undefined) self.code = code;
    if (typeof o.errno === 'number') self.errno = o.errno;
    const syscall = safeWord(o.syscall);
    if (syscall !== undefined) self.syscall = syscall;
    if (status !== undefined || requestId !== undefined) {
      self.$metadata = { ...(status !== undefined && { httpStatusCode: status }), ...(requestId !== undefined && { requestId }) };
    }
  }
}

function safeWord(value: unknown): string | undefined {
  return typeof value === 'string' && /^[\w.:-]{1,128}$/.test(value) ? value : undefined;
}

function sanitizeCause(cause: unknown, depth: number): unknown {
  if (cause instanceof ForeignError) return cause;
  if (cause instanceof SignpostError) return scrubError(cause, depth);
  return new ForeignError(cause, depth);
}

/**
 * Makes an error safe to hand out: a SignpostError keeps its class, code and hostname, with its
 * message scrubbed and every cause that is not signpost's own replaced by a {@link ForeignError};
 * anything else becomes a ForeignError. Idempotent; changes signpost's own errors in place.
 */
export function scrubError(error: SignpostError, depth?: number): SignpostError;
export function scrubError(error: unknown, depth?: number): Error;
export function scrubError(error: unknown, depth = 0): Error {
  if (!(error instanceof SignpostError)) return error instanceof ForeignError ? error : new ForeignError(error, depth);
  const message = redactText(error.message);
  if (message !== error.message) {
    const stack = error.stack;
    error.message = message;
    // The stack's first line repeats the message it was made with.
    if (typeof stack === 'string') {
      const frames = stack.indexOf('\n    at ');
      error.stack = `${error.name}: ${message}${frames < 0 ? '' : stack.slice(frames)}`;
    }
  }
  if (error.cause !== undefined) {
    const cause = depth < MAX_CAUSE_DEPTH ? sanitizeCause(error.cause, depth + 1) : undefined;
    if (cause !== error.cause) {
      Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
    }
  }
  return error;
}
