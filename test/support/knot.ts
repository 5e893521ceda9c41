/**
 * A real Knot DNS (`knotd`) on a loopback port, for tests: an authoritative-only server whose
 * answers trim the additional section to what fits the client's EDNS0 buffer (1,232 bytes), as
 * large SRV answers from real authorities do. It has no remotes (no transfers, no NOTIFY), so it
 * only ever answers on loopback.
 *
 * Usage:
 *   const knot = await Knot.start({ zones: { 'big.local': 'web 30 IN SRV 0 1 8080 i-1.web.big.local.\n...' } });
 *   knot.server   // '127.0.0.1:PORT'
 *   await knot.close();
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsDaemon, startOnFreePort } from '../fixtures/dns-daemon.ts';

const KNOTD = process.env.SIGNPOST_KNOTD ?? '/usr/sbin/knotd';

export interface KnotOptions {
  /** Zone name → records (zone-file lines, relative names allowed). SOA/NS are added. */
  zones: Record<string, string>;
  /** @default '127.0.0.1' */
  address?: string;
}

export class Knot extends DnsDaemon {
  static async start(options: KnotOptions): Promise<Knot> {
    const address = options.address ?? '127.0.0.1';
    const dir = await mkdtemp(join(tmpdir(), 'signpost-knot-'));
    const zoneStanzas: string[] = [];
    for (const [zone, records] of Object.entries(options.zones)) {
      const file = join(dir, `${zone}.zone`);
      await writeFile(
        file,
        [`$ORIGIN ${zone}.`, '$TTL 60', `@ IN SOA ns.${zone}. admin.${zone}. 1 3600 600 86400 1`, `@ IN NS ns.${zone}.`, `ns IN A ${address}`, records, ''].join('\n'),
      );
      zoneStanzas.push(`  - domain: ${zone}`, `    file: "${file}"`);
    }
    return startOnFreePort('knotd', address, dir, async (port) => {
      const file = join(dir, 'knot.conf');
      await writeFile(
        file,
        [
          'server:',
          `  rundir: "${dir}"`,
          `  listen: ${address}@${port}`,
          '  udp-max-payload: 1232',
          'log:',
          '  - target: stderr',
          '    any: info',
          'database:',
          `  storage: "${dir}"`,
          'control:',
          `  listen: "${join(dir, 'knot.sock')}"`,
          'template:',
          '  - id: default',
          `    storage: "${dir}"`,
          '    semantic-checks: off',
          '    zonefile-sync: -1',
          '    zonefile-load: whole',
          '    journal-content: none',
          'zone:',
          ...zoneStanzas,
          '',
        ].join('\n'),
      );
      const probe = Object.keys(options.zones)[0] ?? '.';
      return new Knot({ name: 'knotd', command: KNOTD, args: ['-c', file], probe }, address, port, dir);
    });
  }
}
