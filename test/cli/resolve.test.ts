/** `signpost resolve` against bind9 (A and SRV) and the loopback Cloud Map stand-in. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bind9 } from '../support/bind9.ts';
import { FakeCloudMap } from '../support/fake-cloudmap.ts';
import { assertBuilt, runCli } from './helpers.ts';

const ZONE = 'resolve.test';
let dns: Bind9;
let cloudMap: FakeCloudMap;

beforeAll(async () => {
  assertBuilt();
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
});

describe('signpost resolve', () => {
  it('prints A records with their TTL and the server that answered', async () => {
    const result = await runCli(['resolve', `orders.${ZONE}`, '--server', dns.server, '--port', '8080']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`orders.${ZONE} via dns (A/AAAA records) from ${dns.server}`);
    expect(result.stdout).toMatch(/^2 instances, TTL 30s$/m);
    expect(result.stdout).toMatch(/^ADDRESS\s+PORT\s+ZONE\s+PRIORITY\s+WEIGHT\s+TTL\s+ID$/m);
    expect(result.stdout).toMatch(/^127\.0\.6\.2\s+8080\s+-\s+0\s+1\s+30s\s+127\.0\.6\.2$/m);
    expect(result.stdout).toMatch(/^127\.0\.6\.3\s+8080\s+-\s+0\s+1\s+30s\s+127\.0\.6\.3$/m);
  });

  it('reads SRV records at the name itself and at _http._tcp names, as JSON', async () => {
    const web = await runCli(['resolve', `web.${ZONE}`, '--via', 'srv', '--server', dns.server, '--json']);
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

    const pay = await runCli(['resolve', `pay.${ZONE}`, '--via', 'srv', '--srv', `_http._tcp.pay.${ZONE}`, '--server', dns.server]);
    expect(pay.code).toBe(0);
    expect(pay.stdout).toContain(`srv (SRV records at _http._tcp.pay.${ZONE})`);
    expect(pay.stdout).toMatch(/^127\.0\.6\.6\s+9090\s+-\s+0\s+5\s+15s\s+/m);
  });

  it('asks Cloud Map for <service>.<namespace> and shows zones', async () => {
    const result = await runCli(['resolve', 'orders.myapp.local', '--via', 'cloudmap', '--endpoint', cloudMap.endpoint, '--region', 'us-east-1']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`namespace myapp.local, service orders) from ${cloudMap.endpoint}`);
    expect(result.stdout).toMatch(/^127\.0\.6\.7\s+8080\s+us-east-1a\s+0\s+1\s+\S+\s+task-a/m);
    expect(result.stdout).toMatch(/^127\.0\.6\.8\s+8080\s+us-east-1b\s+/m);
    expect(cloudMap.calls.DiscoverInstances).toBeGreaterThan(0);
  });

  it('says what to check when the name does not exist, and exits 1', async () => {
    const dnsMissing = await runCli(['resolve', `nope.${ZONE}`, '--server', dns.server]);
    expect(dnsMissing.code).toBe(1);
    expect(dnsMissing.stdout).toBe('');
    expect(dnsMissing.stderr).toMatch(new RegExp(`^signpost resolve: DNS name nope\\.${ZONE} does not exist \\(NXDOMAIN .* from ${dns.server}\\).*Cloud Map namespace`));
    expect(dnsMissing.stderr.trim().split('\n')).toHaveLength(1);

    const cmMissing = await runCli(['resolve', 'billing.myapp.local', '--via', 'cloudmap', '--endpoint', cloudMap.endpoint]);
    expect(cmMissing.code).toBe(1);
    expect(cmMissing.stderr).toMatch(/Cloud Map has no service "billing" in namespace "myapp.local"/);
  });
});
