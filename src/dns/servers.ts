/**
 * Which server to ask first, as a good stub resolver chooses: servers that answer come first, in
 * the configured order (or in turn, with `rotate`); a server that timed out or failed goes to the
 * back of the line and is left alone for a while, then asked again in the background (a probe
 * beside a real query), so a dead first server costs one timeout, not one per query, and a server
 * that comes back is used again without any query paying for the check.
 */
import type { DnsServer } from './wire.ts';

/** How long a server that failed is left alone before it is probed, at first; doubles per failure. */
export const SERVER_RETRY_MIN_MS = 2000;
/** The longest wait between probes of a failing server (RFC 8767 suggests 30 s between attempts). */
export const SERVER_RETRY_MAX_MS = 30_000;

interface ServerState {
  readonly server: DnsServer;
  /** Consecutive failures; 0 when the last exchange succeeded. */
  failures: number;
  /** When (performance.now()) the server may be probed again. */
  retryAt: number;
  /** A probe is in flight. */
  probing: boolean;
}

export class ServerSet {
  readonly servers: readonly DnsServer[];
  readonly #states: ServerState[];
  readonly #byServer = new Map<DnsServer, ServerState>();
  readonly #rotate: boolean;
  readonly #now: () => number;
  #next = 0;
  /** How many servers have failures > 0: the common case (none) takes no sorting at all. */
  #failing = 0;

  constructor(servers: readonly DnsServer[], options: { rotate?: boolean; now?: () => number } = {}) {
    this.servers = servers;
    this.#rotate = options.rotate === true && servers.length > 1;
    this.#now = options.now ?? (() => performance.now());
    this.#states = servers.map((server) => ({ server, failures: 0, retryAt: 0, probing: false }));
    for (const state of this.#states) this.#byServer.set(state.server, state);
  }

  /** The servers in the order one query should try them. */
  order(): readonly DnsServer[] {
    if (this.#failing === 0 && !this.#rotate) return this.servers;
    const start = this.#rotate ? this.#next++ % this.servers.length : 0;
    const rotated = start === 0 ? this.#states : [...this.#states.slice(start), ...this.#states.slice(0, start)];
    if (this.#failing === 0) return rotated.map((s) => s.server);
    // Stable: healthy servers keep their order; failing ones follow, the least failed first.
    return rotated
      .map((state, index) => ({ state, index }))
      .sort((a, b) => a.state.failures - b.state.failures || a.index - b.index)
      .map(({ state }) => state.server);
  }

  /** Failing servers whose time to be tried again has come; each is marked as being probed. */
  due(): DnsServer[] {
    if (this.#failing === 0) return [];
    const now = this.#now();
    const due: DnsServer[] = [];
    for (const state of this.#states) {
      if (state.failures > 0 && !state.probing && state.retryAt <= now) {
        state.probing = true;
        due.push(state.server);
      }
    }
    return due;
  }

  /** Whether the server is in good standing (no failure since its last answer). */
  healthy(server: DnsServer): boolean {
    return (this.#byServer.get(server)?.failures ?? 0) === 0;
  }

  succeeded(server: DnsServer): void {
    const state = this.#byServer.get(server);
    if (state === undefined) return;
    state.probing = false;
    if (state.failures > 0) this.#failing--;
    state.failures = 0;
  }

  failed(server: DnsServer): void {
    const state = this.#byServer.get(server);
    if (state === undefined) return;
    state.probing = false;
    if (state.failures === 0) this.#failing++;
    state.failures++;
    const wait = Math.min(SERVER_RETRY_MIN_MS * 2 ** Math.min(state.failures - 1, 16), SERVER_RETRY_MAX_MS);
    state.retryAt = this.#now() + wait;
  }

  /** A probe ended without telling anything (aborted): it may be sent again later. */
  released(server: DnsServer): void {
    const state = this.#byServer.get(server);
    if (state !== undefined) state.probing = false;
  }
}
