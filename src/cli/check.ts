/**
 * `signpost check <config.json>`: a connectivity matrix. For each service of the config it
 * resolves the name (as a signpost client would), opens a TCP connection to every instance and
 * calls its HTTP health path, then says for each failure what usually causes it.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { Discovery } from '../discovery.ts';
import { SignpostError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import type { DiscoveryOptions } from '../options.ts';
import { normalizeName } from '../routing.ts';
import type { Instance } from '../types.ts';
import { isPlainObject } from '../validate.ts';
import { EXIT_FAILURE, EXIT_OK, parse, parseInteger, UsageError, type CliIo } from './args.ts';
import { duration, oneLine, table } from './format.ts';

export const CHECK_USAGE = 'usage: signpost check <config.json> [--path /health] [--timeout ms] [--json]';

export const DEFAULT_CHECK_TIMEOUT_MS = 3000;
export const DEFAULT_HEALTH_PATH = '/health';
const DEFAULT_HTTP_PORT = 80;
/** Instances checked at once. */
const CONCURRENCY = 16;

const CHECK_OPTIONS = {
  path: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * The config file: Discovery options, plus `health` (service name → health path) and `check`
 * (names to check besides the keys of `services`, `aliases` and `health`: names that
 * `namespaces` rules cover, for example).
 */
export interface CheckConfig extends Omit<DiscoveryOptions, 'clock' | 'balancer'> {
  health?: Record<string, string>;
  check?: string[];
}

/** Opens a TCP connection; injectable so a test can stand in for a network that drops packets. */
export type ConnectFunction = (options: { host: string; port: number }) => Socket;

export interface CheckOptions {
  /** @default DEFAULT_CHECK_TIMEOUT_MS, for the TCP connect and for the HTTP answer each */
  timeout?: number;
  /** @default '/health' */
  path?: string;
  connect?: ConnectFunction;
}

export type Failure =
  | 'not-found'
  | 'no-instances'
  | 'registry'
  | 'connect-timeout'
  | 'refused'
  | 'unreachable'
  | 'reset'
  | 'http-timeout'
  | 'http-5xx'
  | 'http-4xx'
  | 'http-error';

export interface InstanceResult {
  readonly instance: Instance;
  readonly port: number;
  readonly tcp: { ok: boolean; ms: number; error?: string };
  readonly http?: { status?: number; ms: number; error?: string };
  readonly ok: boolean;
  readonly failure?: Failure;
  readonly diagnosis?: string;
}

export interface ServiceResult {
  readonly name: string;
  readonly path: string;
  readonly ok: boolean;
  readonly resolved?: { ms: number };
  readonly error?: { code: string; message: string; failure: Failure; diagnosis: string };
  readonly instances: readonly InstanceResult[];
}

export interface ZoneFinding {
  readonly zone: string;
  readonly services: readonly string[];
  readonly failed: number;
  readonly diagnosis: string;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly services: readonly ServiceResult[];
  readonly zones: readonly ZoneFinding[];
}

export async function loadCheckConfig(file: string, usage = CHECK_USAGE): Promise<CheckConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? oneLine(error)}`, usage);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not valid JSON: ${oneLine(error)}`, usage);
  }
  if (!isPlainObject(config)) throw new UsageError(`${file} must hold a JSON object of Discovery options`, usage);
  const { health, check } = config;
  if (health !== undefined && (!isPlainObject(health) || Object.values(health).some((p) => typeof p !== 'string' || !p.startsWith('/')))) {
    throw new UsageError(`"health" in ${file} must map service names to paths such as "/health"`, usage);
  }
  if (check !== undefined && (!Array.isArray(check) || check.some((n) => typeof n !== 'string'))) {
    throw new UsageError(`"check" in ${file} must be a list of service names`, usage);
  }
  return config as CheckConfig;
}

/** The names a config asks to check, in a stable order. */
export function namesToCheck(config: CheckConfig): string[] {
  const names = new Set<string>();
  for (const name of Object.keys(config.services ?? {})) names.add(normalizeName(name));
  for (const name of Object.keys(config.aliases ?? {})) names.add(normalizeName(name));
  for (const name of Object.keys(config.health ?? {})) names.add(normalizeName(name));
  for (const name of config.check ?? []) names.add(normalizeName(name));
  return [...names];
}

/** Runs the whole matrix. Never throws for a network failure: those are results. */
export async function check(config: CheckConfig, options: CheckOptions = {}): Promise<CheckReport> {
  const timeout = options.timeout ?? DEFAULT_CHECK_TIMEOUT_MS;
  const defaultPath = options.path ?? DEFAULT_HEALTH_PATH;
  const connect = options.connect ?? ((o) => netConnect(o));
  const { health, check: _names, ...discoveryOptions } = config;
  const healthPaths = new Map(Object.entries(health ?? {}).map(([name, path]) => [normalizeName(name), path]));
  // No passive health: check sees every instance, ejected or not.
  const discovery = new Discovery({ ...discoveryOptions, ejection: false });
  try {
    const names = namesToCheck(config);
    const services = await Promise.all(
      names.map(async (name): Promise<ServiceResult> => {
        const path = healthPaths.get(name) ?? defaultPath;
        const started = performance.now();
        let instances: Instance[];
        try {
          instances = await discovery.resolve(name);
        } catch (error) {
          return { name, path, ok: false, error: resolveFailure(name, error), instances: [] };
        }
        const resolved = { ms: performance.now() - started };
        const results = await mapLimit(instances, CONCURRENCY, (instance) => checkInstance(name, instance, path, timeout, connect));
        return { name, path, ok: results.every((r) => r.ok), resolved, instances: results };
      }),
    );
    const zones = zoneFindings(services);
    return { ok: services.every((s) => s.ok), services, zones };
  } finally {
    await discovery.close();
  }
}

function resolveFailure(name: string, error: unknown): NonNullable<ServiceResult['error']> {
  const code = error instanceof SignpostError ? error.code : 'SIGNPOST_ERR_RESOLVE';
  const message = oneLine(error);
  switch (code) {
    case 'SIGNPOST_ERR_NOT_FOUND':
      return {
        code,
        message,
        failure: 'not-found',
        diagnosis:
          `${name} does not exist (NXDOMAIN / not found): the namespace or service registry is not configured. ` +
          'Check that the Cloud Map namespace exists (and, for DNS, is associated with this VPC), that the Cloud Map ' +
          'service exists in it, and that the ECS service has serviceRegistries pointing at it',
      };
    case 'SIGNPOST_ERR_NO_INSTANCES':
      return {
        code,
        message,
        failure: 'no-instances',
        diagnosis: `${name} exists but has no instances: are its tasks running, registered and passing their health checks?`,
      };
    default:
      return {
        code,
        message,
        failure: 'registry',
        diagnosis: `the registry could not answer for ${name}: ${message}`,
      };
  }
}

class CheckTimeout extends Error {
  readonly code = 'SIGNPOST_CHECK_TIMEOUT';
}

async function checkInstance(
  name: string,
  instance: Instance,
  path: string,
  timeout: number,
  connect: ConnectFunction,
): Promise<InstanceResult> {
  const port = instance.port ?? DEFAULT_HTTP_PORT;
  const where = instanceKey({ address: instance.address, port });
  const started = performance.now();
  let socket: Socket;
  try {
    socket = await openTcp(connect, instance.address, port, timeout);
  } catch (error) {
    const ms = performance.now() - started;
    const code = errorCode(error);
    const tcp = { ok: false, ms, error: code };
    if (code === 'SIGNPOST_CHECK_TIMEOUT' || code === 'ETIMEDOUT') {
      return fail(instance, port, tcp, undefined, 'connect-timeout',
        `${name} resolves, but the TCP connection to ${where} timed out after ${duration(timeout)}: a security group or NACL ` +
          `drops the traffic. Allow inbound TCP ${port} from this caller's security group or subnet, and check the NACLs in both ` +
          'directions (return traffic uses ephemeral ports 1024-65535)');
    }
    if (code === 'ECONNREFUSED') {
      return fail(instance, port, tcp, undefined, 'refused',
        `connection refused at ${where}: nothing listens on port ${port} there. Check the containerPort / port mapping ` +
          'and the port registered for the service (SRV, AWS_INSTANCE_PORT or the config), or the task has stopped');
    }
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      return fail(instance, port, tcp, undefined, 'unreachable',
        `no route to ${instance.address} (${code}): check the route tables between the subnets, or the instance is gone and the registry stale`);
    }
    if (code === 'ECONNRESET') {
      return fail(instance, port, tcp, undefined, 'reset',
        `the connection to ${where} was reset while opening: a NACL deny or a proxy in the path rejects it`);
    }
    return fail(instance, port, tcp, undefined, 'connect-timeout', `the TCP connection to ${where} failed (${code})`);
  }
  const tcp = { ok: true, ms: performance.now() - started };
  const httpStarted = performance.now();
  try {
    const status = await httpGet(socket, name, port, path, timeout);
    const http = { status, ms: performance.now() - httpStarted };
    if (status >= 500) {
      return fail(instance, port, tcp, http, 'http-5xx',
        `HTTP ${status} from GET ${path} at ${where}: the instance is unhealthy. Check its logs and its own dependencies; ` +
          'the registry\'s health checks should take it out');
    }
    if (status >= 400) {
      return fail(instance, port, tcp, http, 'http-4xx',
        `HTTP ${status} from GET ${path} at ${where}: is ${path} the health path? Set it per service in the config's "health", or with --path`);
    }
    return { instance, port, tcp, http, ok: true };
  } catch (error) {
    const code = errorCode(error);
    const http = { ms: performance.now() - httpStarted, error: code };
    if (code === 'SIGNPOST_CHECK_TIMEOUT') {
      return fail(instance, port, tcp, http, 'http-timeout',
        `${where} accepted the connection but sent no HTTP response to GET ${path} within ${duration(timeout)}: the app is hung ` +
          'or overloaded (or something in between holds the request)');
    }
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      return fail(instance, port, tcp, http, 'reset',
        `${where} reset the connection during GET ${path}: the instance closed it (stopping during a deployment? ` +
          'a keep-alive timeout shorter than the caller\'s?)');
    }
    return fail(instance, port, tcp, http, 'http-error', `GET ${path} at ${where} failed: ${code}: ${oneLine(error)}`);
  }
}

function fail(
  instance: Instance,
  port: number,
  tcp: InstanceResult['tcp'],
  http: InstanceResult['http'],
  failure: Failure,
  diagnosis: string,
): InstanceResult {
  return { instance, port, tcp, ...(http !== undefined && { http }), ok: false, failure, diagnosis };
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : (error as Error | null)?.name ?? 'Error';
}

function openTcp(connect: ConnectFunction, host: string, port: number, timeout: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CheckTimeout(`no TCP connection within ${timeout} ms`));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
  });
}

function httpGet(socket: Socket, name: string, port: number, path: string, timeout: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request({
      host: name,
      port,
      path,
      method: 'GET',
      headers: { host: port === DEFAULT_HTTP_PORT ? name : `${name}:${port}`, 'user-agent': 'signpost-check', connection: 'close' },
      createConnection: () => socket,
    });
    const timer = setTimeout(() => req.destroy(new CheckTimeout(`no HTTP response within ${timeout} ms`)), timeout);
    req.once('response', (response) => {
      clearTimeout(timer);
      response.resume();
      response.once('end', () => socket.destroy());
      response.once('error', () => socket.destroy());
      resolve(response.statusCode ?? 0);
    });
    req.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
    req.end();
  });
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * A zone problem: every checked instance in one zone failed while every instance in the other
 * zones is fine. (Several zones failing is not a zone problem; one service failing everywhere
 * is that service's.)
 */
function zoneFindings(services: readonly ServiceResult[]): ZoneFinding[] {
  const byZone = new Map<string, { ok: number; failed: number; services: Set<string> }>();
  for (const service of services) {
    for (const result of service.instances) {
      const zone = result.instance.zone;
      if (zone === undefined) continue;
      const entry = byZone.get(zone) ?? { ok: 0, failed: 0, services: new Set<string>() };
      if (result.ok) entry.ok += 1;
      else {
        entry.failed += 1;
        entry.services.add(service.name);
      }
      byZone.set(zone, entry);
    }
  }
  if (byZone.size < 2) return [];
  const failing = [...byZone].filter(([, z]) => z.failed > 0);
  const allFailed = failing.filter(([, z]) => z.ok === 0);
  if (failing.length !== 1 || allFailed.length !== 1) return [];
  const [zone, entry] = allFailed[0]!;
  const others = [...byZone.keys()].filter((z) => z !== zone);
  return [
    {
      zone,
      services: [...entry.services].sort(),
      failed: entry.failed,
      diagnosis:
        `only zone ${zone} fails (${entry.failed} of ${entry.failed} instances; ${others.join(', ')} fine): a zone problem. ` +
        `Check the route table and NACL of the ${zone} subnets, and whether that zone is impaired; until it is fixed, ` +
        'zone affinity in signpost sends callers there to the other zones',
    },
  ];
}

export async function runCheck(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, CHECK_OPTIONS, CHECK_USAGE);
  if (values.help) {
    io.stdout.write(`${CHECK_USAGE}\n`);
    return EXIT_OK;
  }
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'missing <config.json>' : `expected one <config.json>, got ${positionals.length}`, CHECK_USAGE);
  }
  const timeout = parseInteger('timeout', values.timeout, 1, 600_000, CHECK_USAGE);
  if (values.path !== undefined && !values.path.startsWith('/')) {
    throw new UsageError(`--path must start with "/", got ${JSON.stringify(values.path)}`, CHECK_USAGE);
  }
  const file = positionals[0]!;
  const config = await loadCheckConfig(file);
  if (namesToCheck(config).length === 0) {
    throw new UsageError(`${file} lists no services: add "services", "aliases", "health" or "check"`, CHECK_USAGE);
  }
  let report: CheckReport;
  try {
    report = await check(config, {
      ...(timeout !== undefined && { timeout }),
      ...(values.path !== undefined && { path: values.path }),
    });
  } catch (error) {
    if (error instanceof SignpostError && error.code === 'SIGNPOST_ERR_INVALID_ARG') {
      throw new UsageError(`${file}: ${oneLine(error)}`, CHECK_USAGE);
    }
    throw error;
  }
  if (values.json) io.stdout.write(`${JSON.stringify(reportJson(report), null, 2)}\n`);
  else io.stdout.write(formatReport(report));
  return report.ok ? EXIT_OK : EXIT_FAILURE;
}

export function reportJson(report: CheckReport): unknown {
  return {
    ok: report.ok,
    services: report.services.map((s) => ({
      name: s.name,
      ok: s.ok,
      path: s.path,
      ...(s.error && { error: s.error }),
      instances: s.instances.map((r) => ({
        id: r.instance.id,
        address: r.instance.address,
        port: r.port,
        zone: r.instance.zone ?? null,
        ok: r.ok,
        tcp: r.tcp,
        ...(r.http && { http: r.http }),
        ...(r.failure && { failure: r.failure, diagnosis: r.diagnosis }),
      })),
    })),
    zones: report.zones,
  };
}

const MARK: Record<Failure, string> = {
  'not-found': 'NXDOMAIN',
  'no-instances': 'no instances',
  registry: 'registry error',
  'connect-timeout': 'timeout',
  refused: 'refused',
  unreachable: 'unreachable',
  reset: 'reset',
  'http-timeout': 'timeout',
  'http-5xx': '',
  'http-4xx': '',
  'http-error': 'error',
};

export function formatReport(report: CheckReport): string {
  const rows: string[][] = [];
  for (const s of report.services) {
    if (s.error) {
      rows.push([s.name, '-', '-', MARK[s.error.failure], '-', '-', 'FAIL']);
      continue;
    }
    for (const r of s.instances) {
      const tcp = r.tcp.ok ? `ok ${duration(r.tcp.ms)}` : MARK[r.failure!];
      let http = '-';
      if (r.http?.status !== undefined) http = `${r.http.status} ${duration(r.http.ms)}`;
      else if (r.http) http = MARK[r.failure!] || 'error';
      rows.push([s.name, instanceKey({ address: r.instance.address, port: r.port }), r.instance.zone ?? '-', 'ok', tcp, `${http}`, r.ok ? 'ok' : 'FAIL']);
    }
  }
  let out = table(['SERVICE', 'INSTANCE', 'ZONE', 'DNS', 'TCP', `HTTP`, 'RESULT'], rows);
  const diagnoses: string[] = [];
  for (const s of report.services) {
    if (s.error) diagnoses.push(`✗ ${s.name}: ${s.error.diagnosis}`);
    for (const r of s.instances) if (!r.ok) diagnoses.push(`✗ ${s.name} ${instanceKey({ address: r.instance.address, port: r.port })}: ${r.diagnosis}`);
  }
  for (const z of report.zones) diagnoses.push(`✗ zone ${z.zone}: ${z.diagnosis}`);
  const instances = report.services.reduce((n, s) => n + s.instances.length, 0);
  const failedInstances = report.services.reduce((n, s) => n + s.instances.filter((r) => !r.ok).length, 0);
  const failedNames = report.services.filter((s) => s.error).length;
  if (diagnoses.length > 0) out += `\n${diagnoses.join('\n')}\n`;
  out +=
    `\n${report.services.length} service${report.services.length === 1 ? '' : 's'}, ${instances} instance${instances === 1 ? '' : 's'}: ` +
    (report.ok ? 'all ok\n' : `${failedNames} not resolved, ${failedInstances} instance${failedInstances === 1 ? '' : 's'} failing\n`);
  return out;
}
