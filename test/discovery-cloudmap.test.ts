import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { DiscoveryAgent } from '../src/agent/index.ts';
import { Discovery } from '../src/discovery.ts';
import type { DiscoveryOptions } from '../src/options.ts';
import { Bind9 } from './fixtures/bind9.ts';
import { FakeCloudMap, TEST_CREDENTIALS, TEST_REGION } from './fixtures/cloud-map.ts';
import { FakeClock } from './support/fake-clock.ts';
import { Fleet } from './fixtures/fleet.ts';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const OWNER = '222222222222';
let fake: FakeCloudMap;
let dns: Bind9;
let fleet: Fleet;

beforeAll(async () => {
  fleet = await Fleet.start(2, { firstOctet: 41, samePort: true });
  fake = await FakeCloudMap.start();
  for (const [i, zone] of ['use1-az1', 'use1-az2'].entries()) {
    fake.register('myapp.local', 'orders', {
      id: `orders-${i}`,
      attributes: { AWS_INSTANCE_IPV4: `127.0.0.${i + 2}`, AWS_INSTANCE_PORT: '8080', AVAILABILITY_ZONE: zone, version: 'v7' },
    });
  }
  // A service fronted by a load balancer registered by DNS name, and an A-record-only one (no port).
  fake.createService('myapp.local', 'edge', { healthCheck: 'none' });
  fake.register('myapp.local', 'edge', { id: 'nlb', attributes: { AWS_ALIAS_DNS_NAME: 'edge-nlb.elb.test.' } });
  fake.createService('myapp.local', 'legacy', { healthCheck: 'none' });
  fake.register('myapp.local', 'legacy', { id: 'l-1', attributes: { AWS_INSTANCE_CNAME: 'legacy.corp.test' } });
  fake.register('myapp.local', 'bare', { id: 'b-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.9' } });
  // A namespace shared from another account.
  fake.createNamespace('shared.local', { owner: OWNER });
  fake.register('shared.local', 'pay', { id: 'p-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.7', AWS_INSTANCE_PORT: '9000' } }, { owner: OWNER });
  dns = await Bind9.start({
    zones: {
      'elb.test': fleet.servers.map((s) => `edge-nlb 30 IN A ${s.address}`).join('\n'),
      'corp.test': 'legacy 60 IN A 127.0.0.44',
    },
  });
});

afterAll(async () => {
  await fake?.close();
  await dns?.close();
  await fleet?.close();
});

function discovery(extra: Partial<DiscoveryOptions> = {}): Discovery {
  return new Discovery({
    namespaces: { 'myapp.local': { via: 'cloudmap' } },
    services: { 'billing.example.com': { via: 'cloudmap', namespace: 'myapp.local', service: 'orders' } },
    cloudMap: { endpoint: fake.endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS },
    dns: { servers: [dns.server] },
    ...extra,
  });
}

test('a namespace rule maps <service>.<namespace> to Cloud Map, with ports, zones and attributes', async () => {
  const d = discovery();
  try {
    const instances = await d.resolve('orders.myapp.local');
    expect(instances).toMatchObject([
      { id: 'orders-0', address: '127.0.0.2', port: 8080, zone: 'use1-az1', attributes: { version: 'v7' } },
      { id: 'orders-1', address: '127.0.0.3', port: 8080, zone: 'use1-az2', attributes: { version: 'v7' } },
    ]);
    // An exact service entry may point any name at a Cloud Map service.
    expect(await d.resolve('billing.example.com')).toHaveLength(2);
  } finally {
    await d.close();
  }
});

test('a service Cloud Map does not know is SIGNPOST_ERR_NOT_FOUND, and closing leaves nothing running', async () => {
  const d = discovery();
  await expect(d.resolve('payments.myapp.local')).rejects.toMatchObject({
    code: 'SIGNPOST_ERR_NOT_FOUND',
    hostname: 'payments.myapp.local',
  });
  await d.close();
  await expect(d.resolve('orders.myapp.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
});

describe('instances registered by DNS name', () => {
  test('AWS_ALIAS_DNS_NAME and AWS_INSTANCE_CNAME resolve through the DNS servers, with the port of the config', async () => {
    const d = discovery({
      namespaces: { 'myapp.local': { via: 'cloudmap', port: fleet.servers[0]!.port } },
    });
    try {
      const edge = await d.resolve('edge.myapp.local');
      expect(edge.map((i) => [i.id, i.address, i.port])).toEqual(fleet.servers.map((s) => ['nlb', s.address, s.port]));
      const legacy = await d.resolve('legacy.myapp.local');
      expect(legacy.map((i) => [i.id, i.address])).toEqual([['l-1', '127.0.0.44']]);
      // A-record-only registrations without AWS_INSTANCE_PORT take the port too.
      expect((await d.resolve('bare.myapp.local'))[0]?.port).toBe(fleet.servers[0]!.port);
    } finally {
      await d.close();
    }
  });

  test('requests reach the load balancer\'s addresses as undici\'s own Agent reaches them', async () => {
    const port = fleet.servers[0]!.port;
    const agent = new DiscoveryAgent({
      namespaces: { 'myapp.local': { via: 'cloudmap', port } },
      cloudMap: { endpoint: fake.endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS },
      dns: { servers: [dns.server] },
    });
    const plain = new Agent();
    try {
      const through = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const res = await request('http://edge.myapp.local/hello', { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        through.add(await res.body.text());
      }
      const direct = new Set<string>();
      for (const server of fleet.servers) {
        const res = await request(`http://${server.address}:${port}/hello`, { dispatcher: plain, headers: { host: 'edge.myapp.local' } });
        direct.add(await res.body.text());
      }
      // Spread over both addresses of the name, each answering as it does to a direct request.
      expect(through).toEqual(direct);
      expect(fleet.servers.map((s) => s.seen.at(-1)?.host)).toEqual(['edge.myapp.local', 'edge.myapp.local']);
    } finally {
      await agent.close();
      await plain.close();
    }
  });
});

test('ownerAccount from cloudMap, a namespace rule or a service reaches a shared namespace', async () => {
  const byDefault = discovery({
    namespaces: { 'shared.local': { via: 'cloudmap' } },
    cloudMap: { endpoint: fake.endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS, ownerAccount: OWNER },
  });
  const byRule = discovery({ namespaces: { 'shared.local': { via: 'cloudmap', ownerAccount: OWNER } } });
  const byService = discovery({
    services: { 'pay.internal': { via: 'cloudmap', namespace: 'shared.local', service: 'pay', ownerAccount: OWNER } },
  });
  const without = discovery({ namespaces: { 'shared.local': { via: 'cloudmap' } } });
  try {
    for (const [d, name] of [
      [byDefault, 'pay.shared.local'],
      [byRule, 'pay.shared.local'],
      [byService, 'pay.internal'],
    ] as const) {
      expect((await d.resolve(name)).map((i) => [i.address, i.port])).toEqual([['127.0.0.7', 9000]]);
    }
    await expect(without.resolve('pay.shared.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
  } finally {
    await Promise.all([byDefault, byRule, byService, without].map((d) => d.close()));
  }
});

test('an UNHEALTHY instance is dropped at the next poll (health checks move no revision)', async () => {
  const clock = new FakeClock();
  fake.register('myapp.local', 'cart', { id: 'c-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.11', AWS_INSTANCE_PORT: '80' } });
  fake.register('myapp.local', 'cart', { id: 'c-2', attributes: { AWS_INSTANCE_IPV4: '127.0.0.12', AWS_INSTANCE_PORT: '80' } });
  const d = discovery({ clock });
  try {
    expect(await d.resolve('cart.myapp.local')).toHaveLength(2);
    const revision = fake.revision('myapp.local', 'cart');
    fake.setHealth('myapp.local', 'cart', 'c-2', 'UNHEALTHY');
    expect(fake.revision('myapp.local', 'cart')).toBe(revision);
    // Within one poll interval plus its jitter (5 s + 10 %), the name is refreshed.
    await clock.run(5500);
    await vi.waitFor(() => expect(d.instancesSync('cart.myapp.local').map((i) => i.id)).toEqual(['c-1']));
  } finally {
    await d.close();
  }
});

test.each([
  ['services', { services: { 'x.test': { via: 'cloudmap', namespace: 'myapp.local', service: 'x', ownerAccount: 'acct' } } }, 'ownerAccount'],
  ['services', { services: { 'x.test': { via: 'cloudmap', namespace: 'myapp.local', service: 'x', port: 0 } } }, 'port'],
  ['namespaces', { namespaces: { 'myapp.local': { via: 'cloudmap', port: 70_000 } } }, 'port'],
  ['cloudMap', { cloudMap: { ownerAccount: '12' } }, 'ownerAccount'],
  ['cloudMap', { cloudMap: { healthRefreshInterval: -5 } }, 'healthRefreshInterval'],
])('a bad Cloud Map option in %s is SIGNPOST_ERR_INVALID_ARG naming %s', (_, options, name) => {
  expect(() => new Discovery(options as DiscoveryOptions)).toThrow(
    expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', message: expect.stringContaining(name) }),
  );
});

test('one weight attribute: balancer.weightAttribute names the Cloud Map attribute instance weights are read from', async () => {
  fake.register('myapp.local', 'sized', { id: 's-big', attributes: { AWS_INSTANCE_IPV4: '127.0.0.21', capacity: '3' } });
  fake.register('myapp.local', 'sized', { id: 's-small', attributes: { AWS_INSTANCE_IPV4: '127.0.0.22', capacity: '1' } });
  const d = discovery({ balancer: { policy: 'weighted', weightAttribute: 'capacity' } });
  try {
    const instances = await d.resolve('sized.myapp.local');
    expect(instances.map((i) => [i.id, i.weight, i.attributes.capacity])).toEqual([
      ['s-big', 3, undefined],
      ['s-small', 1, undefined],
    ]);
    let big = 0;
    for (let i = 0; i < 4000; i++) if (d.pickSync('sized.myapp.local')?.id === 's-big') big++;
    expect(big / 4000).toBeGreaterThan(0.7);
    expect(big / 4000).toBeLessThan(0.8);
  } finally {
    await d.close();
  }
  // The same setting twice must agree.
  expect(() => discovery({ balancer: { policy: 'weighted', weightAttribute: 'capacity' }, cloudMap: { weightAttribute: 'w' } })).toThrow(
    expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', message: expect.stringMatching(/balancer\.weightAttribute.*cloudMap\.weightAttribute/) }),
  );
  expect(() => discovery({ balancer: { policy: 'weighted', weightAttribute: 'w' }, cloudMap: { weightAttribute: 'w', region: TEST_REGION } }).close()).not.toThrow();
});

test('a Cloud Map service without instances says what to check for Cloud Map, with the filters that apply', async () => {
  fake.createService('myapp.local', 'idle', { healthCheck: 'custom' });
  const d = discovery({ namespaces: { 'myapp.local': { via: 'cloudmap', healthStatus: 'HEALTHY', queryParameters: { stage: 'blue' } } } });
  try {
    const error = await d.resolve('idle.myapp.local').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES', hostname: 'idle.myapp.local' });
    expect((error as Error).message).toMatch(
      /Cloud Map service "idle" in namespace "myapp\.local" has no instances matching healthStatus HEALTHY .* and queryParameters \{"stage":"blue"\}: are its tasks running and registered/,
    );
    expect((error as Error).message).not.toMatch(/NXDOMAIN|DNS|SRV/);
  } finally {
    await d.close();
  }
});
