/**
 * The user's callbacks (onChange listeners, custom balancers, an injected clock) and bad
 * arguments: a throw is contained and reported once, never a crash, a frozen name or a broken
 * close(); every bad argument is a typed SIGNPOST_ERR_INVALID_ARG, never a TypeError.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { systemClock, type Clock } from '../src/clock.ts';
import type { CallbackErrorMessage } from '../src/diagnostics.ts';
import { Discovery } from '../src/discovery.ts';
import type { DiscoveryOptions } from '../src/options.ts';
import type { Balancer, Instance } from '../src/types.ts';
import { Bind9 } from './fixtures/bind9.ts';

let bind: Bind9;
const open: Discovery[] = [];

beforeAll(async () => {
  bind = await Bind9.start({
    zones: { 'cb.local': ['api 60 IN A 127.0.0.2', 'api 60 IN A 127.0.0.3', 'live 1 IN A 127.0.0.4'].join('\n') },
    querylog: false,
  });
});
afterAll(async () => {
  await bind?.close();
});

/** Warnings and channel messages seen during one test; unhandled rejections fail it. */
const seen = { warnings: [] as Error[], errors: [] as CallbackErrorMessage[], unhandled: [] as unknown[] };
const onWarning = (warning: Error): void => void seen.warnings.push(warning);
const onError = (message: unknown): void => void seen.errors.push(message as CallbackErrorMessage);
const onUnhandled = (reason: unknown): void => void seen.unhandled.push(reason);

beforeAll(() => {
  process.on('warning', onWarning);
  process.on('unhandledRejection', onUnhandled);
  subscribe('signpost:callback:error', onError);
});
afterAll(() => {
  process.off('warning', onWarning);
  process.off('unhandledRejection', onUnhandled);
  unsubscribe('signpost:callback:error', onError);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
  seen.warnings.length = 0;
  seen.errors.length = 0;
  expect(seen.unhandled).toEqual([]);
});

function discovery(options: DiscoveryOptions = {}): Discovery {
  const d = new Discovery({
    dns: { servers: [bind.server], timeout: 1000, tries: 2 },
    namespaces: { 'cb.local': { via: 'dns', family: 4, port: 8080 } },
    ...options,
  });
  open.push(d);
  return d;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const callbackWarnings = (): Error[] => seen.warnings.filter((w) => (w as { code?: string }).code === 'SIGNPOST_CALLBACK_ERROR');

describe('onChange listeners', () => {
  test('a listener that throws on the first answer: resolve() still answers, other listeners still run, reported once', async () => {
    const d = discovery();
    const changes: string[] = [];
    d.onChange(() => {
      throw new Error('listener bug');
    });
    d.onChange((change) => changes.push(change.name));
    for (let i = 0; i < 3; i++) expect(await d.resolve(`api.cb.local`)).toHaveLength(2);
    expect(await d.resolve('live.cb.local')).toHaveLength(1);
    expect(changes).toEqual(['api.cb.local', 'live.cb.local']);
    await tick();
    expect(seen.errors.map((e) => [e.callback, e.name])).toEqual([
      ['onChange listener', 'api.cb.local'],
      ['onChange listener', 'live.cb.local'],
    ]);
    expect(callbackWarnings()).toHaveLength(1);
    expect(callbackWarnings()[0]!.message).toMatch(/onChange listener failed \(Error\)/);
    await d.close();
  });

  test('a listener that throws on a background refresh: no crash, the refresh is not frozen, close() resolves', async () => {
    const d = discovery();
    d.onChange(() => {
      throw new TypeError('listener bug');
    });
    expect((await d.resolve('live.cb.local')).map((i) => i.address)).toEqual(['127.0.0.4']);
    await bind.update(['update delete live.cb.local A', 'update add live.cb.local 1 A 127.0.0.5']);
    try {
      // The TTL is 1 s; a name in use is refreshed as it runs out.
      for (let i = 0; i < 40 && d.instancesSync('live.cb.local')[0]?.address !== '127.0.0.5'; i++) {
        d.pickSync('live.cb.local');
        await sleep(100);
      }
      expect(d.instancesSync('live.cb.local').map((i) => i.address)).toEqual(['127.0.0.5']);
      expect(seen.errors.length).toBeGreaterThanOrEqual(2);
      await expect(d.close()).resolves.toBeUndefined();
    } finally {
      await bind.update(['update delete live.cb.local A', 'update add live.cb.local 1 A 127.0.0.4']);
    }
  });

  test('onChange needs a function', () => {
    const d = discovery();
    for (const bad of ['x', 42, null, {}]) {
      expect(() => d.onChange(bad as never)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
    }
  });
});

describe('custom balancers', () => {
  const first = (): Balancer => {
    let list: readonly Instance[] = [];
    return { update: (instances) => void (list = instances), pick: () => list[0] };
  };

  test.each<[string, (name: string) => unknown, string]>([
    ['a factory that returns {}', () => ({}), 'balancer factory'],
    ['a factory that throws', () => {
      throw new Error('factory bug');
    }, 'balancer factory'],
    ['update() that throws', () => ({ update: () => {
      throw new Error('update bug');
    }, pick: () => undefined }), 'balancer.update'],
    ['pick() that throws', () => ({ update() {}, pick: () => {
      throw new Error('pick bug');
    } }), 'balancer.pick'],
    ['pick() that returns {}', () => ({ update() {}, pick: () => ({}) }), 'balancer.pick'],
    ['pick() that returns an instance of another set', () => ({ update() {}, pick: () => ({ id: 'x', address: '10.9.9.9', weight: 1, priority: 0, attributes: {} }) }), 'balancer.pick'],
  ])('%s: the service is balanced round-robin instead, reported once', async (_label, factory, callback) => {
    const d = discovery({ balancer: factory as never });
    await d.resolve('api.cb.local');
    const picked = new Set<string>();
    for (let i = 0; i < 10; i++) picked.add((await d.pick('api.cb.local')).address);
    for (let i = 0; i < 10; i++) picked.add(d.pickSync('api.cb.local')!.address);
    expect([...picked].sort()).toEqual(['127.0.0.2', '127.0.0.3']);
    await tick();
    expect(seen.errors.map((e) => e.callback)).toEqual([callback]);
    expect(callbackWarnings()).toHaveLength(1);
    await expect(d.close()).resolves.toBeUndefined();
  });

  test('a working custom balancer is used as it is; a close() that throws does not break close()', async () => {
    const d = discovery({
      balancer: () => ({
        ...first(),
        close() {
          throw new Error('close bug');
        },
      }),
    });
    const instances = await d.resolve('api.cb.local');
    for (let i = 0; i < 5; i++) expect(d.pickSync('api.cb.local')).toBe(d.instancesSync('api.cb.local')[0]);
    expect(instances).toHaveLength(2);
    await expect(d.close()).resolves.toBeUndefined();
    expect(seen.errors.map((e) => e.callback)).toEqual(['balancer.close']);
  });
});

describe('clocks', () => {
  test.each<[string, unknown]>([
    ['an empty object', {}],
    ['a function', () => 0],
    ['a clock without clearTimeout', { now: () => 0, setTimeout: () => 0 }],
    ['a clock whose now is not a function', { now: 5, setTimeout: () => 0, clearTimeout() {} }],
  ])('clock: %s → SIGNPOST_ERR_INVALID_ARG', (_label, clock) => {
    expect(() => new Discovery({ clock: clock as Clock })).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
  });

  test('a clock whose methods throw: the real clock stands in, names resolve and refresh, close() works', async () => {
    const broken: Clock = {
      now() {
        throw new Error('now bug');
      },
      setTimeout() {
        throw new Error('setTimeout bug');
      },
      clearTimeout() {
        throw new Error('clearTimeout bug');
      },
    };
    const d = discovery({ clock: broken });
    expect(await d.resolve('api.cb.local')).toHaveLength(2);
    expect(await d.pick('api.cb.local')).toBeDefined();
    await expect(d.close()).resolves.toBeUndefined();
    expect(new Set(seen.errors.map((e) => e.callback))).toContain('clock.setTimeout');
    expect(callbackWarnings().length).toBeGreaterThanOrEqual(1);
  });

  test('a clock that works is used', async () => {
    let timers = 0;
    const counting: Clock = {
      now: () => systemClock.now(),
      setTimeout: (fn, ms) => {
        timers++;
        return systemClock.setTimeout(fn, ms);
      },
      clearTimeout: (t) => systemClock.clearTimeout(t),
    };
    const d = discovery({ clock: counting });
    await d.resolve('api.cb.local');
    expect(timers).toBeGreaterThan(0);
    expect(seen.errors).toEqual([]);
  });
});

describe('bad arguments are typed errors', () => {
  const BAD: unknown[] = [undefined, null, 42, {}, ['api.cb.local'], Symbol('x'), () => 'api.cb.local'];

  test.each(BAD.map((value) => [String(value).slice(0, 20), value]))('resolve / pick(%s) reject with SIGNPOST_ERR_INVALID_ARG', async (_label, value) => {
    const d = discovery();
    await expect(d.resolve(value as string)).rejects.toMatchObject({ code: 'SIGNPOST_ERR_INVALID_ARG' });
    await expect(d.pick(value as string)).rejects.toMatchObject({ code: 'SIGNPOST_ERR_INVALID_ARG' });
  });

  test.each(BAD.map((value) => [String(value).slice(0, 20), value]))('pickSync / instancesSync / handles / hasInstance(%s) throw SIGNPOST_ERR_INVALID_ARG', (_label, value) => {
    const d = discovery();
    const invalid = expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG', name: 'InvalidArgumentError' });
    expect(() => d.pickSync(value as string)).toThrow(invalid);
    expect(() => d.instancesSync(value as string)).toThrow(invalid);
    expect(() => d.handles(value as string)).toThrow(invalid);
    expect(() => d.hasInstance(value as string)).toThrow(invalid);
  });

  test('pickSync exclude must be a Set', async () => {
    const d = discovery();
    await d.resolve('api.cb.local');
    expect(() => d.pickSync('api.cb.local', 'x' as never)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
    expect(() => d.pickSync('api.cb.local', {} as never)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
    expect(d.pickSync('api.cb.local', new Set(['127.0.0.2:8080']))?.address).toBe('127.0.0.3');
  });

  test('a bad argument after close() is still INVALID_ARG; a good one is CLOSED', async () => {
    const d = discovery();
    await d.close();
    await expect(d.resolve(7 as never)).rejects.toMatchObject({ code: 'SIGNPOST_ERR_INVALID_ARG' });
    await expect(d.resolve('api.cb.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
  });
});
