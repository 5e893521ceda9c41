/**
 * `signpost watch <name>`: the instances of a name joining and leaving as a signpost client
 * sees them (through Discovery, its cache and onChange), re-asking the registry at least every
 * `--interval`.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Discovery } from '../discovery.ts';
import { SignpostError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import type { Instance } from '../types.ts';
import {
  EXIT_FAILURE,
  EXIT_OK,
  explainFailure,
  nameArgument,
  parse,
  parseInteger,
  SOURCE_OPTIONS,
  sourceFromFlags,
  type CliIo,
} from './args.ts';
import { clockTime, describeInstance, instanceJson, oneLine } from './format.ts';
import { openSource } from './resolve.ts';

export const WATCH_USAGE =
  'usage: signpost watch <name> [--via dns|srv|cloudmap] [--server host:port]... [--srv NAME] [--port N] ' +
  '[--region R] [--endpoint URL] [--timeout ms] [--interval ms] [--count N] [--json]';

export const DEFAULT_WATCH_INTERVAL_MS = 2000;

const WATCH_OPTIONS = {
  ...SOURCE_OPTIONS,
  interval: { type: 'string' },
  count: { type: 'string' },
} as const;

export async function runWatch(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, WATCH_OPTIONS, WATCH_USAGE);
  if (values.help) {
    io.stdout.write(`${WATCH_USAGE}\n`);
    return EXIT_OK;
  }
  const name = nameArgument(positionals, WATCH_USAGE);
  const source = sourceFromFlags(name, values, WATCH_USAGE);
  const interval = parseInteger('interval', values.interval, 100, 3_600_000, WATCH_USAGE) ?? DEFAULT_WATCH_INTERVAL_MS;
  const count = parseInteger('count', values.count, 1, 1_000_000, WATCH_USAGE);
  const json = values.json === true;
  const { from, servers } = (() => {
    const opened = openSource(source);
    opened.close();
    return opened;
  })();

  const emit = (event: Record<string, unknown>, text: string): void => {
    if (json) io.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), name, ...event })}\n`);
    else io.stdout.write(`${clockTime()}  ${text}\n`);
  };

  // The answer's TTL still counts (a client would keep it that long), but never longer than
  // --interval, so that a change shows within one interval.
  const discovery = new Discovery({
    services: { [name]: source.service },
    dns: source.dns,
    cloudMap: { ...source.cloudMap, pollInterval: interval, fullRefreshInterval: interval },
    cache: { minTtl: Math.min(1000, interval), maxTtl: interval, negativeTtl: interval },
    ejection: false,
  });

  let changes = 0;
  let lastProblem = '';
  const done = new AbortController();
  const problem = (error: unknown, serving: number): void => {
    const message = oneLine(error);
    if (message === lastProblem) return;
    lastProblem = message;
    emit(
      { event: 'error', code: error instanceof SignpostError ? error.code : undefined, message, serving },
      serving > 0 ? `! ${message} (still serving the ${serving} instances known)` : `! ${message}`,
    );
  };
  const onResolveError = (message: unknown): void => {
    const m = message as { name?: string; error?: unknown; serving?: number };
    if (m.name === name) problem(m.error, m.serving ?? 0);
  };
  subscribe('signpost:resolve:error', onResolveError);

  const show = (instances: readonly Instance[]): void => {
    emit(
      { event: 'instances', instances: instances.map(instanceJson) },
      `${name}: ${instances.length} instance${instances.length === 1 ? '' : 's'}${instances.length > 0 ? ': ' : ''}${instances.map(describeInstance).join(', ')}`,
    );
  };

  try {
    if (!json) io.stdout.write(`watching ${name} via ${from}, every ${interval} ms; Ctrl-C to stop\n`);
    try {
      show(await discovery.resolve(name));
    } catch (error) {
      // A registry that cannot be reached at all is an error; a name that does not exist (yet) is
      // worth watching: it may be registered while we look.
      if (!(error instanceof SignpostError) || error.code === 'SIGNPOST_ERR_RESOLVE' || error.code === 'SIGNPOST_ERR_INVALID_ARG') {
        io.stderr.write(`signpost watch: ${explainFailure(error, source, servers)}\n`);
        return EXIT_FAILURE;
      }
      problem(error, 0);
    }

    discovery.onChange((change) => {
      lastProblem = '';
      const added = change.added.map((i) => `+ ${describeInstance(i)}`);
      const removed = change.removed.map((i) => `- ${describeInstance(i)}`);
      emit(
        {
          event: 'change',
          added: change.added.map(instanceJson),
          removed: change.removed.map(instanceJson),
          instances: change.instances.map(instanceJson),
        },
        `${[...added, ...removed].join('  ')}  → ${change.instances.length} instance${change.instances.length === 1 ? '' : 's'}: ${change.instances.map(instanceKey).join(', ')}`,
      );
      changes += 1;
      if (count !== undefined && changes >= count) done.abort();
    });

    const signals = io.signal === undefined ? done.signal : AbortSignal.any([done.signal, io.signal]);
    // Asking regularly keeps the name "in use", so the cache refreshes it ahead of expiry.
    const timer = setInterval(() => {
      discovery.resolve(name).then(
        () => {},
        (error: unknown) => problem(error, 0),
      );
    }, Math.max(50, Math.floor(interval / 2)));
    await new Promise<void>((resolve) => {
      if (signals.aborted) resolve();
      else signals.addEventListener('abort', () => resolve(), { once: true });
    });
    clearInterval(timer);
    if (!json) io.stdout.write(`stopped after ${changes} change${changes === 1 ? '' : 's'}\n`);
    return EXIT_OK;
  } finally {
    unsubscribe('signpost:resolve:error', onResolveError);
    await discovery.close();
  }
}
