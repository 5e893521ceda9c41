/**
 * Collects the figures every fault scenario writes (one JSON line each) and prints the summary
 * of the whole suite once every file has run.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    figuresDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'signpost-faults-'));
  project.provide('figuresDir', dir);
  const started = performance.now();
  return () => {
    const rows: Record<string, Record<string, number | string>> = {};
    const totals = { requests: 0, failures: 0, retries: 0, ejections: 0, peakHeapMiB: 0, openHandlesAfter: 0 };
    for (const file of readdirSync(dir).sort()) {
      for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        const { scenario, figures } = JSON.parse(line) as { scenario: string; figures: Record<string, number | string> };
        rows[scenario] = figures;
        const num = (key: string): number => (typeof figures[key] === 'number' ? (figures[key] as number) : 0);
        totals.requests += num('requests');
        totals.failures += num('failures');
        totals.retries += num('retries');
        totals.ejections += num('ejections');
        totals.peakHeapMiB = Math.max(totals.peakHeapMiB, num('peakHeapMiB'));
        totals.openHandlesAfter = Math.max(totals.openHandlesAfter, num('openHandlesAfter'));
      }
    }
    rmSync(dir, { recursive: true, force: true });
    const pick = (f: Record<string, number | string>) => ({
      requests: f.requests ?? '',
      failures: f.failures ?? '',
      retries: f.retries ?? '',
      ejections: f.ejections ?? '',
      peakHeapMiB: f.peakHeapMiB ?? '',
      openHandlesAfter: f.openHandlesAfter ?? '',
    });
    const table = Object.fromEntries(Object.entries(rows).map(([name, f]) => [name, pick(f)]));
    console.log(`\nsignpost fault suite summary (SIGNPOST_FAULTS_SCALE=${process.env.SIGNPOST_FAULTS_SCALE ?? '1'}, ${((performance.now() - started) / 1000).toFixed(0)} s)`);
    console.table({ ...table, total: totals });
  };
}
