/** `signpost resolve` (in-process) against bind9 (A and SRV) and the loopback Cloud Map stand-in. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Bind9 } from '../fixtures/bind9.ts';
import { FakeCloudMap } from '../fixtures/cloud-map.ts';
import { runMain, stubCliEnv } from './helpers.ts';

const ZONE = 'resolve.test';
let dns: Bind9;
let cloudMap: FakeCloudMap;

beforeAll(async () => {
  stubCliEnv();
  dns = await Bind9.start({
    zones: {
      [ZONE]: [
        'orders 30 IN A 127.0.6.2',
        'orders 30 IN A 127.0.6.3',
        // Cloud Map style: SRV at the service name, targets with A records.
        'web 20 IN SRV 1 10 8080 i-1.web',
        'web 20 IN SRV 1 20 8081 i-2.web',
        'i-1.web 20 IN A 127.0.6.4',
        'i-2.web 20 IN A 127.0.6.5',
        // RFC 2782 style.
        '_http._tcp.pay 15 IN SRV 0 5 9090 pay-1',
        'pay-1 15 IN A 127.0.6.6',
        // A name with only a TXT record: it exists, with no instance under it.
        'idle 10 IN TXT "registered, nothing running"',
      ].join('\n'),
    },
  });
  cloudMap = await FakeCloudMap.start();
  cloudMap.register('myapp.local', 'orders', {
    id: 'task-a',
    attributes: { AWS_INSTANCE_IPV4: '127.0.6.7', AWS_INSTANCE_PORT: '8080', AVAILABILITY_ZONE: 'us-east-1a' },
  });
  cloudMap.register('myapp.local', 'orders', {
    id: 'task-b',
    attributes: { AWS_INSTANCE_IPV4: '127.0.6.8', AWS_INSTANCE_PORT: '8080', AVAILABILITY_ZONE: 'us-east-1b' },
  });
});

afterAll(async () => {
  await dns?.close();
  await cloudMap?.close();
  vi.unstubAllEnvs();
});

describe('signpost resolve', () => {
  it('prints A records with their TTL and the server that answered', async () => {
    const result = await runMain(['resolve', `orders.${ZONE}`, '--server', dns.server, '--port', '8080']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`orders.${ZONE} via dns (A/AAAA records) from ${dns.server}`);
    expect(result.stdout).toMatch(/^2 instances, TTL 30s$/m);
    expect(result.stdout).toMatch(/^ADDRESS\s+PORT\s+ZONE\s+PRIORITY\s+WEIGHT\s+TTL\s+ID$/m);
    expect(result.stdout).toMatch(/^127\.0\.6\.2\s+8080\s+-\s+0\s+1\s+30s\s+127\.0\.6\.2$/m);
    expect(result.stdout).toMatch(/^127\.0\.6\.3\s+8080\s+-\s+0\s+1\s+30s\s+127\.0\.6\.3$/m);
  });

  it('reads SRV records at the name itself and at _http._tcp names, as JSON', async () => {
    const web = await runMain(['resolve', `web.${ZONE}`, '--via', 'srv', '--server', dns.server, '--json']);
    expect(web.code).toBe(0);
    const answer = JSON.parse(web.stdout) as { via: string; from: string; ttl: number; instances: Record<string, unknown>[] };
    expect(answer.via).toBe('srv');
    expect(answer.from).toContain(dns.server);
    expect(answer.ttl).toBe(20_000);
    expect(answer.instances).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ address: '127.0.6.4', port: 8080, priority: 1, weight: 10, ttl: 20_000 }),
        expect.objectContaining({ address: '127.0.6.5', port: 8081, priority: 1, weight: 20 }),
      ]),
    );

    const pay = await runMain(['resolve', `pay.${ZONE}`, '--via', 'srv', '--srv', `_http._tcp.pay.${ZONE}`, '--server', dns.server]);
    expect(pay.code).toBe(0);
    expect(pay.stdout).toContain(`srv (SRV records at _http._tcp.pay.${ZONE})`);
    expect(pay.stdout).toMatch(/^127\.0\.6\.6\s+9090\s+-\s+0\s+5\s+15s\s+/m);
  });

  it('asks Cloud Map for <service>.<namespace> and shows zones', async () => {
    const result = await runMain(['resolve', 'orders.myapp.local', '--via', 'cloudmap', '--endpoint', cloudMap.endpoint, '--region', 'us-east-1']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`namespace myapp.local, service orders) from ${cloudMap.endpoint}`);
    expect(result.stdout).toMatch(/^127\.0\.6\.7\s+8080\s+us-east-1a\s+0\s+1\s+\S+\s+task-a/m);
    expect(result.stdout).toMatch(/^127\.0\.6\.8\s+8080\s+us-east-1b\s+/m);
    expect(cloudMap.calls.DiscoverInstances).toBeGreaterThan(0);
  });

  it('says what to check when the name does not exist, and exits 1', async () => {
    const dnsMissing = await runMain(['resolve', `nope.${ZONE}`, '--server', dns.server]);
    expect(dnsMissing.code).toBe(1);
    expect(dnsMissing.stdout).toBe('');
    expect(dnsMissing.stderr).toMatch(new RegExp(`^signpost resolve: DNS name nope\\.${ZONE} does not exist \\(NXDOMAIN .* from ${dns.server}\\): `));
    expect(dnsMissing.stderr.trim().split('\n')).toHaveLength(1);

    const cmMissing = await runMain(['resolve', 'billing.myapp.local', '--via', 'cloudmap', '--endpoint', cloudMap.endpoint]);
    expect(cmMissing.code).toBe(1);
    expect(cmMissing.stderr).toMatch(/Cloud Map has no service "billing" in namespace "myapp.local"/);
  });
});

describe('signpost resolve, a name without instances', () => {
  it('--via srv on a name with A records: exit 1, and says the A records are there', async () => {
    const result = await runMain(['resolve', `orders.${ZONE}`, '--via', 'srv', '--server', dns.server]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^0 instances, TTL /m);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `signpost resolve: orders.${ZONE} has no SRV records (NODATA from ${dns.server}), but orders.${ZONE} has A/AAAA records ` +
        `(127.0.6.2, 127.0.6.3): find its instances with via: 'dns' and a port (signpost resolve --via dns --port N), ` +
        `or set srv to the name its SRV records are under (such as _http._tcp.orders.${ZONE})`,
    );
  });

  it('--via dns on a name with SRV records only: exit 1, and says to use --via srv', async () => {
    const result = await runMain(['resolve', `web.${ZONE}`, '--server', dns.server, '--json']);
    expect(result.code).toBe(1);
    const answer = JSON.parse(result.stdout) as { instances: unknown[]; error: { code: string; message: string } };
    expect(answer.instances).toEqual([]);
    expect(answer.error.code).toBe('SIGNPOST_ERR_NO_INSTANCES');
    expect(answer.error.message).toMatch(new RegExp(`^web\\.${ZONE} has no A/AAAA records \\(NODATA from .*\\), but it has SRV records \\(.*:808\\d, .*:808\\d\\): find its instances with via: 'srv' \\(signpost resolve --via srv\\)$`));
    expect(result.stderr).toBe(`signpost resolve: ${answer.error.message}\n`);
  });

  it('a name with neither: exit 1, and what to check for each kind', async () => {
    const viaDns = await runMain(['resolve', `idle.${ZONE}`, '--server', dns.server]);
    expect(viaDns.code).toBe(1);
    expect(viaDns.stderr).toMatch(new RegExp(`^signpost resolve: idle\\.${ZONE} has no A/AAAA records \\(NODATA from .*\\): the name exists, but no instance is registered under it\\. Are its tasks or pods running`));
    const viaSrv = await runMain(['resolve', `idle.${ZONE}`, '--via', 'srv', '--server', dns.server]);
    expect(viaSrv.code).toBe(1);
    expect(viaSrv.stderr).toMatch(new RegExp(`^signpost resolve: idle\\.${ZONE} has no SRV records \\(NODATA from .*\\), and idle\\.${ZONE} has no A/AAAA records either: does the service register SRV records`));
  });

  it('a Cloud Map service without instances: exit 1', async () => {
    cloudMap.createService('myapp.local', 'empty');
    const result = await runMain(['resolve', 'empty.myapp.local', '--via', 'cloudmap', '--endpoint', cloudMap.endpoint, '--region', 'us-east-1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^signpost resolve: Cloud Map service "empty" in namespace "myapp\.local" has no instances: are its tasks running and registered/);
  });
});
