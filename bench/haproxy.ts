/**
 * A local HAProxy in front of the bench's three HTTP instances: the load-balancer hop signpost
 * replaces. Used only when `haproxy` is on the PATH (Debian's package); the bench never installs
 * it. HTTP mode, keep-alive on both sides, round-robin, no logging.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HaproxyHandle {
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  /** CPU seconds (user + system) the proxy used so far. */
  cpuSeconds(): number;
  close(): Promise<void>;
}

/** The path of `haproxy`, or undefined when it is not installed. */
export function findHaproxy(): string | undefined {
  for (const candidate of [process.env.SIGNPOST_HAPROXY, 'haproxy', '/usr/sbin/haproxy']) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

const CLOCK_TICKS = 100;

function cpuOf(pid: number): number {
  // /proc/<pid>/stat: utime and stime (fields 14 and 15) in clock ticks, summed over threads.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

async function waitForPort(port: number, deadline: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A port free on 127.0.0.1 a moment ago (the kernel's pick, so it clashes with nothing it gave out). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts HAProxy on 127.0.0.1 over the three instances (`addresses`, one `instancePort`), on a
 * free port; when another process takes that port first, again on another.
 */
export async function startHaproxy(binary: string, addresses: readonly string[], instancePort: number): Promise<HaproxyHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(binary, await freePort(), addresses, instancePort);
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}

async function startOn(binary: string, port: number, addresses: readonly string[], instancePort: number): Promise<HaproxyHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'signpost-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 4000',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  http-reuse always',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend bench',
      `  bind 127.0.0.1:${port}`,
      '  default_backend instances',
      'backend instances',
      '  balance roundrobin',
      ...addresses.map((address, i) => `  server i${i} ${address}:${instancePort}`),
      '',
    ].join('\n'),
  );
  const version = execFileSync(binary, ['-v'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  execFileSync(binary, ['-c', '-q', '-f', config]);
  const child: ChildProcess = spawn(binary, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  let gone = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      gone = true;
      resolve();
    }),
  );
  try {
    await Promise.race([waitForPort(port, Date.now() + 10_000), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  if (gone) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`haproxy exited at start (port ${port} taken?)`);
  }
  return {
    port,
    pid: child.pid!,
    version,
    cpuSeconds: () => cpuOf(child.pid!),
    async close() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
