/**
 * DiscoveryAgent: an undici Dispatcher that sends each request for a discovered name to one of
 * its instances, over one connection pool per instance, and everything else to a plain undici
 * Agent. Use it with `setGlobalDispatcher`, `fetch(url, { dispatcher })` or `undici.request`.
 *
 * Where undici's Agent has a behaviour, this one has the same: the same checks with the same
 * errors, the same events (naming the logical origin), `closed`/`destroyed`, `close()` waiting for
 * requests in flight, `destroy(err)` failing them with `err`, every Agent option.
 */
import type { EventEmitter } from 'node:events';
import { Agent, Dispatcher, errors } from 'undici';
import { Discovery, discoveryHealth, type InstancesChange } from '../discovery.ts';
import { InvalidArgumentError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import type { DiscoveryOptions } from '../options.ts';
import { checkObject, invalid } from '../validate.ts';
import { dnsAroundSignpost, hostHeaderOf, isDnsInterceptor, isIpOrigin, rewrittenOrigin } from './compose.ts';
import type { Endpoint } from './endpoint.ts';
import { assertHandler, rejectDispatch } from './handler.ts';
import { kClients, mockFor } from './mock.ts';
import { isUndiciOption, parsePoolOptions, UNDICI_OPTIONS, type PoolOptions } from './pool-options.ts';
import { PoolEntry, Pools } from './pools.ts';
import { getThrough, instanceProber } from './probe.ts';
import { RequestRouter, type AgentStats } from './router.ts';
import type { Send } from './request.ts';
import { parseRetryOptions, type RetryOptions } from './retry-policy.ts';
import type { Target } from './target.ts';

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

type DispatchOptions = Dispatcher.DispatchOptions;
type Handler = Dispatcher.DispatchHandler;
type Interceptor = (dispatch: Dispatcher.Dispatch, origin?: unknown) => Dispatcher.Dispatch;

const AGENT_OPTIONS = ['discovery', 'retry'];

export class DiscoveryAgent extends Dispatcher {
  readonly #discovery: Discovery;
  readonly #ownsDiscovery: boolean;
  readonly #router: RequestRouter;
  readonly #pools: Pools;
  readonly #passthrough: Agent;
  readonly #allowH2: boolean | undefined;
  readonly #send: Send;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  #destroyed = false;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;
  /** MockAgent's mocks, by logical origin (see mock.ts). */
  readonly #mocks = new Map<string, Dispatcher>();

  constructor(options: DiscoveryAgentOptions = {}) {
    super();
    const raw: unknown = options;
    checkObject('options', raw);
    const { discovery, retry, ...rest } = options;
    const undiciOptions: Record<string, unknown> = {};
    const discoveryOptions: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(rest)) {
      if (isUndiciOption(key)) undiciOptions[key] = value;
      else discoveryOptions[key] = value;
    }
    const parsed = parsePoolOptions(undiciOptions);
    const policy = parseRetryOptions(retry);
    if (discovery !== undefined) {
      if (!(discovery instanceof Discovery)) throw invalid('discovery', discovery, 'a Discovery');
      const extra = Object.keys(discoveryOptions);
      if (extra.length > 0) {
        throw new InvalidArgumentError(
          `Unknown option ${extra.join(', ')} beside discovery: options of a given Discovery are set where it is made; ` +
            `the agent's own are ${AGENT_OPTIONS.join(', ')} and undici's ${UNDICI_OPTIONS.join(', ')}`,
        );
      }
      this.#discovery = discovery;
      this.#ownsDiscovery = false;
    } else {
      try {
        this.#discovery = new Discovery(discoveryOptions as DiscoveryOptions);
      } catch (error) {
        if (error instanceof InvalidArgumentError && error.message.startsWith('Unknown option')) {
          throw new InvalidArgumentError(`${error.message}; and the agent's own: ${AGENT_OPTIONS.join(', ')} and undici's ${UNDICI_OPTIONS.join(', ')}`);
        }
        throw error;
      }
      this.#ownsDiscovery = true;
    }
    this.#allowH2 = parsed.pools.allowH2;
    this.#router = new RequestRouter(this.#discovery, policy, true);
    this.#router.headersTimeoutChosen = undiciOptions.headersTimeout !== undefined;
    // undici's event signatures, with the logical origin and, last, the instance key.
    const emitter = this as unknown as EventEmitter;
    this.#pools = new Pools(parsed.pools, parsed.factory, (event, origin, targets, error, key) => {
      if (error === undefined) emitter.emit(event, origin, [this, ...targets], key);
      else emitter.emit(event, origin, [this, ...targets], error, key);
    });
    this.#passthrough = new Agent(parsed.factory === undefined ? parsed.passthrough : { ...parsed.passthrough, factory: parsed.factory });
    for (const event of ['connect', 'disconnect', 'connectionError', 'drain']) {
      (this.#passthrough as unknown as EventEmitter).on(event, (origin: URL, targets: Dispatcher[], ...rest: unknown[]) => {
        emitter.emit(event, origin, [this, ...targets.slice(1)], ...rest);
      });
    }
    this.#unsubscribe = this.#discovery.onChange((change) => this.#instancesChanged(change));
    const unprobe = discoveryHealth(this.#discovery).setProber(
      instanceProber(new WeakRef(this.#router), (endpoint, opts) =>
        getThrough((o, h) => this.#pools.get(endpoint, endpoint.https ? endpoint.target.name : undefined, false).pool.dispatch(o, h))(endpoint, opts),
      ),
    );
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = () => {
      unsubscribe();
      unprobe();
    };
    this.#send = (endpoint, opts, handler, target) => {
      // The endpoint keeps its last pool: no key to build, no lookup, while the pool is open.
      const h1 = (opts as { allowH2?: boolean }).allowH2 === false && this.#allowH2 !== false;
      const servername = endpoint.https ? ((opts as { servername?: string }).servername ?? undefined) : undefined;
      const entry = endpoint.slot as PoolEntry | undefined;
      if (entry === undefined || entry.retired || entry.servername !== servername || entry.h1 !== h1) {
        return this.#sendToNewPool(endpoint, opts, handler, target, servername, h1);
      }
      entry.lastTarget = target;
      const ok = entry.pool.dispatch(opts, handler);
      if (!ok) (entry.needDrain ??= new Set()).add(target);
      return ok;
    };
    if (kClients !== undefined) Object.defineProperty(this, kClients, { value: this.#mocks });
  }

  /** The Discovery the agent routes with. */
  get discovery(): Discovery {
    return this.#discovery;
  }

  /** True once close() was called (as undici's dispatchers). */
  get closed(): boolean {
    return this.#closed;
  }

  /** True once destroy() was called, or close() finished. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** WebSocket limits, read by undici's WebSocket from the dispatcher (the `webSocket` option). */
  get webSocketOptions(): unknown {
    return (this.#passthrough as unknown as { webSocketOptions: unknown }).webSocketOptions;
  }

  /** EventSource limits, read by undici's EventSource from the dispatcher (the `eventSource` option). */
  get eventSourceOptions(): unknown {
    return (this.#passthrough as unknown as { eventSourceOptions: unknown }).eventSourceOptions;
  }

  override dispatch(opts: DispatchOptions, handler: Handler): boolean {
    if (handler === null || typeof handler !== 'object') throw new errors.InvalidArgumentError('handler must be an object');
    try {
      if (opts === null || typeof opts !== 'object') throw new errors.InvalidArgumentError('opts must be an object.');
      if ((opts as { dispatcher?: unknown }).dispatcher) {
        throw new errors.InvalidArgumentError(
          'opts.dispatcher is not supported by instance methods. Pass opts.dispatcher to the top-level undici functions or call the dispatcher instance method directly.',
        );
      }
      if (this.#destroyed) throw new errors.ClientDestroyedError();
      if (this.#closed) throw new errors.ClientClosedError();
      if (this.#mocks.size > 0) {
        const mock = mockFor(this.#mocks, opts.origin, (opts as { allowH2?: boolean }).allowH2);
        if (mock !== undefined) return mock.dispatch(opts, handler);
      }
      const target = this.#router.target(opts.origin);
      if (target === null) {
        this.#refuseBypass(opts);
        return this.#passthrough.dispatch(opts, handler);
      }
      assertHandler(handler, opts.method, opts.upgrade);
      return this.#router.dispatch(opts, handler, target, this.#send);
    } catch (error) {
      return rejectDispatch(handler, error);
    }
  }

  /** `interceptors.dns()` around the agent: refused (see compose.ts). */
  override compose(...args: Array<Interceptor | Interceptor[]>): Dispatcher.ComposedDispatcher {
    const list = (Array.isArray(args[0]) ? args[0] : args) as Interceptor[];
    const checked = list.map((interceptor) => {
      if (typeof interceptor !== 'function') return interceptor;
      const wrapped: Interceptor = (dispatch, origin) => {
        const composed = interceptor(dispatch, origin);
        if (isDnsInterceptor(composed)) throw dnsAroundSignpost('the names it discovers');
        return composed;
      };
      return wrapped;
    });
    return super.compose(checked as unknown as Parameters<Dispatcher['compose']>[0]);
  }

  /** Request counters per instance key, and retries. */
  stats(): AgentStats {
    return this.#router.stats();
  }

  override close(): Promise<void>;
  override close(callback: (err?: Error | null) => void): void;
  override close(callback?: (err?: Error | null) => void): Promise<void> | void {
    // As undici's dispatchers: a destroyed one (close() ends by destroying) refuses to close.
    const done = this.#destroyed ? Promise.reject(new errors.ClientDestroyedError()) : (this.#closing ??= this.#close());
    if (callback === undefined) return done;
    done.then(
      () => callback(null),
      (error: Error) => callback(error),
    );
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    this.#destroying ??= this.#destroy(err ?? new errors.ClientDestroyedError());
    if (cb === undefined) return this.#destroying;
    this.#destroying.then(cb, cb);
  }

  async #close(): Promise<void> {
    this.#closed = true;
    // Requests in flight finish first, retries included (they may still open pools).
    await this.#router.idle();
    await Promise.all([this.#pools.closeAll(), this.#passthrough.close()]);
    await this.destroy();
  }

  async #destroy(error: Error): Promise<void> {
    this.#destroyed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#router.destroy(error);
    await Promise.all([this.#pools.destroyAll(error), this.#passthrough.destroy(error).catch(() => undefined)]);
    // What the agent cached goes with it, even while the agent object is still referenced.
    this.#router.clear();
    if (this.#ownsDiscovery) await this.#discovery.close();
  }

  /** The first request to an endpoint (or one whose pool changed): finds or opens its pool. */
  #sendToNewPool(endpoint: Endpoint, opts: DispatchOptions, handler: Handler, target: Target, servername: string | undefined, h1: boolean): boolean {
    // A retry after destroy() must not open a new pool.
    if (this.#destroyed) throw new errors.ClientDestroyedError();
    const entry = this.#pools.get(endpoint, servername, h1);
    if (endpoint.live) endpoint.slot = entry;
    entry.lastTarget = target;
    const ok = entry.pool.dispatch(opts, handler);
    if (!ok) (entry.needDrain ??= new Set()).add(target);
    // Picked just before the instance left every name: serve this request, then let the pool go
    // (close waits for it), rather than keep a pool no name will use again.
    if (!endpoint.live && !this.#discovery.hasInstance(endpoint.liveKey)) void this.#pools.retire(endpoint.liveKey);
    return ok;
  }

  /**
   * Instances left a name: its https pools to them drain; an instance no name serves any more
   * loses all its pools (in-flight requests finish, then they close).
   */
  #instancesChanged(change: InstancesChange): void {
    for (const instance of change.removed) this.#pools.retireName(instanceKey(instance), change.name);
    for (const { liveKey, keys } of this.#router.instancesChanged(change)) {
      void this.#pools.retire(liveKey).then(() => {
        for (const key of keys) this.#router.forget(key);
      });
    }
  }

  /**
   * A request for an IP address that undici's DNS interceptor rewrote from a discovered name:
   * discovery would be bypassed without a word.
   */
  #refuseBypass(opts: DispatchOptions): void {
    const from = rewrittenOrigin(opts);
    if (from === undefined || !isIpOrigin(opts.origin)) return;
    const target = this.#router.target(from as string | URL);
    // The DNS interceptor keeps the name as the Host header; a redirect to an address does not.
    if (target !== null && hostHeaderOf(opts.headers) === target.hostHeader) throw dnsAroundSignpost(target.name);
  }
}
