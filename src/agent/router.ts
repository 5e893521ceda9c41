/**
 * The per-agent (or per-interceptor) state every request shares: which origins are discovered,
 * the endpoint of each picked instance, counters, the retry policy and budget, the requests in
 * flight, and the stall detector that ejects instances which take requests and answer none.
 */
import type { Dispatcher } from 'undici';
import { channels, type StallMessage } from '../diagnostics.ts';
import { discoveryHealth, type Discovery, type InstancesChange } from '../discovery.ts';
import { instanceKey } from '../instance.ts';
import type { Instance } from '../types.ts';
import { Counters, Endpoint, type HealthReporter, type HealthState, type Waiter } from './endpoint.ts';
import { stallError } from './request-errors.ts';
import { RetryBudget } from './retry-budget.ts';
import type { RetryPolicy } from './retry-policy.ts';
import { RoutedRequest, type Send } from './request.ts';
import { parseTarget, type Target } from './target.ts';

type Handler = Dispatcher.DispatchHandler;
type DispatchOptions = Dispatcher.DispatchOptions;

const stallChannel = channels.agentStall;

/** Counters of one instance, for `stats()`. */
export interface InstanceStats {
  /** Requests sent to the instance and not yet finished. */
  readonly inflight: number;
  /** Attempts sent to the instance, in all (retries included). */
  readonly requests: number;
  /** Attempts that failed (transport errors and 5xx responses). */
  readonly failures: number;
  /** Whether outlier ejection has taken the instance out of balancing now. */
  readonly ejected: boolean;
}

/** What `stats()` returns. */
export interface AgentStats {
  /** Requests to discovered hosts (each counted once, however often retried). */
  readonly requests: number;
  /** Retries made. */
  readonly retries: number;
  /** Retries the budget refused. */
  readonly retriesDenied: number;
  /** Per instance key (`address:port`). */
  readonly instances: Record<string, InstanceStats>;
}

/** An instance object's endpoint for one target (an instance object is usually picked for one target only). */
interface Route {
  readonly target: Target;
  readonly endpoint: Endpoint;
  readonly next: Route | undefined;
}

/** Targets remembered per instance object before the oldest is dropped. */
const MAX_ROUTES_PER_INSTANCE = 4;
const MAX_CACHED_ORIGINS = 4096;

/** One ref'd handle for every request that waits on Discovery, so the process stays up meanwhile. */
class KeepAlive {
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  hold(): void {
    if (this.#count++ === 0) this.#timer = setInterval(() => undefined, 1 << 30);
  }

  release(): void {
    if (--this.#count === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

export class RequestRouter {
  readonly discovery: Discovery;
  readonly policy: RetryPolicy;
  readonly budget: RetryBudget | undefined;
  /**
   * Attempts go straight to undici Pools (the agent), not down an interceptor chain whose other
   * interceptors may expect the headers as the caller gave them: the request may then carry the
   * forms undici's Request reads fastest.
   */
  readonly toPools: boolean;
  readonly #origins = new Map<string, Target | null>();
  readonly #counters = new Map<string, Counters>();
  /**
   * Instance object → its endpoint per target. Discovery keeps the same Instance objects while a
   * set is unchanged, so this is one WeakMap lookup per request; an object that is no longer
   * served is collected with its entry.
   */
  #routes = new WeakMap<Instance, Route>();
  /** `liveKey origin` → the live endpoint. */
  readonly #endpoints = new Map<string, Endpoint>();
  /** Discovery's instance key → its live endpoints (one per port and scheme it is reached on). */
  readonly #endpointsByLiveKey = new Map<string, Endpoint[]>();
  /** Requests waiting on a timer or on Discovery: the agent's destroy() ends them. */
  readonly #waiting = new Set<RoutedRequest>();
  readonly #keepAlive = new KeepAlive();
  #stallTimer: NodeJS.Timeout | undefined;
  #active = 0;
  #idle: (() => void) | undefined;
  /** Set by the agent's destroy(): no retry starts any more. */
  stopping = false;
  /**
   * The agent was given a `headersTimeout`: requests stuck on a frozen instance then wait for it
   * rather than being moved by the stall detector.
   */
  headersTimeoutChosen = false;
  requests = 0;
  retries = 0;

  constructor(discovery: Discovery, policy: RetryPolicy, toPools = false) {
    this.discovery = discovery;
    this.policy = policy;
    this.budget = policy.budget === false ? undefined : new RetryBudget(policy.budget);
    this.toPools = toPools;
  }

  get health(): HealthReporter | undefined {
    return discoveryHealth(this.discovery);
  }

  /** The target of an origin when discovery handles it; null to pass the request through. */
  target(origin: string | URL | undefined): Target | null {
    if (origin == null) return null;
    const key = typeof origin === 'string' ? origin : origin.href;
    let target = this.#origins.get(key);
    if (target === undefined) {
      const parsed = parseTarget(origin);
      target = parsed !== undefined && this.discovery.handles(parsed.name) ? parsed : null;
      // Origins come from callers; a bound keeps a scan over many hosts from growing the map.
      if (this.#origins.size >= MAX_CACHED_ORIGINS) this.#origins.clear();
      this.#origins.set(key, target);
    }
    return target;
  }

  dispatch(opts: DispatchOptions, handler: Handler, target: Target, send: Send): boolean {
    return new RoutedRequest(this, opts, handler, target, send).start();
  }

  /** The endpoint a picked instance is reached at for a target: cached, built on first use. */
  endpoint(instance: Instance, target: Target): Endpoint {
    const head = this.#routes.get(instance);
    for (let route = head; route !== undefined; route = route.next) {
      if (route.target === target && route.endpoint.live) return route.endpoint;
    }
    return this.#route(instance, target, head);
  }

  #route(instance: Instance, target: Target, head: Route | undefined): Endpoint {
    const port = instance.port ?? target.urlPort ?? target.defaultPort;
    const key = instanceKey({ address: instance.address, port });
    const liveKey = instance.port === undefined ? instanceKey(instance) : key;
    const origin = `${target.protocol}//${key}`;
    const id = `${liveKey} ${origin}`;
    let endpoint = this.#endpoints.get(id);
    if (endpoint === undefined) {
      const health = this.health;
      const counters = this.#countersOf(key);
      let state: HealthState | undefined;
      if (health !== undefined) counters.health = state = health.state(instance);
      endpoint = new Endpoint(key, liveKey, origin, target, counters, health, state);
      this.#watchStalls();
      // Picked just before it left every name: used for this request, never cached.
      if (!this.discovery.hasInstance(liveKey)) return endpoint;
      endpoint.live = true;
      this.#endpoints.set(id, endpoint);
      const list = this.#endpointsByLiveKey.get(liveKey);
      if (list === undefined) this.#endpointsByLiveKey.set(liveKey, [endpoint]);
      else list.push(endpoint);
    }
    // The new route first; dead ones and the oldest beyond the bound are dropped.
    let kept: Route | undefined;
    const others: Route[] = [];
    for (let route = head; route !== undefined && others.length < MAX_ROUTES_PER_INSTANCE - 1; route = route.next) {
      if (route.endpoint.live && route.target !== target) others.push(route);
    }
    for (let i = others.length - 1; i >= 0; i--) kept = { target: others[i]!.target, endpoint: others[i]!.endpoint, next: kept };
    this.#routes.set(instance, { target, endpoint, next: kept });
    return endpoint;
  }

  /** The live endpoints of an instance Discovery knows by `liveKey`. */
  endpointsOf(liveKey: string): readonly Endpoint[] {
    return this.#endpointsByLiveKey.get(liveKey) ?? [];
  }

  /**
   * Instances left a name's set. Those no name serves any more lose their endpoints (a later
   * return builds fresh ones, with the health state Discovery then holds); returns them, with the
   * keys their endpoints were reached at.
   */
  instancesChanged(change: InstancesChange): Array<{ liveKey: string; keys: string[] }> {
    const gone: Array<{ liveKey: string; keys: string[] }> = [];
    for (const instance of change.removed) {
      this.#routes.delete(instance);
      const liveKey = instanceKey(instance);
      if (this.discovery.hasInstance(liveKey)) continue;
      const list = this.#endpointsByLiveKey.get(liveKey) ?? [];
      gone.push({ liveKey, keys: list.map((endpoint) => endpoint.key) });
      this.#endpointsByLiveKey.delete(liveKey);
      for (const endpoint of list) {
        endpoint.live = false;
        this.#endpoints.delete(`${liveKey} ${endpoint.origin}`);
      }
    }
    return gone;
  }

  #countersOf(key: string): Counters {
    let c = this.#counters.get(key);
    if (c === undefined) {
      c = new Counters(key);
      this.#counters.set(key, c);
    }
    return c;
  }

  /** Drops the counters of an instance key nothing is in flight to and no live endpoint uses. */
  forget(key: string): void {
    const c = this.#counters.get(key);
    if (c === undefined || c.inflight !== 0) return;
    for (const endpoint of this.#endpoints.values()) if (endpoint.counters === c) return;
    this.#counters.delete(key);
  }

  stats(): AgentStats {
    const instances: Record<string, InstanceStats> = {};
    for (const [key, c] of this.#counters) {
      instances[key] = { inflight: c.inflight, requests: c.requests, failures: c.failures, ejected: c.health?.ejected === true };
    }
    return {
      requests: this.requests,
      retries: this.retries,
      retriesDenied: this.budget?.denied ?? 0,
      instances,
    };
  }

  // ---------------------------------------------------------------- requests in flight

  begin(_request: RoutedRequest): void {
    this.requests++;
    this.#active++;
    this.budget?.request();
  }

  end(_request: RoutedRequest): void {
    if (--this.#active === 0 && this.#idle !== undefined) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }

  /** A request waits on a timer, or (`cold`) on Discovery, which may hold nothing of its own that keeps the process up. */
  waitStarted(request: RoutedRequest, cold: boolean): void {
    this.#waiting.add(request);
    if (cold) this.#keepAlive.hold();
  }

  waitEnded(request: RoutedRequest, cold: boolean): void {
    this.#waiting.delete(request);
    if (cold) this.#keepAlive.release();
  }

  /** Resolves once no request is in flight (retries included). */
  idle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#idle;
      this.#idle = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** Ends every request that waits on a timer or on Discovery with `error`; no retry starts afterwards. */
  destroy(error: Error): void {
    this.stopping = true;
    for (const request of [...this.#waiting]) request.destroy(error);
  }

  /** Lets go of everything cached: the agent closed. */
  clear(): void {
    clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#origins.clear();
    this.#counters.clear();
    this.#endpoints.clear();
    this.#endpointsByLiveKey.clear();
    this.#routes = new WeakMap();
  }

  // ---------------------------------------------------------------- stall detection

  #watchStalls(): void {
    const stallTimeout = this.health?.stallTimeout ?? 0;
    if (this.#stallTimer !== undefined || stallTimeout <= 0 || this.health?.onStall === undefined) return;
    const tick = Math.min(1000, Math.max(10, Math.floor(stallTimeout / 10)));
    // The interceptor is never closed: the timer holds the router weakly and stops once it is gone.
    const ref = new WeakRef(this);
    const timer = setInterval(() => {
      const router = ref.deref();
      if (router === undefined) clearInterval(timer);
      else router.#checkStalls(tick, stallTimeout);
    }, tick);
    timer.unref();
    this.#stallTimer = timer;
  }

  #checkStalls(tick: number, stallTimeout: number): void {
    for (const c of this.#counters.values()) {
      if (c.waiting === 0 || c.progress !== c.lastProgress) {
        c.lastProgress = c.progress;
        c.stalledFor = 0;
        continue;
      }
      c.stalledFor += tick;
      if (c.stalledFor < stallTimeout) continue;
      const stalledFor = c.stalledFor;
      c.stalledFor = 0;
      if (stallChannel.hasSubscribers) stallChannel.publish({ key: c.key, waiting: c.waiting, stalledFor } satisfies StallMessage);
      if (c.health !== undefined) this.health!.onStall!(c.health);
      const error = stallError(c.key, stallTimeout);
      const stuck: Waiter[] = [];
      for (let w = c.waitingHead; w !== null; w = w.nextWaiter) stuck.push(w);
      for (const waiter of stuck) waiter.stalled(error);
    }
  }
}
