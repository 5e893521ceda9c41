/**
 * DiscoveryAgent: an undici Dispatcher that sends each request for a discovered name to one of
 * its instances, over one connection pool per instance, and everything else to a plain undici
 * Agent. Use it with `setGlobalDispatcher`, `fetch(url, { dispatcher })` or `undici.request`.
 */
import { channel } from 'node:diagnostics_channel';
import { Agent, Dispatcher, Pool } from 'undici';
import { RequestRouter, type AgentStats, type Endpoint, type Send } from './agent/routed-request.ts';
import { Discovery, type InstancesChange } from './discovery.ts';
import { ClosedError, InvalidArgumentError } from './errors.ts';
import type { DiscoveryOptions } from './options.ts';
import { retryPolicy, type RetryOptions } from './retry.ts';
import { checkDuration, checkInteger, checkObject, invalid, isPlainObject } from './validate.ts';

export type { AgentStats, InstanceStats, PickMessage, RetryMessage } from './agent/routed-request.ts';

const poolCreateChannel = channel('signpost:pool:create');
const poolCloseChannel = channel('signpost:pool:close');

/** The message of `signpost:pool:create`. */
export interface PoolCreateMessage {
  /** The instance key (`address:port`). */
  readonly key: string;
  /** The origin the pool connects to (`https://10.0.1.5:8443`). */
  readonly origin: string;
  /** The TLS servername (the logical name), for https. */
  readonly servername: string | undefined;
}

/** The message of `signpost:pool:close`. */
export interface PoolCloseMessage extends PoolCreateMessage {
  /** `removed`: the instance left every name's set and its pool drains; `close`: the agent closed. */
  readonly reason: 'removed' | 'close';
}

/**
 * undici options passed to every per-instance Pool and to the Agent that takes the requests
 * signpost does not discover. See undici's `Pool` options for each.
 */
export interface PoolOptions {
  /** Connections per instance. `null`: unlimited. @default null */
  connections?: number | null;
  /** Requests pipelined per connection (HTTP/1.1). @default 1 */
  pipelining?: number;
  /** How long an idle keep-alive connection is kept, in milliseconds. @default 4000 */
  keepAliveTimeout?: number;
  /** The longest keep-alive a server's `Keep-Alive` header may ask for, in milliseconds. @default 600_000 */
  keepAliveMaxTimeout?: number;
  /** Subtracted from a server's keep-alive hint, in milliseconds, to avoid racing its close. @default 2000 */
  keepAliveTimeoutThreshold?: number;
  /**
   * How long to wait for the complete response headers, in milliseconds; 0 disables it. An
   * instance that accepts connections but never answers fails with `UND_ERR_HEADERS_TIMEOUT`
   * after this (and is retried for idempotent methods). @default 300_000
   */
  headersTimeout?: number;
  /** The longest gap between two chunks of a response body, in milliseconds; 0 disables it. @default 300_000 */
  bodyTimeout?: number;
  /**
   * Socket and TLS options (`ca`, `cert`, `key`, `timeout` for the connect timeout in
   * milliseconds, …), or a connector function. Certificates are checked against the logical
   * name (the TLS servername), never the instance's address.
   */
  connect?: Record<string, unknown> | ((...args: never[]) => unknown);
  /** The largest response header section, in bytes. @default 16_384 */
  maxHeaderSize?: number;
  /** Whether HTTP/2 may be negotiated over TLS (ALPN). @default undici's default */
  allowH2?: boolean;
  /** Requests per connection before it is closed and replaced. @default unlimited */
  maxRequestsPerClient?: number;
  /** The local address to connect from. */
  localAddress?: string;
}

export interface DiscoveryAgentOptions extends DiscoveryOptions, PoolOptions {
  /**
   * An existing Discovery to route with; the agent then does not close it. Without it, the agent
   * builds its own from the Discovery options given beside (`services`, `namespaces`, `dns`, …)
   * and closes it with itself. The two cannot be mixed.
   */
  discovery?: Discovery;
  /** Retries on another instance. @default { retries: 2 } */
  retry?: RetryOptions;
}

const POOL_KEYS = [
  'connections',
  'pipelining',
  'keepAliveTimeout',
  'keepAliveMaxTimeout',
  'keepAliveTimeoutThreshold',
  'headersTimeout',
  'bodyTimeout',
  'connect',
  'maxHeaderSize',
  'allowH2',
  'maxRequestsPerClient',
  'localAddress',
] as const;

/** Validates the pool options; returns them as undici takes them. */
export function poolOptions(options: Record<string, unknown>): Pool.Options {
  const out: Record<string, unknown> = {};
  for (const key of POOL_KEYS) {
    const value = options[key];
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
        checkDuration(key, value);
        break;
      case 'connect':
        if (typeof value !== 'function' && !isPlainObject(value)) throw invalid(key, value, 'an object of socket/TLS options or a function');
        if (isPlainObject(value) && value.rejectUnauthorized === false) {
          process.emitWarning(
            'signpost: connect.rejectUnauthorized is false: TLS certificates of every instance go unchecked',
            { code: 'SIGNPOST_INSECURE_TLS' },
          );
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
    }
    out[key] = value;
  }
  return out as Pool.Options;
}

interface PoolEntry {
  readonly pool: Pool;
  /** The key Discovery knows the instance by (without a port when the registry gave none). */
  readonly liveKey: string;
  readonly message: PoolCreateMessage;
  /** Draining or closed: requests must find (or open) another pool. */
  retired: boolean;
}

export class DiscoveryAgent extends Dispatcher {
  readonly #discovery: Discovery;
  readonly #ownsDiscovery: boolean;
  readonly #router: RequestRouter;
  readonly #poolOptions: Pool.Options;
  readonly #passthrough: Agent;
  /** `origin#servername` → pool. */
  readonly #pools = new Map<string, PoolEntry>();
  /** Discovery's instance key → the pool keys serving it. */
  readonly #poolsByInstance = new Map<string, Set<string>>();
  readonly #unsubscribe: () => void;
  readonly #send: Send;
  #closed = false;
  #destroyed = false;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;

  constructor(options: DiscoveryAgentOptions = {}) {
    super();
    const raw: unknown = options;
    checkObject('options', raw);
    const { discovery, retry, ...rest } = options;
    const pool: Record<string, unknown> = {};
    const discoveryOptions: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(rest)) {
      if ((POOL_KEYS as readonly string[]).includes(key)) pool[key] = value;
      else discoveryOptions[key] = value;
    }
    this.#poolOptions = poolOptions(pool);
    const policy = retryPolicy(retry);
    if (discovery !== undefined) {
      if (!(discovery instanceof Discovery)) throw invalid('discovery', discovery, 'a Discovery');
      const extra = Object.keys(discoveryOptions);
      if (extra.length > 0) {
        throw new InvalidArgumentError(
          `Unknown option ${extra.join(', ')} beside discovery: options of a given Discovery are set where it is made, ` +
            `and the agent's own are retry, discovery and ${POOL_KEYS.join(', ')}`,
        );
      }
      this.#discovery = discovery;
      this.#ownsDiscovery = false;
    } else {
      this.#discovery = new Discovery(discoveryOptions as DiscoveryOptions);
      this.#ownsDiscovery = true;
    }
    this.#router = new RequestRouter(this.#discovery, policy, true);
    this.#passthrough = new Agent(this.#poolOptions as Agent.Options);
    this.#unsubscribe = this.#discovery.onChange((change) => this.#instancesChanged(change));
    this.#send = (endpoint, opts, handler) => {
      // The endpoint keeps its pool: no key to build, no lookup, while the pool is open.
      const entry = endpoint.slot as PoolEntry | undefined;
      if (entry !== undefined && !entry.retired) entry.pool.dispatch(opts, handler);
      else this.#sendToNewPool(endpoint, opts, handler);
    };
  }

  /** The Discovery the agent routes with. */
  get discovery(): Discovery {
    return this.#discovery;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed || this.#destroyed) {
      handler.onResponseError?.(null as never, new ClosedError('The DiscoveryAgent was used after close() or destroy(): create a new one'));
      return false;
    }
    const target = this.#router.target(opts.origin);
    if (target === null) return this.#passthrough.dispatch(opts, handler);
    return this.#router.dispatch(opts, handler, target, this.#send);
  }

  /** Request counters per instance key, and retries. */
  stats(): AgentStats {
    return this.#router.stats();
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closing ??= this.#close();
    if (callback === undefined) return this.#closing;
    this.#closing.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    this.#destroying ??= this.#destroy(err);
    if (cb === undefined) return this.#destroying;
    this.#destroying.then(cb, cb);
  }

  /** Stops routing: every pool is taken out of use and returned, for closing or destroying. */
  #takePools(): PoolEntry[] {
    this.#closed = true;
    this.#unsubscribe();
    const pools = [...this.#pools.values()];
    for (const entry of pools) entry.retired = true;
    this.#pools.clear();
    this.#poolsByInstance.clear();
    return pools;
  }

  async #close(): Promise<void> {
    const pools = this.#takePools();
    // In-flight requests finish first: Pool.close waits for them.
    await Promise.all([
      ...pools.map((entry) => this.#closePool(entry, 'close')),
      this.#passthrough.close(),
    ]);
    if (this.#ownsDiscovery) await this.#discovery.close();
  }

  async #destroy(err: Error | null): Promise<void> {
    this.#destroyed = true;
    const pools = this.#takePools();
    await Promise.all([
      ...pools.map(async (entry) => {
        if (poolCloseChannel.hasSubscribers) poolCloseChannel.publish({ ...entry.message, reason: 'close' } satisfies PoolCloseMessage);
        await entry.pool.destroy(err).catch(() => undefined);
      }),
      this.#passthrough.destroy(err).catch(() => undefined),
    ]);
    if (this.#ownsDiscovery) await this.#discovery.close();
  }

  #createPool(poolKey: string, origin: string, key: string, liveKey: string, servername: string | undefined): PoolEntry {
    const pool = new Pool(origin, this.#poolOptions);
    const message: PoolCreateMessage = { key, origin, servername };
    const entry: PoolEntry = { pool, liveKey, message, retired: false };
    this.#pools.set(poolKey, entry);
    let keys = this.#poolsByInstance.get(liveKey);
    if (keys === undefined) this.#poolsByInstance.set(liveKey, (keys = new Set()));
    keys.add(poolKey);
    if (poolCreateChannel.hasSubscribers) poolCreateChannel.publish(message);
    return entry;
  }

  async #closePool(entry: PoolEntry, reason: PoolCloseMessage['reason']): Promise<void> {
    if (poolCloseChannel.hasSubscribers) poolCloseChannel.publish({ ...entry.message, reason } satisfies PoolCloseMessage);
    await entry.pool.close().catch(() => undefined);
  }

  /** The first request to an endpoint (or one whose pool was retired): finds or opens its pool. */
  #sendToNewPool(endpoint: Endpoint, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    // A retry after close() or destroy() must not open a new pool.
    if (this.#closed) throw new ClosedError('The DiscoveryAgent was closed while the request was being retried');
    const { origin, servername, liveKey } = endpoint;
    const poolKey = servername === undefined ? origin : `${origin}#${servername}`;
    let entry = this.#pools.get(poolKey);
    if (entry !== undefined) {
      if (endpoint.live) endpoint.slot = entry;
      entry.pool.dispatch(opts, handler);
      return;
    }
    entry = this.#createPool(poolKey, origin, endpoint.key, liveKey, servername);
    if (endpoint.live) endpoint.slot = entry;
    entry.pool.dispatch(opts, handler);
    // Picked just before the instance left every name: serve this request, then let the pool
    // go (close waits for it), rather than keep a pool no name will use again.
    if (!this.#discovery.hasInstance(liveKey)) this.#retire(liveKey);
  }

  /** An instance no name serves any more: its pools drain (in-flight requests finish), then close. */
  #instancesChanged(change: InstancesChange): void {
    for (const liveKey of this.#router.instancesChanged(change)) this.#retire(liveKey);
  }

  #retire(liveKey: string): void {
    const keys = this.#poolsByInstance.get(liveKey);
    if (keys === undefined) return;
    this.#poolsByInstance.delete(liveKey);
    for (const poolKey of keys) {
      const entry = this.#pools.get(poolKey);
      if (entry === undefined) continue;
      entry.retired = true;
      this.#pools.delete(poolKey);
      void this.#closePool(entry, 'removed').then(() => this.#router.forget(entry.message.key));
    }
  }
}
