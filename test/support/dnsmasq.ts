/**
 * A real dnsmasq on a loopback port, for tests: a caching forwarder (as in Docker and on many
 * hosts) to a loopback authority, counting TTLs down.
 *
 * It can never send a packet off the machine: no resolv.conf (`--no-resolv`), no system config
 * file (`--conf-file=/dev/null`), no /etc/hosts, and its only upstream is the loopback server it
 * is given.
 *
 * Usage:
 *   const dnsmasq = await Dnsmasq.start({ upstream: bind.server });
 *   dnsmasq.server                          // '127.0.0.1:PORT'
 *   dnsmasq.queries('web.test.local', 'A')  // queries clients sent it
 *   await dnsmasq.close();
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsDaemon, escapeName, startOnFreePort } from '../fixtures/dns-daemon.ts';

const DNSMASQ = process.env.SIGNPOST_DNSMASQ ?? '/usr/sbin/dnsmasq';

export interface DnsmasqOptions {
  /** The loopback server, `address:port`, every query is forwarded to. */
  upstream: string;
  /** A zone of `upstream`, asked to tell when dnsmasq is up. */
  probe: string;
  /** Zones forwarded elsewhere (also on loopback): zone → `address:port`. */
  domains?: Record<string, string>;
  /** @default '127.0.0.1' */
  address?: string;
}

export class Dnsmasq extends DnsDaemon {
  static async start(options: DnsmasqOptions): Promise<Dnsmasq> {
    const address = options.address ?? '127.0.0.1';
    const [upstreamAddress, upstreamPort] = options.upstream.split(':');
    if (upstreamAddress === undefined || !upstreamAddress.startsWith('127.')) {
      throw new Error(`dnsmasq's upstream must be on 127.0.0.0/8, not ${options.upstream}`);
    }
    const domainServers = Object.entries(options.domains ?? {}).map(([zone, server]) => {
      const [address, port] = server.split(':');
      if (address === undefined || !address.startsWith('127.')) throw new Error(`dnsmasq's upstreams must be on 127.0.0.0/8, not ${server}`);
      return `--server=/${zone}/${address}#${port ?? '53'}`;
    });
    const dir = await mkdtemp(join(tmpdir(), 'signpost-dnsmasq-'));
    return startOnFreePort('dnsmasq', address, dir, async (port) => {
      const args = [
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        `--server=${upstreamAddress}#${upstreamPort ?? '53'}`,
        ...domainServers,
        `--listen-address=${address}`,
        '--bind-interfaces',
        `--port=${port}`,
        `--pid-file=${join(dir, 'dnsmasq.pid')}`,
        '--user=root',
        '--log-queries',
        '--log-facility=-',
        '--cache-size=1000',
        '--edns-packet-max=1232',
      ];
      return new Dnsmasq({ name: 'dnsmasq', command: DNSMASQ, args, probe: options.probe }, address, port, dir);
    });
  }

  /** How many queries for `name` (and `type`) clients have sent since (re)start. */
  queries(name: string, type?: string): number {
    const pattern = new RegExp(`query\\[${type ?? '\\S+'}\\] ${escapeName(name)} from`, 'gi');
    return this.log.match(pattern)?.length ?? 0;
  }
}
