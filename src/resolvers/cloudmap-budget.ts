/**
 * The Cloud Map call budget of one client: a token bucket that every attempt spends (first
 * attempts and the SDK's retries alike), and the share of its full polling rate the client may
 * use, which adapts to throttling the way TCP adapts to loss (AIMD). The resolver stretches its
 * poll interval by the inverse of that share.
 *
 * Why it adapts: `maxCallsPerSecond` bounds one process, but Cloud Map's quota (about 1,000
 * DiscoverInstances calls a second, bursts of 2,000) is shared by every task of the account. A
 * fleet that outgrows it is told so only by RequestLimitExceeded; each process then halves the
 * rate it polls at, so the fleet as a whole backs off within a round, and grows back linearly.
 *
 * Cold names (callers wait for their first answer) are not polling: a process polling one or
 * two names plans for a fraction of a call a second, and one throttled answer would make each
 * new name wait seconds for a token. Their calls go first, and while the throttling is a single
 * answer (Cloud Map answered the call before it) the bucket refills for them at no less than
 * the cut share of `maxCallsPerSecond`. From the {@link COLD_FLOOR_THROTTLES}th throttled answer
 * in a row until Cloud Map answers again, they wait at the polling rate like every other call:
 * in a storm new names cannot be answered anyway, and a fleet's cold starts must not add to it.
 */
import type { Clock, ClockTimer } from '../clock.ts';

/** The share is cut at most this often: throttled answers of one round count as one signal. */
export const CUT_INTERVAL_MS = 2000;
/** Each cut halves the polling rate (TCP's multiplicative decrease): the poll interval doubles. */
export const CUT_FACTOR = 0.5;
/**
 * Once throttling stops, the share grows linearly, by the whole polling rate over this long
 * (additive increase): a fleet that outgrew the quota closes in on it slowly. After a storm it
 * first resumes at {@link RESUME_FACTOR} of where it was (so it is back to normal within 20 s).
 */
export const RECOVERY_MS = 60_000;
/** Throttling counts as going on for this long after the last throttled answer. */
export const EPISODE_QUIET_MS = 30_000;
/**
 * The poll interval is stretched at most this many times (5 s becomes 30 s): a fleet of 1,000
 * tasks using 10 names each then makes about 330 calls a second in a storm, and each task
 * notices the storm's end within seconds.
 */
export const MAX_STRETCH = 6;
/**
 * After throttling, polling resumes at this share of where it was when the throttling began
 * (CUBIC's and the AWS SDK's adaptive mode's β), then grows linearly.
 */
export const RESUME_FACTOR = 0.7;
/**
 * The share of the bucket's rate polling is planned to use; the rest absorbs retries, cold
 * names and the revision + full call pairs of a change.
 */
export const POLL_SHARE = 0.9;
/** Throttled with no answer for this long: a storm, after which polling resumes at {@link RESUME_FACTOR}. */
export const STORM_MS = 5000;
/** Throttled answers in a row (none answered between) that end the cold floor until an answer. */
export const COLD_FLOOR_THROTTLES = 2;
/** The bucket never refills slower than this, in calls a second. */
const MIN_RATE = 1 / 60;

/**
 * Where a call waits for its token:
 * - `poll`: a name that has an answer to serve (a poll, a refresh), at the back of the line;
 * - `follow-up`: the DiscoverInstances that follows a moved revision, at the front;
 * - `cold`: a name without an answer yet, its callers waiting: at the front, with the cold floor.
 */
export type CallPriority = 'poll' | 'follow-up' | 'cold';

interface Waiter {
  cold: boolean;
  resolve: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

export interface CallBudgetSnapshot {
  /** The calls a second this client may make now (the bucket's rate). */
  readonly rate: number;
  /** The factor the poll interval is stretched by (1: not stretched). */
  readonly stretch: number;
  /** Whether Cloud Map throttled this client lately (within {@link EPISODE_QUIET_MS}). */
  readonly throttled: boolean;
  /** Calls waiting for a token. */
  readonly waiting: number;
}

/**
 * A token bucket holding at most one second's worth of tokens, served in arrival order (a busy
 * service cannot starve a quiet one). Unthrottled, it refills at `maxCallsPerSecond`; while
 * throttling lasts, at the adapted share of the full polling rate, so retries and the cache's
 * stale retries wait their turn instead of adding to the load.
 */
export class CallBudget {
  readonly maxRate: number;
  readonly #clock: Clock;
  /** Calls a second this client makes with nothing stretched (names in use ÷ poll interval). */
  #demand = 0;
  /** The share of the full polling rate in use: 1, or down to 1 / MAX_STRETCH. */
  #share = 1;
  /** Where polling resumes after a storm: {@link RESUME_FACTOR} of the share that last got answers. */
  #threshold = 1;
  #tokens: number;
  #last: number;
  #grownAt: number;
  #lastCut = Number.NEGATIVE_INFINITY;
  #lastThrottle = Number.NEGATIVE_INFINITY;
  #lastAnswer = Number.NEGATIVE_INFINITY;
  /** Whether Cloud Map answered (not throttled) since the last cut. */
  #answeredSinceCut = true;
  /** Throttled answers since Cloud Map last answered this process. */
  #throttledInARow = 0;
  #timer: ClockTimer | undefined;
  /** Waiting calls: the front ones (`#front` of them) first, each part in arrival order. */
  readonly #waiters: Waiter[] = [];
  #front = 0;
  /** Cold calls among the waiters. */
  #cold = 0;

  constructor(maxCallsPerSecond: number, clock: Clock) {
    this.maxRate = maxCallsPerSecond;
    this.#clock = clock;
    this.#tokens = Math.max(1, maxCallsPerSecond);
    this.#last = clock.now();
    this.#grownAt = this.#last;
  }

  /** Sets the calls a second this client makes when nothing is stretched. */
  setDemand(callsPerSecond: number): void {
    this.#demand = callsPerSecond;
  }

  /**
   * Resolves when one call may go; rejects with `signal.reason` if aborted first. A `follow-up`
   * (the DiscoverInstances that follows a moved revision) waits at the front of the line, so a
   * name's second call is not held behind every other name's first; so does a `cold` call, which
   * also gets the cold floor (see the module's comment).
   */
  take(signal: AbortSignal, priority: CallPriority = 'poll'): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    this.#grow();
    const front = priority !== 'poll';
    // A poll queues behind anyone waiting; a call for the front only behind the front.
    if ((front ? this.#front : this.#waiters.length) === 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        cold: priority === 'cold',
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index !== -1) this.#remove(index);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      if (front) this.#waiters.splice(this.#front++, 0, waiter);
      else this.#waiters.push(waiter);
      // The first cold waiter may make the bucket refill faster: re-plan the wait.
      if (waiter.cold && this.#cold++ === 0) this.#replan();
      else this.#drain();
    });
  }

  /** Cloud Map throttled an attempt: halves the share (at most once per {@link CUT_INTERVAL_MS}); true if it did. */
  throttled(): boolean {
    this.#grow();
    const now = this.#clock.now();
    this.#lastThrottle = now;
    this.#throttledInARow++;
    if (now - this.#lastCut < CUT_INTERVAL_MS) return false;
    // Where to resume after a storm: 70 % of the share that last got answers. Cuts in a storm
    // (nothing answered since the previous cut) do not lower it.
    if (this.#answeredSinceCut) this.#threshold = this.#share * RESUME_FACTOR;
    this.#answeredSinceCut = false;
    this.#lastCut = now;
    this.#share = Math.max(1 / MAX_STRETCH, this.#share * CUT_FACTOR);
    this.#tokens = Math.min(this.#tokens, Math.max(1, this.rate()));
    // The next token now comes later: re-plan the wait.
    this.#replan();
    return true;
  }

  /**
   * Cloud Map answered an attempt without throttling it. The first answer after a storm (a
   * stretch in which every call was throttled) resumes polling at {@link RESUME_FACTOR} of where it
   * was; while answers keep coming among throttled calls (a fleet above its quota), the share
   * only grows linearly.
   */
  answered(): void {
    this.#grow();
    const now = this.#clock.now();
    const afterStorm = now - this.#lastAnswer >= STORM_MS && now - this.#lastThrottle >= CUT_INTERVAL_MS;
    const floorBack = this.#throttledInARow >= COLD_FLOOR_THROTTLES && this.#cold > 0;
    this.#lastAnswer = now;
    this.#throttledInARow = 0;
    this.#answeredSinceCut = true;
    const resume = afterStorm && this.#share < this.#threshold;
    if (resume) this.#share = this.#threshold;
    // Tokens now come sooner: re-plan the wait.
    if (resume || floorBack) this.#replan();
  }

  /** The bucket's rate now, in calls a second. */
  rate(): number {
    if (this.#share >= 1) return this.maxRate;
    const polling = Math.min(this.maxRate, Math.max(MIN_RATE, (this.#share * this.#demand) / POLL_SHARE));
    // The cold floor: new names are not held behind one throttled answer.
    if (this.#cold > 0 && this.#throttledInARow < COLD_FLOOR_THROTTLES) return Math.max(polling, this.#share * this.maxRate);
    return polling;
  }

  /** How far to stretch the poll interval (1 to {@link MAX_STRETCH}). */
  stretch(): number {
    this.#grow();
    return 1 / this.#share;
  }

  snapshot(): CallBudgetSnapshot {
    const stretch = this.stretch();
    return {
      rate: this.rate(),
      stretch,
      throttled: this.#clock.now() - this.#lastThrottle < EPISODE_QUIET_MS,
      waiting: this.#waiters.length,
    };
  }

  /** Rejects every waiter; used by close(). */
  rejectAll(error: unknown): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#front = 0;
    this.#cold = 0;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  #remove(index: number): Waiter {
    const [waiter] = this.#waiters.splice(index, 1) as [Waiter];
    if (index < this.#front) this.#front--;
    if (waiter.cold) this.#cold--;
    return waiter;
  }

  /** Refills the bucket at the rate that held, then grows the share (additive increase). */
  #grow(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      const rate = this.rate();
      this.#tokens = Math.min(Math.max(1, rate), this.#tokens + (elapsed * rate) / 1000);
      this.#last = now;
    }
    // No growth while throttled answers are still coming in.
    const from = Math.max(this.#grownAt, this.#lastThrottle + CUT_INTERVAL_MS);
    this.#grownAt = now;
    if (this.#share >= 1 || now <= from) return;
    const growing = now - from;
    this.#share = Math.min(1, this.#share + growing / RECOVERY_MS);
  }

  /** Plans the wait for the next token again, after the rate changed. */
  #replan(): void {
    if (this.#timer === undefined) return this.#drain();
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#drain();
  }

  #drain(): void {
    if (this.#timer !== undefined) return;
    this.#grow();
    while (this.#waiters.length > 0 && this.#tokens >= 1) {
      const waiter = this.#remove(0);
      this.#tokens -= 1;
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve();
    }
    if (this.#waiters.length === 0) return;
    const wait = Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.rate()));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, wait);
  }
}
