/**
 * `signpost resolve <name>`: one lookup, straight from the registry (no cache), with the TTL of
 * the answer and where it came from: what a signpost client would get for that name right now.
 */
import { DnsClient } from '../dns/client.ts';
import { CloudMapClient, CloudMapResolver } from '../resolvers/cloudmap.ts';
import { DnsResolver } from '../resolvers/dns.ts';
import { SrvResolver } from '../resolvers/srv.ts';
import { SignpostError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import type { Resolution, ResolveContext, Resolver } from '../types.ts';
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
  /**
   * For a DNS source, the other kind of record at the name (SRV for `--via dns`, A/AAAA for
   * `--via srv`): asked only when the name has none of the kind asked for.
   */
  readonly other?: { readonly resolver: Resolver; readonly records: string; readonly via: 'dns' | 'srv' };
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
  const srv = source.service.via === 'srv';
  const resolver = srv
    ? new SrvResolver(client, source.service.via === 'srv' && source.service.srv !== undefined ? { srv: source.service.srv } : {})
    : new DnsResolver(client, source.service.via === 'dns' && source.service.port !== undefined ? { port: source.service.port } : {});
  const other = srv
    ? { resolver: new DnsResolver(client), records: 'A/AAAA records', via: 'dns' as const }
    : { resolver: new SrvResolver(client), records: 'SRV records', via: 'srv' as const };
  return { resolver, from: describeSource(source, client.servers), servers: client.servers, other, close: () => client.close() };
}

/**
 * Why a name that exists has no instances, and what to do: for DNS, whether the other kind of
 * record is there (the usual mistake is asking for SRV records of a name that has A records).
 */
async function noInstances(source: Source, opened: OpenedSource, signal: AbortSignal): Promise<string> {
  const { name } = source;
  const servers = opened.servers.join(', ');
  if (source.service.via === 'cloudmap') {
    return (
      `Cloud Map service "${source.service.service}" in namespace "${source.service.namespace}" has no instances: ` +
      "are its tasks running and registered (the ECS service's serviceRegistries), in this region and account?"
    );
  }
  let other: Resolution | undefined;
  try {
    other = await opened.other?.resolver.resolve(name, { signal });
  } catch {
    // The other kind is a hint only: its failure says nothing more.
  }
  // Registries rotate their answers: a stable order for people.
  const found = [...(other?.instances ?? [])].sort((a, b) => instanceKey(a).localeCompare(instanceKey(b), 'en', { numeric: true }));
  const list = found
    .slice(0, 4)
    .map((i) => (opened.other?.via === 'srv' ? instanceKey(i) : i.address))
    .join(', ');
  const more = found.length > 4 ? `, and ${found.length - 4} more` : '';
  if (source.service.via === 'srv') {
    const srvName = source.service.srv ?? name;
    if (found.length > 0) {
      return (
        `${srvName} has no SRV records (NODATA from ${servers}), but ${name} has A/AAAA records (${list}${more}): ` +
        `use --via dns with --port N, or --srv with the name its SRV records are under (such as _http._tcp.${name})`
      );
    }
    return (
      `${srvName} has no SRV records (NODATA from ${servers}), and ${name} has no A/AAAA records either: ` +
      'does the service register SRV records (a Cloud Map service with DnsRecords of type SRV; a Kubernetes ' +
      `headless service's named port, under _<port>._tcp.${name}) and are its instances running?`
    );
  }
  if (found.length > 0) {
    return `${name} has no A/AAAA records (NODATA from ${servers}), but it has SRV records (${list}${more}): use --via srv`;
  }
  return (
    `${name} has no A/AAAA records (NODATA from ${servers}): the name exists, but no instance is registered under it. ` +
    'Are its tasks or pods running, registered and passing their health checks?'
  );
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
    if (resolution.instances.length === 0) empty = await noInstances(source, opened, controller.signal);
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
    opened.close();
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
