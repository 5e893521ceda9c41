/**
 * `npm run bench [-- --quick] [-- --out DIR]`: starts bind9 on 127.0.0.1, the Cloud Map fake and
 * the HTTP instances (127.0.0.2-4, own process), runs every part in its own measuring child
 * process, then prints a table and writes DIR/results.json and DIR/results.svg (DIR: bench/).
 * Nothing leaves the machine.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bind9 } from '../test/fixtures/bind9.ts';
import { FakeCloudMap } from '../test/fixtures/cloud-map.ts';
import { FLEET_FULL, FLEET_QUICK, plotSvg, renderFleet, runFleet } from './fleet.ts';
import { median, type RoundStats } from './measure.ts';
import type { CacheResults } from './cache.ts';
import type { LookupResults } from './lookup.ts';
import { buildResults, renderSvg, renderTable, type Raw } from './report.ts';
import { renderRequestsSvg, renderRequestsTable, runRequests, type RequestsOptions } from './requests.ts';
import {
  burstName,
  CM_NAMESPACE,
  FULL,
  INSTANCE_ADDRESSES,
  QUICK,
  STEADY_CLIENTS,
  steadyName,
  zones,
  type ChildConfig,
  type ChildMessage,
  type ParentMessage,
  type SteadyClient,
} from './setup.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

function parseArgs(argv: string[]): {
  quick: boolean;
  out: string;
  only: 'throughput' | 'fleet' | 'requests' | 'cache' | 'cold' | undefined;
  rounds: number | undefined;
  healthChecks: boolean;
  startAtOnce: boolean;
  newNames: boolean;
  cpuProf: boolean;
  interleaved: boolean;
} {
  let quick = false;
  let out = here;
  let only: 'throughput' | 'fleet' | 'requests' | 'cache' | 'cold' | undefined;
  let healthChecks = false;
  let startAtOnce = false;
  let newNames = false;
  let rounds: number | undefined;
  let cpuProf = false;
  let interleaved = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--out') out = resolve(argv[++i] ?? '');
    else if (arg.startsWith('--out=')) out = resolve(arg.slice('--out='.length));
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const part = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (part !== 'throughput' && part !== 'fleet' && part !== 'requests' && part !== 'cache' && part !== 'cold') {
        throw new Error(`--only ${part}: only 'throughput', 'fleet', 'requests', 'cache' or 'cold' can run alone`);
      }
      only = part;
    } else if (arg === '--health-checks') {
      healthChecks = true;
    } else if (arg === '--start-at-once') {
      startAtOnce = true;
    } else if (arg === '--new-names') {
      newNames = true;
    } else if (arg === '--cpu-prof') {
      cpuProf = true;
    } else if (arg === '--interleaved') {
      interleaved = true;
    } else if (arg === '--rounds' || arg.startsWith('--rounds=')) {
      rounds = Number(arg === '--rounds' ? argv[++i] : arg.slice('--rounds='.length));
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer');
    } else throw new Error(`unknown argument ${arg}: use --quick, --out DIR, --only throughput|fleet|requests|cache|cold, --rounds N, --cpu-prof and --interleaved (with --only cold), --health-checks, --start-at-once and/or --new-names`);
  }
  return { quick, out, only, rounds, healthChecks, startAtOnce, newNames, cpuProf, interleaved };
}

function version(path: string): string {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function machine(): Raw['machine'] {
  let named = 'unknown';
  try {
    named = execFileSync(process.env.SIGNPOST_NAMED ?? '/usr/sbin/named', ['-v'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as unknown
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    undici: version(join(root, 'node_modules/undici/package.json')),
    cacheableLookup: version(join(here, 'node_modules/cacheable-lookup/package.json')),
    bind9: named,
    signpostCommit: commit,
    platform: `${process.platform} ${process.arch}`,
  };
}

function say(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}

/** Runs one part in a fresh child; `onMark` runs (and is awaited) at each phase boundary. */
async function runChild(
  config: ChildConfig,
  onMark: (label: string) => Promise<void> | void = () => {},
  script = 'client.ts',
  execArgv: readonly string[] = [],
): Promise<unknown> {
  const child: ChildProcess = fork(join(here, script), [], {
    execArgv: ['--expose-gc', ...execArgv],
    env: { ...process.env, ECS_CONTAINER_METADATA_URI_V4: '', SIGNPOST_ZONE: '', SIGNPOST_STATIC: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolveResult, reject) => {
    let result: unknown;
    let got = false;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'log') say(message.text);
      else if (message.type === 'result') {
        result = message.data;
        got = true;
      } else if (message.type === 'mark') {
        void Promise.resolve(onMark(message.label)).then(() => child.send({ type: 'ack', label: message.label } satisfies ParentMessage));
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (got) resolveResult(result);
      else reject(new Error(`bench part ${config.part} exited with ${code} and no result`));
    });
    child.send({ type: 'config', config } satisfies ParentMessage);
  });
}

function unwrap<T>(value: unknown): T {
  return (value as { data: T }).data;
}

async function main(): Promise<void> {
  const { quick, out, only, rounds, healthChecks, startAtOnce, newNames, cpuProf, interleaved } = parseArgs(process.argv.slice(2));
  const sizes = { ...(quick ? QUICK : FULL), ...(rounds === undefined ? {} : { rounds }) };
  if (only === 'throughput') return throughputOnly(sizes);
  if (only === 'fleet') return fleetOnly(quick, out, healthChecks, startAtOnce, newNames);
  if (only === 'requests') return requestsOnly(sizes, out);
  if (only === 'cache') return cacheOnly(sizes);
  if (only === 'cold') return coldOnly(sizes, cpuProf ? out : undefined, interleaved);
  const started = Date.now();
  const coldNames = sizes.rounds * (sizes.coldSamples + 10);
  const heapMax = Math.max(...sizes.heapNames) + 1;

  say(`mode ${quick ? 'quick' : 'full'}: starting bind9 (${coldNames} cold names per kind, ${heapMax} heap names)`);
  const bind9 = await Bind9.start({ zones: zones(sizes, coldNames, heapMax) });
  const cloudMap = await FakeCloudMap.start();
  for (let i = 0; i < coldNames; i++) {
    for (let j = 0; j < 3; j++) {
      cloudMap.register(CM_NAMESPACE, `svc${i}`, {
        id: `i-${i}-${j}`,
        attributes: { AWS_INSTANCE_IPV4: `127.0.${60 + j}.${i & 255}`, AWS_INSTANCE_PORT: '8080', AVAILABILITY_ZONE: `use1-az${j + 1}` },
      });
    }
  }
  const server = fork(join(here, 'server.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const httpPort = await new Promise<number>((resolvePort, reject) => {
    server.once('message', (message: { port: number }) => resolvePort(message.port));
    server.once('exit', (code) => reject(new Error(`HTTP instances exited with ${code}`)));
  });

  const base = { sizes, dnsServer: bind9.server, cloudMapEndpoint: cloudMap.endpoint, coldNames, httpPort };
  try {
    say('resolution latency');
    const latency = unwrap<Record<string, RoundStats[]>>(await runChild({ ...base, part: 'latency' }));

    say('pick scale');
    const scale = unwrap<Record<string, RoundStats[]>>(await runChild({ ...base, part: 'scale' }));

    say('registry load');
    const counts: Record<string, Record<string, { A: number; AAAA: number }>> = {};
    const countNow = (label: string): void => {
      const snapshot: Record<string, { A: number; AAAA: number }> = {};
      for (const client of STEADY_CLIENTS) {
        const names = Array.from({ length: sizes.steadyNames }, (_, i) => steadyName(client, i));
        names.push(burstName(client));
        for (const name of names) snapshot[name] = { A: bind9.queries(name, 'A'), AAAA: bind9.queries(name, 'AAAA') };
      }
      counts[label] = snapshot;
    };
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300)); // named's log reaches us through a pipe
    const registryRaw = unwrap<{
      burstSettled: Record<SteadyClient, number>;
      burstErrors: Record<SteadyClient, Record<string, number>>;
      steadyLookups: Record<SteadyClient, number>;
    }>(
      await runChild({ ...base, part: 'registry' }, async (label) => {
        await settle();
        countNow(label);
      }),
    );

    say('request throughput');
    const throughput = unwrap<{ results: Record<string, RoundStats[]> }>(await runChild({ ...base, part: 'throughput' }));
    const spread = await new Promise<Record<string, number>>((resolveCounts) => {
      server.once('message', (message: { counts: Record<string, number> }) => resolveCounts(message.counts));
      server.send({ type: 'counts' });
    });

    say('requests: like-for-like and the load-balancer hop');
    const requests = await runRequests(requestsOptions(sizes, httpPort), say);

    const heap: Array<{ names: number; bytes: number; bytesPerName: number; cached: number }> = [];
    for (const names of sizes.heapNames) {
      say(`heap with ${names} names`);
      heap.push(unwrap(await runChild({ ...base, part: 'heap', heapNames: names })));
    }

    say('cache: warm pick() against a cacheable-lookup hit, heap per name in use');
    const cache = unwrap<CacheResults>(await runChild({ ...base, part: 'cache' }, undefined, 'cache.ts'));
    say('lookup: a warm discovery.lookup against a cacheable-lookup hit');
    const lookup = unwrap<LookupResults>(await runChild({ ...base, part: 'lookup' }, undefined, 'lookup.ts'));

    const raw: Raw = {
      mode: quick ? 'quick' : 'full',
      date: new Date().toISOString(),
      durationS: 0,
      machine: machine(),
      sizes,
      latency,
      scale,
      throughput: throughput.results,
      serverSpread: spread,
      heap,
      registry: { ...registryRaw, counts },
    };
    raw.durationS = Math.round((Date.now() - started) / 1000);
    const results = buildResults(raw);
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'results.json'), `${JSON.stringify({ ...results, cache, requests, lookup }, null, 2)}\n`);
    writeFileSync(join(out, 'results.svg'), renderSvg(results));
    writeFileSync(join(out, 'requests.svg'), renderRequestsSvg(requests));
    process.stdout.write(renderTable(results));
    process.stdout.write(renderCache(cache));
    process.stdout.write(renderRequestsTable(requests));
    const row = (what: string, c: LookupResults['one']): string =>
      `  ${what}: ${c.signpostNs.median.toFixed(0)} ns vs cacheable-lookup ${c.cacheableLookupNs.median.toFixed(0)} ns: ` +
      `${c.ratio.median.toFixed(2)}× (${c.ratio.min.toFixed(2)}–${c.ratio.max.toFixed(2)})\n`;
    process.stdout.write(
      `\nLookup (bench/lookup.ts), warm, against a cacheable-lookup hit\n` +
        row('one address', lookup.one) +
        row('all: true, as net.connect asks', lookup.all),
    );
    say(`wrote ${join(out, 'results.json')} and ${join(out, 'results.svg')} in ${raw.durationS} s`);
  } finally {
    server.send({ type: 'close' });
    await cloudMap.close();
    await bind9.close();
  }
}

function renderCache(cache: CacheResults): string {
  const mark = (met: boolean): string => (met ? 'met' : 'NOT met');
  const { pick: warmPick, heap: perName } = cache;
  return (
    `\nCache goals (bench/cache.ts)\n` +
    `  warm pick() ${warmPick.signpostNs.median.toFixed(0)} ns vs cacheable-lookup hit ${warmPick.cacheableLookupNs.median.toFixed(0)} ns: ` +
    `${warmPick.ratio.median.toFixed(2)}× (${warmPick.ratio.min.toFixed(2)}–${warmPick.ratio.max.toFixed(2)}); goal ≤ 1.0×: ${mark(warmPick.met)}\n` +
    `  heap per cached name in use (3 A records, ${perName.names} names): ${perName.bytesPerName} B; goal ≤ 1024 B: ${mark(perName.met)}\n`
  );
}

/**
 * `--only cache`: the cache's goals alone (bench/cache.ts: warm pick() against a cacheable-lookup
 * hit, heap per cached name in use), on bind9. Writes no results.json.
 */
async function cacheOnly(sizes: typeof FULL): Promise<void> {
  const heapNames = Math.max(...sizes.heapNames) + 1;
  say(`cache only: ${sizes.rounds} rounds, starting bind9 (${heapNames} heap names)`);
  const bind9 = await Bind9.start({ zones: zones(sizes, 0, heapNames), querylog: false });
  try {
    const config = { sizes, dnsServer: bind9.server, cloudMapEndpoint: '', coldNames: 0, part: 'cache' as const };
    process.stdout.write(renderCache(unwrap<CacheResults>(await runChild(config, undefined, 'cache.ts'))));
  } finally {
    await bind9.close();
  }
}

/**
 * `--only cold [--rounds N] [--cpu-prof] [--interleaved]`: the cold resolve (A) against c-ares
 * `resolve4` alone, on bind9, printed per round with the ratio of the p50s (the goal's reading;
 * `--interleaved`: one call of each in turn, steadier on a busy machine). With `--cpu-prof`
 * the measuring child writes a V8 CPU profile to the --out directory. Writes no results.json.
 */
async function coldOnly(sizes: typeof FULL, profileDir: string | undefined, interleaved: boolean): Promise<void> {
  const coldNames = sizes.rounds * (sizes.coldSamples + 10);
  say(`cold only: ${sizes.rounds} rounds of ${sizes.coldSamples}, starting bind9 (${coldNames} names)`);
  const bind9 = await Bind9.start({ zones: zones(sizes, coldNames, 0), querylog: false });
  try {
    const config = { sizes, dnsServer: bind9.server, cloudMapEndpoint: '', coldNames, interleaved, part: 'cold' as const };
    const prof = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${profileDir}`];
    const results = unwrap<Record<string, RoundStats[]>>(await runChild(config, undefined, 'client.ts', prof));
    const ours = results['signpost-resolve-cold-A'] ?? [];
    const cares = results['cares-resolve4'] ?? [];
    const us = (ns: number): string => `${(ns / 1000).toFixed(0)} µs`;
    const lines = ours.map((s, i) => `round ${i + 1}: signpost ${us(s.p50)} vs c-ares ${us(cares[i]!.p50)}: ${(s.p50 / cares[i]!.p50).toFixed(2)}×`);
    const middle = median(ours.map((s, i) => s.p50 / cares[i]!.p50));
    process.stdout.write(`cold resolve (A) p50 / c-ares resolve4 p50\n${lines.join('\n')}\nmedian ${middle.toFixed(2)}× (goal ≤ 1.1×)\n`);
    if (profileDir !== undefined) say(`CPU profile written to ${profileDir}`);
  } finally {
    await bind9.close();
  }
}

/**
 * `--only throughput`: the request throughput part alone (bind9 and the HTTP instances, no Cloud
 * Map, no other part), printed per round with each client's ratio to the undici Pool of that
 * round. Writes no results.json.
 */
async function throughputOnly(sizes: typeof FULL): Promise<void> {
  say(`throughput only: ${sizes.rounds} rounds, starting bind9`);
  const bind9 = await Bind9.start({ zones: zones(sizes, 0, 1) });
  const server = fork(join(here, 'server.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const httpPort = await new Promise<number>((resolvePort, reject) => {
      server.once('message', (message: { port: number }) => resolvePort(message.port));
      server.once('exit', (code) => reject(new Error(`HTTP instances exited with ${code}`)));
    });
    const config = { sizes, dnsServer: bind9.server, cloudMapEndpoint: '', coldNames: 0, httpPort, part: 'throughput' as const };
    const { results } = unwrap<{ results: Record<string, RoundStats[]> }>(await runChild(config));
    const pool = results['undici-Pool'] ?? [];
    const lines: string[] = [];
    for (const [name, stats] of Object.entries(results)) {
      const cells = stats.map((s, i) => {
        const ratio = pool[i] === undefined ? '' : ` (${(s.opsPerSec / pool[i]!.opsPerSec).toFixed(3)}×)`;
        return `${Math.round(s.opsPerSec)}${ratio}`;
      });
      lines.push(`${name.padEnd(30)} ${cells.join('  ')}`);
    }
    process.stdout.write(`req/s per round (× undici Pool in the same round)\n${lines.join('\n')}\n`);
  } finally {
    server.send({ type: 'close' });
    await bind9.close();
  }
}

/** `--only fleet`: the fleet simulation (bench/fleet.ts); writes DIR/fleet[-health].json and .svg. */
async function fleetOnly(quick: boolean, out: string, healthChecks: boolean, startAtOnce: boolean, newNames: boolean): Promise<void> {
  const options = { ...(quick ? FLEET_QUICK : FLEET_FULL), healthChecks, newNames, say, ...(startAtOnce && { startS: 2 }) };
  say(`fleet simulation: ${options.clients} processes × ${options.names} names${healthChecks ? ', services with health checks' : ''}`);
  const result = await runFleet(options);
  const base = join(out, `fleet${healthChecks ? '-health' : ''}${startAtOnce ? '-at-once' : ''}${newNames ? '-new-names' : ''}`);
  mkdirSync(out, { recursive: true });
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(`${base}.svg`, plotSvg(result));
  process.stdout.write(renderFleet(result));
  say(`wrote ${base}.json and ${base}.svg`);
}

function requestsOptions(sizes: typeof FULL, port: number): RequestsOptions {
  return { port, addresses: INSTANCE_ADDRESSES, rounds: sizes.rounds, warmupMs: sizes.throughputWarmupMs, windowMs: sizes.throughputWindowMs, inFlight: sizes.inFlight };
}

/**
 * `--only requests`: like-for-like and the HAProxy comparison alone (no bind9); writes
 * DIR/requests.json and DIR/requests.svg, not results.json.
 */
async function requestsOnly(sizes: typeof FULL, out: string): Promise<void> {
  const server = fork(join(here, 'server.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolvePort, reject) => {
      server.once('message', (message: { port: number }) => resolvePort(message.port));
      server.once('exit', (code) => reject(new Error(`HTTP instances exited with ${code}`)));
    });
    const requests = await runRequests(requestsOptions(sizes, port), say);
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'requests.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), ...requests }, null, 2)}\n`);
    writeFileSync(join(out, 'requests.svg'), renderRequestsSvg(requests));
    process.stdout.write(renderRequestsTable(requests));
  } finally {
    server.send({ type: 'close' });
  }
}

await main();
