/**
 * `signpost check` (in-process) against bind9 and HTTP(S) instances on 127.0.5.x: every
 * diagnosis, zone problems, HTTPS.
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
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Bind9 } from '../fixtures/bind9.ts';
import { FakeCloudMap } from '../fixtures/cloud-map.ts';
import { TestCa } from '../fixtures/fleet.ts';
import { hang, ok, runMain, startFleet, status, stubCliEnv, type Fleet } from './helpers.ts';

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
  stubCliEnv();
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
  vi.unstubAllEnvs();
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
  scheme: string;
  failure?: string;
  diagnosis?: string;
  zoneProblem?: string;
  http?: { status?: number };
}
interface JsonReport {
  ok: boolean;
  services: { name: string; ok: boolean; path: string; error?: { code: string; failure: string; diagnosis: string }; instances: JsonInstance[] }[];
  zones: { zone: string; services: string[]; failed: number; fine: string[]; diagnosis: string }[];
}

describe('signpost check', () => {
  it('diagnoses NXDOMAIN, connect timeout, refused, HTTP timeout and 5xx, and exits 1', async () => {
    const file = await writeConfig('matrix.json', matrixConfig());
    const result = await runMain(['check', file, '--json', '--timeout', '800']);
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
    const result = await runMain(['check', file, '--timeout', '800']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^SERVICE\s+INSTANCE\s+ZONE\s+DNS\s+TCP\s+HTTP\s+RESULT$/m);
    expect(result.stdout).toMatch(new RegExp(`^good\\.${ZONE}\\s+127\\.0\\.5\\.20:\\d+\\s+-\\s+ok\\s+ok .*\\s+200 .*\\s+ok$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^ghost\\.${ZONE}\\s+-\\s+-\\s+NXDOMAIN`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^✗ ghost\\.${ZONE}: .*not configured`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^✗ dropped\\.${ZONE} 127\\.0\\.5\\.24:\\d+: .*security group or NACL`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^✗ closed\\.${ZONE} 127\\.0\\.5\\.21:\\d+: connection refused`, 'm'));
    expect(result.stdout).toMatch(/^6 services, 5 instances: 1 not resolved, 4 instances failing$/m);
  });

  it('names a zone problem when every instance of one zone fails its health check', async () => {
    const file = await writeConfig('zoned.json', zonedConfig());
    const result = await runMain(['check', file, '--json']);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as JsonReport;
    const failing = report.services[0]!.instances.filter((i) => !i.ok);
    expect(failing.map((i) => i.address).sort()).toEqual(['127.0.5.14', '127.0.5.15']);
    for (const instance of failing) expect(instance).toMatchObject({ failure: 'http-5xx', zoneProblem: 'zone-c' });
    expect(report.zones).toHaveLength(1);
    expect(report.zones[0]).toMatchObject({ zone: 'zone-c', services: [`web.${ZONE}`], failed: 2, fine: ['zone-a', 'zone-b'] });
    expect(report.zones[0]!.diagnosis).toBe(
      `all 2 instances checked in zone zone-c fail (web.${ZONE}), while zone-a and zone-b are fine: the zone is the problem, not each ` +
        'instance. They accept connections but fail their health checks: look for a dependency they reach only from that zone ' +
        '(a zonal database replica, cache node or NAT gateway)',
    );

    // For people: one zone line listing its instances, not one line per instance.
    const text = await runMain(['check', file]);
    expect(text.stdout).toMatch(/^✗ zone zone-c: all 2 instances checked in zone zone-c fail/m);
    expect(text.stdout).toMatch(new RegExp(`^ {4}web\\.${ZONE} 127\\.0\\.5\\.14:\\d+: HTTP 500$`, 'm'));
    expect(text.stdout).not.toMatch(/^✗ web\.check\.test 127\.0\.5\.1[45]/m);
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
      const result = await runMain(['check', file, '--json']);
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
    const result = await runMain(['check', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^1 service, 1 instance: all ok$/m);
  });

  it('treats a bad config as a usage error (exit 2)', async () => {
    const badJson = join(dir, 'bad.json');
    await writeFile(badJson, '{ "services": ');
    const notJson = await runMain(['check', badJson]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/is not valid JSON/);
    expect(notJson.stderr).toMatch(/^usage: signpost check/m);

    const badOption = await writeConfig('bad-option.json', { services: { 'x.check.test': { via: 'carrier-pigeon' } } });
    const invalid = await runMain(['check', badOption]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).not.toMatch(/\n\s+at /);

    const empty = await writeConfig('empty.json', { dns: { servers: [dns.server] } });
    expect((await runMain(['check', empty])).code).toBe(2);
    expect((await runMain(['check', join(dir, 'missing.json')])).code).toBe(2);
    expect((await runMain(['check'])).code).toBe(2);
    expect((await runMain(['check', empty, '--path', 'health'])).code).toBe(2);
  });
});

describe('signpost check: zones', () => {
  /** Static instances with zones; addresses without a server refuse connections. */
  function zones(services: Record<string, Array<[address: string, zone: string]>>): unknown {
    return {
      services: Object.fromEntries(
        Object.entries(services).map(([name, instances]) => [
          name,
          { via: 'static', instances: instances.map(([address, zone]) => ({ address, port: web.port, zone })) },
        ]),
      ),
    };
  }

  it('a zone whose connections all fail, across services, is a zone problem (not a security group per instance)', async () => {
    const file = await writeConfig('zone-down.json', zones({
      'api.zones.test': [['127.0.5.10', 'a'], ['127.0.5.11', 'b'], ['127.0.5.40', 'c']],
      'pay.zones.test': [['127.0.5.12', 'a'], ['127.0.5.13', 'b'], ['127.0.5.41', 'c']],
    }));
    const result = await runMain(['check', file, '--json']);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.zones).toHaveLength(1);
    expect(report.zones[0]).toMatchObject({ zone: 'c', services: ['api.zones.test', 'pay.zones.test'], failed: 2, fine: ['a', 'b'] });
    expect(report.zones[0]!.diagnosis).toMatch(/^all 2 instances checked in zone c fail \(api\.zones\.test and pay\.zones\.test\), while a and b are fine: the zone is the problem, not each instance\. Their connections fail: check the route tables and network ACLs of the subnets in that zone/);
    const down = report.services.flatMap((s) => s.instances).filter((i) => !i.ok);
    expect(down.map((i) => i.zoneProblem)).toEqual(['c', 'c']);
    for (const instance of down) expect(instance.diagnosis).toMatch(/^part of the zone c problem \(see "zones"\): connection refused/);

    const text = await runMain(['check', file]);
    expect(text.stdout).toMatch(/^✗ zone c: all 2 instances checked/m);
    expect(text.stdout).toMatch(/^ {4}api\.zones\.test 127\.0\.5\.40:\d+: refused$/m);
    expect(text.stdout).toMatch(/^ {4}pay\.zones\.test 127\.0\.5\.41:\d+: refused$/m);
    expect(text.stdout).not.toMatch(/^✗ (api|pay)\.zones\.test /m);
  });

  it('one dead instance alone in its zone is that instance, not its zone', async () => {
    const file = await writeConfig('one-dead.json', zones({ 'api.zones.test': [['127.0.5.10', 'a'], ['127.0.5.11', 'b'], ['127.0.5.40', 'c']] }));
    const result = await runMain(['check', file, '--json']);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.zones).toEqual([]);
    const dead = report.services[0]!.instances.find((i) => !i.ok)!;
    expect(dead).toMatchObject({ address: '127.0.5.40', failure: 'refused' });
    expect(dead.zoneProblem).toBeUndefined();
    expect(dead.diagnosis).toMatch(/^connection refused at 127\.0\.5\.40:\d+: nothing listens/);
  });

  it('a zone that still has a passing instance is not down; another zone with one sick instance in three is still fine', async () => {
    const partly = await writeConfig('partly.json', zones({ 'api.zones.test': [['127.0.5.10', 'a'], ['127.0.5.11', 'b'], ['127.0.5.12', 'c'], ['127.0.5.40', 'c']] }));
    expect((JSON.parse((await runMain(['check', partly, '--json'])).stdout) as JsonReport).zones).toEqual([]);

    const mostly = await writeConfig('mostly.json', zones({
      'api.zones.test': [['127.0.5.10', 'a'], ['127.0.5.11', 'a'], ['127.0.5.14', 'a'], ['127.0.5.12', 'b'], ['127.0.5.40', 'c'], ['127.0.5.41', 'c']],
    }));
    const report = JSON.parse((await runMain(['check', mostly, '--json'])).stdout) as JsonReport;
    expect(report.zones.map((z) => [z.zone, z.fine])).toEqual([['c', ['a', 'b']]]);
    // The sick instance in zone a keeps its own diagnosis.
    const sick = report.services[0]!.instances.find((i) => i.address === '127.0.5.14')!;
    expect(sick).toMatchObject({ failure: 'http-5xx' });
    expect(sick.zoneProblem).toBeUndefined();
  });

  it('two zones down at once are not called a zone problem', async () => {
    const file = await writeConfig('two-down.json', zones({
      'api.zones.test': [['127.0.5.10', 'a'], ['127.0.5.40', 'b'], ['127.0.5.41', 'b'], ['127.0.5.42', 'c'], ['127.0.5.43', 'c']],
    }));
    const report = JSON.parse((await runMain(['check', file, '--json'])).stdout) as JsonReport;
    expect(report.zones).toEqual([]);
  });
});

describe('signpost check: HTTPS', () => {
  const NAME = 'secure.check.test';
  let ca: TestCa;
  let caFile: string;
  let secure: Fleet;
  let wrongName: Fleet;

  beforeAll(async () => {
    ca = await TestCa.create();
    caFile = join(ca.dir, 'ca.crt');
    secure = await startFleet({ '127.0.5.50': ok, '127.0.5.51': status(503) }, { tls: await ca.issue(NAME) });
    wrongName = await startFleet({ '127.0.5.52': ok }, { tls: await ca.issue('other.check.test') });
  });

  afterAll(async () => {
    await secure?.close();
    await wrongName?.close();
    await ca?.remove();
  });

  const config = (fleet: Fleet, addresses: string[], health?: unknown): unknown => ({
    services: { [NAME]: { via: 'static', instances: addresses.map((address) => ({ address, port: fleet.port })) } },
    ...(health !== undefined && { health: { [NAME]: health } }),
  });

  it('probes https, with the certificate checked against the service name and the CA given', async () => {
    const file = await writeConfig('https.json', config(secure, ['127.0.5.50', '127.0.5.51']));
    const result = await runMain(['check', file, '--scheme', 'https', '--ca', caFile, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as JsonReport;
    const [good, sick] = report.services[0]!.instances;
    expect(good).toMatchObject({ address: '127.0.5.50', scheme: 'https', ok: true, http: { status: 200 } });
    expect(sick).toMatchObject({ address: '127.0.5.51', scheme: 'https', ok: false, failure: 'http-5xx' });
    expect(sick!.diagnosis).toMatch(/^HTTP 503 from HTTPS GET \/health at 127\.0\.5\.51:\d+: the instance is unhealthy/);

    const text = await runMain(['check', file, '--scheme', 'https', '--ca', caFile]);
    expect(text.stdout).toMatch(new RegExp(`^${NAME.replace(/\./g, '\\.')}\\s+127\\.0\\.5\\.50:\\d+\\s+-\\s+ok\\s+ok \\S+\\s+https 200 \\S+\\s+ok$`, 'm'));
  });

  it('takes the scheme per service from the config', async () => {
    const file = await writeConfig('https-config.json', config(secure, ['127.0.5.50'], { path: '/ready', scheme: 'https' }));
    const result = await runMain(['check', file, '--ca', caFile, '--json']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.services[0]).toMatchObject({ path: '/ready', instances: [{ scheme: 'https', ok: true }] });
  });

  it('diagnoses a certificate for another name, an untrusted CA, and a scheme that does not fit the port', async () => {
    const wrong = await writeConfig('https-wrong-name.json', config(wrongName, ['127.0.5.52']));
    const altname = JSON.parse((await runMain(['check', wrong, '--scheme', 'https', '--ca', caFile, '--json'])).stdout) as JsonReport;
    expect(altname.services[0]!.instances[0]).toMatchObject({ ok: false, failure: 'tls' });
    expect(altname.services[0]!.instances[0]!.diagnosis).toMatch(new RegExp(`^the certificate at 127\\.0\\.5\\.52:\\d+ is not valid for ${NAME.replace(/\./g, '\\.')} .*it must name ${NAME.replace(/\./g, '\\.')}`));

    const file = await writeConfig('https-untrusted.json', config(secure, ['127.0.5.50']));
    const untrusted = JSON.parse((await runMain(['check', file, '--scheme', 'https', '--json'])).stdout) as JsonReport;
    expect(untrusted.services[0]!.instances[0]).toMatchObject({ ok: false, failure: 'tls' });
    expect(untrusted.services[0]!.instances[0]!.diagnosis).toMatch(/signed by a CA this process does not trust \([A-Z_]+\): pass the CA with --ca FILE/);

    // Plain HTTP to a TLS port, and TLS to a plain HTTP port.
    const plainToTls = JSON.parse((await runMain(['check', file, '--json', '--timeout', '2000'])).stdout) as JsonReport;
    expect(plainToTls.services[0]!.instances[0]).toMatchObject({ ok: false, scheme: 'http' });
    expect(plainToTls.services[0]!.instances[0]!.diagnosis).toMatch(/--scheme https/);

    const plain = await writeConfig('https-to-http.json', {
      services: { [NAME]: { via: 'static', instances: [{ address: '127.0.5.20', port: fleet.port }] } },
    });
    const tlsToPlain = JSON.parse((await runMain(['check', plain, '--scheme', 'https', '--json', '--timeout', '2000'])).stdout) as JsonReport;
    expect(tlsToPlain.services[0]!.instances[0]).toMatchObject({ ok: false, failure: 'tls' });
    expect(tlsToPlain.services[0]!.instances[0]!.diagnosis).toMatch(/does not speak TLS on port \d+ .*use --scheme http/);
  });

  it('rejects a health entry it cannot use, and a --ca that is not a certificate', async () => {
    const bad = await writeConfig('bad-health.json', config(secure, ['127.0.5.50'], { path: '/ready', scheme: 'gopher' }));
    const result = await runMain(['check', bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/"health" in .* must map service names to a path such as "\/health", or to \{ "path": "\/health", "scheme": "http" or "https" \}/);

    const notPem = await writeConfig('not-a-ca.json', { hello: 'world' });
    const ca = await runMain(['check', bad, '--ca', notPem]);
    expect(ca.code).toBe(2);
    expect(ca.stderr).toMatch(/--ca: .* holds no PEM certificate/);
  });
});
