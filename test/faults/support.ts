/**
 * Shared pieces of the fault suite: the duration scale, figures (printed and collected for the
 * summary), process watchers (unhandled rejections, warnings, heap; open handles are counted by
 * test/support/handles.ts) and a seeded
 * random source so a failing fuzz run can be replayed.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { inject } from 'vitest';

/** SIGNPOST_FAULTS_SCALE: 1 (the default) for CI; larger for a longer local soak. */
export const SCALE = Math.max(1, Number(process.env.SIGNPOST_FAULTS_SCALE ?? '1') || 1);

/** `value` multiplied by the scale (durations in ms, counts). */
export function scaled(value: number): number {
  return Math.round(value * SCALE);
}

export type Figures = Record<string, number | string>;

/** Prints a scenario's figures and keeps them for the suite summary. */
export function report(scenario: string, figures: Figures): void {
  console.log(`\n[signpost faults] ${scenario}`);
  console.table(figures);
  let dir: string | undefined;
  try {
    dir = inject('figuresDir');
  } catch {
    dir = undefined;
  }
  if (dir) appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify({ scenario, figures })}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Heap used after a full collection (needs --expose-gc), in bytes. */
export async function heapAfterGc(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(20);
  }
  return getHeapStatistics().used_heap_size;
}

export const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

/**
 * Counts what must never happen in a caller's process: unhandled rejections, uncaught
 * exceptions, and warnings (MaxListenersExceededWarning above all). Also samples the heap.
 */
export class ProcessWatch {
  readonly unhandled: unknown[] = [];
  readonly warnings: Error[] = [];
  peakHeap = 0;
  readonly #onUnhandled = (reason: unknown): void => {
    this.unhandled.push(reason);
  };
  readonly #onWarning = (warning: Error): void => {
    this.warnings.push(warning);
  };
  #sampler: NodeJS.Timeout | undefined;

  start(): this {
    process.on('unhandledRejection', this.#onUnhandled);
    process.on('warning', this.#onWarning);
    this.#sampler = setInterval(() => {
      this.peakHeap = Math.max(this.peakHeap, process.memoryUsage().heapUsed);
    }, 100);
    this.#sampler.unref();
    return this;
  }

  stop(): void {
    process.off('unhandledRejection', this.#onUnhandled);
    process.off('warning', this.#onWarning);
    clearInterval(this.#sampler);
    this.peakHeap = Math.max(this.peakHeap, process.memoryUsage().heapUsed);
  }

  /** Warnings that point at a leak: listeners piling up on an emitter or a signal. */
  get listenerWarnings(): Error[] {
    return this.warnings.filter((w) => w.name === 'MaxListenersExceededWarning' || /listener/i.test(w.message));
  }
}

/** mulberry32: a small seeded generator, so a fuzz failure can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Runs `worker` on `concurrency` lanes until `until()` is true; each lane stops by itself. */
export async function runLanes(concurrency: number, until: () => boolean, worker: (lane: number) => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      while (!until()) await worker(lane);
    }),
  );
}
