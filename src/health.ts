/**
 * Outlier detection: the agent reports how each request to an instance went, and an instance that
 * keeps failing (consecutive failures, a high share of failures, or requests it holds without
 * answering) is ejected, left out of balancing. While ejected it is probed, and it returns as soon
 * as it answers, or when its ejection time ends. The balancers of every service that has the
 * instance are told, so they rebuild.
 */
import type { Clock, ClockTimer } from './clock.ts';
import { channels, type EjectMessage, type ReturnMessage } from './diagnostics.ts';
import { instanceKey } from './instance.ts';
import type { EjectionOptions, FailurePercentageOptions, ProbeOptions } from './options.ts';
import type { Instance } from './types.ts';
import { scrubError } from './redact.ts';
import { checkInteger, checkDuration, checkKeys, checkObject, invalid } from './validate.ts';

export const DEFAULT_CONSECUTIVE_CONNECT_FAILURES = 1;
export const DEFAULT_CONSECUTIVE_FAILURES = 5;
export const DEFAULT_BASE_EJECTION_TIME_MS = 30_000;
export const DEFAULT_MAX_EJECTION_TIME_MS = 300_000;
export const DEFAULT_MAX_EJECTED_PERCENT = 50;
export const DEFAULT_PANIC_THRESHOLD_PERCENT = 50;
export const DEFAULT_FAILURE_PERCENTAGE_THRESHOLD = 30;
export const DEFAULT_FAILURE_PERCENTAGE_MIN_REQUESTS = 20;
export const DEFAULT_FAILURE_PERCENTAGE_INTERVAL_MS = 10_000;
export const DEFAULT_PROBE_INTERVAL_MS = 1000;
export const DEFAULT_PROBE_TIMEOUT_MS = 1000;
export const DEFAULT_STALL_TIMEOUT_MS = 10_000;

/**
 * How a request to an instance failed:
 * - `connect`: the connection was refused (nothing listens there);
 * - `timeout`: connecting or the response took too long;
 * - `reset`: the connection was reset or closed before the response ended;
 * - `5xx`: the instance answered with a server error;
 * - `stall`: the instance held requests and answered none of them for `stallTimeout`.
 */
export type FailureKind = 'connect' | 'timeout' | 'reset' | '5xx' | 'stall';

/** What tipped an instance over: a run of failures, their share, or a stall. */
export type EjectionReason = 'consecutive' | 'failure-percentage' | 'stall';

/**
 * Probes an ejected instance, known by its key: resolves true when it answers. Returns undefined
 * when this prober cannot reach the instance (the tracker then tries the next one).
 */
export type Prober = (key: string, path: string | undefined, timeout: number) => Promise<boolean> | undefined;

/** Why an instance changed: `eject` when it was taken out, `return` when it came back. */
export type HealthEvent = 'eject' | 'return';

export type HealthListener = (state: InstanceHealth, event: HealthEvent) => void;

const { healthEject: ejectChannel, healthReturn: returnChannel } = channels;

const NONE: readonly HealthMember[] = Object.freeze([]);
const NO_PEERS: readonly InstanceHealth[] = Object.freeze([]);

export { instanceKey };

/**
 * The mutable health of one instance, shared by every service that has it. The agent changes it
 * only through {@link HealthTracker}'s `on*` methods; balancers read `inflight` and `ejected`.
 */
export class InstanceHealth {
  /** `address:port`, see {@link instanceKey}. */
  readonly key: string;
  readonly address: string;
  readonly port: number | undefined;
  /** Requests started and not yet finished. */
  inflight = 0;
  /** Requests started, in all. */
  requests = 0;
  /** Requests failed, in all. */
  failures = 0;
  /** Failures of any kind since the last success or return. */
  consecutiveFailures = 0;
  /** Refused connections since the last success or return. */
  consecutiveConnectFailures = 0;
  /** Out of balancing until `ejectedUntil`. */
  ejected = false;
  /** The ejection multiplier: ejections in a row, less one per base ejection time back in service. */
  ejections = 0;
  /** When the current ejection ends, on the tracker's clock; 0 when not ejected. */
  ejectedUntil = 0;
  /** The failure that ejected the instance, while ejected. */
  ejectedFor: FailureKind | undefined = undefined;

  /** @internal The failure-percentage window: when it began, its requests and failures. */
  windowStart = 0;
  windowRequests = 0;
  windowFailures = 0;
  /** @internal The probe timer while ejected, and whether a probe is in flight. */
  probeTimer: ClockTimer | undefined = undefined;
  probing = false;

  /** @internal When the instance last returned, on the tracker's clock. */
  returnedAt = 0;
  /** @internal The return timer while ejected. */
  timer: ClockTimer | undefined = undefined;
  /**
   * @internal The members (services) that have the instance, and the states of their other
   * instances, worked out when a failure needs them and kept until the tracker's members or
   * states change (see `HealthTracker.#membersOf`).
   */
  members: readonly HealthMember[] = NONE;
  membersAt = -1;
  peers: readonly InstanceHealth[] = NO_PEERS;
  peersAt = -1;

  constructor(key: string, address: string, port: number | undefined) {
    this.key = key;
    this.address = address;
    this.port = port;
  }
}

/** A read-only copy of one instance's health, for `stats()`. */
export interface InstanceHealthStats {
  readonly key: string;
  readonly inflight: number;
  readonly requests: number;
  readonly failures: number;
  readonly consecutiveFailures: number;
  readonly ejected: boolean;
  readonly ejections: number;
  readonly ejectedUntil: number;
}

export interface HealthStats {
  /** Instances with a state: those that requests went to (states are made on first use). */
  readonly instances: number;
  /** Instances ejected now. */
  readonly ejected: number;
  /** Ejections since the tracker was made. */
  readonly totalEjections: number;
  /** Ejections refused because `maxEjectedPercent` of a service was already out. */
  readonly refusedEjections: number;
  readonly states: readonly InstanceHealthStats[];
}

/**
 * The instances of one service, as its balancer sees them: the unit of `maxEjectedPercent`, and
 * the scope of change notifications. The balancer calls {@link HealthTracker.track} after each
 * change of `instances` (a new array), and {@link HealthTracker.untrack} when it closes.
 */
export interface HealthMember {
  /** Every instance of the service, ejected ones included. */
  readonly instances: readonly Instance[];
  /** One of `instances` was ejected or returned. */
  healthChanged(state: InstanceHealth, event: HealthEvent): void;
}

/** The `ejection` option with its defaults applied: what {@link HealthTracker} runs on. */
export interface EjectionSettings {
  readonly enabled: boolean;
  readonly consecutiveConnectFailures: number;
  readonly consecutiveFailures: number;
  readonly baseEjectionTime: number;
  readonly maxEjectionTime: number;
  readonly maxEjectedPercent: number;
  readonly panicThreshold: number;
  readonly failurePercentage: Required<FailurePercentageOptions> | false;
  readonly probe: (Required<Omit<ProbeOptions, 'path'>> & { path: string | undefined }) | false;
  readonly stallTimeout: number;
}

const EJECTION_KEYS = [
  'consecutiveConnectFailures',
  'consecutiveFailures',
  'baseEjectionTime',
  'maxEjectionTime',
  'maxEjectedPercent',
  'panicThreshold',
  'failurePercentage',
  'probe',
  'stallTimeout',
] as const;

/**
 * Checks the `ejection` option and applies its defaults; throws InvalidArgumentError
 * (SIGNPOST_ERR_INVALID_ARG) naming the bad value.
 */
export function parseEjectionOptions(value: unknown): EjectionSettings {
  if (value !== undefined && value !== false) checkEjection(value);
  const o = (value || {}) as EjectionOptions;
  return Object.freeze({
    enabled: value !== false,
    consecutiveConnectFailures: o.consecutiveConnectFailures ?? DEFAULT_CONSECUTIVE_CONNECT_FAILURES,
    consecutiveFailures: o.consecutiveFailures ?? DEFAULT_CONSECUTIVE_FAILURES,
    baseEjectionTime: o.baseEjectionTime ?? DEFAULT_BASE_EJECTION_TIME_MS,
    maxEjectionTime: o.maxEjectionTime ?? DEFAULT_MAX_EJECTION_TIME_MS,
    maxEjectedPercent: o.maxEjectedPercent ?? DEFAULT_MAX_EJECTED_PERCENT,
    panicThreshold: o.panicThreshold ?? DEFAULT_PANIC_THRESHOLD_PERCENT,
    failurePercentage:
      o.failurePercentage === false
        ? false
        : {
            threshold: o.failurePercentage?.threshold ?? DEFAULT_FAILURE_PERCENTAGE_THRESHOLD,
            minRequests: o.failurePercentage?.minRequests ?? DEFAULT_FAILURE_PERCENTAGE_MIN_REQUESTS,
            interval: o.failurePercentage?.interval ?? DEFAULT_FAILURE_PERCENTAGE_INTERVAL_MS,
          },
    probe:
      o.probe === false
        ? false
        : {
            interval: o.probe?.interval ?? DEFAULT_PROBE_INTERVAL_MS,
            timeout: o.probe?.timeout ?? DEFAULT_PROBE_TIMEOUT_MS,
            path: o.probe?.path,
          },
    stallTimeout: o.stallTimeout ?? DEFAULT_STALL_TIMEOUT_MS,
  });
}

function checkEjection(ejection: unknown): void {
  checkObject('ejection', ejection);
  checkKeys('ejection', ejection, EJECTION_KEYS);
  const o = ejection;
  if (o.consecutiveConnectFailures !== undefined) {
    checkInteger('ejection.consecutiveConnectFailures', o.consecutiveConnectFailures, 1, 1000);
  }
  if (o.consecutiveFailures !== undefined) checkInteger('ejection.consecutiveFailures', o.consecutiveFailures, 1, 1000);
  if (o.baseEjectionTime !== undefined) checkDuration('ejection.baseEjectionTime', o.baseEjectionTime, 1);
  if (o.maxEjectionTime !== undefined) checkDuration('ejection.maxEjectionTime', o.maxEjectionTime, 1);
  const base = (o.baseEjectionTime as number | undefined) ?? DEFAULT_BASE_EJECTION_TIME_MS;
  const max = (o.maxEjectionTime as number | undefined) ?? DEFAULT_MAX_EJECTION_TIME_MS;
  if (max < base) {
    throw invalid(
      'ejection.maxEjectionTime',
      max,
      `at least ejection.baseEjectionTime (${base})${o.maxEjectionTime === undefined ? '; set maxEjectionTime too' : ''}`,
    );
  }
  if (o.maxEjectedPercent !== undefined) checkInteger('ejection.maxEjectedPercent', o.maxEjectedPercent, 0, 100);
  if (o.panicThreshold !== undefined) checkInteger('ejection.panicThreshold', o.panicThreshold, 0, 100);
  if (o.failurePercentage !== undefined && o.failurePercentage !== false) {
    const fp: unknown = o.failurePercentage;
    checkObject('ejection.failurePercentage', fp);
    checkKeys('ejection.failurePercentage', fp, ['threshold', 'minRequests', 'interval']);
    if (fp.threshold !== undefined) checkInteger('ejection.failurePercentage.threshold', fp.threshold, 1, 100);
    if (fp.minRequests !== undefined) checkInteger('ejection.failurePercentage.minRequests', fp.minRequests, 1, 1_000_000);
    if (fp.interval !== undefined) checkDuration('ejection.failurePercentage.interval', fp.interval, 100);
  }
  if (o.probe !== undefined && o.probe !== false) {
    const probe: unknown = o.probe;
    checkObject('ejection.probe', probe);
    checkKeys('ejection.probe', probe, ['interval', 'timeout', 'path']);
    if (probe.interval !== undefined) checkDuration('ejection.probe.interval', probe.interval, 10);
    if (probe.timeout !== undefined) checkDuration('ejection.probe.timeout', probe.timeout, 10);
    if (probe.path !== undefined && (typeof probe.path !== 'string' || !probe.path.startsWith('/'))) {
      throw invalid('ejection.probe.path', probe.path, 'a path starting with "/"');
    }
  }
  if (o.stallTimeout !== undefined) {
    checkDuration('ejection.stallTimeout', o.stallTimeout);
    if (o.stallTimeout > 3_600_000) throw invalid('ejection.stallTimeout', o.stallTimeout, 'at most 3600000');
  }
}

/**
 * Owns one {@link InstanceHealth} per instance key and decides ejections.
 *
 * The agent calls `state(instance)` once per request, then `onStart(state)` and one of
 * `onSuccess(state)`, `onFailure(state, kind)` or `onCancel(state)`. An instance is ejected after
 * `consecutiveConnectFailures` refused connections or `consecutiveFailures` failures of any kind
 * in a row, unless that would put more than `maxEjectedPercent` of one of its services out.
 * It returns after `baseEjectionTime × ejections` (at most `maxEjectionTime`).
 */
export class HealthTracker {
  readonly #options: EjectionSettings;
  readonly #clock: Clock;
  /** States are made on first use (a request, or a policy that reads load): a name resolved and never requested costs none. */
  readonly #states = new Map<string, InstanceHealth>();
  readonly #members = new Set<HealthMember>();
  /** Bumped when a member's instances change: the states' `members` are worked out again. */
  #membership = 0;
  /** Bumped when members or states change: the states' `peers` are worked out again. */
  #version = 0;
  /** States ejected now: while none are, balancers need not look at any state. */
  #ejectedCount = 0;
  readonly #listeners = new Set<HealthListener>();
  /** Whether SIGNPOST_HEALTH was emitted (once per tracker). */
  #warned = false;
  readonly #probers = new Set<Prober>();
  #totalEjections = 0;
  #refusedEjections = 0;
  #closed = false;

  constructor(settings: EjectionSettings, clock: Clock) {
    this.#options = settings;
    this.#clock = clock;
  }

  /**
   * Milliseconds an instance may hold waiting requests without answering any before it counts as
   * frozen (0: never). The agent watches for it and calls {@link HealthTracker.onStall}.
   */
  get stallTimeout(): number {
    return this.#options.enabled ? this.#options.stallTimeout : 0;
  }

  /**
   * Adds a prober for ejected instances (the agent adds one that knows their origins, for HTTP
   * health paths). Returns the function that removes it.
   */
  setProber(prober: Prober): () => void {
    this.#probers.add(prober);
    return () => this.#probers.delete(prober);
  }

  /** Below this share of usable instances, in percent, balancers use every instance. */
  get panicThreshold(): number {
    return this.#options.panicThreshold;
  }

  /** The state of an instance, made on first use. */
  state(instance: Pick<Instance, 'address' | 'port'>): InstanceHealth {
    const key = instanceKey(instance);
    let state = this.#states.get(key);
    if (state === undefined) {
      state = new InstanceHealth(key, instance.address, instance.port);
      this.#states.set(key, state);
      this.#version++;
    }
    return state;
  }

  /**
   * The state of an instance if it has one. An instance without one has had no request yet, so
   * it is not ejected and its counters are all zero.
   */
  peek(instance: Pick<Instance, 'address' | 'port'>): InstanceHealth | undefined {
    return this.#states.size === 0 ? undefined : this.#states.get(instanceKey(instance));
  }

  /** Whether any instance is ejected now (false: no balancer needs to look at a state). */
  get anyEjected(): boolean {
    return this.#ejectedCount > 0;
  }

  /**
   * Adds a service's balancer, or tells the tracker that its `instances` changed: it then counts
   * for `maxEjectedPercent` and hears of its instances' ejections and returns.
   */
  track(member: HealthMember): void {
    this.#members.add(member);
    this.#membership++;
    this.#version++;
  }

  /** Removes a balancer (closed): no more notifications. Idempotent. */
  untrack(member: HealthMember): void {
    if (!this.#members.delete(member)) return;
    this.#membership++;
    this.#version++;
  }

  /** A request to the instance started. */
  onStart(state: InstanceHealth): void {
    state.inflight++;
    state.requests++;
  }

  /** A request to the instance succeeded (any response below 500 counts). */
  onSuccess(state: InstanceHealth): void {
    if (state.inflight > 0) state.inflight--;
    state.consecutiveFailures = 0;
    state.consecutiveConnectFailures = 0;
    // No clock read on the hot path: the window moves on when a failure is reported.
    state.windowRequests++;
  }

  /**
   * A request to the instance ended without telling anything about it (the caller aborted, or the
   * request itself was bad): only the in-flight count changes.
   */
  onCancel(state: InstanceHealth): void {
    if (state.inflight > 0) state.inflight--;
  }

  /** A request to the instance failed. */
  onFailure(state: InstanceHealth, kind: FailureKind): void {
    if (state.inflight > 0) state.inflight--;
    state.failures++;
    // Requests still in flight when the instance was ejected report late: they must not extend
    // or repeat the ejection.
    if (state.ejected || !this.#options.enabled || this.#closed) return;
    state.consecutiveFailures++;
    if (kind === 'connect') state.consecutiveConnectFailures++;
    else state.consecutiveConnectFailures = 0;
    if (
      state.consecutiveFailures >= this.#options.consecutiveFailures ||
      state.consecutiveConnectFailures >= this.#options.consecutiveConnectFailures
    ) {
      this.#eject(state, kind, 'consecutive');
      return;
    }
    const fp = this.#options.failurePercentage;
    if (fp === false) return;
    const now = this.#clock.now();
    if (now - state.windowStart >= fp.interval) {
      state.windowStart = now;
      state.windowRequests = 0;
      state.windowFailures = 0;
    }
    state.windowRequests++;
    state.windowFailures++;
    if (state.windowRequests >= fp.minRequests && state.windowFailures * 100 >= fp.threshold * state.windowRequests && this.#outlier(state)) {
      this.#eject(state, kind, 'failure-percentage');
    }
  }

  /**
   * Whether an instance fails clearly more than the others of its services (at least twice their
   * share): when a whole service fails alike (a dependency down, load shed everywhere), ejecting
   * some of it would only pile their traffic onto the rest.
   */
  #outlier(state: InstanceHealth): boolean {
    let requests = 0;
    let failures = 0;
    for (const other of this.#peersOf(state)) {
      if (other.ejected) continue;
      requests += other.windowRequests;
      failures += other.windowFailures;
    }
    if (requests === 0) return true;
    return state.windowFailures * requests >= 2 * failures * state.windowRequests;
  }

  /**
   * The instance holds requests waiting for their response headers and answered none of them for
   * `stallTimeout`: it is ejected at once (as far as `maxEjectedPercent` allows).
   */
  onStall(state: InstanceHealth): void {
    if (state.ejected || !this.#options.enabled || this.#closed) return;
    this.#eject(state, 'stall', 'stall');
  }

  /**
   * Drops the states of instances that left the registry. A key still in a service's balancer
   * is kept: call this after the balancers were updated.
   */
  forget(keys: Iterable<string>): void {
    let dropped = false;
    for (const key of keys) {
      const state = this.#states.get(key);
      if (state === undefined || this.#membersOf(state).length > 0) continue;
      this.#stopTimers(state);
      // Out of every service, it is out of balancing anyway; a probe still in flight then finds
      // nothing to return, and the count of ejected states stays exact.
      if (state.ejected) {
        state.ejected = false;
        this.#ejectedCount--;
      }
      this.#states.delete(key);
      dropped = true;
    }
    if (dropped) this.#version++;
  }

  /** Calls `listener` for every ejection and return. Returns the unsubscribe function. */
  subscribe(listener: HealthListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stats(): HealthStats {
    let ejected = 0;
    const states: InstanceHealthStats[] = [];
    for (const s of this.#states.values()) {
      if (s.ejected) ejected++;
      states.push({
        key: s.key,
        inflight: s.inflight,
        requests: s.requests,
        failures: s.failures,
        consecutiveFailures: s.consecutiveFailures,
        ejected: s.ejected,
        ejections: s.ejections,
        ejectedUntil: s.ejectedUntil,
      });
    }
    return {
      instances: this.#states.size,
      ejected,
      totalEjections: this.#totalEjections,
      refusedEjections: this.#refusedEjections,
      states,
    };
  }

  /** Clears every return timer; no ejection happens afterwards. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const state of this.#states.values()) this.#stopTimers(state);
    this.#members.clear();
    this.#listeners.clear();
    this.#probers.clear();
  }

  /** Whether one more of a member's instances may be ejected under `maxEjectedPercent`. */
  #ejectable(member: HealthMember, maxEjectedPercent: number): boolean {
    let ejected = 0;
    if (this.#ejectedCount > 0) for (const instance of member.instances) if (this.peek(instance)?.ejected === true) ejected++;
    return ejected + 1 <= Math.floor((member.instances.length * maxEjectedPercent) / 100);
  }

  /**
   * The members that have the instance. Only failures, ejections and returns ask, so it is
   * worked out then, by a scan of the members, and kept until a member's instances change:
   * nothing per instance is kept while all goes well.
   */
  #membersOf(state: InstanceHealth): readonly HealthMember[] {
    if (state.membersAt === this.#membership) return state.members;
    const members: HealthMember[] = [];
    for (const member of this.#members) {
      for (const instance of member.instances) {
        if (instance.address === state.address && instance.port === state.port) {
          members.push(member);
          break;
        }
      }
    }
    state.members = members.length === 0 ? NONE : members;
    state.membersAt = this.#membership;
    return state.members;
  }

  /** The states of the other instances of the instance's members (one entry per member that has them). */
  #peersOf(state: InstanceHealth): readonly InstanceHealth[] {
    if (state.peersAt === this.#version) return state.peers;
    const peers: InstanceHealth[] = [];
    for (const member of this.#membersOf(state)) {
      for (const instance of member.instances) {
        const other = this.peek(instance);
        if (other !== undefined && other !== state) peers.push(other);
      }
    }
    state.peers = peers.length === 0 ? NO_PEERS : peers;
    state.peersAt = this.#version;
    return state.peers;
  }

  #stopTimers(state: InstanceHealth): void {
    if (state.timer !== undefined) this.#clock.clearTimeout(state.timer);
    if (state.probeTimer !== undefined) this.#clock.clearTimeout(state.probeTimer);
    state.timer = undefined;
    state.probeTimer = undefined;
  }

  #eject(state: InstanceHealth, kind: FailureKind, reason: EjectionReason): void {
    const o = this.#options;
    for (const member of this.#membersOf(state)) {
      if (!this.#ejectable(member, o.maxEjectedPercent)) {
        // Counters keep running, so the next failure asks again: another instance may have
        // returned by then.
        this.#refusedEjections++;
        return;
      }
    }
    const now = this.#clock.now();
    if (state.ejections > 0) {
      const healthyPeriods = Math.floor((now - state.returnedAt) / o.baseEjectionTime);
      state.ejections = Math.max(0, state.ejections - healthyPeriods);
    }
    state.ejections++;
    const ejectionTime = Math.min(o.baseEjectionTime * state.ejections, o.maxEjectionTime);
    state.ejected = true;
    this.#ejectedCount++;
    state.ejectedFor = kind;
    state.ejectedUntil = now + ejectionTime;
    state.timer = this.#clock.setTimeout(() => this.#return(state, 'timer'), ejectionTime);
    this.#totalEjections++;
    if (ejectChannel.hasSubscribers) {
      ejectChannel.publish({ key: state.key, kind, ejections: state.ejections, ejectionTime, reason } satisfies EjectMessage);
    }
    this.#scheduleProbe(state);
    this.#notify(state, 'eject');
  }

  #return(state: InstanceHealth, by: ReturnMessage['by']): void {
    if (this.#closed || !state.ejected) return;
    this.#stopTimers(state);
    state.ejected = false;
    this.#ejectedCount--;
    state.ejectedFor = undefined;
    state.ejectedUntil = 0;
    state.returnedAt = this.#clock.now();
    state.consecutiveFailures = 0;
    state.consecutiveConnectFailures = 0;
    state.windowStart = state.returnedAt;
    state.windowRequests = 0;
    state.windowFailures = 0;
    if (returnChannel.hasSubscribers) returnChannel.publish({ key: state.key, by } satisfies ReturnMessage);
    this.#notify(state, 'return');
  }

  /**
   * The next probe of an ejected instance, by the probers added (the agent's): an HTTP GET of the
   * health path when one is set, else a TCP connect for an instance ejected for connection
   * failures. A stalled or failing instance accepts connections, so without a health path it
   * waits for its ejection time instead.
   */
  #scheduleProbe(state: InstanceHealth): void {
    const probe = this.#options.probe;
    // Probes are made by whoever reaches the instances (the agent adds its prober): a Discovery
    // on its own never opens a connection to an instance.
    if (probe === false || this.#closed || !state.ejected || this.#probers.size === 0) return;
    if (probe.path === undefined && state.ejectedFor !== 'connect') return;
    state.probeTimer = this.#clock.setTimeout(() => {
      state.probeTimer = undefined;
      if (!state.ejected || state.probing || this.#closed) return;
      state.probing = true;
      this.#probe(state, probe.path, probe.timeout).then(
        (ok) => {
          state.probing = false;
          if (ok) this.#return(state, 'probe');
          else this.#scheduleProbe(state);
        },
        () => {
          state.probing = false;
          this.#scheduleProbe(state);
        },
      );
    }, probe.interval);
  }

  #probe(state: InstanceHealth, path: string | undefined, timeout: number): Promise<boolean> {
    for (const prober of this.#probers) {
      try {
        const result = prober(state.key, path, timeout);
        if (result !== undefined) return result;
      } catch {
        // A prober that throws is one that cannot reach the instance.
      }
    }
    return Promise.resolve(false);
  }

  #notify(state: InstanceHealth, event: HealthEvent): void {
    // A listener that throws must not keep the others from rebuilding, nor surface in the
    // request that reported the failure. (A user's balancer is contained where it is made; a
    // throw here is signpost's own, reported once per tracker so that it cannot flood.)
    for (const member of this.#membersOf(state)) {
      try {
        member.healthChanged(state, event);
      } catch (error) {
        this.#warn('a balancer failed to rebuild after a health change', error);
      }
    }
    for (const listener of [...this.#listeners]) {
      try {
        listener(state, event);
      } catch (error) {
        this.#warn('a health listener threw', error);
      }
    }
  }

  #warn(what: string, error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    const { name, code } = scrubError(error) as Error & { code?: unknown };
    process.emitWarning(`signpost: ${what} (${name}${typeof code === 'string' ? ` ${code}` : ''}); the request and the other balancers carried on`, {
      code: 'SIGNPOST_HEALTH',
    });
  }
}

