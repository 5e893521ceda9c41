/**
 * Property-based: generated registry answers (DNS packets served on loopback and read by the
 * wire client and c-ares, Cloud Map payloads read by the real AWS SDK through msw, and resolutions
 * fed straight to the cache on a fake clock) go through the cache, and whatever they hold:
 *
 * - nothing crashes and nothing rejects unhandled: every call settles with instances or a typed
 *   SignpostError;
 * - every instance served has a valid address the address policy allows, and a valid port;
 * - memory stays bounded: at most `maxNames` names once idle, no timer left after close().
 *
 * A failing run prints its seed; `SIGNPOST_PBT_SEED=<seed>` replays it.
 */
process.env.AWS_EC2_METADATA_DISABLED = 'true';

import fc from 'fast-check';
import type dnsPacket from 'dns-packet';
import { setupServer } from 'msw/node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AddressPolicy, refusePort } from '../src/address-policy.ts';
import { ResolutionCache, parseCacheOptions, type CacheEntry } from '../src/cache.ts';
import { Discovery } from '../src/discovery.ts';
import { NotFoundError, ResolveError, SignpostError } from '../src/errors.ts';
import type { Instance, Resolution } from '../src/types.ts';
import { FakeCloudMap, TEST_CREDENTIALS, TEST_REGION } from './fixtures/cloud-map.ts';
import { FakeClock, flush } from './support/fake-clock.ts';
import { FaultDns, reply } from './support/fault-dns.ts';

const seed = process.env.SIGNPOST_PBT_SEED === undefined ? undefined : Number(process.env.SIGNPOST_PBT_SEED);
const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, ...(seed === undefined ? {} : { seed }) });

const policy = new AddressPolicy();
const MAX_NAMES = 16;
const CODES = new Set(['SIGNPOST_ERR_NOT_FOUND', 'SIGNPOST_ERR_NO_INSTANCES', 'SIGNPOST_ERR_RESOLVE']);

/** What the runs settled with, so a vacuous property (all errors) shows. */
const tally = { instances: 0, errors: new Map<string, number>() };

/** The invariant on what a resolve settled with. */
function checkOutcome(outcome: PromiseSettledResult<Instance[]>): void {
  if (outcome.status === 'rejected') {
    const code = String((outcome.reason as { code?: unknown }).code);
    tally.errors.set(code, (tally.errors.get(code) ?? 0) + 1);
    expect(outcome.reason).toBeInstanceOf(SignpostError);
    expect(CODES).toContain((outcome.reason as SignpostError).code);
    return;
  }
  expect(outcome.value.length).toBeGreaterThan(0);
  tally.instances++;
  for (const instance of outcome.value) {
    expect(policy.refuse(instance.address), instance.address).toBeUndefined();
    expect(refusePort(instance.port), String(instance.port)).toBeUndefined();
  }
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
beforeAll(() => process.on('unhandledRejection', onUnhandled));
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

// ---------------------------------------------------------------- generators

/** Any IPv4 address, with the hostile ranges drawn often. */
const ipv4 = fc.oneof(
  fc.ipV4(),
  fc.constantFrom('0.0.0.0', '255.255.255.255', '224.0.0.1', '239.1.2.3', '169.254.169.254', '169.254.170.2', '127.0.0.2', '0.1.2.3'),
);
/** IPv6 addresses from a fixed set (tests hold no routable IPv6 address), hostile ones mostly. */
const ipv6 = fc.constantFrom('::1', '::', 'ff02::1', 'fe80::1', '::ffff:169.254.169.254', '::ffff:0.0.0.0', 'fd00:ec2::254', '::ffff:127.0.0.3');
const ttl = fc.oneof(fc.integer({ min: 0, max: 600 }), fc.constant(2_147_483_647), fc.integer({ min: 0, max: 4_294_967_295 }));

interface DnsScenario {
  rcode: 'NOERROR' | 'SERVFAIL' | 'NXDOMAIN' | 'REFUSED';
  a: Array<{ address: string; ttl: number }>;
  aaaa: Array<{ address: string; ttl: number }>;
  srv: Array<{ port: number; priority: number; weight: number; target: number; ttl: number }>;
  /** Addresses of the SRV targets, in the additional section (some targets have none). */
  targets: Array<Array<{ address: string; ttl: number }>>;
  truncated: boolean;
}

const dnsScenario: fc.Arbitrary<DnsScenario> = fc.record({
  rcode: fc.constantFrom('NOERROR', 'NOERROR', 'NOERROR', 'SERVFAIL', 'NXDOMAIN', 'REFUSED'),
  a: fc.array(fc.record({ address: ipv4, ttl }), { maxLength: 6 }),
  aaaa: fc.array(fc.record({ address: ipv6, ttl }), { maxLength: 3 }),
  srv: fc.array(
    fc.record({
      port: fc.oneof(fc.integer({ min: 0, max: 65_535 }), fc.constant(0)),
      priority: fc.integer({ min: 0, max: 65_535 }),
      weight: fc.integer({ min: 0, max: 65_535 }),
      target: fc.integer({ min: 0, max: 3 }),
      ttl,
    }),
    { maxLength: 5 },
  ),
  targets: fc.array(fc.array(fc.record({ address: ipv4, ttl }), { maxLength: 3 }), { minLength: 4, maxLength: 4 }),
  truncated: fc.boolean(),
});

function dnsAnswer(query: dnsPacket.DecodedPacket, scenario: DnsScenario): Buffer {
  const question = query.questions?.[0];
  const name = question?.name ?? '';
  const zone = name.slice(name.indexOf('.') + 1);
  const base = { rcode: scenario.rcode, truncated: scenario.truncated && question?.type === 'SRV' } as const;
  if (scenario.rcode !== 'NOERROR') return reply(query, base);
  const records = (rrs: Array<{ address: string; ttl: number }>, type: 'A' | 'AAAA', owner: string): dnsPacket.Answer[] =>
    rrs.map((r) => ({ type, name: owner, ttl: r.ttl, class: 'IN', data: r.address }) as dnsPacket.Answer);
  switch (question?.type) {
    case 'A':
      return reply(query, { ...base, answers: records(scenario.a, 'A', name) });
    case 'AAAA':
      return reply(query, { ...base, answers: records(scenario.aaaa, 'AAAA', name) });
    case 'SRV':
      return reply(query, {
        ...base,
        answers: scenario.srv.map((s) => ({
          type: 'SRV',
          name,
          ttl: s.ttl,
          class: 'IN',
          data: { port: s.port, priority: s.priority, weight: s.weight, target: `t${s.target}.${zone}` },
        })) as dnsPacket.Answer[],
        additionals: scenario.targets.flatMap((rrs, t) => records(rrs, 'A', `t${t}.${zone}`)),
      });
    default:
      // Lookups of SRV targets without additional records.
      return reply(query, { ...base, answers: records(scenario.targets[Number(/^t(\d)/.exec(name)?.[1] ?? 0)] ?? [], 'A', name) });
  }
}

// ---------------------------------------------------------------- DNS

describe('generated DNS answers through the wire client and c-ares', () => {
  let fault: FaultDns;
  const scenarios = new Map<string, DnsScenario>();

  beforeAll(async () => {
    fault = await FaultDns.start((query) => {
      const name = query.questions?.[0]?.name ?? '';
      // A name's scenario is keyed by its first label (`r12` for r12.a.pbt.local and its targets).
      const key = /(?:^|\.)(r\d+)\./.exec(name)?.[1] ?? '';
      const scenario = scenarios.get(key);
      return scenario === undefined ? [reply(query, { rcode: 'NXDOMAIN' })] : [dnsAnswer(query, scenario)];
    });
  });
  afterAll(async () => {
    await fault?.close();
  });

  test('any answer: typed errors or valid, allowed instances; the cache stays bounded', async () => {
    tally.instances = 0;
    tally.errors.clear();
    const d = new Discovery({
      dns: { servers: [fault.server], timeout: 500, tries: 1 },
      namespaces: {
        'a.pbt.local': { via: 'dns', port: 8080 },
        'srv.pbt.local': { via: 'srv' },
      },
      cache: { maxNames: MAX_NAMES },
    });
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(dnsScenario, fc.constantFrom('a', 'srv'), async (scenario, kind) => {
          const key = `r${run++}`;
          scenarios.set(key, scenario);
          const name = `${key}.${kind}.pbt.local`;
          const [first, second] = await Promise.allSettled([d.resolve(name), d.resolve(name)]);
          checkOutcome(first!);
          checkOutcome(second!);
          if (first!.status === 'fulfilled') {
            const picked = d.pickSync(name);
            expect(picked === undefined || first!.value.some((i) => i.address === picked.address)).toBe(true);
          }
          expect(d.stats().names).toBeLessThanOrEqual(MAX_NAMES);
          scenarios.delete(key);
        }),
        params(120),
      );
    } finally {
      await d.close();
    }
    expect(d.stats().names).toBe(0);
    // The generators reach both sides: answers served, and every kind of typed error.
    expect(tally.instances).toBeGreaterThan(10);
    expect([...tally.errors.keys()].sort()).toEqual(['SIGNPOST_ERR_NOT_FOUND', 'SIGNPOST_ERR_NO_INSTANCES', 'SIGNPOST_ERR_RESOLVE']);
  });
});

// ---------------------------------------------------------------- Cloud Map

const attributeValue = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('', ' ', '8080', '0', '65536', '-1', '80.5', '1e3', '0x50'));
interface GeneratedInstance {
  id: string;
  attributes: Record<string, string>;
  healthStatus: 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN';
}

const cloudMapInstance: fc.Arbitrary<GeneratedInstance> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 16 }),
  attributes: fc
    .record(
      {
        AWS_INSTANCE_IPV4: fc.oneof(ipv4, attributeValue),
        AWS_INSTANCE_IPV6: fc.oneof(ipv6, attributeValue),
        AWS_INSTANCE_PORT: fc.oneof(fc.integer({ min: -5, max: 70_000 }).map(String), attributeValue),
        AVAILABILITY_ZONE: fc.constantFrom('use1-az1', 'use1-az2', ''),
        weight: attributeValue,
      },
      { requiredKeys: [] },
    )
    .map((attributes) => attributes as Record<string, string>),
  healthStatus: fc.constantFrom('HEALTHY' as const, 'UNHEALTHY' as const, 'UNKNOWN' as const),
});

describe('generated Cloud Map payloads through the AWS SDK', () => {
  // The stand-in answers as the API model: a missing service is ServiceNotFound (404), a
  // throttled call RequestLimitExceeded (429); UNKNOWN health means a service without health checks.
  const cloudMap = new FakeCloudMap();
  const throttled = new Set<string>();
  cloudMap.respond((call) => (throttled.has(String(call.body.ServiceName)) ? { type: 'RequestLimitExceeded' } : undefined));
  function publish(service: string, payload: GeneratedInstance[] | 'throttle' | 'missing'): void {
    if (payload === 'missing') return;
    if (payload === 'throttle') {
      throttled.add(service);
      return;
    }
    cloudMap.createService('myapp.local', service, { healthCheck: payload.some((i) => i.healthStatus === 'UNKNOWN') ? 'none' : 'custom' });
    for (const { id, attributes, healthStatus } of payload) {
      cloudMap.register('myapp.local', service, { id, attributes, ...(healthStatus !== 'UNKNOWN' && { healthStatus }) });
    }
  }
  const msw = setupServer(cloudMap.handler);
  beforeAll(() => msw.listen({ onUnhandledFrame: 'error' }));
  afterAll(() => msw.close());

  test('any payload: typed errors or valid, allowed instances; the cache stays bounded', async () => {
    tally.instances = 0;
    tally.errors.clear();
    const d = new Discovery({
      namespaces: { 'myapp.local': { via: 'cloudmap' } },
      // Polled often, so the call budget that throttling cuts (a share of the polling demand) stays ample.
      cloudMap: { region: TEST_REGION, credentials: TEST_CREDENTIALS, retries: 0, maxCallsPerSecond: 10_000, pollInterval: 100 },
      cache: { maxNames: MAX_NAMES },
    });
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.array(cloudMapInstance, { maxLength: 6 }), fc.constantFrom('throttle' as const, 'missing' as const)),
          async (payload) => {
            const service = `s${run++}`;
            publish(service, payload);
            checkOutcome((await Promise.allSettled([d.resolve(`${service}.myapp.local`)]))[0]!);
            expect(d.stats().names).toBeLessThanOrEqual(MAX_NAMES);
            throttled.delete(service);
            cloudMap.deleteService('myapp.local', service);
          },
        ),
        params(80),
      );
    } finally {
      await d.close();
    }
    expect(tally.instances).toBeGreaterThan(5);
    expect(tally.errors.size).toBeGreaterThanOrEqual(2);
  });
});

// ---------------------------------------------------------------- the cache alone, on a fake clock

type Step =
  | { op: 'ask'; name: number }
  | { op: 'hold'; name: number }
  | { op: 'release' }
  | { op: 'advance'; ms: number }
  | { op: 'answer'; kind: 'ok' | 'servfail' | 'nxdomain' | 'throw' | 'garbage'; addresses: string[]; ttl: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('ask' as const), name: fc.integer({ min: 0, max: 11 }) }),
  fc.record({ op: fc.constant('hold' as const), name: fc.integer({ min: 0, max: 11 }) }),
  fc.record({ op: fc.constant('release' as const) }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 400_000 }) }),
  fc.record({
    op: fc.constant('answer' as const),
    kind: fc.constantFrom('ok', 'ok', 'servfail', 'nxdomain', 'throw', 'garbage'),
    addresses: fc.array(fc.oneof(ipv4, ipv6, fc.string({ maxLength: 6 })), { maxLength: 4 }),
    ttl,
  }),
);

describe('generated resolutions, timings and callers through the cache', () => {
  test('bounded, valid, and nothing left behind by close()', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), fc.integer({ min: 1, max: 6 }), async (steps, maxNames) => {
        const clock = new FakeClock();
        const cache = new ResolutionCache(parseCacheOptions({ maxNames, staleTtl: 60_000 }), clock, { onChange() {}, onEvict() {} });
        let next: Step & { op: 'answer' } = { op: 'answer', kind: 'ok', addresses: ['10.0.0.1'], ttl: 5 };
        const resolver = {
          resolve(name: string): Promise<Resolution> {
            const a = next;
            if (a.kind === 'throw') throw new TypeError('resolver bug');
            if (a.kind === 'servfail') return Promise.reject(new ResolveError('SERVFAIL', { hostname: name }));
            if (a.kind === 'nxdomain') return Promise.reject(new NotFoundError('NXDOMAIN', { hostname: name }));
            if (a.kind === 'garbage') return Promise.resolve({ instances: 'x' } as unknown as Resolution);
            return Promise.resolve({
              instances: a.addresses.map((address) => ({ id: address, address, port: 8080, weight: 1, priority: 0, attributes: {} })),
              ttl: a.ttl,
            });
          },
        };
        const held: CacheEntry[] = [];
        const entries = new Set<CacheEntry>();
        for (const s of steps) {
          if (s.op === 'answer') next = s;
          else if (s.op === 'advance') await clock.run(s.ms);
          else if (s.op === 'release') {
            const entry = held.pop();
            if (entry) cache.release(entry);
          } else {
            const entry = cache.entry(`n${s.name}.test`, resolver);
            entries.add(entry);
            if (s.op === 'hold') {
              cache.hold(entry);
              held.push(entry);
            }
            void cache.ensure(entry);
            entry.used = true;
          }
          await flush();
          for (const entry of entries) {
            for (const instance of entry.instances) {
              expect(policy.refuse(instance.address)).toBeUndefined();
              expect(refusePort(instance.port)).toBeUndefined();
            }
            if (entry.state === 'negative' || entry.state === 'failed') expect(entry.error).toBeInstanceOf(SignpostError);
          }
          // Busy entries (held or being resolved) may exceed the bound, idle ones never do.
          const busy = [...entries].filter((e) => !e.evicted && (e.waiters > 0 || e.inflight !== undefined)).length;
          expect(cache.size).toBeLessThanOrEqual(Math.max(maxNames, busy + maxNames));
        }
        for (const entry of held.splice(0)) cache.release(entry);
        await flush();
        expect(cache.size).toBeLessThanOrEqual(maxNames);
        cache.close();
        expect(clock.pending).toBe(0);
      }),
      params(300),
    );
  });
});
