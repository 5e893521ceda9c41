/**
 * A loopback stand-in for the Cloud Map data API (DiscoverInstances, DiscoverInstancesRevision;
 * AWS JSON 1.1) over an in-memory service table that tests, the demo and benchmarks change while
 * it runs. Point the SDK at it with `cloudMap: { endpoint: fake.endpoint, region, credentials }`
 * (static credentials: it checks that requests are signed, not the signature).
 *
 * Like Cloud Map, registering or deregistering an instance (or changing its attributes) moves the
 * service's revision; a health change does not.
 *
 * Usage:
 *   const fake = await FakeCloudMap.start();
 *   fake.register('myapp.local', 'orders', { id: 'i-1', attributes: { AWS_INSTANCE_IPV4: '127.0.0.2', AWS_INSTANCE_PORT: '8080' } });
 *   fake.setHealth('myapp.local', 'orders', 'i-1', 'UNHEALTHY');
 *   fake.failNext(2, { type: 'RequestLimitExceeded', status: 400 });
 *   fake.calls.DiscoverInstances; fake.requests.at(-1);
 *   await fake.close();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeHealthStatus = 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN';

export interface FakeInstance {
  id: string;
  attributes: Record<string, string>;
  /** @default 'HEALTHY' */
  healthStatus?: FakeHealthStatus;
}

export type FakeOperation = 'DiscoverInstances' | 'DiscoverInstancesRevision';

export interface FakeRequest {
  operation: FakeOperation;
  body: Record<string, unknown>;
}

export interface FakeError {
  /** The AWS error name (`__type`), such as `RequestLimitExceeded`. */
  type: string;
  /** @default 400 */
  status?: number;
  message?: string;
}

export interface FakeCloudMapOptions {
  /** The loopback address to listen on. @default '127.0.0.1' */
  address?: string;
  /**
   * Calls per second the fake accepts before answering RequestLimitExceeded, like the account-wide
   * quota (a one-second window). @default Infinity
   */
  callsPerSecond?: number;
}

interface ServiceEntry {
  revision: number;
  instances: Map<string, { attributes: Record<string, string>; healthStatus: FakeHealthStatus }>;
}

const TARGET_PREFIX = 'Route53AutoNaming_v20170314.';

export class FakeCloudMap {
  /** `http://127.0.0.1:PORT`, for `cloudMap.endpoint`. */
  readonly endpoint: string;
  /** Calls answered (including errors), per operation. */
  readonly calls: Record<FakeOperation, number> = { DiscoverInstances: 0, DiscoverInstancesRevision: 0 };
  /** Every request, oldest first. */
  readonly requests: FakeRequest[] = [];
  readonly #server: Server;
  readonly #namespaces = new Map<string, Map<string, ServiceEntry>>();
  readonly #failures: FakeError[] = [];
  readonly #callsPerSecond: number;
  #windowStart = 0;
  #windowCalls = 0;
  #nextRevision = 1;

  private constructor(server: Server, callsPerSecond: number) {
    this.#server = server;
    this.#callsPerSecond = callsPerSecond;
    const { address, port } = server.address() as AddressInfo;
    this.endpoint = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      void this.#handle(request, response);
    });
  }

  static async start(options: FakeCloudMapOptions = {}): Promise<FakeCloudMap> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, options.address ?? '127.0.0.1', () => resolve());
    });
    return new FakeCloudMap(server, options.callsPerSecond ?? Number.POSITIVE_INFINITY);
  }

  /** Creates an empty service (and its namespace). */
  createService(namespace: string, service: string): void {
    this.#service(namespace, service, true);
  }

  /** Adds or replaces an instance; moves the revision. */
  register(namespace: string, service: string, instance: FakeInstance): void {
    const entry = this.#service(namespace, service, true)!;
    entry.instances.set(instance.id, { attributes: { ...instance.attributes }, healthStatus: instance.healthStatus ?? 'HEALTHY' });
    entry.revision = this.#nextRevision++;
  }

  /** Removes an instance; moves the revision. */
  deregister(namespace: string, service: string, id: string): void {
    const entry = this.#service(namespace, service, false);
    if (entry?.instances.delete(id)) entry.revision = this.#nextRevision++;
  }

  /** Changes an instance's health; the revision stays, as in Cloud Map. */
  setHealth(namespace: string, service: string, id: string, healthStatus: FakeHealthStatus): void {
    const instance = this.#service(namespace, service, false)?.instances.get(id);
    if (instance === undefined) throw new Error(`no instance ${id} in ${service}.${namespace}`);
    instance.healthStatus = healthStatus;
  }

  deleteService(namespace: string, service: string): void {
    this.#namespaces.get(namespace)?.delete(service);
  }

  deleteNamespace(namespace: string): void {
    this.#namespaces.delete(namespace);
  }

  /** The service's current revision, or undefined when it does not exist. */
  revision(namespace: string, service: string): number | undefined {
    return this.#service(namespace, service, false)?.revision;
  }

  /** The next `count` calls (of either operation) fail with `error`. */
  failNext(count: number, error: FakeError): void {
    for (let i = 0; i < count; i++) this.#failures.push(error);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #service(namespace: string, service: string, create: boolean): ServiceEntry | undefined {
    let services = this.#namespaces.get(namespace);
    if (services === undefined) {
      if (!create) return undefined;
      services = new Map();
      this.#namespaces.set(namespace, services);
    }
    let entry = services.get(service);
    if (entry === undefined && create) {
      entry = { revision: this.#nextRevision++, instances: new Map() };
      services.set(service, entry);
    }
    return entry;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const target = String(request.headers['x-amz-target'] ?? '');
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    if (request.method !== 'POST' || (operation !== 'DiscoverInstances' && operation !== 'DiscoverInstancesRevision')) {
      return send(response, 400, { __type: 'UnknownOperationException', Message: `unsupported: ${target}` });
    }
    this.calls[operation] += 1;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      return send(response, 400, { __type: 'SerializationException', Message: 'invalid JSON' });
    }
    this.requests.push({ operation, body });

    if (!String(request.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
      return send(response, 400, { __type: 'MissingAuthenticationTokenException', Message: 'request is not signed' });
    }
    const failure = this.#failures.shift();
    if (failure !== undefined) {
      return send(response, failure.status ?? 400, { __type: failure.type, Message: failure.message ?? failure.type });
    }
    if (this.#overBudget()) {
      return send(response, 400, { __type: 'RequestLimitExceeded', Message: 'Rate exceeded' });
    }

    const namespaceName = body.NamespaceName;
    const serviceName = body.ServiceName;
    if (typeof namespaceName !== 'string' || typeof serviceName !== 'string') {
      return send(response, 400, { __type: 'InvalidInput', Message: 'NamespaceName and ServiceName are required' });
    }
    const services = this.#namespaces.get(namespaceName);
    if (services === undefined) {
      return send(response, 400, { __type: 'NamespaceNotFound', Message: `Namespace ${namespaceName} not found` });
    }
    const entry = services.get(serviceName);
    if (entry === undefined) {
      return send(response, 400, { __type: 'ServiceNotFound', Message: `Service ${serviceName} not found` });
    }
    if (operation === 'DiscoverInstancesRevision') {
      return send(response, 200, { InstancesRevision: entry.revision });
    }
    return send(response, 200, {
      Instances: discover(entry, body).map(([id, instance]) => ({
        InstanceId: id,
        NamespaceName: namespaceName,
        ServiceName: serviceName,
        HealthStatus: instance.healthStatus,
        Attributes: instance.attributes,
      })),
      InstancesRevision: entry.revision,
    });
  }

  #overBudget(): boolean {
    if (!Number.isFinite(this.#callsPerSecond)) return false;
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#windowCalls = 0;
    }
    this.#windowCalls += 1;
    return this.#windowCalls > this.#callsPerSecond;
  }
}

type Entry = [string, { attributes: Record<string, string>; healthStatus: FakeHealthStatus }];

/** DiscoverInstances' filters, in Cloud Map's order: query parameters, health, optional parameters. */
function discover(entry: ServiceEntry, body: Record<string, unknown>): Entry[] {
  const matches = (attributes: Record<string, string>, parameters: unknown): boolean =>
    Object.entries((parameters ?? {}) as Record<string, string>).every(([key, value]) => attributes[key] === value);
  let list: Entry[] = [...entry.instances].filter(([, i]) => matches(i.attributes, body.QueryParameters));
  // Instances without a health check report UNKNOWN and count as healthy, as in Cloud Map.
  const healthy = list.filter(([, i]) => i.healthStatus !== 'UNHEALTHY');
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
  if (body.OptionalParameters !== undefined) {
    const preferred = list.filter(([, i]) => matches(i.attributes, body.OptionalParameters));
    if (preferred.length > 0) list = preferred;
  }
  const max = typeof body.MaxResults === 'number' ? body.MaxResults : 100;
  return list.slice(0, max);
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(payload),
    'x-amzn-requestid': crypto.randomUUID(),
  });
  response.end(payload);
}
