/**
 * Many deadlines on one clock timer: a binary min-heap of items by due time, with the clock's
 * single timer set for the earliest. The cache keeps one deadline per name (refresh, expiry,
 * backoff end); a Node timer per name would cost about 230 bytes each and a timer list entry.
 */
import type { Clock, ClockTimer } from './clock.ts';

/** What the queue keeps on each item; -1 in `deadlineIndex` means not queued. */
export interface Deadline {
  dueAt: number;
  /** Order of scheduling, so items due at the same time run in the order they were set. */
  dueSeq: number;
  deadlineIndex: number;
}

export class DeadlineQueue<T extends Deadline> {
  readonly #clock: Clock;
  readonly #run: (item: T) => void;
  readonly #heap: T[] = [];
  #seq = 0;
  #timer: ClockTimer | undefined;
  #timerAt = Infinity;
  #firing = false;

  constructor(clock: Clock, run: (item: T) => void) {
    this.#clock = clock;
    this.#run = run;
  }

  /** Items waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `item` once `delay` ms have passed (replacing its previous deadline). */
  set(item: T, delay: number): void {
    if (item.deadlineIndex >= 0) this.#remove(item);
    // A whole number of ms (rounded up, so never early): a field that ever holds a fraction (the
    // system clock's performance.now()) is a boxed 16-byte number on every item.
    item.dueAt = Math.ceil(this.#clock.now() + Math.max(0, delay));
    item.dueSeq = this.#seq++;
    item.deadlineIndex = this.#heap.length;
    this.#heap.push(item);
    this.#up(item.deadlineIndex);
    if (!this.#firing) this.#arm();
  }

  cancel(item: T): void {
    if (item.deadlineIndex < 0) return;
    this.#remove(item);
    // The timer stays set for an earlier head; firing with nothing due costs one wake-up.
    if (this.#heap.length === 0 && this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    for (const item of this.#heap) item.deadlineIndex = -1;
    this.#heap.length = 0;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(): void {
    const head = this.#heap[0];
    if (head === undefined || head.dueAt >= this.#timerAt) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timerAt = head.dueAt;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), head.dueAt - this.#clock.now());
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#firing = true;
    try {
      const now = this.#clock.now();
      for (let head = this.#heap[0]; head !== undefined && head.dueAt <= now; head = this.#heap[0]) {
        this.#remove(head);
        try {
          this.#run(head);
        } catch (error) {
          // A bug: reported, and the other deadlines still run.
          process.emitWarning(`signpost: a cache deadline failed (${error instanceof Error ? error.name : typeof error}): please report this bug`, {
            code: 'SIGNPOST_BUG',
          });
        }
      }
    } finally {
      this.#firing = false;
      this.#arm();
    }
  }

  #remove(item: T): void {
    const heap = this.#heap;
    const at = item.deadlineIndex;
    const last = heap.pop()!;
    item.deadlineIndex = -1;
    if (last === item) return;
    heap[at] = last;
    last.deadlineIndex = at;
    this.#up(at);
    this.#down(last.deadlineIndex);
  }

  #before(a: T, b: T): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.dueSeq < b.dueSeq);
  }

  #up(index: number): void {
    const heap = this.#heap;
    const item = heap[index]!;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (!this.#before(item, parent)) break;
      heap[index] = parent;
      parent.deadlineIndex = index;
      index = parentIndex;
    }
    heap[index] = item;
    item.deadlineIndex = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const item = heap[index]!;
    const n = heap.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#before(heap[right]!, heap[left]!) ? right : left;
      if (!this.#before(heap[child]!, item)) break;
      heap[index] = heap[child]!;
      heap[index]!.deadlineIndex = index;
      index = child;
    }
    heap[index] = item;
    item.deadlineIndex = index;
  }
}
