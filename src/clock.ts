/**
 * Time as signpost sees it. The default is the real one; tests inject their own to make TTLs
 * exact without sleeping. Timers made through a Clock never keep the process alive.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale (not wall time). */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; the timer must not hold the event loop open. */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer): void;
  /**
   * A number in [0, 1) that spreads refresh times (jitter), so a fleet of processes started
   * together does not query in step. A clock without it (a test's) makes refresh times exact.
   */
  random?(): number;
}

/** An opaque timer handle. */
export type ClockTimer = unknown;

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    // Node caps timers at 2^31-1 ms; longer ones would fire at once.
    const timer = setTimeout(fn, Math.min(Math.max(ms, 0), 2_147_483_647));
    timer.unref();
    return timer;
  },
  clearTimeout(timer) {
    clearTimeout(timer as NodeJS.Timeout);
  },
  random: Math.random,
};
