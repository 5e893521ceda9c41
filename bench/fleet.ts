/**
 * The fleet simulation (`npm run bench -- --only fleet [--quick]`): many signpost processes
 * sharing one Cloud Map account, as AWS runs it.
 *
 * A scale model of 1,000 tasks × 10 names against the account's 1,000 DiscoverInstances calls a
 * second: `clients` Discovery instances (each its own CloudMapClient and AWS SDK client, as each
 * task has), `names` services each, against the loopback stand-in enforcing account-wide token
 * buckets scaled the same way (DiscoverInstances `budget`/s with bursts of 2 × budget,
 * DiscoverInstancesRevision 3 × budget/s, as the documented quotas are 1,000/2,000 and 3,000),
 * answering 429 RequestLimitExceeded beyond them.
 *
 * Phases: the fleet starts (every task within 2 s, as a deployment does), runs steady, then a
 * storm in which every call is throttled (another consumer of the account takes every token),
 * then recovers. An instance of some service changes every few seconds throughout; every client
 * keeps asking for every name (each ask must succeed: stale answers are served).
 *
 * With `newNames`, every task also starts using one new name in the middle of the storm: its
 * callers wait on a cold name while every call is throttled, and it must not add to the storm.
 *
 * Measured from the stand-in's log: calls a second per operation, the longest run of seconds
 * above the budget, the steady-state mean; from each client: how long after each change it saw
 * it; failed asks. Nothing leaves the machine; nothing is installed.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Discovery } from '../dist/index.js';
import { FakeCloudMap, TEST_CREDENTIALS, TEST_REGION, type FakeOperation } from '../test/fixtures/cloud-map.ts';

export interface FleetOptions {
  /** Processes in the fleet. */
  clients: number;
  /** Names each process uses (services sv0 … of one namespace). */
  names: number;
  /** The account's DiscoverInstances quota, calls a second (bursts of twice that). */
  budget: number;
  /** Whether the services have health checks (ECS creates custom ones): then every poll is a DiscoverInstances. */
  healthChecks: boolean;
  /** Phase lengths, in seconds. */
  warmupS: number;
  steadyS: number;
  stormS: number;
  recoveryS: number;
  /** A change every this many seconds. */
  changeEveryS: number;
  /** The processes start within this many seconds (a rolling deployment; 0: all at once). */
  startS: number;
  /** Whether every task starts using a new name in the middle of the storm. */
  newNames?: boolean;
  /** Progress lines go here. */
  say?: (text: string) => void;
}

export const FLEET_FULL: FleetOptions = {
  clients: 100,
  names: 10,
  budget: 100,
  healthChecks: false,
  warmupS: 25,
  steadyS: 60,
  stormS: 30,
  recoveryS: 90,
  changeEveryS: 5,
  startS: 20,
};

export const FLEET_QUICK: FleetOptions = { ...FLEET_FULL, steadyS: 20, stormS: 15, recoveryS: 30 };

const NAMESPACE = 'fleet.local';
/** How often every client asks for every name. */
const ASK_EVERY_MS = 1000;
/** Each service starts with this many instances. */
const INSTANCES = 3;

type Phase = 'warmup' | 'steady' | 'storm' | 'recovery';

interface Change {
  at: number;
  phase: Phase;
  service: string;
  kind: 'register' | 'deregister' | 'unhealthy' | 'healthy';
  instanceId: string;
  /** Whether the instance is to be served after the change. */
  present: boolean;
  /** Per client: ms after the change it was seen, or undefined. */
  seen: (number | undefined)[];
}

export interface FleetSecond {
  t: number;
  phase: Phase;
  /** Calls that reached the API, per operation, and how many of them were throttled. */
  discover: number;
  discoverThrottled: number;
  revision: number;
  revisionThrottled: number;
}

export interface FleetResult {
  options: Omit<FleetOptions, 'say'>;
  seconds: FleetSecond[];
  /** The longest run of seconds with more DiscoverInstances (Revision) calls than its quota. */
  longestAboveBudgetS: { discover: number; revision: number };
  /** Mean calls a second in the steady phase (and in the last third of recovery, once settled). */
  steadyMean: { discover: number; revision: number };
  settledMean: { discover: number; revision: number };
  peak: { discover: number; revision: number };
  storm: { meanDiscover: number; meanRevision: number };
  asks: number;
  failedAsks: number;
  /** Failed asks by error code, and by the phase they happened in. */
  failures: Record<string, number>;
  failuresByPhase: Record<Phase, number>;
  /**
   * Seconds until every client saw a change, by the phase the change was made in: as measured,
   * and not counting the storm (a change made before or during the storm cannot be seen while
   * every call is throttled).
   */
  visibility: Record<Phase, { changes: number; maxS: number; p99S: number; outsideStormMaxS: number; unseen: number }>;
  /**
   * With `newNames`: asks for the new names (not in `asks`), how many failed in the storm and after
   * it, and the longest time after the storm until a task's new name was answered.
   */
  newNames?: { asks: number; failedInStorm: number; failedAfterStorm: number; answeredAfterStormMaxS: number; unanswered: number };
  eventLoopDelayP99Ms: number;
  goals: { name: string; met: boolean; value: string }[];
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

export async function runFleet(options: FleetOptions): Promise<FleetResult> {
  const say = options.say ?? (() => {});
  const { clients, names, budget } = options;
  const fake = await FakeCloudMap.start({
    quota: {
      DiscoverInstances: { rate: budget, burst: 2 * budget },
      DiscoverInstancesRevision: { rate: 3 * budget, burst: 3 * budget },
    },
  });
  const services = Array.from({ length: names }, (_, i) => `sv${i}`);
  let nextAddress = 0;
  const address = (): string => {
    nextAddress += 1;
    return `10.${(nextAddress >> 16) & 255}.${(nextAddress >> 8) & 255}.${nextAddress & 255}`;
  };
  const live = new Map<string, string[]>();
  for (const service of services) {
    fake.createService(NAMESPACE, service, { healthCheck: options.healthChecks ? 'custom' : 'none' });
    const ids: string[] = [];
    for (let i = 0; i < INSTANCES; i++) {
      const id = `${service}-${i}`;
      fake.register(NAMESPACE, service, { id, attributes: { AWS_INSTANCE_IPV4: address(), AWS_INSTANCE_PORT: '8080' } });
      ids.push(id);
    }
    live.set(service, ids);
  }
  const newServices = options.newNames ? Array.from({ length: names }, (_, i) => `nw${i}`) : [];
  for (const service of newServices) {
    fake.createService(NAMESPACE, service, { healthCheck: options.healthChecks ? 'custom' : 'none' });
    for (let i = 0; i < INSTANCES; i++) {
      fake.register(NAMESPACE, service, { id: `${service}-${i}`, attributes: { AWS_INSTANCE_IPV4: address(), AWS_INSTANCE_PORT: '8080' } });
    }
  }

  // Each task loads the AWS SDK in its own process; here the first import would stall every
  // simulated task at once, so it is loaded before the clock starts.
  await Promise.all([import('@aws-sdk/client-servicediscovery'), import('@smithy/core/retry')]);
  const delay = monitorEventLoopDelay({ resolution: 20 });
  delay.enable();
  const t0 = performance.now();
  const now = (): number => performance.now() - t0;
  const phaseEnds: [Phase, number][] = [
    ['warmup', options.warmupS * 1000],
    ['steady', (options.warmupS + options.steadyS) * 1000],
    ['storm', (options.warmupS + options.steadyS + options.stormS) * 1000],
    ['recovery', (options.warmupS + options.steadyS + options.stormS + options.recoveryS) * 1000],
  ];
  const phaseAt = (t: number): Phase => phaseEnds.find(([, end]) => t < end)?.[0] ?? 'recovery';
  const total = phaseEnds.at(-1)![1];

  const changes: Change[] = [];
  const discoveries: Discovery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  let asks = 0;
  let failedAsks = 0;
  const failures: Record<string, number> = {};
  const failuresByPhase: Record<Phase, number> = { warmup: 0, steady: 0, storm: 0, recovery: 0 };
  let stopped = false;
  const fresh = { asks: 0, failedInStorm: 0, failedAfterStorm: 0, answeredAt: new Array<number | undefined>(clients).fill(undefined) };

  for (let c = 0; c < clients; c++) {
    const discovery = new Discovery({
      namespaces: { [NAMESPACE]: { via: 'cloudmap' } },
      cloudMap: { endpoint: fake.endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS },
      zoneAffinity: false,
    });
    discoveries.push(discovery);
    discovery.onChange(({ name, instances }) => {
      if (instances.length === 0) return;
      const service = name.slice(0, name.indexOf('.'));
      const t = now();
      for (let k = changes.length - 1; k >= 0; k--) {
        const change = changes[k]!;
        if (change.service !== service || change.seen[c] !== undefined) continue;
        if (instances.some((i) => i.id === change.instanceId) === change.present) change.seen[c] = t - change.at;
      }
    });
    // The tasks start within startS seconds, as a rolling deployment starts them, and then ask
    // for each name every second.
    const ask = (): void => {
      if (stopped) return;
      for (const service of services) {
        asks += 1;
        discovery.resolve(`${service}.${NAMESPACE}`).catch((error: unknown) => {
          if (stopped) return;
          failedAsks += 1;
          failuresByPhase[phaseAt(now())] += 1;
          const code = (error as { code?: string }).code ?? 'unknown';
          failures[code] = (failures[code] ?? 0) + 1;
        });
      }
      later(ASK_EVERY_MS, ask);
    };
    later(Math.random() * options.startS * 1000, ask);
    if (options.newNames) {
      // A new name, first asked for between a fifth and four fifths into the storm.
      const name = `${newServices[c % newServices.length]!}.${NAMESPACE}`;
      const askNew = (): void => {
        if (stopped) return;
        fresh.asks += 1;
        discovery.resolve(name).then(
          () => (fresh.answeredAt[c] ??= now()),
          () => {
            if (stopped) return;
            if (phaseAt(now()) === 'storm') fresh.failedInStorm += 1;
            else fresh.failedAfterStorm += 1;
          },
        );
        later(ASK_EVERY_MS, askNew);
      };
      const stormStartMs = (options.warmupS + options.steadyS) * 1000;
      later(stormStartMs + options.stormS * 1000 * (0.2 + 0.6 * Math.random()), askNew);
    }
  }

  // Changes: a new instance, then one gone, then (with health checks) one unhealthy and healthy again.
  let changeNo = 0;
  const change = (): void => {
    if (stopped || now() > total - 15_000) return;
    const service = services[changeNo % services.length]!;
    const ids = live.get(service)!;
    const kinds: Change['kind'][] = options.healthChecks ? ['register', 'unhealthy', 'healthy', 'deregister'] : ['register', 'deregister'];
    const kind = kinds[Math.floor(changeNo / services.length) % kinds.length]!;
    changeNo += 1;
    let instanceId: string;
    let present: boolean;
    if (kind === 'register') {
      instanceId = `${service}-n${changeNo}`;
      fake.register(NAMESPACE, service, { id: instanceId, attributes: { AWS_INSTANCE_IPV4: address(), AWS_INSTANCE_PORT: '8080' } });
      ids.push(instanceId);
      present = true;
    } else if (kind === 'deregister') {
      instanceId = ids.shift()!;
      fake.deregister(NAMESPACE, service, instanceId);
      present = false;
    } else {
      instanceId = ids[0]!;
      fake.setHealth(NAMESPACE, service, instanceId, kind === 'unhealthy' ? 'UNHEALTHY' : 'HEALTHY');
      present = kind === 'healthy';
    }
    const at = now();
    changes.push({ at, phase: phaseAt(at), service, kind, instanceId, present, seen: new Array<number | undefined>(clients).fill(undefined) });
    later(options.changeEveryS * 1000, change);
  };
  later(options.warmupS * 1000 * 0.5, change);

  // The storm.
  later(phaseEnds[1]![1], () => {
    say(`storm: every call throttled for ${options.stormS} s`);
    fake.storm(true);
  });
  later(phaseEnds[2]![1], () => {
    say('storm over: recovery');
    fake.storm(false);
  });
  for (let s = 10; s * 1000 < total; s += 10) later(s * 1000, () => say(`${s} s of ${total / 1000} (${phaseAt(s * 1000)}), ${fake.requests.length} calls so far`));
  await new Promise<void>((resolve) => later(total, resolve));
  stopped = true;
  for (const timer of timers) clearTimeout(timer);
  delay.disable();
  await Promise.all(discoveries.map((d) => d.close()));
  await fake.close();

  // Per-second series, from the stand-in's log.
  const seconds: FleetSecond[] = Array.from({ length: Math.ceil(total / 1000) }, (_, t) => ({
    t,
    phase: phaseAt(t * 1000),
    discover: 0,
    discoverThrottled: 0,
    revision: 0,
    revisionThrottled: 0,
  }));
  for (const call of fake.requests) {
    const second = seconds[Math.floor((call.at - t0) / 1000)];
    if (second === undefined) continue;
    const op: FakeOperation = call.operation;
    if (op === 'DiscoverInstances') {
      second.discover += 1;
      if (call.status === 429) second.discoverThrottled += 1;
    } else {
      second.revision += 1;
      if (call.status === 429) second.revisionThrottled += 1;
    }
  }
  const longest = (key: 'discover' | 'revision', limit: number): number => {
    let run = 0;
    let best = 0;
    for (const s of seconds) {
      run = s[key] > limit ? run + 1 : 0;
      best = Math.max(best, run);
    }
    return best;
  };
  const mean = (phase: Phase, key: 'discover' | 'revision', from = 0): number => {
    const list = seconds.filter((s) => s.phase === phase).slice(from);
    return list.length === 0 ? 0 : list.reduce((sum, s) => sum + s[key], 0) / list.length;
  };
  const recoveryLength = seconds.filter((s) => s.phase === 'recovery').length;
  const visibility = {} as FleetResult['visibility'];
  const [stormStart, stormEnd] = [phaseEnds[1]![1], phaseEnds[2]![1]];
  const outsideStorm = (c: Change, seen: number): number =>
    seen - Math.max(0, Math.min(c.at + seen, stormEnd) - Math.max(c.at, stormStart));
  for (const phase of ['warmup', 'steady', 'storm', 'recovery'] as Phase[]) {
    const list = changes.filter((c) => c.phase === phase);
    const all = list.flatMap((c) => c.seen.filter((s): s is number => s !== undefined));
    const outside = list.flatMap((c) => c.seen.filter((s): s is number => s !== undefined).map((s) => outsideStorm(c, s)));
    visibility[phase] = {
      changes: list.length,
      maxS: round1(Math.max(0, ...all) / 1000),
      p99S: round1(quantile(all, 0.99) / 1000),
      outsideStormMaxS: round1(Math.max(0, ...outside) / 1000),
      unseen: list.reduce((sum, c) => sum + c.seen.filter((s) => s === undefined).length, 0),
    };
  }
  const result: Omit<FleetResult, 'goals'> = {
    options: { ...options, say: undefined } as Omit<FleetOptions, 'say'>,
    seconds,
    longestAboveBudgetS: { discover: longest('discover', budget), revision: longest('revision', 3 * budget) },
    steadyMean: { discover: round1(mean('steady', 'discover')), revision: round1(mean('steady', 'revision')) },
    settledMean: {
      discover: round1(mean('recovery', 'discover', Math.floor((recoveryLength * 2) / 3))),
      revision: round1(mean('recovery', 'revision', Math.floor((recoveryLength * 2) / 3))),
    },
    peak: { discover: Math.max(...seconds.map((s) => s.discover)), revision: Math.max(...seconds.map((s) => s.revision)) },
    storm: { meanDiscover: round1(mean('storm', 'discover')), meanRevision: round1(mean('storm', 'revision')) },
    asks,
    failedAsks,
    failures,
    failuresByPhase,
    visibility,
    ...(options.newNames && {
      newNames: {
        asks: fresh.asks,
        failedInStorm: fresh.failedInStorm,
        failedAfterStorm: fresh.failedAfterStorm,
        answeredAfterStormMaxS: round1(Math.max(0, ...fresh.answeredAt.map((at) => (at ?? 0) - stormEnd)) / 1000),
        unanswered: fresh.answeredAt.filter((at) => at === undefined).length,
      },
    }),
    eventLoopDelayP99Ms: round1(delay.percentile(99) / 1e6),
  };
  delete (result.options as { say?: unknown }).say;
  const phases = Object.values(result.visibility);
  const visible = Math.max(...phases.map((v) => v.outsideStormMaxS));
  const unseen = phases.reduce((sum, v) => sum + v.unseen, 0);
  const goals = [
    {
      name: 'DiscoverInstances never above the budget for more than 2 s in a row',
      met: result.longestAboveBudgetS.discover <= 2,
      value: `${result.longestAboveBudgetS.discover} s`,
    },
    {
      name: 'DiscoverInstancesRevision never above its quota for more than 2 s in a row',
      met: result.longestAboveBudgetS.revision <= 2,
      value: `${result.longestAboveBudgetS.revision} s`,
    },
    {
      name: 'steady-state mean ≤ 0.8 × budget (DiscoverInstances)',
      met: result.steadyMean.discover <= 0.8 * budget,
      value: `${result.steadyMean.discover}/s of ${budget}`,
    },
    {
      name: 'steady-state mean ≤ 0.8 × quota (DiscoverInstancesRevision)',
      met: result.steadyMean.revision <= 0.8 * 3 * budget,
      value: `${result.steadyMean.revision}/s of ${3 * budget}`,
    },
    { name: 'no ask fails (stale answers are served)', met: failedAsks === 0, value: `${failedAsks} of ${asks}` },
    {
      name: 'every client sees each change within 15 s (not counting the storm)',
      met: visible <= 15 && unseen === 0,
      value: `max ${visible} s${unseen === 0 ? '' : `, ${unseen} never seen`}`,
    },
  ];
  if (result.newNames !== undefined) {
    const { answeredAfterStormMaxS, unanswered, failedAfterStorm } = result.newNames;
    goals.push({
      name: 'every new name asked for in the storm is answered within 15 s after it',
      met: answeredAfterStormMaxS <= 15 && unanswered === 0,
      value: `max ${answeredAfterStormMaxS} s${unanswered === 0 ? '' : `, ${unanswered} never answered`}; ${failedAfterStorm} asks failed after the storm`,
    });
  }
  return { ...result, goals };
}

/** A text chart of calls a second, one column per `bucket` seconds, with the budget as a line. */
export function plotText(seconds: readonly FleetSecond[], key: 'discover' | 'revision', budget: number, title: string): string {
  const height = 12;
  const bucket = Math.max(1, Math.ceil(seconds.length / 100));
  const columns: { value: number; phase: Phase }[] = [];
  for (let i = 0; i < seconds.length; i += bucket) {
    const slice = seconds.slice(i, i + bucket);
    columns.push({ value: Math.max(...slice.map((s) => s[key])), phase: slice[0]!.phase });
  }
  const top = Math.max(budget * 1.25, ...columns.map((c) => c.value));
  const rows: string[] = [];
  for (let r = height; r >= 1; r--) {
    const level = (top * r) / height;
    const below = (top * (r - 1)) / height;
    const budgetRow = budget > below && budget <= level;
    const label = r === height ? String(Math.round(top)).padStart(5) : budgetRow ? String(budget).padStart(5) : '     ';
    let line = `${label} ┤`;
    for (const c of columns) {
      if (c.value >= level - top / height / 2) line += c.phase === 'storm' ? '▒' : '█';
      else line += budgetRow ? '─' : ' ';
    }
    rows.push(line);
  }
  rows.push(`    0 └${'─'.repeat(columns.length)}`);
  const phases = columns.map((c) => (c.phase === 'storm' ? 's' : c.phase === 'warmup' ? 'w' : ' ')).join('');
  rows.push(`       ${phases}`);
  return `${title} (max per ${bucket} s; ─ the quota; ▒/s the storm, w the start)\n${rows.join('\n')}\n`;
}

/** An SVG of calls a second per operation, with the quotas, 0.8 × the quota and the storm. */
export function plotSvg(result: FleetResult): string {
  const width = 760;
  const plotH = 160;
  const left = 50;
  const right = 20;
  const { seconds } = result;
  const budget = result.options.budget;
  const x = (t: number): number => left + ((width - left - right) * t) / Math.max(1, seconds.length);
  const panel = (key: 'discover' | 'revision', quota: number, title: string, top: number): string => {
    const max = Math.max(quota * 1.3, ...seconds.map((s) => s[key]));
    const y = (v: number): number => top + 20 + plotH - (plotH * v) / max;
    const storm = seconds.filter((s) => s.phase === 'storm');
    const band =
      storm.length === 0
        ? ''
        : `<rect x="${x(storm[0]!.t)}" y="${top + 20}" width="${x(storm.at(-1)!.t + 1) - x(storm[0]!.t)}" height="${plotH}" fill="#fde2e2"/>` +
          `<text x="${x(storm[0]!.t) + 4}" y="${top + 34}" font-size="11" fill="#a33">storm: every call throttled</text>`;
    const points = seconds.map((s) => `${x(s.t + 0.5).toFixed(1)},${y(s[key]).toFixed(1)}`).join(' ');
    const throttled = seconds
      .map((s) => `${x(s.t + 0.5).toFixed(1)},${y(key === 'discover' ? s.discoverThrottled : s.revisionThrottled).toFixed(1)}`)
      .join(' ');
    const line = (v: number, color: string, dash: string, label: string): string =>
      `<line x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}" stroke="${color}" stroke-dasharray="${dash}"/>` +
      `<text x="${width - right - 4}" y="${y(v) - 3}" font-size="10" text-anchor="end" fill="${color}">${label}</text>`;
    const ticks = Array.from({ length: Math.floor(seconds.length / 30) + 1 }, (_, i) => i * 30)
      .map((t) => `<text x="${x(t)}" y="${top + 20 + plotH + 14}" font-size="10" text-anchor="middle">${t} s</text>`)
      .join('');
    return (
      `<text x="${left}" y="${top + 12}" font-size="13" font-weight="bold">${title}</text>${band}` +
      `<rect x="${left}" y="${top + 20}" width="${width - left - right}" height="${plotH}" fill="none" stroke="#999"/>` +
      line(quota, '#c00', '6 3', `quota ${quota}/s`) +
      line(0.8 * quota, '#888', '2 3', `0.8 × quota`) +
      `<polyline points="${throttled}" fill="none" stroke="#e99" stroke-width="1"/>` +
      `<polyline points="${points}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>` +
      `<text x="${left - 6}" y="${top + 24}" font-size="10" text-anchor="end">${Math.round(max)}</text>` +
      `<text x="${left - 6}" y="${top + 20 + plotH}" font-size="10" text-anchor="end">0</text>${ticks}`
    );
  };
  const o = result.options;
  const header =
    `<text x="20" y="22" font-size="15" font-weight="bold">Fleet simulation: ${o.clients} processes × ${o.names} names, ` +
    `Cloud Map quota ${budget} DiscoverInstances/s${o.healthChecks ? ', services with health checks' : ''}</text>` +
    `<text x="20" y="40" font-size="11" fill="#555">calls reaching the API per second (blue), of which throttled (red); every client asks for every name each second</text>`;
  const height = 60 + 2 * (plotH + 50);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${header}` +
    panel('discover', budget, 'DiscoverInstances calls/s', 55) +
    panel('revision', 3 * budget, 'DiscoverInstancesRevision calls/s', 55 + plotH + 50) +
    '</svg>\n'
  );
}

/** The figures, as printed after a run. */
export function renderFleet(result: FleetResult): string {
  const o = result.options;
  const lines = [
    `fleet: ${o.clients} processes × ${o.names} names, quota ${o.budget} DiscoverInstances/s (bursts ${2 * o.budget}), ` +
      `${3 * o.budget} DiscoverInstancesRevision/s; services ${o.healthChecks ? 'with' : 'without'} health checks; ` +
      `start within ${o.startS} s; phases ${o.warmupS}+${o.steadyS}+${o.stormS}+${o.recoveryS} s` +
      `${o.newNames ? '; every task starts using a new name in the storm' : ''}`,
    '',
    plotText(result.seconds, 'discover', o.budget, 'DiscoverInstances calls/s'),
    plotText(result.seconds, 'revision', 3 * o.budget, 'DiscoverInstancesRevision calls/s'),
    `steady mean        DiscoverInstances ${result.steadyMean.discover}/s, Revision ${result.steadyMean.revision}/s`,
    `settled (late recovery) mean  DiscoverInstances ${result.settledMean.discover}/s, Revision ${result.settledMean.revision}/s`,
    `peak second        DiscoverInstances ${result.peak.discover}, Revision ${result.peak.revision}`,
    `storm mean         DiscoverInstances ${result.storm.meanDiscover}/s, Revision ${result.storm.meanRevision}/s`,
    `asks               ${result.asks}, failed ${result.failedAsks} ${JSON.stringify(result.failures)} by phase ${JSON.stringify(result.failuresByPhase)}`,
    ...(result.newNames === undefined
      ? []
      : [
          `new names          ${result.newNames.asks} asks, failed ${result.newNames.failedInStorm} in the storm, ${result.newNames.failedAfterStorm} after; ` +
            `every task's answered within ${result.newNames.answeredAfterStormMaxS} s after the storm`,
        ]),
    `changes seen by every client (max / p99 s; max not counting the storm; client×change never seen):`,
    ...(['warmup', 'steady', 'storm', 'recovery'] as const).map((p) => {
      const v = result.visibility[p];
      return `  made in ${p.padEnd(9)} ${String(v.changes).padStart(3)} changes: ${v.maxS} / ${v.p99S} s; ${v.outsideStormMaxS} s; unseen ${v.unseen}`;
    }),
    `event loop delay p99 ${result.eventLoopDelayP99Ms} ms`,
    '',
    ...result.goals.map((g) => `${g.met ? '✓' : '✗'} ${g.name}: ${g.value}`),
    '',
  ];
  return lines.join('\n');
}
