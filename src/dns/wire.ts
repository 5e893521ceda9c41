/**
 * One DNS exchange with one server over the wire (RFC 1035), hardened against off-path spoofing
 * and hostile servers: a random ID per try, never that of another query on the same socket, on a
 * connected UDP socket of its own by default (a fresh source port per query; `dns.udpMaxQueries`
 * lets a socket carry several, see `udp.ts`); answers checked for
 * source, ID, QR bit and the exact question (with 0x20 case randomization when asked for),
 * garbage ignored rather than fatal, EDNS0 with a 1,232-byte buffer, TCP (a connection and an ID
 * of its own) when the answer is truncated, bounded sizes and record counts.
 *
 * Server order, retries and failure memory live in `servers.ts` and `client.ts`.
 */
import { getRandomValues, randomInt } from 'node:crypto';
import { connect } from 'node:net';
import dnsPacket from 'dns-packet';
import { normalizeName } from '../routing.ts';
import type { UdpLease, UdpSockets } from './udp.ts';

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
export type WireResponse = dnsPacket.DecodedPacket & {
  readonly rcode: string;
  /** AA: the server answered from its own zone data, not from a cache. */
  readonly authoritative: boolean;
  /** RFC 8914 Extended DNS Error info codes the server attached (3: Stale Answer, 19: Stale NXDOMAIN). */
  readonly ede: readonly number[];
  /** The server that gave it. */
  readonly server: DnsServer;
  /** The size of the message on the wire, in bytes. */
  readonly bytes: number;
  /**
   * The most bytes the server could have sent: its own EDNS0 UDP payload size (capped by ours),
   * 512 without EDNS0, 65,535 over TCP. A message much smaller than this was not trimmed.
   */
  readonly limit: number;
};

/** The EDNS0 UDP payload size we advertise: the DNS Flag Day 2020 value, safe from fragmentation. */
export const EDNS_UDP_PAYLOAD_BYTES = 1232;
/**
 * Larger datagrams are not decoded (a server honouring EDNS0 never sends them); a matching one is
 * treated as truncated and asked again over TCP, whose 2-byte framing caps answers at 65,535 bytes.
 */
export const MAX_UDP_RESPONSE_BYTES = 4096;
/** Records kept per owner name and type in each section; the rest are dropped. */
export const MAX_RECORDS_PER_NAME = 512;
/** RFC 8914 info codes meaning "this answer is past its expiry". */
export const EDE_STALE_ANSWER = 3;
export const EDE_STALE_NXDOMAIN = 19;

/** RFC 8914 names of the info codes a resolver in trouble attaches, for messages. */
const EDE_NAMES: Record<number, string> = {
  3: 'Stale Answer',
  6: 'DNSSEC Bogus',
  9: 'DNSKEY Missing',
  18: 'Prohibited',
  19: 'Stale NXDOMAIN Answer',
  20: 'Not Authoritative',
  21: 'Not Supported',
  22: 'No Reachable Authority',
  23: 'Network Error',
  24: 'Invalid Data',
};

const QR_BIT = 0x8000;
const AA_BIT = 0x0400;
const TC_BIT = 0x0200;
const RD_BIT = 0x0100;
const DNS_HEADER_BYTES = 12;
const OPT_TYPE = 41;
const EDE_OPTION = 15;
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const TYPE_CODES: Partial<Record<dnsPacket.RecordType, number>> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33 };

/** Why one exchange failed; `kind` decides what the caller says and whether to try elsewhere. */
export type ExchangeFailureKind = 'timeout' | 'network' | 'rcode' | 'tcp' | 'case';

/** One failed exchange with one server. */
export class ExchangeError extends Error {
  readonly kind: ExchangeFailureKind;
  readonly server: DnsServer;
  /** For `rcode`: the code the server answered (SERVFAIL, REFUSED, ...). */
  readonly rcode: string | undefined;

  constructor(kind: ExchangeFailureKind, server: DnsServer, message: string, options: { rcode?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.server = server;
    this.rcode = options.rcode;
  }
}

export interface ExchangeOptions {
  /** Per try (and again for the TCP retry of a truncated answer), in milliseconds. */
  readonly timeout: number;
  readonly signal: AbortSignal;
  /** A second signal that also stops the exchange (the client's own, on close). */
  readonly closing?: AbortSignal | undefined;
  /** 0x20: randomize the case of the question's letters and require it echoed exactly. */
  readonly randomizeCase: boolean;
  /** Send an EDNS0 OPT record (true unless the server answered FORMERR to one). */
  readonly edns: boolean;
  /** Told about every packet that was not accepted, and why (for diagnostics). */
  readonly onIgnored?: ((server: DnsServer, reason: string) => void) | undefined;
  /** The client's UDP sockets (`udp.ts`). */
  readonly sockets: UdpSockets;
}

/** The wire form of a question (name, type, class IN), case randomized if asked; undefined if not encodable. */
function encodeQuestion(question: WireQuestion, randomizeCase: boolean): Buffer | undefined {
  const name = question.name.endsWith('.') ? question.name.slice(0, -1) : question.name;
  const code = TYPE_CODES[question.type] ?? typeCode(question.type);
  if (code === undefined) return undefined;
  const labels = name.length === 0 ? [] : name.split('.');
  let length = 1 + 4;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) return undefined;
    length += 1 + label.length;
  }
  if (length - 4 > 255) return undefined;
  const buffer = Buffer.allocUnsafe(length);
  let offset = 0;
  for (const label of labels) {
    buffer[offset++] = label.length;
    // Names reach here validated as host names (ASCII); anything else is refused above by length.
    if (buffer.write(label, offset, 'latin1') !== label.length) return undefined;
    offset += label.length;
  }
  buffer[offset++] = 0;
  buffer.writeUInt16BE(code, offset);
  buffer.writeUInt16BE(1, offset + 2);
  if (randomizeCase) {
    const bits = getRandomValues(new Uint8Array(Math.ceil(offset / 8)));
    for (let i = 0; i < offset; i++) {
      const c = buffer[i]!;
      const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
      if (letter && (bits[i >> 3]! & (1 << (i & 7))) !== 0) buffer[i] = c ^ 0x20;
    }
  }
  return buffer;
}

function typeCode(type: string): number | undefined {
  try {
    const encoded = dnsPacket.encode({ type: 'query', questions: [{ name: 'x', type: type as dnsPacket.RecordType }] });
    return encoded.readUInt16BE(encoded.length - 4);
  } catch {
    return undefined;
  }
}

/** Header, the question, and an EDNS0 OPT record (UDP payload 1,232, no DO bit) unless `edns` is off. */
function encodeQuery(id: number, question: Buffer, edns: boolean): Buffer {
  const opt = edns ? 11 : 0;
  const buffer = Buffer.allocUnsafe(DNS_HEADER_BYTES + question.length + opt);
  buffer.writeUInt16BE(id, 0);
  buffer.writeUInt16BE(RD_BIT, 2);
  buffer.writeUInt16BE(1, 4);
  buffer.writeUInt32BE(0, 6);
  buffer.writeUInt16BE(edns ? 1 : 0, 10);
  question.copy(buffer, DNS_HEADER_BYTES);
  if (edns) {
    let at = DNS_HEADER_BYTES + question.length;
    buffer[at++] = 0; // the root name
    buffer.writeUInt16BE(OPT_TYPE, at);
    buffer.writeUInt16BE(EDNS_UDP_PAYLOAD_BYTES, at + 2);
    buffer.writeUInt32BE(0, at + 4); // extended RCODE, version 0, no flags
    buffer.writeUInt16BE(0, at + 8); // no options
  }
  return buffer;
}

type Verdict =
  | { readonly kind: 'accept'; readonly response: WireResponse }
  | { readonly kind: 'truncated' }
  | { readonly kind: 'ignore'; readonly reason: string };

/**
 * The question of `message` against the one asked: byte for byte when the case was randomized
 * (0x20), letters folded otherwise. 'case' when only the case differs.
 */
function sameQuestion(message: Buffer, question: Buffer, exactCase: boolean): 'yes' | 'no' | 'case' {
  if (message.readUInt16BE(4) !== 1) return 'no';
  let caseDiffers = false;
  for (let i = 0; i < question.length; i++) {
    const a = message[DNS_HEADER_BYTES + i]!;
    const b = question[i]!;
    if (a === b) continue;
    if ((a | 0x20) === (b | 0x20) && (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a) caseDiffers = true;
    else return 'no';
  }
  return caseDiffers && exactCase ? 'case' : 'yes';
}

/** Decides what a packet from the queried server is to this query. Never throws. */
function judge(
  message: Buffer,
  id: number,
  question: Buffer,
  options: ExchangeOptions,
  server: DnsServer,
  overTcp: boolean,
): Verdict {
  if (message.length < DNS_HEADER_BYTES) return { kind: 'ignore', reason: 'shorter than a DNS header' };
  if (message.readUInt16BE(0) !== id) return { kind: 'ignore', reason: 'wrong ID' };
  const flags = message.readUInt16BE(2);
  if ((flags & QR_BIT) === 0) return { kind: 'ignore', reason: 'not a response (QR bit clear)' };
  if (message.length < DNS_HEADER_BYTES + question.length) {
    // A truncated answer may be cut anywhere; its ID already matched, and TCP is checked in full.
    if (!overTcp && (flags & TC_BIT) !== 0) return { kind: 'truncated' };
    return { kind: 'ignore', reason: 'undecodable' };
  }
  const same = sameQuestion(message, question, options.randomizeCase);
  if (same === 'no') return { kind: 'ignore', reason: 'question does not match' };
  if (same === 'case') return { kind: 'ignore', reason: 'question case does not match (0x20)' };
  if (!overTcp && ((flags & TC_BIT) !== 0 || message.length > MAX_UDP_RESPONSE_BYTES)) return { kind: 'truncated' };
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(message);
  } catch {
    return { kind: 'ignore', reason: 'undecodable' };
  }
  const ede: number[] = [];
  let limit = overTcp ? 65_535 : 512;
  for (const record of packet.additionals ?? []) {
    if (record.type !== 'OPT') continue;
    if (!overTcp) limit = Math.min(Math.max((record as dnsPacket.OptAnswer).udpPayloadSize ?? 512, 512), EDNS_UDP_PAYLOAD_BYTES);
    for (const option of (record as dnsPacket.OptAnswer).options ?? []) {
      const { code, data } = option as { code: number; data?: Buffer };
      if (code === EDE_OPTION && data !== undefined && data.length >= 2) ede.push(data.readUInt16BE(0));
    }
  }
  const response = Object.assign(limitRecords(packet), {
    rcode: RCODES[flags & 0xf] ?? `RCODE${flags & 0xf}`,
    authoritative: (flags & AA_BIT) !== 0,
    ede,
    server,
    bytes: message.length,
    limit,
  });
  return { kind: 'accept', response };
}

function limitRecords(packet: dnsPacket.DecodedPacket): dnsPacket.DecodedPacket {
  const limit = (records: dnsPacket.Answer[] | undefined): dnsPacket.Answer[] => {
    if (records === undefined) return [];
    if (records.length <= MAX_RECORDS_PER_NAME) return records;
    const counts = new Map<string, number>();
    return records.filter((record) => {
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

/**
 * One try of `question` on `server`: UDP, then TCP if the answer was truncated. Settles with the
 * response whatever its RCODE is when that is NOERROR or NXDOMAIN; rejects with an
 * {@link ExchangeError} (timeout, network error, another RCODE, TCP failure after truncation),
 * or with the signal's reason once it aborts.
 */
export async function exchange(server: DnsServer, question: WireQuestion, options: ExchangeOptions): Promise<WireResponse> {
  const encoded = encodeQuestion(question, options.randomizeCase);
  if (encoded === undefined) {
    throw new ExchangeError('network', server, `${question.name} cannot be asked: not a valid DNS name or type`);
  }
  const udp = await exchangeUdp(server, encoded, options);
  let response: WireResponse;
  if (udp === 'truncated') {
    // A connection of its own, and an ID of its own.
    const id = randomInt(0, 0x1_0000);
    response = await exchangeTcp(server, encodeQuery(id, encoded, options.edns), id, encoded, options);
  } else {
    response = udp;
  }
  if (response.rcode === 'NOERROR' || response.rcode === 'NXDOMAIN') return response;
  const why = response.ede.map((code) => `EDE ${code}${EDE_NAMES[code] ? `: ${EDE_NAMES[code]}` : ''}`).join(', ');
  throw new ExchangeError('rcode', server, `answered ${response.rcode}${why ? ` (${why})` : ''}`, { rcode: response.rcode });
}

/**
 * Runs `body` with a settle-once pair, a timer and the abort signal wired up; `cleanup` runs
 * exactly once on every path, before the promise settles.
 */
function settleOnce<T>(
  timeout: number,
  options: ExchangeOptions,
  onTimeout: () => Error,
  body: (settle: (error: unknown, value?: T) => void) => () => void,
): Promise<T> {
  const { signal, closing } = options;
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let cleanup: (() => void) | undefined;
    const settle = (error: unknown, value?: T): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      closing?.removeEventListener('abort', onAbort);
      if (error === undefined) resolve(value as T);
      else reject(error);
      // After the promise settled: its callbacks need not wait for the socket to close.
      cleanup?.();
    };
    const onAbort = (): void => settle(signal.aborted ? signal.reason : closing?.reason);
    const timer = setTimeout(() => settle(onTimeout()), timeout);
    if (signal.aborted || closing?.aborted === true) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    closing?.addEventListener('abort', onAbort, { once: true });
    cleanup = body(settle);
    if (done) cleanup();
  });
}

function exchangeUdp(
  server: DnsServer,
  question: Buffer,
  options: ExchangeOptions,
): Promise<WireResponse | 'truncated'> {
  let ignored: string | undefined;
  return settleOnce<WireResponse | 'truncated'>(
    options.timeout,
    options,
    () =>
      new ExchangeError(
        'timeout',
        server,
        `no answer within ${options.timeout} ms${ignored ? ` (ignored packets: ${ignored})` : ''}`,
      ),
    (settle) => {
      const networkError = (error: Error): ExchangeError =>
        new ExchangeError('network', server, (error as NodeJS.ErrnoException).code ?? error.message, { cause: error });
      const ignore = (reason: string): void => {
        ignored = reason;
        options.onIgnored?.(server, reason);
      };
      let lease: UdpLease;
      try {
        lease = options.sockets.lease(server, {
          onError: (error) => settle(networkError(error)),
          onMessage: (message, remote) => {
            // The socket is connected, so the kernel already drops other sources; this is a second check.
            if (remote.port !== server.port || remote.address !== server.address) {
              ignore('reply from another port');
              return false;
            }
            // Every check of a socket of its own: the ID (the socket routes by it; checked again
            // here), the QR bit and the question.
            const verdict = judge(message, lease.id, question, options, server, false);
            if (verdict.kind === 'ignore') {
              ignore(verdict.reason);
              return false;
            }
            settle(undefined, verdict.kind === 'truncated' ? 'truncated' : verdict.response);
            return true;
          },
        });
      } catch (error) {
        settle(networkError(error as Error));
        return () => {};
      }
      lease.send(encodeQuery(lease.id, question, options.edns), (error) => {
        if (error) settle(networkError(error));
      });
      // This query's place on the socket ends; the socket closes once its queries are done, or
      // (with dns.udpMaxQueries above 1) stays with the client for the next ones.
      return () => lease.release();
    },
  );
}

function exchangeTcp(
  server: DnsServer,
  query: Buffer,
  id: number,
  question: Buffer,
  options: ExchangeOptions,
): Promise<WireResponse> {
  const failed = (reason: string, cause?: unknown): ExchangeError =>
    new ExchangeError('tcp', server, `the answer did not fit in UDP (truncated) and ${reason}`, { cause });
  return settleOnce<WireResponse>(
    options.timeout,
    options,
    () => failed(`no full answer came over TCP within ${options.timeout} ms`),
    (settle) => {
      const socket = connect({ host: server.address, port: server.port, family: server.family });
      let received: Buffer = Buffer.alloc(0);
      socket.on('error', (error: NodeJS.ErrnoException) => {
        const reason =
          error.code === 'ECONNREFUSED'
            ? `TCP to port ${server.port} was refused (ECONNREFUSED)`
            : `TCP to port ${server.port} failed (${error.code ?? error.message})`;
        settle(failed(reason, error));
      });
      socket.on('close', () => settle(failed('the TCP connection closed before a full answer')));
      socket.on('connect', () => {
        const frame = Buffer.alloc(2 + query.length);
        frame.writeUInt16BE(query.length, 0);
        query.copy(frame, 2);
        socket.write(frame);
      });
      socket.on('data', (chunk: Buffer) => {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        const verdict = judge(received.subarray(2, 2 + length), id, question, options, server, true);
        if (verdict.kind === 'accept') settle(undefined, verdict.response);
        else settle(failed(`the TCP answer was not usable (${verdict.kind === 'ignore' ? verdict.reason : 'truncated'})`));
      });
      return () => {
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
      };
    },
  );
}
