/**
 * From raw rounds to results.json, the printed table and the SVG chart. Every figure is the median
 * over rounds with the min and max; every ratio is computed inside a round (against the peer
 * measured in that same round) and then summarized the same way.
 */
import { spread, type RoundStats, type Spread } from './measure.ts';
import { STEADY_CLIENTS, STEADY_TTL_S, steadyPrefix, type Sizes, type SteadyClient } from './setup.ts';

export interface Raw {
  mode: 'full' | 'quick';
  date: string;
  durationS: number;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    node: string;
    undici: string;
    cacheableLookup: string;
    bind9: string;
    signpostCommit: string;
    platform: string;
  };
  sizes: Sizes;
  latency: Record<string, RoundStats[]>;
  scale: Record<string, RoundStats[]>;
  throughput: Record<string, RoundStats[]>;
  serverSpread: Record<string, number>;
  heap: Array<{ names: number; bytes: number; bytesPerName: number; cached: number }>;
  registry: {
    burstSettled: Record<SteadyClient, number>;
    burstErrors: Record<SteadyClient, Record<string, number>>;
    steadyLookups: Record<SteadyClient, number>;
    counts: Record<string, Record<string, { A: number; AAAA: number }>>;
  };
}

export interface LatencyResult {
  /** Nanoseconds per operation. */
  p50Ns: Spread;
  p99Ns: Spread;
  opsPerSec: Spread;
}

export interface Goal {
  goal: string;
  target: string;
  measured: string;
  met: boolean | null;
}

export interface LatencyRatio {
  of: string;
  to: string;
  ratio: Spread;
  note: string;
}

export interface Results {
  schema: 1;
  mode: 'full' | 'quick';
  date: string;
  durationS: number;
  machine: Raw['machine'];
  method: Sizes & { note: string };
  latency: Record<string, LatencyResult>;
  latencyRatios: Record<
    | 'pickSyncToFloor'
    | 'cacheableHitToPickSync'
    | 'interceptorWarmToPickSync'
    | 'coldAToResolve4'
    | 'coldSrvToResolveSrv'
    | 'coldCloudMapToSdk'
    | 'interceptorColdToResolve4',
    LatencyRatio
  >;
  throughput: Record<string, { reqPerSec: Spread; ratioToPool: Spread }>;
  serverSpread: Record<string, number>;
  scale: {
    pick: Record<string, { signpostNs: Spread; floorNs: Spread; ratioToFloor: Spread }>;
    heap: Array<{ names: number; bytesPerName: number; bytes: number; cached: number }>;
  };
  registry: {
    burst: Record<string, { concurrent: number; succeeded: number; errors: Record<string, number>; queriesA: number; queriesAAAA: number }>;
    steady: Record<
      string,
      {
        names: number;
        windowS: number;
        ttlS: number;
        lookupsPerNamePerSec: number;
        queriesPerNamePerMinute: { A: number; AAAA: number };
        queriesPerNamePerTtl: { A: number; AAAA: number };
      }
    >;
  };
  goals: Goal[];
}

function perRoundRatio(a: RoundStats[] | undefined, b: RoundStats[] | undefined, key: keyof RoundStats): Spread {
  if (!a || !b) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const ratios = a.map((round, i) => round[key] / b[i]![key]);
  return spread(ratios);
}

function summarize(rounds: RoundStats[]): LatencyResult {
  return {
    p50Ns: spread(rounds.map((r) => r.p50)),
    p99Ns: spread(rounds.map((r) => r.p99)),
    opsPerSec: spread(rounds.map((r) => r.opsPerSec)),
  };
}

const round3 = (n: number): number => (Number.isFinite(n) ? Math.round(n * 1000) / 1000 : n);
const roundSpread = (s: Spread): Spread => ({ median: round3(s.median), min: round3(s.min), max: round3(s.max) });

export function buildResults(raw: Raw): Results {
  const latency: Record<string, LatencyResult> = {};
  for (const [name, rounds] of Object.entries(raw.latency)) {
    const s = summarize(rounds);
    latency[name] = { p50Ns: roundSpread(s.p50Ns), p99Ns: roundSpread(s.p99Ns), opsPerSec: roundSpread(s.opsPerSec) };
  }
  const L = raw.latency;
  const ratio = (of: string, to: string, note: string, inverse = false) => ({
    of,
    to,
    ratio: roundSpread(inverse ? perRoundRatio(L[to], L[of], 'p50') : perRoundRatio(L[of], L[to], 'p50')),
    note,
  });
  const latencyRatios = {
    pickSyncToFloor: ratio('signpost-pickSync', 'map-floor', 'p50 of pickSync / p50 of the Map floor (goal ≤ 2)'),
    cacheableHitToPickSync: ratio('signpost-pickSync', 'cacheable-lookup-hit', 'p50 of cacheable-lookup hit / p50 of pickSync (goal ≥ 25)', true),
    interceptorWarmToPickSync: ratio('signpost-pickSync', 'undici-dns-interceptor-warm', 'p50 of the warm undici DNS interceptor / p50 of pickSync', true),
    coldAToResolve4: ratio('signpost-resolve-cold-A', 'cares-resolve4', 'p50 of a cold resolve (A) / p50 of c-ares resolve4, same names (goal ≤ 1.1)'),
    coldSrvToResolveSrv: ratio('signpost-resolve-cold-SRV', 'cares-resolveSrv', 'p50 of a cold resolve (SRV + targets) / p50 of c-ares resolveSrv'),
    coldCloudMapToSdk: ratio('signpost-resolve-cold-CloudMap', 'aws-sdk-DiscoverInstances', 'p50 of a cold resolve (Cloud Map) / p50 of one SDK DiscoverInstances'),
    interceptorColdToResolve4: ratio('undici-dns-interceptor-cold', 'cares-resolve4', 'p50 of the cold undici DNS interceptor / p50 of c-ares resolve4'),
  };

  const pool = raw.throughput['undici-Pool'];
  const throughput: Results['throughput'] = {};
  for (const [name, rounds] of Object.entries(raw.throughput)) {
    throughput[name] = {
      reqPerSec: roundSpread(spread(rounds.map((r) => r.opsPerSec))),
      ratioToPool: roundSpread(perRoundRatio(rounds, pool, 'opsPerSec')),
    };
  }

  const pick: Results['scale']['pick'] = {};
  for (const n of raw.sizes.scaleInstances) {
    const a = raw.scale[`signpost-pickSync-${n}`]!;
    const b = raw.scale[`map-floor-${n}`]!;
    pick[String(n)] = {
      signpostNs: roundSpread(spread(a.map((r) => r.p50))),
      floorNs: roundSpread(spread(b.map((r) => r.p50))),
      ratioToFloor: roundSpread(perRoundRatio(a, b, 'p50')),
    };
  }

  const { counts } = raw.registry;
  const burst: Results['registry']['burst'] = {};
  const steady: Results['registry']['steady'] = {};
  const windowS = raw.sizes.steadyWindowMs / 1000;
  for (const client of STEADY_CLIENTS) {
    const burstAt = counts['burst-done'] ?? {};
    const name = Object.keys(burstAt).find((n) => n.startsWith(`burst-`) && n.includes(prefixOf(client)))!;
    burst[client] = {
      concurrent: raw.sizes.burst,
      succeeded: raw.registry.burstSettled[client],
      errors: raw.registry.burstErrors[client] ?? {},
      queriesA: burstAt[name]?.A ?? Number.NaN,
      queriesAAAA: burstAt[name]?.AAAA ?? Number.NaN,
    };
    let a = 0;
    let aaaa = 0;
    const start = counts['steady-start'] ?? {};
    const end = counts['steady-end'] ?? {};
    for (const n of Object.keys(end)) {
      if (n.startsWith('burst-') || !n.startsWith(prefixOf(client))) continue;
      a += end[n]!.A - (start[n]?.A ?? 0);
      aaaa += end[n]!.AAAA - (start[n]?.AAAA ?? 0);
    }
    const names = raw.sizes.steadyNames;
    const perMinute = (q: number): number => round3(q / names / (windowS / 60));
    const perTtl = (q: number): number => round3(q / names / (windowS / STEADY_TTL_S));
    steady[client] = {
      names,
      windowS,
      ttlS: STEADY_TTL_S,
      lookupsPerNamePerSec: round3(raw.registry.steadyLookups[client] / names / windowS),
      queriesPerNamePerMinute: { A: perMinute(a), AAAA: perMinute(aaaa) },
      queriesPerNamePerTtl: { A: perTtl(a), AAAA: perTtl(aaaa) },
    };
  }

  const heap = raw.heap.map((h) => ({ names: h.names, bytesPerName: Math.round(h.bytesPerName), bytes: h.bytes, cached: h.cached }));
  const goals = evaluateGoals(latencyRatios, throughput, pick, heap, burst, steady, raw.sizes);

  return {
    schema: 1,
    mode: raw.mode,
    date: raw.date,
    durationS: raw.durationS,
    machine: raw.machine,
    method: {
      ...raw.sizes,
      note:
        'Medians over rounds with min and max; latency samples are batches of calls divided by the batch size; ratios are taken ' +
        'within each round against the peer measured in the same round, then summarized. See bench/README.md.',
    },
    latency,
    latencyRatios,
    throughput,
    serverSpread: raw.serverSpread,
    scale: { pick, heap },
    registry: { burst, steady },
    goals,
  };
}

function prefixOf(client: SteadyClient): string {
  return steadyPrefix[client];
}

const fmtRatio = (s: Spread): string => `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;

function evaluateGoals(
  ratios: Results['latencyRatios'],
  throughput: Results['throughput'],
  pick: Results['scale']['pick'],
  heap: Results['scale']['heap'],
  burst: Results['registry']['burst'],
  steady: Results['registry']['steady'],
  sizes: Sizes,
): Goal[] {
  const goals: Goal[] = [];
  const floor = ratios.pickSyncToFloor.ratio;
  goals.push({ goal: 'warm pickSync within 2× of the bare Map floor', target: '≤ 2×', measured: fmtRatio(floor), met: floor.median <= 2 });
  const hit = ratios.cacheableHitToPickSync.ratio;
  goals.push({ goal: "at least 25× faster than cacheable-lookup's hit", target: '≥ 25×', measured: fmtRatio(hit), met: hit.median >= 25 });
  const agent = throughput['signpost-DiscoveryAgent'];
  const interceptor = throughput['undici-Agent+dns-interceptor'];
  goals.push({
    goal: 'DiscoveryAgent ≥ 0.95× the raw undici Pool',
    target: '≥ 0.95×',
    measured: agent ? fmtRatio(agent.ratioToPool) : 'not measured (no DiscoveryAgent in dist)',
    met: agent ? agent.ratioToPool.median >= 0.95 : null,
  });
  goals.push({
    goal: 'DiscoveryAgent above Agent + DNS interceptor',
    target: '>',
    measured: agent && interceptor ? `${fmtRatio(agent.ratioToPool)} vs ${fmtRatio(interceptor.ratioToPool)}` : 'not measured',
    met: agent && interceptor ? agent.reqPerSec.median > interceptor.reqPerSec.median : null,
  });
  const b = burst.signpost!;
  goals.push({
    goal: `one upstream query per record type for ${sizes.burst} concurrent cold requests`,
    target: 'A 1, AAAA 1',
    measured: `A ${b.queriesA}, AAAA ${b.queriesAAAA}`,
    met: b.queriesA === 1 && b.queriesAAAA <= 1,
  });
  const s = steady.signpost!;
  goals.push({
    goal: 'at most one query per name per TTL at steady state',
    target: '≤ 1 per type',
    measured: `A ${s.queriesPerNamePerTtl.A}, AAAA ${s.queriesPerNamePerTtl.AAAA} per TTL (${s.queriesPerNamePerMinute.A} A/min at TTL ${s.ttlS} s)`,
    met: s.queriesPerNamePerTtl.A <= 1 && s.queriesPerNamePerTtl.AAAA <= 1,
  });
  const cold = ratios.coldAToResolve4.ratio;
  goals.push({ goal: 'cold resolve within 1.1× of c-ares resolve4', target: '≤ 1.1×', measured: fmtRatio(cold), met: cold.median <= 1.1 });
  const worstHeap = Math.max(...heap.map((h) => h.bytesPerName));
  goals.push({
    goal: 'at most 1 KiB of heap per cached name (3 instances)',
    target: '≤ 1024 B',
    measured: heap.map((h) => `${h.names}: ${h.bytesPerName} B`).join(', '),
    met: worstHeap <= 1024,
  });
  const counts = Object.keys(pick).map(Number).sort((x, y) => x - y);
  const first = pick[String(counts[0])]!.signpostNs.median;
  const last = pick[String(counts.at(-1))]!.signpostNs.median;
  goals.push({
    goal: `pick cost flat from ${counts[0]} to ${counts.at(-1)} instances`,
    target: '≤ 1.25× (flat)',
    measured: `${counts.map((n) => `${n}: ${pick[String(n)]!.signpostNs.median.toFixed(1)} ns`).join(', ')} (${(last / first).toFixed(2)}×)`,
    met: last / first <= 1.25,
  });
  return goals;
}

// ---------------------------------------------------------------- table

function ns(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (value < 1000) return `${value.toFixed(1)} ns`;
  if (value < 1e6) return `${(value / 1000).toFixed(1)} µs`;
  return `${(value / 1e6).toFixed(2)} ms`;
}
function num(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(1);
}
function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function renderTable(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(`signpost bench (${r.mode}), ${r.date}, ${r.durationS} s`);
  out.push(`${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, undici ${m.undici}, cacheable-lookup ${m.cacheableLookup}, ${m.bind9}`);
  out.push(`medians of ${r.method.rounds} rounds (min–max in results.json)`, '');
  out.push('Resolution latency');
  out.push(
    table(
      ['client', 'p50', 'p99', 'ops/s', 'p50 min–max'],
      Object.entries(r.latency).map(([name, l]) => [name, ns(l.p50Ns.median), ns(l.p99Ns.median), num(l.opsPerSec.median), `${ns(l.p50Ns.min)}–${ns(l.p50Ns.max)}`]),
    ),
  );
  out.push('', 'Latency ratios (per round, median (min–max))');
  out.push(table(['ratio', 'value', 'what'], Object.entries(r.latencyRatios).map(([k, v]) => [k, fmtRatio(v.ratio), v.note])));
  out.push('', `Request throughput (${r.method.inFlight} in flight, loopback, servers in another process)`);
  out.push(
    table(
      ['client', 'req/s', 'min–max', '× undici Pool'],
      Object.entries(r.throughput).map(([name, t]) => [name, num(t.reqPerSec.median), `${num(t.reqPerSec.min)}–${num(t.reqPerSec.max)}`, fmtRatio(t.ratioToPool)]),
    ),
  );
  out.push('', 'Scale: pickSync p50 by instances per service');
  out.push(
    table(
      ['instances', 'pickSync', 'Map floor', 'ratio'],
      Object.entries(r.scale.pick).map(([n, p]) => [n, ns(p.signpostNs.median), ns(p.floorNs.median), fmtRatio(p.ratioToFloor)]),
    ),
  );
  out.push('', 'Scale: heap per cached name (3 instances each, via DNS A from bind9)');
  out.push(table(['names', 'bytes/name', 'total'], r.scale.heap.map((h) => [String(h.names), String(h.bytesPerName), `${(h.bytes / 2 ** 20).toFixed(1)} MiB`])));
  out.push('', 'Registry load: queries that reached bind9');
  out.push(
    table(
      ['client', 'burst ok', `burst A`, 'burst AAAA', 'steady A /name/min', 'steady AAAA /name/min', 'A per TTL', 'lookups /name/s'],
      STEADY_CLIENTS.map((c) => {
        const b = r.registry.burst[c]!;
        const s = r.registry.steady[c]!;
        const errors = Object.entries(b.errors).map(([code, n]) => `${n} ${code}`).join(', ');
        return [c, `${b.succeeded}/${b.concurrent}${errors ? ` (${errors})` : ''}`, String(b.queriesA), String(b.queriesAAAA), String(s.queriesPerNamePerMinute.A), String(s.queriesPerNamePerMinute.AAAA), String(s.queriesPerNamePerTtl.A), String(s.lookupsPerNamePerSec)];
      }),
    ),
  );
  out.push('', 'Goals');
  out.push(table(['goal', 'target', 'measured', 'met'], r.goals.map((g) => [g.goal, g.target, g.measured, g.met === null ? 'n/a' : g.met ? 'yes' : 'NO'])));
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- SVG

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Bar {
  label: string;
  value: number;
  min: number;
  max: number;
  text: string;
  highlight: boolean;
}

/** One horizontal bar panel; `log` draws a log10 axis. Returns the SVG and its height. */
function panel(title: string, bars: Bar[], x: number, y: number, width: number, log: boolean, reference?: { value: number; label: string }): { svg: string; height: number } {
  const labelW = 230;
  const textW = 120;
  const rowH = 22;
  const plotW = width - labelW - textW;
  const values = bars.flatMap((b) => [b.value, b.max]).filter((v) => Number.isFinite(v) && v > 0);
  if (reference) values.push(reference.value);
  const hi = Math.max(...values, 1e-9);
  const lo = log ? Math.min(...values) / 2 : 0;
  const scale = (v: number): number => {
    if (!Number.isFinite(v) || v <= 0) return 0;
    if (!log) return (v / hi) * plotW;
    return ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  };
  const parts: string[] = [`<text x="${x}" y="${y + 14}" class="title">${esc(title)}</text>`];
  let row = y + 26;
  for (const bar of bars) {
    const w = Math.max(1, scale(bar.value));
    parts.push(`<text x="${x + labelW - 8}" y="${row + 15}" class="label" text-anchor="end">${esc(bar.label)}</text>`);
    parts.push(`<rect x="${x + labelW}" y="${row + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" class="${bar.highlight ? 'ours' : 'peer'}"/>`);
    if (Number.isFinite(bar.min) && Number.isFinite(bar.max)) {
      const x1 = x + labelW + scale(bar.min);
      const x2 = x + labelW + scale(bar.max);
      parts.push(`<line x1="${x1.toFixed(1)}" x2="${x2.toFixed(1)}" y1="${row + rowH / 2}" y2="${row + rowH / 2}" class="range"/>`);
    }
    const textX = x + labelW + Math.max(w, Number.isFinite(bar.max) ? scale(bar.max) : 0) + 6;
    parts.push(`<text x="${textX.toFixed(1)}" y="${row + 15}" class="value">${esc(bar.text)}</text>`);
    row += rowH;
  }
  if (reference) {
    const rx = x + labelW + scale(reference.value);
    parts.push(`<line x1="${rx.toFixed(1)}" x2="${rx.toFixed(1)}" y1="${y + 22}" y2="${row}" class="ref"/>`);
    parts.push(`<text x="${rx.toFixed(1)}" y="${row + 12}" class="note" text-anchor="middle">${esc(reference.label)}</text>`);
    row += 14;
  }
  return { svg: parts.join('\n'), height: row - y + 16 };
}

export function renderSvg(r: Results): string {
  const width = 760;
  const sections: Array<{ svg: string; height: number }> = [];
  let y = 50;
  const add = (build: (top: number) => { svg: string; height: number }): void => {
    const p = build(y);
    sections.push(p);
    y += p.height;
  };
  const isOurs = (name: string): boolean => name.startsWith('signpost');
  add((top) =>
    panel(
      'Resolution latency, p50 per call (log scale; line: min–max over rounds)',
      Object.entries(r.latency).map(([name, l]) => ({ label: name, value: l.p50Ns.median, min: l.p50Ns.min, max: l.p50Ns.max, text: ns(l.p50Ns.median), highlight: isOurs(name) })),
      20,
      top,
      width - 40,
      true,
    ),
  );
  add((top) =>
    panel(
      `Request throughput, × undici Pool to one instance (${r.method.inFlight} in flight)`,
      Object.entries(r.throughput).map(([name, t]) => ({
        label: name,
        value: t.ratioToPool.median,
        min: t.ratioToPool.min,
        max: t.ratioToPool.max,
        text: `${t.ratioToPool.median.toFixed(2)}× · ${num(t.reqPerSec.median)}/s`,
        highlight: isOurs(name),
      })),
      20,
      top,
      width - 40,
      false,
      { value: 1, label: 'Pool = 1' },
    ),
  );
  add((top) =>
    panel(
      'pickSync p50 by instances per service',
      Object.entries(r.scale.pick).flatMap(([n, p]) => [
        { label: `signpost, ${n} instances`, value: p.signpostNs.median, min: p.signpostNs.min, max: p.signpostNs.max, text: ns(p.signpostNs.median), highlight: true },
        { label: `Map floor, ${n} instances`, value: p.floorNs.median, min: p.floorNs.min, max: p.floorNs.max, text: ns(p.floorNs.median), highlight: false },
      ]),
      20,
      top,
      width - 40,
      false,
    ),
  );
  add((top) =>
    panel(
      'Heap per cached name (3 instances each)',
      r.scale.heap.map((h) => ({ label: `${h.names} names`, value: h.bytesPerName, min: Number.NaN, max: Number.NaN, text: `${h.bytesPerName} B`, highlight: true })),
      20,
      top,
      width - 40,
      false,
      { value: 1024, label: '1 KiB goal' },
    ),
  );
  add((top) =>
    panel(
      `Steady state: A queries per name per minute (TTL ${STEADY_TTL_S} s, ~${Math.round(r.registry.steady.signpost?.lookupsPerNamePerSec ?? 0)} lookups/name/s)`,
      STEADY_CLIENTS.map((c) => {
        const s = r.registry.steady[c]!;
        const q = s.queriesPerNamePerMinute;
        return { label: c, value: q.A, min: Number.NaN, max: Number.NaN, text: `A ${q.A}, AAAA ${q.AAAA}`, highlight: isOurs(c) };
      }),
      20,
      top,
      width - 40,
      true,
      { value: 60 / STEADY_TTL_S, label: 'one per TTL' },
    ),
  );
  add((top) =>
    panel(
      `Registry load: queries for ${r.registry.burst.signpost?.concurrent ?? 0} concurrent cold requests (A + AAAA; log scale)`,
      STEADY_CLIENTS.map((c) => {
        const b = r.registry.burst[c]!;
        return { label: c, value: b.queriesA + b.queriesAAAA, min: Number.NaN, max: Number.NaN, text: `A ${b.queriesA}, AAAA ${b.queriesAAAA}`, highlight: isOurs(c) };
      }),
      20,
      top,
      width - 40,
      true,
    ),
  );
  const m = r.machine;
  const height = y + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, sans-serif">`,
    '<style>.title{font-size:14px;font-weight:600;fill:#111}.label{font-size:12px;fill:#333}.value{font-size:11px;fill:#333}.note{font-size:10px;fill:#666}',
    '.ours{fill:#2b6cb0}.peer{fill:#a0aec0}.range{stroke:#111;stroke-width:1.5}.ref{stroke:#c53030;stroke-dasharray:4 3}</style>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="20" y="24" class="title" font-size="16">signpost vs peers (${esc(r.mode)} run, ${esc(r.date.slice(0, 10))})</text>`,
    `<text x="20" y="40" class="note">${esc(`${m.cpu}, ${m.cores} cores, Node ${m.node}, undici ${m.undici}; medians of ${r.method.rounds} rounds; blue: signpost`)}</text>`,
    ...sections.map((s) => s.svg),
    '</svg>',
    '',
  ].join('\n');
}
