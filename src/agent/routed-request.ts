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
import type { Discovery } from '../discovery.ts';
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

/** Sends one attempt: to the instance's pool (the agent) or down the chain (the interceptor). */
export type Send = (origin: string, key: string, instance: Instance, opts: DispatchOptions, handler: Handler) => void;

const MAX_CACHED_ORIGINS = 4096;

/** The per-agent state every request shares. */
export class RequestRouter {
  readonly discovery: Discovery;
  readonly policy: RetryPolicy;
  readonly budget: RetryBudget | undefined;
  readonly #origins = new Map<string, Target | null>();
  readonly #counters = new Map<string, Counters>();
  requests = 0;
  retries = 0;

  constructor(discovery: Discovery, policy: RetryPolicy) {
    this.discovery = discovery;
    this.policy = policy;
    this.budget = policy.budget === false ? undefined : new RetryBudget(policy.budget);
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

  counters(key: string): Counters {
    let c = this.#counters.get(key);
    if (c === undefined) {
      c = new Counters();
      this.#counters.set(key, c);
    }
    return c;
  }

  forget(key: string): void {
    const c = this.#counters.get(key);
    if (c !== undefined && c.inflight === 0) this.#counters.delete(key);
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
  readonly #onAbort: (reason: Error) => void;

  constructor(onAbort: (reason: Error) => void) {
    this.#onAbort = onAbort;
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
    this.#onAbort(reason);
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

/** One try of a request on one instance: an undici handler whose callbacks go to its request. */
class Attempt implements Handler {
  readonly request: RoutedRequest;
  readonly key: string;
  /** The key Discovery knows the instance by (no port when the registry gave none). */
  readonly liveKey: string;
  readonly counters: Counters;
  readonly #health: HealthReporter | undefined;
  readonly #state: HealthState | undefined;
  controller: Controller | null = null;
  /** undici began to write the request (onRequestStart): it may have reached the instance. */
  started = false;
  #status = 0;
  #reported = false;
  /** Settles the attempt for the retry loop: resolve on commit, reject on a failure before it. */
  settle: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(request: RoutedRequest, key: string, instance: Instance, health: HealthReporter | undefined, counters: Counters) {
    this.request = request;
    this.key = key;
    this.liveKey = instance.port === undefined ? instanceKey(instance) : key;
    this.counters = counters;
    this.#health = health;
    if (health !== undefined) {
      const state = health.state(instance);
      this.#state = state;
      counters.health = state;
      health.onStart(state);
    }
    counters.inflight++;
    counters.requests++;
  }

  /** Reports the outcome once: to outlier ejection and to the counters. */
  report(outcome: 'success' | 'cancel' | 'connect' | 'timeout' | 'reset' | '5xx'): void {
    if (this.#reported) return;
    this.#reported = true;
    this.counters.inflight--;
    if (outcome !== 'success' && outcome !== 'cancel') this.counters.failures++;
    const state = this.#state;
    if (state === undefined) return;
    if (outcome === 'success') this.#health!.onSuccess(state);
    // Neither a success nor the instance's fault (the caller gave up, or a bad request).
    else if (outcome === 'cancel') this.#health!.onCancel?.(state);
    else this.#health!.onFailure(state, outcome);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    this.started = true;
    this.request.attemptStarted(this, controller);
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import('node:stream').Duplex): void {
    this.#status = statusCode;
    this.report('success');
    this.request.upgraded(this, controller, statusCode, headers, socket);
  }

  onResponseStarted(): void {
    this.request.responseStarted(this);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (statusCode >= 200) this.#status = statusCode;
    this.request.responseStart(this, controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.request.responseData(this, controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    this.report(this.#status >= 500 ? '5xx' : 'success');
    this.request.responseEnd(this, controller, trailers);
  }

  onResponseError(controller: Controller | null, error: Error): void {
    if (this.request.callerAborted) this.report('cancel');
    else if (this.#status >= 500) this.report('5xx');
    else this.report(classifyFailure(error).kind ?? 'cancel');
    this.request.attemptError(this, controller, error);
  }

  onBodySent(chunk: Buffer): void {
    this.request.bodySent(this, chunk);
  }

  onRequestSent(): void {
    this.request.requestSent(this);
  }
}

class RoutedRequest {
  readonly #router: RequestRouter;
  readonly #opts: DispatchOptions;
  readonly #body: DispatchOptions['body'];
  readonly #headers: DispatchOptions['headers'];
  readonly #handler: Handler;
  readonly #target: Target;
  readonly #send: Send;
  readonly #proxy: ControllerProxy;
  readonly #method: string;
  readonly #attempts: AttemptRecord[] = [];
  #tried: Set<string> | undefined;
  #current: Attempt | undefined;
  #committed = false;
  #done = false;
  #iterated = false;
  #stopReason = '';
  #retryAbort: AbortController | undefined;

  constructor(router: RequestRouter, opts: DispatchOptions, handler: Handler, target: Target, send: Send) {
    this.#router = router;
    this.#handler = handler;
    this.#target = target;
    this.#send = send;
    this.#method = (opts.method ?? 'GET').toUpperCase();
    let body = opts.body;
    if (router.policy.retries > 0 && needsTracking(body)) {
      body = trackIterable(body, () => {
        this.#iterated = true;
      }) as DispatchOptions['body'];
    }
    this.#opts = opts;
    this.#body = body;
    this.#headers = withHostHeader(opts.headers, target.hostHeader);
    this.#proxy = new ControllerProxy((reason) => this.#callerAbort(reason));
  }

  get callerAborted(): boolean {
    return this.#proxy.aborted;
  }

  start(): void {
    this.#router.requests++;
    this.#router.budget?.request();
    try {
      this.#handler.onRequestStart?.(this.#proxy, null);
    } catch (error) {
      this.#finish(error as Error);
      return;
    }
    if (this.#done) return;
    const instance = this.#router.discovery.pickSync(this.#target.name);
    if (instance !== undefined) {
      this.#attempt(instance);
      return;
    }
    // A cold name: wait for its first resolution, shared with every concurrent caller.
    this.#router.discovery.pick(this.#target.name).then(
      (picked) => {
        if (!this.#done) this.#attempt(picked);
      },
      (error: unknown) => this.#finish(error as Error),
    );
  }

  #attempt(instance: Instance, settle?: Attempt['settle']): void {
    const target = this.#target;
    const port = instance.port ?? target.urlPort ?? target.defaultPort;
    const key = instanceKey({ address: instance.address, port });
    const attempt = new Attempt(this, key, instance, this.#router.health, this.#router.counters(key));
    attempt.settle = settle;
    this.#current = attempt;
    if (pickChannel.hasSubscribers) {
      pickChannel.publish({ name: target.name, key, instance, attempt: this.#attempts.length + 1 } satisfies PickMessage);
    }
    const origin = `${target.protocol}//${key}`;
    try {
      // Host header and TLS servername stay the logical name, so certificates are checked
      // against it; only the origin names the instance.
      const opts = { ...this.#opts, origin, body: this.#body, headers: this.#headers } as DispatchOptions;
      if (target.protocol === 'https:') (opts as { servername?: string }).servername = target.name;
      this.#send(origin, key, instance, opts, attempt);
    } catch (error) {
      attempt.onResponseError(null, error as Error);
    }
  }

  // ---- callbacks from attempts; anything from an attempt that is no longer current is dropped

  attemptStarted(attempt: Attempt, controller: Controller): void {
    if (this.#done || attempt !== this.#current) {
      // The caller aborted while this attempt was queued: stop it before it is written.
      controller.abort(this.#proxy.reason ?? new Error('signpost: request already settled'));
      return;
    }
    this.#proxy.target = controller;
    if (this.#proxy.paused) controller.pause();
  }

  upgraded(attempt: Attempt, controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import('node:stream').Duplex): void {
    if (this.#done || attempt !== this.#current) return;
    this.#commit(attempt, controller);
    this.#done = true;
    this.#handler.onRequestUpgrade?.(this.#proxy, statusCode, headers, socket);
  }

  responseStarted(attempt: Attempt): void {
    if (!this.#done && attempt === this.#current) this.#handler.onResponseStarted?.();
  }

  responseStart(attempt: Attempt, controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (this.#done || attempt !== this.#current) return;
    if (statusCode >= 200) this.#commit(attempt, controller);
    this.#handler.onResponseStart?.(this.#proxy, statusCode, headers, statusMessage);
  }

  responseData(attempt: Attempt, _controller: Controller, chunk: Buffer): void {
    if (this.#done || attempt !== this.#current) return;
    this.#handler.onResponseData?.(this.#proxy, chunk);
  }

  responseEnd(attempt: Attempt, _controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    if (this.#done || attempt !== this.#current) return;
    this.#done = true;
    this.#handler.onResponseEnd?.(this.#proxy, trailers);
  }

  bodySent(attempt: Attempt, chunk: Buffer): void {
    if (!this.#done && attempt === this.#current) this.#handler.onBodySent?.(chunk);
  }

  requestSent(attempt: Attempt): void {
    if (!this.#done && attempt === this.#current) this.#handler.onRequestSent?.();
  }

  attemptError(attempt: Attempt, _controller: Controller | null, error: Error): void {
    if (this.#done || attempt !== this.#current) return;
    if (this.#committed || this.#proxy.aborted) {
      // After the response headers went to the caller, the caller sees undici's own error (a
      // body cut short, a body timeout, its own abort): there is nothing left to retry.
      this.#done = true;
      this.#handler.onResponseError?.(this.#proxy, this.#proxy.aborted ? (this.#proxy.reason ?? error) : error);
      return;
    }
    this.#attempts.push({ instance: attempt.key, error });
    (this.#tried ??= new Set()).add(attempt.liveKey);
    if (attempt.settle !== undefined) {
      attempt.settle.reject(error);
      return;
    }
    if (this.#mayRetry(attempt, error)) this.#retryLoop();
    else this.#finish(error);
  }

  #commit(attempt: Attempt, controller: Controller): void {
    this.#committed = true;
    this.#proxy.target = controller;
    attempt.settle?.resolve();
  }

  #callerAbort(reason: Error): void {
    const target = this.#proxy.target;
    if (this.#committed) {
      target?.abort(reason);
      return;
    }
    if (this.#done) return;
    this.#done = true;
    this.#retryAbort?.abort(reason);
    this.#current?.settle?.reject(reason);
    this.#handler.onResponseError?.(this.#proxy, reason);
    // An attempt that already started is stopped; one still queued is stopped when it starts.
    if (this.#current?.started === true) this.#current.controller?.abort(reason);
  }

  /** Whether the failed attempt may be followed by another; also spends the budget. */
  #mayRetry(attempt: Attempt, error: Error): boolean {
    const policy = this.#router.policy;
    if (this.#attempts.length > policy.retries) {
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
        key: attempt.key,
        error,
        attempt: this.#attempts.length + 1,
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
      retries: policy.retries - this.#attempts.length,
      minTimeout: policy.minDelay,
      maxTimeout: policy.maxDelay,
      factor: 2,
      randomize: true,
      unref: true,
      signal: this.#retryAbort.signal,
      shouldRetry: ({ error }) => {
        if (this.#done) return false;
        if (error instanceof SignpostError) {
          this.#stopReason ||= `${error.code}: ${error.message}`;
          return false;
        }
        return this.#mayRetry(this.#current!, error);
      },
    }).then(
      () => undefined,
      (error: unknown) => {
        if (!this.#done) this.#finish(error as Error);
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
        this.#attempts.push({ instance: undefined, error: error as Error });
        this.#stopReason = 'no instance was left to try';
        throw error;
      }
      if (this.#done) return;
    }
    const picked = instance;
    await new Promise<void>((resolve, reject) => this.#attempt(picked, { resolve, reject }));
  }

  /** Ends the request with an error: a discovery error as is, transport failures wrapped. */
  #finish(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#proxy.aborted) {
      this.#handler.onResponseError?.(this.#proxy, this.#proxy.reason ?? error);
      return;
    }
    const attempts = this.#attempts;
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
    this.#handler.onResponseError?.(this.#proxy, delivered);
  }
}
