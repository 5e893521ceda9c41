/**
 * Timing helpers. Every sample is a batch of calls timed with `process.hrtime.bigint()` and
 * divided by the batch size, so the clock's own cost (~30-60 ns) is spread over the batch; p50
 * and p99 are over those per-batch means. Results are kept alive in `sink` so V8 cannot drop
 * the calls being timed.
 */

/** One round of one scenario: per-operation latency in nanoseconds and throughput. */
export interface RoundStats {
  p50: number;
  p99: number;
  opsPerSec: number;
}

/** The median of the rounds, with the min and max seen. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

let sink: unknown;
let sinkCount = 0;

/** Keeps a value alive (and observably used) so the call producing it is not optimised away. */
export function keep(value: unknown): void {
  sink = value;
  if (value !== undefined) sinkCount++;
}

/** For the process to print at the end: proof the results were consumed. */
export function sinkSeen(): number {
  return sink === null ? -1 : sinkCount;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function summarize(samplesNs: number[], totalOps: number, totalNs: number): RoundStats {
  samplesNs.sort((a, b) => a - b);
  return {
    p50: percentile(samplesNs, 50),
    p99: percentile(samplesNs, 99),
    opsPerSec: totalOps / (totalNs / 1e9),
  };
}

/** A synchronous operation, `batch` calls per sample. */
export function measureSync(op: () => unknown, batch: number, samples: number, warmupSamples = Math.ceil(samples / 5)): RoundStats {
  for (let s = 0; s < warmupSamples; s++) {
    for (let i = 0; i < batch; i++) keep(op());
  }
  const out: number[] = [];
  let total = 0n;
  for (let s = 0; s < samples; s++) {
    let last: unknown;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) last = op();
    const dt = process.hrtime.bigint() - t0;
    keep(last);
    total += dt;
    out.push(Number(dt) / batch);
  }
  return summarize(out, batch * samples, Number(total));
}

/** An asynchronous operation awaited one after another, `batch` calls per sample. */
export async function measureAsync(
  op: () => Promise<unknown>,
  batch: number,
  samples: number,
  warmupSamples = Math.ceil(samples / 5),
): Promise<RoundStats> {
  for (let s = 0; s < warmupSamples; s++) {
    for (let i = 0; i < batch; i++) keep(await op());
  }
  const out: number[] = [];
  let total = 0n;
  for (let s = 0; s < samples; s++) {
    let last: unknown;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) last = await op();
    const dt = process.hrtime.bigint() - t0;
    keep(last);
    total += dt;
    out.push(Number(dt) / batch);
  }
  return summarize(out, batch * samples, Number(total));
}

/**
 * An operation that can be timed only once per input (a cold resolve: each call needs a name
 * never seen before). `op(i)` for i in [0, count); one call per sample.
 */
export async function measureEach(op: (i: number) => Promise<unknown>, count: number): Promise<RoundStats> {
  const out: number[] = [];
  let total = 0n;
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const value = await op(i);
    const dt = process.hrtime.bigint() - t0;
    keep(value);
    total += dt;
    out.push(Number(dt));
  }
  return summarize(out, count, Number(total));
}

/** Rotates `items` by `round`, so no scenario always runs first (or right after a GC-heavy one). */
export function rotate<T>(items: readonly T[], round: number): T[] {
  const k = round % Math.max(1, items.length);
  return [...items.slice(k), ...items.slice(0, k)];
}
