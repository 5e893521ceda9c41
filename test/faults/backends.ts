/**
 * Instance servers for the fault scenarios: plain HTTP/1.1 on 127.0.0.x with keep-alive, each
 * able to misbehave the way real deployments do: reset connections mid-flight, die with
 * requests in flight, answer headers late, trickle a body. A shared ledger counts every POST by
 * its idempotency id, so a POST delivered twice is caught whichever instances got it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Every POST's idempotency id, across instances. */
export class Ledger {
  readonly #posts = new Map<string, number>();
  duplicates = 0;

  record(id: string): void {
    const count = (this.#posts.get(id) ?? 0) + 1;
    this.#posts.set(id, count);
    if (count > 1) this.duplicates++;
  }

  get posts(): number {
    return this.#posts.size;
  }
}

export type Mode =
  | { kind: 'ok' }
  /** Destroy the socket of this share of requests once they arrived (a reset mid-flight). */
  | { kind: 'reset'; share: number }
  /** Answer the headers after `delay` ms. */
  | { kind: 'slow-headers'; delay: number }
  /** Headers at once, then one body byte every `interval` ms, `chunks` times. */
  | { kind: 'trickle'; interval: number; chunks: number };

export class Backend {
  readonly address: string;
  readonly port: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #ledger: Ledger;
  mode: Mode = { kind: 'ok' };
  requests = 0;
  resets = 0;
  /** Requests in the handler and not yet answered. */
  inflight = 0;
  alive = false;

  private constructor(address: string, port: number, server: Server, ledger: Ledger) {
    this.address = address;
    this.port = port;
    this.#server = server;
    this.#ledger = ledger;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res));
  }

  /** Starts a backend on `address:port` (port 0: any). */
  static async start(address: string, port: number, ledger: Ledger): Promise<Backend> {
    const server = createServer({ keepAlive: true, keepAliveTimeout: 5000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const actual = (server.address() as { port: number }).port;
    const backend = new Backend(address, actual, server, ledger);
    backend.alive = true;
    return backend;
  }

  get key(): string {
    return `${this.address}:${this.port}`;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    this.inflight++;
    res.on('close', () => this.inflight--);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method === 'POST') {
        const id = req.headers['x-idempotency-id'];
        if (typeof id === 'string') this.#ledger.record(id);
      }
      const mode = this.mode;
      if (mode.kind === 'reset' && Math.random() < mode.share) {
        this.resets++;
        req.socket.destroy();
        return;
      }
      if (mode.kind === 'slow-headers') {
        this.#later(mode.delay, () => {
          if (!res.destroyed) res.end(this.address);
        });
        return;
      }
      if (mode.kind === 'trickle') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let left = mode.chunks;
        const drip = (): void => {
          if (res.destroyed) return;
          if (left-- <= 0) {
            res.end();
            return;
          }
          res.write('.');
          this.#later(mode.interval, drip);
        };
        drip();
        return;
      }
      res.end(this.address);
    });
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  /** Stops accepting, lets idle keep-alive connections go, waits for in-flight requests. */
  async drainAndStop(): Promise<void> {
    if (!this.alive) return;
    this.alive = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await closed;
  }

  /** Dies at once: every connection reset, requests in flight included. */
  async kill(): Promise<void> {
    if (!this.alive) {
      for (const socket of this.#sockets) socket.destroy();
      return;
    }
    this.alive = false;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

/** Starts backends on 127.0.0.<first>.. sharing one port (as A records need), retrying on a clash. */
export async function startFleet(octets: readonly number[], ledger: Ledger): Promise<Backend[]> {
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const started: Backend[] = [];
    try {
      for (const octet of octets) started.push(await Backend.start(`127.0.0.${octet}`, port, ledger));
      return started;
    } catch (error) {
      await Promise.all(started.map((b) => b.kill()));
      if (attempt >= 10) throw error;
    }
  }
}
