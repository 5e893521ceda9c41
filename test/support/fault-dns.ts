/**
 * A scriptable DNS responder on 127.0.0.x (UDP and TCP on one port), for the hostile and broken
 * answers bind9 will not give: wrong IDs, wrong questions, garbage, truncation, silence, CNAME
 * loops, replies from another port.
 *
 * Usage:
 *   const fault = await FaultDns.start((query, transport) => [reply(query, { answers: [...] })]);
 *   fault.server   // '127.0.0.1:PORT', for `dns.servers`
 *   fault.queries  // what was asked, in order
 *   await fault.close();
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

export type Transport = 'udp' | 'tcp';

/** One packet to send back; an empty list of them is silence. */
export interface FaultAction {
  readonly bytes: Buffer;
  /** Send it from a different UDP port than the one queried (UDP only). */
  readonly fromOtherPort?: boolean;
}

export type FaultHandler = (
  query: dnsPacket.DecodedPacket,
  transport: Transport,
) => readonly (FaultAction | Buffer)[] | Promise<readonly (FaultAction | Buffer)[]>;

export interface AskedQuery {
  readonly id: number;
  readonly name: string;
  readonly type: string;
  readonly transport: Transport;
}

const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface ReplyFields extends Omit<dnsPacket.Packet, 'type' | 'questions'> {
  rcode?: keyof typeof RCODES;
  truncated?: boolean;
  questions?: dnsPacket.Question[];
}

/** An encoded response to `query`: its ID and question unless overridden. */
export function reply(query: dnsPacket.DecodedPacket, fields: ReplyFields = {}): Buffer {
  const { rcode = 'NOERROR', truncated = false, ...rest } = fields;
  return dnsPacket.encode({
    id: query.id ?? 0,
    questions: query.questions ?? [],
    answers: [],
    authorities: [],
    additionals: [],
    ...rest,
    type: 'response',
    flags:
      (rest.flags ?? dnsPacket.AUTHORITATIVE_ANSWER) |
      (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      RCODES[rcode],
  });
}

export class FaultDns {
  readonly address: string;
  readonly port: number;
  readonly queries: AskedQuery[] = [];
  handler: FaultHandler;
  readonly #udp: UdpSocket;
  readonly #other: UdpSocket;
  readonly #tcp: Server;
  readonly #connections = new Set<Socket>();

  private constructor(address: string, port: number, udp: UdpSocket, other: UdpSocket, tcp: Server, handler: FaultHandler) {
    this.address = address;
    this.port = port;
    this.#udp = udp;
    this.#other = other;
    this.#tcp = tcp;
    this.handler = handler;
    udp.on('message', (message, remote) => {
      void this.#answer(message, 'udp').then((actions) => {
        for (const action of actions) {
          (action.fromOtherPort ? this.#other : this.#udp).send(action.bytes, remote.port, remote.address);
        }
      });
    });
    tcp.on('connection', (socket) => {
      this.#connections.add(socket);
      socket.on('close', () => this.#connections.delete(socket));
      socket.on('error', () => {});
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
          buffered = buffered.subarray(2 + message.length);
          void this.#answer(message, 'tcp').then((actions) => {
            for (const { bytes } of actions) {
              const length = Buffer.alloc(2);
              length.writeUInt16BE(bytes.length);
              if (!socket.destroyed) socket.write(Buffer.concat([length, bytes]));
            }
          });
        }
      });
    });
  }

  static async start(handler: FaultHandler, address = '127.0.0.1'): Promise<FaultDns> {
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket('udp4');
      const other = createSocket('udp4');
      await Promise.all([bind(udp, address, 0), bind(other, address, 0)]);
      const { port } = udp.address();
      const tcp = createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, address, () => resolve());
        });
        return new FaultDns(address, port, udp, other, tcp, handler);
      } catch (error) {
        udp.close();
        other.close();
        if (attempt >= 5) throw error;
      }
    }
  }

  /** `address:port`, as `dns.servers` takes it. */
  get server(): string {
    return `${this.address}:${this.port}`;
  }

  async #answer(message: Buffer, transport: Transport): Promise<FaultAction[]> {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return [];
    }
    const question = query.questions?.[0];
    this.queries.push({ id: query.id ?? 0, name: question?.name ?? '', type: question?.type ?? '', transport });
    const actions = await this.handler(query, transport);
    return actions.map((a) => (Buffer.isBuffer(a) ? { bytes: a } : a));
  }

  async close(): Promise<void> {
    for (const socket of this.#connections) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.#udp.close(() => resolve())),
      new Promise<void>((resolve) => this.#other.close(() => resolve())),
      new Promise<void>((resolve) => this.#tcp.close(() => resolve())),
    ]);
  }
}

function bind(socket: UdpSocket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}
