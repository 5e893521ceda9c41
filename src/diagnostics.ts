/**
 * Every diagnostics channel signpost publishes on, and the message each one carries, in one
 * place (`node:diagnostics_channel`, named `signpost:<area>:<event>` as undici names its own).
 * Messages are published only while someone subscribes; none holds a secret (a credential, a
 * token, a URL's path or query string).
 *
 * Subscribe by name, as with any channel:
 *
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * import type { ResolveErrorMessage } from 'signpost';
 *
 * subscribe('signpost:resolve:error', (message) => {
 *   const { name, error, serving } = message as ResolveErrorMessage;
 * });
 * ```
 *
 * or through {@link channels} (`channels.resolveError.subscribe(...)`). The names are a public
 * contract; {@link ChannelMessages} maps each to its message type.
 */
import { channel, type Channel } from 'node:diagnostics_channel';
import type { SignpostError } from './errors.ts';
import type { EjectionReason, FailureKind } from './health.ts';
import type { AliasMode } from './options.ts';
import type { Instance } from './types.ts';

// ---------------------------------------------------------------------------------------------
// Resolution (the cache, whatever the registry)

/** `signpost:resolve:done`: an answer from the registry (each upstream query that succeeded). */
export interface ResolveDoneMessage {
  readonly name: string;
  /** The instances the answer holds, after the address policy (empty: the name has none). */
  readonly instances: readonly Instance[];
  /** The answer's TTL as the registry gave it, in milliseconds (before the cache clamps it). */
  readonly ttl: number;
  /** How long the query took, in milliseconds. */
  readonly duration: number;
}

/** `signpost:resolve:error`: a query failed (the registry failed, or the name does not exist). */
export interface ResolveErrorMessage {
  readonly name: string;
  /** `SIGNPOST_ERR_NOT_FOUND` or `SIGNPOST_ERR_RESOLVE`, saying what to check for the registry asked. */
  readonly error: SignpostError;
  /** Instances still served for the name (fresh until expiry, then stale): 0 when none are. */
  readonly serving: number;
}

/**
 * `signpost:resolve:stale`: a name starts being served stale (RFC 8767), or a DNS resolver
 * starts answering it with expired data (Extended DNS Error 3: its own upstream is down).
 */
export interface ResolveStaleMessage {
  readonly name: string;
  /** What is served meanwhile. */
  readonly instances: readonly Instance[];
  /** Why: the last failure. */
  readonly error: SignpostError | undefined;
}

/** `signpost:resolve:skipped-instance`: an instance the answer had, left out. */
export interface SkippedInstanceMessage {
  readonly name: string;
  readonly id: string;
  readonly address: string;
  readonly port: number | undefined;
  /** Why: `link-local (...)`, `a multicast address`, `port 0 is not ...`. */
  readonly reason: string;
}

/** `signpost:alias:use`: a request or lookup through an old name. */
export interface AliasUseMessage {
  /** The old name. */
  readonly alias: string;
  /** The new name. */
  readonly to: string;
  readonly mode: AliasMode;
}

/** Which user callback failed (see {@link CallbackErrorMessage}). */
export type CallbackKind =
  | 'onChange listener'
  | 'onError listener'
  | 'onResolve listener'
  | 'balancer factory'
  | 'balancer.update'
  | 'balancer.pick'
  | 'balancer.close'
  | 'clock.now'
  | 'clock.setTimeout'
  | 'clock.clearTimeout';

/** `signpost:callback:error`: a callback of yours threw (or returned what it must not) and was contained. */
export interface CallbackErrorMessage {
  readonly callback: CallbackKind;
  /** The service name, when the callback was about one. */
  readonly name: string | undefined;
  /** What it threw, reduced to its name and code (its message may hold anything). */
  readonly error: Error;
}

// ---------------------------------------------------------------------------------------------
// DNS and SRV

/**
 * `signpost:dns:ignored-response`: a packet the wire client did not accept (wrong ID, wrong
 * question, question case that does not match (0x20), undecodable, from another address or port).
 * A steady stream suggests spoofing attempts.
 */
export interface IgnoredResponseMessage {
  /** The question's name. */
  readonly name: string;
  /** The question's type: `A`, `AAAA`, `SRV`. */
  readonly type: string;
  /** The server asked (`ip:port`). */
  readonly server: string;
  readonly reason: string;
}

/** `signpost:dns:skipped-target`: an SRV target left out because it has no address, or its lookup failed while others succeeded. */
export interface SkippedTargetMessage {
  /** The service name. */
  readonly name: string;
  /** The SRV name asked. */
  readonly srv: string;
  readonly target: string;
  readonly port: number;
  readonly reason: 'no address' | 'lookup failed';
  /** The lookup's error, when it failed or the target does not exist. */
  readonly error?: SignpostError;
}

// ---------------------------------------------------------------------------------------------
// Cloud Map

/** A Cloud Map data API call signpost makes. */
export type CloudMapOperation = 'DiscoverInstances' | 'DiscoverInstancesRevision';

/** `signpost:cloudmap:call`: before every attempt of a call (after its call-budget wait). */
export interface CloudMapCallEvent {
  operation: CloudMapOperation;
  namespace: string;
  service: string;
  /** 1 for the first attempt. */
  attempt: number;
}

/** `signpost:cloudmap:retry`: the SDK retries a failed attempt (published as the retry starts). */
export interface CloudMapRetryEvent {
  operation: CloudMapOperation;
  namespace: string;
  service: string;
  /** The failed attempt (1 for the first). */
  attempt: number;
  /** Attempts the SDK may still make after this retry's. */
  retriesLeft: number;
  /** How long the retry waited (the SDK's backoff, then the budget), in milliseconds. */
  delay: number;
  /** The AWS error name (`RequestLimitExceeded`) or network error code; never request details. */
  error: string;
  /** The HTTP status of the failed attempt, when there was a response. */
  statusCode: number | undefined;
}

/** `signpost:cloudmap:throttled`: throttling cut this process's call rate. */
export interface CloudMapThrottledEvent {
  operation: CloudMapOperation;
  namespace: string;
  service: string;
  /** The calls per second this process now sends at most. */
  rate: number;
  /** The factor the poll interval is now stretched by. */
  stretch: number;
}

/** `signpost:cloudmap:instance-skipped`: an instance Cloud Map returned that cannot be used. */
export interface CloudMapSkippedEvent {
  hostname: string;
  namespace: string;
  service: string;
  instanceId: string | undefined;
  reason: string;
}

// ---------------------------------------------------------------------------------------------
// Health and balancing

/** `signpost:health:eject`: an instance taken out of balancing. */
export interface EjectMessage {
  /** The instance key (`address:port`). */
  readonly key: string;
  /** The failure that tipped the instance over. */
  readonly kind: FailureKind;
  /** How many times in a row the instance has been ejected, this one included. */
  readonly ejections: number;
  /** How long this ejection lasts at most, in milliseconds (a probe may end it sooner). */
  readonly ejectionTime: number;
  /** What tipped it over. */
  readonly reason: EjectionReason;
}

/** `signpost:health:return`: an ejected instance back in service. */
export interface ReturnMessage {
  readonly key: string;
  /** `probe`: a probe got an answer; `timer`: the ejection time ended. */
  readonly by: 'probe' | 'timer';
}

/** `signpost:balancer:panic`: a service's set enters panic mode (too few usable instances: every one is used). */
export interface PanicMessage {
  /** The service name. */
  readonly name: string;
  /** Instances not ejected. */
  readonly usable: number;
  /** Instances in all. */
  readonly total: number;
}

// ---------------------------------------------------------------------------------------------
// The request path

/** `signpost:agent:pick`: the instance an attempt goes to. */
export interface PickMessage {
  readonly name: string;
  /** `address:port` the attempt goes to. */
  readonly key: string;
  readonly instance: Instance;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/** `signpost:agent:retry`: a failed attempt is tried again on another instance. */
export interface RetryMessage {
  readonly name: string;
  readonly method: string;
  /** The instance whose attempt failed. */
  readonly key: string;
  readonly error: Error;
  /** The number of the attempt about to be made (2 for the first retry). */
  readonly attempt: number;
  /** How long the retry waits, in milliseconds (0 for the first: it goes to another instance at once). */
  readonly delay: number;
}

/** `signpost:agent:stall`: an instance held requests and answered none of them for `ejection.stallTimeout`. */
export interface StallMessage {
  /** The instance (`address:port`) that held requests and answered none. */
  readonly key: string;
  /** Requests waiting on it for their response headers. */
  readonly waiting: number;
  /** How long it answered nothing, in milliseconds. */
  readonly stalledFor: number;
}

/** `signpost:pool:create`: a connection pool for one instance origin. */
export interface PoolCreateMessage {
  /** The instance key (`address:port`). */
  readonly key: string;
  /** The origin the pool connects to (`https://10.0.1.5:8443`). */
  readonly origin: string;
  /** The TLS servername (the logical name), for https. */
  readonly servername: string | undefined;
}

/** `signpost:pool:close`: an instance's pool closes. */
export interface PoolCloseMessage extends PoolCreateMessage {
  /**
   * `removed`: the instance left every name's set and its pool drains; `idle`: its last
   * connection closed; `close`: the agent closed.
   */
  readonly reason: 'removed' | 'idle' | 'close';
}

// ---------------------------------------------------------------------------------------------

/** Each channel's name and the type of its messages. */
export interface ChannelMessages {
  'signpost:resolve:done': ResolveDoneMessage;
  'signpost:resolve:error': ResolveErrorMessage;
  'signpost:resolve:stale': ResolveStaleMessage;
  'signpost:resolve:skipped-instance': SkippedInstanceMessage;
  'signpost:alias:use': AliasUseMessage;
  'signpost:callback:error': CallbackErrorMessage;
  'signpost:dns:ignored-response': IgnoredResponseMessage;
  'signpost:dns:skipped-target': SkippedTargetMessage;
  'signpost:cloudmap:call': CloudMapCallEvent;
  'signpost:cloudmap:retry': CloudMapRetryEvent;
  'signpost:cloudmap:throttled': CloudMapThrottledEvent;
  'signpost:cloudmap:instance-skipped': CloudMapSkippedEvent;
  'signpost:health:eject': EjectMessage;
  'signpost:health:return': ReturnMessage;
  'signpost:balancer:panic': PanicMessage;
  'signpost:agent:pick': PickMessage;
  'signpost:agent:retry': RetryMessage;
  'signpost:agent:stall': StallMessage;
  'signpost:pool:create': PoolCreateMessage;
  'signpost:pool:close': PoolCloseMessage;
}

/** The name of a signpost diagnostics channel. */
export type ChannelName = keyof ChannelMessages;

/** A channel whose messages are `M`: publishing anything else does not compile. */
export interface TypedChannel<M> extends Omit<Channel, 'publish'> {
  publish(message: M): void;
}

function typed<N extends ChannelName>(name: N): TypedChannel<ChannelMessages[N]> {
  return channel(name) as TypedChannel<ChannelMessages[N]>;
}

/** Every channel signpost publishes on (the same objects `diagnostics_channel.channel(name)` returns). */
export const channels = Object.freeze({
  resolveDone: typed('signpost:resolve:done'),
  resolveError: typed('signpost:resolve:error'),
  resolveStale: typed('signpost:resolve:stale'),
  skippedInstance: typed('signpost:resolve:skipped-instance'),
  aliasUse: typed('signpost:alias:use'),
  callbackError: typed('signpost:callback:error'),
  dnsIgnoredResponse: typed('signpost:dns:ignored-response'),
  dnsSkippedTarget: typed('signpost:dns:skipped-target'),
  cloudMapCall: typed('signpost:cloudmap:call'),
  cloudMapRetry: typed('signpost:cloudmap:retry'),
  cloudMapThrottled: typed('signpost:cloudmap:throttled'),
  cloudMapInstanceSkipped: typed('signpost:cloudmap:instance-skipped'),
  healthEject: typed('signpost:health:eject'),
  healthReturn: typed('signpost:health:return'),
  balancerPanic: typed('signpost:balancer:panic'),
  agentPick: typed('signpost:agent:pick'),
  agentRetry: typed('signpost:agent:retry'),
  agentStall: typed('signpost:agent:stall'),
  poolCreate: typed('signpost:pool:create'),
  poolClose: typed('signpost:pool:close'),
});
