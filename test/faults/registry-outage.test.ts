/**
 * Registry outages under load. DNS: bind9 is killed for 30 s (scaled) while requests run; they
 * carry on against the last answer, served stale, and the first answer after the restart is
 * picked up. Cloud Map: the data API throttles (RequestLimitExceeded) in a burst long enough to
 * exhaust every retry; calls stay within the client's budget and stale answers are served.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { request } from 'undici';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { FakeCloudMap } from '../fixtures/cloud-map.ts';
import { Fleet, InstanceServer, Ledger } from '../fixtures/fleet.ts';
import { ProcessWatch, report, scaled, sleep } from './support.ts';
import { handlesAbove, openHandles } from '../support/handles.ts';

const ledger = new Ledger();
let fleet: InstanceServer[] = [];
const watch = new ProcessWatch();

beforeAll(async () => {
  watch.start();
  fleet = (await Fleet.start(0, { octets: [11, 12, 13, 14], samePort: true, ledger, keepAliveTimeout: 5000, keepSeen: false })).servers;
});

afterAll(async () => {
  await Promise.all(fleet.map((b) => b.kill()));
  watch.stop();
});

/** Counts what is published on some signpost channels while `body` runs. */
async function counting<T>(names: string[], body: (counts: Record<string, number>) => Promise<T>): Promise<T> {
  const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  const listeners = names.map((name) => [name, () => void (counts[name] = (counts[name] ?? 0) + 1)] as const);
  for (const [name, listener] of listeners) subscribe(name, listener);
  try {
    return await body(counts);
  } finally {
    for (const [name, listener] of listeners) unsubscribe(name, listener);
  }
}

interface Load {
  requests: number;
  failed: number;
  errors: string[];
  byBackend: Map<string, number>;
}

/** GETs on `lanes` lanes to the given URLs until `stop()`; counts answers per backend. */
function runLoad(agent: DiscoveryAgent, urls: readonly string[], lanes: number, stop: () => boolean): { load: Load; done: Promise<void> } {
  const load: Load = { requests: 0, failed: 0, errors: [], byBackend: new Map() };
  let n = 0;
  const lane = async (): Promise<void> => {
    while (!stop()) {
      const url = urls[n++ % urls.length]!;
      load.requests++;
      try {
        const response = await request(url, { dispatcher: agent });
        const body = await response.body.text();
        if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
        load.byBackend.set(body, (load.byBackend.get(body) ?? 0) + 1);
      } catch (error) {
        load.failed++;
        if (load.errors.length < 10) load.errors.push(String(error));
      }
      // A steady rate rather than a flood: the outage is long, the figures are about correctness.
      await sleep(2);
    }
  };
  return { load, done: Promise.all(Array.from({ length: lanes }, lane)).then(() => {}) };
}

test('DNS server killed under load: requests carry on against stale instances, then see the restart', async () => {
  const port = fleet[0]!.port;
  const name = 'api.outage.local';
  const bind = await Bind9.start({ zones: { 'outage.local': ['11', '12', '13'].map((o) => `api 1 IN A 127.0.0.${o}`).join('\n') } });
  const handlesBefore = openHandles();
  const outageMs = scaled(30_000);
  const discovery = new Discovery({
    services: { [name]: { via: 'dns', port, family: 4 } },
    dns: { servers: [bind.server], timeout: 300, tries: 1 },
    cache: { staleTtl: outageMs * 3 },
  });
  const agent = new DiscoveryAgent({ discovery });
  try {
    await counting(['signpost:resolve:error', 'signpost:resolve:stale', 'signpost:resolve:done'], async (events) => {
      let stop = false;
      const { load, done } = runLoad(agent, [`http://${name}:${port}/`], 16, () => stop);
      await sleep(1000);
      const before = { requests: load.requests, failed: load.failed };
      await bind.stop();
      const outageStart = { requests: load.requests, failed: load.failed, errors: events['signpost:resolve:error']! };
      await sleep(outageMs);
      const during = { requests: load.requests - outageStart.requests, failed: load.failed - outageStart.failed };
      const resolveErrors = events['signpost:resolve:error']! - outageStart.errors;
      // Back up, with a fourth instance added while it was down: it must get traffic.
      await bind.restart();
      await bind.update([`update add ${name} 1 A 127.0.0.14`]);
      const seen14 = (): number => load.byBackend.get('127.0.0.14') ?? 0;
      // The stale retries back off to 30 s (± 25 %): the one after the restart may be that far away.
      for (let i = 0; i < 400 && seen14() === 0; i++) await sleep(100);
      stop = true;
      await done;
      report('registry outage: DNS server killed', {
        outageSeconds: outageMs / 1000,
        requests: load.requests,
        requestsBeforeOutage: before.requests,
        requestsDuringOutage: during.requests,
        failures: load.failed,
        failuresDuringOutage: during.failed,
        resolveErrorsDuringOutage: resolveErrors,
        staleEvents: events['signpost:resolve:stale']!,
        answersAfterRestart: seen14(),
      });
      expect(load.errors).toEqual([]);
      expect(during.requests).toBeGreaterThan(0);
      expect(resolveErrors).toBeGreaterThan(0);
      expect(events['signpost:resolve:stale']).toBeGreaterThan(0);
      expect(seen14()).toBeGreaterThan(0);
    });
  } finally {
    await agent.close();
    await discovery.close();
    await bind.close();
  }
  expect(await handlesAbove(handlesBefore)).toEqual({});
  expect(watch.unhandled).toEqual([]);
});

test('Cloud Map throttling burst: calls stay within the budget and stale answers are served', async () => {
  const fake = await FakeCloudMap.start();
  const services = ['orders', 'users', 'carts', 'stock', 'prices'];
  for (const service of services) {
    for (const backend of fleet.slice(0, 3)) {
      fake.register('myapp.local', service, {
        id: `${service}-${backend.address}`,
        attributes: { AWS_INSTANCE_IPV4: backend.address, AWS_INSTANCE_PORT: String(backend.port) },
      });
    }
  }
  const maxCallsPerSecond = 10;
  const handlesBefore = openHandles();
  const discovery = new Discovery({
    namespaces: { 'myapp.local': { via: 'cloudmap' } },
    cloudMap: {
      endpoint: fake.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDFAULTS', secretAccessKey: 'fault-suite-secret' },
      pollInterval: 200,
      fullRefreshInterval: 1000,
      maxCallsPerSecond,
      retries: 3,
      retryDelay: 20,
    },
    cache: { minTtl: 100, staleTtl: 120_000 },
  });
  const agent = new DiscoveryAgent({ discovery });
  let elapsedMs = 0;
  try {
    await counting(['signpost:cloudmap:call', 'signpost:cloudmap:retry', 'signpost:resolve:error', 'signpost:resolve:stale'], async (events) => {
      let stop = false;
      const started = performance.now();
      const { load, done } = runLoad(agent, services.map((s) => `http://${s}.myapp.local/`), 16, () => stop);
      await sleep(1500);
      // A burst of throttling longer than the retries (4 attempts per refresh): the refreshes of
      // every service fail for a few rounds, and the entries go stale.
      const throttled = scaled(60);
      fake.failNext(throttled, { type: 'RequestLimitExceeded', status: 400, message: 'Rate exceeded' });
      const callsBefore = fake.calls.DiscoverInstances + fake.calls.DiscoverInstancesRevision;
      for (let i = 0; i < scaled(600) && fake.calls.DiscoverInstances + fake.calls.DiscoverInstancesRevision - callsBefore < throttled; i++) {
        await sleep(100);
      }
      const burstCalls = fake.calls.DiscoverInstances + fake.calls.DiscoverInstancesRevision - callsBefore;
      // After the burst: a new instance registered must be found again.
      fake.register('myapp.local', 'orders', {
        id: 'orders-new',
        attributes: { AWS_INSTANCE_IPV4: fleet[3]!.address, AWS_INSTANCE_PORT: String(fleet[3]!.port) },
      });
      const seenNew = (): number => load.byBackend.get(fleet[3]!.address) ?? 0;
      // Serving stale, the cache asks again after 1, 2, 4 … s (RFC 8767): bounded by 60 s here.
      for (let i = 0; i < 600 && seenNew() === 0; i++) await sleep(100);
      stop = true;
      await done;
      elapsedMs = performance.now() - started;
      const calls = fake.calls.DiscoverInstances + fake.calls.DiscoverInstancesRevision;
      // The token bucket: maxCallsPerSecond, with up to one second's worth at once.
      const budget = Math.ceil((elapsedMs / 1000) * maxCallsPerSecond + maxCallsPerSecond) + 1;
      report('registry outage: Cloud Map throttling burst', {
        requests: load.requests,
        failures: load.failed,
        services: services.length,
        throttledAnswers: burstCalls,
        cloudMapCalls: calls,
        callBudget: budget,
        callEvents: events['signpost:cloudmap:call']!,
        cloudMapRetries: events['signpost:cloudmap:retry']!,
        resolveErrors: events['signpost:resolve:error']!,
        staleEvents: events['signpost:resolve:stale']!,
        answersFromNewInstance: seenNew(),
      });
      expect(load.errors).toEqual([]);
      expect(burstCalls).toBeGreaterThan(0);
      expect(calls).toBeLessThanOrEqual(budget);
      expect(events['signpost:cloudmap:call']).toBe(calls);
      expect(events['signpost:resolve:error']).toBeGreaterThan(0);
      expect(events['signpost:resolve:stale']).toBeGreaterThan(0);
      expect(seenNew()).toBeGreaterThan(0);
    });
  } finally {
    await agent.close();
    await discovery.close();
    await fake.close();
  }
  expect(await handlesAbove(handlesBefore)).toEqual({});
  expect(watch.unhandled).toEqual([]);
});
