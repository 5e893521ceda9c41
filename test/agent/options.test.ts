import { Pool, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { DiscoveryAgent, type AttemptsInfo } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { discoveryInterceptor } from '../../src/agent/index.ts';
import { RetryBudget } from '../../src/agent/retry-budget.ts';
import { classifyFailure, provesNotSent, parseRetryOptions } from '../../src/agent/retry-policy.ts';
import { Fleet } from '../fixtures/fleet.ts';

const NAME = 'api.test.local';
const services = { [NAME]: { via: 'static' as const, instances: [{ address: '127.0.0.2', port: 1 }] } };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('DiscoveryAgent options', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['connections', { connections: 0 }],
    ['connections (not an integer)', { connections: 1.5 }],
    ['pipelining', { pipelining: -1 }],
    ['keepAliveTimeout', { keepAliveTimeout: 0 }],
    ['keepAliveMaxTimeout', { keepAliveMaxTimeout: 'long' }],
    ['keepAliveTimeoutThreshold', { keepAliveTimeoutThreshold: -5 }],
    ['headersTimeout', { headersTimeout: -1 }],
    ['bodyTimeout', { bodyTimeout: Number.NaN }],
    ['connect', { connect: 'tls' }],
    ['maxHeaderSize', { maxHeaderSize: 0 }],
    ['allowH2', { allowH2: 'yes' }],
    ['maxRequestsPerClient', { maxRequestsPerClient: 0 }],
    ['localAddress', { localAddress: '' }],
    ['connectTimeout', { connectTimeout: -1 }],
    ['factory', { factory: 'pool' }],
    ['maxResponseSize (checked by undici)', { maxResponseSize: 'big' }],
    ['maxConcurrentStreams (checked by undici)', { maxConcurrentStreams: 0 }],
    ['autoSelectFamilyAttemptTimeout (checked by undici)', { autoSelectFamilyAttemptTimeout: -5 }],
    ['pingInterval (checked by undici)', { pingInterval: 1.5 }],
    ['maxOrigins (checked by undici)', { maxOrigins: 0 }],
    ['clientTtl (checked by undici)', { clientTtl: 'soon' }],
    ['keepAlive (undici says what to use instead)', { keepAlive: true }],
    ['socketTimeout (undici says what to use instead)', { socketTimeout: 1000 }],
    ['retry', { retry: 3 }],
    ['retry (unknown key)', { retry: { retires: 3 } }],
    ['retry.retries', { retry: { retries: -1 } }],
    ['retry.retries (too many)', { retry: { retries: 11 } }],
    ['retry.methods', { retry: { methods: 'POST' } }],
    ['retry.methods (bad method)', { retry: { methods: ['GET POST'] } }],
    ['retry.minDelay', { retry: { minDelay: -1 } }],
    ['retry.maxDelay', { retry: { maxDelay: 70_000 } }],
    ['retry.maxDelay below minDelay', { retry: { minDelay: 500, maxDelay: 100 } }],
    ['retry.budget', { retry: { budget: true } }],
    ['retry.budget.ratio', { retry: { budget: { ratio: 1.5 } } }],
    ['retry.budget.minRetries', { retry: { budget: { minRetries: -1 } } }],
    ['retry.budget.window', { retry: { budget: { window: 10 } } }],
    ['retry.budget (unknown key)', { retry: { budget: { perSecond: 10 } } }],
    ['discovery', { discovery: {} }],
    ['an unknown option', { conections: 10 }],
    ['a Discovery option (services)', { services: { [NAME]: { via: 'nope' } } }],
  ];

  for (const [what, options] of bad) {
    it(`rejects a bad ${what} with SIGNPOST_ERR_INVALID_ARG`, () => {
      expect(codeOf(() => new DiscoveryAgent({ services, ...options } as never))).toBe('SIGNPOST_ERR_INVALID_ARG');
    });
  }

  it('an unknown option is named, with the options of Discovery, of the agent and of undici', () => {
    let message = '';
    try {
      new DiscoveryAgent({ services, conections: 10 } as never);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('conections');
    for (const known of ['namespaces', 'retry', 'discovery', 'connections', 'connectTimeout', 'maxResponseSize', 'clientTtl']) expect(message).toContain(known);
  });

  it("undici's rejection of an option keeps undici's message", () => {
    let error: (Error & { code?: string; cause?: unknown }) | undefined;
    try {
      new DiscoveryAgent({ services, keepAlive: true } as never);
    } catch (e) {
      error = e as Error & { code?: string };
    }
    expect(error?.code).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(error?.message).toContain('use pipelining=0 instead');
    expect((error?.cause as { code?: string }).code).toBe('UND_ERR_INVALID_ARG');
  });

  it('rejects options that is not an object', () => {
    expect(codeOf(() => new DiscoveryAgent(42 as never))).toBe('SIGNPOST_ERR_INVALID_ARG');
  });

  it('rejects Discovery options beside a given discovery', async () => {
    const discovery = new Discovery({ services });
    try {
      expect(codeOf(() => new DiscoveryAgent({ discovery, services }))).toBe('SIGNPOST_ERR_INVALID_ARG');
    } finally {
      await discovery.close();
    }
  });

  it('accepts every option at a valid value', async () => {
    const agent = new DiscoveryAgent({
      services,
      connections: 4,
      pipelining: 1,
      keepAliveTimeout: 1000,
      keepAliveMaxTimeout: 10_000,
      keepAliveTimeoutThreshold: 100,
      headersTimeout: 5000,
      bodyTimeout: 5000,
      connect: { timeout: 1000 },
      maxHeaderSize: 16_384,
      allowH2: false,
      maxRequestsPerClient: 100,
      localAddress: '127.0.0.1',
      connectTimeout: 2000,
      clientTtl: 60_000,
      maxOrigins: 100,
      autoSelectFamily: true,
      autoSelectFamilyAttemptTimeout: 250,
      maxResponseSize: 1_000_000,
      strictContentLength: true,
      maxConcurrentStreams: 100,
      pingInterval: 30_000,
      initialWindowSize: 65_535,
      connectionWindowSize: 1_048_576,
      maxCachedSessions: 10,
      webSocket: { maxPayloadSize: 1024 },
      eventSource: { maxEventSize: 1024 },
      factory: (origin: URL, options: object) => new Pool(origin, options),
      ejection: { failurePercentage: { threshold: 50 }, probe: { path: '/health' }, stallTimeout: 20_000 },
      retry: { retries: 0, methods: ['get', 'POST'], minDelay: 0, maxDelay: 0, budget: false },
    });
    expect(agent.webSocketOptions).toMatchObject({ maxPayloadSize: 1024 });
    expect(agent.eventSourceOptions).toMatchObject({ maxEventSize: 1024 });
    await agent.close();
  });

  it('discoveryInterceptor validates its options', () => {
    expect(codeOf(() => discoveryInterceptor(undefined as never))).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(codeOf(() => discoveryInterceptor({} as never))).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(codeOf(() => discoveryInterceptor({ discovery: new Discovery(), extra: 1 } as never))).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(codeOf(() => discoveryInterceptor({ discovery: new Discovery(), retry: { retries: 'x' } } as never))).toBe(
      'SIGNPOST_ERR_INVALID_ARG',
    );
  });
});

describe('retry policy', () => {
  it('has the documented defaults', () => {
    const policy = parseRetryOptions(undefined);
    expect(policy.retries).toBe(2);
    expect([...policy.methods]).toEqual(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
    expect(policy.budget).toEqual({ ratio: 0.2, minRetries: 10, window: 10_000 });
  });

  it('classifies failures for ejection and retry', () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    expect(classifyFailure(err('ECONNREFUSED'))).toEqual({ kind: 'connect', transport: true });
    expect(classifyFailure(err('ERR_TLS_CERT_ALTNAME_INVALID'))).toEqual({ kind: 'connect', transport: true });
    // A connect timeout ejects as fast as a refusal: the instance cannot be reached at all.
    expect(classifyFailure(err('UND_ERR_CONNECT_TIMEOUT'))).toEqual({ kind: 'connect', transport: true });
    expect(classifyFailure(err('UND_ERR_HEADERS_TIMEOUT'))).toEqual({ kind: 'timeout', transport: true });
    expect(classifyFailure(err('ECONNRESET'))).toEqual({ kind: 'reset', transport: true });
    expect(classifyFailure(err('UND_ERR_SOCKET'))).toEqual({ kind: 'reset', transport: true });
    expect(classifyFailure(err('UND_ERR_INVALID_ARG'))).toEqual({ kind: undefined, transport: false });
    expect(classifyFailure(new Error('no code'))).toEqual({ kind: undefined, transport: false });
    expect(provesNotSent(err('ECONNREFUSED'))).toBe(true);
    expect(provesNotSent(err('UND_ERR_CONNECT_TIMEOUT'))).toBe(true);
    // These can also end a connection that carried the request.
    expect(provesNotSent(err('ECONNRESET'))).toBe(false);
    expect(provesNotSent(err('ETIMEDOUT'))).toBe(false);
    expect(provesNotSent(err('EHOSTUNREACH'))).toBe(false);
  });

  it('the budget allows max(minRetries, ratio × requests) retries per window', () => {
    const budget = new RetryBudget({ ratio: 0.2, minRetries: 3, window: 3_600_000 });
    let allowed = 0;
    for (let i = 0; i < 10; i++) if (budget.tryRetry()) allowed++;
    expect(allowed).toBe(3);
    for (let i = 0; i < 100; i++) budget.request();
    for (let i = 0; i < 100; i++) if (budget.tryRetry()) allowed++;
    expect(allowed).toBe(20);
    expect(budget.denied).toBe(7 + 83);
  });
});

describe('bad input gives a typed error and no hang', () => {
  it('a malformed URL', async () => {
    const agent = new DiscoveryAgent({ services });
    try {
      await expect(agent.request({ origin: 'http://api .test.local', path: '/', method: 'GET' })).rejects.toMatchObject({
        code: 'ERR_INVALID_URL',
      });
      expect(agent.stats().requests).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('every instance down', async () => {
    const fleet = await Fleet.start(2);
    await fleet.close();
    const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } } });
    try {
      const error = (await request(`http://${NAME}/`, { dispatcher: agent }).catch((e: unknown) => e)) as Error & AttemptsInfo;
      // The last instance's own error, with every attempt.
      expect(error).toMatchObject({ code: 'ECONNREFUSED' });
      expect(error.attempts).toHaveLength(3);
      expect([...new Set(error.attempts.map((a) => a.instance))].sort()).toEqual(fleet.instances.map((i) => `${i.address}:${i.port}`).sort());
      expect(error.retryStop).toContain('retries');
    } finally {
      await agent.close();
    }
  });
});
