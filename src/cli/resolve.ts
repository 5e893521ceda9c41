/**
 * `signpost resolve <name>`: one lookup, straight from the registry (no cache), with the TTL of
 * the answer and where it came from: what a signpost client would get for that name right now.
 */
import { DnsClient } from '../dns/client.ts';
import { CloudMapClient, CloudMapResolver } from '../resolvers/cloudmap.ts';
import { DnsResolver } from '../resolvers/dns.ts';
import { SrvResolver } from '../resolvers/srv.ts';
import { SignpostError } from '../errors.ts';
import type { Resolution, ResolveContext, Resolver } from '../types.ts';
import {
  describeSource,
  EXIT_FAILURE,
  explainFailure,
  EXIT_OK,
  nameArgument,
  parse,
  SOURCE_OPTIONS,
  sourceFromFlags,
  type CliIo,
  type Source,
} from './args.ts';
import { duration, instanceJson, table } from './format.ts';

export const RESOLVE_USAGE =
  'usage: signpost resolve <name> [--via dns|srv|cloudmap] [--server host:port]... [--srv NAME] [--port N] ' +
  '[--region R] [--endpoint URL] [--timeout ms] [--json]';

/** A resolver for one source, and what to release afterwards. */
export interface OpenedSource {
  readonly resolver: Resolver;
  /** Where answers come from, for people. */
  readonly from: string;
  /** The DNS servers asked (empty for Cloud Map). */
  readonly servers: readonly string[];
  close(): void;
}

export function openSource(source: Source): OpenedSource {
  if (source.via === 'cloudmap') {
    const client = new CloudMapClient(source.cloudMap);
    const config = source.service.via === 'cloudmap' ? source.service : undefined;
    // Instances registered by DNS name (a load balancer) are looked up with the system's servers.
    let dns: DnsClient | undefined;
    const lookup = { resolve: (name: string, context: ResolveContext) => new DnsResolver((dns ??= new DnsClient({}))).resolve(name, context) };
    return {
      resolver: new CloudMapResolver(client, { ...(config && { namespace: config.namespace, service: config.service }) }, lookup),
      from: describeSource(source, []),
      servers: [],
      close: () => {
        client.close();
        dns?.close();
      },
    };
  }
  const client = new DnsClient(source.dns);
  const resolver =
    source.service.via === 'srv'
      ? new SrvResolver(client, source.service.srv === undefined ? {} : { srv: source.service.srv })
      : new DnsResolver(client, source.service.via === 'dns' && source.service.port !== undefined ? { port: source.service.port } : {});
  return { resolver, from: describeSource(source, client.servers), servers: client.servers, close: () => client.close() };
}

export async function runResolve(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, SOURCE_OPTIONS, RESOLVE_USAGE);
  if (values.help) {
    io.stdout.write(`${RESOLVE_USAGE}\n`);
    return EXIT_OK;
  }
  const name = nameArgument(positionals, RESOLVE_USAGE);
  const source = sourceFromFlags(name, values, RESOLVE_USAGE);
  const opened = openSource(source);
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(io.signal?.reason);
  io.signal?.addEventListener('abort', onAbort, { once: true });
  let resolution: Resolution;
  try {
    resolution = await opened.resolver.resolve(name, { signal: controller.signal });
  } catch (error) {
    const code = error instanceof SignpostError ? error.code : 'SIGNPOST_ERR_RESOLVE';
    if (values.json) {
      io.stdout.write(`${JSON.stringify({ name, via: source.via, from: opened.from, error: { code, message: explainFailure(error, source, opened.servers) } }, null, 2)}\n`);
    }
    io.stderr.write(`signpost resolve: ${explainFailure(error, source, opened.servers)}\n`);
    return EXIT_FAILURE;
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
    opened.close();
  }

  const { instances, ttl } = resolution;
  if (values.json) {
    io.stdout.write(
      `${JSON.stringify({ name, via: source.via, from: opened.from, ttl, instances: instances.map((i) => ({ ...instanceJson(i), ttl })) }, null, 2)}\n`,
    );
    return EXIT_OK;
  }
  const ttlText = source.via === 'cloudmap' ? `${duration(ttl)} (Cloud Map has no TTL: polled this often)` : duration(ttl);
  io.stdout.write(`${name} via ${opened.from}\n`);
  io.stdout.write(`${instances.length} instance${instances.length === 1 ? '' : 's'}, TTL ${ttlText}\n`);
  if (instances.length === 0) {
    io.stdout.write('the name exists but has no records (NODATA): are its tasks running and registered?\n');
    return EXIT_OK;
  }
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
  return EXIT_OK;
}
