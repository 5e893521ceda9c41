/**
 * `signpost watch <name>`: the instances of a name joining and leaving as a signpost client
 * sees them (through Discovery, its cache and onChange), re-asking the registry at least every
 * `--interval`.
 */
import { Discovery } from '../discovery.ts';
import { SignpostError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import type { Instance } from '../types.ts';
import {
  EXIT_FAILURE,
  EXIT_OK,
  explainFailure,
  helpText,
  missingRegion,
  nameArgument,
  parse,
  parseInteger,
  SOURCE_FLAGS,
  sourceFromFlags,
  usageOf,
  withHelp,
  type CliIo,
  type CommandSpec,
} from './args.ts';
import { clockTime, describeInstance, instanceJson, oneLine } from './format.ts';
import { openSource } from './resolve.ts';

export const DEFAULT_WATCH_INTERVAL_MS = 2000;

export const WATCH_COMMAND = {
  name: 'watch',
  args: '<name>',
  summary:
    'Follows the instances of <name> as a signpost client sees them (through its cache, refreshed at least\n' +
    'every --interval) and prints each change: an instance joining (+) or leaving (-), and registry failures (!)\n' +
    'with what is still served. Runs until Ctrl-C, --changes or --polls.',
  flags: withHelp({
    ...SOURCE_FLAGS,
    interval: {
      type: 'string',
      value: 'ms',
      help: `ask the registry at least this often; a longer TTL is cut to it (default: ${DEFAULT_WATCH_INTERVAL_MS}; 100 to 3600000)`,
    },
    changes: { type: 'string', value: 'N', help: 'stop after N changes (instances joining or leaving)' },
    polls: { type: 'string', value: 'N', help: 'stop after N answers from the registry, changed or not, so a stable name ends too' },
  }),
  notes:
    'The first line shows the instances at the start: the first answer (poll 1), not a change. With --json,\n' +
    'one JSON object per line: "instances" first, then "change" and "error", and "stopped" at the end.\n\n' +
    'Exit codes: 0 stopped (Ctrl-C, --changes, --polls); 1 the registry could not be reached at the start;\n' +
    '2 bad arguments. A name that does not exist yet is watched until it appears.',
} as const satisfies CommandSpec;

export async function runWatch(argv: readonly string[], io: CliIo): Promise<number> {
  const usage = usageOf(WATCH_COMMAND);
  const { values, positionals } = parse(argv, WATCH_COMMAND);
  if (values.help) {
    io.stdout.write(helpText(WATCH_COMMAND));
    return EXIT_OK;
  }
  const name = nameArgument(positionals, usage);
  const source = sourceFromFlags(name, values, usage);
  const interval = parseInteger('interval', values.interval, 100, 3_600_000, usage) ?? DEFAULT_WATCH_INTERVAL_MS;
  const maxChanges = parseInteger('changes', values.changes, 1, 1_000_000, usage);
  const maxPolls = parseInteger('polls', values.polls, 1, 1_000_000, usage);
  const json = values.json === true;
  const opened = openSource(source);
  await opened.close();
  const { from, servers } = opened;

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
  let polls = 0;
  let lastProblem = '';
  const done = new AbortController();
  // Stops once the answer being handled has been printed: the registry's answer is published
  // before the change it makes.
  const stopSoon = (): void => {
    setImmediate(() => done.abort());
  };
  const polled = (): void => {
    polls += 1;
    if (maxPolls !== undefined && polls >= maxPolls) stopSoon();
  };
  const problem = (error: unknown, serving: number): void => {
    const message = oneLine(error);
    if (message === lastProblem) return;
    lastProblem = message;
    emit(
      { event: 'error', code: error instanceof SignpostError ? error.code : undefined, message, serving },
      serving > 0 ? `! ${message} (still serving the ${serving} instances known)` : `! ${message}`,
    );
  };
  // Every answer and every failure of the registry, as a client's Discovery sees them.
  discovery.onError(({ error, serving }) => {
    problem(error, serving);
    polled();
  });
  discovery.onResolve(() => polled());

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
      const region = missingRegion(error, source, usage);
      if (region) throw region;
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
      if (maxChanges !== undefined && changes >= maxChanges) stopSoon();
    });

    const signals = io.signal === undefined ? done.signal : AbortSignal.any([done.signal, io.signal]);
    // Asking regularly keeps the name "in use", so the cache refreshes it at expiry instead of
    // dropping it (which would show as every instance leaving). A warm resolve costs no I/O:
    // asking four times per TTL leaves room for a loaded machine's late timers.
    const timer = setInterval(() => {
      discovery.resolve(name).then(
        () => {},
        (error: unknown) => problem(error, 0),
      );
    }, Math.max(25, Math.floor(interval / 4)));
    await new Promise<void>((resolve) => {
      if (signals.aborted) resolve();
      else signals.addEventListener('abort', () => resolve(), { once: true });
    });
    clearInterval(timer);
    const summary = `stopped after ${changes} change${changes === 1 ? '' : 's'} in ${polls} poll${polls === 1 ? '' : 's'}`;
    if (json) emit({ event: 'stopped', changes, polls }, summary);
    else io.stdout.write(`${summary}\n`);
    return EXIT_OK;
  } finally {
    await discovery.close();
  }
}
