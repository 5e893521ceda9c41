/**
 * The request comparisons of `npm run bench` (orchestrator side): like-for-like (a name with one
 * instance behind DiscoveryAgent against an undici Pool to the same instance) and, when `haproxy`
 * is on the PATH, the load-balancer hop signpost replaces (signpost straight to three instances
 * against an undici Pool through a local HAProxy over the same three). Writes nothing itself:
 * run.ts puts the summary into results.json and the chart into requests.svg.
 */
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findHaproxy, startHaproxy, type HaproxyHandle } from './haproxy.ts';
import { spread, type Spread } from './measure.ts';
import type { ClientRound, RequestsChildConfig, RequestsChildResult } from './requests-client.ts';

const here = dirname(fileURLToPath(import.meta.url));

export interface RequestsOptions {
  readonly port: number;
  readonly addresses: readonly string[];
  readonly rounds: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly inFlight: number;
  /** Skip HAProxy even when it is installed. */
  readonly noHaproxy?: boolean;
}

interface ClientSummary {
  readonly reqPerSec: Spread;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  /** CPU per request, client plus proxy, in microseconds. */
  readonly cpuUsPerRequest: Spread;
}

export interface RequestsResults {
  readonly inFlight: number;
  readonly rounds: number;
  /**
   * signpost's own cost per request without any network (a dispatcher that answers at once,
   * alone and behind DiscoveryAgent), in nanoseconds: the stable part of the like-for-like gap.
   */
  readonly ownCost: { directNs: Spread; signpostNs: Spread; addedNs: Spread };
  readonly likeForLike: {
    readonly clients: Record<string, ClientSummary>;
    /** signpost's req/s ÷ the Pool's, per round. */
    readonly ratioPerRound: number[];
    readonly ratio: Spread;
    /**
     * Both clients at once, each with `inFlight` requests in flight, per round: signpost's
     * completions ÷ the Pool's. Load from elsewhere hits both alike, so it barely moves; both share
     * one event loop and one server, so it shows signpost adds no waiting of its own (its CPU cost
     * is `ownCost`).
     */
    readonly headToHeadPerRound: number[];
    readonly headToHead: Spread;
    readonly goal: string;
  };
  readonly loadBalancer:
    | {
        readonly haproxy: string;
        readonly clients: Record<string, ClientSummary>;
        /** signpost direct ÷ through HAProxy, per round: req/s, p50, p99, CPU per request. */
        readonly ratios: { reqPerSec: Spread; p50: Spread; p99: Spread; cpuPerRequest: Spread };
      }
    | { readonly skipped: string };
}

function summarize(rounds: ClientRound[]): ClientSummary {
  return {
    reqPerSec: spread(rounds.map((r) => r.reqPerSec)),
    p50Ms: spread(rounds.map((r) => r.p50Ms)),
    p99Ms: spread(rounds.map((r) => r.p99Ms)),
    cpuUsPerRequest: spread(rounds.map((r) => r.clientCpuUs + r.proxyCpuUs)),
  };
}

function perRound(a: ClientRound[], b: ClientRound[], value: (r: ClientRound) => number): number[] {
  return a.map((r, i) => value(r) / value(b[i]!));
}

export async function runRequests(options: RequestsOptions, say: (text: string) => void): Promise<RequestsResults> {
  const binary = options.noHaproxy ? undefined : findHaproxy();
  let haproxy: HaproxyHandle | undefined;
  if (binary !== undefined) {
    haproxy = await startHaproxy(binary, options.addresses, options.port);
    say(`HAProxy: ${haproxy.version}, pid ${haproxy.pid}, port ${haproxy.port}`);
  } else say('HAProxy not on the PATH: the load-balancer comparison is skipped (apt-get install haproxy to run it)');
  try {
    const config: RequestsChildConfig = {
      port: options.port,
      addresses: options.addresses,
      rounds: options.rounds,
      warmupMs: options.warmupMs,
      windowMs: options.windowMs,
      slices: 6,
      inFlight: options.inFlight,
      haproxy: haproxy && { port: haproxy.port, pid: haproxy.pid },
    };
    const raw = await new Promise<RequestsChildResult>((resolve, reject) => {
      const child = fork(join(here, 'requests-client.ts'), [], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let result: RequestsChildResult | undefined;
      child.on('message', (message: { type: string; text?: string; result?: RequestsChildResult }) => {
        if (message.type === 'log') say(message.text!);
        else if (message.type === 'result') result = message.result;
      });
      child.once('error', reject);
      child.once('exit', (code) => (result ? resolve(result) : reject(new Error(`request comparisons exited with ${code}`))));
      child.send(config);
    });
    const pool = raw.likeForLike['undici-Pool']!;
    const signpost = raw.likeForLike['signpost-DiscoveryAgent']!;
    const ratioPerRound = perRound(signpost, pool, (r) => r.reqPerSec);
    let loadBalancer: RequestsResults['loadBalancer'] = { skipped: 'haproxy is not on the PATH' };
    if (raw.loadBalancer !== undefined && haproxy !== undefined) {
      const direct = raw.loadBalancer['signpost-direct']!;
      const proxied = raw.loadBalancer['undici-Pool-via-HAProxy']!;
      loadBalancer = {
        haproxy: haproxy.version,
        clients: Object.fromEntries(Object.entries(raw.loadBalancer).map(([name, rounds]) => [name, summarize(rounds)])),
        ratios: {
          reqPerSec: spread(perRound(direct, proxied, (r) => r.reqPerSec)),
          p50: spread(perRound(direct, proxied, (r) => r.p50Ms)),
          p99: spread(perRound(direct, proxied, (r) => r.p99Ms)),
          cpuPerRequest: spread(perRound(direct, proxied, (r) => r.clientCpuUs + r.proxyCpuUs)),
        },
      };
    }
    return {
      inFlight: options.inFlight,
      rounds: options.rounds,
      ownCost: {
        directNs: spread(raw.ownCost.direct),
        signpostNs: spread(raw.ownCost.signpost),
        addedNs: spread(raw.ownCost.signpost.map((s, i) => s - raw.ownCost.direct[i]!)),
      },
      likeForLike: {
        clients: Object.fromEntries(Object.entries(raw.likeForLike).map(([name, rounds]) => [name, summarize(rounds)])),
        ratioPerRound,
        ratio: spread(ratioPerRound),
        headToHeadPerRound: raw.headToHead,
        headToHead: spread(raw.headToHead),
        goal: '≥ 0.95× the undici Pool',
      },
      loadBalancer,
    };
  } finally {
    await haproxy?.close();
  }
}

const f2 = (n: number): string => n.toFixed(2);
const range = (s: Spread, digits = 2): string => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

export function renderRequestsTable(r: RequestsResults): string {
  const lines = [
    `\nRequests, ${r.inFlight} in flight, ${r.rounds} rounds (median (min–max) over rounds)`,
    `like-for-like, one instance: signpost ÷ undici Pool = ${range(r.likeForLike.ratio, 3)}× (goal ${r.likeForLike.goal})`,
    `  per round: ${r.likeForLike.ratioPerRound.map((x) => `${x.toFixed(3)}×`).join('  ')}`,
    `  head to head (both at once): ${range(r.likeForLike.headToHead, 3)}×, per round ${r.likeForLike.headToHeadPerRound.map((x) => `${x.toFixed(3)}×`).join('  ')}`,
    `  signpost's own cost per request (no network): ${range(r.ownCost.addedNs, 0)} ns added to ${range(r.ownCost.directNs, 0)} ns`,
  ];
  for (const [name, c] of Object.entries(r.likeForLike.clients)) {
    lines.push(`  ${name.padEnd(28)} ${Math.round(c.reqPerSec.median)}/s  p50 ${f2(c.p50Ms.median)} ms  p99 ${f2(c.p99Ms.median)} ms  CPU ${f2(c.cpuUsPerRequest.median)} µs/req`);
  }
  const lb = r.loadBalancer;
  if ('skipped' in lb) lines.push(`load-balancer hop: skipped (${lb.skipped})`);
  else {
    lines.push(`load-balancer hop (${lb.haproxy}), three instances: signpost direct ÷ undici Pool through HAProxy`);
    lines.push(`  req/s ${range(lb.ratios.reqPerSec)}×   p50 ${range(lb.ratios.p50)}×   p99 ${range(lb.ratios.p99)}×   CPU/request (client + proxy) ${range(lb.ratios.cpuPerRequest)}×`);
    for (const [name, c] of Object.entries(lb.clients)) {
      lines.push(`  ${name.padEnd(28)} ${Math.round(c.reqPerSec.median)}/s  p50 ${f2(c.p50Ms.median)} ms  p99 ${f2(c.p99Ms.median)} ms  CPU ${f2(c.cpuUsPerRequest.median)} µs/req`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A small bar chart: the like-for-like ratio per round, and signpost ÷ HAProxy per figure. */
export function renderRequestsSvg(r: RequestsResults): string {
  const width = 760;
  const left = 250;
  const barWidth = width - left - 90;
  const rows: Array<{ label: string; value: number; min?: number; max?: number; text: string; line?: number }> = [];
  r.likeForLike.ratioPerRound.forEach((ratio, i) => rows.push({ label: `like-for-like, round ${i + 1}`, value: ratio, text: `${ratio.toFixed(3)}×`, line: 0.95 }));
  const h = r.likeForLike.headToHead;
  rows.push({ label: 'like-for-like, head to head', value: h.median, min: h.min, max: h.max, text: `${h.median.toFixed(3)}×`, line: 0.95 });
  const lb = r.loadBalancer;
  if (!('skipped' in lb)) {
    const add = (label: string, s: Spread): void => void rows.push({ label, value: s.median, min: s.min, max: s.max, text: `${s.median.toFixed(2)}×`, line: 1 });
    add('direct ÷ HAProxy: req/s', lb.ratios.reqPerSec);
    add('direct ÷ HAProxy: p50 latency', lb.ratios.p50);
    add('direct ÷ HAProxy: p99 latency', lb.ratios.p99);
    add('direct ÷ HAProxy: CPU per request', lb.ratios.cpuPerRequest);
  }
  const scale = Math.max(2, ...rows.map((row) => row.max ?? row.value));
  const x = (v: number): number => left + (v / scale) * barWidth;
  const height = 60 + rows.length * 26;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="20" y="24" font-size="14" font-weight="bold">signpost requests: like-for-like (goal ≥ 0.95×) and the load-balancer hop</text>`,
    `<text x="20" y="42" fill="#555">${r.inFlight} in flight, ${r.rounds} rounds; ratios of signpost to its peer measured in the same round (lower is better for latency and CPU)</text>`,
  ];
  rows.forEach((row, i) => {
    const y = 56 + i * 26;
    parts.push(`<text x="${left - 8}" y="${y + 14}" text-anchor="end">${row.label}</text>`);
    parts.push(`<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(row.value) - left)}" height="16" fill="#2b6cb0"/>`);
    if (row.min !== undefined && row.max !== undefined) parts.push(`<line x1="${x(row.min)}" x2="${x(row.max)}" y1="${y + 11}" y2="${y + 11}" stroke="#111"/>`);
    if (row.line !== undefined) parts.push(`<line x1="${x(row.line)}" x2="${x(row.line)}" y1="${y}" y2="${y + 22}" stroke="#c53030" stroke-dasharray="3,2"/>`);
    parts.push(`<text x="${x(Math.max(row.value, row.max ?? 0)) + 6}" y="${y + 15}">${row.text}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
