/**
 * The measuring side of the request comparisons (forked by requests.ts, `--expose-gc`):
 *
 * - like-for-like: a name with one instance behind DiscoveryAgent against an undici Pool to that
 *   same instance, `inFlight` requests in flight;
 * - the load-balancer hop: signpost going straight to the three instances against an undici Pool
 *   going through a local HAProxy over the same three, when HAProxy runs.
 *
 * Clients of one comparison run in alternating slices of the round's window (order flipped every
 * slice), so a burst of load from elsewhere on the machine hits both alike; every ratio is
 * computed inside its round.
 */
import { readFileSync } from 'node:fs';
import { Dispatcher, Pool } from 'undici';
import { DiscoveryAgent } from '../dist/index.js';

export interface RequestsChildConfig {
  readonly port: number;
  readonly addresses: readonly string[];
  readonly rounds: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly slices: number;
  readonly inFlight: number;
  /** HAProxy's port and pid, when it runs. */
  readonly haproxy: { port: number; pid: number } | undefined;
}

/** One client in one round. */
export interface ClientRound {
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU per request, in microseconds: the client process, and the proxy when there is one. */
  readonly clientCpuUs: number;
  readonly proxyCpuUs: number;
}

export interface RequestsChildResult {
  /** Head to head: both like-for-like clients at `inFlight` each, at the same time, per round: signpost's completions ÷ the Pool's. */
  readonly headToHead: number[];
  /** Nanoseconds per request without any network: a dispatcher that answers at once, alone and behind DiscoveryAgent, per round. */
  readonly ownCost: { direct: number[]; signpost: number[] };
  readonly likeForLike: Record<string, ClientRound[]>;
  readonly loadBalancer: Record<string, ClientRound[]> | undefined;
}

interface Client {
  readonly name: string;
  readonly send: () => Promise<void>;
  readonly close: () => Promise<void>;
  readonly proxied: boolean;
}

const NAME = 'api.requests.bench';

function proxyCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function viaRequest(dispatcher: Dispatcher, origin: string, headers?: Record<string, string>): () => Promise<void> {
  return async () => {
    const { statusCode, body } = await dispatcher.request({ origin, path: '/', method: 'GET', ...(headers && { headers }) });
    await body.dump();
    if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  };
}

interface Tally {
  requests: number;
  ms: number;
  latencies: number[];
  cpuUs: number;
  proxyS: number;
}

/** Closed loop for `ms`: `inFlight` workers, each sending its next request when the last ended. */
async function run(client: Client, ms: number, inFlight: number, tally: Tally | undefined, proxyPid: number | undefined): Promise<void> {
  const start = performance.now();
  const end = start + ms;
  const cpu = process.cpuUsage();
  const proxyBefore = client.proxied && proxyPid !== undefined ? proxyCpuSeconds(proxyPid) : 0;
  let requests = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await client.send();
        requests++;
        tally?.latencies.push(performance.now() - t);
      }
    }),
  );
  if (tally === undefined) return;
  const used = process.cpuUsage(cpu);
  tally.requests += requests;
  tally.ms += performance.now() - start;
  tally.cpuUs += used.user + used.system;
  if (client.proxied && proxyPid !== undefined) tally.proxyS += proxyCpuSeconds(proxyPid) - proxyBefore;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** One round of a comparison: warm-up, then alternating slices. */
async function round(clients: Client[], config: RequestsChildConfig, index: number): Promise<Record<string, ClientRound>> {
  for (const client of clients) await run(client, config.warmupMs / clients.length, config.inFlight, undefined, undefined);
  const tallies = clients.map((): Tally => ({ requests: 0, ms: 0, latencies: [], cpuUs: 0, proxyS: 0 }));
  const slice = config.windowMs / config.slices;
  for (let s = 0; s < config.slices; s++) {
    const order = (s + index) % 2 === 0 ? clients.map((_, i) => i) : clients.map((_, i) => clients.length - 1 - i);
    for (const i of order) await run(clients[i]!, slice, config.inFlight, tallies[i], config.haproxy?.pid);
  }
  const out: Record<string, ClientRound> = {};
  clients.forEach((client, i) => {
    const t = tallies[i]!;
    const latencies = t.latencies.sort((a, b) => a - b);
    out[client.name] = {
      reqPerSec: t.requests / (t.ms / 1000),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      clientCpuUs: t.cpuUs / t.requests,
      proxyCpuUs: (t.proxyS * 1e6) / t.requests,
    };
  });
  return out;
}

/** Both clients at once for `ms`: each one's completions (load from elsewhere hits both alike). */
async function together(clients: Client[], ms: number, inFlight: number): Promise<number[]> {
  const tallies = clients.map((): Tally => ({ requests: 0, ms: 0, latencies: [], cpuUs: 0, proxyS: 0 }));
  await Promise.all(clients.map((client, i) => run(client, ms, inFlight, tallies[i], undefined)));
  return tallies.map((t) => t.requests);
}

async function compare(
  make: () => Client[],
  config: RequestsChildConfig,
  label: string,
  headToHead?: number[],
): Promise<Record<string, ClientRound[]>> {
  const results: Record<string, ClientRound[]> = {};
  for (let r = 0; r < config.rounds; r++) {
    const clients = make();
    try {
      const stats = await round(clients, config, r);
      for (const [name, s] of Object.entries(stats)) (results[name] ??= []).push(s);
      if (headToHead !== undefined) {
        const [first, second] = await together(clients, config.windowMs / 2, config.inFlight);
        headToHead.push(second! / first!);
      }
    } finally {
      for (const client of clients) await client.close();
    }
    process.send!({ type: 'log', text: `${label} round ${r + 1}/${config.rounds} done` });
  }
  return results;
}

/** A dispatcher that answers every request at once: what is left is the cost of the code in front of it. */
class Instant extends Dispatcher {
  override dispatch(_opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const controller = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
    handler.onRequestStart?.(controller, null);
    handler.onResponseStart?.(controller, 200, {}, 'OK');
    handler.onResponseData?.(controller, CHUNK);
    handler.onResponseEnd?.(controller, {});
    return true;
  }
  override close(): Promise<void> {
    return Promise.resolve();
  }
  override destroy(): Promise<void> {
    return Promise.resolve();
  }
}

const CHUNK = Buffer.from('ok');
const NOOP: Dispatcher.DispatchHandler = {
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError(_controller, error) {
    throw error;
  },
};

/** signpost's own cost per request, in nanoseconds: the same dispatch, alone and behind DiscoveryAgent. */
async function ownCost(rounds: number): Promise<{ direct: number[]; signpost: number[] }> {
  const direct = new Instant();
  const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: [{ address: '127.0.0.2', port: 80 }] } }, factory: () => new Instant() });
  await agent.discovery.resolve(NAME);
  const time = (dispatcher: Dispatcher, origin: string, n: number): number => {
    const opts = { origin, path: '/', method: 'GET' };
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) dispatcher.dispatch(opts, NOOP);
    return Number(process.hrtime.bigint() - start) / n;
  };
  const out = { direct: [] as number[], signpost: [] as number[] };
  for (let r = 0; r < rounds + 2; r++) {
    const a = time(direct, 'http://127.0.0.2', 100_000);
    const b = time(agent, `http://${NAME}`, 100_000);
    if (r < 2) continue;
    out.direct.push(a);
    out.signpost.push(b);
  }
  await agent.close();
  return out;
}

async function main(config: RequestsChildConfig): Promise<RequestsChildResult> {
  const cost = await ownCost(config.rounds);
  const headToHead: number[] = [];
  const [first] = config.addresses;
  const one = `http://${first}:${config.port}`;
  const likeForLike = await compare(
    () => {
      const pool = new Pool(one);
      const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: [{ address: first!, port: config.port }] } } });
      return [
        { name: 'undici-Pool', send: viaRequest(pool, one), close: () => pool.close(), proxied: false },
        { name: 'signpost-DiscoveryAgent', send: viaRequest(agent, `http://${NAME}`), close: () => agent.close(), proxied: false },
      ];
    },
    config,
    'like-for-like',
    headToHead,
  );
  let loadBalancer: Record<string, ClientRound[]> | undefined;
  if (config.haproxy !== undefined) {
    const proxy = `http://127.0.0.1:${config.haproxy.port}`;
    loadBalancer = await compare(
      () => {
        const agent = new DiscoveryAgent({
          services: { [NAME]: { via: 'static', instances: config.addresses.map((address) => ({ address, port: config.port })) } },
        });
        const pool = new Pool(proxy);
        return [
          { name: 'signpost-direct', send: viaRequest(agent, `http://${NAME}`), close: () => agent.close(), proxied: false },
          { name: 'undici-Pool-via-HAProxy', send: viaRequest(pool, proxy, { host: NAME }), close: () => pool.close(), proxied: true },
        ];
      },
      config,
      'load balancer',
    );
  }
  return { ownCost: cost, headToHead, likeForLike, loadBalancer };
}

process.once('message', (config: RequestsChildConfig) => {
  main(config).then(
    (result) => {
      process.send!({ type: 'result', result });
      process.disconnect?.();
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
