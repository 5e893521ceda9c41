/**
 * One scenario × real server matrix: every scenario runs against bind9 and knot as authorities
 * (knot trims the additional section of large answers), unbound as a caching resolver (and with
 * serve-expired), and dnsmasq as a caching forwarder in front of unbound, all on loopback. What signpost resolves is
 * compared with what `dig`, a reference stub resolver, gets from the same server.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Discovery } from '../../src/discovery.ts';
import type { DiscoveryOptions } from '../../src/options.ts';
import type { Instance } from '../../src/types.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Dnsmasq } from '../support/dnsmasq.ts';
import { Knot } from '../support/knot.ts';
import { Unbound } from '../support/unbound.ts';

const execFileAsync = promisify(execFile);

/** Targets of the large SRV set: its additional section cannot hold every address. */
const BIG_TARGETS = 30;

function zones(): Record<string, string> {
  const big: string[] = [];
  for (let i = 1; i <= BIG_TARGETS; i++) {
    big.push(`svc 30 IN SRV 0 1 ${8000 + i} t${i}.svc.big.test.`, `t${i}.svc 30 IN A 127.0.3.${i}`, `t${i}.svc 30 IN AAAA ::1`);
  }
  return {
    'm.test': [
      'web 30 IN A 127.0.0.2',
      'web 30 IN A 127.0.0.3',
      'web 30 IN AAAA ::1',
      'v4 30 IN A 127.0.0.4',
      'empty 30 IN TXT "no addresses"',
      'alias 30 IN CNAME api.other.test.',
      'srvalias 30 IN CNAME _http._tcp.web.m.test.',
      '_http._tcp.web 30 IN SRV 0 1 8080 web.m.test.',
    ].join('\n'),
    'other.test': 'api 30 IN A 127.0.0.9',
    'big.test': big.join('\n'),
  };
}

interface Server {
  readonly kind: string;
  readonly address: string;
  readonly port: number;
  readonly server: string;
}

let bind: Bind9;
let knot: Knot;
let unbound: Unbound;
let unboundStale: Unbound;
let dnsmasq: Dnsmasq;
const servers: Server[] = [];

beforeAll(async () => {
  [bind, knot] = await Promise.all([Bind9.start({ zones: zones(), querylog: false }), Knot.start({ zones: zones() })]);
  const names = Object.keys(zones());
  [unbound, unboundStale] = await Promise.all([
    Unbound.start({ upstream: bind.server, zones: names }),
    Unbound.start({ upstream: bind.server, zones: names, serveExpired: true }),
  ]);
  // As in Docker: dnsmasq forwards to the host's recursive resolver. (Straight to an authority
  // that does not chase CNAMEs, it would cache a CNAME's target as having no address.)
  dnsmasq = await Dnsmasq.start({ upstream: unbound.server, probe: 'm.test' });
  servers.push(
    { kind: 'bind9 (authoritative)', address: bind.address, port: bind.port, server: bind.server },
    { kind: 'knot (authoritative)', address: knot.address, port: knot.port, server: knot.server },
    { kind: 'unbound (caching)', address: unbound.address, port: unbound.port, server: unbound.server },
    { kind: 'unbound (serve-expired)', address: unboundStale.address, port: unboundStale.port, server: unboundStale.server },
    { kind: 'dnsmasq (forwarder)', address: dnsmasq.address, port: dnsmasq.port, server: dnsmasq.server },
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([unbound?.close(), unboundStale?.close(), dnsmasq?.close(), knot?.close(), bind?.close()]);
});

function discovery(server: Server, options: DiscoveryOptions = {}): Discovery {
  return new Discovery({ dns: { servers: [server.server], timeout: 1000, tries: 2 }, ...options });
}

/**
 * The instances of `name` once `count` are in: an address family that answers after the 50 ms
 * resolution delay (a loaded machine) joins the set a little later, which is what a caller sees.
 */
async function settled(d: Discovery, name: string, count: number): Promise<readonly Instance[]> {
  await d.resolve(name);
  const deadline = performance.now() + 5000;
  while (d.instancesSync(name).length < count && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return d.instancesSync(name);
}

function addresses(instances: readonly Instance[]): string[] {
  return [...new Set(instances.map((i) => i.address))].sort();
}

function endpoints(instances: readonly Instance[]): string[] {
  return instances.map((i) => `${i.address.includes(':') ? `[${i.address}]` : i.address}:${i.port}`).sort();
}

/** What dig (bind9-dnsutils) gets from the server: the data of the records of `type`. */
async function dig(server: Server, name: string, type: string): Promise<string[]> {
  const { stdout } = await execFileAsync('dig', ['+short', '+tries=2', '+time=2', `@${server.address}`, '-p', String(server.port), name, type]);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.endsWith('.'));
}


describe.each(['bind9 (authoritative)', 'knot (authoritative)', 'unbound (caching)', 'unbound (serve-expired)', 'dnsmasq (forwarder)'])(
  'against %s',
  (kind) => {
    const server = (): Server => servers.find((s) => s.kind === kind)!;

    test('a dual-stack name: the A and AAAA sets dig sees, nothing more or less', async () => {
      const d = discovery(server());
      try {
        const expected = [...(await dig(server(), 'web.m.test', 'A')), ...(await dig(server(), 'web.m.test', 'AAAA'))].sort();
        expect(expected).toEqual(['127.0.0.2', '127.0.0.3', '::1']);
        expect(addresses(await settled(d, 'web.m.test', 3))).toEqual(expected);
      } finally {
        await d.close();
      }
    });

    test(`SRV with ${BIG_TARGETS} dual-stack targets: every address of every target, whatever fitted in the additional section`, async () => {
      const d = discovery(server(), { services: { 'svc.big.test': { via: 'srv' } } });
      try {
        const instances = await settled(d, 'svc.big.test', 2 * BIG_TARGETS);
        const expected: string[] = [];
        for (let i = 1; i <= BIG_TARGETS; i++) expected.push(`127.0.3.${i}:${8000 + i}`, `[::1]:${8000 + i}`);
        expect(endpoints(instances)).toEqual(expected.sort());
      } finally {
        await d.close();
      }
    });

    test('a CNAME into another zone is followed (the authority does not chase it; signpost asks again), as dig sees its target', async () => {
      const d = discovery(server());
      try {
        expect(addresses(await d.resolve('alias.m.test'))).toEqual(['127.0.0.9']);
        expect(await dig(server(), 'api.other.test', 'A')).toEqual(['127.0.0.9']);
      } finally {
        await d.close();
      }
    });

    test('an SRV name that is a CNAME', async () => {
      const d = discovery(server(), { services: { 'srvalias.m.test': { via: 'srv' } } });
      try {
        expect(endpoints(await settled(d, 'srvalias.m.test', 3))).toEqual(['127.0.0.2:8080', '127.0.0.3:8080', '[::1]:8080']);
      } finally {
        await d.close();
      }
    });

    test('a short name through dns.search, matched by a namespace rule as expanded', async () => {
      const d = discovery(server(), { namespaces: { 'm.test': { via: 'dns', port: 8081 } } });
      const searching = new Discovery({
        dns: { servers: [server().server], timeout: 1000, tries: 2, search: ['other.test', 'm.test'] },
        namespaces: { 'm.test': { via: 'dns', port: 8081 } },
      });
      try {
        expect(searching.handles('web')).toBe(true);
        const instances = await settled(searching, 'web', 3);
        expect(endpoints(instances)).toEqual(endpoints(await settled(d, 'web.m.test', 3)));
        expect(instances.every((i) => i.port === 8081)).toBe(true);
      } finally {
        await Promise.all([d.close(), searching.close()]);
      }
    });

    test('0x20: the server echoes the randomized case of questions, so dns.randomizeCase works with it', async () => {
      const d = new Discovery({ dns: { servers: [server().server], timeout: 1000, tries: 2, randomizeCase: true } });
      try {
        expect(addresses(await settled(d, 'web.m.test', 3))).toEqual(['127.0.0.2', '127.0.0.3', '::1']);
        expect(addresses(await d.resolve('alias.m.test'))).toEqual(['127.0.0.9']);
      } finally {
        await d.close();
      }
    });

    test('NXDOMAIN is SIGNPOST_ERR_NOT_FOUND, NODATA is SIGNPOST_ERR_NO_INSTANCES', async () => {
      const d = discovery(server());
      try {
        await expect(d.resolve('nope.m.test')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NOT_FOUND' });
        await expect(d.resolve('empty.m.test')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_NO_INSTANCES' });
      } finally {
        await d.close();
      }
    });
  },
);
