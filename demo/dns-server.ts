/**
 * The demo's DNS server: a small authoritative responder on loopback UDP (dgram + dns-packet)
 * for A and SRV records, changed while it runs, the way Cloud Map changes Route 53 records when
 * tasks start and stop. SRV answers carry their targets' A records in the additional section, as
 * Cloud Map's do. Unknown names get NXDOMAIN; other types NODATA; both with an SOA.
 */
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface SrvTarget {
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

const RCODE_NXDOMAIN = 3;

export class DemoDns {
  readonly #socket: Socket;
  readonly #a = new Map<string, string[]>();
  readonly #srv = new Map<string, SrvTarget[]>();
  readonly #zone: string;
  readonly #ttl: number;
  /** Queries answered, for the summary. */
  queries = 0;

  private constructor(socket: Socket, zone: string, ttlSeconds: number) {
    this.#socket = socket;
    this.#zone = zone;
    this.#ttl = ttlSeconds;
    socket.on('message', (message, remote) => this.#answer(message, remote.address, remote.port));
  }

  /** Starts on 127.0.0.1 and a free port. Records last `ttlSeconds`. */
  static async start(zone: string, ttlSeconds = 1): Promise<DemoDns> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    return new DemoDns(socket, zone, ttlSeconds);
  }

  /** `127.0.0.1:PORT`, for `dns.servers`. */
  get server(): string {
    const { address, port } = this.#socket.address();
    return `${address}:${port}`;
  }

  /** Replaces the A records of a name (an empty list removes the name). */
  setA(name: string, addresses: string[]): void {
    if (addresses.length === 0) this.#a.delete(name);
    else this.#a.set(name, [...addresses]);
  }

  /** Replaces the SRV records of a name (an empty list removes the name). */
  setSrv(name: string, targets: SrvTarget[]): void {
    if (targets.length === 0) this.#srv.delete(name);
    else this.#srv.set(name, targets.map((t) => ({ ...t })));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #answer(message: Buffer, address: string, port: number): void {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    this.queries += 1;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const ttl = this.#ttl;
    const answers: dnsPacket.Answer[] = [];
    const additionals: dnsPacket.Answer[] = [];
    const exists = this.#a.has(name) || this.#srv.has(name);
    if (question.type === 'A') {
      for (const data of this.#a.get(name) ?? []) answers.push({ type: 'A', name, ttl, data });
    } else if (question.type === 'SRV') {
      for (const t of this.#srv.get(name) ?? []) {
        answers.push({ type: 'SRV', name, ttl, data: { target: t.target, port: t.port, priority: t.priority ?? 1, weight: t.weight ?? 1 } });
        for (const data of this.#a.get(t.target) ?? []) additionals.push({ type: 'A', name: t.target, ttl, data });
      }
    }
    const soa: dnsPacket.Answer = {
      type: 'SOA',
      name: this.#zone,
      ttl,
      data: { mname: `ns.${this.#zone}`, rname: `admin.${this.#zone}`, serial: 1, refresh: 60, retry: 60, expire: 600, minimum: ttl },
    };
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (exists ? 0 : RCODE_NXDOMAIN),
      questions: query.questions ?? [],
      answers,
      authorities: answers.length === 0 ? [soa] : [],
      additionals,
    });
    this.#socket.send(response, port, address);
  }
}
