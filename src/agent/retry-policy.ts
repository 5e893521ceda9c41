/**
 * When a failed attempt may be tried again on another instance, and how often: which failures,
 * which methods, how many retries, the backoff. The budget that caps retries as a share of
 * traffic is in retry-budget.ts.
 */
import { errorCode } from '../errors.ts';
import { checkDuration, checkInteger, checkKeys, checkNumber, checkObject, checkString, invalid } from '../validate.ts';

export const DEFAULT_RETRIES = 2;
export const DEFAULT_MIN_DELAY_MS = 50;
export const DEFAULT_MAX_DELAY_MS = 1000;
export const DEFAULT_BUDGET_RATIO = 0.2;
export const DEFAULT_BUDGET_MIN_RETRIES = 10;
export const DEFAULT_BUDGET_WINDOW_MS = 10_000;
/** RFC 9110 §9.2.2: repeating these has the same effect as sending them once. */
export const IDEMPOTENT_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'];

/** Caps retries at a share of requests over a sliding window. */
export interface RetryBudgetOptions {
  /**
   * Retries allowed as a share of the requests made in the last `window` (0 to 1): 0.2 lets
   * 20 retries go for every 100 requests. Requests count once, however often they are retried.
   * @default 0.2
   */
  ratio?: number;
  /**
   * Retries always allowed per `window`, whatever the traffic, so a caller that sends few
   * requests can still retry them. From 0 to 1,000,000.
   * @default 10
   */
  minRetries?: number;
  /**
   * The sliding window, in milliseconds, over which requests and retries are counted (in ten
   * steps). From 100 to 3,600,000.
   * @default 10_000
   */
  window?: number;
}

/** When and how often a request is tried again on another instance. */
export interface RetryOptions {
  /**
   * Retries after the first attempt, each on an instance not yet tried while one remains (then
   * on any). 0 turns retries off. From 0 to 10.
   * @default 2
   */
  retries?: number;
  /**
   * Methods retried after the request may have reached an instance (the connection was reset
   * or closed before the response, or no response headers came within `headersTimeout`). A
   * request that never reached an instance (connection refused, connect timeout, host
   * unreachable, TLS handshake failure) is retried whatever its method. Add `'POST'` or
   * `'PATCH'` only for endpoints that are safe to repeat (an idempotency key, for example).
   * @default ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']
   */
  methods?: string[];
  /**
   * The wait before the second retry, in milliseconds (the first goes at once, to another
   * instance); it doubles with each further retry and is randomized up to twice that (jitter),
   * never more than {@link RetryOptions.maxDelay}. From 0 to 60,000.
   * @default 50
   */
  minDelay?: number;
  /** The longest wait between two attempts, in milliseconds. From 0 to 60,000. @default 1000 */
  maxDelay?: number;
  /**
   * The retry budget, or `false` for none (every failure that may be retried is, up to
   * `retries`; not recommended in production).
   * @default { ratio: 0.2, minRetries: 10, window: 10_000 }
   */
  budget?: RetryBudgetOptions | false;
}

/** The validated retry options with their defaults. */
export interface RetryPolicy {
  readonly retries: number;
  readonly methods: ReadonlySet<string>;
  readonly minDelay: number;
  readonly maxDelay: number;
  readonly budget: Required<RetryBudgetOptions> | false;
}

const RETRY_KEYS = ['retries', 'methods', 'minDelay', 'maxDelay', 'budget'] as const;
const BUDGET_KEYS = ['ratio', 'minRetries', 'window'] as const;

/** Validates `retry` options (throws InvalidArgumentError) and applies the defaults. */
export function parseRetryOptions(options: unknown): RetryPolicy {
  if (options === undefined) options = {};
  checkObject('retry', options);
  checkKeys('retry', options, RETRY_KEYS);
  const o = options as RetryOptions;
  if (o.retries !== undefined) checkInteger('retry.retries', o.retries, 0, 10);
  let methods = IDEMPOTENT_METHODS;
  if (o.methods !== undefined) {
    if (!Array.isArray(o.methods)) throw invalid('retry.methods', o.methods, 'an array of HTTP methods');
    for (const [i, method] of o.methods.entries()) {
      checkString(`retry.methods[${i}]`, method);
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) throw invalid(`retry.methods[${i}]`, method, 'an HTTP method');
    }
    methods = o.methods.map((m) => m.toUpperCase());
  }
  if (o.minDelay !== undefined) checkDuration('retry.minDelay', o.minDelay);
  if (o.maxDelay !== undefined) checkDuration('retry.maxDelay', o.maxDelay);
  const minDelay = o.minDelay ?? DEFAULT_MIN_DELAY_MS;
  const maxDelay = o.maxDelay ?? Math.max(DEFAULT_MAX_DELAY_MS, minDelay);
  if (minDelay > 60_000) throw invalid('retry.minDelay', minDelay, 'at most 60000');
  if (maxDelay > 60_000) throw invalid('retry.maxDelay', maxDelay, 'at most 60000');
  if (maxDelay < minDelay) throw invalid('retry.maxDelay', maxDelay, `at least retry.minDelay (${minDelay})`);
  let budget: RetryPolicy['budget'] = false;
  if (o.budget !== false) {
    const b: unknown = o.budget ?? {};
    checkObject('retry.budget', b);
    checkKeys('retry.budget', b, BUDGET_KEYS);
    if (b.ratio !== undefined) checkNumber('retry.budget.ratio', b.ratio, 0, 1);
    if (b.minRetries !== undefined) checkInteger('retry.budget.minRetries', b.minRetries, 0, 1_000_000);
    if (b.window !== undefined) checkDuration('retry.budget.window', b.window, 100);
    if (typeof b.window === 'number' && b.window > 3_600_000) throw invalid('retry.budget.window', b.window, 'at most 3600000');
    budget = {
      ratio: (b.ratio as number | undefined) ?? DEFAULT_BUDGET_RATIO,
      minRetries: (b.minRetries as number | undefined) ?? DEFAULT_BUDGET_MIN_RETRIES,
      window: (b.window as number | undefined) ?? DEFAULT_BUDGET_WINDOW_MS,
    };
  }
  return { retries: o.retries ?? DEFAULT_RETRIES, methods: new Set(methods), minDelay, maxDelay, budget };
}

/** Errors of a connection that could not be made (or went unreachable). */
const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ETIMEDOUT',
]);

/** Errors of a connection that may have carried the request before it broke. */
const BROKEN_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|EPROTO$|HOSTNAME_MISMATCH)/;

/** How an attempt failed, as the retry policy and the health tracker see it. */
export interface FailureClass {
  /**
   * `connect`/`timeout`/`reset`, as reported to outlier ejection; undefined: not the instance's
   * fault. A connect timeout is a `connect` failure: like a refusal, it means the instance cannot
   * be reached at all (a security group dropping the traffic, a dead host), and it ejects as fast.
   */
  readonly kind: 'connect' | 'timeout' | 'reset' | undefined;
  /** Whether another attempt could help at all (a transport failure, not a bad request). */
  readonly transport: boolean;
}

const CONNECT: FailureClass = { kind: 'connect', transport: true };
const TIMEOUT: FailureClass = { kind: 'timeout', transport: true };
const RESET: FailureClass = { kind: 'reset', transport: true };
const OTHER: FailureClass = { kind: undefined, transport: false };

export function classifyFailure(error: unknown): FailureClass {
  const code = errorCode(error);
  if (code === undefined) return OTHER;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return TIMEOUT;
  if (NOT_SENT_CODES.has(code) || TLS_CODE.test(code)) return CONNECT;
  if (BROKEN_CODES.has(code)) return RESET;
  return OTHER;
}

/**
 * Errors that can only happen before a request is written: refused or timed-out connects.
 * (EHOSTUNREACH, ETIMEDOUT or a TLS alert can also end an established connection, so they prove
 * nothing on their own; the agent mainly goes by whether undici began to write the request.)
 */
const ONLY_BEFORE_SEND_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT']);

/** True when the error proves the request was not sent, whatever the attempt's progress. */
export function provesNotSent(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && ONLY_BEFORE_SEND_CODES.has(code);
}

