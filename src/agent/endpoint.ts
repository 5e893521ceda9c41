/**
 * One instance as requests reach it: its key, origin, counters and health state, worked out once
 * and shared by every request to it.
 */
import type { FailureKind } from '../health.ts';
import type { Instance } from '../types.ts';
import type { Target } from './target.ts';

/** The health tracker as the agent uses it: `discoveryHealth(discovery)` (src/health.ts). */
export interface HealthReporter {
  state(instance: Pick<Instance, 'address' | 'port'>): HealthState;
  onStart(state: HealthState): void;
  onSuccess(state: HealthState): void;
  onFailure(state: HealthState, kind: Exclude<FailureKind, 'stall'>): void;
  onCancel?(state: HealthState): void;
  /** The instance holds requests and answers none: eject it now. */
  onStall?(state: HealthState): void;
  /** Milliseconds without an answer, while requests wait, before an instance counts as frozen; 0: never. */
  readonly stallTimeout?: number;
}

export interface HealthState {
  inflight: number;
  readonly ejected?: boolean;
}

/** An attempt waiting for its response headers, on its instance's list (for the stall detector). */
export interface Waiter {
  prevWaiter: Waiter | null;
  nextWaiter: Waiter | null;
  /** Called when the stall detector gives up on the instance. */
  stalled(error: Error): void;
}

/** Counters of one instance key, shared by its endpoints. */
export class Counters {
  readonly key: string;
  inflight = 0;
  requests = 0;
  failures = 0;
  health: HealthState | undefined;
  /** Attempts waiting for response headers: a list, so adding and removing cost no allocation. */
  waitingHead: Waiter | null = null;
  waiting = 0;
  /**
   * Responses (headers) received: the stall detector watches it move. Attempts that end otherwise
   * (a caller's own timeout) do not count: a frozen instance is one that answers nothing.
   */
  progress = 0;
  lastProgress = 0;
  /** How long requests have waited with no progress, in milliseconds (the detector's ticks). */
  stalledFor = 0;

  constructor(key: string) {
    this.key = key;
  }

  wait(waiter: Waiter): void {
    waiter.prevWaiter = null;
    waiter.nextWaiter = this.waitingHead;
    if (this.waitingHead !== null) this.waitingHead.prevWaiter = waiter;
    this.waitingHead = waiter;
    this.waiting++;
  }

  /** Takes a waiter off the list (once: it is a no-op for one that is not on it). */
  unwait(waiter: Waiter): void {
    if (waiter.prevWaiter === null && this.waitingHead !== waiter) return;
    if (waiter.prevWaiter !== null) waiter.prevWaiter.nextWaiter = waiter.nextWaiter;
    else this.waitingHead = waiter.nextWaiter;
    if (waiter.nextWaiter !== null) waiter.nextWaiter.prevWaiter = waiter.prevWaiter;
    waiter.prevWaiter = null;
    waiter.nextWaiter = null;
    this.waiting--;
  }
}

/**
 * An instance reached at one origin (scheme and port). Valid while Discovery serves the instance:
 * when it leaves every name, the router marks it dead and builds a fresh one if it comes back.
 */
export class Endpoint {
  /** `address:port` the requests go to. */
  readonly key: string;
  /** The key Discovery knows the instance by (no port when the registry gave none). */
  readonly liveKey: string;
  /** `http://10.0.1.5:8080`. */
  readonly origin: string;
  readonly https: boolean;
  readonly counters: Counters;
  readonly health: HealthReporter | undefined;
  readonly state: HealthState | undefined;
  /** False once the instance left every name (or before it was ever served). */
  live = false;
  /** The dispatcher's own per-endpoint slot (the agent keeps the instance's last pool here). */
  slot: unknown = undefined;
  /** The logical name (origin) the endpoint was first reached for: what a health probe sends as Host. */
  readonly target: Target;

  constructor(key: string, liveKey: string, origin: string, target: Target, counters: Counters, health: HealthReporter | undefined, state: HealthState | undefined) {
    this.key = key;
    this.target = target;
    this.liveKey = liveKey;
    this.origin = origin;
    this.https = origin.startsWith('https:');
    this.counters = counters;
    this.health = health;
    this.state = state;
  }
}
