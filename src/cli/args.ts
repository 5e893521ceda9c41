/**
 * What every `signpost` command shares: the I/O it writes to, flags and their `--help`, usage
 * errors (exit code 2), and turning `--via/--server/--srv/--port/--region/--endpoint` into
 * signpost options.
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

/** One flag of a command: how it is read, and its line in `--help`. */
export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  /** The flag may be repeated; its values are collected in order. */
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's placeholder in the usage line and `--help`: "ms", "ip:port". */
  readonly value?: string;
  /** What it does, with its default: one line of `--help`. */
  readonly help: string;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** What `parse` gives for each flag of `F`. */
export type FlagValues<F extends FlagSpecs> = {
  -readonly [K in keyof F]?: F[K] extends { readonly type: 'boolean' } ? boolean : F[K] extends { readonly multiple: true } ? string[] : string;
};

/** A command's usage line, `--help` text and flags. */
export interface CommandSpec<F extends FlagSpecs = FlagSpecs> {
  readonly name: string;
  /** The positional arguments as the usage line shows them: "<name>". */
  readonly args: string;
  /** What the command does: the first paragraph of `--help`. */
  readonly summary: string;
  readonly flags: F;
  /** Paragraphs after the flags: defaults worth knowing, output, exit codes. */
  readonly notes?: string;
}

const HELP_FLAG = { type: 'boolean', short: 'h', help: 'print this help and exit' } as const satisfies FlagSpec;

function flagSyntax(name: string, flag: FlagSpec): string {
  return flag.type === 'boolean' ? `--${name}` : `--${name} ${flag.value ?? 'VALUE'}`;
}

/** "usage: signpost resolve <name> [--via dns|srv|cloudmap] [--server ip:port]... [--json]" */
export function usageLine(spec: CommandSpec): string {
  const flags = Object.entries(spec.flags)
    .filter(([, flag]) => flag !== HELP_FLAG)
    .map(([name, flag]) => `[${flagSyntax(name, flag)}]${flag.multiple ? '...' : ''}`);
  return `usage: signpost ${spec.name} ${spec.args} ${flags.join(' ')}`;
}

/** What a usage error prints after its message. */
export function usageOf(spec: CommandSpec): string {
  return `${usageLine(spec)}\n(signpost ${spec.name} --help describes every flag)`;
}

/** The whole `--help` of a command: usage, what it does, every flag, notes. */
export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.flags).map(([name, flag]) => [`${flag.short ? `-${flag.short}, ` : ''}${flagSyntax(name, flag)}`, flag.help] as const);
  const width = Math.max(...rows.map(([syntax]) => syntax.length));
  const flags = rows.map(([syntax, help]) => `  ${syntax.padEnd(width)}  ${help}`).join('\n');
  return `${usageLine(spec)}\n\n${spec.summary}\n\nFlags:\n${flags}\n${spec.notes ? `\n${spec.notes.trimEnd()}\n` : ''}`;
}

/** Adds `--help` / `-h` to a command's flags. */
export function withHelp<F extends FlagSpecs>(flags: F): F & { readonly help: typeof HELP_FLAG } {
  return { ...flags, help: HELP_FLAG };
}

/** Edit distance with transpositions ("prot" is one edit from "port"), for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Reads a command line against a command's flags. Every mistake is a UsageError in signpost's own
 * words (an unknown flag, with the nearest known one; a missing value; a value given to a switch;
 * a flag given twice). `--help` anywhere wins over every other mistake.
 */
export function parse<F extends FlagSpecs>(argv: readonly string[], spec: CommandSpec<F>): { values: FlagValues<F>; positionals: string[] } {
  const usage = usageOf(spec);
  const config: ParseArgsOptionsConfig = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    config[name] = { type: flag.type, ...(flag.multiple && { multiple: true }), ...(flag.short && { short: flag.short }) };
  }
  // Not strict: the tokens are checked below, so that the messages are signpost's.
  const { tokens } = parseArgs({ args: [...argv], options: config, allowPositionals: true, strict: false, tokens: true });
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help' && spec.flags.help !== undefined)) {
    values.help = true;
    return { values: values as FlagValues<F>, positionals };
  }
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    const flag = Object.hasOwn(spec.flags, token.name) ? spec.flags[token.name] : undefined;
    if (flag === undefined) {
      const near = Object.keys(spec.flags)
        .map((name) => ({ name, d: distance(token.name, name) }))
        .filter(({ name, d }) => d <= Math.max(1, Math.floor(name.length / 3)))
        .sort((a, b) => a.d - b.d)[0];
      throw new UsageError(`unknown flag ${token.rawName}${near ? ` (did you mean --${near.name}?)` : ''}`, usage);
    }
    const syntax = flagSyntax(token.name, flag);
    if (flag.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value, got ${token.rawName}=${token.value}`, usage);
      values[token.name] = true;
      continue;
    }
    // "--via --json": a flag where the value should be means the value is missing.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-'))) {
      throw new UsageError(`${token.rawName} needs a value: ${syntax}`, usage);
    }
    if (flag.multiple) ((values[token.name] ??= []) as string[]).push(token.value);
    else if (values[token.name] !== undefined) throw new UsageError(`${token.rawName} is given more than once`, usage);
    else values[token.name] = token.value;
  }
  return { values: values as FlagValues<F>, positionals };
}

/** The flags `resolve` and `watch` share: where to look a name up. */
export const SOURCE_FLAGS = {
  via: {
    type: 'string',
    value: 'dns|srv|cloudmap',
    help: 'how to find the instances: A/AAAA records, SRV records, or Cloud Map DiscoverInstances (default: dns)',
  },
  server: {
    type: 'string',
    multiple: true,
    value: 'ip:port',
    help: 'a DNS server to ask: ip, ip:port or [ipv6]:port; repeat for more (default: the nameservers of /etc/resolv.conf)',
  },
  srv: { type: 'string', value: 'NAME', help: 'with --via srv: the SRV name to query, such as _http._tcp.<name> (default: <name>, as Cloud Map names them)' },
  port: { type: 'string', value: 'N', help: "with --via dns: the instances' port (A/AAAA records carry none; SRV and Cloud Map give their own)" },
  region: { type: 'string', value: 'R', help: "with --via cloudmap: the AWS region, such as us-east-1 (default: AWS_REGION, or the AWS SDK's configuration)" },
  endpoint: { type: 'string', value: 'URL', help: "with --via cloudmap: an endpoint other than AWS's (a VPC endpoint, a local stand-in)" },
  timeout: { type: 'string', value: 'ms', help: 'how long one DNS try or one Cloud Map call may take (default: 2000 for DNS, 5000 for Cloud Map)' },
  json: { type: 'boolean', help: 'print JSON instead of text' },
} as const satisfies FlagSpecs;

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
 * A Cloud Map lookup that failed for want of a region, which only `--region` (or AWS_REGION) can
 * fix: a usage error rather than a registry failure.
 */
export function missingRegion(error: unknown, source: Source, usage: string): UsageError | undefined {
  if (source.via !== 'cloudmap' || source.cloudMap.region !== undefined) return undefined;
  const texts = [error, (error as { cause?: unknown } | null)?.cause].map((e) => (e instanceof Error ? e.message : ''));
  if (!texts.some((text) => /region is missing|no AWS region/i.test(text))) return undefined;
  return new UsageError('--via cloudmap needs an AWS region: pass --region (such as --region us-east-1), or set AWS_REGION', usage);
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
