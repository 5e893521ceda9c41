/**
 * What every `signpost` command shares: the I/O it writes to, usage errors (exit code 2), and
 * turning `--via/--server/--srv/--port/--region/--endpoint` into signpost options.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { parseDnsServer } from '../dns/client.ts';
import type { CloudMapOptions, DnsOptions, ServiceConfig } from '../options.ts';
import { isHostname } from '../validate.ts';
import { normalizeName } from '../routing.ts';
import { SignpostError } from '../errors.ts';

/** Where a command writes; tests pass their own. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean };
  readonly stderr: { write(text: string): unknown };
  /** Aborted on Ctrl-C / SIGTERM: long-running commands end cleanly. */
  readonly signal?: AbortSignal;
}

/** Bad arguments: main prints the message and the command's usage line, and exits with 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.usage = usage;
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export const VIAS = ['dns', 'srv', 'cloudmap'] as const;
export type Via = (typeof VIAS)[number];

/** The flags `resolve` and `watch` share. */
export const SOURCE_OPTIONS = {
  via: { type: 'string' },
  server: { type: 'string', multiple: true },
  srv: { type: 'string' },
  port: { type: 'string' },
  region: { type: 'string' },
  endpoint: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsOptionsConfig;

/** parseArgs, with its errors (unknown flag, missing value) turned into UsageErrors. */
export function parse<T extends ParseArgsOptionsConfig>(argv: readonly string[], options: T, usage: string) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, usage);
  }
}

/** A whole number of milliseconds (or a port), from a flag value. */
export function parseInteger(flag: string, value: string | undefined, min: number, max: number, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`, usage);
  }
  return number;
}

/** The one positional `<name>`, checked to be a DNS name. */
export function nameArgument(positionals: readonly string[], usage: string): string {
  if (positionals.length === 0) throw new UsageError('missing <name>', usage);
  if (positionals.length > 1) throw new UsageError(`expected one <name>, got ${positionals.length}: ${positionals.join(' ')}`, usage);
  const name = normalizeName(positionals[0]!);
  if (!isHostname(name)) throw new UsageError(`${JSON.stringify(positionals[0])} is not a DNS name`, usage);
  return name;
}

/** How one name is looked up, from the flags: the service config and the registry options. */
export interface Source {
  readonly name: string;
  readonly via: Via;
  readonly service: ServiceConfig;
  readonly dns: DnsOptions;
  readonly cloudMap: CloudMapOptions;
  /** Per-try DNS timeout, when given. */
  readonly timeout: number | undefined;
}

type SourceValues = {
  via?: string | undefined;
  server?: string[] | undefined;
  srv?: string | undefined;
  port?: string | undefined;
  region?: string | undefined;
  endpoint?: string | undefined;
  timeout?: string | undefined;
};

export function sourceFromFlags(name: string, values: SourceValues, usage: string): Source {
  const via = (values.via ?? 'dns') as Via;
  if (!VIAS.includes(via)) throw new UsageError(`--via must be one of ${VIAS.join(', ')}, got ${JSON.stringify(values.via)}`, usage);
  const servers = values.server ?? [];
  for (const server of servers) {
    if (parseDnsServer(server) === undefined) {
      throw new UsageError(`--server must be "ip", "ip:port" or "[ipv6]:port", got ${JSON.stringify(server)}`, usage);
    }
  }
  const port = parseInteger('port', values.port, 1, 65_535, usage);
  const timeout = parseInteger('timeout', values.timeout, 1, 600_000, usage);
  if (values.srv !== undefined && via !== 'srv') throw new UsageError('--srv goes with --via srv', usage);
  if (values.srv !== undefined && !isHostname(normalizeName(values.srv))) {
    throw new UsageError(`--srv must be a DNS name such as _http._tcp.${name}, got ${JSON.stringify(values.srv)}`, usage);
  }
  if (port !== undefined && via !== 'dns') throw new UsageError('--port goes with --via dns (SRV and Cloud Map give ports)', usage);
  if ((values.region !== undefined || values.endpoint !== undefined) && via !== 'cloudmap') {
    throw new UsageError('--region and --endpoint go with --via cloudmap', usage);
  }
  if (values.region !== undefined && !/^[a-z0-9-]+$/.test(values.region)) {
    throw new UsageError(`--region must be an AWS region such as us-east-1, got ${JSON.stringify(values.region)}`, usage);
  }
  if (values.endpoint !== undefined) {
    const url = URL.canParse(values.endpoint) ? new URL(values.endpoint) : undefined;
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new UsageError(`--endpoint must be an http:// or https:// URL, got ${JSON.stringify(values.endpoint)}`, usage);
    }
  }
  if (servers.length > 0 && via === 'cloudmap') throw new UsageError('--server goes with --via dns or srv', usage);

  let service: ServiceConfig;
  if (via === 'dns') service = { via: 'dns', ...(port !== undefined && { port }) };
  else if (via === 'srv') service = { via: 'srv', ...(values.srv !== undefined && { srv: normalizeName(values.srv) }) };
  else {
    const dot = name.indexOf('.');
    if (dot <= 0) throw new UsageError(`--via cloudmap needs <service>.<namespace>, got ${JSON.stringify(name)}`, usage);
    service = { via: 'cloudmap', service: name.slice(0, dot), namespace: name.slice(dot + 1) };
  }
  const dns: DnsOptions = {
    ...(servers.length > 0 && { servers }),
    ...(timeout !== undefined && { timeout }),
  };
  const cloudMap: CloudMapOptions = {
    ...(values.region !== undefined && { region: values.region }),
    ...(values.endpoint !== undefined && { endpoint: values.endpoint }),
    ...(timeout !== undefined && { timeout }),
  };
  return { name, via, service, dns, cloudMap, timeout };
}

/** "dns (A/AAAA) from 127.0.0.1:53": where an answer comes from, for people. */
export function describeSource(source: Source, servers: readonly string[]): string {
  const from = servers.length > 0 ? servers.join(', ') : 'no DNS servers (none in /etc/resolv.conf)';
  switch (source.via) {
    case 'dns':
      return `dns (A/AAAA records) from ${from}`;
    case 'srv': {
      const srv = source.service.via === 'srv' ? (source.service.srv ?? source.name) : source.name;
      return `srv (SRV records at ${srv}) from ${from}`;
    }
    case 'cloudmap': {
      const where = source.cloudMap.endpoint ?? `the Cloud Map data API in ${source.cloudMap.region ?? process.env.AWS_REGION ?? 'the SDK default region'}`;
      const s = source.service.via === 'cloudmap' ? source.service : undefined;
      return `cloudmap (DiscoverInstances, namespace ${s?.namespace}, service ${s?.service}) from ${where}`;
    }
  }
}

/**
 * The one line printed for a failed lookup: the error's message, plus what to check when the
 * message does not already say (a DNS server that refuses on the wire path, for example).
 */
export function explainFailure(error: unknown, source: Source, servers: readonly string[]): string {
  const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
  if (error instanceof SignpostError && error.code === 'SIGNPOST_ERR_RESOLVE' && source.via !== 'cloudmap' && !/check/i.test(message)) {
    return `${message}: check that a DNS server listens at ${servers.join(', ')} (--server) and that this host can reach it`;
  }
  return message;
}
