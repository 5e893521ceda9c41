/**
 * discovery.lookup under the clients of databases and caches, against real servers on loopback:
 * an ioredis-style raw `net` / `tls` client (RESP) and the real `pg` client (the README's recipe)
 * against a server speaking enough of the PostgreSQL protocol. Instances share a port (A records).
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Discovery } from '../../src/discovery.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { TestCa, type TlsMaterial } from '../fixtures/fleet.ts';

const ZONE = 'net.test';
const CACHE = `cache.${ZONE}`;
const DB = `db.${ZONE}`;
const ADDRESSES = ['127.0.0.111', '127.0.0.112', '127.0.0.113'];

/** A RESP server answering PING with +PONG <its address>, on one port of several addresses. */
class RespFleet {
  readonly servers: net.Server[] = [];
  port = 0;

  static async start(addresses: string[], tlsMaterial?: TlsMaterial): Promise<RespFleet> {
    for (let tries = 0; ; tries++) {
      const fleet = new RespFleet();
      try {
        for (const address of addresses) {
          const onSocket = (socket: net.Socket): void => {
            socket.on('error', () => undefined);
            socket.on('data', (data: Buffer) => {
              if (data.toString().includes('PING')) socket.write(`+PONG ${address}\r\n`);
            });
          };
          const server = tlsMaterial ? tls.createServer({ key: tlsMaterial.key, cert: tlsMaterial.cert }, onSocket) : net.createServer(onSocket);
          fleet.servers.push(server);
          server.listen(fleet.port, address);
          await once(server, 'listening');
          fleet.port = (server.address() as net.AddressInfo).port;
        }
        return fleet;
      } catch (error) {
        await fleet.close();
        if (tries >= 10 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      this.servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))),
    );
  }
}

/** What an ioredis-style client does: connect, PING, read one line. */
async function ping(socket: net.Socket): Promise<string> {
  socket.setEncoding('utf8');
  await once(socket, socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect');
  socket.write('*1\r\n$4\r\nPING\r\n');
  const [line] = (await once(socket, 'data')) as [string];
  socket.destroy();
  return line.trim();
}

/**
 * A server speaking enough PostgreSQL for pg.Client: trust authentication, and any simple query
 * answered with one text row, the server's own address.
 */
function startPostgres(address: string, port: number): Promise<net.Server> {
  const message = (type: string, body: Buffer): Buffer => {
    const header = Buffer.alloc(5);
    header.write(type, 0);
    header.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  };
  const int16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
  const int32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const ready = message('Z', Buffer.from('I'));
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let started = false;
    socket.on('data', (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        if (!started) {
          if (buffer.length < 4 || buffer.length < buffer.readInt32BE(0)) return;
          buffer = buffer.subarray(buffer.readInt32BE(0));
          started = true;
          socket.write(Buffer.concat([message('R', int32(0)), ready]));
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
        const type = String.fromCharCode(buffer[0]!);
        buffer = buffer.subarray(1 + buffer.readInt32BE(1));
        if (type === 'X') {
          socket.end();
          return;
        }
        if (type !== 'Q') continue;
        const value = Buffer.from(address);
        const field = Buffer.concat([Buffer.from('addr\0'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]);
        socket.write(
          Buffer.concat([
            message('T', Buffer.concat([int16(1), field])),
            message('D', Buffer.concat([int16(1), int32(value.length), value])),
            message('C', Buffer.from('SELECT 1\0')),
            ready,
          ]),
        );
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve(server));
  });
}

describe('discovery.lookup with net, tls and pg', () => {
  let bind: Bind9;
  let ca: TestCa;
  let discovery: Discovery;

  beforeAll(async () => {
    ca = await TestCa.create();
    bind = await Bind9.start({
      zones: { [ZONE]: [...ADDRESSES.map((a) => `cache 30 IN A ${a}`), ...ADDRESSES.map((a) => `db 30 IN A ${a}`)].join('\n') },
    });
    discovery = new Discovery({ namespaces: { [ZONE]: { via: 'dns', family: 4 } }, dns: { servers: [bind.server], timeout: 500, tries: 2 } });
  });

  afterAll(async () => {
    await discovery?.close();
    await bind?.close();
    await ca?.remove();
  });

  it('net.connect({ lookup }): connections spread over the instances', async () => {
    const fleet = await RespFleet.start(ADDRESSES);
    try {
      const counts = new Map<string, number>();
      for (let i = 0; i < 60; i++) {
        const reply = await ping(net.connect({ host: CACHE, port: fleet.port, lookup: discovery.lookup }));
        counts.set(reply, (counts.get(reply) ?? 0) + 1);
      }
      expect([...counts.keys()].sort()).toEqual(ADDRESSES.map((a) => `+PONG ${a}`));
      for (const n of counts.values()) expect(n).toBe(20);
    } finally {
      await fleet.close();
    }
  });

  it('net.connect({ lookup }): a dead instance costs no connection (net tries the next address lookup gave)', async () => {
    const fleet = await RespFleet.start(ADDRESSES);
    try {
      await new Promise<void>((resolve) => fleet.servers[0]!.close(() => resolve()));
      const replies = new Set<string>();
      for (let i = 0; i < 30; i++) replies.add(await ping(net.connect({ host: CACHE, port: fleet.port, lookup: discovery.lookup })));
      expect([...replies].sort()).toEqual([`+PONG ${ADDRESSES[1]}`, `+PONG ${ADDRESSES[2]}`]);
    } finally {
      await fleet.close();
    }
  });

  it('tls.connect({ lookup }) (ioredis `tls` options): spread, and the certificate checked against the name', async () => {
    const fleet = await RespFleet.start(ADDRESSES, await ca.issue(CACHE));
    try {
      const replies = new Set<string>();
      for (let i = 0; i < 9; i++) {
        replies.add(await ping(tls.connect({ host: CACHE, port: fleet.port, lookup: discovery.lookup, ca: ca.cert, servername: CACHE })));
      }
      expect(replies.size).toBe(3);
      const wrong = tls.connect({ host: DB, port: fleet.port, lookup: discovery.lookup, ca: ca.cert, servername: DB });
      const [error] = (await once(wrong, 'error')) as [NodeJS.ErrnoException];
      expect(error.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      await fleet.close();
    }
  });

  it('pg.Client through the README recipe (a stream whose connect uses discovery.lookup) spreads its connections', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, ADDRESSES[0], resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const servers = await Promise.all(ADDRESSES.map((address) => startPostgres(address, port)));
    // The recipe: pg calls stream.connect(port, host) itself, so the stream's connect brings the lookup.
    const stream = (): net.Socket => {
      const socket = new net.Socket();
      const connect = socket.connect.bind(socket) as (options: net.NetConnectOpts) => net.Socket;
      socket.connect = ((port: number, host: string) => connect({ port, host, lookup: discovery.lookup })) as typeof socket.connect;
      return socket;
    };
    try {
      const counts = new Map<string, number>();
      for (let i = 0; i < 30; i++) {
        const client = new pg.Client({ host: DB, port, user: 'app', database: 'app', stream });
        await client.connect();
        const { rows } = await client.query<{ addr: string }>('SELECT inet_server_addr()::text AS addr');
        counts.set(rows[0]!.addr, (counts.get(rows[0]!.addr) ?? 0) + 1);
        await client.end();
      }
      expect([...counts.keys()].sort()).toEqual(ADDRESSES);
      for (const n of counts.values()) expect(n).toBe(10);
    } finally {
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    }
  });

  it('a name that does not exist fails the connection as a failed lookup does', async () => {
    const socket = net.connect({ host: `nope.${ZONE}`, port: 6379, lookup: discovery.lookup });
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException & { hostname?: string }];
    expect(error).toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: `nope.${ZONE}` });
    expect(String((error.cause as Error).message)).toContain(`nope.${ZONE}`);
  });
});
