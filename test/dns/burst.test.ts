import { afterAll, beforeAll, expect, test } from 'vitest';
import { Discovery } from '../../src/discovery.ts';
import { Bind9 } from '../fixtures/bind9.ts';

const NAMES = 1500;
let bind: Bind9;

beforeAll(async () => {
  const lines: string[] = [];
  for (let i = 0; i < NAMES; i++) lines.push(`n${i} 300 IN A 127.0.1.${i & 255}`);
  bind = await Bind9.start({ zones: { 'burst.local': lines.join('\n') }, querylog: false });
});

afterAll(async () => {
  await bind?.close();
});

test('a burst of cold names (A and AAAA each) all resolve: queries wait their turn, nothing times out or warns', async () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  const discovery = new Discovery({
    namespaces: { 'burst.local': { via: 'dns' } },
    dns: { servers: [bind.server] },
  });
  try {
    const results = await Promise.allSettled(
      Array.from({ length: NAMES }, (_, i) => discovery.resolve(`n${i}.burst.local`)),
    );
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed).toEqual([]);
    expect(discovery.stats().queries).toBe(NAMES);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([]);
  } finally {
    process.off('warning', onWarning);
    await discovery.close();
  }
});
