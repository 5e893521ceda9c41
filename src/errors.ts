/**
 * Every error signpost raises is a {@link SignpostError}. Its `code` is the stable contract;
 * the message says what happened, to which name, and what to check. The original error, when
 * there is one, is kept in the standard `cause`.
 */

/** The stable error codes. */
export type SignpostErrorCode =
  | 'SIGNPOST_ERR_INVALID_ARG'
  | 'SIGNPOST_ERR_NOT_FOUND'
  | 'SIGNPOST_ERR_NO_INSTANCES'
  | 'SIGNPOST_ERR_RESOLVE'
  | 'SIGNPOST_ERR_CLOSED';

export interface SignpostErrorOptions {
  /** The service name the error is about, when there is one. */
  hostname?: string | undefined;
  cause?: unknown;
}

export class SignpostError extends Error {
  readonly code: SignpostErrorCode;
  /** The service name the error is about, when there is one. */
  readonly hostname: string | undefined;

  constructor(code: SignpostErrorCode, message: string, options: SignpostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hostname = options.hostname;
  }
}

/** Bad options. Thrown by constructors, never later. */
export class InvalidArgumentError extends SignpostError {
  constructor(message: string, options?: SignpostErrorOptions) {
    super('SIGNPOST_ERR_INVALID_ARG', message, options);
  }
}

/** The name does not exist in its registry (NXDOMAIN, NamespaceNotFound, ServiceNotFound). */
export class NotFoundError extends SignpostError {
  constructor(message: string, options?: SignpostErrorOptions) {
    super('SIGNPOST_ERR_NOT_FOUND', message, options);
  }
}

/** The name exists but has no instance that is healthy and not ejected. */
export class NoInstancesError extends SignpostError {
  constructor(message: string, options?: SignpostErrorOptions) {
    super('SIGNPOST_ERR_NO_INSTANCES', message, options);
  }
}

/** The registry failed (SERVFAIL, REFUSED, timeout, throttling) and nothing stale may be served. */
export class ResolveError extends SignpostError {
  constructor(message: string, options?: SignpostErrorOptions) {
    super('SIGNPOST_ERR_RESOLVE', message, options);
  }
}

/**
 * The `code` of any error (signpost's `SIGNPOST_ERR_*`, undici's `UND_ERR_*`, Node's
 * `ECONNREFUSED`), or undefined when it has none.
 */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The Discovery was used after `close()`. */
export class ClosedError extends SignpostError {
  constructor(message = 'signpost was used after close(): create a new Discovery') {
    super('SIGNPOST_ERR_CLOSED', message);
  }
}
