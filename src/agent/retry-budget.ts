/**
 * The retry budget: retries capped at a share of requests over a sliding window, so an outage is
 * not multiplied by the clients that retry into it.
 */
import type { RetryBudgetOptions } from './retry-policy.ts';

const BUDGET_STEPS = 10;

/**
 * Counts requests and retries over a sliding window of ten steps. A retry is allowed while the
 * retries in the window stay under `max(minRetries, ratio × requests)`.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #minRetries: number;
  readonly #step: number;
  readonly #requests = new Float64Array(BUDGET_STEPS);
  readonly #retries = new Float64Array(BUDGET_STEPS);
  #requestTotal = 0;
  #retryTotal = 0;
  /** The index of the current step since the epoch of `performance.now()`. */
  #current = 0;
  /** `#current % BUDGET_STEPS`: the current step's slot. */
  #slot = 0;
  /** Requests since the clock was last read on a request. */
  #sinceClock = 0;
  /** Retries refused by the budget, in all. */
  denied = 0;

  constructor(options: Required<RetryBudgetOptions>) {
    this.#ratio = options.ratio;
    this.#minRetries = options.minRetries;
    this.#step = options.window / BUDGET_STEPS;
  }

  /** A new request (not a retry) started. */
  request(): void {
    // The clock is read every 64th request only: at rates where that matters, 64 requests span
    // far less than a step, and a sparse caller is covered by minRetries. tryRetry reads it always.
    if ((++this.#sinceClock & 63) === 1) this.#advance();
    this.#requests[this.#slot]!++;
    this.#requestTotal++;
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(): boolean {
    this.#advance();
    if (this.#retryTotal >= Math.max(this.#minRetries, this.#ratio * this.#requestTotal)) {
      this.denied++;
      return false;
    }
    this.#retries[this.#slot]!++;
    this.#retryTotal++;
    return true;
  }

  #advance(): void {
    const now = Math.floor(performance.now() / this.#step);
    if (now === this.#current) return;
    // Steps that fell out of the window are emptied; after a long pause, all of them.
    const stale = Math.min(now - this.#current, BUDGET_STEPS);
    for (let i = 1; i <= stale; i++) {
      const slot = (this.#current + i) % BUDGET_STEPS;
      this.#requestTotal -= this.#requests[slot]!;
      this.#retryTotal -= this.#retries[slot]!;
      this.#requests[slot] = 0;
      this.#retries[slot] = 0;
    }
    this.#current = now;
    this.#slot = now % BUDGET_STEPS;
  }
}

