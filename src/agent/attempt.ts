/**
 * One try of a request on one instance: the undici handler of that try. While it is its request's
 * current attempt, its callbacks go straight to the caller's handler; anything from an attempt
 * that is no longer current (or after the request ended) is dropped.
 *
 * Once the response headers reached the caller, the attempt is transparent: a callback of the
 * caller that throws throws into undici, which turns it into `onResponseError` exactly as it
 * would without signpost, and that error reaches the caller.
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Endpoint, Waiter } from './endpoint.ts';
import type { RoutedRequest } from './request.ts';
import { classifyFailure } from './retry-policy.ts';

type Controller = Dispatcher.DispatchController;
type Headers = Record<string, string | string[] | undefined>;

export type Outcome = 'success' | 'cancel' | 'connect' | 'timeout' | 'reset' | '5xx';

export class Attempt implements Dispatcher.DispatchHandler, Waiter {
  readonly request: RoutedRequest;
  readonly endpoint: Endpoint;
  controller: Controller | null = null;
  /** undici began to write the request (onRequestStart): it may have reached the instance. */
  started = false;
  prevWaiter: Waiter | null = null;
  nextWaiter: Waiter | null = null;
  #status = 0;
  #reported = false;

  constructor(request: RoutedRequest, endpoint: Endpoint) {
    this.request = request;
    this.endpoint = endpoint;
    const counters = endpoint.counters;
    counters.inflight++;
    counters.requests++;
    counters.wait(this);
    if (endpoint.state !== undefined) endpoint.health!.onStart(endpoint.state);
  }

  /** Reports the outcome once: to outlier ejection and to the counters. */
  report(outcome: Outcome): void {
    if (this.#reported) return;
    this.#reported = true;
    const endpoint = this.endpoint;
    const counters = endpoint.counters;
    counters.inflight--;
    counters.unwait(this);
    if (outcome !== 'success' && outcome !== 'cancel') counters.failures++;
    const state = endpoint.state;
    if (state === undefined) return;
    if (outcome === 'success') endpoint.health!.onSuccess(state);
    // Neither a success nor the instance's fault (the caller gave up, or a bad request).
    else if (outcome === 'cancel') endpoint.health!.onCancel?.(state);
    else endpoint.health!.onFailure(state, outcome);
  }

  /**
   * The stall detector gave up on the instance: move on when that is safe and wanted. A request
   * goes elsewhere only if another usable instance remains, and, once written, only if it may be
   * sent again and its caller left `headersTimeout` at undici's default: a caller who chose how
   * long to wait (0: as long as it takes) gets exactly that.
   */
  stalled(error: Error): void {
    const request = this.request;
    if (request.current !== this || request.committed || !request.hasAlternative(this.endpoint)) return;
    // Not written yet (queued behind stuck requests): it never reached the instance.
    if (!this.started) this.onResponseError(null, error);
    else if (request.replayable() && !request.patient) this.controller!.abort(error);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    this.started = true;
    const request = this.request;
    if (request.current !== this) {
      // The request ended or moved on while this attempt was queued: stop it before it is written.
      controller.abort(request.reason ?? new Error('signpost: the request already ended'));
      return;
    }
    request.target = controller;
    if (request.paused) controller.pause();
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: Duplex): void {
    this.#status = statusCode;
    this.endpoint.counters.progress++;
    this.report('success');
    const request = this.request;
    if (request.current !== this) return;
    request.commit(controller);
    try {
      request.handler.onRequestUpgrade?.(request, statusCode, headers, socket);
    } finally {
      // The request is over for signpost either way; a throw goes on to undici, as without it.
      request.end();
    }
  }

  onResponseStarted(): void {
    const request = this.request;
    if (request.current === this) request.handler.onResponseStarted?.();
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    const request = this.request;
    if (statusCode >= 200) {
      this.#status = statusCode;
      const counters = this.endpoint.counters;
      counters.progress++;
      counters.unwait(this);
      if (request.current !== this) return;
      request.commit(controller);
    } else if (request.current !== this) return;
    request.handler.onResponseStart?.(request, statusCode, headers, statusMessage);
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    const request = this.request;
    if (request.current === this) request.handler.onResponseData?.(request, chunk);
  }

  onResponseEnd(_controller: Controller, trailers: Headers): void {
    this.report(this.#status >= 500 ? '5xx' : 'success');
    const request = this.request;
    if (request.current !== this) return;
    request.handler.onResponseEnd?.(request, trailers);
    request.end();
  }

  onResponseError(_controller: Controller | null, error: Error): void {
    const request = this.request;
    if (request.aborted) this.report('cancel');
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
