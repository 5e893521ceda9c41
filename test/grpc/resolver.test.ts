/**
 * The grpc-js resolver with real grpc-js servers on 127.0.0.x found through SRV records in bind9:
 * calls spread over the instances by grpc-js's own round_robin, follow instances added and removed
 * in the registry, and fail as grpc-js expects (UNAVAILABLE) with signpost's reason.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Discovery } from '../../src/discovery.ts';
import { registerGrpcResolver, ZONES_ATTRIBUTE } from '../../src/grpc/index.ts';
import { SignpostGrpcResolver } from '../../src/grpc/resolver.ts';
import { Bind9 } from '../fixtures/bind9.ts';

const ZONE = 'grpc.test';
const NAME = `echo.${ZONE}`;

const json = {
  serialize: (value: unknown): Buffer => Buffer.from(JSON.stringify(value)),
  deserialize: (buffer: Buffer): unknown => JSON.parse(buffer.toString()) as unknown,
};
const ECHO: grpc.ServiceDefinition = {
  echo: {
    path: '/signpost.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};
const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
type Echo = grpc.Client & {
  echo(request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: { from: string }) => void): void;
};

interface EchoServer {
  readonly address: string;
  readonly port: number;
  readonly server: grpc.Server;
}

async function startServer(address: string): Promise<EchoServer> {
  const server = new grpc.Server();
  server.addService(ECHO, {
    echo: (_call: unknown, callback: (error: null, reply: { from: string }) => void) => callback(null, { from: address }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${address}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { address, port, server };
}

function call(client: Echo): Promise<string> {
  // A deadline, so that a channel that never gets an instance fails the test instead of hanging it.
  return new Promise((resolve, reject) =>
    client.echo({}, { deadline: Date.now() + 5000 }, (error, reply) => (error ? reject(error) : resolve(reply!.from))),
  );
}

async function counts(client: Echo, calls: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < calls; i++) {
    const from = await call(client);
    seen.set(from, (seen.get(from) ?? 0) + 1);
  }
  return seen;
}

const srv = (server: EchoServer, label: string): string[] => [
  `_grpc._tcp.echo 1 IN SRV 0 1 ${server.port} ${label}`,
  `${label} 1 IN A ${server.address}`,
];

describe('the grpc-js resolver', () => {
  let bind: Bind9;
  let servers: EchoServer[];
  let discovery: Discovery;
  let unregister: () => void;

  beforeAll(async () => {
    servers = await Promise.all(['127.0.0.101', '127.0.0.102', '127.0.0.103'].map(startServer));
    bind = await Bind9.start({ zones: { [ZONE]: servers.flatMap((s, i) => srv(s, `g${i}`)).join('\n') } });
    discovery = new Discovery({
      namespaces: { [ZONE]: { via: 'srv', srvPrefix: '_grpc._tcp' } },
      dns: { servers: [bind.server], timeout: 500, tries: 2 },
      cache: { minTtl: 200 },
    });
    unregister = registerGrpcResolver({ discovery, scheme: 'signpost-test' });
  });

  afterAll(async () => {
    unregister?.();
    await discovery?.close();
    for (const s of servers ?? []) s.server.forceShutdown();
    await bind?.close();
  });

  it('spreads calls over 3 real grpc-js servers, and follows an instance added and one removed', async () => {
    const client = new EchoClient(`signpost-test:///${NAME}`, grpc.credentials.createInsecure()) as unknown as Echo;
    const added = await startServer('127.0.0.104');
    try {
      // round_robin over the instances, each at its SRV port.
      await vi.waitFor(async () => expect((await counts(client, 30)).size).toBe(3), { timeout: 10_000, interval: 50 });
      const even = await counts(client, 300);
      expect([...even.keys()].sort()).toEqual(servers.map((s) => s.address));
      for (const n of even.values()) expect(n).toBeGreaterThanOrEqual(90);

      await bind.update([
        `update add _grpc._tcp.echo.${ZONE} 1 IN SRV 0 1 ${added.port} g3.${ZONE}.`,
        `update add g3.${ZONE} 1 IN A ${added.address}`,
      ]);
      await vi.waitFor(async () => expect((await counts(client, 40)).has(added.address)).toBe(true), { timeout: 10_000, interval: 100 });

      const gone = servers[0]!;
      await bind.update([`update delete _grpc._tcp.echo.${ZONE} SRV 0 1 ${gone.port} g0.${ZONE}.`]);
      await vi.waitFor(async () => expect((await counts(client, 40)).has(gone.address)).toBe(false), { timeout: 10_000, interval: 100 });
      const after = await counts(client, 120);
      expect([...after.keys()].sort()).toEqual([servers[1]!.address, servers[2]!.address, added.address]);
    } finally {
      client.close();
      added.server.forceShutdown();
    }
  });

  it('fails calls with UNAVAILABLE and signpost’s reason when the name does not exist', async () => {
    const client = new EchoClient(`signpost-test:///nope.${ZONE}:50051`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      const error = (await call(client).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(error.code).toBe(grpc.status.UNAVAILABLE);
      expect(error.details).toContain('SIGNPOST_ERR_NOT_FOUND');
      expect(error.details).toContain(`nope.${ZONE}`);
    } finally {
      client.close();
    }
  });

  it('an unregistered scheme and a bad target fail with UNAVAILABLE saying what to do', async () => {
    const stop = registerGrpcResolver({ discovery, scheme: 'signpost-gone' });
    stop();
    const client = new EchoClient(`signpost-gone:///${NAME}`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      const error = (await call(client).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(error.code).toBe(grpc.status.UNAVAILABLE);
      expect(error.details).toContain('registerGrpcResolver');
    } finally {
      client.close();
    }
    expect(() => new EchoClient('signpost-test:///bad name!', grpc.credentials.createInsecure())).toThrow();
  });

  it('checks its options: each bad value is a SIGNPOST_ERR_INVALID_ARG', () => {
    for (const options of [undefined, {}, { discovery: {} }, { discovery, scheme: 'dns' }, { discovery, scheme: '1x' }, { discovery, scheme: 7 }, { discovery, other: 1 }]) {
      expect(() => registerGrpcResolver(options as never), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }),
      );
    }
  });

  it('serves the listener object of grpc-js 1.10–1.13, never synchronously and never after destroy', async () => {
    const zoned = new Discovery({
      services: { [NAME]: { via: 'static', instances: [{ address: '127.0.0.9', port: 7000, zone: 'b' }, { address: '127.0.0.8', zone: 'a' }] } },
      zone: 'a',
    });
    const stop = registerGrpcResolver({ discovery: zoned, scheme: 'signpost-old' });
    try {
      await zoned.zone;
      const results: unknown[][] = [];
      const listener = {
        onSuccessfulResolution: (...args: unknown[]) => results.push(args),
        onError: (error: unknown) => results.push(['error', error]),
      };
      const resolver = new SignpostGrpcResolver({ scheme: 'signpost-old', path: `${NAME}:50051` }, listener, {});
      resolver.updateResolution();
      expect(results).toHaveLength(0);
      await vi.waitFor(() => expect(results).toHaveLength(1));
      const [endpoints, serviceConfig, error, selector, attributes] = results[0]!;
      // The caller's zone first; the target's port for the instance without one.
      expect(endpoints).toEqual([{ addresses: [{ host: '127.0.0.8', port: 50051 }] }, { addresses: [{ host: '127.0.0.9', port: 7000 }] }]);
      expect(serviceConfig).toEqual({ loadBalancingConfig: [{ round_robin: {} }], methodConfig: [] });
      expect(error).toBeNull();
      expect(selector).toBeNull();
      expect((attributes as Record<string, unknown>)[ZONES_ATTRIBUTE]).toEqual({ '127.0.0.9:7000': 'b', '127.0.0.8:50051': 'a' });
      resolver.updateResolution();
      resolver.destroy();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(results).toHaveLength(1);
      // With a service config of the channel's own, none comes from the resolver.
      const own = new SignpostGrpcResolver({ scheme: 'signpost-old', path: NAME }, listener, { 'grpc.service_config': '{}' });
      own.updateResolution();
      await vi.waitFor(() => expect(results).toHaveLength(2));
      expect(results[1]![1]).toBeNull();
      own.destroy();
    } finally {
      stop();
      await zoned.close();
    }
  });

  it('importing signpost does not load @grpc/grpc-js; importing signpost/grpc does', async () => {
    const src = fileURLToPath(new URL('../../src/', import.meta.url));
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const loaded = () => Object.keys(require.cache).some((path) => path.includes('@grpc'));
      await import(${JSON.stringify(`${src}index.ts`)});
      const before = loaded();
      await import(${JSON.stringify(`${src}grpc/index.ts`)});
      console.log(JSON.stringify({ before, after: loaded() }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: src });
    expect(JSON.parse(stdout)).toEqual({ before: false, after: true });
  });
});
