/**
 * What the bench runs on: its sizes (full and --quick), the DNS zones served by bind9 on
 * 127.0.0.1, the Cloud Map services served by the loopback fake, and the messages between the
 * orchestrator (run.ts) and the measuring child processes (client.ts, server.ts).
 */

export interface Sizes {
  /** Rounds of every latency and throughput scenario. */
  rounds: number;
  /** Calls per timing sample for synchronous operations (pickSync, Map floor, interceptor). */
  syncBatch: number;
  /** Calls per timing sample for awaited warm operations (resolve, cacheable-lookup hit, lookup). */
  asyncBatch: number;
  /** Samples per round. */
  samples: number;
  /** Samples per round of network-bound single calls (resolve4, cold resolve). */
  coldSamples: number;
  /** Throughput: warm-up and measured window per client per round, in ms. */
  throughputWarmupMs: number;
  throughputWindowMs: number;
  /** Requests in flight during throughput runs. */
  inFlight: number;
  /** Instances per service for the pick scale test. */
  scaleInstances: number[];
  /** Names cached for the heap test. */
  heapNames: number[];
  /** Registry load at steady state: names per client, window (ms), lookups per name per second. */
  steadyNames: number;
  steadyWindowMs: number;
  steadyRatePerName: number;
  /** Concurrent requests on one cold name. */
  burst: number;
}

export const FULL: Sizes = {
  rounds: 5,
  syncBatch: 10_000,
  asyncBatch: 1000,
  samples: 100,
  coldSamples: 200,
  throughputWarmupMs: 1000,
  throughputWindowMs: 3000,
  inFlight: 64,
  scaleInstances: [3, 30, 300],
  heapNames: [100, 10_000, 100_000],
  steadyNames: 10,
  steadyWindowMs: 30_000,
  steadyRatePerName: 100,
  burst: 1000,
};

export const QUICK: Sizes = {
  rounds: 2,
  syncBatch: 1000,
  asyncBatch: 100,
  samples: 20,
  coldSamples: 20,
  throughputWarmupMs: 200,
  throughputWindowMs: 500,
  inFlight: 64,
  scaleInstances: [3, 30, 300],
  heapNames: [100, 1000],
  steadyNames: 3,
  steadyWindowMs: 4000,
  steadyRatePerName: 50,
  burst: 1000,
};

/** TTL (seconds) of the names the steady-state registry load is counted on. */
export const STEADY_TTL_S = 2;

export const ZONE_A = 'a.bench'; // via: 'dns', family 4: latency
export const ZONE_ANY = 'any.bench'; // via: 'dns', default family (A and AAAA): registry load
export const ZONE_SRV = 'srv.bench'; // via: 'srv' at the name itself (Cloud Map style)
export const ZONE_HEAP = 'heap.bench'; // via: 'dns', family 4: heap per name
export const CM_NAMESPACE = 'cm.bench'; // via: 'cloudmap' (loopback fake)

/**
 * Names resolved (and picked) before a heap figure's first reading, and left out of it: V8
 * compiles and optimizes the resolve path over the first few hundred names, about 1 MB of code
 * that is no cost of a name (with one name warmed, it made up 900 B of a 1,000-name figure).
 */
export const HEAP_WARMUP_NAMES = 1000;

/** Resolves and picks the warm-up names, 128 at a time. */
export async function warmHeap(discovery: { resolve(name: string): Promise<unknown>; pickSync(name: string): unknown }): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < HEAP_WARMUP_NAMES) {
      const name = `w${next++}.${ZONE_HEAP}`;
      await discovery.resolve(name);
      discovery.pickSync(name);
    }
  };
  await Promise.all(Array.from({ length: 128 }, worker));
}

/** The three HTTP instances (a separate process) and the name that lists them. */
export const INSTANCE_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
export const API_NAME = `api.${ZONE_A}`;

/** Client names for the registry-load tests: one name set per client, so bind9 counts apart. */
export const STEADY_CLIENTS = ['signpost', 'cacheable-lookup', 'undici-dns', 'resolve4'] as const;
export type SteadyClient = (typeof STEADY_CLIENTS)[number];
export const steadyPrefix: Record<SteadyClient, string> = {
  signpost: 'ls',
  'cacheable-lookup': 'lc',
  'undici-dns': 'lu',
  resolve4: 'lr',
};
/** signpost's steady and burst names are under ZONE_ANY (default family: A and AAAA). */
export function steadyName(client: SteadyClient, i: number): string {
  return `${steadyPrefix[client]}${i}.${client === 'signpost' ? ZONE_ANY : ZONE_A}`;
}
export function burstName(client: SteadyClient): string {
  return `burst-${steadyPrefix[client]}.${client === 'signpost' ? ZONE_ANY : ZONE_A}`;
}

function ip(base: number, i: number): string {
  // 127.<base>.x.y: unique per record, never sent anywhere (A records only).
  return `127.${base}.${(i >> 8) & 255}.${i & 255}`;
}

/** Zone files (relative names), for Bind9.start. `coldNames` per cold scenario. */
export function zones(sizes: Sizes, coldNames: number, heapNames: number): Record<string, string> {
  const a: string[] = [];
  a.push(...INSTANCE_ADDRESSES.map((address) => `api 3600 IN A ${address}`));
  for (let i = 0; i < coldNames; i++) {
    for (let j = 0; j < 3; j++) a.push(`c${i} 60 IN A ${ip(10, i * 3 + j)}`);
  }
  const any: string[] = [];
  for (const client of STEADY_CLIENTS) {
    const lines = client === 'signpost' ? any : a;
    const prefix = steadyPrefix[client];
    for (let i = 0; i < sizes.steadyNames; i++) {
      for (let j = 0; j < 3; j++) lines.push(`${prefix}${i} ${STEADY_TTL_S} IN A ${ip(30, i * 3 + j)}`);
    }
    for (let j = 0; j < 3; j++) lines.push(`burst-${prefix} 60 IN A ${ip(31, j)}`);
  }
  const srv: string[] = [];
  for (let i = 0; i < coldNames; i++) {
    for (let j = 0; j < 3; j++) {
      srv.push(`s${i} 60 IN SRV 1 1 ${8000 + j} s${i}-${j}.${ZONE_SRV}.`);
      srv.push(`s${i}-${j} 60 IN A ${ip(40, i * 3 + j)}`);
    }
  }
  const heap: string[] = [];
  for (let i = 0; i < heapNames; i++) {
    for (let j = 0; j < 3; j++) heap.push(`h${i} 3600 IN A ${ip(50 + j, i)}`);
  }
  for (let i = 0; i < HEAP_WARMUP_NAMES; i++) {
    for (let j = 0; j < 3; j++) heap.push(`w${i} 3600 IN A ${ip(56 + j, i)}`);
  }
  return { [ZONE_A]: a.join('\n'), [ZONE_ANY]: any.join('\n'), [ZONE_SRV]: srv.join('\n'), [ZONE_HEAP]: heap.join('\n') };
}

/** What the orchestrator hands each measuring child. */
export interface ChildConfig {
  part: 'latency' | 'cold' | 'scale' | 'heap' | 'registry' | 'throughput' | 'cache' | 'lookup';
  sizes: Sizes;
  dnsServer: string;
  cloudMapEndpoint: string;
  coldNames: number;
  /** For heap: how many names this child caches. */
  heapNames?: number;
  /** For throughput: the port of the three instances. */
  httpPort?: number;
  /** For cold: one call of each client in turn rather than a block of each. */
  interleaved?: boolean;
}

export type ChildMessage =
  | { type: 'mark'; label: string }
  | { type: 'result'; data: unknown }
  | { type: 'log'; text: string };

export type ParentMessage = { type: 'config'; config: ChildConfig } | { type: 'ack'; label: string };

export const CLOUDMAP_CREDENTIALS = { accessKeyId: 'AKIDSIGNPOSTBENCH', secretAccessKey: 'signpost-bench-not-a-secret' };
export const CLOUDMAP_REGION = 'us-east-1';
