/**
 * The request path under the faults real instances have, with default options unless a scenario
 * says otherwise: a frozen instance (accepts, never answers), a SYN-dropped one (a listener whose
 * backlog is full), a half-failing one, a local zone that recovers, a process that reaches the end
 * of its script while a request waits to be retried, a soak where every request must settle, an
 * https name churn, and a closed agent that is still referenced. Figures are printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet, InstanceServer, Ledger, TestCa } from '../fixtures/fleet.ts';
import { heapAfterGc, mib, ProcessWatch, report, runLanes, scaled, sleep } from './support.ts';
import { handlesAbove, openHandles } from '../support/handles.ts';

const watch = new ProcessWatch();
beforeAll(() => void watch.start());
afterAll(() => watch.stop());

interface Listened {
  readonly events: Array<{ at: number; key: string; kind?: string; reason?: string }>;
  readonly picks: Array<{ at: number; key: string }>;
  stop(): void;
}

function listen(...channels: string[]): Listened {
  const events: Listened['events'] = [];
  const picks: Listened['picks'] = [];
  const handlers = channels.map((name) => {
    const handler = (message: unknown): void => {
      const m = message as { key: string; kind?: string; reason?: string };
      if (name === 'signpost:agent:pick') picks.push({ at: performance.now(), key: m.key });
      else events.push({ at: performance.now(), key: m.key, ...(m.kind && { kind: m.kind }), ...(m.reason && { reason: m.reason }) });
    };
    subscribe(name, handler);
    return [name, handler] as const;
  });
  return {
    events,
    picks,
    stop: () => {
      for (const [name, handler] of handlers) unsubscribe(name, handler);
    },
  };
}

/** GETs on `lanes` lanes until `until()`; every latency and error code is kept. */
async function load(agent: DiscoveryAgent, url: string, lanes: number, until: () => boolean) {
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  let ok = 0;
  await runLanes(lanes, until, async () => {
    const started = performance.now();
    try {
      const { statusCode, body } = await request(url, { dispatcher: agent });
      await body.text();
      if (statusCode < 500) ok++;
      codes[String(statusCode)] = (codes[String(statusCode)] ?? 0) + 1;
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'ERR';
      codes[code] = (codes[code] ?? 0) + 1;
    }
    latencies.push(performance.now() - started);
  });
  return { latencies, codes, ok, requests: latencies.length };
}

describe('an instance that stops answering, with default options', () => {
  test('a frozen instance (accepts, never answers) is out of rotation within 15 s; later requests do not wait on it', async () => {
    const NAME = 'frozen.faults.local';
    const fleet = await Fleet.start(3, { firstOctet: 100 });
    const frozen = fleet.servers[0]!;
    const key = `${frozen.address}:${frozen.port}`;
    const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
    const seen = listen('signpost:health:eject', 'signpost:agent:pick');
    try {
      await load(agent, `http://${NAME}/warm`, 4, () => fleet.counts.every((c) => c >= 3));
      frozen.behaviour = 'hang';
      const frozeAt = performance.now();
      const ejected = () => seen.events.find((e) => e.key === key);
      const result = await load(agent, `http://${NAME}/x`, 10, () => {
        const e = ejected();
        return (e !== undefined && performance.now() - e.at > scaled(3000)) || performance.now() - frozeAt > 30_000;
      });
      const ejection = ejected();
      const picksAfter = ejection === undefined ? -1 : seen.picks.filter((p) => p.key === key && p.at > ejection.at + 50).length;
      const longest = Math.max(...result.latencies);
      const after = ejection === undefined ? [] : result.latencies.slice(-50);
      report('request path: frozen instance (default options)', {
        requests: result.requests,
        failures: result.requests - result.ok,
        timeToEjectionMs: ejection === undefined ? 'never' : Math.round(ejection.at - frozeAt),
        ejectedFor: `${ejection?.kind} (${ejection?.reason})`,
        longestWaitMs: Math.round(longest),
        slowestOfLast50Ms: Math.round(Math.max(...after)),
        picksOfFrozenAfterEjection: picksAfter,
      });
      expect(ejection).toBeDefined();
      expect(ejection!.at - frozeAt).toBeLessThan(15_000);
      expect(ejection!.reason).toBe('stall');
      // GETs stuck on it were retried elsewhere: none failed.
      expect(result.requests - result.ok).toBe(0);
      expect(picksAfter).toBe(0);
    } finally {
      seen.stop();
      await agent.destroy();
      await fleet.close();
    }
  });

  test('a SYN-dropped instance (listener backlog full) is out of rotation within 15 s; the connect timeout names it', async () => {
    const NAME = 'syn.faults.local';
    const fleet = await Fleet.start(2, { firstOctet: 104 });
    // A listener whose process never accepts: once its backlog is full the kernel drops SYNs.
    const blackhole = await startBlackhole('127.0.0.106');
    const key = `127.0.0.106:${blackhole.port}`;
    const agent = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: [...fleet.instances, { address: '127.0.0.106', port: blackhole.port }] } },
    });
    const seen = listen('signpost:health:eject', 'signpost:agent:pick');
    try {
      const started = performance.now();
      const ejected = () => seen.events.find((e) => e.key === key);
      const result = await load(agent, `http://${NAME}/x`, 6, () => {
        const e = ejected();
        return (e !== undefined && performance.now() - e.at > scaled(2000)) || performance.now() - started > 30_000;
      });
      const ejection = ejected();
      const picksAfter = ejection === undefined ? -1 : seen.picks.filter((p) => p.key === key && p.at > ejection.at + 50).length;
      // A caller whose only instance drops SYNs sees the connect timeout itself, naming it.
      const alone = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: [{ address: '127.0.0.106', port: blackhole.port }] } }, retry: { retries: 0 } });
      const timeout = (await request(`http://${NAME}/y`, { dispatcher: alone }).catch((e: unknown) => e)) as Error & { code?: string };
      await alone.destroy();
      report('request path: SYN-dropped instance (default options)', {
        requests: result.requests,
        failures: result.requests - result.ok,
        errorCodes: JSON.stringify(result.codes),
        timeToEjectionMs: ejection === undefined ? 'never' : Math.round(ejection.at - started),
        ejectedFor: `${ejection?.kind} (${ejection?.reason})`,
        longestWaitMs: Math.round(Math.max(...result.latencies)),
        picksAfterEjection: picksAfter,
        connectTimeoutMessage: timeout.message,
      });
      expect(ejection).toBeDefined();
      expect(ejection!.at - started).toBeLessThan(15_000);
      expect(ejection!.kind).toBe('connect');
      expect(picksAfter).toBe(0);
      expect(result.requests - result.ok).toBe(0);
      expect(timeout.code).toBe('UND_ERR_CONNECT_TIMEOUT');
      expect(timeout.message).toContain(key);
      expect(timeout.message).toMatch(/security group/);
      expect(timeout.message).toMatch(/network ACL/);
    } finally {
      seen.stop();
      await agent.destroy();
      await fleet.close();
      blackhole.close();
    }
  });
});

/** A listening socket with a full backlog in a child process that never accepts. */
async function startBlackhole(address: string): Promise<{ port: number; close(): void }> {
  const script = [
    "const net = require('node:net');",
    'const server = net.createServer();',
    `server.listen({ port: 0, host: '${address}', backlog: 1 }, () => {`,
    '  process.stdout.write(String(server.address().port) + "\\n");',
    '  setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0), 50);',
    '});',
  ].join('\n');
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('exit', (code) => reject(new Error(`blackhole exited with ${code}`)));
  });
  await sleep(200);
  // Fill the accept queue (and then some): these connections are never accepted.
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const socket = connect({ host: address, port });
    socket.on('error', () => undefined);
    fillers.push(socket);
  }
  await sleep(300);
  return {
    port,
    close() {
      for (const socket of fillers) socket.destroy();
      child.kill('SIGKILL');
    },
  };
}

test('an instance failing every other request is ejected (failure percentage); consecutive counts never see it', async () => {
  const NAME = 'half.faults.local';
  const fleet = await Fleet.start(2, { firstOctet: 108 });
  let n = 0;
  const half: Server = createServer((_req, res) => {
    res.writeHead(n++ % 2 === 0 ? 503 : 200).end('half');
  });
  await new Promise<void>((resolve) => half.listen(0, '127.0.0.110', resolve));
  const port = (half.address() as { port: number }).port;
  const key = `127.0.0.110:${port}`;
  const agent = new DiscoveryAgent({
    services: { [NAME]: { via: 'static', instances: [...fleet.instances, { address: '127.0.0.110', port }] } },
  });
  const seen = listen('signpost:health:eject', 'signpost:agent:pick');
  try {
    const started = performance.now();
    const ejected = () => seen.events.find((e) => e.key === key);
    const result = await load(agent, `http://${NAME}/x`, 6, () => {
      const e = ejected();
      return (e !== undefined && performance.now() - e.at > 500) || performance.now() - started > 20_000;
    });
    const ejection = ejected();
    report('request path: half-failing instance', {
      requests: result.requests,
      answeredByIt: n,
      failedByIt: Math.ceil(n / 2),
      ejected: ejection !== undefined ? 'yes' : 'no',
      reason: ejection?.reason ?? '',
      timeToEjectionMs: ejection === undefined ? 'never' : Math.round(ejection.at - started),
    });
    expect(ejection).toBeDefined();
    expect(ejection!.reason).toBe('failure-percentage');
  } finally {
    seen.stop();
    await agent.destroy();
    await fleet.close();
    await new Promise<void>((resolve) => half.close(() => resolve()));
  }
});

test('traffic is back in the local zone within 5 s of its instances recovering (they are probed while ejected)', async () => {
  const NAME = 'zones.faults.local';
  const fleet = await Fleet.start(6, { firstOctet: 112 });
  const zoneOf = (i: number): string => ['us-east-1a', 'us-east-1b', 'us-east-1c'][Math.floor(i / 2)]!;
  const agent = new DiscoveryAgent({
    services: { [NAME]: { via: 'static', instances: fleet.instances.map((instance, i) => ({ ...instance, zone: zoneOf(i) })) } },
    zone: 'us-east-1a',
  });
  const seen = listen('signpost:health:eject', 'signpost:health:return', 'signpost:agent:pick');
  const local = new Set(fleet.servers.slice(0, 2).map((s) => `${s.address}:${s.port}`));
  const lastPicks = (n: number) => seen.picks.slice(-n);
  try {
    await load(agent, `http://${NAME}/warm`, 4, () => seen.picks.length >= 40);
    expect(lastPicks(20).every((p) => local.has(p.key))).toBe(true);
    // The local zone goes down (its tasks stop: connections refused)…
    const ports = fleet.servers.slice(0, 2).map((s) => s.port);
    await Promise.all(fleet.servers.slice(0, 2).map((s) => s.kill()));
    let done = false;
    const traffic = load(agent, `http://${NAME}/x`, 4, () => done);
    const deadline = performance.now() + 10_000;
    while (!lastPicks(20).every((p) => !local.has(p.key)) && performance.now() < deadline) await sleep(50);
    const spilled = lastPicks(20).every((p) => !local.has(p.key));
    // …and comes back on the same addresses.
    const revived: InstanceServer[] = [];
    for (let i = 0; i < 2; i++) {
      const server = new InstanceServer(fleet.servers[i]!.address);
      await server.listen(ports[i]);
      revived.push(server);
    }
    const recoveredAt = performance.now();
    while (!(lastPicks(20).length === 20 && lastPicks(20).every((p) => local.has(p.key) && p.at > recoveredAt)) && performance.now() - recoveredAt < 15_000) {
      await sleep(20);
    }
    const backAt = lastPicks(20)[0]!.at;
    done = true;
    const result = await traffic;
    report('request path: local zone recovers', {
      requests: result.requests,
      failures: result.requests - result.ok,
      spilledToOtherZones: spilled ? 'yes' : 'no',
      returnsByProbe: seen.events.filter((e) => local.has(e.key) && e.kind === undefined).length,
      timeBackInLocalZoneMs: Math.round(backAt - recoveredAt),
    });
    expect(spilled).toBe(true);
    expect(backAt - recoveredAt).toBeLessThan(5000);
    expect(result.requests - result.ok).toBe(0);
    await Promise.all(revived.map((s) => s.kill()));
  } finally {
    seen.stop();
    await agent.destroy();
    await fleet.close();
  }
});

test('a script that ends while its request waits to be retried: the request still settles', async () => {
  // Nothing listens yet: attempt 1 is refused, attempt 2 (at once) too, attempt 3 waits its
  // backoff, during which the instance starts. The child has nothing else keeping it alive.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.120', resolve));
  const port = (holder.address() as { port: number }).port;
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  const child = spawn(process.execPath, [join(import.meta.dirname, 'exit-during-backoff.child.ts'), String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await sleep(400);
  const server = new InstanceServer('127.0.0.120');
  await server.listen(port);
  const code = await exited;
  await server.kill();
  report('request path: exit during backoff', { output: output.trim(), exitCode: String(code), instanceGot: server.count });
  expect(output).toContain('settled 200');
  expect(code).toBe(0);
  expect(server.count).toBe(1);
});

test('under resets, refusals and 5xx, every one of 10,000 requests settles', async () => {
  const NAME = 'soak.faults.local';
  const ledger = new Ledger();
  const backends: InstanceServer[] = (await Fleet.start(0, { octets: [122, 123, 124], samePort: true, ledger, keepAliveTimeout: 5000, keepSeen: false })).servers;
  backends[0]!.behaviour = 'reset';
  backends[0]!.resetShare = 0.3;
  const agent = new DiscoveryAgent({
    services: { [NAME]: { via: 'static', instances: backends.map((b) => ({ address: b.address, port: b.port })) } },
    retry: { minDelay: 1, maxDelay: 5 },
  });
  const total = scaled(10_000);
  let started = 0;
  let settled = 0;
  let failed = 0;
  try {
    let killed = false;
    await runLanes(32, () => started >= total, async (lane) => {
      const i = started++;
      if (i === Math.floor(total / 2) && !killed) {
        killed = true;
        void backends[2]!.kill();
      }
      try {
        const post = lane % 4 === 0;
        const { body } = await request(
          `http://${NAME}/r${i}`,
          post ? { dispatcher: agent, method: 'POST', body: `p${i}`, headers: { 'x-idempotency-id': `p${i}` } } : { dispatcher: agent },
        );
        await body.text();
      } catch {
        failed++;
      }
      settled++;
    });
    report('request path: every request settles', { requests: total, settled, failures: failed, duplicatePosts: ledger.duplicates });
    expect(settled).toBe(total);
    expect(ledger.duplicates).toBe(0);
  } finally {
    await agent.destroy();
    await Promise.all(backends.map((b) => b.kill()));
  }
});

test('an https name churn: pools stay bounded by the names cached, and the heap stays flat', async () => {
  const ca = await TestCa.create();
  const fleet = await Fleet.start(2, { tls: await ca.issue('*.churn.faults.local'), samePort: true, firstOctet: 126 });
  const bind = await Bind9.start({ zones: { 'churn.faults.local': fleet.servers.map((s) => `* 60 IN A ${s.address}`).join('\n') } });
  const maxNames = 200;
  const agent = new DiscoveryAgent({
    namespaces: { 'churn.faults.local': { via: 'dns', port: fleet.servers[0]!.port, family: 4 } },
    dns: { servers: [bind.server] },
    cache: { maxNames },
    connect: { ca: ca.cert },
  });
  let open = 0;
  let peak = 0;
  let created = 0;
  const onCreate = (): void => {
    created++;
    peak = Math.max(peak, ++open);
  };
  const onClose = (): void => void open--;
  subscribe('signpost:pool:create', onCreate);
  subscribe('signpost:pool:close', onClose);
  const before = openHandles();
  try {
    const names = scaled(800);
    let next = 0;
    const heaps: number[] = [];
    await runLanes(16, () => next >= names, async () => {
      const i = next++;
      const { body } = await request(`https://svc${i}.churn.faults.local/x`, { dispatcher: agent });
      await body.text();
    });
    heaps.push(await heapAfterGc());
    next = 0;
    await runLanes(16, () => next >= names, async () => {
      const i = names + next++;
      const { body } = await request(`https://svc${i}.churn.faults.local/x`, { dispatcher: agent });
      await body.text();
    });
    heaps.push(await heapAfterGc());
    report('request path: https name churn', {
      names: 2 * names,
      maxNames,
      poolsCreated: created,
      poolsOpenAtPeak: peak,
      poolsOpenAtEnd: open,
      heapAfterFirstHalfMiB: mib(heaps[0]!),
      heapAfterSecondHalfMiB: mib(heaps[1]!),
    });
    // Each name needs its own TLS pool, but a name the cache let go takes its pools with it.
    expect(peak).toBeLessThanOrEqual(2 * maxNames + 2 * 16 + 8);
    expect(heaps[1]! - heaps[0]!).toBeLessThan(16 * 1024 * 1024);
  } finally {
    unsubscribe('signpost:pool:create', onCreate);
    unsubscribe('signpost:pool:close', onClose);
    await agent.close();
    await fleet.close();
    await bind.close();
    await ca.remove();
  }
  expect(await handlesAbove(before)).toEqual({});
});

test('a closed agent lets go of its pools even while it is still referenced', async () => {
  const NAME = 'closed.faults.local';
  const fleet = await Fleet.start(3, { firstOctet: 130 });
  const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
  const pools: Array<WeakRef<object>> = [];
  const onCreate = (message: unknown): void => void pools.push(new WeakRef(message as object));
  subscribe('signpost:pool:create', onCreate);
  try {
    for (let i = 0; i < 9; i++) await (await request(`http://${NAME}/x`, { dispatcher: agent })).body.text();
    expect(pools).toHaveLength(3);
    await agent.close();
    await heapAfterGc();
    const alive = pools.filter((ref) => ref.deref() !== undefined).length;
    report('request path: closed agent, still referenced', { poolsMade: pools.length, poolsStillReachable: alive, agentClosed: String(agent.closed) });
    expect(alive).toBe(0);
    expect(agent.closed).toBe(true);
  } finally {
    unsubscribe('signpost:pool:create', onCreate);
    await fleet.close();
  }
});

test('no unhandled rejection or listener leak in the whole file', () => {
  expect(watch.unhandled).toEqual([]);
  expect(watch.listenerWarnings).toEqual([]);
});
