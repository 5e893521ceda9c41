/**
 * Ejected instances are probed by whoever reaches them, and return as soon as they answer: over
 * TCP for an instance that refused connections, over HTTP (`ejection.probe.path`) for one that
 * froze. Both for the agent and for the interceptor.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { DiscoveryAgent, discoveryInterceptor } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { Fleet, InstanceServer } from '../fixtures/fleet.ts';

const NAME = 'probe.test.local';

function events(): { seen: string[]; stop: () => void } {
  const seen: string[] = [];
  const onEject = (m: unknown): void => void seen.push(`eject ${(m as { key: string; reason: string }).key} ${(m as { reason: string }).reason}`);
  const onReturn = (m: unknown): void => void seen.push(`return ${(m as { key: string }).key} ${(m as { by: string }).by}`);
  subscribe('signpost:health:eject', onEject);
  subscribe('signpost:health:return', onReturn);
  return {
    seen,
    stop: () => {
      unsubscribe('signpost:health:eject', onEject);
      unsubscribe('signpost:health:return', onReturn);
    },
  };
}

async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(condition()).toBe(true);
}

describe('probing of ejected instances', () => {
  it('a frozen instance is ejected by the stall detector and brought back by its health path once it answers', async () => {
    const fleet = await Fleet.start(3, { firstOctet: 150 });
    const frozen = fleet.servers[0]!;
    const key = `${frozen.address}:${frozen.port}`;
    const agent = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: fleet.instances } },
      ejection: { stallTimeout: 300, probe: { path: '/health', interval: 100, timeout: 100 } },
    });
    const { seen, stop } = events();
    try {
      for (let i = 0; i < 6; i++) await (await request(`http://${NAME}/warm`, { dispatcher: agent })).body.text();
      frozen.behaviour = 'hang';
      const pending = Array.from({ length: 6 }, () => request(`http://${NAME}/x`, { dispatcher: agent }).then((r) => r.body.text()));
      await until(() => seen.includes(`eject ${key} stall`));
      // Every GET stuck on it was retried elsewhere.
      await Promise.all(pending);
      const probes = () => frozen.seen.filter((s) => s.url === '/health').length;
      await until(() => probes() >= 2);
      expect(seen.some((e) => e.startsWith(`return ${key}`))).toBe(false);
      frozen.behaviour = 'ok';
      await until(() => seen.includes(`return ${key} probe`), 5000);
      expect(frozen.seen.find((s) => s.url === '/health')?.host).toBe(NAME);
    } finally {
      stop();
      await agent.destroy();
      await fleet.close();
    }
  });

  it('the interceptor probes too: an instance that refused connections returns once it listens again', async () => {
    const fleet = await Fleet.start(3, { firstOctet: 154 });
    const down = fleet.servers[0]!;
    const key = `${down.address}:${down.port}`;
    const discovery = new Discovery({ services: { [NAME]: { via: 'static', instances: fleet.instances } }, ejection: { probe: { interval: 100, timeout: 100 } } });
    const base = new Agent();
    const dispatcher = base.compose(discoveryInterceptor({ discovery }));
    const { seen, stop } = events();
    let revived: InstanceServer | undefined;
    try {
      for (let i = 0; i < 6; i++) await (await request(`http://${NAME}/warm`, { dispatcher })).body.text();
      const port = down.port;
      await down.kill();
      for (let i = 0; i < 6; i++) await (await request(`http://${NAME}/x`, { dispatcher })).body.text();
      await until(() => seen.includes(`eject ${key} consecutive`));
      revived = new InstanceServer(down.address);
      await revived.listen(port);
      await until(() => seen.includes(`return ${key} probe`), 5000);
    } finally {
      stop();
      await base.close();
      await discovery.close();
      await revived?.kill();
      await fleet.close();
    }
  });

  it('the stall detector never cuts short a request its caller chose to wait for, nor one with nowhere else to go', async () => {
    const fleet = await Fleet.start(3, { firstOctet: 158 });
    const slow = fleet.servers[0]!;
    slow.delay = 800;
    const alone = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: [fleet.instances[0]!] } }, ejection: { stallTimeout: 200 } });
    const patient = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } }, headersTimeout: 5000, ejection: { stallTimeout: 200 } });
    try {
      // One instance: nowhere else to go, so the slow answer is awaited.
      const one = await request(`http://${NAME}/alone`, { dispatcher: alone });
      expect([one.statusCode, await one.body.text()]).toEqual([200, slow.address]);
      // A chosen headersTimeout: the request waits on the slow instance even once it is ejected.
      let answeredBySlow = 0;
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          const res = await request(`http://${NAME}/patient`, { dispatcher: patient });
          if ((await res.body.text()) === slow.address) answeredBySlow++;
        }),
      );
      expect(answeredBySlow).toBe(slow.seen.filter((s) => s.url === '/patient').length);
      expect(answeredBySlow).toBeGreaterThan(0);
    } finally {
      await alone.destroy();
      await patient.destroy();
      await fleet.close();
    }
  });
});
