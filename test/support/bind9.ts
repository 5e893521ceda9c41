/**
 * A real bind9 (`named`) on a loopback port, for tests: zones from text, live changes through
 * `nsupdate`, and the failures a real server makes (stopped: connection refused / silence,
 * paused with SIGSTOP: timeouts, a zone that fails to load: SERVFAIL, a zone it does not serve:
 * REFUSED).
 *
 * Usage:
 *   const dns = await Bind9.start({ zones: { 'test.local': 'orders IN A 127.0.0.2' } });
 *   dns.server                   // '127.0.0.1:PORT', for `dns.servers`
 *   await dns.update(['update add web.test.local 1 A 127.0.0.3']);
 *   await dns.stop(); await dns.restart(); await dns.pause(); dns.resume();
 *   await dns.close();
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';

const execFileAsync = promisify(execFile);

export interface Bind9Options {
  /** Zone name → records (zone-file lines, relative names allowed). SOA/NS are added. */
  zones: Record<string, string>;
  /** Zones that exist in the config but fail to load: every query in them gets SERVFAIL. */
  brokenZones?: string[];
  /** The SOA minimum (negative-caching TTL), in seconds. @default 1 */
  negativeTtl?: number;
  /** The loopback address to listen on. @default '127.0.0.1' */
  address?: string;
  /** Log every query (for `queries()`); off for long runs that don't count. @default true */
  querylog?: boolean;
}

const NAMED = process.env.SIGNPOST_NAMED ?? '/usr/sbin/named';
const NSUPDATE = process.env.SIGNPOST_NSUPDATE ?? 'nsupdate';

/** A port free for both UDP and TCP on `address` (named listens on both; nsupdate -v uses TCP). */
export async function freePort(address: string): Promise<number> {
  for (;;) {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => resolve());
    });
    const { port } = socket.address();
    const tcp = createServer();
    const tcpFree = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, address, () => resolve(true));
    });
    await new Promise<void>((resolve) => (tcpFree ? tcp.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    if (tcpFree) return port;
  }
}

/** One UDP query to the server; resolves with the answer or rejects after `timeout`. */
export async function query(
  server: { address: string; port: number },
  name: string,
  type: dnsPacket.RecordType,
  timeout = 1000,
): Promise<dnsPacket.Packet> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<dnsPacket.Packet>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${server.address}:${server.port}`)), timeout);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('message', (message) => {
        clearTimeout(timer);
        resolve(dnsPacket.decode(message));
      });
      const id = Math.floor(Math.random() * 65_535);
      socket.send(
        dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type, name, class: 'IN' }] }),
        server.port,
        server.address,
      );
    });
  } finally {
    socket.close();
  }
}

export class Bind9 {
  readonly address: string;
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;
  #log = '';

  private constructor(address: string, port: number, dir: string) {
    this.address = address;
    this.port = port;
    this.dir = dir;
  }

  /** `address:port`, as `dns.servers` takes it. */
  get server(): string {
    return `${this.address}:${this.port}`;
  }

  /** What named printed, for failing tests. */
  get log(): string {
    return this.#log;
  }

  static async start(options: Bind9Options): Promise<Bind9> {
    const address = options.address ?? '127.0.0.1';
    const dir = await mkdtemp(join(tmpdir(), 'signpost-bind9-'));
    const negativeTtl = options.negativeTtl ?? 1;
    const zoneStanzas: string[] = [];
    for (const [zone, records] of Object.entries(options.zones)) {
      const file = join(dir, `${zone}.zone`);
      await writeFile(
        file,
        [
          `$ORIGIN ${zone}.`,
          `$TTL 60`,
          `@ IN SOA ns.${zone}. admin.${zone}. 1 3600 600 86400 ${negativeTtl}`,
          `@ IN NS ns.${zone}.`,
          `ns IN A ${address}`,
          records,
          '',
        ].join('\n'),
      );
      zoneStanzas.push(
        `zone "${zone}" { type primary; file "${file}"; allow-update { 127.0.0.0/8; }; };`,
      );
    }
    for (const zone of options.brokenZones ?? []) {
      const file = join(dir, `${zone}.zone`);
      await writeFile(file, 'this is not a zone file\n');
      zoneStanzas.push(`zone "${zone}" { type primary; file "${file}"; };`);
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort(address);
      await writeFile(
        join(dir, 'named.conf'),
        [
          'options {',
          `  directory "${dir}";`,
          `  pid-file "${join(dir, 'named.pid')}";`,
          `  session-keyfile "${join(dir, 'session.key')}";`,
          `  listen-on port ${port} { ${address}; };`,
          '  listen-on-v6 { none; };',
          '  recursion no;',
          '  allow-query { any; };',
          '  dnssec-validation no;',
          '  notify no;',
          '  minimal-responses no;',
          `  querylog ${options.querylog === false ? 'no' : 'yes'};`,
          '};',
          ...zoneStanzas,
          '',
        ].join('\n'),
      );
      const server = new Bind9(address, port, dir);
      try {
        await server.#spawn();
        return server;
      } catch (error) {
        lastError = error;
        await server.stop();
      }
    }
    await rm(dir, { recursive: true, force: true });
    throw new Error(`bind9 did not start: ${String(lastError)}`);
  }

  async #spawn(): Promise<void> {
    const child = spawn(NAMED, ['-g', '-c', join(this.dir, 'named.conf'), '-n', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#log += chunk;
    });
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code) => reject(new Error(`named exited with ${code}:\n${this.#log}`)));
      child.once('error', reject);
    });
    exited.catch(() => {});
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        // Any answer (REFUSED for the root, here) means named is serving.
        await Promise.race([query(this, '.', 'SOA', 200), exited]);
        return;
      } catch (error) {
        if (child.exitCode !== null || Date.now() > deadline) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** How many queries for `name` (and `type`, if given) named has logged since it started. */
  queries(name: string, type?: string): number {
    const pattern = new RegExp(
      `query: ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} IN ${type ?? '\\S+'} `,
      'gi',
    );
    return this.#log.match(pattern)?.length ?? 0;
  }

  /** Sends one nsupdate batch, e.g. `['update add a.test.local 1 A 127.0.0.2']`. */
  async update(lines: string[]): Promise<void> {
    const script = [`server ${this.address} ${this.port}`, ...lines, 'send', ''].join('\n');
    for (let attempt = 1; ; attempt++) {
      try {
        const child = execFileAsync(NSUPDATE, ['-v'], { timeout: 10_000 });
        child.child.stdin?.end(script);
        await child;
        return;
      } catch (error) {
        // named may still be settling its TCP listener right after a (re)start.
        if (attempt >= 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }

  /** Stops named: queries then meet a closed port (UDP: ICMP unreachable). */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null) return;
    // SIGSTOPped processes must be continued before they can act on SIGTERM.
    child.kill('SIGCONT');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Starts named again on the same port with the same zones (and the changes made since). */
  async restart(): Promise<void> {
    await this.stop();
    this.#log = '';
    await this.#spawn();
  }

  /** Freezes named: queries time out. Resolves once every thread has stopped. */
  async pause(): Promise<void> {
    const child = this.#child;
    if (!child?.pid) return;
    child.kill('SIGSTOP');
    // Delivery to a multi-threaded process is asynchronous: wait for the 'T' (stopped) state.
    for (let i = 0; i < 100; i++) {
      const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8').catch(() => '');
      if (/\) T /.test(stat)) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
