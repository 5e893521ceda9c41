/**
 * Conformance: every scenario runs through a plain undici Agent, through a DiscoveryAgent and
 * through `new Agent().compose(discoveryInterceptor(...))`, against the same real server, and the
 * caller must see the same thing. The plain Agent reaches the logical name through a `lookup`
 * that answers 127.0.0.2, so all three send the same URL and the same Host header.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { LookupFunction, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import {
  Agent,
  errors,
  fetch as undiciFetch,
  interceptors,
  MockAgent,
  request,
  RetryAgent,
  type Dispatcher,
} from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscoveryAgent, discoveryInterceptor } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { TestCa } from '../fixtures/fleet.ts';

const NAME = 'api.conformance.local';
const ADDRESS = '127.0.0.2';

type Kind = 'undici' | 'signpost' | 'interceptor';
const KINDS: readonly Kind[] = ['undici', 'signpost', 'interceptor'];

/** Answers every name with the instance's address, as a DNS server would for a plain Agent. */
const lookup = ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
  if (options?.all) callback(null, [{ address: ADDRESS, family: 4 }]);
  else callback(null, ADDRESS, 4);
}) as unknown as LookupFunction;

/** undici's dispatchers all have these; the Dispatcher type does not list them. */
type Dispatching = Dispatcher & { readonly closed: boolean; readonly destroyed: boolean };

interface Context {
  readonly kind: Kind;
  readonly dispatcher: Dispatching;
  /** `http://api.conformance.local:PORT` */
  readonly origin: string;
  readonly close: () => Promise<void>;
}

/** What the server saw of each request, in order. */
interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: string;
}

let server: Server;
let port = 0;
/** A port on the instance's address where nothing listens. */
let closedPort = 0;
const seen: Seen[] = [];
const counters = new Map<string, number>();

function count(key: string): number {
  const n = (counters.get(key) ?? 0) + 1;
  counters.set(key, n);
  return n;
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://x');
    const body = Buffer.concat(chunks).toString();
    // Raw headers minus what depends on the connection, in the order sent.
    const headers: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const key = req.rawHeaders[i]!.toLowerCase();
      if (key === 'connection' || key === 'keep-alive') continue;
      headers.push(`${key}: ${req.rawHeaders[i + 1]}`);
    }
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers, body });
    const id = url.searchParams.get('id') ?? '';
    switch (url.pathname) {
      case '/flaky':
        // 503 the first time per id, then 200.
        if (count(`flaky ${id}`) === 1) {
          res.writeHead(503, { 'retry-after': '0' }).end('busy');
          return;
        }
        res.end('ok');
        return;
      case '/redirect':
        res.writeHead(302, { location: '/echo?from=redirect' }).end();
        return;
      case '/gzip':
        res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/plain' }).end(gzipSync('compressed body'));
        return;
      case '/missing':
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
        return;
      case '/cacheable':
        res.writeHead(200, { 'cache-control': 'public, max-age=60', 'x-count': String(count(`cache ${id}`)) }).end('cached');
        return;
      case '/slow':
        setTimeout(() => res.end('slow'), 300);
        return;
      case '/dedupe':
        count(`dedupe ${id}`);
        setTimeout(() => res.end('once'), 100);
        return;
      case '/hang':
        return;
      default:
        res.writeHead(200, { 'content-type': 'text/plain', 'x-multi': ['a', 'b'] }).end(`echo ${req.method} ${body}`);
    }
  });
}

const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer(handle);
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${req.headers.upgrade}\r\n\r\n`);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, ADDRESS, resolve));
  port = (server.address() as { port: number }).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, ADDRESS, resolve));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function services(instancePort: number) {
  return { [NAME]: { via: 'static' as const, instances: [{ address: ADDRESS, port: instancePort }] } };
}

/** A dispatcher of each kind; `options` are undici options given to each. */
function make(kind: Kind, options: Record<string, unknown> = {}, instancePort = port): Context {
  const origin = `http://${NAME}:${instancePort}`;
  const connect = (options.connect ?? {}) as Record<string, unknown>;
  switch (kind) {
    case 'undici': {
      const agent = new Agent({ ...options, connect: { ...connect, lookup } });
      return { kind, dispatcher: agent as unknown as Dispatching, origin, close: () => agent.close() };
    }
    case 'signpost': {
      const agent = new DiscoveryAgent({ services: services(instancePort), ejection: false, retry: { retries: 0 }, ...options });
      return { kind, dispatcher: agent, origin, close: () => agent.close() };
    }
    case 'interceptor': {
      const discovery = new Discovery({ services: services(instancePort), ejection: false });
      const agent = new Agent(options);
      const composed = agent.compose(discoveryInterceptor({ discovery, retry: { retries: 0 } }));
      return {
        kind,
        dispatcher: composed as unknown as Dispatching,
        origin,
        close: async () => {
          await agent.close();
          await discovery.close();
        },
      };
    }
  }
}

/** An error as a caller compares it: class, name, code and message. */
function describeError(error: unknown): Record<string, unknown> {
  const e = error as Error & { code?: unknown; statusCode?: unknown };
  return {
    class: e?.constructor?.name,
    name: e?.name,
    code: e?.code,
    message: e?.message,
    ...(e?.statusCode !== undefined && { statusCode: e.statusCode }),
  };
}

async function outcome(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await fn() };
  } catch (error) {
    return { error: describeError(error) };
  }
}

/** Runs a scenario on each kind and expects signpost's outcomes to equal undici's. */
async function conform(
  scenario: (context: Context) => Promise<unknown>,
  options: { kinds?: readonly Kind[]; undiciOptions?: Record<string, unknown>; port?: number } = {},
): Promise<Record<Kind, unknown>> {
  const results = {} as Record<Kind, unknown>;
  for (const kind of options.kinds ?? KINDS) {
    const context = make(kind, options.undiciOptions, options.port);
    try {
      results[kind] = await outcome(() => scenario(context));
    } finally {
      await context.close().catch(() => undefined);
    }
  }
  for (const kind of options.kinds ?? KINDS) expect({ kind, result: results[kind] }).toEqual({ kind, result: results.undici });
  return results;
}

async function get(context: Context, path: string, init: Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & { method?: string } = {}) {
  const { statusCode, headers, body } = await context.dispatcher.request({ origin: context.origin, path, method: 'GET', ...init } as Dispatcher.RequestOptions);
  return { statusCode, multi: headers['x-multi'], body: await body.text() };
}

/** A recording handler in undici's v2 style; `throwIn` makes one callback throw. */
function recordingHandler(log: string[], done: (value: unknown) => void, throwIn?: string): Dispatcher.DispatchHandler {
  const maybeThrow = (where: string): void => {
    if (where === throwIn) throw new Error(`thrown from ${where}`);
  };
  return {
    onRequestStart() {
      log.push('start');
      maybeThrow('onRequestStart');
    },
    onResponseStart(_controller, statusCode) {
      log.push(`headers ${statusCode}`);
      maybeThrow('onResponseStart');
    },
    onResponseData(_controller, chunk) {
      log.push(`data ${chunk.length}`);
      maybeThrow('onResponseData');
    },
    onResponseEnd() {
      log.push('end');
      maybeThrow('onResponseEnd');
      done(log);
    },
    onResponseError(_controller, error) {
      log.push(`error ${error.message}`);
      done(log);
    },
  };
}

describe('conformance with undici Agent: requests', () => {
  it('a GET through request()', async () => {
    await conform(async (c) => get(c, '/echo'));
  });

  it('a POST with a body, and fetch', async () => {
    await conform(async (c) => {
      const res = await undiciFetch(`${c.origin}/echo`, { method: 'POST', body: 'hello', dispatcher: c.dispatcher });
      return { status: res.status, body: await res.text(), multi: res.headers.get('x-multi') };
    });
  });

  const headerForms: Array<[string, () => unknown]> = [
    ['a record with a list value', () => ({ 'x-a': '1', 'x-multi': ['m1', 'm2'] })],
    ['a flat array', () => ['x-a', '1', 'x-b', '2']],
    ['a flat array with a list value', () => ['x-multi', ['m1', 'm2'], 'x-a', '1']],
    ['a Map with a list value', () => new Map<string, string | string[]>([['x-multi', ['m1', 'm2']], ['x-a', '1']])],
    ['a generator of pairs', () => (function* () { yield ['x-a', '1']; yield ['x-multi', ['m1', 'm2']]; })()],
    ['a Headers object', () => new Headers([['x-a', '1'], ['x-b', '2']])],
    ['a Host of its own', () => ({ host: 'own.example', 'x-a': '1' })],
    ['an array of pairs (undici rejects it)', () => [['x-a', '1']]],
    ['an odd flat array (undici rejects it)', () => ['x-a', '1', 'x-b']],
    ['a Map with a bad entry (undici rejects it)', () => new Map([['x-a', undefined]])],
  ];
  for (const [what, headers] of headerForms) {
    it(`headers given as ${what} reach the instance as with undici`, async () => {
      await conform(async (c) => {
        const before = seen.length;
        const res = await get(c, '/echo', { headers: headers() as Record<string, string> });
        return { res, seen: seen.slice(before).map((s) => s.headers) };
      });
    });
  }

  it('a refused connection fails with the same error (and fetch with the same cause)', async () => {
    await conform(async (c) => get(c, '/echo'), { port: closedPort });
    await conform(
      async (c) => {
        try {
          await undiciFetch(`${c.origin}/x`, { dispatcher: c.dispatcher });
          return 'no error';
        } catch (error) {
          return { error: describeError(error), cause: describeError((error as Error).cause) };
        }
      },
      { port: closedPort },
    );
  });

  it("a request's own headersTimeout fails with a HeadersTimeoutError", async () => {
    const results = await conform(async (c) => get(c, '/hang', { headersTimeout: 200 }));
    expect(results.signpost).toMatchObject({ error: { class: 'HeadersTimeoutError', code: 'UND_ERR_HEADERS_TIMEOUT' } });
  });

  it('an abort gives the caller its own reason', async () => {
    await conform(async (c) => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('caller gave up')), 50);
      return get(c, '/hang', { signal: controller.signal });
    });
  });

  it('a bad request is rejected with undici’s own error', async () => {
    await conform(async (c) => get(c, 'no-slash'));
    await conform(async (c) => get(c, '/echo', { method: 'BAD METHOD' }));
  });
});

describe('conformance with undici Agent: handlers', () => {
  it('a legacy handler (onConnect/onHeaders/onComplete/onError) is refused at dispatch', async () => {
    await conform(async (c) => {
      const legacy = { onConnect() {}, onHeaders() { return true; }, onData() { return true; }, onComplete() {}, onError() {} };
      return c.dispatcher.dispatch({ origin: c.origin, path: '/echo', method: 'GET' }, legacy as never);
    });
  });

  it('a handler without onResponseError is refused at dispatch', async () => {
    await conform(async (c) =>
      c.dispatcher.dispatch({ origin: c.origin, path: '/echo', method: 'GET' }, { onRequestStart() {}, onResponseStart() {}, onResponseData() {}, onResponseEnd() {} }),
    );
  });

  it('request({ upgrade }) fails as with undici, and upgrade() works', async () => {
    await conform(async (c) => get(c, '/echo', { upgrade: 'websocket' } as never));
    await conform(async (c) => {
      const { headers, socket } = await c.dispatcher.upgrade({ origin: c.origin, path: '/up', protocol: 'echo-proto' } as Dispatcher.UpgradeOptions);
      const echoed = await new Promise<string>((resolve) => {
        socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        socket.write('ping');
      });
      socket.destroy();
      return { upgrade: headers.upgrade, echoed };
    });
  });

  it('CONNECT works', async () => {
    await conform(async (c) => {
      const { statusCode, socket } = await c.dispatcher.connect({ origin: c.origin, path: `${NAME}:${port}` } as Dispatcher.ConnectOptions);
      const echoed = await new Promise<string>((resolve) => {
        socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        socket.write('tunnel');
      });
      socket.destroy();
      return { statusCode, echoed };
    });
  });

  for (const where of ['onRequestStart', 'onResponseStart', 'onResponseData', 'onResponseEnd']) {
    it(`a throw from ${where} reaches onResponseError, as with undici`, async () => {
      await conform(
        (c) =>
          new Promise((resolve) => {
            const log: string[] = [];
            c.dispatcher.dispatch({ origin: c.origin, path: '/echo', method: 'GET' }, recordingHandler(log, resolve, where));
          }),
      );
    });
  }
});

describe('conformance with undici Agent: the Dispatcher surface', () => {
  it('closed/destroyed, and use after close or destroy', async () => {
    await conform(async (c) => {
      await get(c, '/echo');
      const flags = [c.dispatcher.closed, c.dispatcher.destroyed];
      await c.dispatcher.close();
      flags.push(c.dispatcher.closed, c.dispatcher.destroyed);
      const after = await outcome(() => get(c, '/echo'));
      const closeAgain = await outcome(() => c.dispatcher.close());
      return { flags, after, closeAgain };
    });
    await conform(async (c) => {
      await c.dispatcher.destroy();
      return { flags: [c.dispatcher.closed, c.dispatcher.destroyed], after: await outcome(() => get(c, '/echo')) };
    });
  });

  it('destroy(err) delivers err to requests in flight', async () => {
    await conform(async (c) => {
      const pending = get(c, '/hang');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const mine = new Error('shutting down');
      await c.dispatcher.destroy(mine);
      return (await outcome(() => pending)) as object;
    });
  });

  it('close() waits for requests in flight', async () => {
    await conform(async (c) => {
      const pending = get(c, '/slow');
      await new Promise((resolve) => setTimeout(resolve, 50));
      await c.dispatcher.close();
      return pending;
    });
  });

  it("dispatch()'s return value, and drain with the logical origin", async () => {
    await conform(
      async (c) => {
        // A warm name: while a name is first resolved, signpost's dispatch() returns true.
        await get(c, '/echo');
        const drains: string[] = [];
        c.dispatcher.on('drain', (origin: URL) => drains.push(String(origin)));
        const returned: boolean[] = [];
        const settled: Array<Promise<unknown>> = [];
        for (let i = 0; i < 3; i++) {
          settled.push(
            new Promise((resolve) => {
              returned.push(c.dispatcher.dispatch({ origin: c.origin, path: '/slow', method: 'GET' }, recordingHandler([], resolve)));
            }),
          );
        }
        await Promise.all(settled);
        return { returned, drained: drains.length > 0, origins: [...new Set(drains)] };
      },
      { kinds: ['undici', 'signpost'], undiciOptions: { connections: 1, pipelining: 1 } },
    );
  });

  it('connect and disconnect events name the logical origin, the dispatcher first in targets', async () => {
    await conform(
      async (c) => {
        const events: unknown[] = [];
        const emitter = c.dispatcher as unknown as NodeJS.EventEmitter;
        emitter.on('connect', (origin: URL, targets: Dispatcher[]) => events.push(['connect', String(origin), targets[0] === c.dispatcher, targets.length]));
        emitter.on('disconnect', (origin: URL, targets: Dispatcher[], error: Error) =>
          events.push(['disconnect', String(origin), targets[0] === c.dispatcher, targets.length, error.constructor.name]),
        );
        await get(c, '/echo');
        await c.dispatcher.close();
        return events;
      },
      { kinds: ['undici', 'signpost'] },
    );
  });

  it('every undici Agent option is accepted', async () => {
    const options = {
      connections: 4,
      clientTtl: 60_000,
      maxOrigins: 100,
      connectTimeout: 2000,
      autoSelectFamily: true,
      autoSelectFamilyAttemptTimeout: 250,
      maxResponseSize: 1_000_000,
      strictContentLength: true,
      maxConcurrentStreams: 50,
      pingInterval: 30_000,
      initialWindowSize: 65_535,
      connectionWindowSize: 1_048_576,
      maxCachedSessions: 10,
      keepAliveTimeout: 1000,
      bodyTimeout: 1000,
      headersTimeout: 1000,
      maxHeaderSize: 16_384,
      pipelining: 1,
      allowH2: false,
      webSocket: { maxPayloadSize: 1024 },
      eventSource: { maxEventSize: 1024 },
    };
    await conform(async (c) => get(c, '/echo'), { undiciOptions: options });
    await conform(async (c) => get(c, '/gzip'), { undiciOptions: { maxResponseSize: 4 } });
  });
});

describe('conformance with undici Agent: composed with undici interceptors (signpost innermost)', () => {
  const composed = (c: Context, ...list: Dispatcher.DispatcherComposeInterceptor[]): Context => ({
    ...c,
    dispatcher: c.dispatcher.compose(...list) as unknown as Dispatching,
  });

  it('retry: a 503 is retried, and the retry handler’s own throw does not hang', async () => {
    let id = 0;
    await conform(async (c) => get(composed(c, interceptors.retry({ minTimeout: 10, maxRetries: 2 })), `/flaky?id=retry-${id++}`));
    await conform(async (c) => {
      const retrying = new RetryAgent(c.dispatcher, { minTimeout: 10, maxRetries: 2 });
      return get({ ...c, dispatcher: retrying as unknown as Dispatching }, `/flaky?id=retry-agent-${id++}`);
    });
  });

  it('redirect, decompress, dump, responseError', async () => {
    await conform(async (c) => get(composed(c, interceptors.redirect({ maxRedirections: 2 })), '/redirect'));
    await conform(async (c) => get(composed(c, interceptors.decompress()), '/gzip'));
    await conform(async (c) => {
      const { statusCode } = await composed(c, interceptors.dump({ maxSize: 1024 })).dispatcher.request({ origin: c.origin, path: '/echo', method: 'GET' });
      return statusCode;
    });
    await conform(async (c) => get(composed(c, interceptors.responseError()), '/missing'));
  });

  it('cache and deduplicate', async () => {
    let id = 0;
    await conform(async (c) => {
      const cached = composed(c, interceptors.cache());
      const key = `cache-${id++}`;
      await get(cached, `/cacheable?id=${key}`);
      const second = await cached.dispatcher.request({ origin: c.origin, path: `/cacheable?id=${key}`, method: 'GET' });
      await second.body.text();
      return second.headers['x-count'];
    });
    await conform(async (c) => {
      const deduped = composed(c, interceptors.deduplicate());
      const key = `dedupe-${id++}`;
      await Promise.all([get(deduped, `/dedupe?id=${key}`), get(deduped, `/dedupe?id=${key}`)]);
      return counters.get(`dedupe ${key}`);
    });
  });

  it("interceptors.dns() around signpost fails loudly instead of bypassing discovery", async () => {
    const agent = new DiscoveryAgent({ services: services(port) });
    try {
      expect(() => agent.compose(interceptors.dns({ lookup: (_origin, _opts, cb) => cb(null, [{ address: ADDRESS, family: 4, ttl: 1000 }]) }))).toThrow(
        expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }),
      );
    } finally {
      await agent.close();
    }
    // Outside the interceptor, the DNS interceptor's rewritten request is refused at dispatch.
    const discovery = new Discovery({ services: services(port) });
    const base = new Agent();
    try {
      const chain = base.compose(
        discoveryInterceptor({ discovery }),
        interceptors.dns({ lookup: (_origin, _opts, cb) => cb(null, [{ address: ADDRESS, family: 4, ttl: 1000 }]) }),
      );
      await expect(request(`http://${NAME}:${port}/echo`, { dispatcher: chain })).rejects.toMatchObject({ code: 'SIGNPOST_ERR_INVALID_ARG' });
    } finally {
      await base.close();
      await discovery.close();
    }
  });
});

describe('conformance with undici Agent: HTTP/2', () => {
  let ca: TestCa;
  let h2: Http2SecureServer;
  let h2Port = 0;

  beforeAll(async () => {
    ca = await TestCa.create();
    const tls = await ca.issue(NAME);
    // Speaks h2 and HTTP/1.1, as a WebSocket-capable server behind TLS does.
    h2 = createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => res.end(`HTTP/${req.httpVersion}`));
    await new Promise<void>((resolve) => h2.listen(0, ADDRESS, resolve));
    h2Port = (h2.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => h2.close(() => resolve()));
    await ca.remove();
  });

  it("a request's own allowH2: false gets HTTP/1.1, as with undici (what Node's WebSocket asks for)", async () => {
    const results = await conform(
      async (c) => {
        const origin = `https://${NAME}:${h2Port}`;
        const h2Body = await (await c.dispatcher.request({ origin, path: '/', method: 'GET' })).body.text();
        const h1Body = await (await c.dispatcher.request({ origin, path: '/', method: 'GET', allowH2: false } as Dispatcher.RequestOptions)).body.text();
        return { h2Body, h1Body };
      },
      { undiciOptions: { allowH2: true, connect: { ca: ca.cert } }, port: h2Port },
    );
    expect(results.signpost).toEqual({ ok: { h2Body: 'HTTP/2.0', h1Body: 'HTTP/1.1' } });
  });
});

describe('testing a service that uses signpost with MockAgent', () => {
  it('new MockAgent({ agent }) mocks by the logical origin, as over a plain Agent', async () => {
    await conform(
      async (c) => {
        const mock = new MockAgent({ agent: c.dispatcher as Agent });
        mock.disableNetConnect();
        mock.get(c.origin).intercept({ path: '/orders/42', method: 'GET' }).reply(200, { id: 42 });
        const res = await undiciFetch(`${c.origin}/orders/42`, { dispatcher: mock });
        const unmocked = await outcome(() => get({ ...c, dispatcher: mock as unknown as Dispatching }, '/other'));
        return { status: res.status, body: await res.json(), unmocked: (unmocked as { error?: { code?: string } }).error?.code };
      },
      { kinds: ['undici', 'signpost'] },
    );
  });
});

describe('errors are undici’s own', () => {
  it('a closed agent answers with ClientDestroyedError, and a closing one with ClientClosedError', async () => {
    const agent = new DiscoveryAgent({ services: services(port) });
    const slow = get({ kind: 'signpost', dispatcher: agent, origin: `http://${NAME}:${port}`, close: async () => {} }, '/slow');
    const closing = agent.close();
    await expect(request(`http://${NAME}:${port}/echo`, { dispatcher: agent })).rejects.toBeInstanceOf(errors.ClientClosedError);
    await slow;
    await closing;
    await expect(request(`http://${NAME}:${port}/echo`, { dispatcher: agent })).rejects.toBeInstanceOf(errors.ClientDestroyedError);
  });
});
