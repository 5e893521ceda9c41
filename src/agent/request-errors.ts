/**
 * Request errors keep undici's identity: when every attempt of a request fails, the caller gets
 * the last attempt's own error (same class, same `code`), with `attempts` added. signpost writes
 * no URL path, query string or header into any message: those may hold secrets.
 */
import { errors } from 'undici';

/** One failed attempt of a request. */
export interface Attempt {
  /** The instance the attempt went to (`address:port`), or undefined when none could be picked. */
  readonly instance: string | undefined;
  /** The attempt's own error (for a failed pick, the discovery error). */
  readonly error: Error;
}

/** What a request error carries once signpost retried, or declined to retry, the request. */
export interface AttemptsInfo {
  /** Every failed attempt in order, the last one being the error itself. */
  readonly attempts: readonly Attempt[];
  /** Why no further attempt was made (`no retries left (retry.retries is 2)`, …). */
  readonly retryStop: string;
}

/**
 * Adds `attempts` and `retryStop` to the error the caller gets. Both are non-enumerable: the last
 * attempt is the error itself, and an enumerable cycle would break loggers that JSON.stringify
 * errors.
 */
export function withAttempts<E extends Error>(error: E, info: AttemptsInfo): E & Partial<AttemptsInfo> {
  try {
    Object.defineProperty(error, 'attempts', { value: info.attempts, configurable: true, writable: true });
    Object.defineProperty(error, 'retryStop', { value: info.retryStop, configurable: true, writable: true });
  } catch {
    // A frozen error is delivered as it is.
  }
  return error;
}

/**
 * A connect timeout named for what it usually is in a fleet: the name resolves, the instance does
 * not take the connection (a security group or network ACL dropping it, a host that is gone). The
 * same class and code as undici's, with the instance and what to check.
 */
export function connectTimeoutError(error: Error, key: string, name: string): Error {
  const message =
    `${error.message}: instance ${key} of ${name} did not accept the connection in time. ` +
    `The name resolves but the connection times out: check that the security group and network ACL ` +
    `let this caller reach ${key}, and that the instance is running (\`signpost check\` shows which ` +
    'instances of a service are reachable)';
  const described = new errors.ConnectTimeoutError(message);
  Object.defineProperty(described, 'cause', { value: error, configurable: true, writable: true });
  return described;
}

/** The error given to requests stuck on an instance the stall detector found frozen. */
export function stallError(key: string, stallTimeout: number): Error {
  return new errors.HeadersTimeoutError(
    `Headers Timeout Error: instance ${key} accepted requests but answered none for ${stallTimeout} ms ` +
      '(ejection.stallTimeout): it looks frozen, so it was ejected and the request is retried elsewhere ' +
      'when that is safe; check the instance (CPU, event loop, deadlocks)',
  );
}
