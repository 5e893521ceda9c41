/**
 * The Cloud Map data API as signpost uses it: one AWS SDK client, one call budget and one retry
 * policy shared by every Cloud Map resolver of a Discovery.
 */
import { channel } from 'node:diagnostics_channel';
import type {
  DiscoverInstancesRequest,
  DiscoverInstancesResponse,
  ServiceDiscoveryClient,
} from '@aws-sdk/client-servicediscovery';
import pRetry from 'p-retry';
import { systemClock, type Clock, type ClockTimer } from '../clock.ts';
import { ClosedError, InvalidArgumentError, NotFoundError, ResolveError, type SignpostError } from '../errors.ts';
import type { CloudMapHealthStatus, CloudMapOptions } from '../options.ts';
import {
  checkDuration,
  checkInteger,
  checkKeys,
  checkNumber,
  checkObject,
  checkOneOf,
  checkString,
  invalid,
} from '../validate.ts';

export const CLOUD_MAP_HEALTH_STATUSES: readonly CloudMapHealthStatus[] = [
  'HEALTHY',
  'UNHEALTHY',
  'ALL',
  'HEALTHY_OR_ELSE_ALL',
];
export const DEFAULT_CLOUD_MAP_HEALTH_STATUS: CloudMapHealthStatus = 'HEALTHY_OR_ELSE_ALL';
export const DEFAULT_POLL_INTERVAL_MS = 5000;
export const DEFAULT_FULL_REFRESH_INTERVAL_MS = 30_000;
export const DEFAULT_MAX_CALLS_PER_SECOND = 50;
export const DEFAULT_CLOUD_MAP_RETRIES = 3;
export const DEFAULT_RETRY_DELAY_MS = 100;
export const MAX_RETRY_DELAY_MS = 5000;
export const DEFAULT_CLOUD_MAP_TIMEOUT_MS = 5000;
export const DEFAULT_WEIGHT_ATTRIBUTE = 'weight';
/** The most DiscoverInstances returns in one call; the API has no paging beyond it. */
export const MAX_RESULTS = 1000;
const MAX_INTERVAL_MS = 3_600_000;

const CLOUD_MAP_OPTION_KEYS = [
  'region',
  'endpoint',
  'client',
  'credentials',
  'healthStatus',
  'pollInterval',
  'fullRefreshInterval',
  'maxCallsPerSecond',
  'retries',
  'retryDelay',
  'timeout',
  'weightAttribute',
] as const;

/** Checks `cloudMap` options; throws InvalidArgumentError (SIGNPOST_ERR_INVALID_ARG) naming the bad one. */
export function validateCloudMapOptions(options: unknown, path = 'cloudMap'): asserts options is CloudMapOptions {
  checkObject(path, options);
  checkKeys(path, options, CLOUD_MAP_OPTION_KEYS);
  const o = options;
  if (o.region !== undefined) {
    checkString(`${path}.region`, o.region);
    if (!/^[a-z0-9-]+$/.test(o.region)) throw invalid(`${path}.region`, o.region, 'an AWS region such as "us-east-1"');
  }
  if (o.endpoint !== undefined) {
    const url = typeof o.endpoint === 'string' && URL.canParse(o.endpoint) ? new URL(o.endpoint) : undefined;
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw invalid(`${path}.endpoint`, o.endpoint, 'an http:// or https:// URL');
    }
  }
  if (o.client !== undefined) {
    const client = o.client as { send?: unknown } | null;
    if (typeof client !== 'object' || client === null || typeof client.send !== 'function') {
      throw invalid(`${path}.client`, o.client, 'a ServiceDiscoveryClient from @aws-sdk/client-servicediscovery');
    }
  }
  if (o.credentials !== undefined && typeof o.credentials !== 'function') {
    const c = o.credentials as { accessKeyId?: unknown; secretAccessKey?: unknown } | null;
    // Never echo the value: it may hold a secret.
    if (typeof c !== 'object' || c === null || typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') {
      throw new InvalidArgumentError(
        `Invalid ${path}.credentials: expected { accessKeyId, secretAccessKey, sessionToken? } or a credential provider function`,
      );
    }
  }
  if (o.healthStatus !== undefined) checkOneOf(`${path}.healthStatus`, o.healthStatus, CLOUD_MAP_HEALTH_STATUSES);
  if (o.pollInterval !== undefined) {
    checkDuration(`${path}.pollInterval`, o.pollInterval, 100);
    if (o.pollInterval > MAX_INTERVAL_MS) throw invalid(`${path}.pollInterval`, o.pollInterval, 'at most 3600000');
  }
  if (o.fullRefreshInterval !== undefined) {
    checkDuration(`${path}.fullRefreshInterval`, o.fullRefreshInterval, 0);
    if (o.fullRefreshInterval > MAX_INTERVAL_MS) {
      throw invalid(`${path}.fullRefreshInterval`, o.fullRefreshInterval, 'at most 3600000');
    }
  }
  if (o.maxCallsPerSecond !== undefined) checkNumber(`${path}.maxCallsPerSecond`, o.maxCallsPerSecond, 0.1, 10_000);
  if (o.retries !== undefined) checkInteger(`${path}.retries`, o.retries, 0, 10);
  if (o.retryDelay !== undefined) {
    checkDuration(`${path}.retryDelay`, o.retryDelay, 1);
    if (o.retryDelay > 60_000) throw invalid(`${path}.retryDelay`, o.retryDelay, 'at most 60000');
  }
  if (o.timeout !== undefined) checkDuration(`${path}.timeout`, o.timeout, 1);
  if (o.weightAttribute !== undefined) checkString(`${path}.weightAttribute`, o.weightAttribute);
}

/** The Cloud Map service a call is about. */
export interface CloudMapTarget {
  readonly namespace: string;
  readonly service: string;
  /** The name signpost was asked for, for error messages. */
  readonly hostname: string;
}

export interface DiscoverInstancesInput {
  healthStatus: CloudMapHealthStatus;
  queryParameters?: Record<string, string> | undefined;
  optionalParameters?: Record<string, string> | undefined;
}

/** Published on `signpost:cloudmap:call` before every attempt of a call (after its budget wait). */
export interface CloudMapCallEvent {
  operation: 'DiscoverInstances' | 'DiscoverInstancesRevision';
  namespace: string;
  service: string;
  /** 1 for the first attempt. */
  attempt: number;
}

/** Published on `signpost:cloudmap:retry` when a failed attempt is retried. */
export interface CloudMapRetryEvent {
  operation: 'DiscoverInstances' | 'DiscoverInstancesRevision';
  namespace: string;
  service: string;
  attempt: number;
  retriesLeft: number;
  /** The backoff before the next attempt, in milliseconds. */
  delay: number;
  /** The AWS error name (`RequestLimitExceeded`) or network error code; never request details. */
  error: string;
  /** The HTTP status of the failed attempt, when there was a response. */
  statusCode: number | undefined;
}

const callChannel = channel('signpost:cloudmap:call');
const retryChannel = channel('signpost:cloudmap:retry');

type Operation = CloudMapCallEvent['operation'];
type Sdk = typeof import('@aws-sdk/client-servicediscovery');

/**
 * A token bucket: `rate` tokens a second, holding at most `capacity`. Waiters are served in
 * arrival order so a busy service cannot starve a quiet one.
 */
class TokenBucket {
  readonly #rate: number;
  readonly #capacity: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;
  #timer: ClockTimer | undefined;
  readonly #waiters: { resolve: () => void; reject: (error: unknown) => void; signal: AbortSignal; onAbort: () => void }[] = [];

  constructor(ratePerSecond: number, clock: Clock) {
    this.#rate = ratePerSecond / 1000;
    this.#capacity = Math.max(1, ratePerSecond);
    this.#clock = clock;
    this.#tokens = this.#capacity;
    this.#last = clock.now();
  }

  take(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    this.#refill();
    if (this.#waiters.length === 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index !== -1) this.#waiters.splice(index, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#drain();
    });
  }

  /** Rejects every waiter; used by close(). */
  rejectAll(error: unknown): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  #refill(): void {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#last) * this.#rate);
    this.#last = now;
  }

  #drain(): void {
    if (this.#timer !== undefined) return;
    this.#refill();
    while (this.#waiters.length > 0 && this.#tokens >= 1) {
      const waiter = this.#waiters.shift()!;
      this.#tokens -= 1;
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve();
    }
    if (this.#waiters.length === 0) return;
    const wait = Math.max(1, Math.ceil((1 - this.#tokens) / this.#rate));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, wait);
  }
}

/** Names of AWS errors that mean "slow down" or "try again": retried with backoff. */
const RETRYABLE_ERRORS = new Set([
  'RequestLimitExceeded',
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalServerError',
  'InternalServiceError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

/** Errors that say the caller may not call Cloud Map: its credentials or its permissions. */
const AUTH_ERRORS = new Set([
  'CredentialsProviderError',
  'AccessDenied',
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'ExpiredToken',
  'ExpiredTokenException',
  'NotAuthorized',
]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
]);

interface AwsErrorLike {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
  $retryable?: unknown;
}

function errorName(error: unknown): string {
  const e = error as AwsErrorLike | null;
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  return typeof e?.name === 'string' ? e.name : 'Error';
}

function statusOf(error: unknown): number | undefined {
  const status = (error as AwsErrorLike | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function requestIdOf(error: unknown): string | undefined {
  const id = (error as AwsErrorLike | null)?.$metadata?.requestId;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

/** Marks an attempt that ran out of its own time (not the caller's signal). */
class AttemptTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * A request that got no response. Fetch-style handlers report these as TypeError, which p-retry
 * would otherwise refuse to retry.
 */
class NetworkError extends Error {
  override readonly name = 'NetworkError';
}

function isRetryable(error: unknown): boolean {
  if (error instanceof AttemptTimeoutError || error instanceof NetworkError) return true;
  const name = errorName(error);
  if (AUTH_ERRORS.has(name)) return false;
  if (RETRYABLE_ERRORS.has(name) || NETWORK_CODES.has(name)) return true;
  const status = statusOf(error);
  if (status !== undefined) return status === 429 || status >= 500;
  // No response at all and not an error the SDK raised before sending: a connection problem.
  return (error as AwsErrorLike | null)?.$retryable !== undefined;
}

/** "(RequestLimitExceeded, HTTP 400, request id …)": what an operator needs to look it up, nothing secret. */
function describeFailure(error: unknown): string {
  const parts = [errorName(error)];
  const status = statusOf(error);
  if (status !== undefined) parts.push(`HTTP ${status}`);
  const id = requestIdOf(error);
  if (id !== undefined) parts.push(`request id ${id}`);
  return parts.join(', ');
}

/**
 * What may travel as `cause`: the SDK's error has AWS's message, which for SignatureDoesNotMatch
 * echoes the canonical request (session token included), and loggers print causes. Only the
 * error's name, status, request id and code are kept.
 */
function safeCause(error: unknown): Error {
  if (error instanceof AttemptTimeoutError || error instanceof NetworkError) return error;
  const cause = new Error(describeFailure(error));
  cause.name = errorName(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') (cause as Error & { code?: string }).code = code;
  const status = statusOf(error);
  if (status !== undefined) (cause as Error & { statusCode?: number }).statusCode = status;
  return cause;
}

/**
 * Turns whatever a call failed with into the SignpostError the resolver contract allows. AWS
 * messages are not copied: some (SignatureDoesNotMatch) echo the string that was signed.
 */
function toSignpostError(error: unknown, operation: Operation, target: CloudMapTarget, attempts: number): SignpostError {
  const { hostname, namespace, service } = target;
  const where = `Cloud Map service "${service}" in namespace "${namespace}"`;
  const name = errorName(error);
  const options = { hostname, cause: safeCause(error) };
  if (name === 'NamespaceNotFound') {
    return new NotFoundError(
      `${hostname}: Cloud Map has no namespace "${namespace}": is the namespace registered in Cloud Map, in this region?`,
      options,
    );
  }
  if (name === 'ServiceNotFound') {
    return new NotFoundError(
      `${hostname}: Cloud Map has no service "${service}" in namespace "${namespace}": is the service registered in Cloud Map, in this region?`,
      options,
    );
  }
  if (AUTH_ERRORS.has(name) || statusOf(error) === 403) {
    return new ResolveError(
      `${hostname}: ${operation} of ${where} was refused (${describeFailure(error)}): grant ` +
        'servicediscovery:DiscoverInstances and servicediscovery:DiscoverInstancesRevision to the role ' +
        'this process runs as, and check its credential source (task role, AWS_PROFILE, environment)',
      options,
    );
  }
  if (/region is missing/i.test((error as Error | null)?.message ?? '')) {
    return new ResolveError(
      `${hostname}: no AWS region for ${where}: set cloudMap.region or AWS_REGION`,
      options,
    );
  }
  if (name === 'InvalidInput') {
    return new ResolveError(
      `${hostname}: Cloud Map rejected ${operation} of ${where} as invalid input: check the namespace and service names`,
      options,
    );
  }
  const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
  return new ResolveError(
    `${hostname}: ${operation} of ${where} failed after ${tries} (${describeFailure(error)}): ` +
      'check that this process can reach the Cloud Map endpoint, and cloudMap.maxCallsPerSecond ' +
      'against the account-wide Cloud Map quota',
    options,
  );
}

/**
 * The Cloud Map client shared by every Cloud Map resolver of one Discovery: it loads the AWS SDK
 * on first use, spends a call budget shared by all services, and retries throttled calls.
 */
export class CloudMapClient {
  readonly options: Readonly<{
    healthStatus: CloudMapHealthStatus;
    pollInterval: number;
    fullRefreshInterval: number;
    weightAttribute: string;
  }>;
  readonly clock: Clock;
  readonly #given: ServiceDiscoveryClient | undefined;
  readonly #region: string | undefined;
  readonly #endpoint: string | undefined;
  readonly #credentials: CloudMapOptions['credentials'];
  readonly #retries: number;
  readonly #retryDelay: number;
  readonly #timeout: number;
  readonly #bucket: TokenBucket;
  #sdk: Promise<{ client: ServiceDiscoveryClient; sdk: Sdk }> | undefined;
  #created: ServiceDiscoveryClient | undefined;
  #closed = false;

  constructor(options: CloudMapOptions = {}, clock: Clock = systemClock) {
    validateCloudMapOptions(options);
    this.clock = clock;
    this.options = Object.freeze({
      healthStatus: options.healthStatus ?? DEFAULT_CLOUD_MAP_HEALTH_STATUS,
      pollInterval: options.pollInterval ?? DEFAULT_POLL_INTERVAL_MS,
      fullRefreshInterval: options.fullRefreshInterval ?? DEFAULT_FULL_REFRESH_INTERVAL_MS,
      weightAttribute: options.weightAttribute ?? DEFAULT_WEIGHT_ATTRIBUTE,
    });
    this.#given = options.client;
    this.#region = options.region;
    this.#endpoint = options.endpoint;
    this.#credentials = options.credentials;
    this.#retries = options.retries ?? DEFAULT_CLOUD_MAP_RETRIES;
    this.#retryDelay = options.retryDelay ?? DEFAULT_RETRY_DELAY_MS;
    this.#timeout = options.timeout ?? DEFAULT_CLOUD_MAP_TIMEOUT_MS;
    this.#bucket = new TokenBucket(options.maxCallsPerSecond ?? DEFAULT_MAX_CALLS_PER_SECOND, clock);
  }

  /** DiscoverInstances for one service (MaxResults 1000). */
  async discoverInstances(
    target: CloudMapTarget,
    input: DiscoverInstancesInput,
    signal: AbortSignal,
  ): Promise<DiscoverInstancesResponse> {
    const request: DiscoverInstancesRequest = {
      NamespaceName: target.namespace,
      ServiceName: target.service,
      HealthStatus: input.healthStatus,
      MaxResults: MAX_RESULTS,
    };
    if (input.queryParameters !== undefined) request.QueryParameters = input.queryParameters;
    if (input.optionalParameters !== undefined) request.OptionalParameters = input.optionalParameters;
    return this.#call('DiscoverInstances', target, signal, (client, sdk, abortSignal) =>
      client.send(new sdk.DiscoverInstancesCommand(request), { abortSignal }),
    );
  }

  /** DiscoverInstancesRevision for one service: the revision, or undefined when Cloud Map gave none. */
  async discoverInstancesRevision(target: CloudMapTarget, signal: AbortSignal): Promise<number | undefined> {
    const input = { NamespaceName: target.namespace, ServiceName: target.service };
    const response = await this.#call('DiscoverInstancesRevision', target, signal, (client, sdk, abortSignal) =>
      client.send(new sdk.DiscoverInstancesRevisionCommand(input), { abortSignal }),
    );
    return response.InstancesRevision;
  }

  /** Stops every waiting call and destroys the SDK client if this object created it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#bucket.rejectAll(new ClosedError());
    this.#created?.destroy();
    this.#created = undefined;
  }

  async #call<Output>(
    operation: Operation,
    target: CloudMapTarget,
    signal: AbortSignal,
    send: (client: ServiceDiscoveryClient, sdk: Sdk, abortSignal: AbortSignal) => Promise<Output>,
  ): Promise<Output> {
    if (this.#closed) throw new ClosedError();
    let attempts = 0;
    try {
      return await pRetry(
        async () => {
          await this.#bucket.take(signal);
          const { client, sdk } = await this.#load();
          if (this.#closed) throw new ClosedError();
          attempts += 1;
          if (callChannel.hasSubscribers) {
            callChannel.publish({ operation, namespace: target.namespace, service: target.service, attempt: attempts } satisfies CloudMapCallEvent);
          }
          return await this.#attempt(signal, (abortSignal) => send(client, sdk, abortSignal));
        },
        {
          retries: this.#retries,
          minTimeout: this.#retryDelay,
          maxTimeout: MAX_RETRY_DELAY_MS,
          factor: 2,
          randomize: true,
          signal,
          unref: true,
          shouldRetry: ({ error }) => !this.#closed && isRetryable(error),
          onFailedAttempt: ({ error, attemptNumber, retriesLeft, retryDelay }) => {
            if (retriesLeft > 0 && !this.#closed && retryChannel.hasSubscribers && isRetryable(error)) {
              retryChannel.publish({
                operation,
                namespace: target.namespace,
                service: target.service,
                attempt: attemptNumber,
                retriesLeft,
                delay: retryDelay,
                error: errorName(error),
                statusCode: statusOf(error),
              } satisfies CloudMapRetryEvent);
            }
          },
        },
      );
    } catch (error) {
      if (error instanceof ClosedError || this.#closed) throw error instanceof ClosedError ? error : new ClosedError();
      if (signal.aborted) {
        throw new ResolveError(
          `${target.hostname}: ${operation} of Cloud Map service "${target.service}" in namespace "${target.namespace}" was aborted`,
          { hostname: target.hostname, cause: signal.reason },
        );
      }
      throw toSignpostError(error, operation, target, Math.max(attempts, 1));
    }
  }

  async #attempt<Output>(signal: AbortSignal, send: (abortSignal: AbortSignal) => Promise<Output>): Promise<Output> {
    // Each attempt has its own deadline so a hung connection is retried, not waited on forever.
    const controller = new AbortController();
    const timer = this.clock.setTimeout(() => controller.abort(new AttemptTimeoutError('Cloud Map call timed out')), this.#timeout);
    const onAbort = (): void => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await send(controller.signal);
    } catch (error) {
      if (controller.signal.aborted && !signal.aborted) throw controller.signal.reason;
      if (error instanceof TypeError && statusOf(error) === undefined) throw new NetworkError(error.message, { cause: error });
      throw error;
    } finally {
      this.clock.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  #load(): Promise<{ client: ServiceDiscoveryClient; sdk: Sdk }> {
    this.#sdk ??= import('@aws-sdk/client-servicediscovery').then((sdk) => {
      if (this.#given !== undefined) return { client: this.#given, sdk };
      const config: ConstructorParameters<typeof sdk.ServiceDiscoveryClient>[0] = {
        // signpost retries with its own budget and backoff; SDK retries would multiply them.
        maxAttempts: 1,
      };
      if (this.#region !== undefined) config.region = this.#region;
      if (this.#credentials !== undefined) config.credentials = this.#credentials;
      if (this.#endpoint !== undefined) {
        config.endpoint = this.#endpoint;
        // The data API's `data-` host prefix would turn 127.0.0.1 into data-127.0.0.1.
        config.disableHostPrefix = true;
      }
      const client = new sdk.ServiceDiscoveryClient(config);
      if (this.#closed) client.destroy();
      else this.#created = client;
      return { client, sdk };
    });
    // A failed import is retried on the next call rather than remembered forever.
    this.#sdk.catch(() => {
      this.#sdk = undefined;
    });
    return this.#sdk;
  }
}
