/**
 * `signpost check` against bind9 and HTTP instances on 127.0.5.x: every diagnosis.
 *
 * The connect-timeout case needs a TCP peer that drops SYNs, which loopback never does on its
 * own (a closed port is refused at once). A child process listens with a backlog of 1 and then
 * blocks its event loop, so it never accepts; the test fills the kernel's accept queue with two
 * connections, and from then on Linux drops further SYNs, exactly as a security group that
 * drops the traffic does from the caller's side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bind9 } from '../support/bind9.ts';
import { FakeCloudMap } from '../support/fake-cloudmap.ts';
import { assertBuilt, hang, ok, runCli, startFleet, status, type Fleet } from './helpers.ts';

const ZONE = 'check.test';

let dns: Bind9;
let fleet: Fleet;
let web: Fleet;
let dir: string;
let blackhole: { port: number; child: ChildProcess; fillers: Socket[] };

async function startBlackhole(address: string): Promise<typeof blackhole> {
  const script = `
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ host: ${JSON.stringify(address)}, port: 0, backlog: 1 }, () => {
      // Writes to a pipe are synchronous on Linux: the port is out before the loop stops.
      process.stdout.write(server.address().port + '\\n');
      // Never return to the event loop: nothing ever calls accept().
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
  });
  // Fill the accept queue (backlog + 1 on Linux): these two complete, later SYNs are dropped.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const socket = connect({ host: address, port });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    fillers.push(socket);
  }
  return { port, child, fillers };
}

async function writeConfig(name: string, config: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

beforeAll(async () => {
  assertBuilt();
  dir = await mkdtemp(join(tmpdir(), 'signpost-check-'));
  dns = await Bind9.start({
    zones: {
      [ZONE]: [
        'good IN A 127.0.5.20',
        'closed IN A 127.0.5.21',
        'sick IN A 127.0.5.22',
        'hung IN A 127.0.5.23',
        'dropped IN A 127.0.5.24',
        ...[10, 11, 12, 13, 14, 15].map((n) => `web IN A 127.0.5.${n}`),
      ].join('\n'),
    },
  });
  fleet = await startFleet({ '127.0.5.20': ok, '127.0.5.22': status(503), '127.0.5.23': hang });
  web = await startFleet({
    '127.0.5.10': ok,
    '127.0.5.11': ok,
    '127.0.5.12': ok,
    '127.0.5.13': ok,
    '127.0.5.14': status(500),
    '127.0.5.15': status(500),
  });
  blackhole = await startBlackhole('127.0.5.24');
});

afterAll(async () => {
  for (const socket of blackhole?.fillers ?? []) socket.destroy();
  blackhole?.child.kill('SIGKILL');
  await fleet?.close();
  await web?.close();
  await dns?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function matrixConfig(): unknown {
  const port = fleet.port;
  return {
    services: {
      [`good.${ZONE}`]: { via: 'dns', port },
      [`ghost.${ZONE}`]: { via: 'dns', port },
      [`closed.${ZONE}`]: { via: 'dns', port },
      [`sick.${ZONE}`]: { via: 'dns', port },
      [`hung.${ZONE}`]: { via: 'dns', port },
      [`dropped.${ZONE}`]: { via: 'dns', port: blackhole.port },
    },
    dns: { servers: [dns.server], timeout: 1000, tries: 1 },
    health: { [`good.${ZONE}`]: '/healthz' },
  };
}

function zonedConfig(): unknown {
  return {
    services: { [`web.${ZONE}`]: { via: 'dns', port: web.port } },
    dns: { servers: [dns.server] },
    subnets: {
      '127.0.5.10/31': 'zone-a',
      '127.0.5.12/31': 'zone-b',
      '127.0.5.14/31': 'zone-c',
    },
  };
}

interface JsonInstance {
  address: string;
  ok: boolean;
  failure?: string;
  diagnosis?: string;
  http?: { status?: number };
}
interface JsonReport {
  ok: boolean;
  services: { name: string; ok: boolean; path: string; error?: { code: string; failure: string; diagnosis: string }; instances: JsonInstance[] }[];
  zones: { zone: string; diagnosis: string }[];
}

describe('signpost check', () => {
  it('diagnoses NXDOMAIN, connect timeout, refused, HTTP timeout and 5xx, and exits 1', async () => {
    const file = await writeConfig('matrix.json', matrixConfig());
    const result = await runCli(['check', file, '--json', '--timeout', '800']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.ok).toBe(false);
    const service = (name: string) => report.services.find((s) => s.name === `${name}.${ZONE}`)!;

    expect(service('good')).toMatchObject({ ok: true, path: '/healthz', instances: [{ address: '127.0.5.20', ok: true, http: { status: 200 } }] });

    expect(service('ghost').error).toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND', failure: 'not-found' });
    expect(service('ghost').error!.diagnosis).toMatch(/namespace or service registry is not configured/);

    const dropped = service('dropped').instances[0]!;
    expect(dropped).toMatchObject({ ok: false, failure: 'connect-timeout' });
    expect(dropped.diagnosis).toMatch(/resolves, but the TCP connection .* timed out.*security group or NACL/);

    const closed = service('closed').instances[0]!;
    expect(closed).toMatchObject({ ok: false, failure: 'refused' });
    expect(closed.diagnosis).toMatch(/nothing listens on port \d+/);

    const sick = service('sick').instances[0]!;
    expect(sick).toMatchObject({ ok: false, failure: 'http-5xx', http: { status: 503 } });
    expect(sick.diagnosis).toMatch(/HTTP 503 .* unhealthy/);

    const hung = service('hung').instances[0]!;
    expect(hung).toMatchObject({ ok: false, failure: 'http-timeout' });
    expect(hung.diagnosis).toMatch(/accepted the connection but sent no HTTP response/);

    // No zones known: no zone finding.
    expect(report.zones).toEqual([]);
  });

  it('prints a matrix and one diagnosis line per failure for people', async () => {
    const file = await writeConfig('matrix-text.json', matrixConfig());
    const result = await runCli(['check', file, '--timeout', '800']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^SERVICE\s+INSTANCE\s+ZONE\s+DNS\s+TCP\s+HTTP\s+RESULT$/m);
    expect(result.stdout).toMatch(new RegExp(`^good\\.${ZONE}\\s+127\\.0\\.5\\.20:\\d+\\s+-\\s+ok\\s+ok .*\\s+200 .*\\s+ok$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^ghost\\.${ZONE}\\s+-\\s+-\\s+NXDOMAIN`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^✗ ghost\\.${ZONE}: .*not configured`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^✗ dropped\\.${ZONE} 127\\.0\\.5\\.24:\\d+: .*security group or NACL`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^✗ closed\\.${ZONE} 127\\.0\\.5\\.21:\\d+: connection refused`, 'm'));
    expect(result.stdout).toMatch(/^6 services, 5 instances: 1 not resolved, 4 instances failing$/m);
  });

  it('names a zone problem when only one zone fails', async () => {
    const file = await writeConfig('zoned.json', zonedConfig());
    const result = await runCli(['check', file, '--json']);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as JsonReport;
    const failing = report.services[0]!.instances.filter((i) => !i.ok).map((i) => i.address);
    expect(failing.sort()).toEqual(['127.0.5.14', '127.0.5.15']);
    expect(report.zones).toHaveLength(1);
    expect(report.zones[0]).toMatchObject({ zone: 'zone-c' });
    expect(report.zones[0]!.diagnosis).toMatch(/only zone zone-c fails .*zone-a, zone-b fine.*a zone problem/);

    const text = await runCli(['check', file]);
    expect(text.stdout).toMatch(/^✗ zone zone-c: only zone zone-c fails/m);
  });

  it('diagnoses a Cloud Map service that is not registered, and checks the ones that are', async () => {
    const cloudMap = await FakeCloudMap.start();
    try {
      cloudMap.register('myapp.local', 'orders', {
        id: 'task-1',
        attributes: { AWS_INSTANCE_IPV4: '127.0.5.20', AWS_INSTANCE_PORT: String(fleet.port), AVAILABILITY_ZONE: 'us-east-1a' },
      });
      const file = await writeConfig('cloudmap.json', {
        namespaces: { 'myapp.local': { via: 'cloudmap' } },
        cloudMap: { endpoint: cloudMap.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' }, retries: 0 },
        check: ['orders.myapp.local', 'billing.myapp.local'],
      });
      const result = await runCli(['check', file, '--json']);
      expect(result.code).toBe(1);
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(report.services.find((s) => s.name === 'orders.myapp.local')).toMatchObject({
        ok: true,
        instances: [{ address: '127.0.5.20', zone: 'us-east-1a', ok: true }],
      });
      const billing = report.services.find((s) => s.name === 'billing.myapp.local')!;
      expect(billing.error).toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND', failure: 'not-found' });
      expect(billing.error!.diagnosis).toMatch(/Cloud Map service exists .* serviceRegistries/);
    } finally {
      await cloudMap.close();
    }
  });

  it('exits 0 when every instance answers', async () => {
    const file = await writeConfig('good.json', {
      services: { [`good.${ZONE}`]: { via: 'dns', port: fleet.port } },
      dns: { servers: [dns.server] },
    });
    const result = await runCli(['check', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^1 service, 1 instance: all ok$/m);
  });

  it('treats a bad config as a usage error (exit 2)', async () => {
    const badJson = join(dir, 'bad.json');
    await writeFile(badJson, '{ "services": ');
    const notJson = await runCli(['check', badJson]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/is not valid JSON/);
    expect(notJson.stderr).toMatch(/^usage: signpost check/m);

    const badOption = await writeConfig('bad-option.json', { services: { 'x.check.test': { via: 'carrier-pigeon' } } });
    const invalid = await runCli(['check', badOption]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).not.toMatch(/\n\s+at /);

    const empty = await writeConfig('empty.json', { dns: { servers: [dns.server] } });
    expect((await runCli(['check', empty])).code).toBe(2);
    expect((await runCli(['check', join(dir, 'missing.json')])).code).toBe(2);
    expect((await runCli(['check'])).code).toBe(2);
    expect((await runCli(['check', empty, '--path', 'health'])).code).toBe(2);
  });
});
