/**
 * The request path shared by DiscoveryAgent and discoveryInterceptor: pick an instance, send the
 * request to it with the Host header and TLS servername of the logical name, report the outcome
 * to outlier ejection, and retry on another instance when that is safe.
 *
 * One RoutedRequest per request, one Attempt (an undici handler) per try. The caller's handler
 * sees one `onRequestStart` with a controller that follows whichever attempt is current, and
 * nothing of an attempt that failed before its response headers: once they were passed on, the
 * request is committed and is never retried.
 */
import { channel } from 'node:diagnostics_channel';
import pRetry from 'p-retry';
import type { Dispatcher } from 'undici';
import type { Discovery, InstancesChange } from '../discovery.ts';
import { ClosedError, RetriesExhaustedError, SignpostError, type Attempt as AttemptRecord } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import {
  bodyReplayable,
  classifyFailure,
  errorCode,
  needsTracking,
  provesNotSent,
  RetryBudget,
  trackIterable,
  type RetryPolicy,
} from '../retry.ts';
import type { Instance } from '../types.ts';
import { parseTarget, withHostHeader, type Target } from './target.ts';

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;
type DispatchOptions = Dispatcher.DispatchOptions;

const pickChannel = channel('signpost:agent:pick');
const retryChannel = channel('signpost:agent:retry');

/** The message of `signpost:agent:pick`. */
export interface PickMessage {
  readonly name: string;
  /** `address:port` the attempt goes to. */
  readonly key: string;
  readonly instance: Instance;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/** The message of `signpost:agent:retry`. */
export interface RetryMessage {
  readonly name: string;
  readonly method: string;
  /** The instance whose attempt failed. */
  readonly key: string;
  readonly error: Error;
  /** The number of the attempt about to be made (2 for the first retry). */
  readonly attempt: number;
}

/** The health tracker as the agent uses it: `discovery.health` (src/health.ts). */
export interface HealthReporter {
  state(instance: Pick<Instance, 'address' | 'port'>): HealthState;
  onStart(state: HealthState): void;
  onSuccess(state: HealthState): void;
  onFailure(state: HealthState, kind: 'connect' | 'timeout' | 'reset' | '5xx'): void;
  onCancel?(state: HealthState): void;
}

export interface HealthState {
  inflight: number;
  readonly ejected?: boolean;
}

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

class Counters {
  inflight = 0;
  requests = 0;
  failures = 0;
  health: HealthState | undefined;
}

/**
 * One instance as requests reach it: its key, origin, TLS servername, counters and health state,
 * worked out once and shared by every request to it. Valid while Discovery serves the instance:
 * when it leaves every name, the router marks it dead and builds a fresh one if it comes back.
 */
export class Endpoint {
  /** `address:port` the requests go to. */
  readonly key: string;
  /** The key Discovery knows the instance by (no port when the registry gave none). */
  readonly liveKey: string;
  /** `http://10.0.1.5:8080`. */
  readonly origin: string;
  /** The logical name for https (certificates are checked against it); undefined for http. */
  readonly servername: string | undefined;
  readonly counters: Counters;
  readonly health: HealthReporter | undefined;
  readonly state: HealthState | undefined;
  /** False once the instance left every name (or before it was ever served). */
  live = false;
  /** The dispatcher's own per-endpoint slot (the agent keeps the instance's pool here). */
  slot: unknown = undefined;

  constructor(key: string, liveKey: string, origin: string, servername: string | undefined, counters: Counters, health: HealthReporter | undefined, state: HealthState | undefined) {
    this.key = key;
    this.liveKey = liveKey;
    this.origin = origin;
    this.servername = servername;
    this.counters = counters;
    this.health = health;
    this.state = state;
  }
}

/** An instance object's endpoint for one target (an instance object is usually picked for one target only). */
interface Route {
  readonly target: Target;
  readonly endpoint: Endpoint;
  readonly next: Route | undefined;
}

/** Targets remembered per instance object before the oldest is dropped. */
const MAX_ROUTES_PER_INSTANCE = 4;

/** Sends one attempt: to the instance's pool (the agent) or down the chain (the interceptor). */
export type Send = (endpoint: Endpoint, opts: DispatchOptions, handler: Handler) => void;

const MAX_CACHED_ORIGINS = 4096;

/** The per-agent state every request shares. */
export class RequestRouter {
  readonly discovery: Discovery;
  readonly policy: RetryPolicy;
  readonly budget: RetryBudget | undefined;
  readonly #origins = new Map<string, Target | null>();
  readonly #counters = new Map<string, Counters>();
  /**
   * Instance object → its endpoint per target. Discovery keeps the same Instance objects while a
   * set is unchanged, so this is one WeakMap lookup per request; an object that is no longer
   * served is collected with its entry.
   */
  readonly #routes = new WeakMap<Instance, Route>();
  /** `liveKey origin servername` → the live endpoint. */
  readonly #endpoints = new Map<string, Endpoint>();
  /** Discovery's instance key → its live endpoints (one per port and scheme it is reached on). */
  readonly #endpointsByLiveKey = new Map<string, Endpoint[]>();
  /**
   * Attempts go straight to undici Pools (the agent), not down an interceptor chain whose other
   * interceptors may expect the headers as the caller gave them: the request may then carry the
   * forms undici's Request reads fastest.
   */
  readonly toPools: boolean;
  requests = 0;
  retries = 0;

  constructor(discovery: Discovery, policy: RetryPolicy, toPools = false) {
    this.discovery = discovery;
    this.policy = policy;
    this.budget = policy.budget === false ? undefined : new RetryBudget(policy.budget);
    this.toPools = toPools;
  }

  get health(): HealthReporter | undefined {
    return (this.discovery as { health?: HealthReporter }).health;
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
    // Host header and TLS servername stay the logical name, so certificates are checked against
    // it; only the origin names the instance.
    const servername = target.protocol === 'https:' ? target.name : undefined;
    const id = `${liveKey} ${origin} ${servername ?? ''}`;
    let endpoint = this.#endpoints.get(id);
    if (endpoint === undefined) {
      const health = this.health;
      const counters = this.counters(key);
      let state: HealthState | undefined;
      if (health !== undefined) counters.health = state = health.state(instance);
      endpoint = new Endpoint(key, liveKey, origin, servername, counters, health, state);
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

  /**
   * Instances left a name's set. Those no name serves any more lose their endpoints (a later
   * return builds fresh ones, with the health state Discovery then holds); returns their keys.
   */
  instancesChanged(change: InstancesChange): string[] {
    const gone: string[] = [];
    for (const instance of change.removed) {
      this.#routes.delete(instance);
      const liveKey = instanceKey(instance);
      if (this.discovery.hasInstance(liveKey)) continue;
      gone.push(liveKey);
      const list = this.#endpointsByLiveKey.get(liveKey);
      if (list === undefined) continue;
      this.#endpointsByLiveKey.delete(liveKey);
      for (const endpoint of list) {
        endpoint.live = false;
        this.#endpoints.delete(`${liveKey} ${endpoint.origin} ${endpoint.servername ?? ''}`);
      }
    }
    return gone;
  }

  counters(key: string): Counters {
    let c = this.#counters.get(key);
    if (c === undefined) {
      c = new Counters();
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

  dispatch(opts: DispatchOptions, handler: Handler, target: Target, send: Send): boolean {
    new RoutedRequest(this, opts, handler, target, send).start();
    return true;
  }
}

/**
 * The controller the caller's handler holds for the whole request: it follows the current
 * attempt, and an abort reaches the request even between attempts (while picking or waiting to
 * retry), so it cannot hang there.
 */
class ControllerProxy implements Controller {
  target: Controller | null = null;
  #aborted = false;
  #reason: Error | null = null;
  #paused = false;
  readonly #request: RoutedRequest;

  constructor(request: RoutedRequest) {
    this.#request = request;
  }

  get aborted(): boolean {
    return this.#aborted;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get rawHeaders(): Exclude<Controller['rawHeaders'], undefined> {
    return this.target?.rawHeaders ?? null;
  }
  get rawTrailers(): Exclude<Controller['rawTrailers'], undefined> {
    return this.target?.rawTrailers ?? null;
  }

  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#request.callerAbort(reason);
  }
  pause(): void {
    this.#paused = true;
    this.target?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.target?.resume();
  }
}

type Settle = { resolve: () => void; reject: (error: Error) => void };

/**
 * One try of a request on one instance: the undici handler of that try. While it is its
 * request's current attempt, its callbacks go straight to the caller's handler; anything from an
 * attempt that is no longer current (or after the request ended) is dropped.
 */
class Attempt implements Handler {
  readonly request: RoutedRequest;
  readonly endpoint: Endpoint;
  controller: Controller | null = null;
  /** undici began to write the request (onRequestStart): it may have reached the instance. */
  started = false;
  #status = 0;
  #reported = false;
  /** Settles the attempt for the retry loop: resolve on commit, reject on a failure before it. */
  readonly settle: Settle | undefined;

  constructor(request: RoutedRequest, endpoint: Endpoint, settle: Settle | undefined) {
    this.request = request;
    this.endpoint = endpoint;
    this.settle = settle;
    const counters = endpoint.counters;
    counters.inflight++;
    counters.requests++;
    if (endpoint.state !== undefined) endpoint.health!.onStart(endpoint.state);
  }

  /** Reports the outcome once: to outlier ejection and to the counters. */
  report(outcome: 'success' | 'cancel' | 'connect' | 'timeout' | 'reset' | '5xx'): void {
    if (this.#reported) return;
    this.#reported = true;
    const endpoint = this.endpoint;
    endpoint.counters.inflight--;
    if (outcome !== 'success' && outcome !== 'cancel') endpoint.counters.failures++;
    const state = endpoint.state;
    if (state === undefined) return;
    if (outcome === 'success') endpoint.health!.onSuccess(state);
    // Neither a success nor the instance's fault (the caller gave up, or a bad request).
    else if (outcome === 'cancel') endpoint.health!.onCancel?.(state);
    else endpoint.health!.onFailure(state, outcome);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    this.started = true;
    const request = this.request;
    if (request.current !== this) {
      // The caller aborted while this attempt was queued: stop it before it is written.
      controller.abort(request.proxy.reason ?? new Error('signpost: request already settled'));
      return;
    }
    request.proxy.target = controller;
    if (request.proxy.paused) controller.pause();
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import('node:stream').Duplex): void {
    this.#status = statusCode;
    this.report('success');
    const request = this.request;
    if (request.current !== this) return;
    request.commit(this, controller);
    request.end();
    request.handler.onRequestUpgrade?.(request.proxy, statusCode, headers, socket);
  }

  onResponseStarted(): void {
    const request = this.request;
    if (request.current === this) request.handler.onResponseStarted?.();
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    const request = this.request;
    if (statusCode >= 200) {
      this.#status = statusCode;
      if (request.current !== this) return;
      request.commit(this, controller);
    } else if (request.current !== this) return;
    request.handler.onResponseStart?.(request.proxy, statusCode, headers, statusMessage);
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    const request = this.request;
    if (request.current === this) request.handler.onResponseData?.(request.proxy, chunk);
  }

  onResponseEnd(_controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    this.report(this.#status >= 500 ? '5xx' : 'success');
    const request = this.request;
    if (request.current !== this) return;
    request.end();
    request.handler.onResponseEnd?.(request.proxy, trailers);
  }

  onResponseError(_controller: Controller | null, error: Error): void {
    const request = this.request;
    if (request.proxy.aborted) this.report('cancel');
    else if (this.#status >= 500) this.report('5xx');
    else this.report(classifyFailure(error).kind ?? 'cancel');
    request.attemptError(this, error);
  }

  onBodySent(chunk: Buffer): void {
    const request = this.request;
    if (request.current === this) request.handler.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    const request = this.request;
    if (request.current === this) request.handler.onRequestSent?.();
  }
}

class RoutedRequest {
  readonly handler: Handler;
  readonly proxy: ControllerProxy;
  /** The attempt whose callbacks reach the caller; undefined once the request ended. */
  current: Attempt | undefined;
  /** The response headers of the current attempt went to the caller: never retried from here. */
  committed = false;
  done = false;
  readonly #router: RequestRouter;
  readonly #opts: DispatchOptions;
  readonly #body: DispatchOptions['body'];
  readonly #headers: DispatchOptions['headers'];
  /** The TLS servername of every attempt (https), or undefined to leave the caller's. */
  readonly #servername: string | undefined;
  readonly #target: Target;
  readonly #send: Send;
  #attempts: AttemptRecord[] | undefined;
  #tried: Set<string> | undefined;
  #iterated = false;
  #stopReason = '';
  #retryAbort: AbortController | undefined;

  constructor(router: RequestRouter, opts: DispatchOptions, handler: Handler, target: Target, send: Send) {
    this.#router = router;
    this.handler = handler;
    this.#target = target;
    this.#send = send;
    let body = opts.body;
    if (body != null && router.policy.retries > 0 && needsTracking(body)) {
      body = trackIterable(body, () => {
        this.#iterated = true;
      }) as DispatchOptions['body'];
    }
    this.#opts = opts;
    this.#body = body;
    if (opts.headers == null) {
      // Without headers of its own (the common case), every request to the origin shares one
      // frozen `{ host }` (or `['host', …]` for a Pool).
      this.#headers = (router.toPools ? target.hostHeaderList : target.hostHeaders) as DispatchOptions['headers'];
      // Host header and TLS servername stay the logical name, so certificates are checked
      // against it. Over http, a Pool would work the same servername out of the Host header on
      // every request (an IP-address test included): given, it is not.
      this.#servername =
        target.protocol === 'https:' || (router.toPools && (opts as { servername?: string }).servername == null) ? target.name : undefined;
    } else {
      this.#headers = withHostHeader(opts.headers, target.hostHeader);
      this.#servername = target.protocol === 'https:' ? target.name : undefined;
    }
    this.proxy = new ControllerProxy(this);
  }

  get #method(): string {
    return (this.#opts.method ?? 'GET').toUpperCase();
  }

  start(): void {
    const router = this.#router;
    router.requests++;
    router.budget?.request();
    try {
      this.handler.onRequestStart?.(this.proxy, null);
    } catch (error) {
      this.#finish(error as Error);
      return;
    }
    if (this.done) return;
    const instance = router.discovery.pickSync(this.#target.name);
    if (instance !== undefined) {
      this.#attempt(instance, undefined);
      return;
    }
    // A cold name: wait for its first resolution, shared with every concurrent caller.
    router.discovery.pick(this.#target.name).then(
      (picked) => {
        if (!this.done) this.#attempt(picked, undefined);
      },
      (error: unknown) => this.#finish(error as Error),
    );
  }

  #attempt(instance: Instance, settle: Settle | undefined): void {
    const endpoint = this.#router.endpoint(instance, this.#target);
    const attempt = new Attempt(this, endpoint, settle);
    this.current = attempt;
    if (pickChannel.hasSubscribers) {
      pickChannel.publish({
        name: this.#target.name,
        key: endpoint.key,
        instance,
        attempt: (this.#attempts?.length ?? 0) + 1,
      } satisfies PickMessage);
    }
    try {
      // Only the origin names the instance.
      const servername = this.#servername;
      const opts =
        servername === undefined
          ? { ...this.#opts, origin: endpoint.origin, body: this.#body, headers: this.#headers }
          : { ...this.#opts, origin: endpoint.origin, body: this.#body, headers: this.#headers, servername };
      this.#send(endpoint, opts as DispatchOptions, attempt);
    } catch (error) {
      attempt.onResponseError(null, error as Error);
    }
  }

  /** The request ended (or failed) for the caller: nothing more reaches its handler. */
  end(): void {
    this.done = true;
    this.current = undefined;
  }

  commit(attempt: Attempt, controller: Controller): void {
    this.committed = true;
    this.proxy.target = controller;
    attempt.settle?.resolve();
  }

  /** A failure of an attempt: the caller's error once committed, else a retry or the final error. */
  attemptError(attempt: Attempt, error: Error): void {
    if (this.current !== attempt) return;
    if (this.committed || this.proxy.aborted) {
      // After the response headers went to the caller, the caller sees undici's own error (a
      // body cut short, a body timeout, its own abort): there is nothing left to retry.
      this.end();
      this.handler.onResponseError?.(this.proxy, this.proxy.aborted ? (this.proxy.reason ?? error) : error);
      return;
    }
    (this.#attempts ??= []).push({ instance: attempt.endpoint.key, error });
    (this.#tried ??= new Set()).add(attempt.endpoint.liveKey);
    if (attempt.settle !== undefined) {
      attempt.settle.reject(error);
      return;
    }
    if (this.#mayRetry(attempt, error)) this.#retryLoop();
    else this.#finish(error);
  }

  callerAbort(reason: Error): void {
    const target = this.proxy.target;
    if (this.committed) {
      target?.abort(reason);
      return;
    }
    if (this.done) return;
    const current = this.current;
    this.end();
    this.#retryAbort?.abort(reason);
    current?.settle?.reject(reason);
    this.handler.onResponseError?.(this.proxy, reason);
    // An attempt that already started is stopped; one still queued is stopped when it starts.
    if (current?.started === true) current.controller?.abort(reason);
  }

  /** Whether the failed attempt may be followed by another; also spends the budget. */
  #mayRetry(attempt: Attempt, error: Error): boolean {
    const policy = this.#router.policy;
    if (this.#attempts!.length > policy.retries) {
      this.#stopReason = `no retries left (retry.retries is ${policy.retries})`;
      return false;
    }
    const failure = classifyFailure(error);
    if (!failure.transport) {
      this.#stopReason = 'the error is not one a retry can fix';
      return false;
    }
    const notSent = !attempt.started || provesNotSent(error);
    if (!notSent && !policy.methods.has(this.#method)) {
      this.#stopReason =
        `${this.#method} is not retried once it may have reached an instance, as it may not be safe to repeat; ` +
        'add it to retry.methods if it is';
      return false;
    }
    if (!bodyReplayable(this.#body, this.#iterated)) {
      this.#stopReason = 'the request body is a stream that was already read and cannot be sent again';
      return false;
    }
    if (this.#router.budget !== undefined && !this.#router.budget.tryRetry()) {
      this.#stopReason = 'the retry budget is spent (too many requests are failing: see retry.budget)';
      return false;
    }
    this.#router.retries++;
    if (retryChannel.hasSubscribers) {
      retryChannel.publish({
        name: this.#target.name,
        method: this.#method,
        key: attempt.endpoint.key,
        error,
        attempt: this.#attempts!.length + 1,
      } satisfies RetryMessage);
    }
    return true;
  }

  /**
   * Runs the retries after a first failure. The first retry goes at once (to another instance:
   * the point is not to wait on a dead one); later ones back off with jitter.
   */
  #retryLoop(): void {
    const policy = this.#router.policy;
    this.#retryAbort = new AbortController();
    pRetry(() => this.#retryAttempt(), {
      retries: policy.retries - this.#attempts!.length,
      minTimeout: policy.minDelay,
      maxTimeout: policy.maxDelay,
      factor: 2,
      randomize: true,
      unref: true,
      signal: this.#retryAbort.signal,
      shouldRetry: ({ error }) => {
        if (this.done) return false;
        if (error instanceof SignpostError) {
          this.#stopReason ||= `${error.code}: ${error.message}`;
          return false;
        }
        return this.#mayRetry(this.current!, error);
      },
    }).then(
      () => undefined,
      (error: unknown) => {
        if (!this.done) this.#finish(error as Error);
      },
    );
  }

  async #retryAttempt(): Promise<void> {
    const discovery = this.#router.discovery;
    const name = this.#target.name;
    // Another instance while one remains; then any (a reset keep-alive connection is worth a
    // fresh one to the same instance).
    let instance = discovery.pickSync(name, this.#tried) ?? discovery.pickSync(name);
    if (instance === undefined) {
      try {
        instance = await discovery.pick(name);
      } catch (error) {
        (this.#attempts ??= []).push({ instance: undefined, error: error as Error });
        this.#stopReason = 'no instance was left to try';
        throw error;
      }
      if (this.done) return;
    }
    const picked = instance;
    await new Promise<void>((resolve, reject) => this.#attempt(picked, { resolve, reject }));
  }

  /** Ends the request with an error: a discovery error as is, transport failures wrapped. */
  #finish(error: Error): void {
    if (this.done) return;
    this.end();
    if (this.proxy.aborted) {
      this.handler.onResponseError?.(this.proxy, this.proxy.reason ?? error);
      return;
    }
    const attempts = this.#attempts ?? [];
    let delivered: Error;
    if (error instanceof ClosedError) {
      delivered = error;
    } else if (attempts.length === 0) {
      delivered =
        error instanceof SignpostError
          ? error
          : new RetriesExhaustedError(
              `${this.#method} ${this.#target.name}: the request could not be sent (${error.message}); ` +
                'check the request options',
              [{ instance: undefined, error }],
              { hostname: this.#target.name },
            );
    } else {
      const list = attempts.map((a) => `${a.instance ?? '(none)'}: ${errorCode(a.error) ?? a.error.message}`).join(', ');
      const stop = this.#stopReason || `no retries left (retry.retries is ${this.#router.policy.retries})`;
      delivered = new RetriesExhaustedError(
        `${this.#method} ${this.#target.name}${this.#opts.path ?? ''} failed after ${attempts.length} ` +
          `attempt${attempts.length === 1 ? '' : 's'} (${list}); not retried further: ${stop}. ` +
          `Check that the instances of ${this.#target.name} are running and reachable; ` +
          'the last error is the cause and every attempt is in `attempts`',
        attempts.slice(),
        { hostname: this.#target.name, cause: attempts.at(-1)?.error ?? error },
      );
    }
    this.handler.onResponseError?.(this.proxy, delivered);
  }
}
