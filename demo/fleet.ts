/**
 * The demo's instances: small HTTP servers on 127.0.0.x that say who answered (`x-instance`,
 * `x-zone`, `x-version`) and can be killed (every connection cut, the port closed: what a
 * crashed task looks like) or stopped gracefully (what ECS does to a task it replaces).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface InstanceSpec {
  address: string;
  zone: string;
  version?: string;
}

export class DemoInstance {
  readonly address: string;
  readonly zone: string;
  readonly version: string;
  port = 0;
  served = 0;
  #server: Server | undefined;

  constructor(spec: InstanceSpec) {
    this.address = spec.address;
    this.zone = spec.zone;
    this.version = spec.version ?? 'v1';
  }

  get running(): boolean {
    return this.#server?.listening ?? false;
  }

  /** Listens on `port` (0: any free one). */
  async start(port: number): Promise<number> {
    const server = createServer((request, response) => {
      this.served += 1;
      request.resume();
      response.setHeader('x-instance', this.address);
      response.setHeader('x-zone', this.zone);
      response.setHeader('x-version', this.version);
      response.end(`${this.version} from ${this.address} (${this.zone})\n`);
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.address, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  /** A crash: every open connection is cut and the port refuses from now on. */
  async kill(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** A graceful stop: no new connections, requests in flight finish, idle connections close. */
  async stop(graceMs = 500): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
  }
}

/** Starts every instance on one shared port (A records carry no port). Retries on a clash. */
export async function startOnOnePort(instances: readonly DemoInstance[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    let port = 0;
    try {
      for (const instance of instances) port = await instance.start(port);
      return port;
    } catch {
      await Promise.all(instances.map((i) => i.kill()));
    }
  }
  throw new Error('no port is free on every demo address');
}
