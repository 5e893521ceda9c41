import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Readable } from 'node:stream';
import { errors as undiciErrors, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscoveryAgent, type AttemptsInfo } from '../../src/agent/index.ts';

/** A request error as signpost delivers it: undici's own, with the attempts. */
type RequestError = Error & { code?: string } & AttemptsInfo;
import { Fleet } from '../fixtures/fleet.ts';

const NAME = 'api.test.local';

async function run(agent: DiscoveryAgent, path: string, init: Parameters<typeof request>[1] = {}): Promise<number> {
  const { statusCode, body } = await request(`http://${NAME}${path}`, { dispatcher: agent, ...init });
  await body.text();
  return statusCode;
}

/** Runs `total` calls, `concurrency` at a time; `onProgress(done)` after each. */
async function pool(total: number, concurrency: number, call: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await call(next++);
    }),
  );
}

describe('retries', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(count: number, options: Record<string, unknown> = {}): Promise<{ fleet: Fleet; agent: DiscoveryAgent }> {
    const fleet = await Fleet.start(count);
    const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: fleet.instances } }, ...options });
    cleanup.push(() => fleet.close(), () => agent.destroy());
    return { fleet, agent };
  }

  it('an instance killed mid-run fails none of 2,000 GETs', async () => {
    const { fleet, agent } = await setup(3);
    const failures: unknown[] = [];
    let done = 0;
    let killed: Promise<void> | undefined;
    await pool(2000, 20, async (i) => {
      try {
        expect(await run(agent, `/get/${i}`)).toBe(200);
      } catch (error) {
        failures.push(error);
      }
      if (++done === 500) killed = fleet.servers[0]!.kill();
    });
    await killed;
    expect(failures).toEqual([]);
    const stats = agent.stats();
    expect(stats.requests).toBe(2000);
    expect(stats.retries).toBeGreaterThan(0);
    // The dead instance was ejected (its first refused connection does it): it saw few dials.
    const dead = stats.instances[`${fleet.servers[0]!.address}:${fleet.servers[0]!.port}`]!;
    expect(dead.ejected).toBe(true);
    expect(fleet.servers[1]!.count + fleet.servers[2]!.count).toBeGreaterThan(1400);
  });

  it('a POST is never delivered twice, even when its instance is killed mid-run', async () => {
    const { fleet, agent } = await setup(3);
    fleet.servers[0]!.delay = 20; // requests are in flight on it when it dies
    const errors: Error[] = [];
    let done = 0;
    let killed: Promise<void> | undefined;
    await pool(300, 15, async (i) => {
      try {
        await run(agent, '/post', { method: 'POST', body: `order-${i}` });
      } catch (error) {
        errors.push(error as Error);
      }
      if (++done === 100) killed = fleet.servers[0]!.kill();
    });
    await killed;
    const bodies = fleet.servers.flatMap((s) => s.seen.map((r) => r.body));
    expect(new Set(bodies).size).toBe(bodies.length);
    for (const error of errors as RequestError[]) {
      // The instance's own error, never one of signpost's, and one attempt only.
      expect(error.code).not.toMatch(/^SIGNPOST_/);
      expect(error.attempts).toHaveLength(1);
      expect(error.attempts[0]!.error).toBe(error);
    }
    expect(bodies.length + errors.length).toBeGreaterThanOrEqual(300);
  });

  it('a POST whose instance resets the connection is not retried; with retry.methods it is', async () => {
    const { fleet, agent } = await setup(1);
    fleet.servers[0]!.behaviour = 'reset';
    const exhausted = (await run(agent, '/p', { method: 'POST', body: 'x' }).catch((e: unknown) => e)) as RequestError;
    expect(['ECONNRESET', 'UND_ERR_SOCKET']).toContain(exhausted.code);
    expect(exhausted.attempts).toHaveLength(1);
    expect(exhausted.retryStop).toContain('retry.methods');
    expect(fleet.servers[0]!.count).toBe(1);

    const optIn = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: fleet.instances } },
      ejection: false,
      retry: { methods: ['POST'], minDelay: 1, maxDelay: 2 },
    });
    cleanup.push(() => optIn.destroy());
    const again = (await run(optIn, '/p', { method: 'POST', body: 'y' }).catch((e: unknown) => e)) as RequestError;
    expect(again.attempts).toHaveLength(3);
    expect(fleet.servers[0]!.count).toBe(4);
  });

  it('a GET whose connection is reset is retried on the other instance', async () => {
    const { fleet, agent } = await setup(2, { ejection: false });
    fleet.servers[0]!.behaviour = 'reset';
    for (let i = 0; i < 10; i++) expect(await run(agent, `/g${i}`)).toBe(200);
    expect(fleet.servers[0]!.count).toBeGreaterThan(0);
    expect(fleet.servers[1]!.count).toBe(10);
    expect(agent.stats().retries).toBe(fleet.servers[0]!.count);
  });

  it('a POST to an instance that refuses connections is retried on another (it never left)', async () => {
    const { fleet, agent } = await setup(2);
    await fleet.servers[0]!.kill();
    for (let i = 0; i < 10; i++) expect(await run(agent, '/p', { method: 'POST', body: `b${i}` })).toBe(200);
    expect(fleet.servers[1]!.count).toBe(10);
  });

  it('a streamed body that was read is not replayed', async () => {
    const { fleet, agent } = await setup(2, { ejection: false });
    for (const s of fleet.servers) s.behaviour = 'reset';
    const error = (await run(agent, '/put', { method: 'PUT', body: Readable.from(['a', 'b']) }).catch((e: unknown) => e)) as RequestError;
    expect(['ECONNRESET', 'UND_ERR_SOCKET']).toContain(error.code);
    expect(error.attempts).toHaveLength(1);
    expect(error.retryStop).toContain('stream');
  });

  it('an instance that accepts but never answers gives a headers timeout, not a hang', async () => {
    const { fleet, agent } = await setup(1, { headersTimeout: 200, retry: { retries: 1, minDelay: 1, maxDelay: 2 } });
    fleet.servers[0]!.behaviour = 'hang';
    const error = (await run(agent, '/slow').catch((e: unknown) => e)) as RequestError;
    expect(error).toBeInstanceOf(undiciErrors.HeadersTimeoutError);
    expect(error.code).toBe('UND_ERR_HEADERS_TIMEOUT');
    expect(error.attempts.map((a) => (a.error as { code?: string }).code)).toEqual([
      'UND_ERR_HEADERS_TIMEOUT',
      'UND_ERR_HEADERS_TIMEOUT',
    ]);
    expect(error.attempts.at(-1)!.error).toBe(error);
  });

  it('5xx responses are passed on, not retried, and count toward ejection', async () => {
    const { fleet, agent } = await setup(1, { ejection: { consecutiveFailures: 3, maxEjectedPercent: 100, panicThreshold: 0 } });
    fleet.servers[0]!.behaviour = '5xx';
    for (let i = 0; i < 3; i++) expect(await run(agent, '/e')).toBe(503);
    expect(fleet.servers[0]!.count).toBe(3);
    const stats = agent.stats().instances[`${fleet.servers[0]!.address}:${fleet.servers[0]!.port}`]!;
    expect(stats.failures).toBe(3);
    expect(stats.ejected).toBe(true);
  });

  it('the retry budget holds when every instance fails', async () => {
    const { fleet, agent } = await setup(3, {
      ejection: false,
      retry: { minDelay: 0, maxDelay: 0, budget: { ratio: 0.1, minRetries: 5, window: 600_000 } },
    });
    for (const s of fleet.servers) await s.kill();
    const retries: unknown[] = [];
    const onRetry = (m: unknown): void => void retries.push(m);
    subscribe('signpost:agent:retry', onRetry);
    const errors: unknown[] = [];
    try {
      await pool(200, 10, async () => {
        errors.push(await run(agent, '/down').catch((e: unknown) => e));
      });
    } finally {
      unsubscribe('signpost:agent:retry', onRetry);
    }
    expect(errors).toHaveLength(200);
    for (const e of errors) expect(e).toMatchObject({ code: 'ECONNREFUSED' });
    const stats = agent.stats();
    expect(stats.retries).toBeLessThanOrEqual(5 + 0.1 * 200);
    expect(stats.retries).toBe(retries.length);
    expect(stats.retriesDenied).toBeGreaterThan(0);
    const attempts = errors.map((e) => (e as RequestError).attempts.length);
    expect(attempts.reduce((a, b) => a + b, 0)).toBe(200 + stats.retries);
    expect((errors.at(-1) as RequestError).retryStop).toContain('budget');
  });

  it('each retry goes to an instance not yet tried while one remains', async () => {
    const { fleet, agent } = await setup(3, { ejection: false, retry: { minDelay: 0, maxDelay: 0 } });
    for (const s of fleet.servers) await s.kill();
    const error = (await run(agent, '/all').catch((e: unknown) => e)) as RequestError;
    expect(error.attempts).toHaveLength(3);
    expect(new Set(error.attempts.map((a) => a.instance)).size).toBe(3);
    for (const a of error.attempts) expect((a.error as { code?: string }).code).toBe('ECONNREFUSED');
  });

  it('an abort while a retry waits ends the request at once', async () => {
    const { fleet, agent } = await setup(1, { ejection: false, retry: { retries: 3, minDelay: 60_000, maxDelay: 60_000 } });
    await fleet.servers[0]!.kill();
    const controller = new AbortController();
    const pending = run(agent, '/abort', { signal: controller.signal });
    const retried = new Promise<void>((resolve) => {
      const onRetry = (): void => {
        unsubscribe('signpost:agent:retry', onRetry);
        // The first retry goes at once; the second waits a minute unless aborted.
        setTimeout(resolve, 50);
      };
      subscribe('signpost:agent:retry', onRetry);
    });
    await retried;
    controller.abort(new Error('caller gave up'));
    await expect(pending).rejects.toThrow('caller gave up');
  });

  it('an abort before any instance answers is honoured', async () => {
    const { fleet, agent } = await setup(1);
    fleet.servers[0]!.behaviour = 'hang';
    const controller = new AbortController();
    const pending = run(agent, '/abort2', { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(agent.stats().instances[`${fleet.servers[0]!.address}:${fleet.servers[0]!.port}`]!.inflight).toBe(0);
  });
});
