import type { Clock } from '../../src/clock.ts';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock that moves only when told to: TTL tests are exact and never sleep. */
export class FakeClock implements Clock {
  #now = 0;
  #seq = 0;
  #timers = new Set<Timer>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.#now + Math.max(ms, 0), seq: this.#seq++, fn };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(timer: unknown): void {
    this.#timers.delete(timer as Timer);
  }

  /** Timers still pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward, firing due timers in order, synchronously. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let next = this.#due(target); next !== undefined; next = this.#due(target)) next.fn();
    this.#now = target;
  }

  /** Moves time forward like {@link advance}, letting promises settle after each timer. */
  async run(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (let next = this.#due(target); next !== undefined; next = this.#due(target)) {
      next.fn();
      await flush();
    }
    this.#now = target;
    await flush();
  }

  /** Takes the earliest timer due by `target` and moves time to it. */
  #due(target: number): Timer | undefined {
    let next: Timer | undefined;
    for (const t of this.#timers) {
      if (t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
    }
    if (next !== undefined) {
      this.#timers.delete(next);
      this.#now = next.at;
    }
    return next;
  }
}

/** Lets pending promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
