/**
 * The measuring side: one child process per part (forked by run.ts with --expose-gc), so bind9's
 * querylog, the Cloud Map fake and the HTTP servers never share its event loop or heap.
 * Receives a ChildConfig over IPC and answers with { type: 'result', data }.
 */
import { promises as dnsPromises } from 'node:dns';
import { Agent, BalancedPool, interceptors, Pool, type Dispatcher } from 'undici';
import { DiscoverInstancesCommand, ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import { StandardRetryStrategy } from '@smithy/core/retry';
import { Discovery } from '../dist/index.js';
import { keep, measureAsync, measureEach, measureSync, rotate, sinkSeen, summarize, type RoundStats } from './measure.ts';
import {
  API_NAME,
  burstName,
  CLOUDMAP_CREDENTIALS,
  CLOUDMAP_REGION,
  CM_NAMESPACE,
  HEAP_WARMUP_NAMES,
  INSTANCE_ADDRESSES,
  STEADY_CLIENTS,
  steadyName,
  ZONE_A,
  ZONE_ANY,
  ZONE_HEAP,
  ZONE_SRV,
  type ChildConfig,
  type ChildMessage,
  type ParentMessage,
  type SteadyClient,
  warmHeap,
} from './setup.ts';

/** The part of a Dispatcher the throughput loop uses. */
type Requester = { request: Dispatcher['request'] };

interface CacheableLookupLike {
  lookupAsync(hostname: string, options?: { family?: 4 | 6; all?: boolean }): Promise<unknown>;
}
type CacheableLookupCtor = new (options: { resolver: dnsPromises.Resolver; lookup: false; maxTtl?: number }) => CacheableLookupLike;

/** Peers are loaded by name at run time: they are the bench workspace's dependencies, outside the library's typecheck. */
async function loadCacheableLookup(): Promise<CacheableLookupCtor> {
  const name = 'cacheable-lookup';
  const module = (await import(name)) as { default: CacheableLookupCtor };
  return module.default;
}

function send(message: ChildMessage): void {
  process.send!(message);
}

const acks = new Map<string, () => void>();
/** Tells the orchestrator a phase boundary was reached (it counts bind9's queries) and waits. */
function mark(label: string): Promise<void> {
  return new Promise((resolve) => {
    acks.set(label, resolve);
    send({ type: 'mark', label });
  });
}

function log(text: string): void {
  send({ type: 'log', text });
}

// ---------------------------------------------------------------- shared clients

function caresResolver(server: string): dnsPromises.Resolver {
  // Same settings as signpost's DnsClient, so the comparison is of the code around c-ares.
  const resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 2, maxTimeout: 2000 });
  resolver.setServers([server]);
  return resolver;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, addresses: Array<{ address: string; family: 4 | 6; ttl: number }>) => void;

/** A `lookup` for undici's DNS interceptor that asks bind9 on loopback through c-ares (TTL in ms). */
function interceptorLookup(resolver: dnsPromises.Resolver) {
  return (origin: URL, _options: unknown, callback: LookupCallback): void => {
    resolver.resolve4(origin.hostname, { ttl: true }).then(
      (records) => callback(null, records.map((r) => ({ address: r.address, family: 4 as const, ttl: r.ttl * 1000 }))),
      (error: NodeJS.ErrnoException) => callback(error, []),
    );
  };
}

/** A handler for dispatches that go nowhere (the interceptor is measured, not a request). */
const nullHandler: Dispatcher.DispatchHandler = {
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError(_controller, error) {
    throw error;
  },
};

/**
 * undici's DNS interceptor over a terminal dispatch that only records the rewritten origin: what
 * the interceptor adds per request. With `complete`, the terminal dispatch also ends the request
 * (`onResponseEnd`), so each caller's own handler learns its request went through.
 */
function interceptorDispatch(resolver: dnsPromises.Resolver, maxTTL: number, onDispatch: (origin: string) => void, complete = false) {
  const terminal = (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean => {
    onDispatch(String(opts.origin));
    if (complete) handler.onResponseEnd?.(null as never, {});
    return true;
  };
  const dns = interceptors.dns({ lookup: interceptorLookup(resolver), maxTTL, dualStack: false, affinity: 4 });
  return (dns as unknown as (d: typeof terminal) => (o: Dispatcher.DispatchOptions, h: Dispatcher.DispatchHandler) => boolean)(terminal);
}

/** One request through an interceptor made with `complete`: resolves once it was dispatched. */
function throughInterceptor(dispatch: ReturnType<typeof interceptorDispatch>, origin: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    dispatch(
      { origin, path: '/', method: 'GET' },
      { ...nullHandler, onResponseEnd: () => resolve(), onResponseError: (_controller, error) => reject(error) },
    );
  });
}

function discoveryFor(config: ChildConfig, extra: Partial<ConstructorParameters<typeof Discovery>[0]> = {}): Discovery {
  return new Discovery({
    namespaces: {
      [ZONE_A]: { via: 'dns', family: 4, port: config.httpPort ?? 8080 },
      [ZONE_ANY]: { via: 'dns', port: 8080 },
      [ZONE_SRV]: { via: 'srv' },
      [ZONE_HEAP]: { via: 'dns', family: 4, port: 8080 },
      [CM_NAMESPACE]: { via: 'cloudmap' },
    },
    dns: { servers: [config.dnsServer] },
    // The default budget (50 calls/s) paces back-to-back cold resolves of distinct services at
    // 20 ms each: lifted here so the latency measured is the call's own, not the pacing.
    cloudMap: { endpoint: config.cloudMapEndpoint, region: CLOUDMAP_REGION, credentials: CLOUDMAP_CREDENTIALS, maxCallsPerSecond: 10_000 },
    ...extra,
  });
}

// ---------------------------------------------------------------- latency

type Scenario = { name: string; run: (round: number) => Promise<RoundStats> | RoundStats };

async function latency(config: ChildConfig): Promise<Record<string, RoundStats[]>> {
  const { sizes } = config;
  const discovery = discoveryFor(config);
  const resolver = caresResolver(config.dnsServer);
  const CacheableLookup = await loadCacheableLookup();
  const cacheable = new CacheableLookup({ resolver: caresResolver(config.dnsServer), lookup: false });
  // Configured as signpost configures its own client with the default options (`retries` 2,
  // `retryDelay` 50 ms, `timeout` 5 s): up to 3 attempts of the SDK's standard retry strategy, the
  // same per-attempt timeouts, no `data-` host prefix on a loopback endpoint. The stand-in never
  // fails here, so each call is one attempt for both; what differs is signpost's own work.
  const SIGNPOST_ATTEMPTS = 3;
  const sdk = new ServiceDiscoveryClient({
    endpoint: config.cloudMapEndpoint,
    region: CLOUDMAP_REGION,
    credentials: CLOUDMAP_CREDENTIALS,
    maxAttempts: SIGNPOST_ATTEMPTS,
    retryStrategy: new StandardRetryStrategy({ maxAttempts: SIGNPOST_ATTEMPTS, baseDelay: 50 }),
    requestHandler: { requestTimeout: 5000, connectionTimeout: 5000, throwOnRequestTimeout: true },
    disableHostPrefix: true,
  });

  // Warm everything on the shared name.
  await discovery.resolve(API_NAME);
  await cacheable.lookupAsync(API_NAME);
  let lastOrigin = '';
  const warmInterceptor = interceptorDispatch(resolver, 3_600_000, (origin) => {
    lastOrigin = origin;
  });
  const apiOrigin = `http://${API_NAME}:8080`;
  const apiOpts = { origin: apiOrigin, path: '/', method: 'GET' } as const;
  warmInterceptor({ ...apiOpts }, nullHandler);
  await new Promise((resolve) => setTimeout(resolve, 100));
  warmInterceptor({ ...apiOpts }, nullHandler);
  if (!lastOrigin.startsWith('http://127.0.0.')) throw new Error(`interceptor did not resolve ${API_NAME}: ${lastOrigin}`);

  // The floor: a Map lookup and a round-robin index over the same three instances.
  const floorTable = new Map<string, { list: readonly unknown[]; next: number }>([
    [API_NAME, { list: await discovery.resolve(API_NAME), next: 0 }],
  ]);
  const floor = (): unknown => {
    const entry = floorTable.get(API_NAME)!;
    const i = entry.next;
    entry.next = i + 1 === entry.list.length ? 0 : i + 1;
    return entry.list[i];
  };

  const batch = sizes.syncBatch;
  const perRound = sizes.coldSamples;
  const warmup = 10;
  // Cold names: round r uses indexes [r * (perRound + warmup), ...): every scenario in a round
  // asks for the same names, each client never having seen them.
  const base = (round: number): number => round * (perRound + warmup);
  const cold = async (round: number, op: (i: number) => Promise<unknown>): Promise<RoundStats> => {
    for (let i = 0; i < warmup; i++) keep(await op(base(round) + i));
    return measureEach((i) => op(base(round) + warmup + i), perRound);
  };

  const scenarios: Scenario[] = [
    { name: 'map-floor', run: () => measureSync(floor, batch, sizes.samples) },
    { name: 'signpost-pickSync', run: () => measureSync(() => discovery.pickSync(API_NAME), batch, sizes.samples) },
    { name: 'signpost-pick', run: () => measureAsync(() => discovery.pick(API_NAME), sizes.asyncBatch, sizes.samples) },
    { name: 'signpost-resolve-warm', run: () => measureAsync(() => discovery.resolve(API_NAME), sizes.asyncBatch, sizes.samples) },
    { name: 'cacheable-lookup-hit', run: () => measureAsync(() => cacheable.lookupAsync(API_NAME), sizes.asyncBatch, sizes.samples) },
    {
      name: 'undici-dns-interceptor-warm',
      run: () =>
        measureSync(
          () => {
            warmInterceptor({ origin: apiOrigin, path: '/', method: 'GET' }, nullHandler);
            return lastOrigin;
          },
          batch,
          sizes.samples,
        ),
    },
    { name: 'dns.lookup-localhost', run: () => measureAsync(() => dnsPromises.lookup('localhost'), 10, sizes.samples) },
    { name: 'cares-resolve4', run: (r) => cold(r, (i) => resolver.resolve4(`c${i}.${ZONE_A}`)) },
    { name: 'signpost-resolve-cold-A', run: (r) => cold(r, (i) => discovery.resolve(`c${i}.${ZONE_A}`)) },
    {
      name: 'undici-dns-interceptor-cold',
      run: (r) => {
        const dispatch = interceptorDispatch(resolver, 10_000, keep, true);
        return cold(r, (i) => throughInterceptor(dispatch, `http://c${i}.${ZONE_A}:8080`));
      },
    },
    { name: 'cares-resolveSrv', run: (r) => cold(r, (i) => resolver.resolveSrv(`s${i}.${ZONE_SRV}`)) },
    { name: 'signpost-resolve-cold-SRV', run: (r) => cold(r, (i) => discovery.resolve(`s${i}.${ZONE_SRV}`)) },
    {
      name: 'aws-sdk-DiscoverInstances',
      run: (r) =>
        cold(r, (i) =>
          sdk.send(new DiscoverInstancesCommand({ NamespaceName: CM_NAMESPACE, ServiceName: `svc${i}`, HealthStatus: 'HEALTHY_OR_ELSE_ALL' })),
        ),
    },
    { name: 'signpost-resolve-cold-CloudMap', run: (r) => cold(r, (i) => discovery.resolve(`svc${i}.${CM_NAMESPACE}`)) },
  ];

  const results: Record<string, RoundStats[]> = {};
  for (let round = 0; round < sizes.rounds; round++) {
    // Rotate the warm group and the cold group separately: the cold peers stay next to each other.
    for (const scenario of rotate(scenarios, round)) {
      if (process.env.SIGNPOST_BENCH_VERBOSE) log(`latency: ${scenario.name}`);
      (results[scenario.name] ??= []).push(await scenario.run(round));
    }
    log(`latency round ${round + 1}/${sizes.rounds} done`);
  }
  sdk.destroy();
  await discovery.close();
  return results;
}

/**
 * `--only cold`: the cold resolve (A) against c-ares `resolve4` alone, as the latency part runs
 * them (same names in a round, 10 warm-up calls each, the order flipped every round); with
 * `--interleaved`, one call of each in turn.
 */
async function cold(config: ChildConfig): Promise<Record<string, RoundStats[]>> {
  const { sizes } = config;
  // The latency part's rule for these names (its other rules need the Cloud Map stand-in).
  const discovery = new Discovery({ namespaces: { [ZONE_A]: { via: 'dns', family: 4, port: 8080 } }, dns: { servers: [config.dnsServer] } });
  const resolver = caresResolver(config.dnsServer);
  await discovery.resolve(API_NAME);
  const warmup = 10;
  const base = (round: number): number => round * (sizes.coldSamples + warmup);
  const run = async (round: number, op: (i: number) => Promise<unknown>): Promise<RoundStats> => {
    for (let i = 0; i < warmup; i++) keep(await op(base(round) + i));
    return measureEach((i) => op(base(round) + warmup + i), sizes.coldSamples);
  };
  const scenarios: Scenario[] = [
    { name: 'cares-resolve4', run: (r) => run(r, (i) => resolver.resolve4(`c${i}.${ZONE_A}`)) },
    { name: 'signpost-resolve-cold-A', run: (r) => run(r, (i) => discovery.resolve(`c${i}.${ZONE_A}`)) },
  ];
  const results: Record<string, RoundStats[]> = {};
  for (let round = 0; round < sizes.rounds; round++) {
    if (config.interleaved) {
      // Call by call in turn, each pair on one name: a burst of load from elsewhere on a shared
      // machine hits both alike, where 200 calls of one then 200 of the other can differ by 20 %.
      const [first, second] = rotate(scenarios, round).map((s) => s.name === 'cares-resolve4');
      const op = (cares: boolean | undefined, i: number): Promise<unknown> =>
        cares ? resolver.resolve4(`c${i}.${ZONE_A}`) : discovery.resolve(`c${i}.${ZONE_A}`);
      for (let i = 0; i < warmup; i++) {
        keep(await op(first, base(round) + i));
        keep(await op(second, base(round) + i));
      }
      const times: Record<string, number[]> = { 'cares-resolve4': [], 'signpost-resolve-cold-A': [] };
      for (let i = 0; i < sizes.coldSamples; i++) {
        for (const cares of [first, second]) {
          const t0 = process.hrtime.bigint();
          keep(await op(cares, base(round) + warmup + i));
          times[cares ? 'cares-resolve4' : 'signpost-resolve-cold-A']!.push(Number(process.hrtime.bigint() - t0));
        }
      }
      for (const [name, ns] of Object.entries(times)) {
        const total = ns.reduce((a, b) => a + b, 0);
        (results[name] ??= []).push(summarize(ns, ns.length, total));
      }
      continue;
    }
    for (const scenario of rotate(scenarios, round)) (results[scenario.name] ??= []).push(await scenario.run(round));
  }
  await discovery.close();
  return results;
}

// ---------------------------------------------------------------- scale

async function scale(config: ChildConfig): Promise<Record<string, RoundStats[]>> {
  const { sizes } = config;
  // Static services: bind9 9.18 refuses more than 100 records per RRset (max-records-per-type),
  // and the structure picked from (view, zone affinity, outlier filter, round-robin) is the same
  // whatever resolver filled the cache.
  const services: Record<string, { via: 'static'; instances: Array<{ address: string; port: number }> }> = {};
  for (const n of sizes.scaleInstances) {
    services[`n${n}.scale.bench`] = {
      via: 'static',
      instances: Array.from({ length: n }, (_, j) => ({ address: `127.1.${j >> 8}.${j & 255}`, port: 8080 })),
    };
  }
  const discovery = new Discovery({ services });
  const results: Record<string, RoundStats[]> = {};
  for (const n of sizes.scaleInstances) {
    const found = await discovery.resolve(`n${n}.scale.bench`);
    if (found.length !== n) throw new Error(`n${n}.scale.bench has ${found.length} instances, expected ${n}`);
  }
  const table = new Map<string, { list: readonly unknown[]; next: number }>();
  for (const n of sizes.scaleInstances) table.set(`n${n}.scale.bench`, { list: await discovery.resolve(`n${n}.scale.bench`), next: 0 });
  for (let round = 0; round < sizes.rounds; round++) {
    for (const n of rotate(sizes.scaleInstances, round)) {
      const name = `n${n}.scale.bench`;
      (results[`signpost-pickSync-${n}`] ??= []).push(measureSync(() => discovery.pickSync(name), sizes.syncBatch, sizes.samples));
      (results[`map-floor-${n}`] ??= []).push(
        measureSync(
          () => {
            const entry = table.get(name)!;
            const i = entry.next;
            entry.next = i + 1 === entry.list.length ? 0 : i + 1;
            return entry.list[i];
          },
          sizes.syncBatch,
          sizes.samples,
        ),
      );
    }
  }
  await discovery.close();
  return results;
}

// ---------------------------------------------------------------- heap

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) collect();
}

async function heap(config: ChildConfig): Promise<{ names: number; bytes: number; bytesPerName: number; cached: number }> {
  const names = config.heapNames!;
  const discovery = discoveryFor(config, { cache: { maxNames: names + HEAP_WARMUP_NAMES + 10 } });
  // Warm the shared machinery (DNS client, resolver, balancer code), and compile it, on names left out of the count.
  await warmHeap(discovery);
  gc();
  const before = process.memoryUsage().heapUsed;
  let next = 1;
  const worker = async (): Promise<void> => {
    while (next <= names) {
      const name = `h${next++}.${ZONE_HEAP}`;
      await discovery.resolve(name);
    }
  };
  await Promise.all(Array.from({ length: 128 }, worker));
  gc();
  const after = process.memoryUsage().heapUsed;
  const cached = discovery.stats().names - HEAP_WARMUP_NAMES;
  // Still there and still answering: the heap held what it should.
  if (discovery.pickSync(`h${names}.${ZONE_HEAP}`) === undefined) throw new Error('heap: last name not cached');
  const bytes = after - before;
  await discovery.close();
  return { names, bytes, bytesPerName: bytes / names, cached };
}

// ---------------------------------------------------------------- registry load

async function registry(
  config: ChildConfig,
): Promise<{ burstSettled: Record<string, number>; burstErrors: Record<string, Record<string, number>>; steadyLookups: Record<string, number> }> {
  const { sizes } = config;
  const discovery = discoveryFor(config);
  const CacheableLookup = await loadCacheableLookup();
  const cacheable = new CacheableLookup({ resolver: caresResolver(config.dnsServer), lookup: false });
  const resolver = caresResolver(config.dnsServer);
  const dispatch = interceptorDispatch(caresResolver(config.dnsServer), 10_000, keep, true);
  const viaInterceptor = (name: string): Promise<void> => throughInterceptor(dispatch, `http://${name}:8080`);

  const lookups: Record<SteadyClient, (name: string) => Promise<unknown> | unknown> = {
    signpost: (name) => discovery.pickSync(name) ?? discovery.pick(name),
    'cacheable-lookup': (name) => cacheable.lookupAsync(name),
    'undici-dns': (name) => viaInterceptor(name),
    resolve4: (name) => resolver.resolve4(name),
  };

  // 1,000 concurrent requests on one cold name, per client.
  const burstSettled: Record<string, number> = {};
  const burstErrors: Record<string, Record<string, number>> = {};
  for (const client of STEADY_CLIENTS) {
    if (process.env.SIGNPOST_BENCH_VERBOSE) log(`registry: burst ${client}`);
    const name = burstName(client);
    const calls = Array.from({ length: sizes.burst }, () =>
      Promise.resolve(client === 'signpost' ? discovery.resolve(name) : lookups[client](name)),
    );
    const settled = await Promise.allSettled(calls);
    burstSettled[client] = settled.filter((s) => s.status === 'fulfilled').length;
    const errors: Record<string, number> = {};
    for (const s of settled) {
      if (s.status !== 'rejected') continue;
      const code = String((s.reason as { code?: unknown }).code ?? (s.reason as Error).name);
      errors[code] = (errors[code] ?? 0) + 1;
    }
    burstErrors[client] = errors;
  }
  if (process.env.SIGNPOST_BENCH_VERBOSE) log('registry: burst done');
  await mark('burst-done');
  if (process.env.SIGNPOST_BENCH_VERBOSE) log('registry: steady');

  // Steady state: every client looks its names up at a fixed rate for the window.
  for (const client of STEADY_CLIENTS) {
    if (process.env.SIGNPOST_BENCH_VERBOSE) log(`registry: warm ${client}`);
    for (let i = 0; i < sizes.steadyNames; i++) await lookups[client](steadyName(client, i));
  }
  await mark('steady-start');
  const steadyLookups: Record<string, number> = Object.fromEntries(STEADY_CLIENTS.map((c) => [c, 0]));
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((sizes.steadyRatePerName * tickMs) / 1000));
  const end = performance.now() + sizes.steadyWindowMs;
  while (performance.now() < end) {
    const started = performance.now();
    const pending: Array<Promise<unknown>> = [];
    for (const client of STEADY_CLIENTS) {
      for (let i = 0; i < sizes.steadyNames; i++) {
        const name = steadyName(client, i);
        for (let k = 0; k < perTick; k++) {
          pending.push(Promise.resolve(lookups[client](name)));
          steadyLookups[client]!++;
        }
      }
    }
    await Promise.allSettled(pending);
    const wait = tickMs - (performance.now() - started);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  await mark('steady-end');
  await discovery.close();
  return { burstSettled, burstErrors, steadyLookups };
}

// ---------------------------------------------------------------- throughput

async function loadDiscoveryAgent(): Promise<(new (options: Record<string, unknown>) => Dispatcher) | undefined> {
  for (const specifier of ['../dist/index.js', '../dist/agent.js']) {
    try {
      const module = (await import(specifier)) as { DiscoveryAgent?: new (options: Record<string, unknown>) => Dispatcher };
      if (module.DiscoveryAgent) return module.DiscoveryAgent;
    } catch {
      // not built yet
    }
  }
  return undefined;
}

/** Closed loop: `inFlight` workers, each sending its next request when the last one ended. */
async function drive(sendOne: () => Promise<void>, inFlight: number, warmupMs: number, windowMs: number): Promise<number> {
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + windowMs;
  let done = 0;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      const now = performance.now();
      if (now >= end) return;
      try {
        await sendOne();
      } catch (error) {
        firstError ??= error;
        return;
      }
      const finished = performance.now();
      if (finished >= measureFrom && finished < end) done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  if (firstError !== undefined) throw firstError;
  return done / (windowMs / 1000);
}

async function throughput(config: ChildConfig): Promise<{ results: Record<string, RoundStats[]>; spread: Record<string, number> }> {
  const { sizes } = config;
  const port = config.httpPort!;
  const DiscoveryAgent = await loadDiscoveryAgent();
  const origins = INSTANCE_ADDRESSES.map((address) => `http://${address}:${port}`);
  const path = '/';

  const viaRequest = (dispatcher: Requester, origin: string) => async (): Promise<void> => {
    const { statusCode, body } = await dispatcher.request({ origin, path, method: 'GET' });
    await body.dump();
    if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  };

  const clients: Array<{ name: string; make: () => { send: () => Promise<void>; close: () => Promise<void> } }> = [
    {
      name: 'undici-Pool',
      make: () => {
        const pool = new Pool(origins[0]!);
        return { send: viaRequest(pool, origins[0]!), close: () => pool.close() };
      },
    },
    {
      name: 'undici-BalancedPool',
      make: () => {
        const pool = new BalancedPool(origins);
        return { send: viaRequest(pool, origins[0]!), close: () => pool.close() };
      },
    },
    {
      name: 'undici-Agent+dns-interceptor',
      make: () => {
        const agent = new Agent().compose(
          interceptors.dns({ lookup: interceptorLookup(caresResolver(config.dnsServer)), dualStack: false, affinity: 4 }),
        );
        return { send: viaRequest(agent, `http://${API_NAME}:${port}`), close: () => agent.close() };
      },
    },
    {
      name: 'fetch',
      make: () => ({
        send: async () => {
          const response = await fetch(`${origins[0]!}${path}`);
          await response.arrayBuffer();
          if (response.status !== 200) throw new Error(`status ${response.status}`);
        },
        close: async () => {},
      }),
    },
  ];
  if (DiscoveryAgent !== undefined) {
    clients.unshift({
      name: 'signpost-DiscoveryAgent',
      make: () => {
        const agent = new DiscoveryAgent({
          namespaces: { [ZONE_A]: { via: 'dns', family: 4, port } },
          dns: { servers: [config.dnsServer] },
        });
        return { send: viaRequest(agent, `http://${API_NAME}`), close: () => agent.close() };
      },
    });
  } else {
    log('throughput: DiscoveryAgent not found in dist: skipped');
  }

  const results: Record<string, RoundStats[]> = {};
  for (let round = 0; round < sizes.rounds; round++) {
    for (const client of rotate(clients, round)) {
      const { send: sendOne, close } = client.make();
      const rps = await drive(sendOne, sizes.inFlight, sizes.throughputWarmupMs, sizes.throughputWindowMs);
      await close();
      (results[client.name] ??= []).push({ p50: Number.NaN, p99: Number.NaN, opsPerSec: rps });
    }
    log(`throughput round ${round + 1}/${sizes.rounds} done`);
  }
  return { results, spread: {} };
}

// ---------------------------------------------------------------- main

process.on('message', (message: ParentMessage) => {
  if (message.type === 'ack') {
    acks.get(message.label)?.();
    acks.delete(message.label);
    return;
  }
  void (async () => {
    const config = message.config;
    let data: unknown;
    switch (config.part) {
      case 'latency':
        data = await latency(config);
        break;
      case 'cold':
        data = await cold(config);
        break;
      case 'scale':
        data = await scale(config);
        break;
      case 'heap':
        data = await heap(config);
        break;
      case 'registry':
        data = await registry(config);
        break;
      case 'throughput':
        data = await throughput(config);
        break;
    }
    send({ type: 'result', data: { data, sink: sinkSeen() } });
    process.disconnect?.();
  })().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
});
