// The SDK must never look for credentials or a region on an instance metadata endpoint.
process.env.AWS_EC2_METADATA_DISABLED = 'true';

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import { http, passthrough } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import { Discovery } from '../../src/discovery.ts';
import { NotFoundError, ResolveError } from '../../src/errors.ts';
import type { CloudMapOptions } from '../../src/options.ts';
import {
  CloudMapClient,
  CloudMapResolver,
  parseCloudMapOptions,
  type AddressLookup,
  type CloudMapResolverConfig,
} from '../../src/resolvers/cloudmap.ts';
import type { CloudMapRetryEvent, CloudMapSkippedEvent, CloudMapThrottledEvent } from '../../src/diagnostics.ts';
import { parseServices } from '../../src/service-config.ts';
import type { Resolution } from '../../src/types.ts';
import { FakeCloudMap, TEST_ACCOUNT, TEST_CREDENTIALS, TEST_REGION, type FakeInstance } from '../fixtures/cloud-map.ts';
import { FakeClock } from '../support/fake-clock.ts';

const fake = new FakeCloudMap();
const server = setupServer(fake.handler);

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
afterEach(() => {
  fake.reset();
  server.resetHandlers();
});
afterAll(() => server.close());

let warnings: MockInstance<typeof process.emitWarning>;
beforeEach(() => {
  warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
});
afterEach(() => warnings.mockRestore());

const clients: CloudMapClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** Tests are deterministic: polls come at the top of their jitter, full calls at the end of their count. */
const LATE = (): number => 0.999_999;

function makeClient(options: CloudMapOptions = {}, clock?: Clock, random: () => number = LATE): CloudMapClient {
  const client = new CloudMapClient(parseCloudMapOptions({ region: TEST_REGION, credentials: TEST_CREDENTIALS, retryDelay: 1, ...options }), clock, random);
  clients.push(client);
  return client;
}

function resolver(options: CloudMapOptions = {}, config: CloudMapResolverConfig = {}, clock?: Clock, lookup?: AddressLookup): CloudMapResolver {
  return new CloudMapResolver(makeClient(options, clock), config, lookup);
}

const signal = (): AbortSignal => new AbortController().signal;

const ORDERS: FakeInstance[] = [
  {
    id: 'i-1',
    attributes: {
      AWS_INSTANCE_IPV4: '10.0.1.5',
      AWS_INSTANCE_PORT: '8080',
      AVAILABILITY_ZONE: 'us-east-1a',
      ECS_CLUSTER_NAME: 'prod',
      weight: '3',
    },
  },
  { id: 'i-2', attributes: { AWS_INSTANCE_IPV6: 'fd00::2', AWS_INSTANCE_PORT: '9090' }, healthStatus: 'UNHEALTHY' },
];

/** Registers instances in a service (with health checks unless told otherwise). */
function service(name: string, instances: readonly FakeInstance[], healthCheck: 'none' | 'custom' = 'custom', namespace = 'myapp.local'): void {
  fake.createService(namespace, name, { healthCheck });
  for (const instance of instances) fake.register(namespace, name, instance);
}

async function catchError(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

const subscriptions: (() => void)[] = [];
afterEach(() => {
  for (const unsubscribeOne of subscriptions.splice(0)) unsubscribeOne();
});

/** Collects what is published on a diagnostics channel during one test. */
function onChannel<T>(name: string): { events: T[] } {
  const events: T[] = [];
  const listener = (message: unknown): void => {
    events.push(message as T);
  };
  subscribe(name, listener);
  subscriptions.push(() => unsubscribe(name, listener));
  return { events };
}

function warned(code: string): string[] {
  return warnings.mock.calls.filter((call) => (call[1] as { code?: string } | undefined)?.code === code).map((call) => String(call[0]));
}

describe('CloudMapResolver: instances', () => {
  it('maps Cloud Map attributes onto instances and keeps the rest', async () => {
    service('orders', ORDERS);
    const resolution = await resolver({}, { healthStatus: 'ALL' }).resolve('orders.myapp.local', { signal: signal() });
    expect([...resolution.instances].sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      {
        id: 'i-1',
        address: '10.0.1.5',
        port: 8080,
        zone: 'us-east-1a',
        weight: 3,
        priority: 0,
        attributes: { ECS_CLUSTER_NAME: 'prod' },
        healthStatus: 'HEALTHY',
      },
      { id: 'i-2', address: 'fd00::2', port: 9090, weight: 1, priority: 0, attributes: {}, healthStatus: 'UNHEALTHY' },
    ]);
    expect(resolution.state).toMatchObject({ revision: fake.revision('myapp.local', 'orders'), healthChecked: true });
  });

  it('prefers the IPv4 address, keeping the IPv6 one as an attribute', async () => {
    service('orders', [{ id: 'i-1', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1', AWS_INSTANCE_IPV6: 'fd00::1' } }]);
    const { instances } = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toEqual([
      { id: 'i-1', address: '10.0.0.1', weight: 1, priority: 0, attributes: { AWS_INSTANCE_IPV6: 'fd00::1' }, healthStatus: 'HEALTHY' },
    ]);
  });

  it('reads the weight from weightAttribute and ignores one that is not a weight', async () => {
    service('orders', [
      { id: 'a', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1', capacity: '5' } },
      { id: 'b', attributes: { AWS_INSTANCE_IPV4: '10.0.0.2', capacity: 'big' } },
    ]);
    const { instances } = await resolver({ weightAttribute: 'capacity' }).resolve('orders.myapp.local', { signal: signal() });
    expect([...instances].sort((a, b) => a.id.localeCompare(b.id)).map((i) => [i.weight, i.attributes])).toEqual([
      [5, {}],
      [1, { capacity: 'big' }],
    ]);
  });

  it('skips instances without a usable address or port and reports them', async () => {
    service('orders', [
      { id: 'ok', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1' } },
      { id: 'no-address', attributes: { AWS_INSTANCE_PORT: '80' } },
      { id: 'hostname', attributes: { AWS_INSTANCE_IPV4: 'orders.internal' } },
      { id: 'bad-port', attributes: { AWS_INSTANCE_IPV4: '10.0.0.2', AWS_INSTANCE_PORT: '70000' } },
      { id: 'bad-name', attributes: { AWS_INSTANCE_CNAME: 'not a name' } },
    ]);
    const skipped = onChannel<CloudMapSkippedEvent>('signpost:cloudmap:instance-skipped');
    const { instances } = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(instances.map((i) => i.id)).toEqual(['ok']);
    const reasons = Object.fromEntries(skipped.events.map((e) => [e.instanceId, e.reason]));
    expect(Object.keys(reasons).sort()).toEqual(['bad-name', 'bad-port', 'hostname', 'no-address']);
    expect(reasons['bad-port']).toMatch(/AWS_INSTANCE_PORT "70000" is not a port/);
    expect(reasons['no-address']).toMatch(/AWS_ALIAS_DNS_NAME or AWS_INSTANCE_CNAME/);
    expect(skipped.events.every((e) => e.service === 'orders' && e.namespace === 'myapp.local')).toBe(true);
  });

  it('answers an empty service with no instances', async () => {
    fake.createService('myapp.local', 'orders');
    const resolution = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(resolution.instances).toEqual([]);
  });

  it('gives instances without AWS_INSTANCE_PORT the configured port; their own port wins', async () => {
    service('orders', [
      { id: 'a', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1' } },
      { id: 'b', attributes: { AWS_INSTANCE_IPV4: '10.0.0.2', AWS_INSTANCE_PORT: '9000' } },
    ]);
    const { instances } = await resolver({}, { port: 8443 }).resolve('orders.myapp.local', { signal: signal() });
    expect(Object.fromEntries(instances.map((i) => [i.id, i.port]))).toEqual({ a: 8443, b: 9000 });
  });
});

describe('CloudMapResolver: the poll interval', () => {
  it('spreads a first answer over 50-100 % of pollInterval and later ones over ±10 %', async () => {
    service('orders', ORDERS, 'none');
    const ttls = async (random: () => number): Promise<number[]> => {
      const r = new CloudMapResolver(makeClient({ pollInterval: 10_000 }, new FakeClock(), random));
      const first = await r.resolve('orders.myapp.local', { signal: signal() });
      const later = await r.resolve('orders.myapp.local', { signal: signal(), previous: first });
      return [first.ttl, later.ttl];
    };
    expect(await ttls(() => 0)).toEqual([5000, 9000]);
    expect(await ttls(() => 0.999_999)).toEqual([10_000, 11_000]);
  });

  it('uses real randomness, within those bounds', async () => {
    service('orders', ORDERS);
    const r = new CloudMapResolver(makeClient({ pollInterval: 12_000 }, undefined, Math.random));
    let previous = await r.resolve('orders.myapp.local', { signal: signal() });
    expect(previous.ttl).toBeGreaterThanOrEqual(6000);
    expect(previous.ttl).toBeLessThanOrEqual(12_000);
    const ttls = new Set<number>();
    for (let i = 0; i < 5; i++) {
      previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
      expect(previous.ttl).toBeGreaterThanOrEqual(10_800);
      expect(previous.ttl).toBeLessThanOrEqual(13_200);
      ttls.add(previous.ttl);
    }
    expect(ttls.size).toBeGreaterThan(1);
  });
});

describe('CloudMapResolver: the DiscoverInstances request', () => {
  it('sends HealthStatus HEALTHY_OR_ELSE_ALL and MaxResults 1000 by default, signed for this region and service', async () => {
    fake.createService('myapp.local', 'orders');
    await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(fake.requests).toHaveLength(1);
    const call = fake.requests[0]!;
    expect(call.operation).toBe('DiscoverInstances');
    expect(call.body).toEqual({
      NamespaceName: 'myapp.local',
      ServiceName: 'orders',
      HealthStatus: 'HEALTHY_OR_ELSE_ALL',
      MaxResults: 1000,
    });
    expect(call.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-east-1\/servicediscovery\/aws4_request/);
    expect(call.headers['x-amz-target']).toBe('Route53AutoNaming_v20170314.DiscoverInstances');
    expect(call.headers['content-type']).toBe('application/x-amz-json-1.1');
  });

  it('passes HealthStatus, QueryParameters and OptionalParameters through', async () => {
    fake.createService('myapp.local', 'orders');
    await resolver(
      { healthStatus: 'ALL' },
      {
        healthStatus: 'HEALTHY',
        queryParameters: { stage: 'prod' },
        optionalParameters: { AVAILABILITY_ZONE: 'us-east-1a' },
      },
    ).resolve('orders.myapp.local', { signal: signal() });
    expect(fake.requests[0]?.body).toMatchObject({
      HealthStatus: 'HEALTHY',
      QueryParameters: { stage: 'prod' },
      OptionalParameters: { AVAILABILITY_ZONE: 'us-east-1a' },
    });
  });

  it('takes the default HealthStatus from the client options', async () => {
    fake.createService('myapp.local', 'orders');
    await resolver({ healthStatus: 'UNHEALTHY' }).resolve('orders.myapp.local', { signal: signal() });
    expect(fake.requests[0]?.body.HealthStatus).toBe('UNHEALTHY');
  });

  it('uses namespace and service as given, or derives them from the name', async () => {
    fake.createService('prod.internal', 'orders-v2');
    fake.createService('eu.myapp.local', 'pay');
    fake.createService('prod.internal', 'web');
    const client = makeClient();
    const target = (): unknown => {
      const { NamespaceName, ServiceName } = fake.requests.at(-1)!.body;
      return [NamespaceName, ServiceName];
    };
    await new CloudMapResolver(client, { namespace: 'prod.internal', service: 'orders-v2' }).resolve('orders.myapp.local', {
      signal: signal(),
    });
    expect(target()).toEqual(['prod.internal', 'orders-v2']);
    await new CloudMapResolver(client).resolve('pay.eu.myapp.local', { signal: signal() });
    expect(target()).toEqual(['eu.myapp.local', 'pay']);
    await new CloudMapResolver(client, { namespace: 'prod.internal' }).resolve('web.myapp.local', { signal: signal() });
    expect(target()).toEqual(['prod.internal', 'web']);
  });

  it('rejects a name that is not <service>.<namespace> with SIGNPOST_ERR_NOT_FOUND, without a call', async () => {
    const error = await catchError(resolver().resolve('orders', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('CloudMapResolver: namespaces shared from another account (OwnerAccount)', () => {
  const OWNER = '222222222222';
  beforeEach(() => {
    fake.createNamespace('shared.local', { owner: OWNER });
    fake.createService('shared.local', 'orders', { owner: OWNER, healthCheck: 'none' });
    fake.register('shared.local', 'orders', { id: 'o-1', attributes: { AWS_INSTANCE_IPV4: '10.9.0.1' } }, { owner: OWNER });
  });

  it('sends the client-wide ownerAccount on DiscoverInstances and DiscoverInstancesRevision', async () => {
    const r = resolver({ ownerAccount: OWNER }, {}, new FakeClock());
    const first = await r.resolve('orders.shared.local', { signal: signal() });
    expect(first.instances.map((i) => i.id)).toEqual(['o-1']);
    await r.resolve('orders.shared.local', { signal: signal(), previous: first });
    expect(fake.requests.map((c) => [c.operation, c.body.OwnerAccount])).toEqual([
      ['DiscoverInstances', OWNER],
      ['DiscoverInstancesRevision', OWNER],
    ]);
  });

  it("lets a service config set its own, and without one the shared namespace is not found", async () => {
    const client = makeClient();
    const own = await new CloudMapResolver(client, { ownerAccount: OWNER }).resolve('orders.shared.local', { signal: signal() });
    expect(own.instances).toHaveLength(1);
    const error = await catchError(new CloudMapResolver(client).resolve('orders.shared.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(error.message).toMatch(/shared from another account \(AWS RAM\), set ownerAccount/);
    expect(fake.requests.at(-1)?.body.OwnerAccount).toBeUndefined();
  });
});

describe('CloudMapResolver: revision gating and health freshness', () => {
  it('services without health checks: only DiscoverInstancesRevision while the revision holds, until fullRefreshInterval', async () => {
    const clock = new FakeClock();
    service('orders', ORDERS, 'none');
    const r = resolver({ fullRefreshInterval: 30_000 }, {}, clock);
    const count = (): [number, number] => [fake.count('DiscoverInstances'), fake.count('DiscoverInstancesRevision')];

    let previous: Resolution = await r.resolve('orders.myapp.local', { signal: signal() });
    expect(count()).toEqual([1, 0]);
    expect(previous.instances.map((i) => i.healthStatus)).toEqual(['UNKNOWN', 'UNKNOWN']);
    expect(previous.state).toMatchObject({ healthChecked: false });

    for (let i = 1; i <= 5; i++) {
      clock.advance(5000);
      const next = await r.resolve('orders.myapp.local', { signal: signal(), previous });
      expect(next.instances).toBe(previous.instances);
      previous = next;
    }
    expect(count()).toEqual([1, 5]);

    // At fullRefreshInterval: a full fetch, without a revision call first.
    clock.advance(5000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(count()).toEqual([2, 5]);
    expect(previous.state).toMatchObject({ fullAt: 30_000 });

    // The revision moved: a full fetch at once.
    clock.advance(1000);
    fake.deregister('myapp.local', 'orders', 'i-2');
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(count()).toEqual([3, 6]);
    expect(previous.instances.map((i) => i.id)).toEqual(['i-1']);
  });

  it('services with health checks: every poll is a full DiscoverInstances, so a health change is seen at the next poll', async () => {
    const clock = new FakeClock();
    service('orders', [ORDERS[0]!, { ...ORDERS[1]!, healthStatus: 'HEALTHY' }]);
    const r = resolver({}, {}, clock);
    let previous = await r.resolve('orders.myapp.local', { signal: signal() });
    expect(previous.instances).toHaveLength(2);
    fake.setHealth('myapp.local', 'orders', 'i-2', 'UNHEALTHY');
    clock.advance(previous.ttl);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(previous.instances.map((i) => i.id)).toEqual(['i-1']);
    expect(fake.requests.map((c) => c.operation)).toEqual(['DiscoverInstances', 'DiscoverInstances']);
  });

  it('healthRefreshInterval trades DiscoverInstances calls for later health changes', async () => {
    const clock = new FakeClock();
    service('orders', ORDERS);
    const r = resolver({ healthRefreshInterval: 20_000 }, {}, clock);
    let previous = await r.resolve('orders.myapp.local', { signal: signal() });
    for (let i = 0; i < 4; i++) {
      clock.advance(5000);
      previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    }
    expect(fake.requests.map((c) => c.operation)).toEqual([
      'DiscoverInstances',
      'DiscoverInstancesRevision',
      'DiscoverInstancesRevision',
      'DiscoverInstancesRevision',
      'DiscoverInstances',
    ]);
  });

  it("spreads the full calls of names resolved together over the N polls of fullRefreshInterval", async () => {
    const clock = new FakeClock();
    for (let i = 0; i < 5; i++) service(`s${i}`, ORDERS, 'none');
    let draw = 0;
    // Five names, five phases: the first full call after theirs comes at the 2nd … 6th poll.
    const r = new CloudMapResolver(makeClient({}, clock, () => draw / 5 + 0.01));
    const previous: Resolution[] = [];
    for (let i = 0; i < 5; i++) {
      draw = i;
      previous[i] = await r.resolve(`s${i}.myapp.local`, { signal: signal() });
    }
    const fullPerPoll: number[] = [];
    for (let poll = 0; poll < 6; poll++) {
      clock.advance(5000);
      const before = fake.count('DiscoverInstances');
      for (let i = 0; i < 5; i++) previous[i] = await r.resolve(`s${i}.myapp.local`, { signal: signal(), previous: previous[i]! });
      fullPerPoll.push(fake.count('DiscoverInstances') - before);
    }
    // One name's full call per poll, none at the first poll after the names' own, not all five at the sixth.
    expect(fullPerPoll).toEqual([0, 1, 1, 1, 1, 1]);
  });

  it('does a full fetch when the previous answer has no usable state', async () => {
    service('orders', ORDERS, 'none');
    const previous: Resolution = { instances: [], ttl: 1000 };
    await resolver().resolve('orders.myapp.local', { signal: signal(), previous });
    expect(fake.requests.map((c) => c.operation)).toEqual(['DiscoverInstances']);
  });

  it('falls back to DiscoverInstances at every poll when DiscoverInstancesRevision is denied, with one warning naming the permission', async () => {
    const clock = new FakeClock();
    service('orders', ORDERS, 'none');
    fake.deny('DiscoverInstancesRevision');
    const r = resolver({}, {}, clock);
    let previous = await r.resolve('orders.myapp.local', { signal: signal() });
    for (let i = 0; i < 3; i++) {
      clock.advance(5000);
      previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
      expect(previous.instances).toHaveLength(2);
    }
    // Denied once, then not asked again: every later poll is a full call.
    expect(fake.requests.map((c) => c.operation)).toEqual([
      'DiscoverInstances',
      'DiscoverInstancesRevision',
      'DiscoverInstances',
      'DiscoverInstances',
      'DiscoverInstances',
    ]);
    const messages = warned('SIGNPOST_CLOUDMAP_ACCESS_DENIED');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('servicediscovery:DiscoverInstancesRevision');
    expect(messages[0]).not.toContain('arn:aws:sts');
  });

  it('asks for the revision again once the recheck time has passed', async () => {
    const clock = new FakeClock();
    service('orders', ORDERS, 'none');
    fake.deny('DiscoverInstancesRevision');
    const r = resolver({}, {}, clock);
    let previous = await r.resolve('orders.myapp.local', { signal: signal() });
    clock.advance(5000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    fake.allow('DiscoverInstancesRevision');
    clock.advance(15 * 60_000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    clock.advance(5000);
    await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(fake.requests.slice(-2).map((c) => c.operation)).toEqual(['DiscoverInstancesRevision', 'DiscoverInstancesRevision']);
  });
});

describe('CloudMapResolver: instances registered by DNS name', () => {
  /** A lookup that answers from a table, counting its calls. */
  function lookup(table: Record<string, { addresses: string[]; ttl: number } | Error>): AddressLookup & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      async resolve(name) {
        calls.push(name);
        const entry = table[name];
        if (entry === undefined) throw new NotFoundError(`${name}: NXDOMAIN`, { hostname: name });
        if (entry instanceof Error) throw entry;
        return {
          instances: entry.addresses.map((address) => ({ id: address, address, weight: 1, priority: 0, attributes: {} })),
          ttl: entry.ttl,
        };
      },
    };
  }

  it('resolves AWS_ALIAS_DNS_NAME and AWS_INSTANCE_CNAME to one instance per address, with the port from the instance or the config', async () => {
    service(
      'edge',
      [
        { id: 'nlb', attributes: { AWS_ALIAS_DNS_NAME: 'orders-nlb-123.elb.us-east-1.amazonaws.com.', AWS_INSTANCE_PORT: '443' } },
        { id: 'legacy', attributes: { AWS_INSTANCE_CNAME: 'legacy.corp.example', AVAILABILITY_ZONE: 'us-east-1b' } },
      ],
      'none',
    );
    const dns = lookup({
      'orders-nlb-123.elb.us-east-1.amazonaws.com': { addresses: ['10.0.1.10', '10.0.2.10'], ttl: 60_000 },
      'legacy.corp.example': { addresses: ['10.0.3.3'], ttl: 300_000 },
    });
    const r = resolver({}, { port: 8080 }, undefined, dns);
    const { instances, ttl } = await r.resolve('edge.myapp.local', { signal: signal() });
    expect([...instances].sort((a, b) => a.address.localeCompare(b.address))).toEqual([
      { id: 'nlb', address: '10.0.1.10', port: 443, weight: 1, priority: 0, attributes: { AWS_ALIAS_DNS_NAME: 'orders-nlb-123.elb.us-east-1.amazonaws.com.' }, healthStatus: 'UNKNOWN' },
      { id: 'nlb', address: '10.0.2.10', port: 443, weight: 1, priority: 0, attributes: { AWS_ALIAS_DNS_NAME: 'orders-nlb-123.elb.us-east-1.amazonaws.com.' }, healthStatus: 'UNKNOWN' },
      { id: 'legacy', address: '10.0.3.3', port: 8080, zone: 'us-east-1b', weight: 1, priority: 0, attributes: { AWS_INSTANCE_CNAME: 'legacy.corp.example' }, healthStatus: 'UNKNOWN' },
    ]);
    expect(ttl).toBeLessThanOrEqual(5000);
    expect(dns.calls.sort()).toEqual(['legacy.corp.example', 'orders-nlb-123.elb.us-east-1.amazonaws.com']);
  });

  it('keeps a DNS answer for its TTL, answers no longer than it, and looks the name up again when it runs out', async () => {
    const clock = new FakeClock();
    service('edge', [{ id: 'nlb', attributes: { AWS_ALIAS_DNS_NAME: 'nlb.example' } }], 'none');
    const table: Record<string, { addresses: string[]; ttl: number }> = { 'nlb.example': { addresses: ['10.0.0.1'], ttl: 3000 } };
    const dns = lookup(table);
    const r = resolver({ pollInterval: 10_000 }, {}, clock, dns);
    let previous = await r.resolve('edge.myapp.local', { signal: signal() });
    expect(previous.ttl).toBeLessThanOrEqual(3000);
    // The revision holds: no DiscoverInstances, but the name's TTL ran out: asked again.
    table['nlb.example'] = { addresses: ['10.0.0.2'], ttl: 3000 };
    clock.advance(3000);
    previous = await r.resolve('edge.myapp.local', { signal: signal(), previous });
    expect(previous.instances.map((i) => i.address)).toEqual(['10.0.0.2']);
    expect(dns.calls).toEqual(['nlb.example', 'nlb.example']);
    expect(fake.requests.map((c) => c.operation)).toEqual(['DiscoverInstances', 'DiscoverInstancesRevision']);
    // Within the TTL, nothing is asked.
    clock.advance(1000);
    await r.resolve('edge.myapp.local', { signal: signal(), previous });
    expect(dns.calls).toHaveLength(2);
  });

  it('serves the last addresses while DNS fails, skips names that do not exist, and fails when nothing is left', async () => {
    const clock = new FakeClock();
    service(
      'edge',
      [
        { id: 'nlb', attributes: { AWS_ALIAS_DNS_NAME: 'nlb.example' } },
        { id: 'gone', attributes: { AWS_INSTANCE_CNAME: 'gone.example' } },
      ],
      'none',
    );
    const table: Record<string, { addresses: string[]; ttl: number } | Error> = { 'nlb.example': { addresses: ['10.0.0.1'], ttl: 1000 } };
    const r = resolver({}, {}, clock, lookup(table));
    const skipped = onChannel<CloudMapSkippedEvent>('signpost:cloudmap:instance-skipped');
    let previous = await r.resolve('edge.myapp.local', { signal: signal() });
    expect(previous.instances.map((i) => i.address)).toEqual(['10.0.0.1']);
    expect(skipped.events.map((e) => [e.instanceId, e.reason])).toEqual([['gone', 'its DNS name gone.example has no address']]);

    table['nlb.example'] = new ResolveError('nlb.example: SERVFAIL');
    clock.advance(2000);
    previous = await r.resolve('edge.myapp.local', { signal: signal(), previous });
    expect(previous.instances.map((i) => i.address)).toEqual(['10.0.0.1']);

    // A cold resolver has no last addresses: the DNS failure is the answer.
    const error = await catchError(resolver({}, {}, clock, lookup(table)).resolve('edge.myapp.local', { signal: signal() }));
    expect(error).toBeInstanceOf(ResolveError);
    expect(error.message).toMatch(/registered by DNS name, and looking them up failed: nlb.example: SERVFAIL/);
  });

  it('without a DNS lookup, skips them and says why', async () => {
    service('edge', [{ id: 'nlb', attributes: { AWS_ALIAS_DNS_NAME: 'nlb.example' } }], 'none');
    const skipped = onChannel<CloudMapSkippedEvent>('signpost:cloudmap:instance-skipped');
    const { instances } = await resolver().resolve('edge.myapp.local', { signal: signal() });
    expect(instances).toEqual([]);
    expect(skipped.events[0]?.reason).toMatch(/no DNS resolver was given/);
  });
});

describe('CloudMapClient: errors', () => {
  it.each(['NamespaceNotFound', 'ServiceNotFound'])('maps %s (HTTP 404) to SIGNPOST_ERR_NOT_FOUND without retrying', async (type) => {
    if (type === 'ServiceNotFound') fake.createNamespace('myapp.local');
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(error.message).toContain('orders.myapp.local');
    expect(error.message).toContain(`${type}, HTTP 404`);
    expect(error.message).toContain('in us-east-1');
    expect(fake.requests).toHaveLength(1);
  });

  it('NamespaceNotFound names the HTTP name, which may differ from the namespace name', async () => {
    fake.createNamespace('myapp.local', { httpName: 'myapp.local-3d2f9a' });
    fake.createService('myapp.local-3d2f9a', 'orders');
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: signal() }));
    expect(error.message).toMatch(/no namespace with the HTTP name "myapp.local"/);
    expect(error.message).toMatch(/HttpName/);
    const found = await resolver({}, { namespace: 'myapp.local-3d2f9a' }).resolve('orders.myapp.local', { signal: signal() });
    expect(found.instances).toEqual([]);
  });

  it('maps NotFound from the revision call too', async () => {
    const previous: Resolution = { instances: [], ttl: 1000, state: { revision: 1, fullAt: 0, pollsToFull: 1, healthChecked: false } };
    const error = await catchError(resolver({}, {}, new FakeClock()).resolve('orders.myapp.local', { signal: signal(), previous }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(fake.requests.map((c) => c.operation)).toEqual(['DiscoverInstancesRevision']);
  });

  it('a denied DiscoverInstances is SIGNPOST_ERR_RESOLVE naming the permission, with one warning', async () => {
    service('orders', ORDERS);
    fake.deny('DiscoverInstances');
    const r = resolver();
    const error = await catchError(r.resolve('orders.myapp.local', { signal: signal() }));
    await catchError(r.resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toContain('grant servicediscovery:DiscoverInstances');
    expect(error.message).not.toContain('arn:aws:sts');
    expect(warned('SIGNPOST_CLOUDMAP_ACCESS_DENIED')).toHaveLength(1);
    expect(fake.requests).toHaveLength(2);
  });

  it.each([
    ['UnrecognizedClientException', 400],
    ['InvalidSignatureException', 403],
    ['ExpiredTokenException', 400],
  ])('maps %s to a SIGNPOST_ERR_RESOLVE about the credential source', async (type, status) => {
    fake.failNext(1, { type, status, message: 'The request signature we calculated does not match. AKIDTEST/20240101/us-east-1 Signature=abcdef' });
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toContain('credential source');
    expect(error.message).not.toMatch(/AKIDTEST|Signature=|Authorization/);
    expect(fake.requests).toHaveLength(1);
  });

  it('refuses a credential scope for another region, as AWS does', async () => {
    fake.createService('myapp.local', 'orders');
    const other = new FakeCloudMap({ region: 'eu-west-1' });
    server.use(other.handler);
    const error = await catchError(resolver({ region: 'eu-west-1' }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    // The same stand-in checking scopes for us-east-1 refuses a request signed for eu-west-1.
    const scoped = new FakeCloudMap({ region: 'us-east-1' });
    server.use(scoped.handlerAt('https://data-servicediscovery.eu-west-1.amazonaws.com/'));
    const refused = await catchError(resolver({ region: 'eu-west-1' }).resolve('orders.myapp.local', { signal: signal() }));
    expect(refused.message).toMatch(/InvalidSignatureException, HTTP 403/);
  });

  it('warns once when a service reaches the 1,000 instances one call returns', async () => {
    fake.createService('myapp.local', 'big', { healthCheck: 'none' });
    for (let i = 0; i < 1001; i++) {
      fake.register('myapp.local', 'big', { id: `i-${i}`, attributes: { AWS_INSTANCE_IPV4: `10.1.${i >> 8}.${i & 255}` } });
    }
    const r = resolver();
    const { instances } = await r.resolve('big.myapp.local', { signal: signal() });
    await r.resolve('big.myapp.local', { signal: signal() });
    expect(instances).toHaveLength(1000);
    const messages = warned('SIGNPOST_CLOUDMAP_MAX_RESULTS');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/big\.myapp\.local: .* returned 1000 instances/);
  });
});

describe('CloudMapClient: retries by the SDK', () => {
  it('retries a throttled call (HTTP 429), then gives SIGNPOST_ERR_RESOLVE about the shared quota', async () => {
    fake.createService('myapp.local', 'orders');
    fake.failNext(5, 'RequestLimitExceeded');
    const retries = onChannel<CloudMapRetryEvent>('signpost:cloudmap:retry');
    const error = await catchError(resolver({ retries: 1 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toContain('orders.myapp.local');
    expect(error.message).toContain('RequestLimitExceeded, HTTP 429');
    expect(error.message).toContain('2 attempts');
    expect(error.message).toMatch(/quota .* shared by every process/);
    expect(fake.requests.map((c) => c.status)).toEqual([429, 429]);
    expect(retries.events.map((e) => [e.attempt, e.retriesLeft, e.error, e.statusCode])).toEqual([[1, 0, 'RequestLimitExceeded', 429]]);
    expect((error.cause as Error).name).toBe('RequestLimitExceeded');
  });

  it('succeeds when throttling clears within the retries', async () => {
    service('orders', ORDERS);
    fake.failNext(1, 'ThrottlingException');
    const { instances } = await resolver({ retries: 2 }).resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toHaveLength(1);
    expect(fake.requests).toHaveLength(2);
  });

  it.each([
    ['HTTP 500', () => fake.failNext(9, 'InternalFailure')],
    ['HTTP 503', () => fake.respond(() => ({ status: 503, body: 'unavailable' }))],
  ])('retries %s', async (_, fail) => {
    fake.createService('myapp.local', 'orders');
    fail();
    const error = await catchError(resolver({ retries: 2 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(fake.requests).toHaveLength(3);
  });

  it('retries a dropped connection (over loopback: a real reset socket)', async () => {
    const loopback = await FakeCloudMap.start();
    try {
      // msw lets the call through to the real socket.
      server.use(http.post(`${loopback.endpoint}/`, () => passthrough()));
      loopback.createService('myapp.local', 'orders');
      let n = 0;
      loopback.respond(() => (++n <= 2 ? 'drop' : undefined));
      const { instances } = await resolver({ endpoint: loopback.endpoint, retries: 2 }).resolve('orders.myapp.local', { signal: signal() });
      expect(instances).toEqual([]);
      expect(loopback.requests).toHaveLength(3);
    } finally {
      await loopback.close();
    }
  });

  it('retries an attempt that outlives timeout', async () => {
    fake.createService('myapp.local', 'orders');
    fake.respond(() => 'hang');
    const error = await catchError(resolver({ retries: 1, timeout: 30 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toMatch(/TimeoutError/);
    expect(fake.requests).toHaveLength(2);
  });

  it('does not retry with retries: 0', async () => {
    fake.failNext(5, 'InternalFailure');
    await catchError(resolver({ retries: 0 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(fake.requests).toHaveLength(1);
  });

  it("uses a given client's own retry settings, and still spends the budget on each attempt", async () => {
    service('orders', ORDERS);
    fake.failNext(2, 'InternalFailure');
    const sdk = new ServiceDiscoveryClient({ region: TEST_REGION, credentials: TEST_CREDENTIALS, maxAttempts: 3 });
    const calls = onChannel<{ attempt: number }>('signpost:cloudmap:call');
    const client = new CloudMapClient(parseCloudMapOptions({ client: sdk, retries: 0 }));
    clients.push(client);
    const { instances } = await new CloudMapResolver(client).resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toHaveLength(1);
    expect(calls.events.map((e) => e.attempt)).toEqual([1, 2, 3]);
    sdk.destroy();
  });
});

describe('CloudMapClient: no secret in errors, causes or diagnostics', () => {
  const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDSECRET';
  const TOKEN = 'IQoJb3JpZ2luX2VjEPLANTEDSESSIONTOKEN';

  function text(value: unknown): string {
    return inspect(value, { depth: 20, showHidden: true }) + JSON.stringify(value) + String(value);
  }

  it('from AWS error messages echoing the signed request', async () => {
    fake.createService('myapp.local', 'orders');
    const events = onChannel<unknown>('signpost:cloudmap:retry');
    const calls = onChannel<unknown>('signpost:cloudmap:call');
    const errors: unknown[] = [];
    for (const failure of [
      { type: 'SignatureDoesNotMatch', status: 403, message: `canonical request ... X-Amz-Security-Token:${TOKEN} secret ${SECRET}` },
      { type: 'AccessDeniedException', message: `token ${TOKEN} is not authorized` },
      { type: 'RequestLimitExceeded', message: `Rate exceeded for ${TOKEN}` },
      { type: 'InternalFailure', message: `oops ${SECRET}` },
    ]) {
      fake.failNext(2, failure);
      const r = resolver({ retries: 1, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: SECRET, sessionToken: TOKEN } });
      errors.push(await catchError(r.resolve('orders.myapp.local', { signal: signal() })));
    }
    const all = text(errors) + text(events.events) + text(calls.events) + warnings.mock.calls.map((c) => String(c[0])).join();
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(TOKEN);
    expect(all).not.toMatch(/Signature=|Credential=/);
    expect(errors.every((e) => (e as { code?: string }).code === 'SIGNPOST_ERR_RESOLVE')).toBe(true);
  });

  it("from a credential provider's error and its causes", async () => {
    const provider = async (): Promise<never> => {
      const inner = new Error(`GET http://169.254.170.2/creds?token=${TOKEN} failed`);
      throw Object.assign(new Error(`could not load credentials: aws_secret_access_key = ${SECRET}`, { cause: inner }), {
        name: 'CredentialsProviderError',
        token: TOKEN,
      });
    };
    const error = await catchError(resolver({ credentials: provider }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toMatch(/CredentialsProviderError.*credential source/);
    expect(text(error)).not.toContain(SECRET);
    expect(text(error)).not.toContain(TOKEN);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('CloudMapClient: the call budget', () => {
  it('never lets concurrent resolves exceed maxCallsPerSecond', async () => {
    const clock = new FakeClock();
    for (let i = 0; i < 12; i++) fake.createService('myapp.local', `svc${i}`);
    const client = makeClient({ maxCallsPerSecond: 5 }, clock);
    const settled = Array.from({ length: 12 }, (_, i) => new CloudMapResolver(client).resolve(`svc${i}.myapp.local`, { signal: signal() }));

    const settle = async (expected: number): Promise<void> => {
      await vi.waitFor(() => expect(fake.requests.length).toBe(expected));
      // Give any call the budget should have held back the chance to slip through.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(fake.requests.length).toBe(expected);
    };
    await settle(5);
    clock.advance(1000);
    await settle(10);
    clock.advance(1000);
    await settle(12);
    expect(await Promise.all(settled)).toHaveLength(12);
  });

  it("spends the budget on the SDK's retries too", async () => {
    const clock = new FakeClock();
    fake.failNext(9, 'InternalFailure');
    const pending = catchError(resolver({ maxCallsPerSecond: 2, retries: 3 }, {}, clock).resolve('orders.myapp.local', { signal: signal() }));
    await vi.waitFor(() => expect(fake.requests.length).toBe(2));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fake.requests.length).toBe(2);
    clock.advance(1000);
    expect((await pending).code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(fake.requests.length).toBe(4);
  });

  it('throttling halves the polling rate (the poll interval doubles); it grows back over a minute', async () => {
    const clock = new FakeClock();
    for (let i = 0; i < 10; i++) service(`svc${i}`, ORDERS, 'none');
    const client = makeClient({ retries: 0 }, clock);
    const throttled = onChannel<CloudMapThrottledEvent>('signpost:cloudmap:throttled');
    const r = new CloudMapResolver(client);
    // Ten names polled every 5 s: 2 calls a second.
    const previous: Resolution[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 10; i++) previous[i] = await r.resolve(`svc${i}.myapp.local`, { signal: signal(), ...(previous[i] && { previous: previous[i] }) });
      clock.advance(5000);
    }
    expect(client.budget()).toMatchObject({ stretch: 1, throttled: false });

    fake.storm(true);
    await catchError(r.resolve('svc0.myapp.local', { signal: signal(), previous: previous[0]! }));
    const cut = client.budget();
    expect(cut.throttled).toBe(true);
    expect(cut.stretch).toBe(2);
    expect(throttled.events).toHaveLength(1);
    expect(throttled.events[0]).toMatchObject({ operation: 'DiscoverInstancesRevision', service: 'svc0' });
    fake.storm(false);

    // A throttled client's next answers are good for longer: the first answer after throttling
    // resumes polling at 70 % of its rate.
    clock.advance(2000);
    const next = await r.resolve('svc1.myapp.local', { signal: signal(), previous: previous[1]! });
    expect(next.ttl).toBe(Math.round((5000 / 0.7) * (0.9 + 0.2 * 0.999_999)));
    expect(client.budget().stretch).toBeCloseTo(1 / 0.7, 5);

    // Then it grows back linearly, all the way within 20 s.
    clock.advance(10_000);
    const growing = client.budget();
    expect(growing.stretch).toBeLessThan(cut.stretch);
    expect(growing.stretch).toBeGreaterThan(1);
    clock.advance(60_000);
    expect(client.budget()).toMatchObject({ stretch: 1, throttled: false });
  });
});

describe('CloudMapClient: new names after a throttle', () => {
  /**
   * Waits for `promise`, moving the fake clock 10 ms whenever a call waits for the budget (and
   * only then, so the time counted is the budget's); returns the clock time that took.
   */
  async function settle(client: CloudMapClient, clock: FakeClock, promise: Promise<unknown>): Promise<number> {
    const start = clock.now();
    let done = false;
    void promise.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (client.budget().waiting > 0) await clock.run(10);
    }
    return clock.now() - start;
  }

  it("one throttled call does not make new names wait on a quiet process's polling rate", async () => {
    const clock = new FakeClock();
    for (let i = 0; i < 6; i++) service(`svc${i}`, ORDERS, 'none');
    const client = makeClient({}, clock);
    const r = new CloudMapResolver(client);
    // One name in use, polled every 5 s: 0.2 calls a second planned.
    await r.resolve('svc0.myapp.local', { signal: signal() });
    // A new name's first attempt is throttled; the SDK retries it.
    fake.failNext(1, 'RequestLimitExceeded');
    const first = await settle(client, clock, r.resolve('svc1.myapp.local', { signal: signal() }));
    expect(fake.requests.map((c) => c.status)).toEqual([200, 429, 200]);
    expect(client.budget()).toMatchObject({ throttled: true, stretch: 2 });
    // Polling now plans for 0.2 × ½ ÷ 0.9 calls a second, a token every 9 s; four more new names
    // are served at the cut share of maxCallsPerSecond instead: 25 a second.
    const names = ['svc2', 'svc3', 'svc4', 'svc5'].map((s) => r.resolve(`${s}.myapp.local`, { signal: signal() }));
    const more = await settle(client, clock, Promise.all(names));
    expect(fake.requests.map((c) => c.status)).toEqual([200, 429, 200, 200, 200, 200, 200]);
    expect(first + more).toBeLessThanOrEqual(200);
  });

  it('in a storm, new names wait their turn at the polling rate: the process does not add to it', async () => {
    const clock = new FakeClock();
    for (let i = 0; i < 6; i++) service(`svc${i}`, ORDERS, 'none');
    const client = makeClient({ retries: 0 }, clock);
    const r = new CloudMapResolver(client);
    await r.resolve('svc0.myapp.local', { signal: signal() });
    fake.storm(true);
    // Throttled twice in a row, nothing answered between: a storm.
    await catchError(r.resolve('svc1.myapp.local', { signal: signal() }));
    await clock.run(5000);
    await catchError(r.resolve('svc1.myapp.local', { signal: signal() }));
    expect(fake.requests).toHaveLength(3);
    // Four new names ask while every call is throttled: each waits for a token of the polling
    // rate, cut to the longest stretch (six names in use: 1.2 ÷ 6 ÷ 0.9 calls a second, one every
    // 4.5 s), not for the cold floor's 25 a second.
    const asks = ['svc2', 'svc3', 'svc4', 'svc5'].map((s) => catchError(r.resolve(`${s}.myapp.local`, { signal: signal() })));
    const took = await settle(client, clock, Promise.all(asks));
    expect(fake.requests).toHaveLength(7);
    expect(client.budget()).toMatchObject({ stretch: 6 });
    expect(took).toBeGreaterThanOrEqual(3 * 4000);
    fake.storm(false);
  });
});

describe('CloudMapClient: endpoints', () => {
  it('keeps the data- host prefix for a Cloud Map API host (FIPS), and not for other endpoints', async () => {
    fake.createService('myapp.local', 'orders');
    const hosts: string[] = [];
    server.events.on('request:start', ({ request }) => {
      hosts.push(new URL(request.url).host);
    });
    server.use(
      fake.handlerAt('https://data-servicediscovery-fips.us-east-1.amazonaws.com/'),
      fake.handlerAt('https://vpce-0abc.data-servicediscovery.us-east-1.vpce.amazonaws.com/'),
    );
    await resolver({ endpoint: 'https://servicediscovery-fips.us-east-1.amazonaws.com' }).resolve('orders.myapp.local', { signal: signal() });
    await resolver({ endpoint: 'https://vpce-0abc.data-servicediscovery.us-east-1.vpce.amazonaws.com' }).resolve('orders.myapp.local', {
      signal: signal(),
    });
    server.use(fake.handlerAt('https://servicediscovery-fips.us-east-1.amazonaws.com/'));
    await resolver({ endpoint: 'https://servicediscovery-fips.us-east-1.amazonaws.com', hostPrefix: false }).resolve('orders.myapp.local', {
      signal: signal(),
    });
    server.events.removeAllListeners();
    expect(hosts).toEqual([
      'data-servicediscovery-fips.us-east-1.amazonaws.com',
      'vpce-0abc.data-servicediscovery.us-east-1.vpce.amazonaws.com',
      'servicediscovery-fips.us-east-1.amazonaws.com',
    ]);
  });

  it('works over loopback HTTP with the stand-in as endpoint', async () => {
    const loopback = await FakeCloudMap.start();
    try {
      server.use(http.post(`${loopback.endpoint}/`, () => passthrough()));
      loopback.register('myapp.local', 'orders', { id: 'i-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.2', AWS_INSTANCE_PORT: '8080' } });
      const { instances } = await resolver({ endpoint: loopback.endpoint }).resolve('orders.myapp.local', { signal: signal() });
      expect(instances.map((i) => [i.address, i.port])).toEqual([['127.0.0.2', 8080]]);
    } finally {
      await loopback.close();
    }
  });
});

describe('CloudMapClient: abort and close', () => {
  it('rejects with SIGNPOST_ERR_RESOLVE when aborted during a call', async () => {
    let entered!: () => void;
    const inFlight = new Promise<void>((resolve) => (entered = resolve));
    fake.respond(() => {
      entered();
      return 'hang';
    });
    const controller = new AbortController();
    const pending = catchError(resolver().resolve('orders.myapp.local', { signal: controller.signal }));
    await inFlight;
    controller.abort(new Error('caller gave up'));
    const error = await pending;
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect((error.cause as Error).message).toBe('caller gave up');
    expect(fake.requests).toHaveLength(1);
  });

  it('rejects when aborted while waiting for the budget, without calling', async () => {
    const clock = new FakeClock();
    fake.createService('myapp.local', 'a');
    const r = resolver({ maxCallsPerSecond: 1 }, {}, clock);
    await r.resolve('a.myapp.local', { signal: signal() });
    const controller = new AbortController();
    const pending = catchError(r.resolve('b.myapp.local', { signal: controller.signal }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    expect((await pending).code).toBe('SIGNPOST_ERR_RESOLVE');
    clock.advance(5000);
    expect(fake.requests).toHaveLength(1);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: AbortSignal.abort() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(fake.requests).toHaveLength(0);
  });

  it('close() is idempotent, destroys the client it created and stops waiting calls', async () => {
    const destroy = vi.spyOn(ServiceDiscoveryClient.prototype, 'destroy');
    try {
      const clock = new FakeClock();
      fake.createService('myapp.local', 'a');
      const client = new CloudMapClient(parseCloudMapOptions({ region: TEST_REGION, credentials: TEST_CREDENTIALS, maxCallsPerSecond: 1 }), clock);
      const r = new CloudMapResolver(client);
      await r.resolve('a.myapp.local', { signal: signal() });
      const waiting = catchError(r.resolve('b.myapp.local', { signal: signal() }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      client.close();
      client.close();
      expect(destroy).toHaveBeenCalledTimes(1);
      expect((await waiting).code).toBe('SIGNPOST_ERR_CLOSED');
      expect((await catchError(r.resolve('a.myapp.local', { signal: signal() }))).code).toBe('SIGNPOST_ERR_CLOSED');
    } finally {
      destroy.mockRestore();
    }
  });

  it('uses a given client and leaves it open on close()', async () => {
    service('orders', ORDERS);
    const sdk = new ServiceDiscoveryClient({ region: TEST_REGION, credentials: TEST_CREDENTIALS, maxAttempts: 1 });
    const destroy = vi.spyOn(sdk, 'destroy');
    const client = new CloudMapClient(parseCloudMapOptions({ client: sdk, region: 'eu-west-1' }));
    const { instances } = await new CloudMapResolver(client).resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toHaveLength(1);
    client.close();
    expect(destroy).not.toHaveBeenCalled();
    sdk.destroy();
  });
});

describe('validation', () => {
  const invalidOptions: [string, unknown][] = [
    ['options', 'us-east-1'],
    ['unknown key', { regoin: 'us-east-1' }],
    ['region', { region: '' }],
    ['region', { region: 'US East' }],
    ['endpoint', { endpoint: 'not a url' }],
    ['endpoint', { endpoint: 'ftp://127.0.0.1' }],
    ['endpoint', { endpoint: 'https://user:pass@127.0.0.1' }],
    ['hostPrefix', { hostPrefix: 'yes' }],
    ['client', { client: {} }],
    ['credentials', { credentials: { accessKeyId: 'AKIDTEST' } }],
    ['credentials', { credentials: 'AKIDTEST:secret' }],
    ['ownerAccount', { ownerAccount: '1234' }],
    ['ownerAccount', { ownerAccount: 222222222222 }],
    ['healthStatus', { healthStatus: 'healthy' }],
    ['pollInterval', { pollInterval: 50 }],
    ['pollInterval', { pollInterval: 1.5e3 + 0.5 }],
    ['pollInterval', { pollInterval: 4_000_000 }],
    ['fullRefreshInterval', { fullRefreshInterval: -1 }],
    ['fullRefreshInterval', { fullRefreshInterval: 4_000_000 }],
    ['healthRefreshInterval', { healthRefreshInterval: -1 }],
    ['healthRefreshInterval', { healthRefreshInterval: 1.5 }],
    ['healthRefreshInterval', { healthRefreshInterval: 4_000_000 }],
    ['maxCallsPerSecond', { maxCallsPerSecond: 0 }],
    ['maxCallsPerSecond', { maxCallsPerSecond: Number.POSITIVE_INFINITY }],
    ['retries', { retries: -1 }],
    ['retries', { retries: 1.5 }],
    ['retries', { retries: 11 }],
    ['retryMode', { retryMode: 'legacy' }],
    ['retryDelay', { retryDelay: 0 }],
    ['retryDelay', { retryDelay: 120_000 }],
    ['timeout', { timeout: 0 }],
    ['timeout', { timeout: '5s' }],
    ['weightAttribute', { weightAttribute: '' }],
  ];
  it.each(invalidOptions)('rejects a bad %s with SIGNPOST_ERR_INVALID_ARG', (name, options) => {
    const error = (() => {
      try {
        new CloudMapClient(parseCloudMapOptions(options as CloudMapOptions));
      } catch (e) {
        return e as { code?: string; message: string };
      }
      throw new Error('expected a throw');
    })();
    expect(error.code).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(error.message).toContain('cloudMap');
    if (name !== 'options' && name !== 'unknown key') expect(error.message).toContain(name);
  });

  it('never echoes credentials in a validation error', () => {
    expect(() => parseCloudMapOptions({ credentials: { accessKeyId: 'AKIDSECRET', secretAccessKey: 7 } })).toThrow(
      expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', message: expect.not.stringContaining('AKIDSECRET') }),
    );
    expect(() => parseCloudMapOptions({ endpoint: 'https://AKIDSECRET:hunter2@example.com' })).toThrow(
      expect.objectContaining({ message: expect.not.stringMatching(/AKIDSECRET|hunter2/) }),
    );
  });

  it('accepts every valid option', () => {
    expect(
      () =>
        new CloudMapClient(parseCloudMapOptions({
          region: 'eu-west-1',
          endpoint: 'http://127.0.0.1:4566',
          hostPrefix: false,
          credentials: TEST_CREDENTIALS,
          ownerAccount: TEST_ACCOUNT,
          healthStatus: 'ALL',
          pollInterval: 10_000,
          fullRefreshInterval: 0,
          healthRefreshInterval: 30_000,
          maxCallsPerSecond: 0.5,
          retries: 0,
          retryMode: 'adaptive',
          retryDelay: 50,
          timeout: 1000,
          weightAttribute: 'capacity',
        })),
    ).not.toThrow();
    expect(() => new CloudMapClient(parseCloudMapOptions({ credentials: async () => TEST_CREDENTIALS }))).not.toThrow();
    expect(() => parseCloudMapOptions({ healthStatus: 'HEALTHY' }, 'namespaces["myapp.local"]')).not.toThrow();
  });

  const invalidConfigs: [string, unknown][] = [
    ['config', null],
    ['unknown key', { servcie: 'orders' }],
    ['namespace', { namespace: 'not a namespace' }],
    ['service', { service: '' }],
    ['service', { service: 'orders.myapp' }],
    ['healthStatus', { healthStatus: 'OK' }],
    ['queryParameters', { queryParameters: { stage: 1 } }],
    ['optionalParameters', { optionalParameters: 'zone=a' }],
    ['ownerAccount', { ownerAccount: 'someone' }],
    ['port', { port: 0 }],
    ['port', { port: 65_536 }],
    ['port', { port: '8080' }],
  ];
  it.each(invalidConfigs)('a Cloud Map service config with a bad %s is rejected with SIGNPOST_ERR_INVALID_ARG', (_, config) => {
    const services = { 'orders.myapp.local': config === null ? null : { via: 'cloudmap', namespace: 'myapp.local', service: 'orders', ...(config as object) } };
    expect(() => new Discovery({ services: services as never })).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
  });

  it('accepts every field of a Cloud Map service config', () => {
    const config = { via: 'cloudmap', namespace: 'myapp.local', service: 'orders', ownerAccount: TEST_ACCOUNT, port: 80 } as const;
    expect(() => parseServices({ 'orders.myapp.local': config })).not.toThrow();
  });
});
