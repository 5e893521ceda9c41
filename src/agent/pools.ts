/**
 * The agent's connection pools: one undici Pool per instance origin, shared by every name that
 * reaches the instance over http; over https one per instance and TLS servername (a TLS session
 * is made for one name, and its certificate checked against it). A pool is closed when it goes
 * idle (its last connection closed and nothing waits, as undici's Agent does) and drained when its
 * instance leaves every name, so pools are bounded by the connections in use, whatever the mix of
 * names.
 */
import type { EventEmitter } from 'node:events';
import { Client, Pool, type Dispatcher } from 'undici';
import { channels, type PoolCloseMessage, type PoolCreateMessage } from '../diagnostics.ts';
import type { Endpoint } from './endpoint.ts';
import type { Target } from './target.ts';

const { poolCreate: poolCreateChannel, poolClose: poolCloseChannel } = channels;

/** What the agent emits for a pool's events: the logical origin, the targets, the instance. */
export type PoolEventSink = (event: 'connect' | 'disconnect' | 'connectionError' | 'drain', origin: URL, targets: Dispatcher[], error: Error | undefined, key: string) => void;

export class PoolEntry {
  readonly pool: Dispatcher;
  readonly poolKey: string;
  /** The key Discovery knows the instance by (without a port when the registry gave none). */
  readonly liveKey: string;
  readonly servername: string | undefined;
  /** The pool is HTTP/1.1 only (a request's own `allowH2: false`). */
  readonly h1: boolean;
  readonly message: PoolCreateMessage;
  /** Draining or closed: requests must find (or open) another pool. */
  retired = false;
  /** The target of the latest request sent here: the logical origin its events name. */
  lastTarget: Target | undefined;
  /** Targets whose dispatch returned false here, told when the pool drains. */
  needDrain: Set<Target> | undefined;

  constructor(pool: Dispatcher, poolKey: string, liveKey: string, servername: string | undefined, h1: boolean, message: PoolCreateMessage) {
    this.pool = pool;
    this.poolKey = poolKey;
    this.liveKey = liveKey;
    this.servername = servername;
    this.h1 = h1;
    this.message = message;
  }
}

export class Pools {
  readonly #options: Pool.Options;
  readonly #factory: ((origin: URL, options: object) => Dispatcher) | undefined;
  readonly #emit: PoolEventSink;
  /** `origin[#servername][#h1]` → pool. */
  readonly #pools = new Map<string, PoolEntry>();
  /** Discovery's instance key → the pool keys serving it. */
  readonly #byInstance = new Map<string, Set<string>>();

  constructor(options: Pool.Options, factory: ((origin: URL, options: object) => Dispatcher) | undefined, emit: PoolEventSink) {
    this.#options = options;
    this.#factory = factory;
    this.#emit = emit;
  }

  get size(): number {
    return this.#pools.size;
  }

  /** The pool for an endpoint, servername and protocol restriction, made on first use. */
  get(endpoint: Endpoint, servername: string | undefined, h1: boolean): PoolEntry {
    const poolKey = `${endpoint.origin}${servername === undefined ? '' : `#${servername}`}${h1 ? '#h1' : ''}`;
    let entry = this.#pools.get(poolKey);
    if (entry !== undefined) return entry;
    const options = h1 ? { ...this.#options, allowH2: false } : this.#options;
    const url = new URL(endpoint.origin);
    const pool = this.#factory !== undefined ? this.#factory(url, options) : options.connections === 1 ? new Client(url, options) : new Pool(url, options);
    const message: PoolCreateMessage = { key: endpoint.key, origin: endpoint.origin, servername };
    entry = new PoolEntry(pool, poolKey, endpoint.liveKey, servername, h1, message);
    this.#listen(entry);
    this.#pools.set(poolKey, entry);
    let keys = this.#byInstance.get(endpoint.liveKey);
    if (keys === undefined) this.#byInstance.set(endpoint.liveKey, (keys = new Set()));
    keys.add(poolKey);
    if (poolCreateChannel.hasSubscribers) poolCreateChannel.publish(message);
    return entry;
  }

  #listen(entry: PoolEntry): void {
    const pool = entry.pool as unknown as EventEmitter;
    const key = entry.message.key;
    const origin = (): URL => entry.lastTarget!.url;
    pool.on('connect', (_origin: URL, targets: Dispatcher[]) => this.#emit('connect', origin(), targets, undefined, key));
    pool.on('disconnect', (_origin: URL, targets: Dispatcher[], error: Error) => {
      this.#closeIfIdle(entry);
      this.#emit('disconnect', origin(), targets, error, key);
    });
    pool.on('connectionError', (_origin: URL, targets: Dispatcher[], error: Error) => {
      this.#closeIfIdle(entry);
      this.#emit('connectionError', origin(), targets, error, key);
    });
    pool.on('drain', (_origin: URL, targets: Dispatcher[]) => {
      const waiting = entry.needDrain;
      if (waiting === undefined) return;
      entry.needDrain = undefined;
      for (const target of waiting) this.#emit('drain', target.url, targets, undefined, key);
    });
  }

  /** undici's Agent rule: a pool whose last connection closed and that holds no request goes. */
  #closeIfIdle(entry: PoolEntry): void {
    if (entry.retired) return;
    const stats = (entry.pool as { stats?: { connected: number; pending: number; running: number; queued?: number } }).stats;
    if (stats === undefined || stats.connected > 0 || stats.pending > 0 || stats.running > 0 || (stats.queued ?? 0) > 0) return;
    this.#remove(entry);
    void this.#close(entry, 'idle');
  }

  #remove(entry: PoolEntry): void {
    entry.retired = true;
    if (this.#pools.get(entry.poolKey) === entry) this.#pools.delete(entry.poolKey);
    const keys = this.#byInstance.get(entry.liveKey);
    if (keys !== undefined) {
      keys.delete(entry.poolKey);
      if (keys.size === 0) this.#byInstance.delete(entry.liveKey);
    }
  }

  async #close(entry: PoolEntry, reason: PoolCloseMessage['reason']): Promise<void> {
    if (poolCloseChannel.hasSubscribers) poolCloseChannel.publish({ ...entry.message, reason } satisfies PoolCloseMessage);
    await entry.pool.close().catch(() => undefined);
  }

  /** An instance no name serves any more: its pools drain (in-flight requests finish), then close. */
  retire(liveKey: string): Promise<void> {
    const keys = this.#byInstance.get(liveKey);
    if (keys === undefined) return Promise.resolve();
    const closing: Array<Promise<void>> = [];
    for (const poolKey of [...keys]) {
      const entry = this.#pools.get(poolKey);
      if (entry === undefined) continue;
      this.#remove(entry);
      closing.push(this.#close(entry, 'removed'));
    }
    this.#byInstance.delete(liveKey);
    return Promise.all(closing).then(() => undefined);
  }

  /**
   * A name no longer has an instance (it left the name's set, or the name was evicted from the
   * cache): the instance's https pools for that name drain. Pools are then bounded by the names
   * Discovery keeps (`cache.maxNames`), whatever the mix of names.
   */
  retireName(liveKey: string, name: string): void {
    const keys = this.#byInstance.get(liveKey);
    if (keys === undefined) return;
    for (const poolKey of [...keys]) {
      const entry = this.#pools.get(poolKey);
      if (entry === undefined || entry.servername !== name) continue;
      this.#remove(entry);
      void this.#close(entry, 'removed');
    }
  }

  /** Takes every pool out of use and returns them. */
  #takeAll(): PoolEntry[] {
    const entries = [...this.#pools.values()];
    for (const entry of entries) entry.retired = true;
    this.#pools.clear();
    this.#byInstance.clear();
    return entries;
  }

  /** Closes every pool: in-flight requests finish first. */
  async closeAll(): Promise<void> {
    await Promise.all(this.#takeAll().map((entry) => this.#close(entry, 'close')));
  }

  /** Destroys every pool: requests still in them fail with `error`. */
  async destroyAll(error: Error): Promise<void> {
    await Promise.all(
      this.#takeAll().map(async (entry) => {
        if (poolCloseChannel.hasSubscribers) poolCloseChannel.publish({ ...entry.message, reason: 'close' } satisfies PoolCloseMessage);
        await entry.pool.destroy(error).catch(() => undefined);
      }),
    );
  }
}
