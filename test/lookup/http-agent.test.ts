/**
 * DiscoveryHttpAgent / DiscoveryHttpsAgent with real clients (node:http, axios, got) against real
 * instances on 127.0.0.x found through SRV records in bind9: the spread, the instance's port, the
 * Host header and TLS servername, failover of refused and timed-out connects, ejection, and the
 * errors a caller sees.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import axios from 'axios';
import got from 'got';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Discovery } from '../../src/discovery.ts';
import { SignpostError } from '../../src/errors.ts';
import { DiscoveryHttpAgent, DiscoveryHttpsAgent } from '../../src/http-agent.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet, InstanceServer, TestCa } from '../fixtures/fleet.ts';

const ZONE = 'node.test';
const API = `api.${ZONE}`;

interface Answer {
  status: number;
  body: string;
}

/** A GET through node:http with this agent. */
function get(url: string, agent: http.Agent, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).get(url, { agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Runs `total` calls, `lanes` at a time; returns how many each answer body got. */
async function spread(total: number, lanes: number, call: () => Promise<string>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let started = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (started < total) {
        started++;
        const body = await call();
        counts.set(body, (counts.get(body) ?? 0) + 1);
      }
    }),
  );
  return counts;
}

function expectEven(counts: Map<string, number>, addresses: string[], total: number): void {
  expect([...counts.keys()].sort()).toEqual([...addresses].sort());
  for (const count of counts.values()) expect(count / total).toBeGreaterThan(1 / addresses.length - 0.08);
}

describe('DiscoveryHttpAgent over SRV records', () => {
  let bind: Bind9;
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await Fleet.start(3, { firstOctet: 71 });
    const records = fleet.servers.flatMap((s, i) => [`_http._tcp.api 1 IN SRV 0 1 ${s.port} i${i}`, `i${i} 30 IN A ${s.address}`]);
    bind = await Bind9.start({ zones: { [ZONE]: records.join('\n') } });
  });

  afterAll(async () => {
    await fleet?.close();
    await bind?.close();
  });

  function discoveryFor(extra: Record<string, unknown> = {}): Discovery {
    return new Discovery({
      namespaces: { [ZONE]: { via: 'srv', srvPrefix: '_http._tcp' } },
      dns: { servers: [bind.server], timeout: 500, tries: 2 },
      ...extra,
    });
  }

  it('node:http with keep-alive: requests spread over the instances at their SRV ports, Host stays the name', async () => {
    const discovery = discoveryFor();
    const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
    try {
      const counts = await spread(300, 4, async () => {
        const answer = await get(`http://${API}/spread`, agent);
        expect(answer.status).toBe(200);
        return answer.body;
      });
      expectEven(counts, fleet.servers.map((s) => s.address), 300);
      expect(fleet.servers.every((s) => s.seen.at(-1)?.host === API)).toBe(true);
      // Keep-alive: connections are pooled per instance, far fewer than requests.
      const pools = Object.keys(agent.freeSockets);
      expect(pools.sort()).toEqual(fleet.servers.map((s) => `${s.address}:${s.port}:`).sort());
    } finally {
      agent.destroy();
      await discovery.close();
    }
  });

  it('node:http: the spread survives an instance being killed; its connects fail over and it is ejected', async () => {
    const victims = await Fleet.start(3, { firstOctet: 75 });
    const d = await Bind9.start({
      zones: { [ZONE]: victims.servers.flatMap((s, i) => [`_http._tcp.api 30 IN SRV 0 1 ${s.port} v${i}`, `v${i} 30 IN A ${s.address}`]).join('\n') },
    });
    const discovery = new Discovery({
      namespaces: { [ZONE]: { via: 'srv', srvPrefix: '_http._tcp' } },
      dns: { servers: [d.server], timeout: 500, tries: 2 },
    });
    const agent = new DiscoveryHttpAgent({ discovery });
    try {
      const before = await spread(90, 3, async () => (await get(`http://${API}/`, agent)).body);
      expectEven(before, victims.servers.map((s) => s.address), 90);
      const dead = victims.servers[1]!;
      await dead.kill();
      const failures: unknown[] = [];
      const after = await spread(200, 3, async () => {
        try {
          return (await get(`http://${API}/`, agent)).body;
        } catch (error) {
          failures.push(error);
          return 'failed';
        }
      });
      expect(failures).toEqual([]);
      expectEven(after, [victims.servers[0]!.address, victims.servers[2]!.address], 200);
      // Refused at once, the dead instance was ejected after its first refused connect.
      const state = discovery.health.stats().states.find((s) => s.key === `${dead.address}:${dead.port}`);
      expect(state).toMatchObject({ ejected: true });
      expect(state!.failures).toBeLessThanOrEqual(3);
      // Back on its port, the agent's probe returns it long before its 30 s ejection ends.
      await dead.listen(dead.port);
      await vi.waitFor(
        async () => {
          await get(`http://${API}/`, agent);
          expect(dead.count).toBeGreaterThan(before.get(dead.address)!);
        },
        { timeout: 10_000, interval: 100 },
      );
    } finally {
      agent.destroy();
      await discovery.close();
      await victims.close();
      await d.close();
    }
  });

  it('axios (httpAgent) spreads, and survives an instance being killed', async () => {
    const victims = await Fleet.start(3, { firstOctet: 78 });
    const discovery = new Discovery({ services: { [API]: { via: 'static', instances: victims.instances } } });
    const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
    const client = axios.create({ httpAgent: agent, proxy: false, responseType: 'text' });
    try {
      const before = await spread(150, 3, async () => (await client.get<string>(`http://${API}/axios`)).data);
      expectEven(before, victims.servers.map((s) => s.address), 150);
      const dead = victims.servers[0]!;
      await dead.kill();
      // Idle keep-alive connections to it see their reset (a request that took one first would
      // get ECONNRESET with req.reusedSocket set, as with any http.Agent: see the README).
      await vi.waitFor(() => expect(agent.freeSockets[`${dead.address}:${dead.port}:`]).toBeUndefined());
      const after = await spread(150, 3, async () => (await client.get<string>(`http://${API}/axios`)).data);
      expectEven(after, [victims.servers[1]!.address, victims.servers[2]!.address], 150);
      expect(victims.servers[1]!.seen.at(-1)!.host).toBe(API);
    } finally {
      agent.destroy();
      await discovery.close();
      await victims.close();
    }
  });

  it('got (agent.http) spreads over the instances', async () => {
    const discovery = discoveryFor();
    const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
    try {
      const counts = await spread(150, 3, async () => got(`http://${API}/got`, { agent: { http: agent }, retry: { limit: 0 } }).text());
      expectEven(counts, fleet.servers.map((s) => s.address), 150);
    } finally {
      agent.destroy();
      await discovery.close();
    }
  });

  it('sends a POST exactly once when its first instance refuses the connection', async () => {
    const victims = await Fleet.start(2, { firstOctet: 81 });
    const dead = victims.servers[0]!;
    await dead.kill();
    const discovery = new Discovery({
      services: { [API]: { via: 'static', instances: victims.instances } },
      ejection: false,
    });
    const agent = new DiscoveryHttpAgent({ discovery });
    try {
      for (let i = 0; i < 6; i++) {
        const answer = await new Promise<number>((resolve, reject) => {
          const req = http.request(`http://${API}/orders`, { method: 'POST', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end(`order ${i}`);
        });
        expect(answer).toBe(200);
      }
      const bodies = victims.servers[1]!.seen.map((s) => s.body);
      expect(bodies).toEqual(['order 0', 'order 1', 'order 2', 'order 3', 'order 4', 'order 5']);
    } finally {
      agent.destroy();
      await discovery.close();
      await victims.close();
    }
  });

  it('every connect failing: the last error, with the attempts, after trying each instance once', async () => {
    const victims = await Fleet.start(3, { firstOctet: 84 });
    await victims.close();
    const discovery = new Discovery({ services: { [API]: { via: 'static', instances: victims.instances } }, ejection: false });
    const agent = new DiscoveryHttpAgent({ discovery, connectRetries: 5 });
    try {
      const error = await get(`http://${API}/`, agent).then(
        () => undefined,
        (e: unknown) => e as NodeJS.ErrnoException & { attempts?: Array<{ instance: string; error: Error }> },
      );
      expect(error).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
      expect(error!.attempts!.map((a) => a.instance).sort()).toEqual(victims.instances.map((i) => `${i.address}:${i.port}`).sort());
    } finally {
      agent.destroy();
      await discovery.close();
    }
  });

  it('keeps to maxSockets per instance while connects are in flight', async () => {
    const counting = await Fleet.start(1, { firstOctet: 87 });
    const server = counting.servers[0]!;
    let open = 0;
    let most = 0;
    server.server.on('connection', (socket: Socket) => {
      most = Math.max(most, ++open);
      socket.on('close', () => open--);
    });
    server.delay = 20;
    const discovery = new Discovery({ services: { [API]: { via: 'static', instances: counting.instances } } });
    const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true, maxSockets: 2 });
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => get(`http://${API}/`, agent)));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      agent.destroy();
      await discovery.close();
      await counting.close();
    }
  });

  it('a name that does not exist fails as a lookup does (ENOTFOUND, the SignpostError as cause), like http.Agent with discovery.lookup', async () => {
    const discovery = discoveryFor();
    const agent = new DiscoveryHttpAgent({ discovery });
    const plain = new http.Agent({ lookup: discovery.lookup });
    try {
      const ours = await get(`http://nope.${ZONE}/`, agent).catch((e: unknown) => e as NodeJS.ErrnoException);
      const viaLookup = await get(`http://nope.${ZONE}/`, plain).catch((e: unknown) => e as NodeJS.ErrnoException);
      for (const error of [ours, viaLookup] as NodeJS.ErrnoException[]) {
        expect(error).toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: `nope.${ZONE}` });
        expect(error.cause).toBeInstanceOf(SignpostError);
        expect((error.cause as SignpostError).code).toBe('SIGNPOST_ERR_NOT_FOUND');
      }
      expect((ours as Error).message).toBe((viaLookup as Error).message);
    } finally {
      agent.destroy();
      plain.destroy();
      await discovery.close();
    }
  });

  it('hosts it does not discover are served as by a plain http.Agent', async () => {
    const discovery = discoveryFor();
    const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
    const plain = new http.Agent({ keepAlive: true });
    const server = fleet.servers[0]!;
    try {
      const url = `http://${server.address}:${server.port}/direct`;
      const [ours, theirs] = [await get(url, agent), await get(url, plain)];
      expect(ours).toEqual(theirs);
      expect(Object.keys(agent.freeSockets)).toEqual(Object.keys(plain.freeSockets));
      const refused = `http://127.0.0.1:1/`;
      const [a, b] = await Promise.all([get(refused, agent).catch((e: unknown) => e), get(refused, plain).catch((e: unknown) => e)]);
      expect(a).toMatchObject({ code: (b as NodeJS.ErrnoException).code, message: (b as Error).message });
      // localhost is the system's, even when every other name is discovered.
      const everything = new Discovery({ unlisted: 'dns', dns: { servers: [bind.server], timeout: 500, tries: 1 } });
      const local = new InstanceServer('127.0.0.1');
      await local.listen();
      const all = new DiscoveryHttpAgent({ discovery: everything });
      try {
        expect(await get(`http://localhost:${local.port}/here`, all)).toEqual({ status: 200, body: '127.0.0.1' });
      } finally {
        all.destroy();
        await everything.close();
        await local.kill();
      }
    } finally {
      agent.destroy();
      plain.destroy();
      await discovery.close();
    }
  });

  it('closes idle connections to an instance that left the registry', async () => {
    const pool = await Fleet.start(2, { firstOctet: 89 });
    const d = await Bind9.start({
      zones: { [ZONE]: pool.servers.flatMap((s, i) => [`_http._tcp.api 1 IN SRV 0 1 ${s.port} p${i}`, `p${i} 1 IN A ${s.address}`]).join('\n') },
    });
    const discovery = new Discovery({
      namespaces: { [ZONE]: { via: 'srv', srvPrefix: '_http._tcp' } },
      dns: { servers: [d.server], timeout: 500, tries: 2 },
      cache: { minTtl: 100 },
    });
    const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
    const leaving = pool.servers[1]!;
    try {
      await spread(10, 2, async () => (await get(`http://${API}/`, agent)).body);
      expect(agent.freeSockets[`${leaving.address}:${leaving.port}:`]?.length).toBeGreaterThan(0);
      await d.update([`update delete _http._tcp.api.${ZONE} SRV 0 1 ${leaving.port} p1.${ZONE}.`]);
      await vi.waitFor(
        async () => {
          await get(`http://${API}/`, agent);
          expect(agent.freeSockets[`${leaving.address}:${leaving.port}:`]).toBeUndefined();
        },
        { timeout: 10_000, interval: 100 },
      );
    } finally {
      agent.destroy();
      await discovery.close();
      await pool.close();
      await d.close();
    }
  });

  it('checks its options: each bad value is a SIGNPOST_ERR_INVALID_ARG', async () => {
    const discovery = discoveryFor();
    try {
      const bad: unknown[] = [
        undefined,
        null,
        {},
        { discovery: {} },
        { discovery, connectRetries: -1 },
        { discovery, connectRetries: 11 },
        { discovery, connectRetries: 1.5 },
        { discovery, connectTimeout: -5 },
        { discovery, connectTimeout: '100' },
      ];
      for (const options of bad) {
        for (const Agent of [DiscoveryHttpAgent, DiscoveryHttpsAgent]) {
          expect(() => new Agent(options as never), JSON.stringify(options)).toThrow(
            expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }),
          );
        }
      }
    } finally {
      await discovery.close();
    }
  });
});

describe('DiscoveryHttpsAgent', () => {
  let ca: TestCa;
  let fleet: Fleet;
  let wrong: Fleet;

  beforeAll(async () => {
    ca = await TestCa.create();
    fleet = await Fleet.start(3, { firstOctet: 91, tls: await ca.issue(API) });
    wrong = await Fleet.start(1, { firstOctet: 94, tls: await ca.issue('other.example') });
  });

  afterAll(async () => {
    await fleet?.close();
    await wrong?.close();
    await ca?.remove();
  });

  it('spreads over the instances, verifying each certificate against the name called', async () => {
    const discovery = new Discovery({ services: { [API]: { via: 'static', instances: fleet.instances } } });
    const agent = new DiscoveryHttpsAgent({ discovery, ca: ca.cert, keepAlive: true });
    try {
      const counts = await spread(90, 3, async () => (await get(`https://${API}/tls`, agent)).body);
      expectEven(counts, fleet.servers.map((s) => s.address), 90);
    } finally {
      agent.destroy();
      await discovery.close();
    }
  });

  it('a certificate for another name fails the connect (ERR_TLS_CERT_ALTNAME_INVALID), never falling back to an unchecked one', async () => {
    const discovery = new Discovery({ services: { [API]: { via: 'static', instances: wrong.instances } } });
    const agent = new DiscoveryHttpsAgent({ discovery, ca: ca.cert });
    try {
      await expect(get(`https://${API}/`, agent)).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      expect(wrong.servers[0]!.count).toBe(0);
    } finally {
      agent.destroy();
      await discovery.close();
    }
  });

  it('destroy() during a connect ends the request at once and leaves nothing holding the process', async () => {
    // In a process of its own: a request whose TLS handshake never finishes, the agent destroyed
    // 50 ms in. The process must exit at once, not when connectTimeout (5 s) would have passed.
    const src = fileURLToPath(new URL('../../src/', import.meta.url));
    const script = `
      import https from 'node:https';
      import net from 'node:net';
      const { Discovery } = await import(${JSON.stringify(`${src}discovery.ts`)});
      const { DiscoveryHttpsAgent } = await import(${JSON.stringify(`${src}http-agent.ts`)});
      const silent = net.createServer(() => {});
      await new Promise((resolve) => silent.listen(0, '127.0.0.98', resolve));
      const discovery = new Discovery({ services: { 'api.node.test': { via: 'static', instances: [{ address: '127.0.0.98', port: silent.address().port }] } } });
      await discovery.resolve('api.node.test');
      const agent = new DiscoveryHttpsAgent({ discovery });
      const req = https.get('https://api.node.test/', { agent });
      req.on('error', (error) => {
        console.log(JSON.stringify({ code: error.code, sockets: agent.totalSocketCount }));
        silent.close();
        void discovery.close();
      });
      setTimeout(() => agent.destroy(), 50);
    `;
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: src, timeout: 20_000 });
    expect(JSON.parse(stdout)).toEqual({ code: 'ECONNRESET', sockets: 0 });
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('a handshake that does not finish within connectTimeout fails over to another instance (ETIMEDOUT naming it)', async () => {
    // Accepts TCP connections and never answers the TLS handshake.
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.97', resolve));
    const silentPort = (silent.address() as { port: number }).port;
    const instances = [{ address: '127.0.0.97', port: silentPort }, fleet.instances[0]!];
    const discovery = new Discovery({
      services: { [API]: { via: 'static', instances } },
      ejection: false,
    });
    const agent = new DiscoveryHttpsAgent({ discovery, ca: ca.cert, connectTimeout: 200 });
    const alone = new Discovery({ services: { [API]: { via: 'static', instances: [instances[0]!] } } });
    const aloneAgent = new DiscoveryHttpsAgent({ discovery: alone, ca: ca.cert, connectTimeout: 200 });
    try {
      for (let i = 0; i < 4; i++) expect((await get(`https://${API}/`, agent)).body).toBe(fleet.servers[0]!.address);
      const error = (await get(`https://${API}/`, aloneAgent).catch((e: unknown) => e)) as NodeJS.ErrnoException;
      expect(error).toMatchObject({ code: 'ETIMEDOUT', syscall: 'connect' });
      expect(error.message).toContain(`127.0.0.97:${silentPort}`);
      expect(error.message).toContain('security group');
    } finally {
      agent.destroy();
      aloneAgent.destroy();
      await discovery.close();
      await alone.close();
      silent.close();
    }
  });
});
