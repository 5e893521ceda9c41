import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { discoveryHealth } from '../../src/discovery.ts';
import type { PoolCloseMessage, PoolCreateMessage } from '../../src/diagnostics.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet } from '../fixtures/fleet.ts';

const NAME = 'api.test.local';
const BACK = 'back.test.local';

describe('DiscoveryAgent: what it keeps per instance and per origin', () => {
  let bind: Bind9;
  let fleet: Fleet;
  let agent: DiscoveryAgent;

  beforeAll(async () => {
    fleet = await Fleet.start(3, { samePort: true, firstOctet: 40 });
    const a = (name: string, ttl: number, from = 0) => fleet.servers.slice(from).map((s) => `${name} ${ttl} IN A ${s.address}`);
    // The first instance serves only `back`, so it can leave every name.
    bind = await Bind9.start({ zones: { 'test.local': [...a('api', 30, 1), ...a('back', 1)].join('\n') } });
    const port = fleet.servers[0]!.port;
    agent = new DiscoveryAgent({
      namespaces: { 'test.local': { via: 'dns', port, family: 4 } },
      dns: { servers: [bind.server], timeout: 500, tries: 2 },
      cache: { minTtl: 100 },
    });
  });

  afterAll(async () => {
    await agent?.close();
    await fleet?.close();
    await bind?.close();
  });

  it('sets the Host header whatever form the caller gives its headers in, and keeps a Host of its own', async () => {
    const forms: Array<[string, unknown]> = [
      ['none', undefined],
      ['object', { 'x-a': '1' }],
      ['flat array', ['x-a', '1']],
      ['flat array with a list value', ['x-a', ['1', '2']]],
      ['iterable', new Map([['x-a', '1']])],
      ['iterable with a list value', new Map([['x-a', ['1', '2']]])],
      ['object with Host', { Host: 'own.example' }],
      ['flat array with host', ['host', 'own.example']],
      ['iterable with host', new Map([['host', 'own.example']])],
    ];
    for (const [what, headers] of forms) {
      const before = fleet.servers.map((s) => s.seen.length);
      const res = await request(`http://${NAME}/h`, { dispatcher: agent, headers: headers as Record<string, string> });
      expect(res.statusCode, what).toBe(200);
      await res.body.text();
      const server = fleet.servers.find((s, i) => s.seen.length > before[i]!)!;
      expect(server.seen.at(-1)!.host, what).toBe(what.includes('ost') ? 'own.example' : NAME);
    }
    // The caller's headers are not modified.
    const mine = { 'x-a': '1' };
    await (await request(`http://${NAME}:8080/h`, { dispatcher: agent, headers: mine })).body.text();
    expect(mine).toEqual({ 'x-a': '1' });
    const seen = fleet.servers.flatMap((s) => s.seen).map((s) => s.host);
    expect(seen).toContain(`${NAME}:8080`);
  });

  it('an instance that leaves and comes back gets a new pool, and its outcomes reach the health state Discovery holds now', async () => {
    const created: PoolCreateMessage[] = [];
    const closed: PoolCloseMessage[] = [];
    const onCreate = (m: unknown): void => void created.push(m as PoolCreateMessage);
    const onClose = (m: unknown): void => void closed.push(m as PoolCloseMessage);
    subscribe('signpost:pool:create', onCreate);
    subscribe('signpost:pool:close', onClose);
    const leaving = fleet.servers[0]!;
    const key = `${leaving.address}:${leaving.port}`;
    const poll = async (until: () => boolean): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (!until() && Date.now() < deadline) {
        await (await request(`http://${BACK}/poll`, { dispatcher: agent })).body.text();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(until()).toBe(true);
    };
    try {
      for (let i = 0; i < 6; i++) await (await request(`http://${BACK}/warm`, { dispatcher: agent })).body.text();
      expect(created.filter((m) => m.key === key)).toHaveLength(1);
      await bind.update([`update delete ${BACK} A ${leaving.address}`]);
      await poll(() => closed.some((m) => m.key === key && m.reason === 'removed'));
      const gone = leaving.count;
      for (let i = 0; i < 6; i++) await (await request(`http://${BACK}/away`, { dispatcher: agent })).body.text();
      expect(leaving.count).toBe(gone);

      await bind.update([`update add ${BACK} 1 A ${leaving.address}`]);
      await poll(() => leaving.count > gone);
      // A fresh pool, not the drained one.
      expect(created.filter((m) => m.key === key)).toHaveLength(2);
      const state = discoveryHealth(agent.discovery).state({ address: leaving.address, port: leaving.port });
      const counted = state.requests;
      const sent = leaving.count;
      for (let i = 0; i < 9; i++) await (await request(`http://${BACK}/back`, { dispatcher: agent })).body.text();
      expect(state.requests - counted).toBe(leaving.count - sent);
      expect(leaving.count).toBeGreaterThan(sent);
      expect(state.inflight).toBe(0);
      expect(agent.stats().instances[key]!.inflight).toBe(0);
    } finally {
      unsubscribe('signpost:pool:create', onCreate);
      unsubscribe('signpost:pool:close', onClose);
      await bind.update([`update add ${BACK} 1 A ${leaving.address}`]).catch(() => undefined);
    }
  });
});
