/**
 * The name checks on every cold name's path, against their plain definitions: a host name is
 * dot-separated labels of 1 to 63 letters, digits, `-` and `_` that neither start nor end with
 * `-`; an IP literal is what `net.isIP` accepts, IPv6 also in brackets.
 */
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isIpLiteral } from '../src/routing.ts';
import { isHostname } from '../src/validate.ts';

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/i;
const hostnameByLabels = (value: string): boolean =>
  value.length > 0 && value.length <= 253 && value.split('.').every((label) => LABEL.test(label));
const ipLiteralByIsIp = (host: string): boolean => isIP(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host) !== 0;

// Strings made of the characters that matter here, so both answers come up often.
const chars = fc.constantFrom('a', 'Z', '0', '9', '-', '_', '.', ':', '[', ']', 'f', ' ', 'é', '%');
const text = fc.oneof(
  fc.string({ unit: chars, maxLength: 80 }),
  fc.array(fc.string({ unit: fc.constantFrom('a', 'b', '-', '_', '1'), minLength: 0, maxLength: 70 }), { maxLength: 6 }).map((l) => l.join('.')),
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV6().map((a) => `[${a}]`),
  fc.ipV4Extended(),
);

describe('name checks', () => {
  test('isHostname is the label-by-label definition', () => {
    fc.assert(fc.property(text, (value) => isHostname(value) === hostnameByLabels(value)), { numRuns: 5000 });
    for (const value of ['a', 'a-b.c_d', '-a', 'a-', 'a..b', 'a.', '.a', 'x'.repeat(63), 'x'.repeat(64), `${'a.'.repeat(126)}a`, `${'a.'.repeat(127)}a`]) {
      expect(isHostname(value)).toBe(hostnameByLabels(value));
    }
  });

  test('isIpLiteral is net.isIP (brackets allowed)', () => {
    fc.assert(fc.property(text, (value) => isIpLiteral(value) === ipLiteralByIsIp(value)), { numRuns: 5000 });
    for (const value of ['1.2.3.4', '01.2.3.4', '::1', '[::1]', '[::ffff:1.2.3.4]', 'fe80::1%eth0', '1.2.3', 'a.b.c.d', '']) {
      expect(isIpLiteral(value)).toBe(ipLiteralByIsIp(value));
    }
  });
});
