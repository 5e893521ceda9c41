/**
 * `npm run demo`: signpost on your own machine, in under a minute, with nothing to install and
 * nothing leaving the machine. It starts a small fleet on loopback (a DNS server with A and SRV
 * records, a stand-in for the Cloud Map data API, 6 HTTP instances on 127.0.0.2-7 in 3 zones),
 * sends real traffic through DiscoveryAgent, and compares it with "resolve once, use the first IP".
 */
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent } from 'undici';
// What `import { DiscoveryAgent } from 'signpost'` gives an application.
import { DiscoveryAgent, type DiscoveryAgentOptions } from '../src/index.ts';
import { FakeCloudMap } from '../test/fixtures/cloud-map.ts';
import { DemoDns, type SrvTarget } from './dns-server.ts';
import { InstanceServer, listenOnOnePort } from '../test/fixtures/fleet.ts';
import { bar, emptyTally, load, percent, Screen, type Tally } from './load.ts';

// Nothing may leave this machine: no EC2/ECS metadata lookups, static credentials only.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
delete process.env.SIGNPOST_STATIC;
delete process.env.SIGNPOST_ZONE;

const NAMESPACE = 'demo.local';
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'] as const;
const REQUESTS = 300;
/** The whole demo must end well within a minute; past this it stops and says so. */
const DEADLINE_MS = 55_000;
const CREDENTIALS = { accessKeyId: 'AKIDSIGNPOSTDEMO', secretAccessKey: 'signpost-demo-not-a-secret' };

const screen = new Screen(process.stdout);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const started = performance.now();

interface Row {
  scene: string;
  requests: number;
  failed: number;
  instances: string;
  zones: string;
  result: string;
  ok: boolean;
  /** The baseline: what the scene shows is the problem signpost solves, not a success. */
  problem?: boolean;
}
const rows: Row[] = [];

/** The instances say who answered (x-instance, x-zone, x-version); closing one gracefully is what ECS does to a task it replaces. */
const instance = (address: string, zone: string, version?: string): InstanceServer =>
  new InstanceServer(address, { zone, version, keepAliveTimeout: 5000 });
/** Every demo instance has a zone. */
const zoneOf = (i: InstanceServer): string => i.zone ?? ZONES[0];
const fleet = [2, 3, 4, 5, 6, 7].map((n, i) => instance(`127.0.0.${n}`, ZONES[Math.floor(i / 2)]!));
const short = (address: string): string => address.replace('127.0.0.', '.');
const agents: Array<Agent | DiscoveryAgent> = [];
const extra: InstanceServer[] = [];
let dns: DemoDns | undefined;
let cloudMap: FakeCloudMap | undefined;

function zoneShares(tally: Tally): string {
  return ZONES.map((z) => `${z.slice(-1)} ${percent(tally.byZone.get(z) ?? 0, tally.ok)}`).join(' / ');
}

function used(tally: Tally): string {
  return `${tally.byInstance.size} of 6`;
}

function showSpread(tally: Tally, instances: readonly InstanceServer[] = fleet): void {
  for (const i of instances) {
    const n = tally.byInstance.get(i.address) ?? 0;
    screen.line(`    ${i.address}  ${i.zone}  ${String(n).padStart(4)}  ${bar(n, tally.ok)}`);
  }
}

/** `ok`: the scene went as it should (for the baseline: it showed the problem). */
function record(row: Omit<Row, 'ok'>, ok: boolean): void {
  rows.push({ ...row, ok });
  const mark = !ok ? '✗' : row.problem ? '⚠ the problem:' : '✓';
  screen.line(`  ${mark} ${row.result}`);
  screen.line();
}

function discoveryAgent(options: DiscoveryAgentOptions): DiscoveryAgent {
  const agent = new DiscoveryAgent(options);
  agents.push(agent);
  return agent;
}

async function run(): Promise<boolean> {
  // ── The fleet ───────────────────────────────────────────────────────────────────────────
  const port = await listenOnOnePort(fleet);
  dns = await DemoDns.start(NAMESPACE, 1);
  dns.setA(`orders.${NAMESPACE}`, fleet.map((i) => i.address));
  cloudMap = await FakeCloudMap.start();
  const register = (service: string, instances: readonly InstanceServer[]): void => {
    for (const i of instances) {
      cloudMap!.register(NAMESPACE, service, {
        id: `${service}-${short(i.address).slice(1)}`,
        attributes: { AWS_INSTANCE_IPV4: i.address, AWS_INSTANCE_PORT: String(i.port), AVAILABILITY_ZONE: zoneOf(i) },
      });
    }
  };
  const oldApi = [fleet[0]!, fleet[2]!];
  const newApi = [fleet[1]!, fleet[3]!, fleet[4]!, fleet[5]!];
  register('api-service', oldApi);
  register('api-v2', newApi);

  const base: DiscoveryAgentOptions = {
    services: {
      [`orders.${NAMESPACE}`]: { via: 'dns', port },
      [`cart.${NAMESPACE}`]: { via: 'srv' },
      [`api-service.${NAMESPACE}`]: { via: 'cloudmap', namespace: NAMESPACE, service: 'api-service' },
      [`api-v2.${NAMESPACE}`]: { via: 'cloudmap', namespace: NAMESPACE, service: 'api-v2' },
    },
    dns: { servers: [dns.server], timeout: 500 },
    cloudMap: { endpoint: cloudMap.endpoint, region: 'us-east-1', credentials: CREDENTIALS, pollInterval: 500 },
    // DNS answers carry no zone: say which addresses are in which zone, as VPC subnets would.
    subnets: Object.fromEntries(fleet.map((i) => [`${i.address}/32`, zoneOf(i)])),
  };

  screen.line('signpost demo: client-side service discovery, on this machine only');
  screen.line();
  screen.line(`  DNS server      ${dns.server}  (A records for orders.${NAMESPACE}, SRV for cart.${NAMESPACE}, TTL 1s)`);
  screen.line(`  Cloud Map API   ${cloudMap.endpoint}  (services api-service and api-v2 in namespace ${NAMESPACE})`);
  screen.line(`  instances       ${fleet.map((i) => `${i.address} (${zoneOf(i).slice(-1)})`).join('  ')}  port ${port}`);
  screen.line();

  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  if (existsSync(cli)) {
    screen.line(`$ signpost resolve api-v2.${NAMESPACE} --via cloudmap --endpoint ${cloudMap.endpoint}`);
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [cli, 'resolve', `api-v2.${NAMESPACE}`, '--via', 'cloudmap', '--endpoint', cloudMap.endpoint, '--region', 'us-east-1'], {
        env: { ...process.env, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey },
        timeout: 10_000,
      });
      for (const line of stdout.trimEnd().split('\n')) screen.line(line === '' ? '' : `  ${line}`);
    } catch (error) {
      screen.line(`  (the CLI failed: ${(error as Error).message.split('\n')[0]})`);
    }
    screen.line();
  }

  screen.line('In an application, the scenes below are this much code:');
  screen.line(`  setGlobalDispatcher(new DiscoveryAgent({ services: { 'orders.${NAMESPACE}': { via: 'dns', port: ${port} } }, dns: { servers: ['${dns.server}'] } }));`);
  screen.line(`  await fetch('http://orders.${NAMESPACE}/');`);
  screen.line();

  // ── 1. "Resolve once, use the first IP" ────────────────────────────────────────────────
  screen.line(`1. "First IP": resolve orders.${NAMESPACE} once, send every request to the first A record (plain undici)`);
  const resolver = new Resolver({ timeout: 500, tries: 2 });
  resolver.setServers([dns.server]);
  const [first] = await resolver.resolve4(`orders.${NAMESPACE}`);
  const plain = new Agent();
  agents.push(plain);
  const firstIp = emptyTally();
  await screen.watch('first IP', firstIp, load(plain, `http://${first}:${port}/`, { total: REQUESTS, tally: firstIp }));
  showSpread(firstIp);
  record(
    { scene: 'first IP (plain undici)', requests: firstIp.sent, failed: firstIp.failed, instances: used(firstIp), zones: zoneShares(firstIp), result: `${first} took ${percent(firstIp.byInstance.get(first ?? '') ?? 0, firstIp.ok)} of the traffic; 5 instances idle`, problem: true },
    firstIp.byInstance.size === 1,
  );

  // ── 2. signpost: every instance, every zone ───────────────────────────────────────────
  screen.line(`2. signpost: the same ${REQUESTS} requests to http://orders.${NAMESPACE}/ through DiscoveryAgent (round-robin)`);
  const spread = emptyTally();
  const spreadAgent = discoveryAgent(base);
  await screen.watch('signpost', spread, load(spreadAgent, `http://orders.${NAMESPACE}/`, { total: REQUESTS, tally: spread }));
  showSpread(spread);
  record(
    { scene: 'signpost round-robin', requests: spread.sent, failed: spread.failed, instances: used(spread), zones: zoneShares(spread), result: `spread over ${spread.byInstance.size} instances in ${spread.byZone.size} zones, no load balancer in between` },
    spread.failed === 0 && spread.byInstance.size === 6 && spread.byZone.size === 3,
  );

  // ── 3. Zone affinity ───────────────────────────────────────────────────────────────────
  screen.line(`3. Zone affinity: a caller in us-east-1a (zone: 'us-east-1a') stays in its zone while 2+ local instances are up`);
  const local = emptyTally();
  const zonalAgent = discoveryAgent({ ...base, zone: 'us-east-1a' });
  await zonalAgent.discovery.zone;
  await screen.watch('zone affinity', local, load(zonalAgent, `http://orders.${NAMESPACE}/`, { total: REQUESTS, tally: local }));
  showSpread(local);
  record(
    { scene: 'zone affinity (us-east-1a)', requests: local.sent, failed: local.failed, instances: used(local), zones: zoneShares(local), result: `${percent(local.byZone.get('us-east-1a') ?? 0, local.ok)} stayed in us-east-1a: no cross-zone hop, no cross-zone data charge` },
    local.failed === 0 && local.byZone.size === 1 && local.byZone.has('us-east-1a'),
  );

  // ── 4. An instance killed mid-run ──────────────────────────────────────────────────────
  const victim = fleet[5]!;
  screen.line(`4. An instance dies mid-run: ${victim.address} is killed (connections cut, port closed) after 200 of ${REQUESTS * 2} requests`);
  const killed = emptyTally();
  const killAgent = discoveryAgent(base);
  let servedBefore = 0;
  const killer = (async () => {
    while (killed.ok < 200) await sleep(2);
    await victim.kill();
    servedBefore = victim.count;
    screen.line(`    ✂ killed ${victim.address} after ${killed.sent} requests; it stays in DNS (the registry has not noticed yet)`);
  })();
  await screen.watch('instance killed', killed, load(killAgent, `http://orders.${NAMESPACE}/`, { total: REQUESTS * 2, tally: killed }));
  await killer;
  const stats = killAgent.stats();
  const victimStats = stats.instances[`${victim.address}:${port}`];
  showSpread(killed);
  record(
    {
      scene: 'instance killed mid-run',
      requests: killed.sent,
      failed: killed.failed,
      instances: used(killed),
      zones: zoneShares(killed),
      result: `${killed.failed} failed requests: ${stats.retries} retried on another instance, ${victim.address} ${victimStats?.ejected ? 'ejected' : 'not ejected'} after ${victimStats?.failures ?? 0} failed attempt(s)`,
    },
    killed.failed === 0 && victim.count === servedBefore,
  );
  await victim.listen(port);

  // ── 5. A rolling deployment: blue records swapped for green ──────────────────────────
  screen.line(`5. Rolling deployment of cart.${NAMESPACE} (SRV records): green tasks register, blue deregister, then stop`);
  const blue = fleet.filter((_, i) => i % 2 === 0).map((i) => instance(i.address, zoneOf(i), 'blue'));
  const green = fleet.filter((_, i) => i % 2 === 1).map((i) => instance(i.address, zoneOf(i), 'green'));
  extra.push(...blue, ...green);
  const cartPort = await listenOnOnePort([...blue, ...green]);
  const targets = (instances: readonly InstanceServer[]): SrvTarget[] =>
    instances.map((i) => {
      const target = `${i.version}-${short(i.address).slice(1)}.cart.${NAMESPACE}`;
      dns!.setA(target, [i.address]);
      return { target, port: cartPort };
    });
  dns.setSrv(`cart.${NAMESPACE}`, targets(blue));
  const deployAgent = discoveryAgent(base);
  const deploy = emptyTally();
  const stop = new AbortController();
  const traffic = load(deployAgent, `http://cart.${NAMESPACE}/`, { stop: stop.signal, concurrency: 4, paceMs: 4, tally: deploy });
  let blueAtDeregister = 0;
  let blueAfterDeregister = 0;
  const script = (async () => {
    const at = (text: string): void => screen.line(`    ${((performance.now() - t0) / 1000).toFixed(1)}s  ${text}  (${deploy.sent} requests so far, ${deploy.failed} failed)`);
    const t0 = performance.now();
    at('blue serving: 3 tasks');
    await sleep(1000);
    dns!.setSrv(`cart.${NAMESPACE}`, targets([...blue, ...green]));
    at('green registered: blue + green in the SRV records');
    await sleep(1500);
    dns!.setSrv(`cart.${NAMESPACE}`, targets(green));
    at('blue deregistered: green only in the SRV records');
    blueAtDeregister = deploy.byVersion.get('blue') ?? 0;
    await sleep(1500);
    blueAfterDeregister = (deploy.byVersion.get('blue') ?? 0) - blueAtDeregister;
    await Promise.all(blue.map((i) => i.close(500)));
    at('blue tasks stopped (drained, then closed)');
    await sleep(1000);
    stop.abort();
  })();
  await screen.watch('deployment', deploy, Promise.all([traffic, script]));
  const blueServed = deploy.byVersion.get('blue') ?? 0;
  const greenServed = deploy.byVersion.get('green') ?? 0;
  screen.line(`    blue answered ${blueServed}, green answered ${greenServed}; blue answered ${blueAfterDeregister} after leaving DNS (until the 1s TTL ran out), none once stopped`);
  record(
    { scene: 'rolling deployment', requests: deploy.sent, failed: deploy.failed, instances: `${blue.length} blue → ${green.length} green`, zones: zoneShares(deploy), result: `blue → green with ${deploy.failed} failed requests` },
    deploy.failed === 0 && blueServed > 0 && greenServed > 0,
  );

  // ── 6. A rename through an alias ──────────────────────────────────────────────────────
  screen.line(`6. Rename: callers still use api-service.${NAMESPACE}; the service now registers as api-v2.${NAMESPACE} (Cloud Map API)`);
  const oldName = `api-service.${NAMESPACE}`;
  const newName = `api-v2.${NAMESPACE}`;
  const union = emptyTally();
  const unionAgent = discoveryAgent({ ...base, aliases: { [oldName]: { to: newName, mode: 'union' } } });
  await screen.watch('alias union', union, load(unionAgent, `http://${oldName}/`, { total: REQUESTS, tally: union }));
  const unionUses = unionAgent.discovery.stats().aliasUses[oldName] ?? 0;
  screen.line(`    mode 'union' (dual registration): old and new instances together`);
  showSpread(union);
  const reachedOld = oldApi.every((i) => union.byInstance.has(i.address));
  const reachedNew = newApi.every((i) => union.byInstance.has(i.address));
  record(
    { scene: "rename: alias 'union'", requests: union.sent, failed: union.failed, instances: used(union), zones: zoneShares(union), result: `old (${oldApi.map((i) => short(i.address)).join(' ')}) and new (${newApi.map((i) => short(i.address)).join(' ')}) both served; the alias was used ${unionUses} times` },
    union.failed === 0 && reachedOld && reachedNew,
  );
  const redirect = emptyTally();
  const redirectAgent = discoveryAgent({ ...base, aliases: { [oldName]: { to: newName, mode: 'redirect' } } });
  await screen.watch('alias redirect', redirect, load(redirectAgent, `http://${oldName}/`, { total: REQUESTS, tally: redirect }));
  screen.line(`    mode 'redirect': the old name now reaches only the new service`);
  showSpread(redirect);
  const onlyNew = [...redirect.byInstance.keys()].every((a) => newApi.some((i) => i.address === a));
  record(
    { scene: "rename: alias 'redirect'", requests: redirect.sent, failed: redirect.failed, instances: used(redirect), zones: zoneShares(redirect), result: `every request reached api-v2; no caller changed its URL` },
    redirect.failed === 0 && onlyNew && redirect.byInstance.size === newApi.length,
  );
  return rows.every((r) => r.ok);
}

function summary(): void {
  const header = ['scene', 'requests', 'failed', 'instances', 'zones a / b / c', 'result'];
  const cells = rows.map((r) => [r.scene, String(r.requests), String(r.failed), r.instances, r.zones, !r.ok ? 'UNEXPECTED' : r.problem ? 'the problem' : 'ok']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const format = (c: readonly string[]): string => c.map((v, i) => (i === 1 || i === 2 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ').trimEnd();
  screen.line('Summary');
  screen.line(format(header));
  screen.line(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const c of cells) screen.line(format(c));
  const total = rows.reduce((n, r) => n + r.requests, 0);
  const signpostFailed = rows.filter((r) => !r.scene.startsWith('first IP')).reduce((n, r) => n + r.failed, 0);
  screen.line();
  screen.line(`${total} requests in ${((performance.now() - started) / 1000).toFixed(1)}s; ${signpostFailed} failed through signpost.`);
  screen.line();
  screen.line('On your own registry: npx signpost resolve <name> [--via dns|srv|cloudmap], npx signpost watch <name>,');
  screen.line('and npx signpost check <config.json> for a connectivity matrix with a diagnosis of each failure.');
}

async function cleanup(): Promise<void> {
  await Promise.allSettled(agents.map((a) => a.close()));
  await Promise.allSettled([...fleet, ...extra].map((i) => i.kill()));
  await dns?.close();
  await cloudMap?.close();
}

const watchdog = setTimeout(() => {
  screen.line(`the demo took longer than ${DEADLINE_MS / 1000}s: stopping`);
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();

let ok = false;
try {
  ok = await run();
  summary();
} catch (error) {
  screen.line(`the demo failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
if (!ok) screen.line('Something did not go as expected: see the lines marked ✗ above.');
process.exitCode = ok ? 0 : 1;
