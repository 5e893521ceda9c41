/**
 * Which addresses may be instances. Whoever controls one registry answer decides where requests
 * go, so some addresses are never used, whatever the registry says:
 *
 * - unspecified (`0.0.0.0/8`, `::`): connecting to them reaches the caller's own host;
 * - broadcast (`255.255.255.255`) and multicast (`224.0.0.0/4`, `ff00::/8`);
 * - IPv6 addresses with a zone id (`fe80::1%eth0`): their meaning depends on the caller's
 *   interfaces, and a connection to one fails on every other host.
 *
 * Link-local addresses (`169.254.0.0/16`, `fe80::/10`) and the EC2 metadata service's IPv6
 * address (`fd00:ec2::254`) are refused by default: cloud instance and task metadata (and the
 * credentials it hands out) live there. `addresses.allow` and `addresses.deny` change that: the
 * most specific matching range decides, a range of the user's beats a default of the same
 * length, and `deny` beats `allow` at the same length. IPv4-mapped IPv6 addresses
 * (`::ffff:169.254.169.254`) are judged as the IPv4 address they carry (Node's `BlockList`).
 *
 * The policy is applied where every answer passes (the resolution cache), and to static
 * services and `SIGNPOST_STATIC` when a Discovery is constructed.
 */
import { BlockList, isIP } from 'node:net';
import type { AddressOptions } from './options.ts';
import { checkKeys, checkObject, invalid } from './validate.ts';
import { createSubnetMatcher } from './zone.ts';

/** Never instances, whatever the rules say. */
const NEVER: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6', string]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified (a connection to it reaches the caller itself)'],
  ['::', 128, 'ipv6', 'unspecified (a connection to it reaches the caller itself)'],
  ['255.255.255.255', 32, 'ipv4', 'the broadcast address'],
  ['224.0.0.0', 4, 'ipv4', 'a multicast address'],
  ['ff00::', 8, 'ipv6', 'a multicast address'],
];

const LINK_LOCAL_REASON =
  'link-local (cloud instance and task metadata, with its credentials, lives there); list it in addresses.allow to use it';

/** Refused unless `addresses.allow` says otherwise. */
const DEFAULT_DENY: Readonly<Record<string, string>> = {
  '169.254.0.0/16': LINK_LOCAL_REASON,
  'fe80::/10': LINK_LOCAL_REASON,
  'fd00:ec2::254/128': 'the EC2 instance metadata service (IPv6); list it in addresses.allow to use it',
};

const ALLOW = 'allow';

/** `a.b.c.d/n`, `v6/n` or one address, as a CIDR; undefined when it is none of these. */
function toCidr(text: string): string | undefined {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(host);
  if (version === 0 || host.includes('%')) return undefined;
  const max = version === 4 ? 32 : 128;
  if (slash < 0) return `${host}/${max}`;
  const bits = text.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max ? text : undefined;
}

/** Checks the `addresses` option (throws InvalidArgumentError, SIGNPOST_ERR_INVALID_ARG) and builds its policy. */
export function parseAddressOptions(value: unknown = {}, path = 'addresses'): AddressPolicy {
  checkAddressOptions(value, path);
  return new AddressPolicy(value);
}

function checkAddressOptions(value: unknown, path: string): asserts value is AddressOptions {
  checkObject(path, value);
  checkKeys(path, value, ['allow', 'deny']);
  for (const key of ['allow', 'deny'] as const) {
    const list = value[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw invalid(`${path}.${key}`, list, 'an array of CIDR ranges such as "10.0.0.0/8"');
    list.forEach((item: unknown, i) => {
      if (typeof item !== 'string' || toCidr(item) === undefined) {
        throw invalid(`${path}.${key}[${i}]`, item, 'a CIDR range such as "10.0.0.0/8" or "fd00::/8", or one address');
      }
    });
  }
}

/** One IPv4 rule of the fast path: `address & mask === network`. */
interface Ipv4Rule {
  readonly network: number;
  readonly mask: number;
  readonly prefix: number;
  /** The order of its verdict among rules of its length: at equal length the earlier wins. */
  readonly rank: number;
  readonly verdict: string;
}

interface Ipv4Rules {
  /** NEVER's IPv4 ranges, checked first. */
  readonly never: readonly Ipv4Rule[];
  /** Longest prefix first; at equal length, the earlier rank first. */
  readonly rules: readonly Ipv4Rule[];
}

/** `a.b.c.d` (checked by isIP) as an unsigned 32-bit number. */
function ipv4Number(address: string): number {
  let value = 0;
  let part = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 0x2e) {
      value = value * 256 + part;
      part = 0;
    } else {
      part = part * 10 + (c - 0x30);
    }
  }
  return value * 256 + part;
}

function ipv4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
}

/** `::ffff:0:0/96`, the IPv4-mapped IPv6 addresses. */
const MAPPED = new BlockList();
MAPPED.addSubnet('::ffff:0.0.0.0', 96, 'ipv6');

/**
 * Whether the IPv6 range `cidr` holds IPv4-mapped addresses: Node's BlockList judges an IPv4
 * address against IPv6 rules as its mapped form. Ranges are aligned blocks, so a range of /96 or
 * shorter that meets the mapped block holds all of it (and `::ffff:0.0.0.0`), and a longer one
 * lies inside the /96 block of its own address.
 */
function coversMapped(cidr: string): boolean {
  const slash = cidr.lastIndexOf('/');
  const address = cidr.slice(0, slash);
  const range = new BlockList();
  range.addSubnet(address, Number(cidr.slice(slash + 1)), 'ipv6');
  return range.check('::ffff:0.0.0.0', 'ipv6') || MAPPED.check(address, 'ipv6');
}

export class AddressPolicy {
  readonly #never = new BlockList();
  readonly #neverReasons: ReadonlyArray<readonly [BlockList, string]>;
  /** Longest prefix first: the verdict of the most specific rule (ALLOW, or why not). */
  readonly #verdict: (address: string) => string | undefined;
  /**
   * The same rules for IPv4 addresses as plain numbers, longest prefix first, so an answer's
   * addresses are judged without BlockList's per-call parsing (a cold name pays it per address);
   * undefined when an IPv6 rule reaches into IPv4-mapped space (then BlockList judges, as always).
   */
  readonly #ipv4: Ipv4Rules | undefined;

  constructor(options: AddressOptions = {}) {
    this.#neverReasons = NEVER.map(([network, bits, family, reason]) => {
      const list = new BlockList();
      list.addSubnet(network, bits, family);
      this.#never.addSubnet(network, bits, family);
      return [list, reason] as const;
    });
    // Inserted in order of precedence: at equal length the first rule wins (deny over allow,
    // the user's over the defaults).
    const rules: Record<string, string> = {};
    for (const cidr of options.deny ?? []) rules[toCidr(cidr)!] ??= `in addresses.deny (${cidr})`;
    for (const cidr of options.allow ?? []) rules[toCidr(cidr)!] ??= ALLOW;
    for (const [cidr, reason] of Object.entries(DEFAULT_DENY)) rules[cidr] ??= reason;
    this.#verdict = createSubnetMatcher(rules);
    this.#ipv4 = ipv4Rules(rules);
  }

  /** Why `address` may not be an instance, or undefined when it may. */
  refuse(address: unknown): string | undefined {
    if (typeof address !== 'string') return 'not an IP address';
    const version = isIP(address);
    if (version === 0) return 'not an IP address';
    if (version === 4 && this.#ipv4 !== undefined) return this.#refuseIpv4(ipv4Number(address), this.#ipv4);
    if (address.includes('%')) return 'an IPv6 address with a zone id (it means something else on every host)';
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (this.#never.check(address, family)) {
      for (const [list, reason] of this.#neverReasons) if (list.check(address, family)) return reason;
    }
    const verdict = this.#verdict(address);
    return verdict === undefined || verdict === ALLOW ? undefined : verdict;
  }

  /** {@link refuse} for an IPv4 address, the same verdicts as the BlockList path. */
  #refuseIpv4(value: number, ipv4: Ipv4Rules): string | undefined {
    for (const rule of ipv4.never) if (((value & rule.mask) >>> 0) === rule.network) return rule.verdict;
    for (const rule of ipv4.rules) {
      if (((value & rule.mask) >>> 0) === rule.network) return rule.verdict === ALLOW ? undefined : rule.verdict;
    }
    return undefined;
  }
}

/**
 * The IPv4 rules of `rules` (CIDR → verdict, in order of precedence), longest prefix first and
 * at equal length in the order createSubnetMatcher gives them (the first rule of each verdict);
 * undefined when an IPv6 rule could match an IPv4 address. NEVER's IPv6 ranges (`::`, `ff00::/8`)
 * hold no IPv4-mapped address.
 */
function ipv4Rules(rules: Record<string, string>): Ipv4Rules | undefined {
  const parse = (cidr: string, verdict: string, rank: number): Ipv4Rule => {
    const slash = cidr.lastIndexOf('/');
    const prefix = Number(cidr.slice(slash + 1));
    const mask = ipv4Mask(prefix);
    return { network: (ipv4Number(cidr.slice(0, slash)) & mask) >>> 0, mask, prefix, rank, verdict };
  };
  const ranks = new Map<string, number>();
  const list: Ipv4Rule[] = [];
  for (const [cidr, verdict] of Object.entries(rules)) {
    const slash = cidr.lastIndexOf('/');
    const family = isIP(cidr.slice(0, slash));
    // createSubnetMatcher groups rules by length, family and verdict, in the order first seen.
    const group = `${Number(cidr.slice(slash + 1))}/${family}/${verdict}`;
    if (!ranks.has(group)) ranks.set(group, ranks.size);
    if (family === 6) {
      if (coversMapped(cidr)) return undefined;
      continue;
    }
    list.push(parse(cidr, verdict, ranks.get(group)!));
  }
  list.sort((a, b) => b.prefix - a.prefix || a.rank - b.rank);
  const never = NEVER.filter(([, , family]) => family === 'ipv4').map(([network, bits, , reason]) => parse(`${network}/${bits}`, reason, 0));
  return { never, rules: list };
}

/** A valid port: an integer from 1 to 65,535, or none (the URL's port is used then). */
export function refusePort(port: unknown): string | undefined {
  if (port === undefined) return undefined;
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65_535
    ? undefined
    : `port ${String(port)} is not an integer from 1 to 65535`;
}
