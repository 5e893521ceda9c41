import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Agent, errors, request, fetch as undiciFetch, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { discoveryInterceptor } from '../../src/agent/index.ts';
import { Fleet } from '../fixtures/fleet.ts';

const NAME = 'api.test.local';

describe('DiscoveryAgent over static instances', () => {
  let fleet: Fleet;
  let agent: DiscoveryAgent;

  beforeEach(async () => {
    fleet = await Fleet.start(3);
    agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
  });

  afterEach(async () => {
    // destroy(), not close(): a closed agent refuses to close again, as undici's dispatchers do.
    await agent.destroy();
    await fleet.close();
  });

  it('spreads 3,000 requests evenly over 3 instances (global fetch with dispatcher)', async () => {
    const total = 3000;
    let sent = 0;
    // 50 callers at a time, like a busy service.
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (sent < total) {
          sent++;
          const res = await fetch(`http://${NAME}/spread`, { dispatcher: agent } as unknown as RequestInit);
          expect(res.status).toBe(200);
          await res.text();
        }
      }),
    );
    const counts = fleet.counts;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(total);
    for (const count of counts) {
      expect(count / total).toBeGreaterThan(0.28);
      expect(count / total).toBeLessThan(0.38);
    }
  });

  it('keeps the logical name in the Host header, with the URL port when it had one', async () => {
    await (await undiciFetch(`http://${NAME}/a`, { dispatcher: agent })).text();
    const { body } = await request(`http://${NAME}:8080/b`, { dispatcher: agent });
    await body.text();
    const seen = fleet.servers.flatMap((s) => s.seen);
    expect(seen.map((s) => s.host).sort()).toEqual([NAME, `${NAME}:8080`]);
  });

  it('serves undici.request and fetch through setGlobalDispatcher', async () => {
    const previous = getGlobalDispatcher();
    setGlobalDispatcher(agent);
    try {
      const { statusCode, body } = await request(`http://${NAME}/global`);
      expect(statusCode).toBe(200);
      expect(['127.0.0.2', '127.0.0.3', '127.0.0.4']).toContain(await body.text());
      const res = await fetch(`http://${NAME}/global-fetch`);
      expect(res.status).toBe(200);
      await res.text();
    } finally {
      setGlobalDispatcher(previous);
    }
  });

  it('passes undiscovered hosts and IP literals through to a plain Agent', async () => {
    const [server] = fleet.servers;
    const res = await request(`http://${server!.address}:${server!.port}/direct`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(server!.seen.at(-1)?.host).toBe(`${server!.address}:${server!.port}`);
    expect(agent.stats().requests).toBe(0);
  });

  it('counts requests per instance in stats()', async () => {
    for (let i = 0; i < 9; i++) await (await request(`http://${NAME}/s`, { dispatcher: agent })).body.text();
    const stats = agent.stats();
    expect(stats.requests).toBe(9);
    const keys = Object.keys(stats.instances).sort();
    expect(keys).toEqual(fleet.instances.map((i) => `${i.address}:${i.port}`).sort());
    for (const s of Object.values(stats.instances)) {
      expect(s.inflight).toBe(0);
      expect(s.failures).toBe(0);
      expect(s.requests).toBe(3);
    }
  });

  it('publishes pick and pool creation on diagnostics_channel', async () => {
    const picks: unknown[] = [];
    const pools: unknown[] = [];
    const onPick = (m: unknown): void => void picks.push(m);
    const onPool = (m: unknown): void => void pools.push(m);
    subscribe('signpost:agent:pick', onPick);
    subscribe('signpost:pool:create', onPool);
    try {
      for (let i = 0; i < 3; i++) await (await request(`http://${NAME}/d`, { dispatcher: agent })).body.text();
    } finally {
      unsubscribe('signpost:agent:pick', onPick);
      unsubscribe('signpost:pool:create', onPool);
    }
    expect(picks).toHaveLength(3);
    expect(picks[0]).toMatchObject({ name: NAME, attempt: 1 });
    expect(pools).toHaveLength(3);
  });

  it("close() and destroy() are idempotent, and a closed agent answers as undici's does", async () => {
    await (await request(`http://${NAME}/c`, { dispatcher: agent })).body.text();
    await Promise.all([agent.close(), agent.close()]);
    expect(agent.closed).toBe(true);
    // A dispatcher is destroyed once its close finished, as undici's are: closing it again, or
    // using it, gives ClientDestroyedError; destroying it again is a no-op.
    expect(agent.destroyed).toBe(true);
    await expect(agent.close()).rejects.toBeInstanceOf(errors.ClientDestroyedError);
    await agent.destroy();
    await agent.destroy();
    const callbackError = await new Promise<unknown>((resolve) => agent.close((error) => resolve(error)));
    expect(callbackError).toBeInstanceOf(errors.ClientDestroyedError);
    await expect(request(`http://${NAME}/after`, { dispatcher: agent })).rejects.toBeInstanceOf(errors.ClientDestroyedError);
  });
});

describe('destroy() with requests in flight', () => {
  it('fails them at once without opening new pools', async () => {
    const fleet = await Fleet.start(2);
    for (const s of fleet.servers) s.behaviour = 'hang';
    const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
    const created: unknown[] = [];
    const onCreate = (m: unknown): void => void created.push(m);
    subscribe('signpost:pool:create', onCreate);
    try {
      const settled = Promise.allSettled(Array.from({ length: 4 }, () => request(`http://${NAME}/hang`, { dispatcher: agent })));
      while (fleet.servers.reduce((n, s) => n + s.count, 0) < 4) await new Promise((r) => setTimeout(r, 10));
      await agent.destroy();
      const results = await settled;
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(errors.ClientDestroyedError);
      }
      expect(created).toHaveLength(2);
    } finally {
      unsubscribe('signpost:pool:create', onCreate);
      await fleet.close();
    }
  });
});

describe('DiscoveryAgent with a shared Discovery', () => {
  it('does not close a Discovery it was given; an owned one is closed', async () => {
    const fleet = await Fleet.start(1);
    const discovery = new Discovery({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
    try {
      const agent = new DiscoveryAgent({ discovery });
      await (await request(`http://${NAME}/x`, { dispatcher: agent })).body.text();
      await agent.destroy();
      expect((await discovery.resolve(NAME)).length).toBe(1);
      const owned = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
      await owned.close();
      await expect(owned.discovery.resolve(NAME)).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
    } finally {
      await discovery.close();
      await fleet.close();
    }
  });
});

describe('discoveryInterceptor', () => {
  it('routes through a composed Agent with the same spread and Host header', async () => {
    const fleet = await Fleet.start(3);
    const discovery = new Discovery({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
    const interceptor = discoveryInterceptor({ discovery });
    const base = new Agent();
    const dispatcher = base.compose(interceptor);
    try {
      for (let i = 0; i < 300; i++) {
        const { statusCode, body } = await request(`http://${NAME}/i`, { dispatcher });
        expect(statusCode).toBe(200);
        await body.text();
      }
      for (const count of fleet.counts) expect(count).toBe(100);
      expect(fleet.servers[0]!.seen[0]!.host).toBe(NAME);
      expect(interceptor.stats().requests).toBe(300);
      // Undiscovered hosts go down the chain untouched.
      const s = fleet.servers[1]!;
      const res = await request(`http://${s.address}:${s.port}/raw`, { dispatcher });
      await res.body.text();
      expect(interceptor.stats().requests).toBe(300);
    } finally {
      await base.close();
      await discovery.close();
      await fleet.close();
    }
  });
});
