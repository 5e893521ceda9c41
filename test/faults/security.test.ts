/**
 * The threat model, tested: the wire DNS client's defences against spoofing (random IDs, a fresh
 * source port per query, answers matched to the question, bounded answer size and records per
 * name); TLS verified against the service name with no silent fallback; credentials and signed
 * headers never in errors, their causes, or diagnostics events.
 */
import { createSocket } from 'node:dgram';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import dnsPacket from 'dns-packet';
import { request } from 'undici';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { DnsClient, dnsSettings } from '../../src/dns/client.ts';
import { MAX_RECORDS_PER_NAME } from '../../src/dns/wire.ts';
import { Discovery } from '../../src/discovery.ts';
import { SignpostError } from '../../src/errors.ts';
import { SrvResolver } from '../../src/resolvers/srv.ts';
import { FakeCloudMap } from '../fixtures/cloud-map.ts';
import { FaultDns, reply } from '../support/fault-dns.ts';
import { Fleet, TestCa } from '../fixtures/fleet.ts';
import { report } from './support.ts';

describe('wire DNS client', () => {
  test('random IDs and a fresh source port for every query', async () => {
    // A responder of our own: it sees each query's source port, which FaultDns does not expose.
    const server = createSocket('udp4');
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const seen: { id: number; port: number }[] = [];
    server.on('message', (message, remote) => {
      const query = dnsPacket.decode(message);
      seen.push({ id: query.id ?? 0, port: remote.port });
      server.send(reply(query, { answers: [] }), remote.port, remote.address);
    });
    const client = new DnsClient(dnsSettings({ servers: [`127.0.0.1:${server.address().port}`], timeout: 1000, tries: 1 }));
    const queries = 500;
    try {
      for (let i = 0; i < queries; i++) await client.query(`q${i}.sec.local`, 'SRV');
    } finally {
      client.close();
      server.close();
    }
    const ids = new Set(seen.map((s) => s.id));
    const ports = new Set(seen.map((s) => s.port));
    let sequentialIds = 0;
    let sequentialPorts = 0;
    for (let i = 1; i < seen.length; i++) {
      if (Math.abs(seen[i]!.id - seen[i - 1]!.id) <= 1) sequentialIds++;
      if (Math.abs(seen[i]!.port - seen[i - 1]!.port) <= 1) sequentialPorts++;
    }
    report('security: DNS query IDs and source ports', {
      queries: seen.length,
      distinctIds: ids.size,
      distinctPorts: ports.size,
      sequentialIds,
      sequentialPorts,
    });
    expect(seen).toHaveLength(queries);
    // 500 draws from 65,536 IDs: a handful of repeats at most; the kernel's ephemeral ports are
    // random on Linux, so a reused socket would show as a repeated port.
    expect(ids.size).toBeGreaterThan(queries * 0.95);
    expect(ports.size).toBeGreaterThan(queries * 0.9);
    expect(sequentialIds).toBeLessThan(queries * 0.05);
  });

  test('answers not matched to the question are ignored; a forgery alone ends in a typed error', async () => {
    const ignored: string[] = [];
    const onIgnored = (message: unknown): void => void ignored.push((message as { reason: string }).reason);
    subscribe('signpost:dns:ignored-response', onIgnored);
    const fault = await FaultDns.start((query) => {
      const forged = Buffer.from(reply(query, { answers: [] }));
      forged.writeUInt16BE(((query.id ?? 0) + 1) % 65_536, 0);
      return [
        forged,
        reply(query, { questions: [{ type: 'SRV', name: 'evil.sec.local', class: 'IN' }] }),
        reply(query, { questions: [{ type: 'A', name: query.questions?.[0]?.name ?? '', class: 'IN' }] }),
      ];
    });
    const client = new DnsClient(dnsSettings({ servers: [fault.server], timeout: 300, tries: 1 }));
    try {
      const error = await client.query('web.sec.local', 'SRV').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SignpostError);
      expect((error as SignpostError).code).toBe('SIGNPOST_ERR_RESOLVE');
      expect(ignored).toEqual(expect.arrayContaining(['wrong ID', 'question does not match']));
    } finally {
      unsubscribe('signpost:dns:ignored-response', onIgnored);
      client.close();
      await fault.close();
    }
  });

  test('answer size and records per name are capped', async () => {
    const fault = await FaultDns.start((query) => {
      const name = query.questions?.[0]?.name ?? '';
      const answers: dnsPacket.Answer[] = [];
      for (let i = 0; i < 1200; i++) {
        answers.push({ type: 'SRV', name, ttl: 30, data: { target: `h${i}.sec.local`, port: 1 + i, priority: 0, weight: 1 } });
      }
      const additionals: dnsPacket.Answer[] = answers.map((_, i) => ({ type: 'A', name: `h${i}.sec.local`, ttl: 30, data: '127.0.0.2' }));
      // Over UDP the full answer (far above 4,096 bytes) is sent anyway; TCP gets it too.
      return [reply(query, { answers, additionals: additionals.slice(0, 200) })];
    });
    const client = new DnsClient(dnsSettings({ servers: [fault.server], timeout: 2000, tries: 1 }));
    try {
      const response = await client.query('big.sec.local', 'SRV');
      const resolution = await new SrvResolver(client).resolve('big.sec.local', { signal: AbortSignal.timeout(10_000) }).catch((e: unknown) => e);
      const transports = fault.queries.map((q) => q.transport);
      report('security: DNS answer caps', {
        recordsSent: 1200,
        recordsKept: response.answers?.length ?? 0,
        capPerName: MAX_RECORDS_PER_NAME,
        askedOverTcp: transports.filter((t) => t === 'tcp').length,
        instances: resolution instanceof Error ? String(resolution) : (resolution as { instances: unknown[] }).instances.length,
      });
      expect(response.answers?.length).toBe(MAX_RECORDS_PER_NAME);
      // The oversize datagram was not decoded; the answer came over TCP.
      expect(transports).toContain('tcp');
    } finally {
      client.close();
      await fault.close();
    }
  });
});

describe('TLS: always verified against the service name', () => {
  const NAME = 'secure.faults.local';
  let ca: TestCa;
  let good: Fleet;
  let wrong: Fleet;

  beforeAll(async () => {
    ca = await TestCa.create();
    good = await Fleet.start(1, { tls: await ca.issue(NAME), firstOctet: 21 });
    wrong = await Fleet.start(1, { tls: await ca.issue('other.faults.local'), firstOctet: 22 });
  });

  afterAll(async () => {
    await good?.close();
    await wrong?.close();
    await ca?.remove();
  });

  const attempt = async (fleet: Fleet, options: Record<string, unknown>): Promise<string> => {
    const agent = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: fleet.instances } },
      retry: { retries: 1, minDelay: 1, maxDelay: 2 },
      ...options,
    });
    try {
      const response = await request(`https://${NAME}/`, { dispatcher: agent });
      await response.body.text();
      return `HTTP ${response.statusCode}`;
    } catch (error) {
      const codes = ((error as { attempts?: { error: { code?: string } }[] }).attempts ?? []).map((a) => a.error.code);
      return `${(error as SignpostError).code}: ${[...new Set(codes)].join(',')}`;
    } finally {
      await agent.close();
    }
  };

  test('no CA given: an untrusted certificate for the right name fails (no insecure default)', async () => {
    const outcome = await attempt(good, {});
    expect(outcome).toMatch(/^(UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER)\w*: .*(UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER)/);
    expect(good.servers[0]!.count).toBe(0);
  });

  test('a trusted certificate for another name fails on every attempt, with no fallback', async () => {
    const outcome = await attempt(wrong, { connect: { ca: ca.cert } });
    expect(outcome).toBe('ERR_TLS_CERT_ALTNAME_INVALID: ERR_TLS_CERT_ALTNAME_INVALID');
    expect(wrong.servers[0]!.count).toBe(0);
    expect(await attempt(good, { connect: { ca: ca.cert } })).toBe('HTTP 200');
  });

  test('turning verification off is explicit and warned about', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      expect(await attempt(wrong, { connect: { rejectUnauthorized: false } })).toBe('HTTP 200');
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => (w as { code?: string }).code)).toContain('SIGNPOST_INSECURE_TLS');
  });
});

describe('secrets never appear in errors, causes or diagnostics', () => {
  const SECRET = 'fault-suite-SECRET-KEY-9f8e7d';
  const TOKEN = 'fault-suite-SESSION-TOKEN-1a2b3c';
  const AUTH = 'Bearer fault-suite-BEARER-5e6f7a';
  // Every channel in src/ (grep "channel(" src/), so a new one is not forgotten without notice.
  const CHANNELS = [
    'signpost:health:eject',
    'signpost:health:return',
    'signpost:agent:pick',
    'signpost:agent:retry',
    'signpost:agent:stall',
    'signpost:dns:skipped-target',
    'signpost:dns:ignored-response',
    'signpost:cloudmap:call',
    'signpost:cloudmap:retry',
    'signpost:cloudmap:instance-skipped',
    'signpost:balancer:panic',
    'signpost:resolve:done',
    'signpost:resolve:error',
    'signpost:resolve:stale',
    'signpost:resolve:skipped-instance',
    'signpost:callback:error',
    'signpost:alias:use',
    'signpost:pool:create',
    'signpost:pool:close',
  ];

  /** Every message and string form along an error's cause chain and attempts. */
  function texts(error: unknown, depth = 0): string[] {
    if (error === null || error === undefined || depth > 8) return [];
    const e = error as { message?: unknown; cause?: unknown; attempts?: { error: unknown }[] };
    const out = [String(error)];
    if (typeof e.message === 'string') out.push(e.message);
    out.push(...texts(e.cause, depth + 1));
    for (const a of e.attempts ?? []) out.push(...texts(a.error, depth + 1));
    return out;
  }

  const leaks = (text: string): string[] =>
    [SECRET, TOKEN, AUTH, 'AWS4-HMAC-SHA256 Credential', 'X-Amz-Security-Token: '].filter((s) => text.includes(s));

  /** Runs the failures once; both tests below read the result. */
  let collected: Promise<{ errors: unknown[]; published: unknown[] }> | undefined;
  const collect = (): Promise<{ errors: unknown[]; published: unknown[] }> => (collected ??= run());

  async function run(): Promise<{ errors: unknown[]; published: unknown[] }> {
    const published: unknown[] = [];
    const listener = (message: unknown): void => void published.push(message);
    for (const name of CHANNELS) subscribe(name, listener);
    const fake = await FakeCloudMap.start();
    fake.createService('myapp.local', 'orders');
    const errors: unknown[] = [];
    const discovery = new Discovery({
      namespaces: { 'myapp.local': { via: 'cloudmap' } },
      cloudMap: {
        endpoint: fake.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'AKIDFAULTS', secretAccessKey: SECRET, sessionToken: TOKEN },
        retries: 1,
        retryDelay: 1,
      },
      cache: { negativeTtl: 1 },
    });
    const failures = [
      { type: 'SignatureDoesNotMatch', status: 403, message: `The request signature we calculated does not match. X-Amz-Security-Token: ${TOKEN} secret ${SECRET}` },
      { type: 'AccessDeniedException', status: 400, message: `User with token ${TOKEN} is not authorized` },
      { type: 'RequestLimitExceeded', status: 400, message: `Rate exceeded for ${TOKEN}` },
      { type: 'InternalFailure', status: 500, message: `oops ${SECRET}` },
    ];
    try {
      for (const failure of failures) {
        fake.failNext(2, failure);
        await discovery.resolve(`orders.myapp.local`).catch((e: unknown) => errors.push(e));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Requests carrying credentials to an instance that resets every connection.
      const fleet = await Fleet.start(1, { firstOctet: 23 });
      fleet.servers[0]!.behaviour = 'reset';
      const agent = new DiscoveryAgent({
        services: { 'creds.faults.local': { via: 'static', instances: fleet.instances } },
        retry: { retries: 1, minDelay: 1, maxDelay: 2 },
      });
      try {
        await request('http://creds.faults.local/', {
          dispatcher: agent,
          headers: { authorization: AUTH, 'x-amz-security-token': TOKEN },
        }).catch((e: unknown) => errors.push(e));
      } finally {
        await agent.close();
        await fleet.close();
      }
    } finally {
      for (const name of CHANNELS) unsubscribe(name, listener);
      await discovery.close();
      await fake.close();
    }
    return { errors, published };
  }

  test('Cloud Map failures and HTTP failures with Authorization: not in messages, String(error), events', async () => {
    const { errors, published } = await collect();
    const own = errors.flatMap((e) => [String(e), (e as Error).message]);
    const attemptTexts = errors.flatMap((e) => ((e as { attempts?: { error: unknown }[] }).attempts ?? []).flatMap((a) => texts(a.error)));
    const eventTexts = published.map((m) => inspect(m, { depth: 1 }) + String((m as { error?: unknown }).error ?? ''));
    const causeTexts = errors.flatMap((e) => texts((e as Error).cause));
    report('security: secrets in errors and diagnostics', {
      errorsChecked: errors.length,
      eventsChecked: published.length,
      leaksInMessages: own.flatMap(leaks).length,
      leaksInAttempts: attemptTexts.flatMap(leaks).length,
      leaksInEvents: eventTexts.flatMap(leaks).length,
      leaksInCauseChains: causeTexts.flatMap(leaks).length,
    });
    expect(errors.length).toBe(5);
    // Registry failures are signpost's; the request keeps undici's own error (its identity), with attempts.
    expect(errors.slice(0, 4).every((e) => e instanceof SignpostError)).toBe(true);
    expect(errors[4]).not.toBeInstanceOf(SignpostError);
    expect(['ECONNRESET', 'UND_ERR_SOCKET']).toContain((errors[4] as { code?: string }).code);
    expect((errors[4] as { attempts?: unknown[] }).attempts?.length).toBeGreaterThan(0);
    expect(published.length).toBeGreaterThan(0);
    expect(own.flatMap(leaks)).toEqual([]);
    expect(attemptTexts.flatMap(leaks)).toEqual([]);
    expect(eventTexts.flatMap(leaks)).toEqual([]);
  });

  // AWS echoes the canonical request (session token included) in SignatureDoesNotMatch: the
  // cause signpost keeps holds only the error's name, status and request id.
  test('…nor in the messages of the error.cause chain', async () => {
    const { errors } = await collect();
    expect(errors.flatMap((e) => texts((e as Error).cause)).flatMap(leaks)).toEqual([]);
  });
});
