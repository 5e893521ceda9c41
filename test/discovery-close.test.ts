/**
 * close() releases every cached name, timer and health state even while the Discovery object
 * stays referenced (a module-level singleton, a closure kept by a framework).
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { Discovery } from '../src/discovery.ts';
import type { InstancesChange } from '../src/discovery.ts';
import type { Instance } from '../src/types.ts';
import { Bind9 } from './fixtures/bind9.ts';

const NAMES = 3000;
let bind: Bind9;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return getHeapStatistics().used_heap_size;
}

beforeAll(async () => {
  const records: string[] = [];
  for (let i = 0; i < NAMES; i++) {
    for (let j = 0; j < 3; j++) records.push(`m${i} 300 IN A 127.${20 + j}.${i >> 8}.${i & 255}`);
  }
  bind = await Bind9.start({ zones: { 'mem.local': records.join('\n') }, querylog: false });
});

afterAll(async () => {
  await bind?.close();
});

/** Resolves `count` names 64 at a time and picks every tenth. */
async function fill(d: Discovery, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < count) await d.resolve(`m${next++}.mem.local`);
    }),
  );
  for (let i = 0; i < count; i += 10) d.pickSync(`m${i}.mem.local`);
}

test(`a closed Discovery still referenced holds none of its ${NAMES} names`, async () => {
  const options = { dns: { servers: [bind.server] }, namespaces: { 'mem.local': { via: 'dns' as const, family: 4 as const, port: 8080 } } };
  // A first Discovery loads and compiles the resolve path (code that stays, whatever is closed).
  const warm = new Discovery(options);
  await fill(warm, 1000);
  await warm.close();
  const before = await heapAfterGc();
  const d = new Discovery(options);
  await fill(d, NAMES);
  d.onChange(() => {});
  const samples: Array<WeakRef<Instance>> = [];
  for (let i = 0; i < NAMES; i += 300) samples.push(new WeakRef(d.instancesSync(`m${i}.mem.local`)[0]!));
  const full = await heapAfterGc();
  expect(d.stats().names).toBe(NAMES);

  await d.close();
  const closed = await heapAfterGc();
  // Still referenced, and answering as a closed Discovery does.
  await expect(d.resolve('m1.mem.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
  expect(d.stats()).toMatchObject({ names: 0 });
  expect(d.instancesSync('m1.mem.local')).toEqual([]);
  expect(d.hasInstance('127.20.0.1:8080')).toBe(false);
  expect(samples.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  const held = full - before;
  const kept = closed - before;
  expect(held).toBeGreaterThan(NAMES * 300);
  // The names do not stay (what may: the DNS client's buffers, code compiled late).
  expect(kept).toBeLessThan(held * 0.2);
});

/** Closing a Discovery ends its onChange stream; it is not a change (every instance removed). */
describe('Discovery.close()', () => {
  it('fires no onChange: the names did not change, the watching ended', async () => {
    const discovery = new Discovery({
      services: {
        'api.close.test': { via: 'static', instances: [{ address: '127.0.0.2', port: 8080 }, { address: '127.0.0.3', port: 8080 }] },
        'web.close.test': { via: 'static', instances: [{ address: '127.0.0.4', port: 8080 }] },
      },
    });
    const changes: InstancesChange[] = [];
    discovery.onChange((change) => changes.push(change));
    await discovery.resolve('api.close.test');
    await discovery.resolve('web.close.test');
    expect(changes.map((c) => [c.name, c.added.length, c.removed.length])).toEqual([
      ['api.close.test', 2, 0],
      ['web.close.test', 1, 0],
    ]);

    await discovery.close();
    expect(changes).toHaveLength(2);
  });
});
