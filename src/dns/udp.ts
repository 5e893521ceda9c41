/**
 * The UDP sockets of one DNS client. Creating, binding and connecting a socket is most of a cold
 * lookup's cost on a fast network, so it is taken off the query's path, without weakening what a
 * socket per query gives:
 *
 * - a socket carries at most `maxQueries` queries (`dns.udpMaxQueries`, 1 by default: a source
 *   port of its own for every query) and is then replaced by a fresh one, so the source port
 *   changes (c-ares' `udp_max_queries`);
 * - the next socket to a server is made ahead of need: when a query takes a server's socket for
 *   its last query, a spare is made and connected right after (`setImmediate`, while the query
 *   waits for its answer), so the next query finds it ready. A spare that receives anything
 *   before its first query is retired (nobody may know its port yet);
 * - one connected socket per server (the kernel drops datagrams from any other address or port);
 * - every query on a socket gets a random ID that no other query on that socket had (so a late
 *   answer to an earlier query can never be taken for a later one), and a reply goes only to the
 *   query whose ID it carries, which still checks the source, the ID, the QR bit and the
 *   question itself (`wire.ts`): a forged reply with a pending query's ID but another question is
 *   ignored by that query, and settles no other one;
 * - a reply carrying the ID of a query that already ended is dropped, as the closed socket of
 *   that query would have dropped it; one carrying no ID given on the socket goes to the oldest
 *   query in flight, which rejects and reports it as it did with a socket of its own;
 * - a socket that received a packet no query accepted takes no new query (someone may have
 *   found its port): the next query gets a fresh socket;
 * - a socket error fails only the queries in flight on that socket, which is then retired;
 * - a socket with nothing in flight is unreferenced (an idle process can exit) and closed after
 *   {@link UDP_IDLE_MS}; {@link UdpSockets.close} closes every socket at once.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket, type SocketOptions } from 'node:dgram';

/** Queries one UDP socket carries before a fresh one (a fresh source port) replaces it, by default. */
export const UDP_MAX_QUERIES = 1;
/** How long a socket with no query in flight is kept for the next one, in milliseconds. */
export const UDP_IDLE_MS = 1000;

/** Where a socket sends to: the fields of a DnsServer it needs. */
export interface UdpTarget {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** One query's side of a shared socket. */
export interface UdpReceiver {
  /**
   * A datagram for this query (its ID, or an ID never given on the socket): to be judged in
   * full. Returns false when it was not accepted.
   */
  onMessage(message: Buffer, remote: RemoteInfo): boolean;
  /** The socket failed: this query is over. */
  onError(error: Error): void;
}

/** A query's place on a socket: its ID, its send, and its release (exactly once, when it ends). */
export interface UdpLease {
  readonly id: number;
  send(query: Buffer, callback: (error: Error | null) => void): void;
  release(): void;
}

/** dgram resolves the address it connects to through `dns.lookup`; ours are IP literals already. */
const literalLookup: SocketOptions['lookup'] = (address, _options, callback) => {
  (callback as (error: null, address: string, family: number) => void)(null, address, address.includes(':') ? 6 : 4);
};
const UDP4: SocketOptions = { type: 'udp4', lookup: literalLookup };
const UDP6: SocketOptions = { type: 'udp6', lookup: literalLookup };

class SharedSocket {
  readonly socket: Socket;
  readonly key: string;
  /** Queries in flight by ID, oldest first (a Map keeps insertion order). */
  readonly pending = new Map<number, UdpReceiver>();
  /** Every ID given on this socket, in flight or ended (at most UDP_MAX_QUERIES). */
  readonly ids = new Set<number>();
  /** Queries this socket was given so far, in flight or done. */
  used = 0;
  /** Takes no new query (used up, failed, or its client closed); closes once nothing is in flight. */
  retired = false;
  closed = false;
  /** When the last query in flight ended (ms, monotonic); read when the idle timer fires. */
  idleSince = 0;
  /**
   * Unreferenced; armed when the socket first goes idle and left running while queries come and
   * go (a timer per query would cost more than the socket reuse saves): when it fires it closes
   * the socket if idle long enough, else it is armed again for the rest of the idle time.
   */
  idleTimer: NodeJS.Timeout | undefined;

  constructor(
    target: UdpTarget,
    key: string,
    onError: (shared: SharedSocket, error: Error) => void,
    onRejected: (shared: SharedSocket) => void,
  ) {
    this.key = key;
    this.socket = createSocket(target.family === 6 ? UDP6 : UDP4);
    this.socket.on('error', (error) => onError(this, error));
    this.socket.on('message', (message, remote) => {
      const id = message.length >= 2 ? message.readUInt16BE(0) : -1;
      let receiver = this.pending.get(id);
      if (receiver === undefined) {
        // A late answer to a query that already ended: dropped, as its own closed socket would.
        if (this.ids.has(id)) return;
        // Nothing asked on this socket is waiting: whoever sent it found the port on their own.
        if (this.pending.size === 0) {
          onRejected(this);
          return;
        }
        // An ID never given here: the oldest query judges it (and reports it as ignored).
        receiver = this.pending.values().next().value!;
      }
      if (!receiver.onMessage(message, remote)) onRejected(this);
    });
    // With an IP-literal lookup, bind and connect happen synchronously inside connect(), so the
    // first query goes out at once rather than a tick later.
    this.socket.connect(target.port, target.address);
  }

  /** A random ID no query on this socket had (at most UDP_MAX_QUERIES do). */
  freeId(): number {
    let id: number;
    do id = randomInt(0, 0x1_0000);
    while (this.ids.has(id));
    this.ids.add(id);
    return id;
  }

  close(now: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.retired = true;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    const { socket } = this;
    socket.removeAllListeners('message');
    // An error after close (ICMP arriving late) must not become an uncaught exception.
    socket.removeAllListeners('error');
    socket.on('error', () => {});
    if (now) closeSocket(socket);
    // Closed once the answer's callers have run: closing is not on the answer's path.
    else setImmediate(closeSocket, socket);
  }
}

function closeSocket(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // Already closed.
  }
}

/** The UDP sockets of one DNS client (see the top of this file). */
export class UdpSockets {
  readonly #maxQueries: number;
  readonly #idleMs: number;
  /** The socket that takes the next query to each server. */
  readonly #current = new Map<string, SharedSocket>();
  /** Every socket not closed yet: current ones, and retired ones waiting for their last answer. */
  readonly #open = new Set<SharedSocket>();
  /** Servers whose spare socket is being made (at most one at a time each). */
  readonly #sparing = new Set<string>();
  #closed = false;

  constructor(options: { readonly maxQueries?: number; readonly idleMs?: number } = {}) {
    this.#maxQueries = options.maxQueries ?? UDP_MAX_QUERIES;
    this.#idleMs = options.idleMs ?? UDP_IDLE_MS;
  }

  /** Sockets open now (in flight or idle), for tests. */
  get open(): number {
    return this.#open.size;
  }

  /** The local ports of the sockets open now, for tests. */
  get ports(): number[] {
    const ports: number[] = [];
    for (const shared of this.#open) {
      try {
        ports.push(shared.socket.address().port);
      } catch {
        // Not bound yet.
      }
    }
    return ports;
  }

  /**
   * Gives a query to `target` a socket and an ID: the current socket while it has queries left,
   * else a fresh one. Throws once {@link close} was called.
   */
  lease(target: UdpTarget, receiver: UdpReceiver): UdpLease {
    if (this.#closed) throw new Error('the DNS client is closed');
    const key = `${target.address}|${target.port}`;
    let shared = this.#current.get(key);
    if (shared === undefined || shared.retired) shared = this.#make(target, key);
    // An idle socket back in use keeps the process alive again while its query is in flight.
    if (shared.pending.size === 0) shared.socket.ref();
    const id = shared.freeId();
    shared.pending.set(id, receiver);
    if (++shared.used >= this.#maxQueries) {
      this.#retire(shared);
      // The next query to this server finds a socket ready, made while this one waits.
      if (!this.#sparing.has(key)) {
        this.#sparing.add(key);
        setImmediate(() => {
          this.#sparing.delete(key);
          this.#spare(target, key);
        });
      }
    }
    const socket = shared;
    let released = false;
    return {
      id,
      send: (query, callback) => {
        socket.socket.send(query, (error) => {
          // A send error may be the socket's (an ICMP error queued on it): no new query on it.
          if (error) this.#retire(socket);
          callback(error);
        });
      },
      release: () => {
        if (released) return;
        released = true;
        socket.pending.delete(id);
        this.#settled(socket);
      },
    };
  }

  /** A fresh socket to `target`, the one that takes the next query to it. */
  #make(target: UdpTarget, key: string): SharedSocket {
    const shared = new SharedSocket(
      target,
      key,
      (failed, error) => this.#failed(failed, error),
      (suspect) => {
        // No new query on it; closed now when nothing is in flight (an idle or spare socket).
        this.#retire(suspect);
        this.#settled(suspect);
      },
    );
    this.#current.set(key, shared);
    this.#open.add(shared);
    return shared;
  }

  /** Makes the next socket to `target` ahead of need, unless one is ready; it idles meanwhile. */
  #spare(target: UdpTarget, key: string): void {
    if (this.#closed) return;
    const current = this.#current.get(key);
    if (current !== undefined && !current.retired) return;
    let spare: SharedSocket;
    try {
      spare = this.#make(target, key);
    } catch {
      // No socket now (file descriptors run out): the next query makes its own, and says why.
      return;
    }
    this.#settled(spare);
  }

  /** Closes every socket now; queries still in flight on them fail. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const shared of this.#open) {
      shared.close(true);
      const error = new Error('the DNS client is closed');
      for (const receiver of [...shared.pending.values()]) receiver.onError(error);
    }
    this.#open.clear();
    this.#current.clear();
  }

  #retire(shared: SharedSocket): void {
    shared.retired = true;
    if (this.#current.get(shared.key) === shared) this.#current.delete(shared.key);
  }

  /** A query on `shared` ended: close it if retired and empty, or let it idle. */
  #settled(shared: SharedSocket): void {
    if (shared.pending.size > 0 || shared.closed) return;
    if (shared.retired) {
      this.#open.delete(shared);
      shared.close(false);
      return;
    }
    // Idle: it no longer keeps the process alive, and closes unless a query comes soon.
    shared.socket.unref();
    shared.idleSince = performance.now();
    if (shared.idleTimer === undefined) this.#armIdle(shared, this.#idleMs);
  }

  #armIdle(shared: SharedSocket, ms: number): void {
    shared.idleTimer = setTimeout(() => {
      shared.idleTimer = undefined;
      if (shared.closed) return;
      // In use now: armed again when it next goes idle.
      if (shared.pending.size > 0) return;
      const left = shared.idleSince + this.#idleMs - performance.now();
      if (left > 0) {
        this.#armIdle(shared, left);
        return;
      }
      this.#retire(shared);
      this.#settled(shared);
    }, ms);
    shared.idleTimer.unref();
  }

  /** A socket error: the queries in flight on that socket fail (and release), no other. */
  #failed(shared: SharedSocket, error: Error): void {
    this.#retire(shared);
    for (const receiver of [...shared.pending.values()]) receiver.onError(error);
    // Nothing was in flight (an error while idle): close it now.
    this.#settled(shared);
  }
}
