/**
 * Runs the `signpost` CLI in this process (`runMain`: its `main` with in-memory output), or the
 * built one (dist/cli/main.js, as `npm test` builds it) as a child process (`runCli`, for what
 * only a process shows: the bin, signals, exit codes), and starts HTTP instances on 127.0.0.x
 * for it to check.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import type { TlsMaterial } from '../fixtures/fleet.ts';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const SRC = fileURLToPath(new URL('../../src/cli/', import.meta.url));

/** Fails with a clear message when dist/cli is missing or older than src/cli. */
export function assertBuilt(): void {
  let built: number;
  try {
    built = statSync(CLI).mtimeMs;
  } catch {
    throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  }
  for (const file of readdirSync(SRC)) {
    if (statSync(SRC + file).mtimeMs > built) throw new Error(`src/cli/${file} is newer than dist/cli: run \`npm run build\` first`);
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment every CLI run gets: static AWS credentials, no metadata endpoints. */
export const CLI_ENV: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'AKIDSIGNPOSTTEST',
  AWS_SECRET_ACCESS_KEY: 'signpost-test-secret',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};

/** Gives this process the environment every CLI run gets (call in beforeAll; undone by vi.unstubAllEnvs). */
export function stubCliEnv(): void {
  for (const [name, value] of Object.entries(CLI_ENV)) vi.stubEnv(name, value);
  vi.stubEnv('SIGNPOST_STATIC', undefined);
  vi.stubEnv('SIGNPOST_ZONE', undefined);
}

export interface MainResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one command line through the CLI's `main`, in this process. `onStdout` sees the output
 * so far as it comes, and may `stop()` the command as Ctrl-C would.
 */
export async function runMain(
  args: readonly string[],
  options: { onStdout?: (soFar: string, stop: () => void) => void; timeout?: number } = {},
): Promise<MainResult> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  let stdout = '';
  let stderr = '';
  // A command that never ends fails the test instead of hanging it.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, options.timeout ?? 20_000);
  try {
    const code = await main(args, {
      stdout: {
        write: (text: string) => {
          stdout += text;
          options.onStdout?.(stdout, stop);
          return true;
        },
      },
      stderr: {
        write: (text: string) => {
          stderr += text;
          return true;
        },
      },
      signal: controller.signal,
    });
    if (timedOut) throw new Error(`signpost ${args.join(' ')} did not end within ${options.timeout ?? 20_000} ms:\n${stdout}${stderr}`);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

export function spawnCli(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  const { SIGNPOST_STATIC: _s, SIGNPOST_ZONE: _z, ...parent } = process.env;
  return spawn(process.execPath, [CLI, ...args], {
    env: { ...parent, ...CLI_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the CLI to its end. `onStdout` sees the output so far, as it comes. */
export function runCli(
  args: readonly string[],
  options: { env?: Record<string, string>; onStdout?: (soFar: string, child: ChildProcess) => void } = {},
): Promise<CliResult> {
  const child = spawnCli(args, options.env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    options.onStdout?.(stdout, child);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** HTTP servers on several loopback addresses, all on one port (as A records need). */
export interface Fleet {
  readonly port: number;
  readonly servers: Map<string, Server>;
  close(): Promise<void>;
}

function listen(server: Server, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, address, () => {
      server.removeListener('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** HTTP servers, or HTTPS ones with `tls`, on several loopback addresses and one port. */
export async function startFleet(handlers: Record<string, RequestListener>, options: { tls?: TlsMaterial } = {}): Promise<Fleet> {
  const addresses = Object.keys(handlers);
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers = new Map<string, Server>();
    let port = 0;
    try {
      for (const address of addresses) {
        const server = options.tls ? createHttpsServer(options.tls, handlers[address]!) : createServer(handlers[address]!);
        server.keepAliveTimeout = 100;
        servers.set(address, server);
        port = await listen(server, address, port);
      }
      return { port, servers, close: () => closeAll([...servers.values()]) };
    } catch {
      await closeAll([...servers.values()]);
    }
  }
  throw new Error('no port free on every address');
}

export async function closeAll(servers: readonly Server[]): Promise<void> {
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
}

export const ok: RequestListener = (_request, response) => {
  response.end('ok');
};

export const status =
  (code: number): RequestListener =>
  (_request, response) => {
    response.statusCode = code;
    response.end(`status ${code}`);
  };

/** Accepts the connection, reads the request, never answers. */
export const hang: RequestListener = () => {};
