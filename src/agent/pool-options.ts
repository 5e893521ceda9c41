/**
 * undici's Agent, Pool and Client options: every one is accepted and applied to the per-instance
 * pools and to the plain Agent that takes undiscovered hosts. Each is checked in the constructor:
 * signpost's own checks for the common ones (a message naming the option, the value and what is
 * valid), and for the rest undici's own constructors, whose errors are rethrown as signpost's.
 */
import { Agent, Client, Pool, type Dispatcher } from 'undici';
import { InvalidArgumentError } from '../errors.ts';
import { checkDuration, checkInteger, invalid, isPlainObject } from '../validate.ts';

/**
 * signpost's default connect timeout for instances, in milliseconds (Envoy's; undici's is 10 s).
 * A connect timeout ejects the instance at once, like a refused connection.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * undici options passed to every per-instance Pool and to the Agent that takes the requests
 * signpost does not discover. Every option of undici's `Agent`, `Pool` and `Client` is accepted;
 * those below are the ones signpost checks itself or gives another default.
 */
export interface PoolOptions extends Omit<Agent.Options, 'connect' | 'factory' | 'interceptors'> {
  /** Connections per instance. `null`: unlimited. @default null */
  connections?: number | null;
  /** Requests pipelined per connection (HTTP/1.1). 0 to 1,000. @default 1 */
  pipelining?: number;
  /** How long an idle keep-alive connection is kept, in milliseconds (at least 1). @default 4000 */
  keepAliveTimeout?: number;
  /** The longest keep-alive a server's `Keep-Alive` header may ask for, in milliseconds. @default 600_000 */
  keepAliveMaxTimeout?: number;
  /** Subtracted from a server's keep-alive hint, in milliseconds, to avoid racing its close. @default 2000 */
  keepAliveTimeoutThreshold?: number;
  /**
   * How long to wait for the complete response headers, in milliseconds; 0 disables it. An
   * instance that accepts connections but never answers fails with `UND_ERR_HEADERS_TIMEOUT`
   * after this (and idempotent requests are retried); long before, the stall detector
   * (`ejection.stallTimeout`) takes a frozen instance out of rotation. @default 300_000
   */
  headersTimeout?: number;
  /** The longest gap between two chunks of a response body, in milliseconds; 0 disables it. @default 300_000 */
  bodyTimeout?: number;
  /**
   * How long connecting to an instance may take, in milliseconds (0: no limit). An instance that
   * does not take the connection in time (a security group dropping the traffic, a blackholed
   * or overloaded host) fails with `UND_ERR_CONNECT_TIMEOUT`, naming the instance and what to
   * check, is ejected at once, and the request is retried on another instance whatever its
   * method (it never reached this one). `connect.timeout`, when given, wins. Hosts signpost does
   * not discover keep undici's default (10,000).
   * @default 5000
   */
  connectTimeout?: number;
  /**
   * Socket and TLS options (`ca`, `cert`, `key`, `timeout`, …), or a connector function.
   * Certificates are checked against the logical name (the TLS servername), never the
   * instance's address.
   */
  connect?: Record<string, unknown> | ((...args: never[]) => unknown);
  /** The largest response header section, in bytes (at least 1). @default 16_384 */
  maxHeaderSize?: number;
  /** Whether HTTP/2 may be negotiated over TLS (ALPN). A request's own `allowH2: false` is honoured. @default undici's */
  allowH2?: boolean;
  /** Requests per connection before it is closed and replaced. @default unlimited */
  maxRequestsPerClient?: number;
  /** The local address to connect from. */
  localAddress?: string;
  /**
   * How long a connection lives before it is closed and replaced, in milliseconds; `null`: no
   * limit. Useful where instances come and go behind one address. @default null
   */
  clientTtl?: number | null;
  /**
   * Makes the dispatcher of one instance origin (undici's `Agent` factory): `(origin, options)`
   * → a Dispatcher. @default a `Pool` (a `Client` when `connections` is 1)
   */
  factory?: (origin: URL, options: object) => Dispatcher;
}

/** Options signpost checks itself (the others are checked by undici's constructors). */
const CHECKED = [
  'connections',
  'pipelining',
  'keepAliveTimeout',
  'keepAliveMaxTimeout',
  'keepAliveTimeoutThreshold',
  'headersTimeout',
  'bodyTimeout',
  'connectTimeout',
  'connect',
  'maxHeaderSize',
  'allowH2',
  'maxRequestsPerClient',
  'localAddress',
  'factory',
  'clientTtl',
] as const;

/** Every option of undici's Agent, Pool and Client (undici 8). */
export const UNDICI_OPTIONS: readonly string[] = [
  ...CHECKED,
  'maxOrigins',
  'tls',
  'maxCachedSessions',
  'socketPath',
  'autoSelectFamily',
  'autoSelectFamilyAttemptTimeout',
  'useH2c',
  'strictContentLength',
  'maxResponseSize',
  'maxConcurrentStreams',
  'initialWindowSize',
  'connectionWindowSize',
  'pingInterval',
  'useMilo',
  'webSocket',
  'eventSource',
  'h2Options',
];

/** Options undici itself rejects with a message saying what to use instead. */
const UNDICI_REJECTED = ['keepAlive', 'socketTimeout', 'requestTimeout', 'idleTimeout', 'maxKeepAliveTimeout', 'interceptors'];

export function isUndiciOption(key: string): boolean {
  return UNDICI_OPTIONS.includes(key) || UNDICI_REJECTED.includes(key);
}

/** The options as given (for the plain Agent) and with signpost's defaults (for instance pools). */
export interface ParsedPoolOptions {
  readonly passthrough: Agent.Options;
  readonly pools: Pool.Options;
  readonly factory: ((origin: URL, options: object) => Dispatcher) | undefined;
}

/** Validates the undici options; returns them as undici takes them. */
export function parsePoolOptions(options: Record<string, unknown>): ParsedPoolOptions {
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    switch (key) {
      case 'connections':
        if (value !== null) checkInteger(key, value, 1, 1_000_000);
        break;
      case 'pipelining':
        checkInteger(key, value, 0, 1000);
        break;
      case 'keepAliveTimeout':
      case 'keepAliveMaxTimeout':
        checkDuration(key, value, 1);
        break;
      case 'keepAliveTimeoutThreshold':
      case 'headersTimeout':
      case 'bodyTimeout':
      case 'connectTimeout':
        checkDuration(key, value);
        break;
      case 'connect':
        if (typeof value !== 'function' && !isPlainObject(value)) throw invalid(key, value, 'an object of socket/TLS options or a function');
        if (isPlainObject(value) && value.rejectUnauthorized === false) {
          process.emitWarning('signpost: connect.rejectUnauthorized is false: TLS certificates of every instance go unchecked', {
            code: 'SIGNPOST_INSECURE_TLS',
          });
        }
        break;
      case 'maxHeaderSize':
        checkInteger(key, value, 1, 2 ** 30);
        break;
      case 'allowH2':
        if (typeof value !== 'boolean') throw invalid(key, value, 'a boolean');
        break;
      case 'maxRequestsPerClient':
        checkInteger(key, value, 1, Number.MAX_SAFE_INTEGER);
        break;
      case 'localAddress':
        if (typeof value !== 'string' || value === '') throw invalid(key, value, 'an IP address');
        break;
      case 'factory':
        if (typeof value !== 'function') throw invalid(key, value, 'a function (origin, options) => Dispatcher');
        break;
      case 'clientTtl':
        if (value !== null) checkDuration(key, value, 1);
        break;
    }
  }
  const { factory, ...rest } = options;
  probe(options);
  const pools: Record<string, unknown> = { ...rest };
  delete pools.maxOrigins;
  const connect = rest.connect as Record<string, unknown> | ((...args: never[]) => unknown) | undefined;
  const connectTimeoutGiven = rest.connectTimeout !== undefined || (isPlainObject(connect) && connect.timeout !== undefined);
  if (!connectTimeoutGiven && typeof connect !== 'function') pools.connectTimeout = DEFAULT_CONNECT_TIMEOUT_MS;
  return {
    passthrough: rest as Agent.Options,
    pools: pools as Pool.Options,
    factory: factory as ParsedPoolOptions['factory'],
  };
}

/**
 * Lets undici's constructors check what signpost does not (they open no socket), and rethrows
 * what they reject as signpost's InvalidArgumentError.
 */
function probe(options: Record<string, unknown>): void {
  const origin = 'http://127.0.0.1';
  const { factory: _factory, maxOrigins: _maxOrigins, connections: _connections, clientTtl: _clientTtl, tls: _tls, ...client } = options;
  const made: Dispatcher[] = [];
  try {
    made.push(new Agent(options as Agent.Options));
    const { factory: _f, maxOrigins: _m, ...pool } = options;
    made.push(new Pool(origin, pool as Pool.Options));
    made.push(new Client(origin, client as Client.Options));
  } catch (error) {
    throw new InvalidArgumentError(`Invalid undici option: ${(error as Error).message}`, { cause: error });
  } finally {
    for (const dispatcher of made) void dispatcher.destroy().catch(() => undefined);
  }
}
