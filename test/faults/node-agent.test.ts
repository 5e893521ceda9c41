/**
 * node:http through DiscoveryHttpAgent during a rolling deployment under load: bind9 swaps the
 * blue A records for green ones while keep-alive requests (GET and POST) run, the blue instances
 * are killed once they left the registry, then a green one dies while still registered. Only
 * requests on its connections while it dies may fail (node:http has no request retry); every
 * request started once it is gone succeeds (its connects fail over), no POST is delivered twice,
 * and nothing is left open.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Discovery } from '../../src/discovery.ts';
import { DiscoveryHttpAgent } from '../../src/http-agent.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet, InstanceServer, Ledger } from '../fixtures/fleet.ts';
import { handlesAbove, openHandles } from '../support/handles.ts';
import { ProcessWatch, report, runLanes, scaled, sleep } from './support.ts';

const NAME = 'api.node.local';
const BLUE = [42, 43, 44];
const GREEN = [45, 46, 47];

let bind: Bind9;
const ledger = new Ledger();
let fleet: InstanceServer[] = [];
const watch = new ProcessWatch();

beforeAll(async () => {
  watch.start();
  fleet = (await Fleet.start(0, { octets: [...BLUE, ...GREEN], samePort: true, ledger, keepAliveTimeout: 5000, keepSeen: false })).servers;
  bind = await Bind9.start({ zones: { 'node.local': BLUE.map((o) => `api 1 IN A 127.0.0.${o}`).join('\n') } });
});

afterAll(async () => {
  await Promise.all(fleet.map((b) => b.kill()));
  await bind?.close();
  watch.stop();
});

function send(agent: DiscoveryHttpAgent, port: number, method: 'GET' | 'POST', id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: NAME, port, path: `/${id}`, method, agent, headers: method === 'POST' ? { 'x-idempotency-id': id } : {} },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', (error) => reject(Object.assign(error, { reused: req.reusedSocket })));
    req.end(method === 'POST' ? `order ${id}` : undefined);
  });
}

test('a rolling deployment through node:http: only requests on the connections of the instance that died fail', async () => {
  const port = fleet[0]!.port;
  const target = scaled(12_000);
  const handlesBefore = openHandles();
  const discovery = new Discovery({
    services: { [NAME]: { via: 'dns', port, family: 4 } },
    dns: { servers: [bind.server], timeout: 1000, tries: 2 },
  });
  const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
  const blue = fleet.filter((b) => BLUE.includes(Number(b.address.split('.')[3])));
  const green = fleet.filter((b) => GREEN.includes(Number(b.address.split('.')[3])));
  let started = 0;
  let ok = 0;
  const failures: Array<{ startedAt: number; code: string | undefined; reused: boolean }> = [];
  let killedAt = Number.POSITIVE_INFINITY;
  let goneAt = Number.POSITIVE_INFINITY;
  let inflightAtKill = 0;
  let deployed = false;
  let afterKill = 0;

  // The load runs until the deployment is over, whatever the machine's speed.
  const load = runLanes(16, () => deployed && started >= target, async () => {
    const n = started++;
    const startedAt = performance.now();
    try {
      const status = await send(agent, port, n % 4 === 0 ? 'POST' : 'GET', `r${n}`);
      if (status === 200) ok++;
      else failures.push({ startedAt, code: `HTTP ${status}`, reused: false });
    } catch (error) {
      failures.push({ startedAt, code: (error as NodeJS.ErrnoException).code, reused: (error as { reused?: boolean }).reused === true });
    }
  });

  const deploy = (async () => {
    while (started < target * 0.25) await sleep(10);
    await bind.update([
      ...GREEN.map((o) => `update add ${NAME} 1 A 127.0.0.${o}`),
      ...BLUE.map((o) => `update delete ${NAME} A 127.0.0.${o}`),
    ]);
    // Out of the registry (TTL 1 s, refreshed 1 s after it): no new request goes to blue, its idle
    // connections close; then it is stopped.
    while (discovery.instancesSync(NAME).some((i) => BLUE.includes(Number(i.address.split('.')[3])))) await sleep(50);
    await sleep(500);
    await Promise.all(blue.map((b) => b.kill()));
    while (started < target * 0.6) await sleep(10);
    await sleep(1100);
    // A green instance dies while the registry still lists it.
    const dying = green[0]!;
    inflightAtKill = dying.inflight;
    killedAt = performance.now();
    await dying.kill();
    goneAt = performance.now();
    const atKill = started;
    while (started < atKill + scaled(2000)) await sleep(10);
    afterKill = started - atKill;
    deployed = true;
  })();

  await Promise.all([load, deploy]);
  agent.destroy();
  await discovery.close();

  // Once it is gone (every connection reset, and the resets read), requests no longer fail.
  const late = failures.filter((f) => f.startedAt > goneAt + 100);
  // The blue instances were stopped only after leaving the registry: nothing failed for them.
  const duringSwap = failures.filter((f) => f.startedAt < killedAt - 1000);
  const dead = discovery.health.stats();
  report('node:http agent: rolling deployment and a registered instance dying', {
    requests: started,
    'requests after it died': afterKill,
    succeeded: ok,
    failed: failures.length,
    'failed while blue was swapped out and stopped': duringSwap.length,
    'in flight on the dying instance': inflightAtKill,
    'ms its kill took (connections reset)': Math.round(goneAt - killedAt),
    'failed once it was gone (started 100 ms later)': late.length,
    'failure codes': [...new Set(failures.map((f) => f.code))].join(', ') || 'none',
    'of them on a reused keep-alive connection': failures.filter((f) => f.reused).length,
    'POSTs delivered twice': ledger.duplicates,
    'ejections': dead.totalEjections,
  });
  expect(late).toEqual([]);
  expect(duringSwap).toEqual([]);
  // Requests on the connections of the instance that died (in flight, or just handed a socket).
  expect(failures.length).toBeLessThanOrEqual(inflightAtKill + 16);
  expect(ledger.duplicates).toBe(0);
  expect(ok + failures.length).toBe(started);
  expect(afterKill).toBeGreaterThanOrEqual(scaled(2000));
  // The instance that died while registered was ejected at its first refused connect.
  expect(dead.totalEjections).toBeGreaterThanOrEqual(1);
  expect(watch.unhandled).toEqual([]);
  expect(watch.listenerWarnings).toEqual([]);
  expect(await handlesAbove(handlesBefore)).toEqual({});
});
