// The SDK must never look for credentials or a region on an instance metadata endpoint.
process.env.AWS_EC2_METADATA_DISABLED = 'true';

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import { http, passthrough } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import type { CloudMapOptions } from '../../src/options.ts';
import {
  CloudMapClient,
  CloudMapResolver,
  validateCloudMapOptions,
  validateCloudMapResolverConfig,
  type CloudMapResolverConfig,
  type CloudMapRetryEvent,
  type CloudMapSkippedEvent,
} from '../../src/resolvers/cloudmap.ts';
import type { Resolution } from '../../src/types.ts';
import {
  awsError,
  discoverResponse,
  mockCloudMap,
  TEST_CREDENTIALS,
  TEST_REGION,
  type CloudMapAnswer,
  type CloudMapCall,
} from '../support/cloudmap-msw.ts';
import { FakeCloudMap } from '../support/fake-cloudmap.ts';
import { FakeClock } from '../support/fake-clock.ts';

let answer: (call: CloudMapCall) => CloudMapAnswer | Promise<CloudMapAnswer> = () => awsError('InternalFailure', 500);
const cloudMap = mockCloudMap(TEST_REGION, (call) => answer(call));
const server = setupServer(cloudMap.handler);

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
afterEach(() => {
  cloudMap.calls.length = 0;
  server.resetHandlers();
});
afterAll(() => server.close());

const clients: CloudMapClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

function makeClient(options: CloudMapOptions = {}, clock?: Clock): CloudMapClient {
  const client = new CloudMapClient(
    { region: TEST_REGION, credentials: TEST_CREDENTIALS, retryDelay: 1, ...options },
    clock,
  );
  clients.push(client);
  return client;
}

function resolver(options: CloudMapOptions = {}, config: CloudMapResolverConfig = {}, clock?: Clock): CloudMapResolver {
  return new CloudMapResolver(makeClient(options, clock), config);
}

const signal = (): AbortSignal => new AbortController().signal;

const ORDERS = [
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
  { id: 'i-2', attributes: { AWS_INSTANCE_IPV6: 'fd00::2', AWS_INSTANCE_PORT: '9090' }, healthStatus: 'UNHEALTHY' as const },
];

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

describe('CloudMapResolver: instances', () => {
  it('maps Cloud Map attributes onto instances and keeps the rest', async () => {
    answer = () => discoverResponse(ORDERS, 7);
    const resolution = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(resolution.instances).toEqual([
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
    expect(resolution.ttl).toBe(5000);
    expect(resolution.state).toMatchObject({ revision: 7 });
  });

  it('prefers the IPv4 address, keeping the IPv6 one as an attribute', async () => {
    answer = () =>
      discoverResponse([{ id: 'i-1', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1', AWS_INSTANCE_IPV6: 'fd00::1' } }], 1);
    const { instances } = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toEqual([
      { id: 'i-1', address: '10.0.0.1', weight: 1, priority: 0, attributes: { AWS_INSTANCE_IPV6: 'fd00::1' }, healthStatus: 'HEALTHY' },
    ]);
  });

  it('reads the weight from weightAttribute and ignores one that is not a weight', async () => {
    answer = () =>
      discoverResponse(
        [
          { id: 'a', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1', capacity: '5' } },
          { id: 'b', attributes: { AWS_INSTANCE_IPV4: '10.0.0.2', capacity: 'big' } },
        ],
        1,
      );
    const { instances } = await resolver({ weightAttribute: 'capacity' }).resolve('orders.myapp.local', { signal: signal() });
    expect(instances.map((i) => [i.weight, i.attributes])).toEqual([
      [5, {}],
      [1, { capacity: 'big' }],
    ]);
  });

  it('skips instances without a usable address or port and reports them', async () => {
    answer = () =>
      discoverResponse(
        [
          { id: 'ok', attributes: { AWS_INSTANCE_IPV4: '10.0.0.1' } },
          { id: 'no-address', attributes: { AWS_INSTANCE_PORT: '80' } },
          { id: 'hostname', attributes: { AWS_INSTANCE_IPV4: 'orders.internal' } },
          { id: 'bad-port', attributes: { AWS_INSTANCE_IPV4: '10.0.0.2', AWS_INSTANCE_PORT: '70000' } },
        ],
        1,
      );
    const skipped = onChannel<CloudMapSkippedEvent>('signpost:cloudmap:instance-skipped');
    const { instances } = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(instances.map((i) => i.id)).toEqual(['ok']);
    expect(skipped.events.map((e) => [e.instanceId, e.service, e.namespace])).toEqual([
      ['no-address', 'orders', 'myapp.local'],
      ['hostname', 'orders', 'myapp.local'],
      ['bad-port', 'orders', 'myapp.local'],
    ]);
    expect(skipped.events[2]?.reason).toMatch(/AWS_INSTANCE_PORT/);
  });

  it('answers an empty service with no instances', async () => {
    answer = () => discoverResponse([], 3);
    const resolution = await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(resolution.instances).toEqual([]);
  });

  it('uses pollInterval as the ttl', async () => {
    answer = () => discoverResponse(ORDERS, 1);
    const resolution = await resolver({ pollInterval: 12_000 }).resolve('orders.myapp.local', { signal: signal() });
    expect(resolution.ttl).toBe(12_000);
  });
});

describe('CloudMapResolver: the DiscoverInstances request', () => {
  it('sends HealthStatus HEALTHY_OR_ELSE_ALL and MaxResults 1000 by default, signed with the given credentials', async () => {
    answer = () => discoverResponse([], 1);
    await resolver().resolve('orders.myapp.local', { signal: signal() });
    expect(cloudMap.calls).toHaveLength(1);
    const call = cloudMap.calls[0]!;
    expect(call.operation).toBe('DiscoverInstances');
    expect(call.body).toEqual({
      NamespaceName: 'myapp.local',
      ServiceName: 'orders',
      HealthStatus: 'HEALTHY_OR_ELSE_ALL',
      MaxResults: 1000,
    });
    expect(call.headers.get('authorization')).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\//);
    expect(call.headers.get('x-amz-target')).toBe('Route53AutoNaming_v20170314.DiscoverInstances');
    expect(call.headers.get('content-type')).toBe('application/x-amz-json-1.1');
  });

  it('passes HealthStatus, QueryParameters and OptionalParameters through', async () => {
    answer = () => discoverResponse([], 1);
    await resolver(
      { healthStatus: 'ALL' },
      {
        healthStatus: 'HEALTHY',
        queryParameters: { stage: 'prod' },
        optionalParameters: { AVAILABILITY_ZONE: 'us-east-1a' },
      },
    ).resolve('orders.myapp.local', { signal: signal() });
    expect(cloudMap.calls[0]?.body).toMatchObject({
      HealthStatus: 'HEALTHY',
      QueryParameters: { stage: 'prod' },
      OptionalParameters: { AVAILABILITY_ZONE: 'us-east-1a' },
    });
  });

  it('takes the default HealthStatus from the client options', async () => {
    answer = () => discoverResponse([], 1);
    await resolver({ healthStatus: 'UNHEALTHY' }).resolve('orders.myapp.local', { signal: signal() });
    expect(cloudMap.calls[0]?.body.HealthStatus).toBe('UNHEALTHY');
  });

  it('uses namespace and service as given, or derives them from the name', async () => {
    answer = () => discoverResponse([], 1);
    const client = makeClient();
    const target = (): unknown => {
      const { NamespaceName, ServiceName } = cloudMap.calls.at(-1)!.body;
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
    expect(cloudMap.calls).toHaveLength(0);
  });
});

describe('CloudMapResolver: revision gating', () => {
  it('calls only DiscoverInstancesRevision while the revision holds, until fullRefreshInterval', async () => {
    const clock = new FakeClock();
    let revision = 7;
    answer = (call) =>
      call.operation === 'DiscoverInstances' ? discoverResponse(ORDERS, revision) : { InstancesRevision: revision };
    const r = resolver({ fullRefreshInterval: 30_000 }, {}, clock);
    const count = (): [number, number] => [cloudMap.count('DiscoverInstances'), cloudMap.count('DiscoverInstancesRevision')];

    let previous: Resolution = await r.resolve('orders.myapp.local', { signal: signal() });
    expect(count()).toEqual([1, 0]);

    for (let i = 1; i <= 5; i++) {
      clock.advance(5000);
      const next = await r.resolve('orders.myapp.local', { signal: signal(), previous });
      expect(next.instances).toBe(previous.instances);
      previous = next;
    }
    expect(count()).toEqual([1, 5]);

    // Past fullRefreshInterval (health may have changed): a full fetch, without a revision call first.
    clock.advance(5000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(count()).toEqual([2, 5]);
    expect(previous.state).toEqual({ revision: 7, fullAt: 30_000 });

    // The revision moved: a full fetch at once.
    clock.advance(1000);
    revision = 8;
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(count()).toEqual([3, 6]);
    expect(previous.state).toEqual({ revision: 8, fullAt: 31_000 });
  });

  it('does a full fetch when the previous answer has no usable state', async () => {
    answer = () => discoverResponse(ORDERS, 1);
    const r = resolver();
    const previous: Resolution = { instances: [], ttl: 1000 };
    await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(cloudMap.calls.map((c) => c.operation)).toEqual(['DiscoverInstances']);
  });
});

describe('CloudMapClient: throttling and failures', () => {
  it('retries a throttled call with backoff, then gives SIGNPOST_ERR_RESOLVE', async () => {
    answer = () => awsError('RequestLimitExceeded', 400, 'Rate exceeded');
    const retries = onChannel<CloudMapRetryEvent>('signpost:cloudmap:retry');
    const error = await catchError(resolver({ retries: 2 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toContain('orders.myapp.local');
    expect(error.message).toContain('RequestLimitExceeded');
    expect(error.message).toContain('3 attempts');
    expect(cloudMap.calls).toHaveLength(3);
    expect(retries.events.map((e) => [e.attempt, e.retriesLeft, e.error])).toEqual([
      [1, 2, 'RequestLimitExceeded'],
      [2, 1, 'RequestLimitExceeded'],
    ]);
    expect(retries.events.every((e) => e.delay >= 1)).toBe(true);
    expect((error.cause as Error).name).toBe('RequestLimitExceeded');
  });

  it('succeeds when throttling clears within the retries', async () => {
    let n = 0;
    answer = () => (++n <= 2 ? awsError('ThrottlingException', 400) : discoverResponse(ORDERS, 1));
    const { instances } = await resolver({ retries: 3 }).resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toHaveLength(2);
    expect(cloudMap.calls).toHaveLength(3);
  });

  it.each([
    ['HTTP 429', () => awsError('TooManyRequests', 429)],
    ['HTTP 500', () => awsError('InternalFailure', 500)],
    ['HTTP 503', () => new Response('unavailable', { status: 503 })],
    ['a dropped connection', () => Response.error()],
  ])('retries %s', async (_, fail) => {
    answer = fail;
    const error = await catchError(resolver({ retries: 1 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(cloudMap.calls).toHaveLength(2);
  });

  it('retries a call that outlives timeout', async () => {
    answer = () => new Promise<never>(() => {});
    const error = await catchError(resolver({ retries: 1, timeout: 20 }).resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(cloudMap.calls).toHaveLength(2);
  });

  it.each(['NamespaceNotFound', 'ServiceNotFound'])('maps %s to SIGNPOST_ERR_NOT_FOUND without retrying', async (type) => {
    answer = () => awsError(type, 400);
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(error.message).toContain('orders.myapp.local');
    expect(error.message).toContain('registered in Cloud Map, in this region?');
    expect(cloudMap.calls).toHaveLength(1);
  });

  it('maps NotFound from the revision call too', async () => {
    answer = () => awsError('ServiceNotFound', 400);
    const previous: Resolution = { instances: [], ttl: 1000, state: { revision: 1, fullAt: 0 } };
    const error = await catchError(resolver({}, {}, new FakeClock()).resolve('orders.myapp.local', { signal: signal(), previous }));
    expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect(cloudMap.calls.map((c) => c.operation)).toEqual(['DiscoverInstancesRevision']);
  });

  it.each([
    ['AccessDeniedException', 400],
    ['UnrecognizedClientException', 400],
    ['InvalidSignatureException', 403],
  ])('maps %s to a SIGNPOST_ERR_RESOLVE naming the permissions, without secrets', async (type, status) => {
    answer = () =>
      awsError(type, status, 'The request signature we calculated does not match. AKIDTEST/20240101/us-east-1 Signature=abcdef');
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: signal() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(error.message).toContain('servicediscovery:DiscoverInstances');
    expect(error.message).toContain('servicediscovery:DiscoverInstancesRevision');
    expect(error.message).toContain('credential source');
    expect(error.message).not.toMatch(/AKIDTEST|Signature=|Authorization/);
    expect(cloudMap.calls).toHaveLength(1);
  });

  it('keeps request details out of retry diagnostics', async () => {
    answer = () => awsError('RequestLimitExceeded', 400, 'Credential=AKIDTEST Signature=abc');
    const retries = onChannel<CloudMapRetryEvent>('signpost:cloudmap:retry');
    const calls = onChannel<unknown>('signpost:cloudmap:call');
    await catchError(resolver({ retries: 1 }).resolve('orders.myapp.local', { signal: signal() }));
    const text = JSON.stringify([retries.events, calls.events]);
    expect(text).not.toMatch(/AKIDTEST|Signature|Authorization|secret/i);
    expect(calls.events).toHaveLength(2);
  });
});

describe('CloudMapClient: the call budget', () => {
  it('never lets concurrent resolves exceed maxCallsPerSecond', async () => {
    const clock = new FakeClock();
    answer = () => discoverResponse(ORDERS, 1);
    const client = makeClient({ maxCallsPerSecond: 5 }, clock);
    const resolvers = Array.from({ length: 12 }, (_, i) => ({ r: new CloudMapResolver(client), name: `svc${i}.myapp.local` }));
    const settled = resolvers.map(({ r, name }) => r.resolve(name, { signal: signal() }));

    const settle = async (expected: number): Promise<void> => {
      await vi.waitFor(() => expect(cloudMap.calls.length).toBe(expected));
      // Give any call the budget should have held back the chance to slip through.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(cloudMap.calls.length).toBe(expected);
    };
    await settle(5);
    clock.advance(1000);
    await settle(10);
    clock.advance(1000);
    await settle(12);
    expect(await Promise.all(settled)).toHaveLength(12);
  });

  it('counts retries against the budget', async () => {
    const clock = new FakeClock();
    answer = () => awsError('RequestLimitExceeded', 400);
    const pending = catchError(resolver({ maxCallsPerSecond: 2, retries: 3 }, {}, clock).resolve('orders.myapp.local', { signal: signal() }));
    await vi.waitFor(() => expect(cloudMap.calls.length).toBe(2));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cloudMap.calls.length).toBe(2);
    clock.advance(1000);
    expect((await pending).code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(cloudMap.calls.length).toBe(4);
  });
});

describe('CloudMapClient: abort and close', () => {
  it('rejects with SIGNPOST_ERR_RESOLVE when aborted during a call', async () => {
    let entered!: () => void;
    const inFlight = new Promise<void>((resolve) => (entered = resolve));
    answer = () => {
      entered();
      return new Promise<never>(() => {});
    };
    const controller = new AbortController();
    const pending = catchError(resolver().resolve('orders.myapp.local', { signal: controller.signal }));
    await inFlight;
    controller.abort(new Error('caller gave up'));
    const error = await pending;
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect((error.cause as Error).message).toBe('caller gave up');
    expect(cloudMap.calls).toHaveLength(1);
  });

  it('rejects when aborted while waiting for the budget, without calling', async () => {
    const clock = new FakeClock();
    answer = () => discoverResponse([], 1);
    const r = resolver({ maxCallsPerSecond: 1 }, {}, clock);
    await r.resolve('a.myapp.local', { signal: signal() });
    const controller = new AbortController();
    const pending = catchError(r.resolve('b.myapp.local', { signal: controller.signal }));
    controller.abort();
    expect((await pending).code).toBe('SIGNPOST_ERR_RESOLVE');
    clock.advance(5000);
    expect(cloudMap.calls).toHaveLength(1);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const error = await catchError(resolver().resolve('orders.myapp.local', { signal: AbortSignal.abort() }));
    expect(error.code).toBe('SIGNPOST_ERR_RESOLVE');
    expect(cloudMap.calls).toHaveLength(0);
  });

  it('close() is idempotent, destroys the client it created and stops waiting calls', async () => {
    const destroy = vi.spyOn(ServiceDiscoveryClient.prototype, 'destroy');
    try {
      const clock = new FakeClock();
      answer = () => discoverResponse([], 1);
      const client = new CloudMapClient({ region: TEST_REGION, credentials: TEST_CREDENTIALS, maxCallsPerSecond: 1 }, clock);
      const r = new CloudMapResolver(client);
      await r.resolve('a.myapp.local', { signal: signal() });
      const waiting = catchError(r.resolve('b.myapp.local', { signal: signal() }));
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
    answer = () => discoverResponse(ORDERS, 1);
    const sdk = new ServiceDiscoveryClient({ region: TEST_REGION, credentials: TEST_CREDENTIALS, maxAttempts: 1 });
    const destroy = vi.spyOn(sdk, 'destroy');
    const client = new CloudMapClient({ client: sdk, region: 'eu-west-1' });
    const { instances } = await new CloudMapResolver(client).resolve('orders.myapp.local', { signal: signal() });
    expect(instances).toHaveLength(2);
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
    ['client', { client: {} }],
    ['credentials', { credentials: { accessKeyId: 'AKIDTEST' } }],
    ['credentials', { credentials: 'AKIDTEST:secret' }],
    ['healthStatus', { healthStatus: 'healthy' }],
    ['pollInterval', { pollInterval: 50 }],
    ['pollInterval', { pollInterval: 1.5e3 + 0.5 }],
    ['pollInterval', { pollInterval: 4_000_000 }],
    ['fullRefreshInterval', { fullRefreshInterval: -1 }],
    ['fullRefreshInterval', { fullRefreshInterval: 4_000_000 }],
    ['maxCallsPerSecond', { maxCallsPerSecond: 0 }],
    ['maxCallsPerSecond', { maxCallsPerSecond: Number.POSITIVE_INFINITY }],
    ['retries', { retries: -1 }],
    ['retries', { retries: 1.5 }],
    ['retries', { retries: 11 }],
    ['retryDelay', { retryDelay: 0 }],
    ['retryDelay', { retryDelay: 120_000 }],
    ['timeout', { timeout: 0 }],
    ['timeout', { timeout: '5s' }],
    ['weightAttribute', { weightAttribute: '' }],
  ];
  it.each(invalidOptions)('rejects a bad %s with SIGNPOST_ERR_INVALID_ARG', (_, options) => {
    const error = (() => {
      try {
        new CloudMapClient(options as CloudMapOptions);
      } catch (e) {
        return e as { code?: string; message: string };
      }
      throw new Error('expected a throw');
    })();
    expect(error.code).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(error.message).toContain('cloudMap');
  });

  it('never echoes credentials in a validation error', () => {
    expect(() => validateCloudMapOptions({ credentials: { accessKeyId: 'AKIDSECRET', secretAccessKey: 7 } })).toThrow(
      expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', message: expect.not.stringContaining('AKIDSECRET') }),
    );
  });

  it('accepts every valid option', () => {
    expect(
      () =>
        new CloudMapClient({
          region: 'eu-west-1',
          endpoint: 'http://127.0.0.1:4566',
          credentials: TEST_CREDENTIALS,
          healthStatus: 'ALL',
          pollInterval: 10_000,
          fullRefreshInterval: 0,
          maxCallsPerSecond: 0.5,
          retries: 0,
          retryDelay: 50,
          timeout: 1000,
          weightAttribute: 'capacity',
        }),
    ).not.toThrow();
    expect(() => new CloudMapClient({ credentials: async () => TEST_CREDENTIALS })).not.toThrow();
    expect(() => validateCloudMapOptions({ healthStatus: 'HEALTHY' }, 'namespaces["myapp.local"]')).not.toThrow();
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
  ];
  it.each(invalidConfigs)('CloudMapResolver rejects a bad %s with SIGNPOST_ERR_INVALID_ARG', (_, config) => {
    expect(() => new CloudMapResolver(makeClient(), config as CloudMapResolverConfig)).toThrow(
      expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }),
    );
  });

  it('lets the caller allow its own keys in a service config', () => {
    expect(() =>
      validateCloudMapResolverConfig({ via: 'cloudmap', namespace: 'myapp.local', service: 'orders' }, 'services.x', ['via']),
    ).not.toThrow();
  });
});

describe('the fake Cloud Map server, end to end through endpoint', () => {
  let fake: FakeCloudMap;
  beforeAll(async () => {
    fake = await FakeCloudMap.start();
  });
  afterAll(async () => {
    await fake.close();
  });
  const useFake = (): void => {
    server.use(http.post(`${fake.endpoint}/`, () => passthrough()));
  };

  it('serves instances, revisions, health changes and not-found like Cloud Map', async () => {
    useFake();
    const clock = new FakeClock();
    const client = makeClient({ endpoint: fake.endpoint, fullRefreshInterval: 10_000 }, clock);
    const r = new CloudMapResolver(client);
    fake.register('myapp.local', 'orders', {
      id: 'i-1',
      attributes: { AWS_INSTANCE_IPV4: '127.0.0.2', AWS_INSTANCE_PORT: '8080', AVAILABILITY_ZONE: 'us-east-1a' },
    });
    fake.register('myapp.local', 'orders', { id: 'i-2', attributes: { AWS_INSTANCE_IPV4: '127.0.0.3', AWS_INSTANCE_PORT: '8080' } });

    let previous = await r.resolve('orders.myapp.local', { signal: signal() });
    expect(previous.instances.map((i) => [i.id, i.address, i.port, i.healthStatus])).toEqual([
      ['i-1', '127.0.0.2', 8080, 'HEALTHY'],
      ['i-2', '127.0.0.3', 8080, 'HEALTHY'],
    ]);
    expect(previous.state).toMatchObject({ revision: fake.revision('myapp.local', 'orders') });

    // A health change leaves the revision alone: only the periodic full refresh sees it.
    fake.setHealth('myapp.local', 'orders', 'i-2', 'UNHEALTHY');
    clock.advance(5000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(previous.instances).toHaveLength(2);
    clock.advance(5000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(previous.instances.map((i) => i.id)).toEqual(['i-1']);

    // Deregistering moves the revision: seen at the next check.
    fake.deregister('myapp.local', 'orders', 'i-1');
    clock.advance(1000);
    previous = await r.resolve('orders.myapp.local', { signal: signal(), previous });
    expect(previous.instances.map((i) => [i.id, i.healthStatus])).toEqual([['i-2', 'UNHEALTHY']]);
    expect(fake.calls).toEqual({ DiscoverInstances: 3, DiscoverInstancesRevision: 2 });

    expect((await catchError(r.resolve('missing.myapp.local', { signal: signal() }))).code).toBe('SIGNPOST_ERR_NOT_FOUND');
    expect((await catchError(r.resolve('orders.nowhere.local', { signal: signal() }))).code).toBe('SIGNPOST_ERR_NOT_FOUND');
  });

  it('filters by query and optional parameters, and is retried through throttling', async () => {
    useFake();
    fake.register('myapp.local', 'pay', { id: 'p-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.4', stage: 'prod', AVAILABILITY_ZONE: 'a' } });
    fake.register('myapp.local', 'pay', { id: 'p-2', attributes: { AWS_INSTANCE_IPV4: '127.0.0.5', stage: 'prod', AVAILABILITY_ZONE: 'b' } });
    fake.register('myapp.local', 'pay', { id: 'p-3', attributes: { AWS_INSTANCE_IPV4: '127.0.0.6', stage: 'dev', AVAILABILITY_ZONE: 'a' } });
    const client = makeClient({ endpoint: fake.endpoint, retries: 2 });
    const r = new CloudMapResolver(client, { queryParameters: { stage: 'prod' }, optionalParameters: { AVAILABILITY_ZONE: 'b' } });
    fake.failNext(2, { type: 'RequestLimitExceeded' });
    const before = fake.calls.DiscoverInstances;
    const { instances } = await r.resolve('pay.myapp.local', { signal: signal() });
    expect(instances.map((i) => i.id)).toEqual(['p-2']);
    expect(fake.calls.DiscoverInstances - before).toBe(3);
  });
});
