/**
 * Rolling deployment under load: bind9 swaps the blue A records for green ones with nsupdate
 * while requests run; the old instances drain, one resets a share of its requests mid-flight,
 * one dies with requests in flight (every connection reset), one stops gracefully. Then back
 * again (green → a new blue). No idempotent request may fail, and no POST may be delivered twice.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { request } from 'undici';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet, InstanceServer, Ledger } from '../fixtures/fleet.ts';
import { heapAfterGc, mib, ProcessWatch, report, scaled, sleep } from './support.ts';
import { handlesAbove, openHandles, totalHandles } from '../support/handles.ts';

const NAME = 'api.roll.local';
const BLUE = [2, 3, 4];
const GREEN = [5, 6, 7];

let bind: Bind9;
const ledger = new Ledger();
let fleet: InstanceServer[] = [];
/** Every backend ever started, for the reset count. */
const everyBackend: InstanceServer[] = [];
const watch = new ProcessWatch();

beforeAll(async () => {
  watch.start();
  fleet = (await Fleet.start(0, { octets: [...BLUE, ...GREEN], samePort: true, ledger, keepAliveTimeout: 5000, keepSeen: false })).servers;
  everyBackend.push(...fleet);
  const records = BLUE.map((o) => `api 1 IN A 127.0.0.${o}`).join('\n');
  bind = await Bind9.start({ zones: { 'roll.local': records } });
});

afterAll(async () => {
  await Promise.all(fleet.map((b) => b.kill()));
  await bind?.close();
  watch.stop();
});

function records(octets: readonly number[], op: 'add' | 'delete'): string[] {
  return octets.map((o) => (op === 'add' ? `update add ${NAME} 1 A 127.0.0.${o}` : `update delete ${NAME} A 127.0.0.${o}`));
}

test('a rolling deployment under load: no failed idempotent request, no POST twice', async () => {
  const port = fleet[0]!.port;
  const target = scaled(20_000);
  const handlesBefore = openHandles();
  const heapBefore = await heapAfterGc();
  const discovery = new Discovery({
    services: { [NAME]: { via: 'dns', port, family: 4 } },
    dns: { servers: [bind.server], timeout: 1000, tries: 2 },
  });
  const agent = new DiscoveryAgent({ discovery, retry: { retries: 2 }, keepAliveTimeout: 2000 });
  let ejections = 0;
  const onEject = (): void => {
    ejections++;
  };
  subscribe('signpost:health:eject', onEject);

  const counts = { get: 0, post: 0, getFailed: 0, postFailed: 0, non200: 0 };
  const failures: string[] = [];
  let deploymentsDone = false;
  let seq = 0;
  const deadline = Date.now() + scaled(240_000);
  const done = (): boolean => Date.now() > deadline || (deploymentsDone && counts.get + counts.post >= target);

  const lane = async (): Promise<void> => {
    while (!done()) {
      const n = seq++;
      const post = n % 10 === 0;
      try {
        const response = await request(`http://${NAME}:${port}/items/${n}`, {
          dispatcher: agent,
          method: post ? 'POST' : 'GET',
          ...(post ? { body: JSON.stringify({ n }), headers: { 'x-idempotency-id': `req-${n}`, 'content-type': 'application/json' } } : {}),
        });
        await response.body.text();
        if (response.statusCode !== 200) {
          counts.non200++;
          if (!post) failures.push(`GET ${n}: HTTP ${response.statusCode}`);
        }
      } catch (error) {
        if (post) counts.postFailed++;
        else {
          counts.getFailed++;
          if (failures.length < 10) failures.push(`GET ${n}: ${String(error)}`);
        }
      }
      if (post) counts.post++;
      else counts.get++;
    }
  };

  const deploy = async (from: number[], to: number[]): Promise<void> => {
    const old = fleet.filter((b) => from.some((o) => b.address === `127.0.0.${o}`));
    // An old task shutting down early: it resets a third of its requests while still in DNS.
    old[0]!.behaviour = 'reset';
    old[0]!.resetShare = 0.3;
    await sleep(700);
    // New instances first (a deployment's "start new tasks"), then the old records go.
    await bind.update([...records(to, 'add'), ...records(from, 'delete')]);
    // The old set drains (TTL 1 s plus the refresh), then stops: one dies with requests in
    // flight, one resets every connection, one drains gracefully.
    await sleep(2500);
    await Promise.all([old[0]!.kill(), old[1]!.kill(), old[2]!.close()]);
  };

  const load = Promise.all(Array.from({ length: 48 }, lane));
  const rounds = Math.max(2, Math.round(scaled(2)));
  await sleep(1000);
  let blue = BLUE;
  let green = GREEN;
  for (let round = 0; round < rounds && !done(); round++) {
    await deploy(blue, green);
    // The old addresses come back as the next version's instances.
    const restarted = await Promise.all(blue.map((o) => InstanceServer.start(`127.0.0.${o}`, port, { ledger, keepAliveTimeout: 5000, keepSeen: false })));
    everyBackend.push(...restarted);
    fleet = fleet.filter((b) => !restarted.some((r) => r.address === b.address)).concat(restarted);
    await sleep(1000);
    [blue, green] = [green, blue];
  }
  deploymentsDone = true;
  await load;
  const stats = agent.stats();
  unsubscribe('signpost:health:eject', onEject);
  await agent.close();
  await discovery.close();
  const leftOver = await handlesAbove(handlesBefore);
  const heapAfter = await heapAfterGc();

  const resets = everyBackend.reduce((sum, b) => sum + b.resets, 0);
  report('rolling deployment', {
    requests: counts.get + counts.post,
    gets: counts.get,
    posts: counts.post,
    deployments: rounds,
    failures: counts.getFailed,
    postsFailed: counts.postFailed,
    non200: counts.non200,
    duplicatePosts: ledger.duplicates,
    serverResets: resets,
    retries: stats.retries,
    retriesDenied: stats.retriesDenied,
    ejections,
    dnsQueries: discovery.stats().queries,
    heapBeforeMiB: mib(heapBefore),
    heapAfterMiB: mib(heapAfter),
    peakHeapMiB: mib(watch.peakHeap),
    openHandlesAfter: totalHandles(leftOver),
  });
  expect(counts.get + counts.post).toBeGreaterThanOrEqual(target);
  expect(failures).toEqual([]);
  expect(counts.getFailed).toBe(0);
  expect(ledger.duplicates).toBe(0);
  expect(watch.unhandled).toEqual([]);
  expect(leftOver).toEqual({});
});
