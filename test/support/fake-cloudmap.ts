/**
 * The one Cloud Map stand-in of tests, the demo and the benchmarks: the data API
 * (DiscoverInstances, DiscoverInstancesRevision; AWS JSON 1.1) over an in-memory account that
 * callers change while it runs, answering as the API model in @aws-sdk/client-servicediscovery
 * says. Reach it two ways:
 *
 * - over loopback HTTP: `const fake = await FakeCloudMap.start()`, then
 *   `cloudMap: { endpoint: fake.endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS }`;
 * - through msw at AWS's own endpoint (`https://data-servicediscovery.<region>.amazonaws.com/`):
 *   `const fake = new FakeCloudMap(); setupServer(fake.handler)`, with `region` only.
 *
 * What it checks and answers like Cloud Map:
 * - SigV4: an `Authorization` header whose credential scope names this region and the
 *   `servicediscovery` service (else 403 InvalidSignatureException), from a known access key
 *   (else UnrecognizedClientException); nothing else of the signature is checked.
 * - Errors with the model's status codes and `__type`: NamespaceNotFound and ServiceNotFound
 *   404, RequestLimitExceeded 429, InvalidInput 400, AccessDeniedException 400.
 * - `NamespaceName` is the namespace's HttpName, which may differ from its name (a hash added).
 * - `OwnerAccount`: a namespace owned by another account (shared through AWS RAM) is found only
 *   with `OwnerAccount` set to that account.
 * - `HealthStatus` filters only services with health checks; a service without any ignores it
 *   and reports its instances' health as UNKNOWN. Health changes leave the revision alone;
 *   registering, deregistering and changing attributes move it.
 * - Answers come in random order, at most `MaxResults` (default 100, at most 1,000).
 * - Account-wide quotas as token buckets per operation (`quota`), like the documented ones
 *   (DiscoverInstances 1,000/s with bursts of 2,000; DiscoverInstancesRevision 3,000/s), answering
 *   429 RequestLimitExceeded beyond them.
 *
 * Usage:
 *   fake.register('myapp.local', 'orders', { id: 'i-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.2', AWS_INSTANCE_PORT: '8080' } });
 *   fake.setHealth('myapp.local', 'orders', 'i-1', 'UNHEALTHY');
 *   fake.failNext(2, 'RequestLimitExceeded');      // status 429 from the model
 *   fake.deny('DiscoverInstancesRevision');        // the role lacks the permission
 *   fake.respond((call) => (call.operation === 'DiscoverInstances' ? 'hang' : undefined));
 *   fake.calls.DiscoverInstances; fake.requests.at(-1);
 *   await fake.close();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { http, HttpResponse, type HttpHandler } from 'msw';

export const TEST_REGION = 'us-east-1';
/** The caller's account: every known access key belongs to it. */
export const TEST_ACCOUNT = '111111111111';
export const TEST_CREDENTIALS = { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } as const;

export type FakeOperation = 'DiscoverInstances' | 'DiscoverInstancesRevision';
export type FakeHealthStatus = 'HEALTHY' | 'UNHEALTHY';
/** How a service checks health: none, custom (what ECS creates) or Route 53 health checks. */
export type FakeHealthCheck = 'none' | 'custom' | 'route53';

export interface FakeInstance {
  id: string;
  attributes: Record<string, string>;
  /** Only for services with health checks. @default 'HEALTHY' */
  healthStatus?: FakeHealthStatus;
}

export interface FakeRequest {
  operation: FakeOperation;
  body: Record<string, unknown>;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  /** When it arrived (performance.now(), ms). */
  at: number;
  /** The status answered (0 for a hung or dropped call). */
  status: number;
}

export interface FakeError {
  /** The AWS error name (`__type`), such as `RequestLimitExceeded`. */
  type: string;
  /** @default the model's status for `type` (429 for RequestLimitExceeded, …), else 400 */
  status?: number;
  message?: string;
}

/** What {@link FakeCloudMap.respond} may answer instead of the model. */
export type FakeAnswer =
  | { status: number; body: unknown }
  | FakeError
  /** Never answers (until close). */
  | 'hang'
  /** Drops the connection without an answer. */
  | 'drop';

export interface FakeQuota {
  /** Tokens added per second. */
  rate: number;
  /** The bucket's size: the most calls at once. @default rate */
  burst?: number;
}

export interface FakeCloudMapOptions {
  /** The loopback address to listen on (for {@link FakeCloudMap.start}). @default '127.0.0.1' */
  address?: string;
  /** The region credential scopes must name, and msw's endpoint's. @default TEST_REGION */
  region?: string;
  /** Access key ids the account knows. @default [TEST_CREDENTIALS.accessKeyId] plus any starting with AKID */
  accessKeys?: readonly string[];
  /** Account-wide quotas per operation. @default none */
  quota?: Partial<Record<FakeOperation, FakeQuota>>;
  /**
   * The legacy form of `quota`: both operations share `callsPerSecond` calls a second.
   * @deprecated use `quota`
   */
  callsPerSecond?: number;
}

/** The model's status code for each error the data API names, and a few common ones. */
const STATUS: Record<string, number> = {
  NamespaceNotFound: 404,
  ServiceNotFound: 404,
  RequestLimitExceeded: 429,
  InvalidInput: 400,
  AccessDeniedException: 400,
  UnrecognizedClientException: 400,
  InvalidSignatureException: 403,
  MissingAuthenticationTokenException: 403,
  ThrottlingException: 400,
  InternalFailure: 500,
  ServiceUnavailable: 503,
};

const TARGET_PREFIX = 'Route53AutoNaming_v20170314.';

interface InstanceEntry {
  attributes: Record<string, string>;
  healthStatus: FakeHealthStatus;
}

interface ServiceEntry {
  healthCheck: FakeHealthCheck;
  revision: number;
  instances: Map<string, InstanceEntry>;
}

interface NamespaceEntry {
  name: string;
  httpName: string;
  owner: string;
  services: Map<string, ServiceEntry>;
}

class Bucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #at = performance.now();

  constructor(quota: FakeQuota) {
    this.#rate = quota.rate;
    this.#burst = quota.burst ?? quota.rate;
    this.#tokens = this.#burst;
  }

  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Empties the bucket: another consumer of the account took every token. */
  drain(): void {
    this.take();
    this.#tokens = 0;
  }
}

type Outcome = { status: number; body: unknown } | 'hang' | 'drop';

export class FakeCloudMap {
  readonly region: string;
  /** Calls answered (including errors), per operation. */
  readonly calls: Record<FakeOperation, number> = { DiscoverInstances: 0, DiscoverInstancesRevision: 0 };
  /** Every call, oldest first. */
  readonly requests: FakeRequest[] = [];
  /** msw's handler for AWS's own endpoint of {@link region}. */
  readonly handler: HttpHandler;
  /** `http://127.0.0.1:PORT` once {@link start}ed, for `cloudMap.endpoint`. */
  endpoint = '';
  readonly #namespaces: NamespaceEntry[] = [];
  readonly #failures: { error: FakeError; operation: FakeOperation | undefined }[] = [];
  readonly #denied = new Set<FakeOperation>();
  readonly #buckets = new Map<FakeOperation, Bucket>();
  readonly #accessKeys: readonly string[] | undefined;
  readonly #hung = new Set<() => void>();
  #respond: ((call: FakeRequest) => FakeAnswer | undefined) | undefined;
  #storm = false;
  #nextRevision = 1;
  #server: Server | undefined;

  constructor(options: FakeCloudMapOptions = {}) {
    this.region = options.region ?? TEST_REGION;
    this.#accessKeys = options.accessKeys;
    if (options.callsPerSecond !== undefined) {
      const shared = new Bucket({ rate: options.callsPerSecond });
      this.#buckets.set('DiscoverInstances', shared);
      this.#buckets.set('DiscoverInstancesRevision', shared);
    }
    for (const [operation, quota] of Object.entries(options.quota ?? {}) as [FakeOperation, FakeQuota][]) {
      this.#buckets.set(operation, new Bucket(quota));
    }
    this.handler = this.handlerAt(`https://data-servicediscovery.${this.region}.amazonaws.com/`);
  }

  /** An msw handler answering at `url` (a custom endpoint such as a FIPS or VPC endpoint's). */
  handlerAt(url: string): HttpHandler {
    return http.post(url, async ({ request }) => {
      const headers: Record<string, string> = {};
      request.headers.forEach((value, key) => {
        headers[key] = value;
      });
      const outcome = await this.#handle('POST', headers, await request.text());
      if (outcome === 'drop') return Response.error();
      if (outcome === 'hang') return new Promise<never>((resolve) => this.#hung.add(() => resolve(Response.error() as never)));
      return HttpResponse.json(outcome.body as Record<string, unknown>, { status: outcome.status, headers: answerHeaders() });
    });
  }

  /** A stand-in listening on loopback. */
  static async start(options: FakeCloudMapOptions = {}): Promise<FakeCloudMap> {
    const fake = new FakeCloudMap(options);
    const server = createServer((request, response) => void fake.#serve(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, options.address ?? '127.0.0.1', () => resolve());
    });
    fake.#server = server;
    const { address, port } = server.address() as AddressInfo;
    fake.endpoint = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
    return fake;
  }

  /**
   * Creates a namespace. `httpName` is what DiscoverInstances takes (Cloud Map adds a hash to it
   * when a name is reused); `owner` another account that shares it with the caller.
   */
  createNamespace(name: string, options: { httpName?: string; owner?: string } = {}): void {
    if (this.#namespace(options.owner ?? TEST_ACCOUNT, options.httpName ?? name)) return;
    this.#namespaces.push({ name, httpName: options.httpName ?? name, owner: options.owner ?? TEST_ACCOUNT, services: new Map() });
  }

  /** Creates an empty service (and its namespace, by HttpName). @default healthCheck 'custom' (ECS) */
  createService(namespace: string, service: string, options: { healthCheck?: FakeHealthCheck; owner?: string } = {}): void {
    this.#service(namespace, service, true, options.owner, options.healthCheck);
  }

  /** Adds or replaces an instance; moves the revision. */
  register(namespace: string, service: string, instance: FakeInstance, options: { owner?: string } = {}): void {
    const entry = this.#service(namespace, service, true, options.owner)!;
    entry.instances.set(instance.id, { attributes: { ...instance.attributes }, healthStatus: instance.healthStatus ?? 'HEALTHY' });
    entry.revision = this.#nextRevision++;
  }

  /** Removes an instance; moves the revision. */
  deregister(namespace: string, service: string, id: string, options: { owner?: string } = {}): void {
    const entry = this.#service(namespace, service, false, options.owner);
    if (entry?.instances.delete(id)) entry.revision = this.#nextRevision++;
  }

  /** Changes an instance's health (UpdateInstanceCustomHealthStatus); the revision stays, as in Cloud Map. */
  setHealth(namespace: string, service: string, id: string, healthStatus: FakeHealthStatus, options: { owner?: string } = {}): void {
    const entry = this.#service(namespace, service, false, options.owner);
    const instance = entry?.instances.get(id);
    if (entry === undefined || instance === undefined) throw new Error(`no instance ${id} in ${service}.${namespace}`);
    if (entry.healthCheck === 'none') throw new Error(`${service}.${namespace} has no health checks (CustomHealthNotFound)`);
    instance.healthStatus = healthStatus;
  }

  deleteService(namespace: string, service: string): void {
    this.#namespace(TEST_ACCOUNT, namespace)?.services.delete(service);
  }

  deleteNamespace(namespace: string): void {
    const index = this.#namespaces.findIndex((n) => n.owner === TEST_ACCOUNT && n.httpName === namespace);
    if (index !== -1) this.#namespaces.splice(index, 1);
  }

  /** The service's current revision, or undefined when it does not exist. */
  revision(namespace: string, service: string, options: { owner?: string } = {}): number | undefined {
    return this.#service(namespace, service, false, options.owner)?.revision;
  }

  /** The next `count` calls (of `operation`, or either) fail with `error` (a name, or a full error). */
  failNext(count: number, error: FakeError | string, operation?: FakeOperation): void {
    const full = typeof error === 'string' ? { type: error } : error;
    for (let i = 0; i < count; i++) this.#failures.push({ error: full, operation });
  }

  /** `operation` is denied to the caller's role (AccessDeniedException) until {@link allow}. */
  deny(operation: FakeOperation): void {
    this.#denied.add(operation);
  }

  allow(operation: FakeOperation): void {
    this.#denied.delete(operation);
  }

  /**
   * A throttling storm: while on, every call is answered 429 RequestLimitExceeded (another
   * consumer of the account takes every token); when it ends the quotas' buckets start empty.
   */
  storm(on: boolean): void {
    if (this.#storm && !on) for (const bucket of this.#buckets.values()) bucket.drain();
    this.#storm = on;
  }

  /** Answers calls with `fn`'s answer instead of the model's, whenever it returns one. */
  respond(fn: ((call: FakeRequest) => FakeAnswer | undefined) | undefined): void {
    this.#respond = fn;
  }

  /** Forgets every namespace, scripted answer, denial, quota use and recorded call. */
  reset(): void {
    this.#namespaces.length = 0;
    this.#failures.length = 0;
    this.#denied.clear();
    this.#respond = undefined;
    this.#storm = false;
    this.requests.length = 0;
    this.calls.DiscoverInstances = 0;
    this.calls.DiscoverInstancesRevision = 0;
    for (const release of this.#hung) release();
    this.#hung.clear();
  }

  /** Calls of `operation` so far (answered or not). */
  count(operation: FakeOperation): number {
    return this.calls[operation];
  }

  async close(): Promise<void> {
    for (const release of this.#hung) release();
    this.#hung.clear();
    const server = this.#server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #namespace(owner: string, httpName: string): NamespaceEntry | undefined {
    return this.#namespaces.find((n) => n.owner === owner && n.httpName === httpName);
  }

  #service(
    namespace: string,
    service: string,
    create: boolean,
    owner = TEST_ACCOUNT,
    healthCheck: FakeHealthCheck = 'custom',
  ): ServiceEntry | undefined {
    let ns = this.#namespace(owner, namespace);
    if (ns === undefined) {
      if (!create) return undefined;
      ns = { name: namespace, httpName: namespace, owner, services: new Map() };
      this.#namespaces.push(ns);
    }
    let entry = ns.services.get(service);
    if (entry === undefined && create) {
      entry = { healthCheck, revision: this.#nextRevision++, instances: new Map() };
      ns.services.set(service, entry);
    }
    return entry;
  }

  async #serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(request.headers)) if (typeof value === 'string') headers[key] = value;
    const outcome = await this.#handle(request.method ?? 'GET', headers, Buffer.concat(chunks).toString('utf8'));
    if (outcome === 'drop') {
      request.socket.destroy();
      return;
    }
    if (outcome === 'hang') {
      this.#hung.add(() => request.socket.destroy());
      return;
    }
    const payload = JSON.stringify(outcome.body);
    response.writeHead(outcome.status, { ...answerHeaders(), 'content-length': Buffer.byteLength(payload) });
    response.end(payload);
  }

  async #handle(method: string, headers: Record<string, string>, text: string): Promise<Outcome> {
    const target = headers['x-amz-target'] ?? '';
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    if (method !== 'POST' || (operation !== 'DiscoverInstances' && operation !== 'DiscoverInstancesRevision')) {
      return error({ type: 'UnknownOperationException', message: `unsupported: ${target}` });
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text || '{}') as Record<string, unknown>;
    } catch {
      return error({ type: 'SerializationException', message: 'invalid JSON' });
    }
    this.calls[operation] += 1;
    const call: FakeRequest = { operation, body, headers, at: performance.now(), status: 0 };
    this.requests.push(call);
    const outcome = this.#answer(call);
    if (typeof outcome === 'object') call.status = outcome.status;
    return outcome;
  }

  #answer(call: FakeRequest): Outcome {
    const { operation, body, headers } = call;
    const auth = this.#checkSignature(headers);
    if (auth !== undefined) return auth;
    const custom = this.#respond?.(call);
    if (custom !== undefined) return typeof custom === 'string' || 'body' in custom ? custom : error(custom);
    const index = this.#failures.findIndex((f) => f.operation === undefined || f.operation === operation);
    if (index !== -1) return error(this.#failures.splice(index, 1)[0]!.error);
    if (this.#denied.has(operation)) {
      return error({
        type: 'AccessDeniedException',
        message: `User: arn:aws:sts::${TEST_ACCOUNT}:assumed-role/task/x is not authorized to perform: servicediscovery:${operation}`,
      });
    }
    if (this.#storm || this.#buckets.get(operation)?.take() === false) {
      return error({ type: 'RequestLimitExceeded', message: 'Rate exceeded' });
    }

    const namespaceName = body.NamespaceName;
    const serviceName = body.ServiceName;
    if (typeof namespaceName !== 'string' || typeof serviceName !== 'string') {
      return error({ type: 'InvalidInput', message: 'NamespaceName and ServiceName are required' });
    }
    const owner = body.OwnerAccount ?? TEST_ACCOUNT;
    if (typeof owner !== 'string' || !/^\d{12}$/.test(owner)) return error({ type: 'InvalidInput', message: 'OwnerAccount is not an account id' });
    const ns = this.#namespace(owner, namespaceName);
    if (ns === undefined) return error({ type: 'NamespaceNotFound', message: `Namespace ${namespaceName} not found` });
    const entry = ns.services.get(serviceName);
    if (entry === undefined) return error({ type: 'ServiceNotFound', message: `Service ${serviceName} not found` });
    if (operation === 'DiscoverInstancesRevision') return { status: 200, body: { InstancesRevision: entry.revision } };
    const max = body.MaxResults ?? 100;
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1000) {
      return error({ type: 'InvalidInput', message: 'MaxResults must be from 1 to 1000' });
    }
    return {
      status: 200,
      body: {
        Instances: discover(entry, body, max).map(([id, instance]) => ({
          InstanceId: id,
          NamespaceName: ns.httpName,
          ServiceName: serviceName,
          HealthStatus: entry.healthCheck === 'none' ? 'UNKNOWN' : instance.healthStatus,
          Attributes: instance.attributes,
        })),
        InstancesRevision: entry.revision,
      },
    };
  }

  /** The credential scope must be `<key>/<date>/<this region>/servicediscovery/aws4_request`. */
  #checkSignature(headers: Record<string, string>): Outcome | undefined {
    const auth = headers.authorization ?? '';
    const scope = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=[^,]+,\s*Signature=[0-9a-f]{64}$/.exec(auth);
    if (scope === null || headers['x-amz-date'] === undefined) {
      return error({ type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' });
    }
    const [, key, , region, service] = scope;
    if (region !== this.region) {
      return error({ type: 'InvalidSignatureException', message: `Credential should be scoped to a valid region, not '${region}'.` });
    }
    if (service !== 'servicediscovery') {
      return error({ type: 'InvalidSignatureException', message: `Credential should be scoped to correct service: 'servicediscovery'.` });
    }
    const known = this.#accessKeys === undefined ? key!.startsWith('AKID') || key!.startsWith('ASIA') : this.#accessKeys.includes(key!);
    if (!known) return error({ type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' });
    return undefined;
  }
}

type Entry = [string, InstanceEntry];

/** DiscoverInstances' filters, in Cloud Map's order: query parameters, health, optional parameters. */
function discover(entry: ServiceEntry, body: Record<string, unknown>, max: number): Entry[] {
  const matches = (attributes: Record<string, string>, parameters: unknown): boolean =>
    Object.entries((parameters ?? {}) as Record<string, string>).every(([key, value]) => attributes[key] === value);
  let list: Entry[] = [...entry.instances].filter(([, i]) => matches(i.attributes, body.QueryParameters));
  // Services without health checks ignore the filter.
  if (entry.healthCheck !== 'none') {
    const healthy = list.filter(([, i]) => i.healthStatus === 'HEALTHY');
    switch (body.HealthStatus ?? 'HEALTHY') {
      case 'HEALTHY':
        list = healthy;
        break;
      case 'UNHEALTHY':
        list = list.filter(([, i]) => i.healthStatus === 'UNHEALTHY');
        break;
      case 'HEALTHY_OR_ELSE_ALL':
        if (healthy.length > 0) list = healthy;
        break;
      default:
        break;
    }
  }
  if (body.OptionalParameters !== undefined) {
    const preferred = list.filter(([, i]) => matches(i.attributes, body.OptionalParameters));
    if (preferred.length > 0) list = preferred;
  }
  // "DiscoverInstances returns a randomized list of instances."
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list.slice(0, max);
}

function error(e: FakeError): Outcome {
  return { status: e.status ?? STATUS[e.type] ?? 400, body: { __type: e.type, Message: e.message ?? e.type } };
}

function answerHeaders(): Record<string, string> {
  return { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': crypto.randomUUID() };
}
