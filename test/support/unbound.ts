/**
 * A real unbound on a loopback port, for tests: a caching recursive resolver whose test zones are
 * stub zones pointing at a loopback authority (bind9 or knot), counting TTLs down as production
 * resolvers do; optionally serving expired answers (RFC 8767) and marking them with Extended DNS
 * Error 3.
 *
 * It can never send a packet off the machine: every zone it knows is a stub or forward zone to a
 * loopback address ("." included, so it never needs the root servers), its root hints name only
 * a loopback address anyway, outgoing queries leave from 127.0.0.1 only, DNSSEC (and so trust
 * anchor priming) is off, and every path in its config is absolute, so it never falls back to the
 * packaged config.
 *
 * Usage:
 *   const unbound = await Unbound.start({ upstream: bind.server, zones: ['test.local'] });
 *   unbound.server                          // '127.0.0.1:PORT', for dns.servers
 *   unbound.queries('web.test.local', 'A')  // queries clients sent it
 *   await unbound.close();
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsDaemon, escapeName, startOnFreePort } from '../fixtures/dns-daemon.ts';

const UNBOUND = process.env.SIGNPOST_UNBOUND ?? '/usr/sbin/unbound';

export interface UnboundOptions {
  /** The loopback authority, `address:port`, every zone is a stub of. */
  upstream: string;
  /** Zones served by `upstream`. */
  zones: string[];
  /**
   * RFC 8767: answer from expired cache entries at once (TTL 30) while resolving in the
   * background, marked with EDE 3 (Stale Answer). @default false
   */
  serveExpired?: boolean;
  /** With `serveExpired`, mark expired answers with EDE 3 (`ede: yes`, `ede-serve-expired: yes`). @default true */
  staleEde?: boolean;
  /** @default '127.0.0.1' */
  address?: string;
}

export class Unbound extends DnsDaemon {
  static async start(options: UnboundOptions): Promise<Unbound> {
    const address = options.address ?? '127.0.0.1';
    const dir = await mkdtemp(join(tmpdir(), 'signpost-unbound-'));
    const [upstreamAddress, upstreamPort] = options.upstream.split(':');
    if (upstreamAddress === undefined || !upstreamAddress.startsWith('127.')) {
      throw new Error(`unbound's upstream must be on 127.0.0.0/8, not ${options.upstream}`);
    }
    const upstream = `${upstreamAddress}@${upstreamPort ?? '53'}`;
    // Root hints that name only a loopback address: even a forgotten zone cannot prime the real roots.
    await writeFile(join(dir, 'root.hints'), '.  3600000 IN NS a.root.invalid.\na.root.invalid. 3600000 IN A 127.0.0.1\n');
    return startOnFreePort('unbound', address, dir, async (port) => {
      const config = [
        'server:',
        `  directory: "${dir}"`,
        '  chroot: ""',
        '  username: ""',
        `  pidfile: "${join(dir, 'unbound.pid')}"`,
        '  use-syslog: no',
        '  logfile: ""',
        '  log-queries: yes',
        '  verbosity: 1',
        `  interface: ${address}@${port}`,
        `  port: ${port}`,
        `  outgoing-interface: ${address}`,
        '  do-ip4: yes',
        '  do-ip6: no',
        '  do-udp: yes',
        '  do-tcp: yes',
        '  access-control: 127.0.0.0/8 allow',
        '  do-not-query-localhost: no',
        `  root-hints: "${join(dir, 'root.hints')}"`,
        '  module-config: "iterator"',
        '  num-threads: 1',
        '  so-reuseport: no',
        '  qname-minimisation: no',
        '  prefetch: no',
        '  minimal-responses: yes',
        '  infra-host-ttl: 5',
        '  edns-buffer-size: 1232',
        ...(options.serveExpired
          ? [
              '  serve-expired: yes',
              '  serve-expired-ttl: 0',
              '  serve-expired-reply-ttl: 30',
              ...(options.staleEde === false ? [] : ['  ede: yes', '  ede-serve-expired: yes']),
            ]
          : []),
        // RFC 6761 names (test., invalid., ...) are answered NXDOMAIN by unbound itself unless freed.
        ...options.zones.map((zone) => `  local-zone: "${zone.split('.').at(-1)}." nodefault`),
        'remote-control:',
        '  control-enable: no',
        ...options.zones.flatMap((zone) => ['stub-zone:', `  name: "${zone}"`, `  stub-addr: ${upstream}`]),
        // Everything else goes to the loopback authority too (which refuses it): never to the roots.
        'forward-zone:',
        '  name: "."',
        `  forward-addr: ${upstream}`,
        '',
      ].join('\n');
      const file = join(dir, 'unbound.conf');
      await writeFile(file, config);
      return new Unbound({ name: 'unbound', command: UNBOUND, args: ['-d', '-c', file], probe: options.zones[0] ?? '.' }, address, port, dir);
    });
  }

  /** How many queries for `name` (and `type`) clients have sent since (re)start. */
  queries(name: string, type?: string): number {
    const pattern = new RegExp(`info: \\S+ ${escapeName(name)}\\. ${type ?? '\\S+'} IN`, 'gi');
    return this.log.match(pattern)?.length ?? 0;
  }
}
