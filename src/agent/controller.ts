/**
 * The controller a caller's handler holds for the whole request: it follows whichever attempt is
 * current, and an abort reaches the request even between attempts (while a name resolves or a
 * retry waits), so the request cannot hang there.
 */
import type { Dispatcher } from 'undici';

type Controller = Dispatcher.DispatchController;
type RawHeaders = Exclude<Controller['rawHeaders'], undefined>;

/**
 * The request itself extends this (one object per request fewer on the hot path); `callerAbort`
 * is what the request does when its caller aborts.
 */
export abstract class ControllerProxy implements Controller {
  /** The current attempt's undici controller, once it started. */
  target: Controller | null = null;
  #aborted = false;
  #reason: Error | null = null;
  #paused = false;

  abstract callerAbort(reason: Error): void;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  get paused(): boolean {
    return this.#paused;
  }

  // Interceptors rewrite these (undici's decompress drops content-encoding from rawHeaders), so
  // they read and write through to the attempt's controller.
  get rawHeaders(): RawHeaders {
    return this.target?.rawHeaders ?? null;
  }

  set rawHeaders(value: RawHeaders) {
    if (this.target !== null) this.target.rawHeaders = value;
  }

  get rawTrailers(): RawHeaders {
    return this.target?.rawTrailers ?? null;
  }

  set rawTrailers(value: RawHeaders) {
    if (this.target !== null) this.target.rawTrailers = value;
  }

  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.callerAbort(reason);
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
