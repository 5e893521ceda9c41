/**
 * Churn soak: instances join and leave Cloud Map every second while requests run, for a bounded
 * time (scaled). Afterwards, with the same instances registered as at the start, the heap (after
 * GC), the open handles (sockets, timers) and the agent's pool count are back to their baseline,
 * and no listener-leak warning was emitted.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { request } from 'undici';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { FakeCloudMap } from '../fixtures/cloud-map.ts';
import { Fleet, InstanceServer, Ledger } from '../fixtures/fleet.ts';
import { heapAfterGc, mib, ProcessWatch, report, scaled, seededRandom, sleep } from './support.ts';
import { handlesAbove, openHandles, totalHandles } from '../support/handles.ts';

const NAME = 'churn.myapp.local';
const ledger = new Ledger();
let fleet: InstanceServer[] = [];
let fake: FakeCloudMap;
const watch = new ProcessWatch();

beforeAll(async () => {
  watch.start();
  fleet = (await Fleet.start(0, { octets: [18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29], samePort: true, ledger, keepAliveTimeout: 5000, keepSeen: false })).servers;
  fake = await FakeCloudMap.start();
});

afterAll(async () => {
  await Promise.all(fleet.map((b) => b.kill()));
  await fake?.close();
  watch.stop();
});

const register = (backend: InstanceServer): void =>
  fake.register('myapp.local', 'churn', {
    id: backend.address,
    attributes: { AWS_INSTANCE_IPV4: backend.address, AWS_INSTANCE_PORT: String(backend.port) },
  });
const deregister = (backend: InstanceServer): void => fake.deregister('myapp.local', 'churn', backend.address);

test('instances join and leave every second under load: heap, handles and pools return to baseline', async () => {
  const random = seededRandom(42);
  const baselineSet = fleet.slice(0, 4);
  for (const backend of baselineSet) register(backend);
  const registered = new Set(baselineSet);

  const discovery = new Discovery({
    namespaces: { 'myapp.local': { via: 'cloudmap' } },
    cloudMap: {
      endpoint: fake.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDFAULTS', secretAccessKey: 'fault-suite-secret' },
      pollInterval: 100,
      fullRefreshInterval: 0,
      maxCallsPerSecond: 100,
    },
    cache: { minTtl: 100 },
  });
  // Short keep-alive so idle connections are gone when the baseline and the end are measured.
  const agent = new DiscoveryAgent({ discovery, keepAliveTimeout: 300, keepAliveTimeoutThreshold: 0 });
  let openPools = 0;
  let poolsCreated = 0;
  const onCreate = (): void => {
    openPools++;
    poolsCreated++;
  };
  const onClose = (): void => {
    openPools--;
  };
  subscribe('signpost:pool:create', onCreate);
  subscribe('signpost:pool:close', onClose);

  const counts = { requests: 0, failed: 0 };
  const errors: string[] = [];
  let stop = false;
  const lane = async (): Promise<void> => {
    while (!stop) {
      counts.requests++;
      try {
        const response = await request(`http://${NAME}/`, { dispatcher: agent });
        await response.body.text();
        if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
      } catch (error) {
        counts.failed++;
        if (errors.length < 10) errors.push(String(error));
      }
    }
  };
  const runLoad = async (ms: number): Promise<void> => {
    stop = false;
    const lanes = Promise.all(Array.from({ length: 16 }, lane));
    await sleep(ms);
    stop = true;
    await lanes;
  };
  /**
   * A light, steady use of the name (an unused name lapses from the cache and its pools close,
   * by design): one request every 50 ms, so each pool keeps one connection.
   */
  let trickle = false;
  const trickleLane = async (): Promise<void> => {
    while (trickle) {
      try {
        const response = await request(`http://${NAME}/`, { dispatcher: agent });
        await response.body.text();
      } catch (error) {
        counts.failed++;
        if (errors.length < 10) errors.push(String(error));
      }
      await sleep(50);
    }
  };
  /**
   * Under the trickle: waits until the served set is `set` and only its pools are open. A loaded
   * machine can take seconds to drain the last connections of instances that left, so this waits
   * up to 30 s: the assertion below is that the pools do close, not how fast.
   */
  const settle = async (set: Set<InstanceServer>): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      const served = new Set(discovery.instancesSync(NAME).map((x) => x.address));
      if (served.size === set.size && [...set].every((b) => served.has(b.address)) && openPools === set.size) break;
      await sleep(50);
    }
    await sleep(1000);
  };

  // Warm up, then measure the baseline at rest.
  await runLoad(1500);
  trickle = true;
  let trickling = trickleLane();
  await settle(registered);
  const baseline = { heap: await heapAfterGc(), handles: openHandles(), pools: openPools };
  trickle = false;
  await trickling;

  // Churn: every second one instance leaves (gracefully or killed) and another joins.
  const churnMs = scaled(20_000);
  let joins = 0;
  let leaves = 0;
  const churn = (async () => {
    const until = Date.now() + churnMs;
    while (Date.now() < until) {
      await sleep(1000);
      const out = [...registered];
      const leaving = out[Math.floor(random() * out.length)]!;
      const candidates = fleet.filter((b) => !registered.has(b));
      const joining = candidates[Math.floor(random() * candidates.length)]!;
      register(joining);
      registered.add(joining);
      joins++;
      deregister(leaving);
      registered.delete(leaving);
      leaves++;
    }
  })();
  await Promise.all([runLoad(churnMs + 500), churn]);

  // Back to the baseline set, at rest.
  for (const backend of [...registered]) {
    if (!baselineSet.includes(backend)) {
      deregister(backend);
      registered.delete(backend);
    }
  }
  for (const backend of baselineSet) {
    if (!registered.has(backend)) {
      register(backend);
      registered.add(backend);
    }
  }
  trickle = true;
  trickling = trickleLane();
  await settle(registered);
  const after = { heap: await heapAfterGc(), pools: openPools };
  const extraHandles = await handlesAbove(baseline.handles);
  trickle = false;
  await trickling;
  const stats = agent.stats();
  unsubscribe('signpost:pool:create', onCreate);
  unsubscribe('signpost:pool:close', onClose);
  await agent.close();
  await discovery.close();

  report('churn soak', {
    seconds: churnMs / 1000,
    requests: counts.requests,
    failures: counts.failed,
    retries: stats.retries,
    joins,
    leaves,
    poolsCreated,
    poolsBaseline: baseline.pools,
    poolsAfter: after.pools,
    heapBaselineMiB: mib(baseline.heap),
    heapAfterMiB: mib(after.heap),
    peakHeapMiB: mib(watch.peakHeap),
    handlesBaseline: totalHandles(baseline.handles),
    openHandlesAfter: totalHandles(extraHandles),
    warnings: watch.warnings.length,
    listenerWarnings: watch.listenerWarnings.length,
  });
  expect(errors).toEqual([]);
  expect(joins).toBeGreaterThan(0);
  expect(after.pools).toBe(baseline.pools);
  expect(extraHandles).toEqual({});
  // After GC the heap is back near its baseline: a leak of one object per request or per churn
  // step would show as many MiB here.
  expect(after.heap - baseline.heap).toBeLessThan(8 * 1024 * 1024);
  expect(watch.listenerWarnings.map(String)).toEqual([]);
  expect(watch.unhandled).toEqual([]);
});
