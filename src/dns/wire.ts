/**
 * One DNS question over the wire (RFC 1035), for the record types c-ares will not give TTLs for
 * (SRV). Hardened against off-path spoofing and hostile servers: a random ID and a fresh socket
 * (so a fresh source port) per try, a connected UDP socket, answers checked for ID, QR bit and
 * question, garbage ignored rather than fatal, TCP when the answer is truncated, bounded sizes.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import dnsPacket from 'dns-packet';

/** A server to query. */
export interface DnsServer {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** As the user wrote it, for messages. */
  readonly label: string;
}

export interface WireQuestion {
  readonly name: string;
  readonly type: dnsPacket.RecordType;
}

/** A decoded response whose ID, QR bit and question matched the query. */
export type WireResponse = dnsPacket.DecodedPacket & { readonly rcode: string };

/** The EDNS0 UDP payload size we advertise: the DNS Flag Day 2020 value, safe from fragmentation. */
export const EDNS_UDP_PAYLOAD_BYTES = 1232;
/**
 * Larger datagrams are not decoded (a server honouring EDNS0 never sends them); a matching one is
 * treated as truncated and asked again over TCP, whose 2-byte framing caps answers at 65,535 bytes.
 */
export const MAX_UDP_RESPONSE_BYTES = 4096;
/** Records kept per owner name and type in each section; the rest are dropped. */
export const MAX_RECORDS_PER_NAME = 512;

const QR_BIT = 0x8000;
const TC_BIT = 0x0200;
const DNS_HEADER_BYTES = 12;

export interface WireQueryOptions {
  /** Per try, in milliseconds. */
  readonly timeout: number;
  /** Tries per server. */
  readonly tries: number;
  readonly signal: AbortSignal;
  /** Told about every packet that was not accepted, and why (for diagnostics). */
  readonly onIgnored?: ((server: DnsServer, reason: string) => void) | undefined;
}

/** One failed try, for the error message. */
export interface WireFailure {
  readonly server: DnsServer;
  readonly reason: string;
  readonly cause?: unknown;
}

/** Every try on every server failed. Callers turn this into a ResolveError. */
export class WireQueryError extends Error {
  readonly failures: readonly WireFailure[];

  constructor(failures: readonly WireFailure[]) {
    super(failures.map((f) => `${f.server.label}: ${f.reason}`).join('; '));
    this.failures = failures;
  }
}

/** Lower-case, no trailing dot: the form names are compared in. */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Asks `question` of each server in turn, `tries` rounds over the list (a dead first server costs
 * one timeout per round, not `tries` of them). Settles with the first NOERROR or NXDOMAIN answer;
 * SERVFAIL, REFUSED and the like move on to the next server, as c-ares does. Rejects with
 * {@link WireQueryError}, or with the signal's reason once it aborts.
 */
export async function wireQuery(
  servers: readonly DnsServer[],
  question: WireQuestion,
  options: WireQueryOptions,
): Promise<WireResponse> {
  const failures: WireFailure[] = [];
  for (let round = 0; round < options.tries; round++) {
    for (const server of servers) {
      options.signal.throwIfAborted();
      try {
        const response = await exchange(server, question, options);
        if (response.rcode === 'NOERROR' || response.rcode === 'NXDOMAIN') return response;
        failures.push({ server, reason: `answered ${response.rcode}` });
      } catch (error) {
        options.signal.throwIfAborted();
        failures.push({ server, reason: error instanceof Error ? error.message : String(error), cause: error });
      }
    }
  }
  throw new WireQueryError(failures);
}

function encodeQuery(id: number, question: WireQuestion): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: question.name, type: question.type, class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: EDNS_UDP_PAYLOAD_BYTES,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  });
}

type Verdict =
  | { readonly kind: 'accept'; readonly response: WireResponse }
  | { readonly kind: 'truncated' }
  | { readonly kind: 'ignore'; readonly reason: string };

/** Decides what a packet from the queried server is to this query. Never throws. */
function judge(message: Buffer, id: number, question: WireQuestion, overTcp: boolean): Verdict {
  if (message.length < DNS_HEADER_BYTES) return { kind: 'ignore', reason: 'shorter than a DNS header' };
  if (message.readUInt16BE(0) !== id) return { kind: 'ignore', reason: 'wrong ID' };
  const flags = message.readUInt16BE(2);
  if ((flags & QR_BIT) === 0) return { kind: 'ignore', reason: 'not a response (QR bit clear)' };
  const truncated = !overTcp && ((flags & TC_BIT) !== 0 || message.length > MAX_UDP_RESPONSE_BYTES);
  let packet: dnsPacket.DecodedPacket;
  try {
    if (message.length > MAX_UDP_RESPONSE_BYTES && !overTcp) return { kind: 'truncated' };
    packet = dnsPacket.decode(message);
  } catch {
    // A truncated answer may be cut mid-record; its ID already matched, and TCP is checked again.
    return truncated ? { kind: 'truncated' } : { kind: 'ignore', reason: 'undecodable' };
  }
  const [asked, ...extra] = packet.questions ?? [];
  if (
    asked === undefined ||
    extra.length > 0 ||
    normalizeName(asked.name) !== normalizeName(question.name) ||
    asked.type !== question.type ||
    (asked.class ?? 'IN') !== 'IN'
  ) {
    return { kind: 'ignore', reason: 'question does not match' };
  }
  if (truncated) return { kind: 'truncated' };
  return { kind: 'accept', response: limitRecords(packet as WireResponse) };
}

function limitRecords(packet: WireResponse): WireResponse {
  const limit = (records: dnsPacket.Answer[] | undefined): dnsPacket.Answer[] => {
    const counts = new Map<string, number>();
    return (records ?? []).filter((record) => {
      const key = `${normalizeName(record.name)} ${record.type}`;
      const count = (counts.get(key) ?? 0) + 1;
      counts.set(key, count);
      return count <= MAX_RECORDS_PER_NAME;
    });
  };
  packet.answers = limit(packet.answers);
  packet.authorities = limit(packet.authorities);
  packet.additionals = limit(packet.additionals);
  return packet;
}

/** One try on one server: UDP, then TCP if the answer was truncated. */
async function exchange(server: DnsServer, question: WireQuestion, options: WireQueryOptions): Promise<WireResponse> {
  const id = randomInt(0, 0x1_0000);
  const query = encodeQuery(id, question);
  const udp = await exchangeUdp(server, query, id, question, options);
  if (udp !== 'truncated') return udp;
  return exchangeTcp(server, query, id, question, options);
}

/**
 * Runs `body` with a settle-once pair, a timer and the abort signal wired up; `cleanup` runs
 * exactly once on every path, before the promise settles.
 */
function settleOnce<T>(
  timeout: number,
  signal: AbortSignal,
  timeoutReason: () => string,
  body: (settle: (error: unknown, value?: T) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let cleanup: (() => void) | undefined;
    const settle = (error: unknown, value?: T): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      cleanup?.();
      if (error === undefined) resolve(value as T);
      else reject(error);
    };
    const onAbort = (): void => settle(signal.reason);
    const timer = setTimeout(() => settle(new Error(timeoutReason())), timeout);
    if (signal.aborted) {
      settle(signal.reason);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    cleanup = body(settle);
    if (done) cleanup();
  });
}

function exchangeUdp(
  server: DnsServer,
  query: Buffer,
  id: number,
  question: WireQuestion,
  options: WireQueryOptions,
): Promise<WireResponse | 'truncated'> {
  let ignored: string | undefined;
  return settleOnce<WireResponse | 'truncated'>(
    options.timeout,
    options.signal,
    () => `no answer within ${options.timeout} ms${ignored ? ` (ignored packets: ${ignored})` : ''}`,
    (settle) => {
      const socket = createSocket(server.family === 6 ? 'udp6' : 'udp4');
      socket.on('error', (error) => settle(error));
      socket.on('message', (message, remote) => {
        // The socket is connected, so the kernel already drops other sources; this is a second check.
        if (remote.port !== server.port) {
          ignored = 'reply from another port';
          options.onIgnored?.(server, ignored);
          return;
        }
        const verdict = judge(message, id, question, false);
        if (verdict.kind === 'ignore') {
          ignored = verdict.reason;
          options.onIgnored?.(server, verdict.reason);
          return;
        }
        settle(undefined, verdict.kind === 'truncated' ? 'truncated' : verdict.response);
      });
      socket.connect(server.port, server.address, () => {
        socket.send(query, (error) => {
          if (error) settle(error);
        });
      });
      return () => {
        socket.removeAllListeners('message');
        // An error after close (ICMP arriving late) must not become an uncaught exception.
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        try {
          socket.close();
        } catch {
          // Already closed.
        }
      };
    },
  );
}

function exchangeTcp(
  server: DnsServer,
  query: Buffer,
  id: number,
  question: WireQuestion,
  options: WireQueryOptions,
): Promise<WireResponse> {
  return settleOnce<WireResponse>(
    options.timeout,
    options.signal,
    () => `truncated over UDP, and no full answer over TCP within ${options.timeout} ms`,
    (settle) => {
      const socket = connect({ host: server.address, port: server.port, family: server.family });
      let received = Buffer.alloc(0);
      socket.on('error', (error) => settle(error));
      socket.on('close', () => settle(new Error('truncated over UDP, and the TCP connection closed before a full answer')));
      socket.on('connect', () => {
        const frame = Buffer.alloc(2 + query.length);
        frame.writeUInt16BE(query.length, 0);
        query.copy(frame, 2);
        socket.write(frame);
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        const verdict = judge(received.subarray(2, 2 + length), id, question, true);
        if (verdict.kind === 'accept') settle(undefined, verdict.response);
        else settle(new Error(`truncated over UDP, and the TCP answer was not usable (${verdict.kind === 'ignore' ? verdict.reason : 'truncated'})`));
      });
      return () => {
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
      };
    },
  );
}
