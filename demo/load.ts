/** Real HTTP traffic for the demo, tallied by who answered, and how it is shown. */
import { request, type Dispatcher } from 'undici';

export interface Tally {
  sent: number;
  ok: number;
  failed: number;
  readonly byInstance: Map<string, number>;
  readonly byZone: Map<string, number>;
  readonly byVersion: Map<string, number>;
  readonly errors: Map<string, number>;
}

export function emptyTally(): Tally {
  return { sent: 0, ok: 0, failed: 0, byInstance: new Map(), byZone: new Map(), byVersion: new Map(), errors: new Map() };
}

function add(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export interface LoadOptions {
  /** Requests in all; without it, until `stop` aborts. */
  total?: number;
  stop?: AbortSignal;
  /** Requests in flight at once. @default 8 */
  concurrency?: number;
  /** A pause after each request, per worker, so a timed scene sends a steady trickle. @default 0 */
  paceMs?: number;
  tally?: Tally;
}

/** Sends GETs to `url` through `dispatcher` and counts who answered. Never throws. */
export async function load(dispatcher: Dispatcher, url: string, options: LoadOptions = {}): Promise<Tally> {
  const tally = options.tally ?? emptyTally();
  const { total, stop, concurrency = 8, paceMs = 0 } = options;
  let started = 0;
  const more = (): boolean => !(stop?.aborted ?? false) && (total === undefined || started < total);
  const worker = async (): Promise<void> => {
    while (more()) {
      started += 1;
      tally.sent += 1;
      try {
        const response = await request(url, { dispatcher });
        await response.body.dump();
        if (response.statusCode >= 500) throw new Error(`HTTP ${response.statusCode}`);
        tally.ok += 1;
        add(tally.byInstance, String(response.headers['x-instance']));
        add(tally.byZone, String(response.headers['x-zone']));
        add(tally.byVersion, String(response.headers['x-version']));
      } catch (error) {
        tally.failed += 1;
        const e = error as { code?: string; message?: string };
        add(tally.errors, e.code ?? e.message ?? String(error));
      }
      if (paceMs > 0) await new Promise((resolve) => setTimeout(resolve, paceMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return tally;
}

/** Where the demo writes: one live status line on a terminal, plain lines elsewhere. */
export class Screen {
  readonly #out: NodeJS.WriteStream;
  readonly tty: boolean;
  #live = false;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.tty = out.isTTY === true && process.env.TERM !== 'dumb';
  }

  line(text = ''): void {
    this.#clearLive();
    this.#out.write(`${text}\n`);
  }

  /** Replaces the live line (terminals only; elsewhere nothing is printed). */
  live(text: string): void {
    if (!this.tty) return;
    const width = (this.#out.columns ?? 100) - 1;
    this.#out.write(`\r\x1b[K${text.length > width ? text.slice(0, width) : text}`);
    this.#live = true;
  }

  #clearLive(): void {
    if (this.#live) this.#out.write('\r\x1b[K');
    this.#live = false;
  }

  /** Shows a tally on the live line every 100 ms while `work` runs. */
  async watch<T>(label: string, tally: Tally, work: Promise<T>): Promise<T> {
    if (!this.tty) return work;
    const render = (): void => {
      const spread = [...tally.byInstance].sort().map(([k, n]) => `${k.replace('127.0.0.', '.')}:${n}`).join(' ');
      this.live(`  ${label}  ${tally.sent} sent  ${tally.ok} ok  ${tally.failed} failed  ${spread}`);
    };
    const timer = setInterval(render, 100);
    try {
      return await work;
    } finally {
      clearInterval(timer);
      this.#clearLive();
    }
  }
}

/** A bar for a share, `width` cells at 100 %. */
export function bar(count: number, total: number, width = 30): string {
  if (total === 0 || count === 0) return '';
  return '█'.repeat(Math.max(1, Math.round((count / total) * width)));
}

export function percent(count: number, total: number): string {
  return total === 0 ? '0%' : `${Math.round((count / total) * 100)}%`;
}
