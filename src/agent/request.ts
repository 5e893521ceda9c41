/**
 * One request to a discovered name, from dispatch to its end: pick an instance, send an attempt
 * to it with the Host header and TLS servername of the logical name, and when the attempt fails
 * before its response headers reached the caller, retry on another instance when that is safe.
 *
 * The caller's handler sees one `onRequestStart` with a controller that follows whichever attempt
 * is current, and nothing of an attempt that failed before its response headers: once they were
 * passed on, the request is committed and is never retried. Retrying is a timer inside the
 * request (undici's RetryHandler does the same), and that timer keeps the process alive: a request
 * waiting to be retried is never lost at exit.
 */
import type { Dispatcher } from 'undici';
import { channels, type PickMessage, type RetryMessage } from '../diagnostics.ts';
import type { Instance } from '../types.ts';
import { Attempt } from './attempt.ts';
import { bodyReplayable, needsTracking, trackIterable } from './body-replay.ts';
import { ControllerProxy } from './controller.ts';
import type { Endpoint } from './endpoint.ts';
import { connectTimeoutError, withAttempts, type Attempt as AttemptRecord } from './request-errors.ts';
import { errorCode } from '../errors.ts';
import { classifyFailure, provesNotSent } from './retry-policy.ts';
import type { RequestRouter } from './router.ts';
import type { Target } from './target.ts';
import { withHostHeader } from './headers.ts';

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;
type DispatchOptions = Dispatcher.DispatchOptions;

const { agentPick: pickChannel, agentRetry: retryChannel } = channels;

/** Sends one attempt: to the instance's pool (the agent) or down the chain (the interceptor). */
export type Send = (endpoint: Endpoint, opts: DispatchOptions, handler: Handler, target: Target) => boolean;

export class RoutedRequest extends ControllerProxy {
  readonly handler: Handler;
  /** The attempt whose callbacks reach the caller; undefined once the request ended. */
  current: Attempt | undefined;
  /** The response headers of the current attempt went to the caller: never retried from here. */
  committed = false;
  done = false;
  readonly #router: RequestRouter;
  readonly #opts: DispatchOptions;
  readonly #body: DispatchOptions['body'];
  readonly #headers: DispatchOptions['headers'];
  /** The TLS servername of every attempt, or undefined to leave the caller's. */
  readonly #servername: string | undefined;
  readonly #target: Target;
  readonly #send: Send;
  #attempts: AttemptRecord[] | undefined;
  #tried: Set<string> | undefined;
  #iterated = false;
  #stopReason = '';
  /** The retry timer, or true while a name resolves: something the request waits on. */
  #waiting: NodeJS.Timeout | NodeJS.Immediate | true | undefined;

  constructor(router: RequestRouter, opts: DispatchOptions, handler: Handler, target: Target, send: Send) {
    super();
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
      const own = (opts as { servername?: string }).servername;
      this.#servername = own != null ? undefined : target.protocol === 'https:' || router.toPools ? target.name : undefined;
    } else {
      this.#headers = withHostHeader(opts.headers, target.hostHeader);
      // A servername of the caller's own is kept, as undici keeps it.
      this.#servername = target.protocol === 'https:' && (opts as { servername?: string }).servername == null ? target.name : undefined;
    }
  }

  get #method(): string {
    return (this.#opts.method ?? 'GET').toUpperCase();
  }

  /** Starts the request; returns what undici's dispatch would (false: the instance's pool is busy). */
  start(): boolean {
    const router = this.#router;
    router.begin(this);
    try {
      this.handler.onRequestStart?.(this, null);
    } catch (error) {
      this.#finish(error as Error);
      return true;
    }
    if (this.done) return true;
    const instance = router.discovery.pickSync(this.#target.name);
    if (instance !== undefined) return this.#attempt(instance);
    this.#resolve();
    return true;
  }

  /** A cold name (or every instance gone): wait for its resolution, shared with every caller. */
  #resolve(): void {
    this.#hold(true);
    this.#router.discovery.pick(this.#target.name).then(
      (picked) => {
        this.#release();
        if (!this.done) this.#attempt(picked);
      },
      (error: unknown) => {
        this.#release();
        if (this.done) return;
        const last = this.#attempts?.at(-1);
        if (last === undefined) {
          this.#finish(error as Error);
          return;
        }
        // A retry found no instance: the caller gets the last instance's error.
        this.#attempts!.push({ instance: undefined, error: error as Error });
        this.#stopReason = `no instance was left to try (${errorCode(error) ?? (error as Error).message})`;
        this.#finish(last.error);
      },
    );
  }

  #hold(waiting: NodeJS.Timeout | NodeJS.Immediate | true): void {
    this.#waiting = waiting;
    this.#router.waitStarted(this, waiting === true);
  }

  #release(): void {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    if (waiting !== true) {
      clearTimeout(waiting as NodeJS.Timeout);
      clearImmediate(waiting as NodeJS.Immediate);
    }
    this.#router.waitEnded(this, waiting === true);
  }

  #attempt(instance: Instance): boolean {
    const endpoint = this.#router.endpoint(instance, this.#target);
    const attempt = new Attempt(this, endpoint);
    this.current = attempt;
    if (pickChannel.hasSubscribers) {
      pickChannel.publish({
        name: this.#target.name,
        key: endpoint.key,
        instance,
        attempt: (this.#attempts?.length ?? 0) + 1,
      } satisfies PickMessage);
    }
    // Only the origin names the instance.
    const servername = this.#servername;
    const opts =
      servername === undefined
        ? { ...this.#opts, origin: endpoint.origin, body: this.#body, headers: this.#headers }
        : { ...this.#opts, origin: endpoint.origin, body: this.#body, headers: this.#headers, servername };
    try {
      return this.#send(endpoint, opts as DispatchOptions, attempt, this.#target);
    } catch (error) {
      attempt.onResponseError(null, error as Error);
      return false;
    }
  }

  /** The request ended (or failed) for the caller: nothing more reaches its handler. */
  end(): void {
    if (this.done) return;
    this.done = true;
    this.current = undefined;
    this.#release();
    this.#router.end(this);
  }

  commit(controller: Controller): void {
    this.committed = true;
    this.target = controller;
  }

  /** The caller chose how long to wait for response headers (the request's or the agent's `headersTimeout`). */
  get patient(): boolean {
    return this.#opts.headersTimeout != null || this.#router.headersTimeoutChosen;
  }

  /** Whether another usable instance than `endpoint` serves the name now. */
  hasAlternative(endpoint: Endpoint): boolean {
    return this.#router.discovery.pickSync(this.#target.name, new Set([endpoint.liveKey])) !== undefined;
  }

  /** Whether the request could be sent again after it may have reached an instance. */
  replayable(): boolean {
    return this.#router.policy.methods.has(this.#method) && bodyReplayable(this.#body, this.#iterated);
  }

  /** A failure of an attempt: the caller's error once committed, else a retry or the final error. */
  attemptError(attempt: Attempt, error: Error): void {
    if (this.current !== attempt) return;
    if (this.committed || this.aborted) {
      // After the response headers went to the caller, the caller sees undici's own error (a
      // body cut short, a body timeout, its own abort, a throw of its own callbacks): there is
      // nothing left to retry. As in undici, a throw of the caller's onResponseError propagates.
      this.end();
      this.handler.onResponseError?.(this, this.aborted ? (this.reason ?? error) : error);
      return;
    }
    const endpoint = attempt.endpoint;
    if (errorCode(error) === 'UND_ERR_CONNECT_TIMEOUT') error = connectTimeoutError(error, endpoint.key, this.#target.name);
    (this.#attempts ??= []).push({ instance: endpoint.key, error });
    (this.#tried ??= new Set()).add(endpoint.liveKey);
    const delay = this.#mayRetry(attempt, error);
    if (delay < 0) {
      this.#finish(error);
      return;
    }
    this.current = undefined;
    const retry = (): void => {
      this.#release();
      if (!this.done) this.#retry();
    };
    // The first retry goes at once, to another instance (the point is not to wait on a dead one),
    // but never from inside undici's error callback; later ones back off. Both timers keep the
    // process alive.
    this.#hold(delay === 0 ? setImmediate(retry) : setTimeout(retry, delay));
  }

  #retry(): void {
    const discovery = this.#router.discovery;
    const name = this.#target.name;
    // Another usable instance while one remains; then any usable one (a reset keep-alive
    // connection is worth a fresh one to the same instance).
    const instance = discovery.pickSync(name, this.#tried) ?? discovery.pickSync(name);
    if (instance !== undefined) this.#attempt(instance);
    else this.#resolve();
  }

  override callerAbort(reason: Error): void {
    if (this.committed) {
      // undici ends the attempt with the reason, which reaches the caller through attemptError.
      this.target?.abort(reason);
      return;
    }
    if (this.done) return;
    const current = this.current;
    this.end();
    this.#deliver(reason);
    // An attempt that already started is stopped; one still queued is stopped when it starts.
    current?.controller?.abort(reason);
  }

  /** The agent was destroyed: the request ends with `error` unless its pool delivers it. */
  destroy(error: Error): void {
    if (this.done || this.committed) return;
    const current = this.current;
    this.end();
    this.#deliver(error);
    current?.controller?.abort(error);
  }

  /**
   * Whether the failed attempt may be followed by another, and after how long (-1: not). Spends
   * the budget.
   */
  #mayRetry(attempt: Attempt, error: Error): number {
    const router = this.#router;
    const policy = router.policy;
    const failed = this.#attempts!.length;
    if (failed > policy.retries) {
      this.#stopReason = `no retries left (retry.retries is ${policy.retries})`;
      return -1;
    }
    if (router.stopping) {
      this.#stopReason = 'the agent was destroyed';
      return -1;
    }
    if (!classifyFailure(error).transport) {
      this.#stopReason = 'the error is not one a retry can fix';
      return -1;
    }
    const notSent = !attempt.started || provesNotSent(error);
    if (!notSent && !policy.methods.has(this.#method)) {
      this.#stopReason =
        `${this.#method} is not retried once it may have reached an instance, as it may not be safe to repeat; ` +
        'add it to retry.methods if it is';
      return -1;
    }
    if (!bodyReplayable(this.#body, this.#iterated)) {
      this.#stopReason = 'the request body is a stream that was already read and cannot be sent again';
      return -1;
    }
    if (router.budget !== undefined && !router.budget.tryRetry()) {
      this.#stopReason = 'the retry budget is spent (too many requests are failing: see retry.budget)';
      return -1;
    }
    router.retries++;
    const delay = failed <= 1 ? 0 : backoff(failed - 1, policy.minDelay, policy.maxDelay);
    if (retryChannel.hasSubscribers) {
      retryChannel.publish({
        name: this.#target.name,
        method: this.#method,
        key: attempt.endpoint.key,
        error,
        attempt: failed + 1,
        delay,
      } satisfies RetryMessage);
    }
    return delay;
  }

  /** Ends the request with an error: the error itself, with the attempts when there were some. */
  #finish(error: Error): void {
    if (this.done) return;
    this.end();
    if (this.aborted) error = this.reason ?? error;
    else if (this.#attempts !== undefined) {
      withAttempts(error, {
        attempts: this.#attempts,
        retryStop: this.#stopReason || `no retries left (retry.retries is ${this.#router.policy.retries})`,
      });
    }
    this.#deliver(error);
  }

  /** Gives the caller its error from signpost's own code (a timer, a promise): a throw is contained. */
  #deliver(error: Error): void {
    try {
      this.handler.onResponseError?.(this, error);
    } catch (thrown) {
      process.emitWarning(`signpost: a request handler's onResponseError threw: ${String(thrown)}`, {
        code: 'SIGNPOST_HANDLER_THREW',
      });
    }
  }
}

/** The wait before the k-th delayed retry (k ≥ 1): minDelay doubling, jittered up to twice, capped. */
function backoff(k: number, minDelay: number, maxDelay: number): number {
  const base = Math.min(maxDelay, minDelay * 2 ** (k - 1));
  return Math.min(maxDelay, Math.round(base * (1 + Math.random())));
}
