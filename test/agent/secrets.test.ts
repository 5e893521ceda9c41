/**
 * Secrets planted in every place a caller may put them (the query string, a header, the URL's
 * credentials, the body) never appear in a request error's message, its `cause` chain, its
 * `attempts` or `retryStop`, nor in any diagnostics message signpost publishes, whatever way the
 * request fails.
 */
import { channel, subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Fleet } from '../fixtures/fleet.ts';

const NAME = 'secrets.test.local';
const SECRET = 'S3cr3tT0k3n';

const CHANNELS = [
  'signpost:agent:pick',
  'signpost:agent:retry',
  'signpost:agent:stall',
  'signpost:pool:create',
  'signpost:pool:close',
  'signpost:health:eject',
  'signpost:health:return',
  'signpost:balancer:panic',
];

/** Everything text-like reachable from a value: messages, causes, attempts, own properties. */
function flatten(value: unknown, seen = new Set<unknown>()): string {
  if (value === null || value === undefined || seen.has(value)) return '';
  if (typeof value !== 'object' && typeof value !== 'function') return String(value);
  seen.add(value);
  const parts: string[] = [inspect(value, { depth: 4, showHidden: true })];
  if (value instanceof Error) {
    parts.push(value.message, value.stack ?? '', flatten(value.cause, seen));
    const extra = value as Error & { attempts?: unknown; retryStop?: unknown };
    parts.push(flatten(extra.attempts, seen), flatten(extra.retryStop, seen));
  }
  for (const key of Object.getOwnPropertyNames(value)) {
    try {
      parts.push(flatten((value as Record<string, unknown>)[key], seen));
    } catch {
      // a getter that throws
    }
  }
  return parts.join('\n');
}

describe('no secret in errors or diagnostics', () => {
  let fleet: Fleet;
  const published: unknown[] = [];
  const onMessage = (message: unknown): void => void published.push(message);

  beforeAll(async () => {
    fleet = await Fleet.start(3, { firstOctet: 140 });
    for (const name of CHANNELS) subscribe(name, onMessage);
  });

  afterAll(async () => {
    for (const name of CHANNELS) unsubscribe(name, onMessage);
    await fleet.close();
  });

  const failures: Array<[string, (agent: DiscoveryAgent, url: string) => Promise<unknown>, () => void]> = [
    ['every instance refuses', (agent, url) => request(url, { dispatcher: agent, headers: { authorization: `Bearer ${SECRET}` } }), () => undefined],
    [
      'every instance hangs (headers timeout)',
      (agent, url) => request(url, { dispatcher: agent, headersTimeout: 100, headers: { 'x-api-key': SECRET } }),
      () => {
        for (const s of fleet.servers) s.behaviour = 'hang';
      },
    ],
    [
      'a POST whose connection is reset (not retried)',
      (agent, url) => request(url, { dispatcher: agent, method: 'POST', body: `password=${SECRET}`, headers: { cookie: `session=${SECRET}` } }),
      () => {
        for (const s of fleet.servers) s.behaviour = 'reset';
      },
    ],
    [
      'the caller aborts',
      (agent, url) => request(url, { dispatcher: agent, signal: AbortSignal.timeout(100) }),
      () => {
        for (const s of fleet.servers) s.behaviour = 'hang';
      },
    ],
  ];

  for (const [what, send, arrange] of failures) {
    it(`${what}`, async () => {
      for (const s of fleet.servers) s.behaviour = 'ok';
      arrange();
      const instances = what.startsWith('every instance refuses')
        ? fleet.instances.map((i) => ({ ...i, port: 1 }))
        : fleet.instances;
      const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances } }, retry: { minDelay: 1, maxDelay: 2 } });
      try {
        const url = `http://user:${SECRET}@${NAME}/orders/42?api_key=${SECRET}&token=${SECRET}`;
        const error = await send(agent, url).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(Error);
        expect(flatten(error)).not.toContain(SECRET);
      } finally {
        await agent.destroy();
      }
      expect(published.length).toBeGreaterThan(0);
      expect(flatten(published)).not.toContain(SECRET);
    });
  }

  it('a connect timeout message names the instance and what to check, and nothing of the URL', async () => {
    const agent = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: [{ address: '127.0.0.143', port: 9 }] } },
      // A connector that never connects: a connect timeout without a dropped-SYN listener.
      connect: (_options: unknown, callback: (error: Error | null, socket: null) => void) => {
        setTimeout(() => callback(Object.assign(new Error('Connect Timeout Error (attempted address: 127.0.0.143:9, timeout: 50ms)'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), null), 50);
      },
      retry: { retries: 0 },
    });
    try {
      const error = (await request(`http://${NAME}/x?api_key=${SECRET}`, { dispatcher: agent }).catch((e: unknown) => e)) as Error & { code?: string };
      expect(error.code).toBe('UND_ERR_CONNECT_TIMEOUT');
      expect(error.message).toContain('127.0.0.143:9');
      expect(error.message).toContain(NAME);
      expect(error.message).toMatch(/security group and network ACL/);
      expect(flatten(error)).not.toContain(SECRET);
    } finally {
      await agent.destroy();
    }
    expect(channel('signpost:agent:pick').hasSubscribers).toBe(true);
  });
});
