import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import type { PoolCloseMessage } from '../../src/diagnostics.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet } from '../fixtures/fleet.ts';
import { FakeClock } from '../support/fake-clock.ts';

const NAME = 'api.test.local';
const DRAIN = 'drain.test.local';

describe('DiscoveryAgent over DNS A records from bind9', () => {
  let bind: Bind9;
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await Fleet.start(3, { samePort: true, firstOctet: 20 });
    const a = (name: string, ttl: number) => fleet.servers.map((s) => `${name} ${ttl} IN A ${s.address}`);
    bind = await Bind9.start({
      zones: { 'test.local': [...a('api', 30), ...a('drain', 1), 'txtonly 30 IN TXT "no addresses"'].join('\n') },
    });
  });

  afterAll(async () => {
    await fleet?.close();
    await bind?.close();
  });

  function agentFor(extra: Record<string, unknown> = {}): DiscoveryAgent {
    const port = fleet.servers[0]!.port;
    return new DiscoveryAgent({
      services: {
        [NAME]: { via: 'dns', port, family: 4 },
        [DRAIN]: { via: 'dns', port, family: 4 },
      },
      namespaces: { 'test.local': { via: 'dns', port, family: 4 } },
      dns: { servers: [bind.server], timeout: 500, tries: 2 },
      cache: { minTtl: 100 },
      ...extra,
    });
  }

  it('spreads 3,000 requests over the 3 A records (33% ± 5% each)', async () => {
    const agent = agentFor();
    const before = fleet.counts;
    try {
      let sent = 0;
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (sent < 3000) {
            sent++;
            const { statusCode, body } = await request(`http://${NAME}/spread`, { dispatcher: agent });
            expect(statusCode).toBe(200);
            await body.text();
          }
        }),
      );
      const counts = fleet.counts.map((c, i) => c - before[i]!);
      expect(counts.reduce((x, y) => x + y, 0)).toBe(3000);
      for (const count of counts) {
        expect(count / 3000).toBeGreaterThan(0.28);
        expect(count / 3000).toBeLessThan(0.38);
      }
      expect(fleet.servers[0]!.seen.at(-1)!.host).toBe(NAME);
    } finally {
      await agent.close();
    }
  });

  it('gives typed errors for a name that does not exist or has no addresses, without hanging', async () => {
    const agent = agentFor();
    try {
      await expect(request('http://nope.test.local/', { dispatcher: agent })).rejects.toMatchObject({
        code: 'SIGNPOST_ERR_NOT_FOUND',
      });
      await expect(request('http://txtonly.test.local/', { dispatcher: agent })).rejects.toMatchObject({
        code: 'SIGNPOST_ERR_NO_INSTANCES',
      });
    } finally {
      await agent.close();
    }
  });

  it('with the DNS server down, a warm name keeps working on its stale answer and a cold one fails typed', async () => {
    const clock = new FakeClock();
    const agent = agentFor({ clock, cache: { minTtl: 100, staleTtl: 60_000 } });
    try {
      await (await request(`http://${DRAIN}/warm`, { dispatcher: agent })).body.text();
      await bind.stop();
      try {
        // Past drain's 1 s TTL, its refresh (1 s after) fails: the answer is served stale now.
        const failed = new Promise<void>((resolve) => agent.discovery.onError(({ name }) => name === DRAIN && resolve()));
        await clock.run(2000);
        await failed;
        for (let i = 0; i < 20; i++) {
          const { statusCode, body } = await request(`http://${DRAIN}/stale`, { dispatcher: agent });
          await body.text();
          expect(statusCode).toBe(200);
        }
        await expect(request('http://never-asked.test.local/', { dispatcher: agent })).rejects.toMatchObject({
          code: 'SIGNPOST_ERR_RESOLVE',
          hostname: 'never-asked.test.local',
        });
      } finally {
        await bind.restart();
      }
    } finally {
      await agent.close();
    }
  });

  it('drains the pool of a removed instance: in-flight requests finish, then it closes', async () => {
    const agent = agentFor();
    const closed: PoolCloseMessage[] = [];
    const onClose = (m: unknown): void => void closed.push(m as PoolCloseMessage);
    subscribe('signpost:pool:close', onClose);
    const leaving = fleet.servers[0]!;
    try {
      // Warm every pool, then make the leaving instance slow so requests are in flight on it.
      for (let i = 0; i < 6; i++) await (await request(`http://${DRAIN}/warm`, { dispatcher: agent })).body.text();
      leaving.hold = /slow/;
      const inFlight = Array.from({ length: 9 }, () =>
        request(`http://${DRAIN}/slow`, { dispatcher: agent }).then(async (r) => {
          await r.body.text();
          return r.statusCode;
        }),
      );
      await bind.update([`update delete ${DRAIN} A ${leaving.address}`]);
      // Keep the name in use until the cache refreshes it and the pool is closed.
      const deadline = Date.now() + 15_000;
      while (!closed.some((m) => m.reason === 'removed') && Date.now() < deadline) {
        await (await request(`http://${DRAIN}/poll`, { dispatcher: agent })).body.text();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // The pool was told to close while its requests were still unanswered: they finish.
      expect(leaving.held).toBe(3);
      leaving.release();
      expect(await Promise.all(inFlight)).toEqual(Array(9).fill(200));
      const removed = closed.filter((m) => m.reason === 'removed');
      expect(removed.map((m) => m.key)).toEqual([`${leaving.address}:${leaving.port}`]);
      const after = leaving.count;
      for (let i = 0; i < 10; i++) await (await request(`http://${DRAIN}/after`, { dispatcher: agent })).body.text();
      expect(leaving.count).toBe(after);
    } finally {
      leaving.hold = undefined;
      leaving.release();
      unsubscribe('signpost:pool:close', onClose);
      await agent.close();
      await bind.update([`update add ${DRAIN} 1 A ${leaving.address}`]);
    }
  });
});
