/**
 * `signpost resolve <name>`: one lookup, straight from the registry (no cache), with the TTL of
 * the answer and where it came from: what a signpost client would get for that name right now.
 */
import { parseDnsOptions } from '../dns/client.ts';
import { SignpostError } from '../errors.ts';
import { createResolver, parseCloudMapOptions, ResolverClients } from '../resolvers/index.ts';
import type { Resolution, Resolver } from '../types.ts';
import {
  describeSource,
  EXIT_FAILURE,
  explainFailure,
  EXIT_OK,
  helpText,
  missingRegion,
  nameArgument,
  parse,
  SOURCE_FLAGS,
  sourceFromFlags,
  usageOf,
  withHelp,
  type CliIo,
  type CommandSpec,
  type Source,
} from './args.ts';
import { duration, instanceJson, table } from './format.ts';

export const RESOLVE_COMMAND = {
  name: 'resolve',
  args: '<name>',
  summary:
    'Asks the registry for the instances of <name> once, as a signpost client would (no cache), and prints\n' +
    'each instance (address, port, zone, priority, weight, id), the TTL of the answer and where it came from.',
  flags: withHelp(SOURCE_FLAGS),
  notes:
    'Exit codes: 0 instances found; 1 none (the name does not exist, has no instances, or the registry\n' +
    'failed: one line on stderr says which and what to check); 2 bad arguments.\n\n' +
    'Examples:\n' +
    '  signpost resolve orders.myapp.local --server 10.0.0.2\n' +
    '  signpost resolve orders.myapp.local --via srv --srv _http._tcp.orders.myapp.local\n' +
    '  signpost resolve orders.myapp.local --via cloudmap --region us-east-1 --json',
} as const satisfies CommandSpec;

/** A resolver for one source, and what to release afterwards. */
export interface OpenedSource {
  readonly resolver: Resolver;
  /** Where answers come from, for people. */
  readonly from: string;
  /** The DNS servers asked (empty for Cloud Map). */
  readonly servers: readonly string[];
  close(): Promise<void>;
}

/** The resolver a signpost client would use for the source's name: the same `createResolver`. */
export function openSource(source: Source): OpenedSource {
  const clients = new ResolverClients(parseDnsOptions(source.dns), parseCloudMapOptions(source.cloudMap));
  const resolver = createResolver(source.service, clients);
  const servers = source.via === 'cloudmap' ? [] : clients.dns().servers;
  return { resolver, from: describeSource(source, servers), servers, close: () => clients.close() };
}

export async function runResolve(argv: readonly string[], io: CliIo): Promise<number> {
  const usage = usageOf(RESOLVE_COMMAND);
  const { values, positionals } = parse(argv, RESOLVE_COMMAND);
  if (values.help) {
    io.stdout.write(helpText(RESOLVE_COMMAND));
    return EXIT_OK;
  }
  const name = nameArgument(positionals, usage);
  const source = sourceFromFlags(name, values, usage);
  const opened = openSource(source);
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(io.signal?.reason);
  io.signal?.addEventListener('abort', onAbort, { once: true });
  let resolution: Resolution;
  let empty: string | undefined;
  try {
    try {
      resolution = await opened.resolver.resolve(name, { signal: controller.signal });
    } catch (error) {
      const region = missingRegion(error, source, usage);
      if (region) throw region;
      const code = error instanceof SignpostError ? error.code : 'SIGNPOST_ERR_RESOLVE';
      const message = explainFailure(error, source, opened.servers);
      if (values.json) io.stdout.write(`${JSON.stringify({ name, via: source.via, from: opened.from, error: { code, message } }, null, 2)}\n`);
      io.stderr.write(`signpost resolve: ${message}\n`);
      return EXIT_FAILURE;
    }
    // What to check, in the terms of the registry asked (for DNS: whether the other kind of record is there).
    if (resolution.instances.length === 0) empty = resolution.why ?? `${name} has no instances`;
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
    await opened.close();
  }

  const { instances, ttl } = resolution;
  if (values.json) {
    io.stdout.write(
      `${JSON.stringify(
        {
          name,
          via: source.via,
          from: opened.from,
          ttl,
          instances: instances.map((i) => ({ ...instanceJson(i), ttl })),
          ...(empty !== undefined && { error: { code: 'SIGNPOST_ERR_NO_INSTANCES', message: empty } }),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const ttlText = source.via === 'cloudmap' ? `${duration(ttl)} (Cloud Map has no TTL: polled this often)` : duration(ttl);
    io.stdout.write(`${name} via ${opened.from}\n`);
    io.stdout.write(`${instances.length} instance${instances.length === 1 ? '' : 's'}, TTL ${ttlText}\n`);
    if (instances.length > 0) {
      io.stdout.write('\n');
      io.stdout.write(
        table(
          ['ADDRESS', 'PORT', 'ZONE', 'PRIORITY', 'WEIGHT', 'TTL', 'ID'],
          instances.map((i) => [
            i.address,
            i.port === undefined ? '-' : String(i.port),
            i.zone ?? '-',
            String(i.priority),
            String(i.weight),
            duration(ttl),
            i.id + (i.healthStatus === undefined ? '' : ` (${i.healthStatus.toLowerCase()})`),
          ]),
        ),
      );
    }
  }
  if (empty === undefined) return EXIT_OK;
  io.stderr.write(`signpost resolve: ${empty}\n`);
  return EXIT_FAILURE;
}
