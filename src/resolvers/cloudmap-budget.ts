/**
 * The Cloud Map call budget of one client: a token bucket that every attempt spends (first
 * attempts and the SDK's retries alike), whose rate adapts to throttling the way TCP adapts to
 * loss (AIMD), and which tells the resolver how far to stretch its poll interval so the polling
 * fits the rate it may use.
 *
 * Why it adapts: `maxCallsPerSecond` bounds one process, but Cloud Map's quota (about 1,000
 * DiscoverInstances calls a second, bursts of 2,000) is shared by every task of the account. A
 * fleet that outgrows it is told so only by RequestLimitExceeded; each process then halves the
 * rate it sends at, so the fleet as a whole backs off within a round, and grows back slowly.
 */
import type { Clock, ClockTimer } from '../clock.ts';

/** The rate is cut at most this often: throttled answers of one round count as one signal. */
export const CUT_INTERVAL_MS = 2000;
/** Each cut halves the rate sent at (TCP's multiplicative decrease). */
export const CUT_FACTOR = 0.5;
/** After a throttling episode, the rate grows back to its ceiling over this long (additive increase). */
export const RECOVERY_MS = 60_000;
/**
 * Above the ceiling (the rate that was throttled, times {@link CEILING_SHARE}) it grows by the
 * ceiling over this long: about 3 % a minute, so a fleet probes for spare quota very slowly.
 */
export const PROBE_MS = 30 * 60_000;
/** The ceiling after a throttling episode: this share of the rate that was throttled. */
export const CEILING_SHARE = 0.8;
/** A throttling episode ends after this long without a throttled answer. */
export const EPISODE_QUIET_MS = 30_000;
/** The poll interval is stretched at most this many times (5 s becomes 60 s). */
export const MAX_STRETCH = 12;
/** The share of its allowed rate a client plans to use for polling; the rest absorbs retries and the revision + full pairs. */
export const POLL_SHARE = 0.9;
/** How long the attempt rate is averaged over, in milliseconds. */
const RATE_WINDOW_MS = 10_000;

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

export interface CallBudgetSnapshot {
  /** The rate this client may send at now, in calls per second. */
  readonly rate: number;
  /** The factor the poll interval is stretched by (1: not stretched). */
  readonly stretch: number;
  /** Whether a throttling episode is going on (throttled in the last {@link EPISODE_QUIET_MS}). */
  readonly throttled: boolean;
  /** Calls waiting for a token. */
  readonly waiting: number;
}

/**
 * A token bucket holding at most one second's worth of tokens, served in arrival order (a busy
 * service cannot starve a quiet one), with an adaptive rate between `minRate()` and `maxRate`.
 */
export class CallBudget {
  readonly maxRate: number;
  readonly #clock: Clock;
  /** Calls a second this client would make with no stretching (names in use ÷ poll interval). */
  #demand = 0;
  #rate: number;
  #ceiling = Number.POSITIVE_INFINITY;
  #tokens: number;
  #last: number;
  #lastCut = Number.NEGATIVE_INFINITY;
  #lastThrottle = Number.NEGATIVE_INFINITY;
  #grownAt: number;
  /** Exponentially decayed count of attempts: `#sent / RATE_WINDOW` is the attempt rate. */
  #sent = 0;
  #sentAt: number;
  #timer: ClockTimer | undefined;
  readonly #waiters: Waiter[] = [];

  constructor(maxCallsPerSecond: number, clock: Clock) {
    this.maxRate = maxCallsPerSecond;
    this.#clock = clock;
    this.#rate = maxCallsPerSecond;
    this.#tokens = Math.max(1, maxCallsPerSecond);
    this.#last = clock.now();
    this.#sentAt = this.#last;
    this.#grownAt = this.#last;
  }

  /** Sets the calls a second this client makes when nothing is stretched. */
  setDemand(callsPerSecond: number): void {
    this.#demand = callsPerSecond;
  }

  /** Resolves when one call may go; rejects with `signal.reason` if aborted first. */
  take(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    this.#refill();
    if (this.#waiters.length === 0 && this.#tokens >= 1) {
      this.#spend();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index !== -1) this.#waiters.splice(index, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#drain();
    });
  }

  /** Cloud Map throttled an attempt: cuts the rate (at most once per {@link CUT_INTERVAL_MS}); true if it did. */
  throttled(): boolean {
    const now = this.#clock.now();
    this.#grow(now);
    const newEpisode = now - this.#lastThrottle >= EPISODE_QUIET_MS;
    this.#lastThrottle = now;
    if (now - this.#lastCut < CUT_INTERVAL_MS) return false;
    this.#lastCut = now;
    // What was really sent, not what was allowed: a client using 2 calls/s of its 50 must halve the 2.
    const sent = Math.min(this.#rate, this.#sentRate(now));
    if (newEpisode) this.#ceiling = Math.max(this.minRate(), sent * CEILING_SHARE);
    this.#rate = Math.max(this.minRate(), sent * CUT_FACTOR);
    this.#tokens = Math.min(this.#tokens, Math.max(1, this.#rate));
    this.#reschedule();
    return true;
  }

  /** The lowest rate: every name in use still gets a call per {@link MAX_STRETCH} poll intervals. */
  minRate(): number {
    return Math.min(this.maxRate, Math.max(this.#demand / MAX_STRETCH, 1 / 60));
  }

  /** How far to stretch the poll interval so that polling fits the allowed rate (1 to {@link MAX_STRETCH}). */
  stretch(): number {
    this.#grow(this.#clock.now());
    if (this.#demand <= 0) return 1;
    const stretch = this.#demand / (this.#rate * POLL_SHARE);
    return Math.min(MAX_STRETCH, Math.max(1, stretch));
  }

  snapshot(): CallBudgetSnapshot {
    const stretch = this.stretch();
    return {
      rate: this.#rate,
      stretch,
      throttled: this.#clock.now() - this.#lastThrottle < EPISODE_QUIET_MS,
      waiting: this.#waiters.length,
    };
  }

  /** Rejects every waiter; used by close(). */
  rejectAll(error: unknown): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  /** Additive increase: towards the ceiling over {@link RECOVERY_MS}, beyond it over {@link PROBE_MS}. */
  #grow(now: number): void {
    const elapsed = now - this.#grownAt;
    if (elapsed <= 0) return;
    this.#grownAt = now;
    if (this.#rate >= this.maxRate || now - this.#lastThrottle < CUT_INTERVAL_MS) return;
    // Tokens earned so far were earned at the old rate.
    this.#refill();
    const ceiling = Number.isFinite(this.#ceiling) ? this.#ceiling : this.maxRate;
    let rate = this.#rate;
    if (rate < ceiling) rate = Math.min(ceiling, rate + (ceiling * elapsed) / RECOVERY_MS);
    else rate += (ceiling * elapsed) / PROBE_MS;
    this.#rate = Math.min(this.maxRate, rate);
  }

  #sentRate(now: number): number {
    this.#decaySent(now);
    return (this.#sent * 1000) / RATE_WINDOW_MS;
  }

  #decaySent(now: number): void {
    const elapsed = now - this.#sentAt;
    if (elapsed > 0) this.#sent *= Math.exp(-elapsed / RATE_WINDOW_MS);
    this.#sentAt = now;
  }

  #spend(): void {
    this.#tokens -= 1;
    this.#decaySent(this.#clock.now());
    this.#sent += 1;
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#last;
    this.#last = now;
    if (elapsed <= 0) return;
    this.#tokens = Math.min(Math.max(1, this.#rate), this.#tokens + (elapsed * this.#rate) / 1000);
  }

  #reschedule(): void {
    if (this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#drain();
  }

  #drain(): void {
    if (this.#timer !== undefined) return;
    this.#grow(this.#clock.now());
    this.#refill();
    while (this.#waiters.length > 0 && this.#tokens >= 1) {
      const waiter = this.#waiters.shift()!;
      this.#spend();
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve();
    }
    if (this.#waiters.length === 0) return;
    const wait = Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#rate));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, wait);
  }
}
