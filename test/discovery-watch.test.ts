/**
 * Discovery.watch against bind9: a watched name stays resolved and refreshed with nobody picking
 * it, every change reaches the watcher, and once unwatched (and unused) it lapses as any name.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Discovery } from '../src/discovery.ts';
import type { Instance } from '../src/types.ts';
import { Bind9 } from './fixtures/bind9.ts';
import { FakeClock, flush } from './support/fake-clock.ts';

const ZONE = 'watch.test';
const NAME = `svc.${ZONE}`;

describe('Discovery.watch', () => {
  let bind: Bind9;

  beforeAll(async () => {
    bind = await Bind9.start({ zones: { [ZONE]: ['svc 1 IN A 127.0.0.31', 'svc 1 IN A 127.0.0.32'].join('\n') } });
  });

  afterAll(async () => {
    await bind?.close();
  });

  it('keeps a name nobody picks refreshed, reports each change, and lets it lapse once unwatched', async () => {
    // The fake clock jumps to each refresh; the queries it sends to bind9 are real.
    const clock = new FakeClock();
    const discovery = new Discovery({
      clock,
      namespaces: { [ZONE]: { via: 'dns', family: 4 } },
      dns: { servers: [bind.server], timeout: 500, tries: 2 },
      cache: { minTtl: 100, maxTtl: 1000 },
    });
    /** Settles after the registry's next answer for the name, time jumping to it. */
    const nextAnswer = async (): Promise<void> => {
      const answered = new Promise<void>((resolve) => {
        const off = discovery.onResolve((event) => {
          if (event.name !== NAME) return;
          off();
          resolve();
        });
      });
      while (!(await Promise.race([answered.then(() => true), flush().then(() => false)]))) clock.advance(100);
    };
    const seen: Array<readonly Instance[]> = [];
    try {
      const stop = discovery.watch(NAME, (instances) => seen.push(instances));
      expect((await discovery.resolve(NAME)).map((i) => i.address).sort()).toEqual(['127.0.0.31', '127.0.0.32']);
      const queries = discovery.stats().queries;
      // Past several TTLs without a pick, it is still asked for and served.
      for (let i = 0; i < 3; i++) await nextAnswer();
      expect(discovery.stats().queries).toBe(queries + 3);
      expect(discovery.instancesSync(NAME)).toHaveLength(2);
      await bind.update([`update delete ${NAME} A 127.0.0.32`]);
      await nextAnswer();
      expect(seen.at(-1)?.map((i) => i.address)).toEqual(['127.0.0.31']);
      stop();
      stop();
      // Unwatched and unused, the name lapses at its next expiry.
      for (let i = 0; i < 100 && discovery.instancesSync(NAME).length > 0; i++) {
        clock.advance(100);
        await flush();
      }
      expect(discovery.instancesSync(NAME)).toHaveLength(0);
    } finally {
      await discovery.close();
    }
  });

  it('checks its arguments and contains a watcher that throws', async () => {
    const discovery = new Discovery({ services: { [NAME]: { via: 'static', instances: [{ address: '127.0.0.31' }] } } });
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => void warnings.push(warning.code ?? '');
    process.on('warning', onWarning);
    try {
      expect(() => discovery.watch(NAME, 'no' as never)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
      expect(() => discovery.watch(42 as never, () => undefined)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
      const calls: number[] = [];
      discovery.watch(NAME, () => {
        throw new Error('watcher bug');
      });
      discovery.watch(NAME, (instances) => calls.push(instances.length));
      await discovery.resolve(NAME);
      expect(calls).toEqual([1]);
      await vi.waitFor(() => expect(warnings).toContain('SIGNPOST_CALLBACK_ERROR'));
      await discovery.close();
      expect(() => discovery.watch(NAME, () => undefined)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_CLOSED' }));
    } finally {
      process.off('warning', onWarning);
      await discovery.close();
    }
  });
});
