/**
 * What the real-server harnesses beside bind9 (unbound, knot, dnsmasq) share: a process started
 * in the foreground on a loopback port, its log kept for counting queries and for failing tests,
 * readiness told by a real answer, and a stop that always reaps it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { freePort, query } from './bind9.ts';

export interface DaemonSpec {
  /** For messages: 'unbound', 'knotd', 'dnsmasq'. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** A name whose answer (any RCODE) means the server is serving. */
  readonly probe: string;
}

/** A DNS server process on `address:port`, with its own temporary directory. */
export class DnsDaemon {
  readonly address: string;
  readonly port: number;
  readonly dir: string;
  readonly #spec: DaemonSpec;
  #child: ChildProcess | undefined;
  #log = '';

  constructor(spec: DaemonSpec, address: string, port: number, dir: string) {
    this.#spec = spec;
    this.address = address;
    this.port = port;
    this.dir = dir;
  }

  /** `address:port`, as `dns.servers` takes it. */
  get server(): string {
    return `${this.address}:${this.port}`;
  }

  /** Everything the process printed since it (re)started. */
  get log(): string {
    return this.#log;
  }

  /** Starts the process and resolves once it answers; rejects (and reaps it) if it exits or stays silent. */
  async start(): Promise<void> {
    const child = spawn(this.#spec.command, [...this.#spec.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#log = '';
    const collect = (chunk: string): void => {
      this.#log += chunk;
    };
    child.stdout?.setEncoding('utf8').on('data', collect);
    child.stderr?.setEncoding('utf8').on('data', collect);
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code) => reject(new Error(`${this.#spec.name} exited with ${code}:\n${this.#log}`)));
      child.once('error', reject);
    });
    exited.catch(() => {});
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await Promise.race([query(this, this.#spec.probe, 'SOA', 200), exited]);
        return;
      } catch (error) {
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          await this.stop();
          throw error;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops the process (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGCONT');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Escapes a name for a RegExp. */
export function escapeName(name: string): string {
  return name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Starts the server `make` builds for a free port on `address` (up to five ports, as another
 * test may take one between the check and the bind); removes `dir` if none worked.
 */
export async function startOnFreePort<T extends DnsDaemon>(
  name: string,
  address: string,
  dir: string,
  make: (port: number) => Promise<T>,
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = await make(await freePort(address));
    try {
      await server.start();
      return server;
    } catch (error) {
      lastError = error;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`${name} did not start: ${String(lastError)}`);
}
