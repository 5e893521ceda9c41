/**
 * The cache's own goals, in one measuring child (forked by run.ts with --expose-gc):
 *
 * - a warm `pick()` (the promise API) against a cacheable-lookup hit on the same name and the
 *   same bind9, the two measured in turn within each round: at most 1.0× the hit;
 * - heap per cached name in use (3 A records each, resolved, then picked once so its balancer is
 *   built): at most 1 KiB.
 *
 * Receives a ChildConfig over IPC and answers with { type: 'result', data: CacheResults }.
 */
import { promises as dnsPromises } from 'node:dns';
import { Discovery } from '../dist/index.js';
import { keep, measureAsync, rotate, sinkSeen, spread, type Spread } from './measure.ts';
import {
  API_NAME,
  HEAP_WARMUP_NAMES,
  warmHeap,
  ZONE_A,
  ZONE_HEAP,
  type ChildConfig,
  type ChildMessage,
  type ParentMessage,
} from './setup.ts';

export interface CacheResults {
  pick: { signpostNs: Spread; cacheableLookupNs: Spread; ratio: Spread; goal: string; met: boolean };
  heap: { names: number; bytesPerName: number; goal: string; met: boolean };
}

/** Names cached for the heap figure (at most the heap zone's size). */
const HEAP_NAMES = { full: 10_000, quick: 1000 };

interface CacheableLookupLike {
  lookupAsync(hostname: string): Promise<unknown>;
}

function send(message: ChildMessage): void {
  process.send!(message);
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) collect();
}

async function pickAgainstHit(config: ChildConfig): Promise<CacheResults['pick']> {
  const { sizes } = config;
  const discovery = new Discovery({
    namespaces: { [ZONE_A]: { via: 'dns', family: 4, port: 8080 } },
    dns: { servers: [config.dnsServer] },
  });
  const name = 'cacheable-lookup';
  const CacheableLookup = ((await import(name)) as { default: new (options: object) => CacheableLookupLike }).default;
  const resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([config.dnsServer]);
  const cacheable = new CacheableLookup({ resolver, lookup: false });
  keep(await discovery.resolve(API_NAME));
  keep(await cacheable.lookupAsync(API_NAME));
  const ours: number[] = [];
  const theirs: number[] = [];
  const ratios: number[] = [];
  const scenarios = [
    () => measureAsync(() => discovery.pick(API_NAME), sizes.asyncBatch, sizes.samples),
    () => measureAsync(() => cacheable.lookupAsync(API_NAME), sizes.asyncBatch, sizes.samples),
  ];
  for (let round = 0; round < sizes.rounds * 2; round++) {
    const [first, second] = rotate([0, 1], round);
    const results: number[] = [];
    results[first!] = (await scenarios[first!]!()).p50;
    results[second!] = (await scenarios[second!]!()).p50;
    ours.push(results[0]!);
    theirs.push(results[1]!);
    ratios.push(results[0]! / results[1]!);
  }
  await discovery.close();
  const ratio = spread(ratios);
  return {
    signpostNs: spread(ours),
    cacheableLookupNs: spread(theirs),
    ratio,
    goal: 'a warm pick() at most 1.0× a cacheable-lookup hit',
    met: ratio.median <= 1,
  };
}

async function heapPerName(config: ChildConfig, names: number): Promise<CacheResults['heap']> {
  const discovery = new Discovery({
    namespaces: { [ZONE_HEAP]: { via: 'dns', family: 4, port: 8080 } },
    dns: { servers: [config.dnsServer] },
    cache: { maxNames: names + HEAP_WARMUP_NAMES + 10 },
  });
  // The shared machinery (DNS client, resolver, balancer code) warmed, and compiled, on names left out.
  await warmHeap(discovery);
  gc();
  const before = process.memoryUsage().heapUsed;
  let next = 1;
  await Promise.all(
    Array.from({ length: 128 }, async () => {
      while (next <= names) {
        const name = `h${next++}.${ZONE_HEAP}`;
        await discovery.resolve(name);
        keep(discovery.pickSync(name));
      }
    }),
  );
  gc();
  const bytesPerName = Math.round((process.memoryUsage().heapUsed - before) / names);
  const expected = names + HEAP_WARMUP_NAMES;
  if (discovery.stats().names !== expected) throw new Error(`cache: ${discovery.stats().names} names cached, expected ${expected}`);
  await discovery.close();
  return { names, bytesPerName, goal: 'at most 1 KiB of heap per cached name in use (3 A records)', met: bytesPerName <= 1024 };
}

process.on('message', (message: ParentMessage) => {
  if (message.type !== 'config') return;
  void (async () => {
    const config = message.config;
    const names = Math.min(config.sizes.rounds > 2 ? HEAP_NAMES.full : HEAP_NAMES.quick, Math.max(...config.sizes.heapNames));
    const data: CacheResults = { pick: await pickAgainstHit(config), heap: await heapPerName(config, names) };
    send({ type: 'result', data: { data, sink: sinkSeen() } });
    process.disconnect?.();
  })().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
});
