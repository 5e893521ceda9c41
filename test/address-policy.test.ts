import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { AddressPolicy, refusePort, parseAddressOptions } from '../src/address-policy.ts';
import { createSubnetMatcher } from '../src/zone.ts';

describe('AddressPolicy', () => {
  const policy = new AddressPolicy();

  test.each([
    ['0.0.0.0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['::', /unspecified/],
    ['0:0::0', /unspecified/],
    ['::ffff:0.0.0.0', /unspecified/],
    ['255.255.255.255', /broadcast/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['ff02::1', /multicast/],
    ['::ffff:224.0.0.1', /multicast/],
    ['fe80::1%lo', /zone id/],
    ['fd00::1%eth0', /zone id/],
    ['169.254.169.254', /link-local.*metadata/],
    ['169.254.170.2', /link-local/],
    ['::ffff:169.254.169.254', /link-local/],
    ['::ffff:a9fe:a9fe', /link-local/],
    ['fe80::1', /link-local/],
    ['fd00:ec2::254', /EC2 instance metadata/],
    ['localhost', /not an IP address/],
    ['10.0.0', /not an IP address/],
    ['', /not an IP address/],
  ])('%s is never an instance by default (%s)', (address, reason) => {
    expect(policy.refuse(address)).toMatch(reason);
  });

  test.each(['10.0.1.5', '127.0.0.2', '::1', 'fd00::2', '192.168.1.1', '100.64.0.1', '240.0.0.1', '2001:db8::1', '::ffff:10.0.0.1'])(
    '%s may be an instance',
    (address) => {
      expect(policy.refuse(address)).toBeUndefined();
    },
  );

  test('non-strings are refused, not thrown on', () => {
    for (const value of [undefined, null, 42, {}, ['10.0.0.1']]) expect(policy.refuse(value)).toBe('not an IP address');
  });

  test('allow opens a link-local range or one address, most specific first', () => {
    const one = new AddressPolicy({ allow: ['169.254.170.2'] });
    expect(one.refuse('169.254.170.2')).toBeUndefined();
    expect(one.refuse('169.254.169.254')).toMatch(/link-local/);
    const all = new AddressPolicy({ allow: ['169.254.0.0/16', 'fe80::/10'] });
    expect(all.refuse('169.254.169.254')).toBeUndefined();
    expect(all.refuse('fe80::1')).toBeUndefined();
    // Never addresses stay refused whatever allow says.
    const never = new AddressPolicy({ allow: ['0.0.0.0/0', '::/0'] });
    expect(never.refuse('0.0.0.0')).toMatch(/unspecified/);
    expect(never.refuse('224.0.0.1')).toMatch(/multicast/);
    expect(never.refuse('fe80::1%lo')).toMatch(/zone id/);
  });

  test('deny and allow together: an allow-list', () => {
    const only10 = new AddressPolicy({ deny: ['0.0.0.0/0', '::/0'], allow: ['10.0.0.0/8'] });
    expect(only10.refuse('10.2.3.4')).toBeUndefined();
    expect(only10.refuse('127.0.0.1')).toMatch(/addresses\.deny \(0\.0\.0\.0\/0\)/);
    expect(only10.refuse('::1')).toMatch(/addresses\.deny/);
    // At equal length deny wins; a longer allow beats a shorter deny.
    const tie = new AddressPolicy({ deny: ['10.0.0.0/8'], allow: ['10.0.0.0/8', '10.1.0.0/16'] });
    expect(tie.refuse('10.2.0.1')).toMatch(/deny/);
    expect(tie.refuse('10.1.0.1')).toBeUndefined();
    // IPv4-mapped ranges are IPv4 ranges.
    const mapped = new AddressPolicy({ deny: ['::ffff:10.0.0.0/104'] });
    expect(mapped.refuse('10.9.9.9')).toMatch(/deny/);
    expect(mapped.refuse('::ffff:10.9.9.9')).toMatch(/deny/);
  });

  test('ports: 1 to 65535, or none', () => {
    expect(refusePort(undefined)).toBeUndefined();
    expect(refusePort(8080)).toBeUndefined();
    for (const port of [0, 65_536, -1, 80.5, Number.NaN, '80']) expect(refusePort(port)).toMatch(/not an integer from 1 to 65535/);
  });

  test.each<[string, unknown]>([
    ['not an object', 'deny all'],
    ['unknown key', { block: [] }],
    ['allow not an array', { allow: '10.0.0.0/8' }],
    ['a hostname', { deny: ['metadata.google.internal'] }],
    ['prefix too long', { allow: ['10.0.0.0/33'] }],
    ['a zone id', { allow: ['fe80::1%lo/128'] }],
    ['a number', { deny: [10] }],
  ])('addresses: %s → SIGNPOST_ERR_INVALID_ARG', (_label, value) => {
    expect(() => parseAddressOptions(value)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }));
  });
});

describe('IPv4 addresses are judged as numbers, with the verdicts of the BlockList rules', () => {
  // The rules as BlockList applies them (the path every IPv6 address takes): NEVER first, then the
  // most specific rule, deny over allow and the user's over the defaults at equal length.
  const NEVER: Array<[string, number, 'ipv4' | 'ipv6', RegExp]> = [
    ['0.0.0.0', 8, 'ipv4', /unspecified/],
    ['::', 128, 'ipv6', /unspecified/],
    ['255.255.255.255', 32, 'ipv4', /broadcast/],
    ['224.0.0.0', 4, 'ipv4', /multicast/],
    ['ff00::', 8, 'ipv6', /multicast/],
  ];
  const reference = (options: { allow?: string[]; deny?: string[] }) => {
    const rules: Record<string, string> = {};
    const cidr = (text: string) => (text.includes('/') ? text : `${text}/${isIP(text) === 4 ? 32 : 128}`);
    for (const c of options.deny ?? []) rules[cidr(c)] ??= `in addresses.deny (${c})`;
    for (const c of options.allow ?? []) rules[cidr(c)] ??= 'allow';
    rules['169.254.0.0/16'] ??= 'link-local';
    rules['fe80::/10'] ??= 'link-local';
    rules['fd00:ec2::254/128'] ??= 'EC2';
    const verdict = createSubnetMatcher(rules);
    return (address: string): string | RegExp | undefined => {
      for (const [network, bits, family, reason] of NEVER) {
        const list = new BlockList();
        list.addSubnet(network, bits, family);
        if (list.check(address, 'ipv4')) return reason;
      }
      const v = verdict(address);
      return v === 'allow' ? undefined : v;
    };
  };
  const same = (got: string | undefined, want: string | RegExp | undefined): boolean =>
    want instanceof RegExp
      ? got !== undefined && want.test(got)
      : want === 'link-local'
        ? /link-local/.test(got ?? '')
        : want === 'EC2'
          ? /EC2/.test(got ?? '')
          : got === want;

  const byte = fc.integer({ min: 0, max: 255 });
  const v4 = fc.tuple(byte, byte, byte, byte).map((b) => b.join('.'));
  // Addresses near a few networks, so rules of every length meet them.
  const near = fc.tuple(fc.constantFrom(10, 169, 224, 0, 255, 127), fc.constantFrom(0, 254, 255), byte, byte).map((b) => b.join('.'));
  const v4Rule = fc.tuple(fc.oneof(v4, near), fc.integer({ min: 0, max: 32 })).map(([a, n]) => `${a}/${n}`);
  const v6Rule = fc.oneof(
    fc.constantFrom('fd00::/8', '2001:db8::/32', '::/0', '::/96', '::/80', '::ffff:0:0/96', '::ffff:10.0.0.0/104', '64:ff9b::/96'),
    fc.tuple(fc.oneof(v4, near), fc.integer({ min: 96, max: 128 })).map(([a, n]) => `::ffff:${a}/${n}`),
  );
  const rules = fc.array(fc.oneof(v4Rule, v4Rule, fc.oneof(v4, near), v6Rule), { maxLength: 6 });

  test('for any allow and deny lists, every IPv4 address gets the verdict BlockList gives', () => {
    fc.assert(
      fc.property(rules, rules, fc.array(fc.oneof(v4, near), { minLength: 1, maxLength: 20 }), (deny, allow, addresses) => {
        const policy = new AddressPolicy({ deny, allow });
        const want = reference({ deny, allow });
        for (const address of addresses) {
          const got = policy.refuse(address);
          if (!same(got, want(address))) throw new Error(`${address} with deny ${deny.join(' ')} allow ${allow.join(' ')}: ${got} ≠ ${String(want(address))}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('an IPv6 rule over IPv4-mapped space still applies to IPv4 addresses', () => {
    expect(new AddressPolicy({ deny: ['::ffff:10.0.0.0/104'] }).refuse('10.1.2.3')).toMatch(/addresses\.deny/);
    expect(new AddressPolicy({ allow: ['::/0'] }).refuse('169.254.169.254')).toMatch(/link-local/);
    expect(new AddressPolicy({ allow: ['::ffff:169.254.0.0/112'] }).refuse('169.254.169.254')).toBeUndefined();
    expect(new AddressPolicy({ deny: ['10.0.0.0/8'], allow: ['10.1.0.0/16'] }).refuse('10.1.2.3')).toBeUndefined();
    expect(new AddressPolicy({ deny: ['10.0.0.0/8'], allow: ['10.1.0.0/16'] }).refuse('10.2.0.1')).toMatch(/addresses\.deny/);
  });

  test('at equal length, deny wins over allow and the user over the defaults, however the ranges are written', () => {
    expect(new AddressPolicy({ allow: ['10.0.0.5/8'], deny: ['10.0.0.0/8'] }).refuse('10.9.9.9')).toMatch(/addresses\.deny/);
    expect(new AddressPolicy({ allow: ['10.0.0.0/8'], deny: ['10.1.2.3/8'] }).refuse('10.9.9.9')).toMatch(/addresses\.deny/);
    expect(new AddressPolicy({ allow: ['169.254.1.1/16'] }).refuse('169.254.169.254')).toBeUndefined();
    expect(new AddressPolicy({ allow: ['169.254.0.0/16'], deny: ['169.254.9.9/16'] }).refuse('169.254.169.254')).toMatch(/addresses\.deny/);
  });
});
