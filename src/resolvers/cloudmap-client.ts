/**
 * The Cloud Map data API as signpost uses it: one AWS SDK client, one call budget and the SDK's
 * own retry strategy, shared by every Cloud Map resolver of a Discovery.
 *
 * Who does what: the SDK retries (standard or adaptive mode, `maxAttempts`, full-jitter backoff,
 * its retry quota) and classifies errors; signpost's {@link CallBudget} is spent by every attempt,
 * retries included, adapts its rate to throttling and stretches the poll interval to match; this
 * file turns failures into SignpostErrors that name the service, the region and what to check,
 * and never carry a credential.
 */
import type {
  DiscoverInstancesRequest,
  DiscoverInstancesResponse,
  ServiceDiscoveryClient,
} from '@aws-sdk/client-servicediscovery';
import type { FinalizeHandler, MetadataBearer } from '@smithy/types';
import { systemClock, type Clock } from '../clock.ts';
import { channels, type CloudMapCallEvent, type CloudMapOperation, type CloudMapRetryEvent, type CloudMapThrottledEvent } from '../diagnostics.ts';
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
import { CallBudget, MAX_STRETCH, type CallBudgetSnapshot, type CallPriority } from './cloudmap-budget.ts';

export const CLOUD_MAP_HEALTH_STATUSES: readonly CloudMapHealthStatus[] = [
  'HEALTHY',
  'UNHEALTHY',
  'ALL',
  'HEALTHY_OR_ELSE_ALL',
];
export const DEFAULT_CLOUD_MAP_HEALTH_STATUS: CloudMapHealthStatus = 'HEALTHY_OR_ELSE_ALL';
export const DEFAULT_POLL_INTERVAL_MS = 5000;
export const DEFAULT_FULL_REFRESH_INTERVAL_MS = 30_000;
/** 0: a service with health checks gets a full DiscoverInstances at every poll. */
export const DEFAULT_HEALTH_REFRESH_INTERVAL_MS = 0;
export const DEFAULT_MAX_CALLS_PER_SECOND = 50;
/** The SDK's own default: 3 attempts. */
export const DEFAULT_CLOUD_MAP_RETRIES = 2;
/** The SDK's base for errors other than throttling (throttled calls back off from 1 s). */
export const DEFAULT_RETRY_DELAY_MS = 50;
export const DEFAULT_CLOUD_MAP_TIMEOUT_MS = 5000;
export const DEFAULT_WEIGHT_ATTRIBUTE = 'weight';
/** The most DiscoverInstances returns in one call; the API has no paging beyond it. */
export const MAX_RESULTS = 1000;
/** Polls are spread over ±10 % of the interval, so processes started together drift apart. */
export const POLL_JITTER = 0.1;
/** A first answer's poll comes after 50 to 100 % of the interval: a fleet that starts at once is spread at once. */
export const FIRST_POLL_MIN_SHARE = 0.5;
/** After DiscoverInstancesRevision was denied, it is tried again this often (the policy may be fixed). */
export const REVISION_RECHECK_MS = 15 * 60_000;
const MAX_INTERVAL_MS = 3_600_000;
/** The SDK's retry header: `attempt=2; max=3`. */
const REQUEST_HEADER = 'amz-sdk-request';

const CLOUD_MAP_OPTION_KEYS = [
  'region',
  'endpoint',
  'hostPrefix',
  'client',
  'credentials',
  'ownerAccount',
  'healthStatus',
  'pollInterval',
  'fullRefreshInterval',
  'healthRefreshInterval',
  'maxCallsPerSecond',
  'retries',
  'retryMode',
  'retryDelay',
  'timeout',
  'weightAttribute',
] as const;

const ACCOUNT_ID = /^\d{12}$/;

/** Checks an AWS account id (`ownerAccount`): twelve digits. */
export function checkAccountId(path: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !ACCOUNT_ID.test(value)) throw invalid(path, value, 'a 12-digit AWS account id');
}

/** The `cloudMap` option with its defaults applied: what {@link CloudMapClient} runs on. */
export interface CloudMapSettings {
  readonly healthStatus: CloudMapHealthStatus;
  readonly pollInterval: number;
  readonly fullRefreshInterval: number;
  readonly healthRefreshInterval: number;
  /** The custom attribute read as an instance's weight. */
  readonly weightAttribute: string;
  readonly ownerAccount: string | undefined;
  /** The caller's own client, if given. */
  readonly client: ServiceDiscoveryClient | undefined;
  readonly region: string | undefined;
  readonly endpoint: string | undefined;
  readonly hostPrefix: boolean;
  readonly credentials: CloudMapOptions['credentials'];
  readonly retries: number;
  readonly retryMode: 'standard' | 'adaptive';
  readonly retryDelay: number;
  readonly timeout: number;
  readonly maxCallsPerSecond: number;
}

/**
 * Checks `cloudMap` options and applies their defaults; throws InvalidArgumentError
 * (SIGNPOST_ERR_INVALID_ARG) naming the bad one.
 */
export function parseCloudMapOptions(value: unknown, path = 'cloudMap'): CloudMapSettings {
  checkCloudMapOptions(value, path);
  const options = value;
  return Object.freeze({
    healthStatus: options.healthStatus ?? DEFAULT_CLOUD_MAP_HEALTH_STATUS,
    pollInterval: options.pollInterval ?? DEFAULT_POLL_INTERVAL_MS,
    fullRefreshInterval: options.fullRefreshInterval ?? DEFAULT_FULL_REFRESH_INTERVAL_MS,
    healthRefreshInterval: options.healthRefreshInterval ?? DEFAULT_HEALTH_REFRESH_INTERVAL_MS,
    weightAttribute: options.weightAttribute ?? DEFAULT_WEIGHT_ATTRIBUTE,
    ownerAccount: options.ownerAccount,
    client: options.client,
    region: options.region,
    endpoint: options.endpoint,
    hostPrefix: options.hostPrefix ?? (options.endpoint !== undefined && isAwsApiHost(new URL(options.endpoint).hostname)),
    credentials: options.credentials,
    retries: options.retries ?? DEFAULT_CLOUD_MAP_RETRIES,
    retryMode: options.retryMode ?? 'standard',
    retryDelay: options.retryDelay ?? DEFAULT_RETRY_DELAY_MS,
    timeout: options.timeout ?? DEFAULT_CLOUD_MAP_TIMEOUT_MS,
    maxCallsPerSecond: options.maxCallsPerSecond ?? DEFAULT_MAX_CALLS_PER_SECOND,
  });
}

function checkCloudMapOptions(options: unknown, path: string): asserts options is CloudMapOptions {
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
    // Credentials in the URL would be sent in the clear to logs and errors.
    if (url.username !== '' || url.password !== '') {
      throw new InvalidArgumentError(`Invalid ${path}.endpoint: expected a URL without user name or password`);
    }
  }
  if (o.hostPrefix !== undefined && typeof o.hostPrefix !== 'boolean') throw invalid(`${path}.hostPrefix`, o.hostPrefix, 'true or false');
  if (o.client !== undefined) {
    const client = o.client as { send?: unknown; middlewareStack?: unknown } | null;
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
  if (o.ownerAccount !== undefined) checkAccountId(`${path}.ownerAccount`, o.ownerAccount);
  if (o.healthStatus !== undefined) checkOneOf(`${path}.healthStatus`, o.healthStatus, CLOUD_MAP_HEALTH_STATUSES);
  if (o.pollInterval !== undefined) {
    checkDuration(`${path}.pollInterval`, o.pollInterval, 100);
    if (o.pollInterval > MAX_INTERVAL_MS) throw invalid(`${path}.pollInterval`, o.pollInterval, 'at most 3600000');
  }
  for (const key of ['fullRefreshInterval', 'healthRefreshInterval'] as const) {
    const value = o[key];
    if (value === undefined) continue;
    checkDuration(`${path}.${key}`, value, 0);
    if (value > MAX_INTERVAL_MS) throw invalid(`${path}.${key}`, value, 'at most 3600000');
  }
  if (o.maxCallsPerSecond !== undefined) checkNumber(`${path}.maxCallsPerSecond`, o.maxCallsPerSecond, 0.1, 10_000);
  if (o.retries !== undefined) checkInteger(`${path}.retries`, o.retries, 0, 10);
  if (o.retryMode !== undefined) checkOneOf(`${path}.retryMode`, o.retryMode, ['standard', 'adaptive']);
  if (o.retryDelay !== undefined) {
    checkDuration(`${path}.retryDelay`, o.retryDelay, 1);
    if (o.retryDelay > 60_000) throw invalid(`${path}.retryDelay`, o.retryDelay, 'at most 60000');
  }
  if (o.timeout !== undefined) checkDuration(`${path}.timeout`, o.timeout, 1);
  if (o.weightAttribute !== undefined) checkString(`${path}.weightAttribute`, o.weightAttribute);
}

/** The Cloud Map service a call is about. */
export interface CloudMapTarget {
  /** The namespace's HttpName (DiscoverInstances' `NamespaceName`). */
  readonly namespace: string;
  readonly service: string;
  /** The account that owns a namespace shared with this one (AWS RAM); sent as `OwnerAccount`. */
  readonly ownerAccount?: string | undefined;
  /** The name signpost was asked for, for error messages. */
  readonly hostname: string;
}

export interface DiscoverInstancesInput {
  healthStatus: CloudMapHealthStatus;
  queryParameters?: Record<string, string> | undefined;
  optionalParameters?: Record<string, string> | undefined;
}

type Operation = CloudMapOperation;

const { cloudMapCall: callChannel, cloudMapRetry: retryChannel, cloudMapThrottled: throttledChannel } = channels;

type Sdk = typeof import('@aws-sdk/client-servicediscovery');
type Retry = typeof import('@smithy/core/retry');

/** Errors that say the credentials themselves are missing, wrong or expired. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialsProviderError',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'ExpiredToken',
  'ExpiredTokenException',
  'NotAuthorized',
]);

/** Errors that say the credentials are fine but the role may not make this call. */
const ACCESS_DENIED_ERRORS = new Set(['AccessDenied', 'AccessDeniedException']);

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
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

function errorName(error: unknown): string {
  const e = error as AwsErrorLike | null;
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  return typeof e?.name === 'string' && /^[\w.:-]{1,100}$/.test(e.name) ? e.name : 'Error';
}

function statusOf(error: unknown): number | undefined {
  const status = (error as AwsErrorLike | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function requestIdOf(error: unknown): string | undefined {
  const id = (error as AwsErrorLike | null)?.$metadata?.requestId;
  return typeof id === 'string' && /^[\w-]{1,128}$/.test(id) ? id : undefined;
}

/** "(RequestLimitExceeded, HTTP 429, request id …)": what an operator needs to look it up, nothing secret. */
function describeFailure(error: unknown): string {
  const parts = [errorName(error)];
  const status = statusOf(error);
  if (status !== undefined) parts.push(`HTTP ${status}`);
  const id = requestIdOf(error);
  if (id !== undefined) parts.push(`request id ${id}`);
  return parts.join(', ');
}

/**
 * What may travel as `cause`. The SDK's error carries AWS's message, which for
 * SignatureDoesNotMatch echoes the canonical request (session token included); a credential
 * provider's error may quote a token, a profile's secret or a URL with one; loggers print causes
 * and their causes. So no message and no nested cause is kept: only the error's name, HTTP
 * status, request id and code.
 */
function safeCause(error: unknown): Error {
  const cause = new Error(describeFailure(error));
  cause.name = errorName(error);
  const code = (error as AwsErrorLike | null)?.code;
  if (typeof code === 'string' && /^[\w-]{1,64}$/.test(code)) (cause as Error & { code?: string }).code = code;
  const status = statusOf(error);
  if (status !== undefined) (cause as Error & { statusCode?: number }).statusCode = status;
  return cause;
}

function isAccessDenied(error: unknown): boolean {
  const name = errorName(error);
  return ACCESS_DENIED_ERRORS.has(name) || (statusOf(error) === 403 && !CREDENTIAL_ERRORS.has(name));
}

function permissionOf(operation: Operation): string {
  return `servicediscovery:${operation}`;
}

/** `Cloud Map service "orders" in namespace "myapp.local"`, for messages. */
export function where(target: CloudMapTarget): string {
  const owner = target.ownerAccount === undefined ? '' : ` owned by account ${target.ownerAccount}`;
  return `Cloud Map service "${target.service}" in namespace "${target.namespace}"${owner}`;
}

/**
 * The Cloud Map client shared by every Cloud Map resolver of one Discovery: it loads the AWS SDK
 * on first use, lets the SDK retry, spends one call budget for all services, and decides how
 * long each answer is good for (the poll interval, jittered and stretched under throttling).
 */
export class CloudMapClient {
  readonly options: CloudMapSettings;
  readonly clock: Clock;
  readonly #given: ServiceDiscoveryClient | undefined;
  readonly #region: string | undefined;
  readonly #endpoint: string | undefined;
  readonly #hostPrefix: boolean;
  readonly #credentials: CloudMapOptions['credentials'];
  readonly #retries: number;
  readonly #retryMode: 'standard' | 'adaptive';
  readonly #retryDelay: number;
  readonly #timeout: number;
  readonly #budget: CallBudget;
  readonly #random: () => number;
  /** Targets resolved lately → when: the demand the budget plans for. */
  readonly #active = new Map<string, number>();
  #activePrunedAt = Number.NEGATIVE_INFINITY;
  readonly #warned = new Set<string>();
  #revisionDeniedAt = Number.NEGATIVE_INFINITY;
  #sdk: Promise<{ client: ServiceDiscoveryClient; sdk: Sdk; retry: Retry }> | undefined;
  #created: ServiceDiscoveryClient | undefined;
  #closed = false;

  constructor(settings: CloudMapSettings, clock: Clock = systemClock, random: () => number = Math.random) {
    this.clock = clock;
    this.#random = random;
    this.options = settings;
    this.#given = settings.client;
    this.#region = settings.region;
    this.#endpoint = settings.endpoint;
    this.#hostPrefix = settings.hostPrefix;
    this.#credentials = settings.credentials;
    this.#retries = settings.retries;
    this.#retryMode = settings.retryMode;
    this.#retryDelay = settings.retryDelay;
    this.#timeout = settings.timeout;
    this.#budget = new CallBudget(settings.maxCallsPerSecond, clock);
  }

  /** The call budget's state: the rate this client may send at and how far polls are stretched. */
  budget(): CallBudgetSnapshot {
    return this.#budget.snapshot();
  }

  /**
   * Records `key` (a name) as in use: the budget plans for polling every name in use. Called as
   * a resolution starts, so the first calls of a cold start already count.
   */
  noteActive(key: string): void {
    const now = this.clock.now();
    this.#active.set(key, now);
    // A name polled at the longest stretch is still in use: keep it counted for that long and more.
    const window = this.options.pollInterval * MAX_STRETCH * 1.5;
    if (now - this.#activePrunedAt >= 1000) {
      this.#activePrunedAt = now;
      for (const [name, at] of this.#active) if (now - at > window) this.#active.delete(name);
    }
    this.#budget.setDemand((this.#active.size * 1000) / this.options.pollInterval);
  }

  /**
   * How long an answer is good for: the poll interval, stretched while Cloud Map throttles,
   * jittered by ±10 % (50 to 100 % for a first answer) so that processes started together never
   * poll together.
   */
  nextPoll(first: boolean): number {
    const interval = this.options.pollInterval * this.#budget.stretch();
    const share = first
      ? FIRST_POLL_MIN_SHARE + (1 - FIRST_POLL_MIN_SHARE) * this.#random()
      : 1 - POLL_JITTER + 2 * POLL_JITTER * this.#random();
    return Math.max(1, Math.round(interval * share));
  }

  /** A random whole number from 0 to `n` - 1 (spreads the full calls of names started together). */
  spread(n: number): number {
    return Math.min(n - 1, Math.floor(this.#random() * n));
  }

  /** False while DiscoverInstancesRevision is denied to this process: every poll is then a full DiscoverInstances. */
  revisionAllowed(): boolean {
    return this.clock.now() - this.#revisionDeniedAt >= REVISION_RECHECK_MS;
  }

  /**
   * DiscoverInstances for one service (MaxResults 1000). `priority`: `follow-up` when it follows
   * a DiscoverInstancesRevision of the same poll, `cold` when the name has no answer yet; both go
   * ahead of other waiting calls (see {@link CallPriority}).
   */
  async discoverInstances(
    target: CloudMapTarget,
    input: DiscoverInstancesInput,
    signal: AbortSignal,
    priority: CallPriority = 'poll',
  ): Promise<DiscoverInstancesResponse> {
    const request: DiscoverInstancesRequest = {
      NamespaceName: target.namespace,
      ServiceName: target.service,
      HealthStatus: input.healthStatus,
      MaxResults: MAX_RESULTS,
    };
    if (target.ownerAccount !== undefined) request.OwnerAccount = target.ownerAccount;
    if (input.queryParameters !== undefined) request.QueryParameters = input.queryParameters;
    if (input.optionalParameters !== undefined) request.OptionalParameters = input.optionalParameters;
    const response = await this.#call<DiscoverInstancesResponse>(
      'DiscoverInstances',
      target,
      signal,
      (sdk) => new sdk.DiscoverInstancesCommand(request),
      priority,
    );
    if ((response.Instances?.length ?? 0) >= MAX_RESULTS) {
      this.#warnOnce(
        `max-results:${target.ownerAccount ?? ''}:${target.namespace}:${target.service}`,
        `${target.hostname}: ${where(target)} returned ${MAX_RESULTS} instances, the most one DiscoverInstances call ` +
          'gives: any more are not served. Split the service, or narrow each name with queryParameters',
        'SIGNPOST_CLOUDMAP_MAX_RESULTS',
      );
    }
    return response;
  }

  /**
   * DiscoverInstancesRevision for one service: the revision, or undefined when Cloud Map gave
   * none or the call is denied to this process (then DiscoverInstances is used alone, with one
   * warning naming the missing permission).
   */
  async discoverInstancesRevision(target: CloudMapTarget, signal: AbortSignal): Promise<number | undefined> {
    const input: { NamespaceName: string; ServiceName: string; OwnerAccount?: string } = {
      NamespaceName: target.namespace,
      ServiceName: target.service,
    };
    if (target.ownerAccount !== undefined) input.OwnerAccount = target.ownerAccount;
    try {
      const response = await this.#call<{ InstancesRevision?: number }>('DiscoverInstancesRevision', target, signal, (sdk) => new sdk.DiscoverInstancesRevisionCommand(input));
      return response.InstancesRevision;
    } catch (error) {
      if (error instanceof RevisionDenied) {
        this.#revisionDeniedAt = this.clock.now();
        return undefined;
      }
      throw error;
    }
  }

  /** Stops every waiting call and destroys the SDK client if this object created it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.rejectAll(new ClosedError());
    this.#active.clear();
    this.#created?.destroy();
    this.#created = undefined;
  }

  async #call<Output extends object>(
    operation: Operation,
    target: CloudMapTarget,
    signal: AbortSignal,
    command: (sdk: Sdk) => unknown,
    priority: CallPriority = 'poll',
  ): Promise<Output> {
    if (this.#closed) throw new ClosedError();
    if (signal.aborted) throw this.#aborted(operation, target, signal);
    let loaded: { client: ServiceDiscoveryClient; sdk: Sdk; retry: Retry };
    try {
      loaded = await this.#load();
    } catch (error) {
      throw new ResolveError(`${target.hostname}: the AWS SDK for Cloud Map could not be loaded (${errorName(error)}): is @aws-sdk/client-servicediscovery installed?`, {
        hostname: target.hostname,
        cause: safeCause(error),
      });
    }
    if (this.#closed) throw new ClosedError();
    const { client, sdk, retry } = loaded;
    const built = command(sdk) as unknown as Parameters<ServiceDiscoveryClient['send']>[0];
    let attempts = 0;
    let lastFailure: { error: unknown; at: number } | undefined;
    const middleware = (next: FinalizeHandler<object, MetadataBearer>): FinalizeHandler<object, MetadataBearer> => async (args) => {
      await this.#budget.take(signal, priority);
      if (this.#closed) throw new ClosedError();
      attempts += 1;
      if (lastFailure !== undefined && retryChannel.hasSubscribers) {
        const header = (args.request as { headers?: Record<string, string> } | undefined)?.headers?.[REQUEST_HEADER];
        const max = Number(/max=(\d+)/.exec(header ?? '')?.[1] ?? attempts);
        retryChannel.publish({
          operation,
          namespace: target.namespace,
          service: target.service,
          attempt: attempts - 1,
          retriesLeft: Math.max(0, max - attempts),
          delay: this.clock.now() - lastFailure.at,
          error: errorName(lastFailure.error),
          statusCode: statusOf(lastFailure.error),
        } satisfies CloudMapRetryEvent);
      }
      if (callChannel.hasSubscribers) {
        callChannel.publish({ operation, namespace: target.namespace, service: target.service, attempt: attempts } satisfies CloudMapCallEvent);
      }
      try {
        const output = await next(args);
        this.#budget.answered();
        return output;
      } catch (error) {
        lastFailure = { error, at: this.clock.now() };
        if (retry.isThrottlingError(error as Parameters<Retry['isThrottlingError']>[0])) this.#throttled(operation, target);
        else if (statusOf(error) !== undefined) this.#budget.answered();
        throw error;
      }
    };
    // Runs once per attempt (it sits after the SDK's retry middleware): every attempt spends the
    // budget, and every throttled answer tells it so.
    built.middlewareStack.addRelativeTo(
      middleware as unknown as Parameters<typeof built.middlewareStack.addRelativeTo>[0],
      { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'signpostCallBudget', override: true },
    );
    try {
      return (await client.send(built, { abortSignal: signal })) as Output;
    } catch (error) {
      if (error instanceof ClosedError || this.#closed) throw error instanceof ClosedError ? error : new ClosedError();
      if (signal.aborted) throw this.#aborted(operation, target, signal);
      throw await this.#toSignpostError(error, operation, target, client, retry, Math.max(attempts, 1));
    }
  }

  #throttled(operation: Operation, target: CloudMapTarget): void {
    const cut = this.#budget.throttled();
    if (cut && throttledChannel.hasSubscribers) {
      const { rate, stretch } = this.#budget.snapshot();
      throttledChannel.publish({ operation, namespace: target.namespace, service: target.service, rate, stretch } satisfies CloudMapThrottledEvent);
    }
  }

  #aborted(operation: Operation, target: CloudMapTarget, signal: AbortSignal): ResolveError {
    return new ResolveError(`${target.hostname}: ${operation} of ${where(target)} was aborted`, {
      hostname: target.hostname,
      cause: signal.reason,
    });
  }

  /**
   * Turns whatever a call failed with into the SignpostError the resolver contract allows. AWS
   * messages are never copied: some (SignatureDoesNotMatch) echo the string that was signed.
   */
  async #toSignpostError(
    error: unknown,
    operation: Operation,
    target: CloudMapTarget,
    client: ServiceDiscoveryClient,
    retry: Retry,
    attempts: number,
  ): Promise<SignpostError | RevisionDenied> {
    const { hostname, namespace, service } = target;
    const name = errorName(error);
    const options = { hostname, cause: safeCause(error) };
    const region = await this.#regionOf(client);
    const inRegion = region === undefined ? 'in this region' : `in ${region}`;
    if (name === 'NamespaceNotFound') {
      const owner =
        target.ownerAccount === undefined
          ? 'if the namespace is shared from another account (AWS RAM), set ownerAccount to that account'
          : `is it shared with this account by ${target.ownerAccount} (ownerAccount)?`;
      return new NotFoundError(
        `${hostname}: Cloud Map has no namespace with the HTTP name "${namespace}" ${inRegion} (${describeFailure(error)}). ` +
          "DiscoverInstances takes the namespace's HttpName, which differs from its name when Cloud Map added a hash " +
          '(aws servicediscovery get-namespace: Properties.HttpProperties.HttpName); set namespace to it. ' +
          `Is the namespace in ${region ?? 'the region this process uses'}? And ${owner}`,
        options,
      );
    }
    if (name === 'ServiceNotFound') {
      return new NotFoundError(
        `${hostname}: Cloud Map has no service "${service}" in namespace "${namespace}" ${inRegion} (${describeFailure(error)}): ` +
          "is the service registered in Cloud Map (for ECS: the service's service registries)?",
        options,
      );
    }
    if (isAccessDenied(error)) {
      const permission = permissionOf(operation);
      this.#warnOnce(
        `denied:${operation}`,
        `signpost: Cloud Map denied ${operation} to this process (${describeFailure(error)}): grant ${permission} ` +
          `to the role it runs as (the ECS task role)${operation === 'DiscoverInstancesRevision' ? '; until then every poll is a full DiscoverInstances' : ''}`,
        'SIGNPOST_CLOUDMAP_ACCESS_DENIED',
      );
      if (operation === 'DiscoverInstancesRevision') return new RevisionDenied();
      return new ResolveError(
        `${hostname}: ${operation} of ${where(target)} was denied (${describeFailure(error)}): grant ${permission} ` +
          '(and servicediscovery:DiscoverInstancesRevision) to the role this process runs as',
        options,
      );
    }
    if (CREDENTIAL_ERRORS.has(name)) {
      return new ResolveError(
        `${hostname}: ${operation} of ${where(target)} was refused (${describeFailure(error)}): check the credential ` +
          'source of this process (task role, AWS_PROFILE, environment), that it is not expired, and the clock',
        options,
      );
    }
    if (/region is missing/i.test(typeof (error as AwsErrorLike | null)?.message === 'string' ? String((error as AwsErrorLike).message) : '')) {
      return new ResolveError(`${hostname}: no AWS region for ${where(target)}: set cloudMap.region or AWS_REGION`, options);
    }
    if (name === 'InvalidInput') {
      return new ResolveError(
        `${hostname}: Cloud Map rejected ${operation} of ${where(target)} as invalid input (${describeFailure(error)}): ` +
          'check the namespace and service names, the parameters and ownerAccount',
        options,
      );
    }
    const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
    if (retry.isThrottlingError(error as Parameters<Retry['isThrottlingError']>[0])) {
      return new ResolveError(
        `${hostname}: Cloud Map ${inRegion} throttled ${operation} of ${where(target)} (${describeFailure(error)}, ${tries}): ` +
          "the account's quota (about 1,000 DiscoverInstances calls a second) is shared by every process of the account; " +
          'signpost slows its polling until the throttling stops. Fewer names in use, a longer cloudMap.pollInterval or ' +
          'healthRefreshInterval, or a quota increase make room',
        options,
      );
    }
    return new ResolveError(
      `${hostname}: ${operation} of ${where(target)} failed after ${tries} (${describeFailure(error)}): ` +
        `check that this process can reach the Cloud Map endpoint ${this.#endpoint === undefined ? inRegion : 'it was given'}`,
      options,
    );
  }

  async #regionOf(client: ServiceDiscoveryClient): Promise<string | undefined> {
    if (this.#region !== undefined) return this.#region;
    try {
      const region = await client.config.region();
      return typeof region === 'string' && /^[a-z0-9-]{1,40}$/.test(region) ? region : undefined;
    } catch {
      return undefined;
    }
  }

  #warnOnce(key: string, message: string, code: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    process.emitWarning(message, { code });
  }

  #load(): Promise<{ client: ServiceDiscoveryClient; sdk: Sdk; retry: Retry }> {
    this.#sdk ??= Promise.all([import('@aws-sdk/client-servicediscovery'), import('@smithy/core/retry')]).then(([sdk, retry]) => {
      if (this.#given !== undefined) return { client: this.#given, sdk, retry };
      const maxAttempts = this.#retries + 1;
      const retryOptions = { maxAttempts, baseDelay: this.#retryDelay };
      const config: ConstructorParameters<typeof sdk.ServiceDiscoveryClient>[0] = {
        maxAttempts,
        retryStrategy:
          this.#retryMode === 'adaptive'
            ? new retry.AdaptiveRetryStrategy(maxAttempts, retryOptions)
            : new retry.StandardRetryStrategy(retryOptions),
        // One attempt's limit: a hung connection fails with TimeoutError and is retried.
        requestHandler: { requestTimeout: this.#timeout, connectionTimeout: this.#timeout, throwOnRequestTimeout: true },
      };
      if (this.#region !== undefined) config.region = this.#region;
      if (this.#credentials !== undefined) config.credentials = this.#credentials;
      if (this.#endpoint !== undefined) {
        config.endpoint = this.#endpoint;
        // The data API's `data-` host prefix would turn 127.0.0.1 into data-127.0.0.1, and a VPC
        // endpoint's name already names the data API.
        config.disableHostPrefix = !this.#hostPrefix;
      }
      const client = new sdk.ServiceDiscoveryClient(config);
      if (this.#closed) client.destroy();
      else this.#created = client;
      return { client, sdk, retry };
    });
    // A failed import is retried on the next call rather than remembered forever.
    this.#sdk.catch(() => {
      this.#sdk = undefined;
    });
    return this.#sdk;
  }
}

/** DiscoverInstancesRevision was denied: the resolver falls back to DiscoverInstances alone. */
class RevisionDenied extends Error {
  override readonly name = 'RevisionDenied';
}

/**
 * An AWS API host of Cloud Map (`servicediscovery.us-east-1.amazonaws.com`,
 * `servicediscovery-fips.us-east-1.amazonaws.com`, `…api.aws`): the data API lives at `data-`
 * in front of it, so the SDK's host prefix is wanted.
 */
function isAwsApiHost(host: string): boolean {
  return /^servicediscovery(-fips)?\.[a-z0-9-]+\.(amazonaws\.com(\.cn)?|api\.aws)$/.test(host);
}
