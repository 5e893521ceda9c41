/**
 * Smoke test of the benchmark: `npm run bench -- --quick` end to end (bind9, the Cloud Map fake,
 * the HTTP instances, every part), writing to a temp directory. Checks the shape of results.json
 * and that the SVG was drawn; never asserts timings. It runs the script's command after its
 * build step: `npm test` has built dist/ already, and rebuilding it here would rewrite files that
 * tests running alongside are reading.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const execFileAsync = promisify(execFile);
const root = join(import.meta.dirname, '..');

describe('npm run bench -- --quick', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs every part and writes results.json and results.svg', { timeout: 120_000 }, async () => {
    // The command below is the script's, after its build; and the script installs nothing.
    const { scripts } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.bench).toBe('npm run build && node --expose-gc bench/run.ts');
    dir = await mkdtemp(join(tmpdir(), 'signpost-bench-'));
    const { stdout } = await execFileAsync(process.execPath, ['--expose-gc', 'bench/run.ts', '--quick', '--out', dir], {
      cwd: root,
      timeout: 110_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    expect(stdout).toContain('Resolution latency');
    expect(stdout).toContain('Goals');

    const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as Record<string, any>;
    expect(results.schema).toBe(1);
    expect(results.mode).toBe('quick');
    for (const key of ['cpu', 'cores', 'memoryGiB', 'node', 'undici', 'cacheableLookup', 'bind9']) {
      expect(results.machine).toHaveProperty(key);
    }

    const latency = [
      'map-floor',
      'signpost-pickSync',
      'signpost-pick',
      'signpost-resolve-warm',
      'signpost-resolve-cold-A',
      'signpost-resolve-cold-SRV',
      'signpost-resolve-cold-CloudMap',
      'cares-resolve4',
      'cares-resolveSrv',
      'aws-sdk-DiscoverInstances',
      'dns.lookup-localhost',
      'cacheable-lookup-hit',
      'undici-dns-interceptor-warm',
      'undici-dns-interceptor-cold',
    ];
    for (const name of latency) {
      const entry = results.latency[name];
      expect(entry, name).toBeDefined();
      for (const stat of ['p50Ns', 'p99Ns', 'opsPerSec']) {
        for (const field of ['median', 'min', 'max']) {
          expect(typeof entry[stat][field], `${name}.${stat}.${field}`).toBe('number');
          expect(entry[stat][field], `${name}.${stat}.${field}`).toBeGreaterThan(0);
        }
      }
    }
    for (const ratio of Object.values(results.latencyRatios) as Array<{ ratio: { median: number } }>) {
      expect(ratio.ratio.median).toBeGreaterThan(0);
    }

    for (const client of ['signpost-DiscoveryAgent', 'undici-Pool', 'undici-BalancedPool', 'undici-Agent+dns-interceptor', 'fetch']) {
      const entry = results.throughput[client];
      expect(entry, client).toBeDefined();
      expect(entry.reqPerSec.median).toBeGreaterThan(0);
      expect(entry.ratioToPool.median).toBeGreaterThan(0);
    }
    expect(results.throughput['undici-Pool'].ratioToPool.median).toBe(1);

    expect(Object.keys(results.scale.pick)).toEqual(['3', '30', '300']);
    expect(results.scale.heap.length).toBeGreaterThan(0);
    for (const heap of results.scale.heap) {
      expect(heap.cached).toBe(heap.names);
      expect(typeof heap.bytesPerName).toBe('number');
    }

    for (const client of ['signpost', 'cacheable-lookup', 'undici-dns', 'resolve4']) {
      const burst = results.registry.burst[client];
      expect(burst.concurrent).toBe(1000);
      expect(burst.queriesA).toBeGreaterThanOrEqual(1);
      const steady = results.registry.steady[client];
      expect(steady.queriesPerNamePerMinute.A).toBeGreaterThanOrEqual(0);
      expect(steady.lookupsPerNamePerSec).toBeGreaterThan(0);
    }

    // bench/cache.ts: warm pick() against a cacheable-lookup hit, heap per name in use.
    expect(stdout).toContain('Cache goals');
    expect(results.cache.pick.ratio.median).toBeGreaterThan(0);
    expect(results.cache.pick.signpostNs.median).toBeGreaterThan(0);
    expect(results.cache.heap.names).toBeGreaterThan(0);
    expect(typeof results.cache.heap.bytesPerName).toBe('number');
    expect(typeof results.cache.heap.met).toBe('boolean');

    // bench/lookup.ts: a warm discovery.lookup against a cacheable-lookup hit.
    expect(stdout).toContain('Lookup (bench/lookup.ts)');
    for (const kind of ['one', 'all']) {
      expect(results.lookup[kind].ratio.median).toBeGreaterThan(0);
      expect(results.lookup[kind].signpostNs.median).toBeGreaterThan(0);
    }

    expect(results.goals.length).toBeGreaterThanOrEqual(9);
    for (const goal of results.goals) {
      expect(typeof goal.goal).toBe('string');
      expect([true, false, null]).toContain(goal.met);
    }

    const svg = await readFile(join(dir, 'results.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);

    // The request comparisons: like-for-like always; HAProxy when it is on the PATH.
    expect(stdout).toContain('like-for-like');
    expect(results.requests.likeForLike.ratioPerRound).toHaveLength(results.requests.rounds);
    for (const ratio of results.requests.likeForLike.ratioPerRound) expect(ratio).toBeGreaterThan(0);
    for (const ratio of results.requests.likeForLike.headToHeadPerRound) expect(ratio).toBeGreaterThan(0);
    expect(results.requests.ownCost.signpostNs.median).toBeGreaterThan(0);
    const lb = results.requests.loadBalancer;
    if ('skipped' in lb) expect(lb.skipped).toContain('haproxy');
    else for (const key of ['reqPerSec', 'p50', 'p99', 'cpuPerRequest']) expect(lb.ratios[key].median).toBeGreaterThan(0);
    expect((await readFile(join(dir, 'requests.svg'), 'utf8')).startsWith('<svg')).toBe(true);
  });
});
