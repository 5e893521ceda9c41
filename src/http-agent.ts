/**
 * `DiscoveryHttpAgent` and `DiscoveryHttpsAgent`: Node's own `http.Agent` and `https.Agent`, for
 * the clients that take one (`node:http`, axios, got, …), with each request sent to a balanced
 * instance of a discovered name, at the instance's port (SRV, Cloud Map, `port` config), while the
 * Host header and the TLS servername stay the name the caller used.
 *
 * - Balanced per request, not per connection: keep-alive sockets are pooled per instance (the
 *   agent's pool key is the instance's address and port), so a keep-alive client still spreads.
 * - Health: connect failures, resets, timeouts and 5xx answers are reported to the Discovery's
 *   outlier detection, as the undici agent reports them, so a dead instance is ejected for every
 *   client of the Discovery and stops being handed out.
 * - Failover: a connection is handed to the request only once it is established (TLS included),
 *   so a connect that fails (refused, timed out, unreachable, TLS handshake) is tried again on
 *   another instance whatever the method: nothing of the request was sent.
 * - Names the Discovery does not handle, IP literals and Unix sockets go the plain agent's way.
 */
import { ClientRequest, Agent as HttpAgent, request as httpRequest, type AgentOptions as HttpAgentOptions, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type AgentOptions as HttpsAgentOptions } from 'node:https';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Discovery, discoveryHealth } from './discovery.ts';
import { InvalidArgumentError } from './errors.ts';
import { tcpProbe } from './agent/probe.ts';
import type { FailureKind, HealthTracker } from './health.ts';
import { instanceKey } from './instance.ts';
import { lookupError } from './lookup.ts';
import { coldWaits } from './process-hold.ts';
import { isIpLiteral, normalizeName } from './routing.ts';
import type { Instance } from './types.ts';
import { checkDuration, checkInteger, describe as describeValue } from './validate.ts';

/** The longest a connect may take before another instance is tried, in milliseconds (Envoy's default). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** Connect attempts on other instances after the first one fails. */
export const DEFAULT_CONNECT_RETRIES = 2;

/** What the node:http agents add to Node's own agent options. */
export interface DiscoveryNodeAgentOptions {
  /** The Discovery that finds the instances (not closed by the agent's `destroy()`). */
  discovery: Discovery;
  /**
   * Connect attempts on other instances after a connect fails (refused, timed out, unreachable,
   * TLS handshake failure), each on an instance not tried yet while one remains. Nothing of the
   * request was sent then, so every method is retried. 0 turns failover off. From 0 to 10.
   * @default 2
   */
  connectRetries?: number;
  /**
   * How long one connect (TCP, and the TLS handshake for `DiscoveryHttpsAgent`) may take, in
   * milliseconds, before it is abandoned as a failure of that instance (an `ETIMEDOUT` naming the
   * instance) and another instance is tried. Node itself has no connect timeout (the system's is
   * about two minutes). 0 leaves it to the system. From 0 to 2,147,483,647.
   * @default 5000
   */
  connectTimeout?: number;
}

export type DiscoveryHttpAgentOptions = HttpAgentOptions & DiscoveryNodeAgentOptions;
export type DiscoveryHttpsAgentOptions = HttpsAgentOptions & DiscoveryNodeAgentOptions;

/** One failed connect, as listed on the error of a request whose connects all failed. */
export interface ConnectAttempt {
  /** The instance (`address:port`). */
  readonly instance: string;
  readonly error: Error;
}

type RequestOptions = Record<string | symbol, unknown> & {
  host?: string | undefined;
  port?: number | string | undefined;
  _agentKey?: string | undefined;
};
type CreateCallback = (err: Error | null, socket: Duplex) => void;
type Health = HealthTracker;
type HealthState = ReturnType<Health['state']>;

/** The request's route, from addRequest to createConnection, in the options Node passes between them. */
const kRoute = Symbol('signpost.route');
/** On a socket signpost connected: the instance it reaches. */
const kInstance = Symbol('signpost.instance');
/** On a socket that failover connected to another instance than its pool's: not kept alive. */
const kElsewhere = Symbol('signpost.elsewhere');

interface Route {
  /** The logical name (as the caller wrote it). */
  readonly name: string;
  readonly req: ClientRequest;
  /** The instance picked for the request, whose pool the connection is made for. */
  readonly instance: Instance;
  /** The port the caller asked for: the port of instances the registry gives none for. */
  readonly port: number;
}

interface Tagged {
  [kInstance]?: Instance;
  [kElsewhere]?: boolean;
}

const KNOWN = ['discovery', 'connectRetries', 'connectTimeout'] as const;
const MAX_REMEMBERED_NAMES = 4096;

function validate(options: unknown, agent: string): { discovery: Discovery; connectRetries: number; connectTimeout: number; rest: object } {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`Invalid options for ${agent}: got ${describeValue(options)}; expected an object with a discovery`);
  }
  const o = options as Partial<DiscoveryNodeAgentOptions> & Record<string, unknown>;
  if (!(o.discovery instanceof Discovery)) {
    throw new InvalidArgumentError(
      `Invalid discovery for ${agent}: got ${describeValue(o.discovery)}; expected a Discovery (new Discovery({ ... }))`,
    );
  }
  if (o.connectRetries !== undefined) checkInteger('connectRetries', o.connectRetries, 0, 10);
  if (o.connectTimeout !== undefined) checkDuration('connectTimeout', o.connectTimeout);
  const rest: Record<string, unknown> = { ...o };
  for (const key of KNOWN) delete rest[key];
  return {
    discovery: o.discovery,
    connectRetries: o.connectRetries ?? DEFAULT_CONNECT_RETRIES,
    connectTimeout: o.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS,
    rest,
  };
}

/** How a request that got a connection failed, for outlier detection; undefined: not the instance's doing. */
function failureOf(error: unknown, timedOut: boolean): FailureKind | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return timedOut ? 'timeout' : undefined;
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED' || code.startsWith('HPE_')) return 'reset';
  if (code === 'ETIMEDOUT' || timedOut) return 'timeout';
  return undefined;
}

/** The error of a connect that did not finish within connectTimeout: ETIMEDOUT, as the system's, naming what to check. */
function connectTimeoutError(instance: Instance, port: number, name: string, timeout: number): NodeJS.ErrnoException {
  const key = instanceKey({ address: instance.address, port });
  const error = new Error(
    `connect ETIMEDOUT ${key}: instance ${key} of ${name} did not accept the connection within ${timeout} ms (connectTimeout). ` +
      'The name resolves but the connection times out: check that the security group and network ACL let this caller reach ' +
      `${key}, and that the instance is running (\`signpost check\` shows which instances of a service are reachable)`,
  ) as NodeJS.ErrnoException & { address: string; port: number };
  error.code = 'ETIMEDOUT';
  error.syscall = 'connect';
  error.address = instance.address;
  error.port = port;
  return error;
}

/**
 * The routing both agents share: which requests are discovered, the instance of each, the
 * connect with failover, and the health reports. `base` is the Node agent itself.
 */
class NodeAgentRouting {
  readonly #agent: HttpAgent;
  readonly #discovery: Discovery;
  readonly #health: Health;
  readonly #retries: number;
  readonly #timeout: number;
  readonly #https: boolean;
  readonly #handled = new Map<string, boolean>();
  readonly #unsubscribe: () => void;
  readonly #unprobe: () => void;
  /** Instance key → the agent pool names (getName) of its connections. */
  readonly #pools = new Map<string, Set<string>>();
  /** Instance key → where this agent last reached it, and for which name: what a probe needs. */
  readonly #reached = new Map<string, { address: string; port: number; name: string }>();
  destroyed = false;

  constructor(agent: HttpAgent, discovery: Discovery, retries: number, timeout: number, https: boolean) {
    this.#agent = agent;
    this.#discovery = discovery;
    this.#health = discoveryHealth(discovery);
    this.#retries = retries;
    this.#timeout = timeout;
    this.#https = https;
    // Held weakly: an agent dropped without destroy() is not kept alive by its Discovery.
    const ref = new WeakRef(this);
    const unsubscribe = discovery.onChange((change) => {
      const self = ref.deref();
      if (self === undefined) unsubscribe();
      else self.#instancesLeft(change.removed);
    });
    this.#unsubscribe = unsubscribe;
    // Ejected instances this agent reached are probed by it, and return as soon as they answer.
    const unprobe = this.#health.setProber((key, path, timeout) => {
      const self = ref.deref();
      if (self === undefined) {
        unprobe();
        return undefined;
      }
      return self.#probe(key, path, timeout);
    });
    this.#unprobe = unprobe;
  }

  /** A TCP connect, or with a health path a GET of it sent as the name (any answer below 500 passes). */
  #probe(key: string, path: string | undefined, timeout: number): Promise<boolean> | undefined {
    const reached = this.#reached.get(key);
    if (reached === undefined || this.destroyed) return undefined;
    if (path === undefined) return tcpProbe(reached.address, reached.port, timeout);
    const options = {
      ...((this.#agent as unknown as { options: Record<string, unknown> }).options),
      host: reached.address,
      port: reached.port,
      path,
      method: 'GET',
      headers: { host: reached.name },
      agent: false,
      timeout,
      ...(this.#https && { servername: servernameOf(undefined, reached.name) }),
    };
    return new Promise((resolve) => {
      const req = (this.#https ? httpsRequest : httpRequest)(options as never, (res: IncomingMessage) => {
        res.resume();
        req.destroy();
        resolve((res.statusCode ?? 500) < 500);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }

  #handles(host: string): boolean {
    let known = this.#handled.get(host);
    if (known === undefined) {
      const name = normalizeName(host);
      // localhost is never a DNS name (RFC 6761), whatever `unlisted` says: a plain agent's.
      known = !isIpLiteral(host) && name !== 'localhost' && !name.endsWith('.localhost') && this.#discovery.handles(host);
      if (this.#handled.size >= MAX_REMEMBERED_NAMES) this.#handled.clear();
      this.#handled.set(host, known);
    }
    return known;
  }

  /** Routes a request: returns false for one the plain agent takes as it is. */
  addRequest(req: ClientRequest, options: RequestOptions, next: (options: RequestOptions) => void): boolean {
    const host = options.host;
    if (typeof host !== 'string' || options.socketPath != null || !this.#handles(host)) return false;
    const instance = this.#discovery.pickSync(host);
    if (instance !== undefined) {
      this.#route(req, options, host, instance, next);
      return true;
    }
    // A cold name: one query shared with every caller, then the same as a warm one.
    coldWaits.hold();
    this.#discovery.pick(host).then(
      (picked) => {
        coldWaits.release();
        if (req.destroyed) return;
        try {
          this.#route(req, options, host, picked, next);
        } catch (error) {
          failRequest(req, error as Error);
        }
      },
      (error: unknown) => {
        coldWaits.release();
        // As a failed lookup: ENOTFOUND / EAI_AGAIN, with the SignpostError as its cause.
        if (!req.destroyed) failRequest(req, lookupError(host, error));
      },
    );
    return true;
  }

  #route(req: ClientRequest, options: RequestOptions, name: string, instance: Instance, next: (options: RequestOptions) => void): void {
    const routed: RequestOptions = {
      ...options,
      host: instance.address,
      port: instance.port ?? options.port,
      [kRoute]: { name, req, instance, port: Number(options.port) } satisfies Route,
    };
    // The certificate is checked against the name called (the Host header's, as Node's agent
    // does), never against the instance's address.
    if (this.#https && options.servername == null) routed.servername = servernameOf(req, name);
    this.#track(req);
    next(routed);
  }

  /** Health reports for a request: it starts when it gets a connection, and ends with its response. */
  #track(req: ClientRequest): void {
    const health = this.#health;
    req.once('socket', (socket: Socket & Tagged) => {
      const instance = socket[kInstance];
      if (instance === undefined) return;
      const state = health.state(instance);
      health.onStart(state);
      let settled = false;
      let timedOut = false;
      let cancelled = false;
      let response: IncomingMessage | undefined;
      const settle = (outcome: FailureKind | 'ok' | 'cancel'): void => {
        if (settled) return;
        settled = true;
        req.removeListener('timeout', onTimeout);
        if (outcome === 'ok') health.onSuccess(state);
        else if (outcome === 'cancel') health.onCancel(state);
        else {
          health.onFailure(state, outcome);
          // A reset usually means the instance went away or restarted: its idle keep-alive
          // connections are as dead, and the next request must not take one.
          if (outcome === 'reset') this.#closeIdle(instanceKey(instance));
        }
      };
      const onTimeout = (): void => {
        timedOut = true;
      };
      // The caller ending the request is not the instance's doing (unless it timed out first).
      const destroy = req.destroy;
      req.destroy = function (this: ClientRequest, error?: Error) {
        if (!settled && response === undefined) cancelled = !timedOut;
        return destroy.call(this, error);
      };
      req.on('timeout', onTimeout);
      req.once('response', (res: IncomingMessage) => {
        response = res;
        const outcome = (res.statusCode ?? 0) >= 500 ? '5xx' : 'ok';
        res.once('end', () => settle(outcome));
        res.once('close', () => {
          if (res.complete) settle(outcome);
          else settle(res.errored ? (failureOf(res.errored, timedOut) ?? 'cancel') : 'cancel');
        });
      });
      req.once('error', (error: Error) => {
        if (response === undefined) settle(cancelled ? 'cancel' : (failureOf(error, timedOut) ?? 'cancel'));
      });
      req.once('close', () => {
        if (response === undefined) settle('cancel');
      });
    });
  }

  /**
   * Connects a routed request's socket: to its instance, then, when that connect fails, to
   * others not tried yet. The socket is handed over only once it is established (and, for TLS,
   * its handshake done). Returns false for a socket the plain agent makes.
   */
  createConnection(options: RequestOptions, oncreate: CreateCallback, connect: (options: RequestOptions) => Duplex): boolean {
    const route = options[kRoute] as Route | undefined;
    if (route === undefined) return false;
    const agent = this.#agent as HttpAgent & { sockets: Record<string, Socket[]>; totalSocketCount: number };
    // The pending connect holds its place in the pool, so maxSockets counts it as Node's does.
    const poolName = options._agentKey ?? agent.getName(options as never);
    const placeholder = new Socket();
    (agent.sockets[poolName] ??= []).push(placeholder);
    agent.totalSocketCount++;
    let current: Duplex | undefined;
    let currentTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const release = (): void => {
      const list = agent.sockets[poolName];
      const at = list?.indexOf(placeholder) ?? -1;
      if (at >= 0) {
        list!.splice(at, 1);
        if (list!.length === 0) delete agent.sockets[poolName];
        agent.totalSocketCount--;
      }
    };
    const finish = (error: Error | null, socket?: Duplex): void => {
      if (finished) return;
      finished = true;
      release();
      placeholder.removeListener('close', onAbort);
      if (error !== null) oncreate(error, undefined as unknown as Duplex);
      else oncreate(null, socket!);
    };
    // agent.destroy() destroys the placeholder: the connect in flight goes with it.
    const onAbort = (): void => {
      if (finished) return;
      clearTimeout(currentTimer);
      current?.destroy();
      const error = new Error('socket hang up') as NodeJS.ErrnoException;
      error.code = 'ECONNRESET';
      finish(error);
    };
    placeholder.once('close', onAbort);

    const tried = new Set<string>();
    const attempts: ConnectAttempt[] = [];
    const attempt = (instance: Instance): void => {
      const port = instance.port ?? route.port;
      const key = instanceKey({ address: instance.address, port });
      tried.add(instanceKey(instance));
      const elsewhere = instance !== route.instance;
      const attemptOptions: RequestOptions = elsewhere ? { ...options, host: instance.address, port } : options;
      if (elsewhere) attemptOptions._agentKey = agent.getName(attemptOptions as never);
      let socket: Duplex & Tagged;
      try {
        socket = connect(attemptOptions) as Duplex & Tagged;
      } catch (error) {
        finish(error as Error);
        return;
      }
      current = socket;
      const ready = this.#https ? 'secureConnect' : 'connect';
      const timer =
        this.#timeout > 0
          ? setTimeout(() => socket.destroy(connectTimeoutError(instance, port, route.name, this.#timeout)), this.#timeout)
          : undefined;
      currentTimer = timer;
      const onReady = (): void => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        socket[kInstance] = instance;
        if (elsewhere) socket[kElsewhere] = true;
        this.#remember(instance, attemptOptions._agentKey ?? poolName);
        this.#reached.set(instanceKey(instance), { address: instance.address, port, name: route.name });
        finish(null, socket);
      };
      const onError = (error: Error): void => {
        clearTimeout(timer);
        socket.removeListener(ready, onReady);
        socket.destroy();
        if (finished) return;
        const state: HealthState = this.#health.state(instance);
        this.#health.onStart(state);
        this.#health.onFailure(state, 'connect');
        attempts.push({ instance: key, error });
        const next =
          attempts.length <= this.#retries && !this.destroyed && !route.req.destroyed
            ? this.#discovery.pickSync(route.name, tried)
            : undefined;
        if (next !== undefined && !tried.has(instanceKey(next))) {
          attempt(next);
          return;
        }
        if (attempts.length > 1) {
          Object.defineProperty(error, 'attempts', { value: attempts.slice(), configurable: true, writable: true });
        }
        finish(error);
      };
      socket.once(ready, onReady);
      socket.once('error', onError);
    };
    attempt(route.instance);
    return true;
  }

  #remember(instance: Instance, poolName: string): void {
    const key = instanceKey(instance);
    let names = this.#pools.get(key);
    if (names === undefined) this.#pools.set(key, (names = new Set()));
    names.add(poolName);
  }

  /** Whether a socket going idle may be kept: not one failover connected elsewhere, nor one to an instance that left. */
  keepSocketAlive(socket: Socket & Tagged): boolean {
    if (socket[kElsewhere] === true) return false;
    const instance = socket[kInstance];
    return instance === undefined || this.#discovery.hasInstance(instanceKey(instance));
  }

  /** Instances no name serves any more: their idle connections close (busy ones close when they go idle). */
  #instancesLeft(removed: readonly Instance[]): void {
    for (const instance of removed) {
      const key = instanceKey(instance);
      if (this.#discovery.hasInstance(key)) continue;
      this.#closeIdle(key);
      this.#pools.delete(key);
      this.#reached.delete(key);
    }
  }

  /** Closes the idle connections of an instance. */
  #closeIdle(key: string): void {
    const agent = this.#agent as HttpAgent & { freeSockets: Record<string, Socket[]> };
    for (const name of this.#pools.get(key) ?? []) for (const socket of [...(agent.freeSockets[name] ?? [])]) socket.destroy();
  }

  destroy(): void {
    this.destroyed = true;
    this.#unsubscribe();
    this.#unprobe();
    this.#pools.clear();
    this.#reached.clear();
  }
}

/** Ends a request that got no connection with `error`, as Node's agent ends one whose connect failed. */
function failRequest(req: ClientRequest, error: Error): void {
  (req as unknown as { onSocket(socket: Socket | undefined, error: Error): void }).onSocket(undefined, error);
}

/** The TLS servername: the Host header's name, as Node's agent computes it, else the name called. */
function servernameOf(req: ClientRequest | undefined, name: string): string {
  const header = req?.getHeader('host');
  let host = typeof header === 'string' && header !== '' ? header : name;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end === -1 ? host : host.slice(1, end);
  } else {
    host = host.split(':', 1)[0]!;
  }
  return isIpLiteral(host) ? '' : normalizeName(host) === normalizeName(name) ? name.replace(/\.$/, '') : host;
}

type AddRequest = (this: HttpAgent, req: ClientRequest, options: RequestOptions) => void;
const httpAddRequest = (HttpAgent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const httpsAddRequest = (HttpsAgent.prototype as unknown as { addRequest: AddRequest }).addRequest;

/**
 * An `http.Agent` that sends each request to a balanced instance of a discovered name, at the
 * instance's port, keeps keep-alive connections per instance, reports every outcome to the
 * Discovery's outlier detection, and fails a connect over to another instance. Hosts the
 * Discovery does not handle are served as by a plain `http.Agent`.
 *
 * @example
 * const agent = new DiscoveryHttpAgent({ discovery, keepAlive: true });
 * http.get('http://orders.myapp.local/orders/42', { agent }, (res) => { ... });
 */
export class DiscoveryHttpAgent extends HttpAgent {
  readonly #routing: NodeAgentRouting;

  constructor(options: DiscoveryHttpAgentOptions) {
    const { discovery, connectRetries, connectTimeout, rest } = validate(options, 'DiscoveryHttpAgent');
    super(rest);
    this.#routing = new NodeAgentRouting(this, discovery, connectRetries, connectTimeout, false);
  }

  /** @internal Node's Agent API: called by every request. */
  addRequest(req: ClientRequest, options: RequestOptions): void {
    if (!this.#routing.addRequest(req, options, (routed) => httpAddRequest.call(this, req, routed))) {
      httpAddRequest.call(this, req, options);
    }
  }

  override createConnection(options: object, callback?: CreateCallback): Duplex | null | undefined {
    const base = (o: RequestOptions): Duplex => super.createConnection(o as never) as Duplex;
    if (callback !== undefined && this.#routing.createConnection(options as RequestOptions, callback, base)) return undefined;
    return super.createConnection(options as never, callback as never) as Duplex;
  }

  override keepSocketAlive(socket: Socket): boolean {
    return this.#routing.keepSocketAlive(socket) && (super.keepSocketAlive(socket) as unknown) !== false;
  }

  override destroy(): void {
    this.#routing.destroy();
    super.destroy();
  }
}

/**
 * The HTTPS twin of {@link DiscoveryHttpAgent}: an `https.Agent` whose connections go to the
 * instances while the TLS servername, and the certificate check, stay the name called. TLS
 * sessions are cached per instance.
 */
export class DiscoveryHttpsAgent extends HttpsAgent {
  readonly #routing: NodeAgentRouting;

  constructor(options: DiscoveryHttpsAgentOptions) {
    const { discovery, connectRetries, connectTimeout, rest } = validate(options, 'DiscoveryHttpsAgent');
    super(rest);
    this.#routing = new NodeAgentRouting(this, discovery, connectRetries, connectTimeout, true);
  }

  /** @internal Node's Agent API: called by every request. */
  addRequest(req: ClientRequest, options: RequestOptions): void {
    if (!this.#routing.addRequest(req, options, (routed) => httpsAddRequest.call(this, req, routed))) {
      httpsAddRequest.call(this, req, options);
    }
  }

  override createConnection(options: object, callback?: CreateCallback): Duplex | null | undefined {
    const base = (o: RequestOptions): Duplex => super.createConnection(o as never) as Duplex;
    if (callback !== undefined && this.#routing.createConnection(options as RequestOptions, callback, base)) return undefined;
    return super.createConnection(options as never, callback as never);
  }

  override keepSocketAlive(socket: Socket): boolean {
    return this.#routing.keepSocketAlive(socket) && (super.keepSocketAlive(socket) as unknown) !== false;
  }

  override destroy(): void {
    this.#routing.destroy();
    super.destroy();
  }
}
