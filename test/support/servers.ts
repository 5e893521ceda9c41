/**
 * Instance servers for agent tests: HTTP(S) servers on 127.0.0.2, 127.0.0.3, …, each counting
 * the requests it got, and a throw-away CA with certificates made at test time by `openssl`.
 *
 *   const fleet = await Fleet.start(3);                  // 127.0.0.2..4, one port each
 *   const fleet = await Fleet.start(3, { samePort: true }); // one port on every address (A records)
 *   fleet.instances                                       // [{ address, port }], for `via: 'static'`
 *   await fleet.servers[0].kill();                        // close + reset every connection
 */
import { execFile } from 'node:child_process';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly host: string | undefined;
  readonly body: string;
}

export type Behaviour =
  /** 200 with the server's address as body. */
  | 'ok'
  /** Accept the request and never answer. */
  | 'hang'
  /** Reset the connection once the request arrived (after it was read). */
  | 'reset'
  /** 503 Service Unavailable. */
  | '5xx';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
}

export class InstanceServer {
  readonly address: string;
  readonly server: Server;
  port = 0;
  behaviour: Behaviour = 'ok';
  /** Requests seen (every one counted, whatever the behaviour). */
  readonly seen: Seen[] = [];
  /** Delay before answering, in milliseconds. */
  delay = 0;
  /** Requests whose URL matches are held unanswered until {@link InstanceServer.release}. */
  hold: RegExp | undefined;
  readonly #held: Array<() => void> = [];
  readonly #sockets = new Set<Socket>();

  constructor(address: string, tls?: TlsMaterial) {
    this.address = address;
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    this.server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, handler) : createHttpServer(handler);
    this.server.keepAliveTimeout = 60_000;
    this.server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    // TLS sockets are tracked through their underlying TCP connection above.
    this.server.on('tlsClientError', () => undefined);
  }

  get count(): number {
    return this.seen.length;
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen(port, this.address, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    this.port = address.port;
  }

  /** Requests held now. */
  get held(): number {
    return this.#held.length;
  }

  /** Answers every held request. */
  release(): void {
    for (const answer of this.#held.splice(0)) answer();
  }

  /** Stops listening and resets every open connection, as a killed task does. */
  async kill(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.#sockets) socket.resetAndDestroy();
    await closed;
  }

  /** Stops listening; open connections finish their requests (a graceful stop). */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const socket of this.#sockets) socket.destroy();
    }, 2000);
    await closed;
    clearTimeout(timer);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        host: req.headers.host,
        body: Buffer.concat(chunks).toString(),
      });
      const behaviour = this.behaviour;
      if (behaviour === 'hang') return;
      if (behaviour === 'reset') {
        req.socket.resetAndDestroy();
        return;
      }
      const answer = (): void => {
        res.writeHead(behaviour === '5xx' ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(this.address);
      };
      if (this.hold?.test(req.url ?? '') === true) this.#held.push(answer);
      else if (this.delay > 0) setTimeout(answer, this.delay);
      else answer();
    });
  }
}

export interface FleetOptions {
  /** Listen on one port on every address (as A records with one configured port need). */
  samePort?: boolean;
  /** Serve HTTPS with this key and certificate. */
  tls?: TlsMaterial;
  /** The first address's last octet. @default 2 */
  firstOctet?: number;
}

export class Fleet {
  readonly servers: InstanceServer[];

  private constructor(servers: InstanceServer[]) {
    this.servers = servers;
  }

  static async start(count: number, options: FleetOptions = {}): Promise<Fleet> {
    const first = options.firstOctet ?? 2;
    for (let tries = 0; ; tries++) {
      const servers = Array.from({ length: count }, (_, i) => new InstanceServer(`127.0.0.${first + i}`, options.tls));
      try {
        let port = 0;
        for (const server of servers) {
          await server.listen(options.samePort ? port : 0);
          if (options.samePort) port = server.port;
        }
        return new Fleet(servers);
      } catch (error) {
        await Promise.all(servers.map((s) => s.close()));
        // Another test took the port on one of the addresses: pick another.
        if (tries >= 10 || (error as { code?: string }).code !== 'EADDRINUSE') throw error;
      }
    }
  }

  get instances(): Array<{ address: string; port: number }> {
    return this.servers.map((s) => ({ address: s.address, port: s.port }));
  }

  get counts(): number[] {
    return this.servers.map((s) => s.count);
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.kill().catch(() => undefined)));
  }
}

/** A throw-away CA and certificates signed by it, made with the machine's `openssl`. */
export class TestCa {
  readonly dir: string;
  readonly cert: string;
  readonly #key: string;

  private constructor(dir: string, cert: string, key: string) {
    this.dir = dir;
    this.cert = cert;
    this.#key = key;
  }

  static async create(): Promise<TestCa> {
    const dir = await mkdtemp(join(tmpdir(), 'signpost-ca-'));
    const key = join(dir, 'ca.key');
    const cert = join(dir, 'ca.crt');
    await execFileAsync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=signpost test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return new TestCa(dir, await readFile(cert, 'utf8'), key);
  }

  /** A key and a certificate for these DNS names, signed by the CA. */
  async issue(...names: string[]): Promise<TlsMaterial> {
    const base = join(this.dir, names[0]!.replace(/[^a-z0-9.-]/gi, '_'));
    const ext = `${base}.ext`;
    await writeFile(
      ext,
      [`subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, 'extendedKeyUsage=serverAuth', 'basicConstraints=CA:FALSE', ''].join('\n'),
    );
    await execFileAsync('openssl', [
      'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0]}`,
    ]);
    await execFileAsync('openssl', [
      'x509', '-req', '-in', `${base}.csr`, '-CA', join(this.dir, 'ca.crt'), '-CAkey', this.#key,
      '-CAcreateserial', '-out', `${base}.crt`, '-days', '2', '-extfile', ext,
    ]);
    return { key: await readFile(`${base}.key`, 'utf8'), cert: await readFile(`${base}.crt`, 'utf8') };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
