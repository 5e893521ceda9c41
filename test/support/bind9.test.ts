import { afterAll, beforeAll, expect, test } from 'vitest';
import { Bind9, query } from './bind9.ts';

const data = (p: { answers?: unknown[] | undefined }) => (p.answers ?? []).map((a) => (a as { data: unknown }).data);
const rcode = (p: object) => (p as { rcode?: string }).rcode;

let dns: Bind9;
beforeAll(async () => {
  dns = await Bind9.start({
    zones: { 'test.local': 'orders 5 IN A 127.0.0.2' },
    brokenZones: ['broken.local'],
  });
});
afterAll(async () => {
  await dns?.close();
});

test('serves, updates, and fails as a real server does', async () => {
  const answer = await query(dns, 'orders.test.local', 'A');
  expect(data(answer)).toEqual(['127.0.0.2']);
  await dns.update(['update add web.test.local 1 A 127.0.0.3']);
  expect(data(await query(dns, 'web.test.local', 'A'))).toEqual(['127.0.0.3']);
  expect(rcode(await query(dns, 'x.broken.local', 'A'))).toBe('SERVFAIL');
  expect(rcode(await query(dns, 'x.elsewhere', 'A'))).toBe('REFUSED');
  await dns.pause();
  await expect(query(dns, 'orders.test.local', 'A', 300)).rejects.toThrow();
  dns.resume();
  await dns.restart();
  expect(data(await query(dns, 'web.test.local', 'A'))).toEqual(['127.0.0.3']);
});
