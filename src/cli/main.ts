#!/usr/bin/env node
/**
 * `signpost`: debug service discovery from the shell.
 *
 *   signpost resolve <name>        what the registry answers now: instances, ports, zones, TTL
 *   signpost watch <name>          instances joining and leaving, live
 *   signpost check <config.json>   a connectivity matrix with a diagnosis for each failure
 *
 * Exit codes: 0 ok, 1 a failure (lookup or check), 2 bad arguments.
 */
// First: on an unsupported Node it says so, before undici is evaluated.
import './assert-node.ts';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type CliIo } from './args.ts';
import { runCheck } from './check.ts';
import { oneLine } from './format.ts';
import { runResolve } from './resolve.ts';
import { runWatch } from './watch.ts';

export const USAGE = 'usage: signpost <resolve|watch|check> ... (signpost <command> --help for its flags)';

const HELP = `${USAGE}

Client-side service discovery, debugged from the shell: what the registry says, who joins and
leaves, and which instance is unreachable why.

  signpost resolve <name> [--via dns|srv|cloudmap] [--server ip:port]      the instances the registry gives now, with TTL and source
  signpost watch <name> [--interval ms] [--changes N] [--polls N]          instances joining and leaving as it happens
  signpost check <config.json> [--path /health] [--scheme http|https]      resolve, connect and call every instance; diagnose failures

signpost <command> --help describes every flag of a command.
Exit codes: 0 ok, 1 a lookup or check failed, 2 bad arguments.
`;

const COMMANDS: Record<string, (argv: readonly string[], io: CliIo) => Promise<number>> = {
  resolve: runResolve,
  watch: runWatch,
  check: runCheck,
};

/** Runs one command line; never throws, returns the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout).write(command === undefined ? `${USAGE}\n` : HELP);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    io.stderr.write(`signpost: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  try {
    return await run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`signpost ${command}: ${error.message}\n${error.usage}\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`signpost ${command}: ${oneLine(error)}\n`);
    if (process.env.SIGNPOST_DEBUG) io.stderr.write(`${(error as Error).stack ?? ''}\n`);
    return EXIT_FAILURE;
  }
}

function isEntry(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  const here = fileURLToPath(import.meta.url);
  // Run as a bin the path is a symlink (node_modules/.bin/signpost): compare real paths.
  try {
    return here === entry || here === realpathSync(entry);
  } catch {
    return false;
  }
}

if (isEntry()) {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // signpost's own timers are unref'd (a library must not hold a process open); a command that
  // is waiting on them must, or Node would exit mid-await.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: controller.signal });
  clearInterval(keepAlive);
  process.removeListener('SIGINT', stop);
  process.removeListener('SIGTERM', stop);
  process.exitCode = code;
}
