/**
 * `signpost check <config.json>`: a connectivity matrix. For each service of the config it
 * resolves the name (as a signpost client would), opens a TCP connection to every instance and
 * calls its health path over HTTP or HTTPS, then says for each failure what usually causes it,
 * and which failures are a zone's rather than each instance's.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
// A namespace import: older Nodes lack getCACertificates, and a named import of a missing export
// fails when modules are linked, before assert-node can say which Node is needed.
import * as tls from 'node:tls';
import { Discovery } from '../discovery.ts';
import { errorCode, SignpostError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import type { DiscoveryOptions } from '../options.ts';
import { normalizeName } from '../routing.ts';
import type { Instance } from '../types.ts';
import { isPlainObject } from '../validate.ts';
import { EXIT_FAILURE, EXIT_OK, helpText, parse, parseInteger, usageOf, UsageError, withHelp, type CliIo, type CommandSpec } from './args.ts';
import { duration, oneLine, table } from './format.ts';

export const DEFAULT_CHECK_TIMEOUT_MS = 3000;
export const DEFAULT_HEALTH_PATH = '/health';
const DEFAULT_PORT = { http: 80, https: 443 } as const;
/** Instances checked at once. */
const CONCURRENCY = 16;
/**
 * Checked instances a zone needs, every one failing, before its failures are called the zone's:
 * one dead instance alone in its zone is that instance's problem.
 */
export const MIN_ZONE_INSTANCES = 2;

export type Scheme = 'http' | 'https';

export const CHECK_COMMAND = {
  name: 'check',
  args: '<config.json>',
  summary:
    'Builds a connectivity matrix: resolves every service of <config.json> as a signpost client would, opens a\n' +
    'TCP connection to each instance and calls its health path (HTTP, or HTTPS with the certificate checked\n' +
    'against the service name), then says for each failure what usually causes it, and when the failures of\n' +
    'a zone are a zone problem.',
  flags: withHelp({
    path: { type: 'string', value: '/health', help: `the health path of services the config's "health" does not list (default: ${DEFAULT_HEALTH_PATH})` },
    scheme: {
      type: 'string',
      value: 'http|https',
      help: 'how to call the health path of services the config\'s "health" does not set (default: https on port 443, else http)',
    },
    ca: { type: 'string', value: 'FILE', help: "PEM certificates of a CA to trust for https, besides Node's (a private CA)" },
    timeout: { type: 'string', value: 'ms', help: `for the TCP connection, and again for the answer (default: ${DEFAULT_CHECK_TIMEOUT_MS}; 1 to 600000)` },
    json: { type: 'boolean', help: 'print the matrix as JSON' },
  }),
  notes:
    '<config.json> holds Discovery options (services, namespaces, aliases, dns, cloudMap, subnets, ...), plus:\n' +
    '  "check": ["orders.myapp.local"]                  names to check besides those of services, aliases and health\n' +
    '  "health": { "orders.myapp.local": "/ready" }     a health path per service, or\n' +
    '  "health": { "web.myapp.local": { "path": "/ready", "scheme": "https" } }\n\n' +
    `A zone problem: every checked instance of a zone fails (at least ${MIN_ZONE_INSTANCES}) while most instances of each\n` +
    'other zone pass. Zones come from Cloud Map (AVAILABILITY_ZONE) or the config\'s "subnets".\n\n' +
    'Exit codes: 0 every instance answered; 1 a name did not resolve or an instance failed; 2 bad arguments.',
} as const satisfies CommandSpec;

/** How one service's health is checked, as the config's `health` may say. */
export interface HealthCheck {
  /** @default the --path flag, else DEFAULT_HEALTH_PATH */
  path?: string;
  /** @default the --scheme flag, else https on port 443 and http elsewhere */
  scheme?: Scheme;
}

/**
 * The config file: Discovery options, plus `health` (service name → health path, or
 * `{ path, scheme }`) and `check` (names to check besides the keys of `services`, `aliases` and
 * `health`: names that `namespaces` rules cover, for example).
 */
export interface CheckConfig extends Omit<DiscoveryOptions, 'clock' | 'balancer'> {
  health?: Record<string, string | HealthCheck>;
  check?: string[];
}

/** Opens a TCP connection; injectable so a test can stand in for a network that drops packets. */
export type ConnectFunction = (options: { host: string; port: number }) => Socket;

export interface CheckOptions {
  /** @default DEFAULT_CHECK_TIMEOUT_MS, for the TCP connect and for the HTTP answer each */
  timeout?: number;
  /** @default '/health' */
  path?: string;
  /** For services whose `health` sets none. @default https on port 443, else http */
  scheme?: Scheme;
  /** CA certificates (PEM) trusted for https besides Node's. */
  ca?: string;
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
  | 'tls'
  | 'http-timeout'
  | 'http-5xx'
  | 'http-4xx'
  | 'http-error';

export interface InstanceResult {
  readonly instance: Instance;
  readonly port: number;
  readonly scheme: Scheme;
  readonly tcp: { ok: boolean; ms: number; error?: string };
  readonly http?: { status?: number; ms: number; error?: string };
  readonly ok: boolean;
  readonly failure?: Failure;
  readonly diagnosis?: string;
  /** Set when this failure is part of a zone problem: the zone's finding explains it. */
  readonly zoneProblem?: string;
}

export interface ServiceResult {
  readonly name: string;
  readonly path: string;
  /** What the config or the flags asked for; each instance's `scheme` is what was used. */
  readonly scheme?: Scheme;
  readonly ok: boolean;
  readonly resolved?: { ms: number };
  readonly error?: { code: string; message: string; failure: Failure; diagnosis: string };
  readonly instances: readonly InstanceResult[];
}

export interface ZoneFinding {
  readonly zone: string;
  readonly services: readonly string[];
  /** The zone's failing instances: all it has. */
  readonly failed: number;
  /** The zones whose instances (most of them) pass. */
  readonly fine: readonly string[];
  readonly diagnosis: string;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly services: readonly ServiceResult[];
  readonly zones: readonly ZoneFinding[];
}

function isHealthCheck(value: unknown): boolean {
  if (typeof value === 'string') return value.startsWith('/');
  if (!isPlainObject(value)) return false;
  const { path, scheme, ...rest } = value;
  return (
    Object.keys(rest).length === 0 &&
    (path === undefined || (typeof path === 'string' && path.startsWith('/'))) &&
    (scheme === undefined || scheme === 'http' || scheme === 'https')
  );
}

export async function loadCheckConfig(file: string, usage = usageOf(CHECK_COMMAND)): Promise<CheckConfig> {
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
  if (health !== undefined && (!isPlainObject(health) || !Object.values(health).every(isHealthCheck))) {
    throw new UsageError(
      `"health" in ${file} must map service names to a path such as "/health", or to { "path": "/health", "scheme": "http" or "https" }`,
      usage,
    );
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
  const healthChecks = new Map(
    Object.entries(health ?? {}).map(([name, check]): [string, HealthCheck] => [normalizeName(name), typeof check === 'string' ? { path: check } : check]),
  );
  // No passive health: check sees every instance, ejected or not.
  const discovery = new Discovery({ ...discoveryOptions, ejection: false });
  try {
    const names = namesToCheck(config);
    const services = await Promise.all(
      names.map(async (name): Promise<ServiceResult> => {
        const path = healthChecks.get(name)?.path ?? defaultPath;
        const scheme = healthChecks.get(name)?.scheme ?? options.scheme;
        const started = performance.now();
        let instances: Instance[];
        try {
          instances = await discovery.resolve(name);
        } catch (error) {
          return { name, path, ...(scheme && { scheme }), ok: false, error: resolveFailure(name, error), instances: [] };
        }
        const resolved = { ms: performance.now() - started };
        const probe = { name, path, scheme, timeout, connect, ca: options.ca };
        const results = await mapLimit(instances, CONCURRENCY, (instance) => checkInstance(probe, instance));
        return { name, path, ...(scheme && { scheme }), ok: results.every((r) => r.ok), resolved, instances: results };
      }),
    );
    const zones = zoneFindings(services);
    return { ok: services.every((s) => s.ok), services: markZoneProblems(services, zones), zones };
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

/** What checking one service's instances needs. */
interface Probe {
  readonly name: string;
  readonly path: string;
  /** Unset: https on port 443, http elsewhere. */
  readonly scheme: Scheme | undefined;
  readonly timeout: number;
  readonly connect: ConnectFunction;
  readonly ca: string | undefined;
}

/** The certificate chain cannot be verified: an unknown (private) CA, or a self-signed certificate. */
const UNTRUSTED_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

async function checkInstance(probe: Probe, instance: Instance): Promise<InstanceResult> {
  const { name, path, timeout, connect } = probe;
  const scheme: Scheme = probe.scheme ?? (instance.port === DEFAULT_PORT.https ? 'https' : 'http');
  const port = instance.port ?? DEFAULT_PORT[scheme];
  const where = instanceKey({ address: instance.address, port });
  const fail = (tcp: InstanceResult['tcp'], http: InstanceResult['http'], failure: Failure, diagnosis: string): InstanceResult => ({
    instance,
    port,
    scheme,
    tcp,
    ...(http !== undefined && { http }),
    ok: false,
    failure,
    diagnosis,
  });
  const started = performance.now();
  let socket: Socket;
  try {
    socket = await openTcp(connect, instance.address, port, timeout);
  } catch (error) {
    const ms = performance.now() - started;
    const code = failureCode(error);
    const tcp = { ok: false, ms, error: code };
    if (code === 'SIGNPOST_CHECK_TIMEOUT' || code === 'ETIMEDOUT') {
      return fail(tcp, undefined, 'connect-timeout',
        `${name} resolves, but the TCP connection to ${where} timed out after ${duration(timeout)}: a security group or NACL ` +
          `drops the traffic. Allow inbound TCP ${port} from this caller's security group or subnet, and check the NACLs in both ` +
          'directions (return traffic uses ephemeral ports 1024-65535)');
    }
    if (code === 'ECONNREFUSED') {
      return fail(tcp, undefined, 'refused',
        `connection refused at ${where}: nothing listens on port ${port} there. Check the containerPort / port mapping ` +
          'and the port registered for the service (SRV, AWS_INSTANCE_PORT or the config), or the task has stopped');
    }
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      return fail(tcp, undefined, 'unreachable',
        `no route to ${instance.address} (${code}): check the route tables between the subnets, or the instance is gone and the registry stale`);
    }
    if (code === 'ECONNRESET') {
      return fail(tcp, undefined, 'reset', `the connection to ${where} was reset while opening: a NACL deny or a proxy in the path rejects it`);
    }
    return fail(tcp, undefined, 'connect-timeout', `the TCP connection to ${where} failed (${code})`);
  }
  const tcp = { ok: true, ms: performance.now() - started };
  const httpStarted = performance.now();
  const http = (error?: string, status?: number): NonNullable<InstanceResult['http']> => ({
    ...(status !== undefined && { status }),
    ms: performance.now() - httpStarted,
    ...(error !== undefined && { error }),
  });
  let stream: Socket = socket;
  if (scheme === 'https') {
    try {
      stream = await startTls(socket, name, probe.ca, timeout);
    } catch (error) {
      const code = failureCode(error);
      return fail(tcp, http(code), 'tls', tlsDiagnosis(code, error, name, where, port, timeout));
    }
  }
  const request = `${scheme === 'https' ? 'HTTPS ' : ''}GET ${path}`;
  try {
    const status = await httpGet(stream, name, port, scheme, path, timeout);
    if (status >= 500) {
      return fail(tcp, http(undefined, status), 'http-5xx',
        `HTTP ${status} from ${request} at ${where}: the instance is unhealthy. Check its logs and its own dependencies; ` +
          'the registry\'s health checks should take it out');
    }
    if (status >= 400) {
      return fail(tcp, http(undefined, status), 'http-4xx',
        `HTTP ${status} from ${request} at ${where}: is ${path} the health path? Set it per service in the config's "health", or with --path` +
          (scheme === 'http' && status === 400 ? '. A 400 to plain HTTP can also mean the port expects TLS: try --scheme https' : ''));
    }
    return { instance, port, scheme, tcp, http: http(undefined, status), ok: true };
  } catch (error) {
    const code = failureCode(error);
    if (code === 'SIGNPOST_CHECK_TIMEOUT') {
      return fail(tcp, http(code), 'http-timeout',
        `${where} accepted the connection but sent no HTTP response to ${request} within ${duration(timeout)}: the app is hung ` +
          'or overloaded (or something in between holds the request)');
    }
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      return fail(tcp, http(code), 'reset',
        `${where} reset the connection during ${request}: the instance closed it. Is it stopping during a deployment, ` +
          'or is its keep-alive timeout shorter than the caller\'s?' + (scheme === 'http' ? ' Or the port expects TLS: use --scheme https' : ''));
    }
    if (code.startsWith('HPE_')) {
      return fail(tcp, http(code), 'http-error',
        `${where} answered ${request} with something that is not HTTP (${code})` +
          (scheme === 'http' ? ': does the port expect TLS? Use --scheme https' : ': is it another protocol on that port?'));
    }
    return fail(tcp, http(code), 'http-error', `${request} at ${where} failed: ${code}: ${oneLine(error)}`);
  }
}

function tlsDiagnosis(code: string, error: unknown, name: string, where: string, port: number, timeout: number): string {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return (
      `the certificate at ${where} is not valid for ${name} (${oneLine(error)}): callers check it against the name they call, ` +
      `so it must name ${name} (subjectAltName DNS:${name}, or a wildcard of its domain)`
    );
  }
  if (UNTRUSTED_CA.has(code)) {
    return (
      `the certificate at ${where} is signed by a CA this process does not trust (${code}): pass the CA with --ca FILE here; ` +
      'callers need it too (NODE_EXTRA_CA_CERTS, or connect: { ca } on the DiscoveryAgent)'
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `the certificate at ${where} is ${code === 'CERT_HAS_EXPIRED' ? 'expired' : 'not valid yet'}: renew it, or check the instance's clock`;
  }
  if (code === 'SIGNPOST_CHECK_TIMEOUT') {
    return `${where} accepted the connection but did not complete a TLS handshake within ${duration(timeout)}: does port ${port} speak TLS?`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'EPROTO' || code === 'ECONNRESET') {
    return `${where} does not speak TLS on port ${port} (${code}): if it serves plain HTTP, use --scheme http (or "scheme": "http" in the config's "health")`;
  }
  return `the TLS handshake with ${where} failed: ${code}: ${oneLine(error)}`;
}

/** The error's code, else its name: every failure gets a word for the matrix. */
function failureCode(error: unknown): string {
  return errorCode(error) ?? (error as Error | null)?.name ?? 'Error';
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

/** TLS over an open connection, verified against the service name as a signpost client does. */
function startTls(socket: Socket, name: string, ca: string | undefined, timeout: number): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const secure = tls.connect({
      socket,
      ...(isIP(name) === 0 && { servername: name }),
      // The CAs Node trusts (NODE_EXTRA_CA_CERTS included), plus the one given: a private CA must
      // not make the others untrusted.
      ...(ca !== undefined && { ca: [...tls.getCACertificates('default'), ca] }),
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(() => {
      secure.destroy();
      socket.destroy();
      reject(new CheckTimeout(`no TLS handshake within ${timeout} ms`));
    }, timeout);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (error) => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      reject(error);
    });
  });
}

function httpGet(socket: Socket, name: string, port: number, scheme: Scheme, path: string, timeout: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request({
      host: name,
      port,
      path,
      method: 'GET',
      headers: { host: port === DEFAULT_PORT[scheme] ? name : `${name}:${port}`, 'user-agent': 'signpost-check', connection: 'close' },
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

/** Failures of the connection itself, before any HTTP: where a zone's network shows. */
const CONNECTION_FAILURES: ReadonlySet<Failure> = new Set(['connect-timeout', 'refused', 'unreachable', 'reset']);

/** "a", "a and b", "a, b and c" */
function list(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/**
 * Zone problems: a zone whose checked instances all fail, at least {@link MIN_ZONE_INSTANCES}
 * of them, while most instances of every other zone pass. One dead instance alone in its zone is
 * that instance's problem; failures in every zone are the services' (or the caller's), not a
 * zone's.
 */
function zoneFindings(services: readonly ServiceResult[]): ZoneFinding[] {
  const byZone = new Map<string, { ok: number; failed: Array<{ service: string; result: InstanceResult }> }>();
  for (const service of services) {
    for (const result of service.instances) {
      const zone = result.instance.zone;
      if (zone === undefined) continue;
      let entry = byZone.get(zone);
      if (entry === undefined) byZone.set(zone, (entry = { ok: 0, failed: [] }));
      if (result.ok) entry.ok += 1;
      else entry.failed.push({ service: service.name, result });
    }
  }
  const fine = [...byZone].filter(([, z]) => z.ok > z.failed.length).map(([zone]) => zone).sort();
  const findings: ZoneFinding[] = [];
  for (const [zone, z] of byZone) {
    if (z.ok > 0 || z.failed.length < MIN_ZONE_INSTANCES) continue;
    const others = [...byZone.keys()].filter((other) => other !== zone);
    if (others.length === 0 || !others.every((other) => fine.includes(other))) continue;
    const services = [...new Set(z.failed.map((f) => f.service))].sort();
    const connection = z.failed.filter((f) => CONNECTION_FAILURES.has(f.result.failure!)).length;
    let what: string;
    if (connection === z.failed.length) {
      what =
        'Their connections fail: check the route tables and network ACLs of the subnets in that zone, ' +
        'and whether the zone itself is impaired (the AWS Health Dashboard)';
    } else if (connection === 0) {
      what =
        'They accept connections but fail their health checks: look for a dependency they reach only from that zone ' +
        '(a zonal database replica, cache node or NAT gateway)';
    } else {
      what =
        'Some fail to connect, the others fail their health checks: check the network of the subnets in that zone ' +
        '(route tables, network ACLs) and the dependencies the instances reach from there';
    }
    findings.push({
      zone,
      services,
      failed: z.failed.length,
      fine: others,
      diagnosis:
        `all ${z.failed.length} instances checked in zone ${zone} fail (${list(services)}), while ${list(others)} ` +
        `${others.length === 1 ? 'is' : 'are'} fine: the zone is the problem, not each instance. ${what}`,
    });
  }
  return findings.sort((a, b) => a.zone.localeCompare(b.zone));
}

/** The failing instances of a zone with a zone problem point at it. */
function markZoneProblems(services: readonly ServiceResult[], zones: readonly ZoneFinding[]): ServiceResult[] {
  if (zones.length === 0) return [...services];
  const down = new Set(zones.map((z) => z.zone));
  return services.map((service) => ({
    ...service,
    instances: service.instances.map((r) =>
      r.ok || r.instance.zone === undefined || !down.has(r.instance.zone)
        ? r
        : { ...r, zoneProblem: r.instance.zone, diagnosis: `part of the zone ${r.instance.zone} problem (see "zones"): ${r.diagnosis}` },
    ),
  }));
}

async function readCa(file: string, usage: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--ca: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? oneLine(error)}`, usage);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, usage);
  return text;
}

export async function runCheck(argv: readonly string[], io: CliIo): Promise<number> {
  const usage = usageOf(CHECK_COMMAND);
  const { values, positionals } = parse(argv, CHECK_COMMAND);
  if (values.help) {
    io.stdout.write(helpText(CHECK_COMMAND));
    return EXIT_OK;
  }
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'missing <config.json>' : `expected one <config.json>, got ${positionals.length}`, usage);
  }
  const timeout = parseInteger('timeout', values.timeout, 1, 600_000, usage);
  if (values.path !== undefined && !values.path.startsWith('/')) {
    throw new UsageError(`--path must start with "/", got ${JSON.stringify(values.path)}`, usage);
  }
  if (values.scheme !== undefined && values.scheme !== 'http' && values.scheme !== 'https') {
    throw new UsageError(`--scheme must be http or https, got ${JSON.stringify(values.scheme)}`, usage);
  }
  const scheme = values.scheme as Scheme | undefined;
  const ca = values.ca === undefined ? undefined : await readCa(values.ca, usage);
  const file = positionals[0]!;
  const config = await loadCheckConfig(file, usage);
  if (namesToCheck(config).length === 0) {
    throw new UsageError(`${file} lists no services: add "services", "aliases", "health" or "check"`, usage);
  }
  let report: CheckReport;
  try {
    report = await check(config, {
      ...(timeout !== undefined && { timeout }),
      ...(values.path !== undefined && { path: values.path }),
      ...(scheme !== undefined && { scheme }),
      ...(ca !== undefined && { ca }),
    });
  } catch (error) {
    if (error instanceof SignpostError && error.code === 'SIGNPOST_ERR_INVALID_ARG') {
      throw new UsageError(`${file}: ${oneLine(error)}`, usage);
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
      ...(s.scheme && { scheme: s.scheme }),
      ...(s.error && { error: s.error }),
      instances: s.instances.map((r) => ({
        id: r.instance.id,
        address: r.instance.address,
        port: r.port,
        scheme: r.scheme,
        zone: r.instance.zone ?? null,
        ok: r.ok,
        tcp: r.tcp,
        ...(r.http && { http: r.http }),
        ...(r.failure && { failure: r.failure, diagnosis: r.diagnosis }),
        ...(r.zoneProblem && { zoneProblem: r.zoneProblem }),
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
  tls: 'TLS error',
  'http-timeout': 'timeout',
  'http-5xx': '',
  'http-4xx': '',
  'http-error': 'error',
};

/** An instance's failure in a few words, for the lines under a zone problem. */
function shortFailure(r: InstanceResult): string {
  if (r.http?.status !== undefined) return `HTTP ${r.http.status}`;
  if (r.failure === 'connect-timeout') return 'connect timeout';
  if (r.failure === 'http-timeout') return 'no HTTP answer';
  return MARK[r.failure!] || 'error';
}

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
      if (r.scheme === 'https' && r.http) http = `https ${http}`;
      rows.push([s.name, instanceKey({ address: r.instance.address, port: r.port }), r.instance.zone ?? '-', 'ok', tcp, http, r.ok ? 'ok' : 'FAIL']);
    }
  }
  let out = table(['SERVICE', 'INSTANCE', 'ZONE', 'DNS', 'TCP', 'HTTP', 'RESULT'], rows);
  const diagnoses: string[] = [];
  for (const s of report.services) {
    if (s.error) diagnoses.push(`✗ ${s.name}: ${s.error.diagnosis}`);
    for (const r of s.instances) {
      if (!r.ok && r.zoneProblem === undefined) diagnoses.push(`✗ ${s.name} ${instanceKey({ address: r.instance.address, port: r.port })}: ${r.diagnosis}`);
    }
  }
  for (const z of report.zones) {
    diagnoses.push(`✗ zone ${z.zone}: ${z.diagnosis}`);
    for (const s of report.services) {
      for (const r of s.instances) {
        if (r.zoneProblem === z.zone) diagnoses.push(`    ${s.name} ${instanceKey({ address: r.instance.address, port: r.port })}: ${shortFailure(r)}`);
      }
    }
  }
  const instances = report.services.reduce((n, s) => n + s.instances.length, 0);
  const failedInstances = report.services.reduce((n, s) => n + s.instances.filter((r) => !r.ok).length, 0);
  const failedNames = report.services.filter((s) => s.error).length;
  if (diagnoses.length > 0) out += `\n${diagnoses.join('\n')}\n`;
  out +=
    `\n${report.services.length} service${report.services.length === 1 ? '' : 's'}, ${instances} instance${instances === 1 ? '' : 's'}: ` +
    (report.ok ? 'all ok\n' : `${failedNames} not resolved, ${failedInstances} instance${failedInstances === 1 ? '' : 's'} failing\n`);
  return out;
}
