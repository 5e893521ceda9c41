/**
 * A grpc-js name resolver backed by a Discovery: channels to `signpost:///orders.myapp.local:50051`
 * get the instances of `orders.myapp.local` (addresses, and ports from SRV or Cloud Map, else the
 * target's port) as their endpoint list, and a new list on every change, for grpc-js's own load
 * balancing (round_robin unless the channel sets `grpc.service_config`).
 *
 * grpc-js's resolver contract, kept: the listener is never called synchronously with the
 * constructor or `updateResolution()`, nor after `destroy()` until `updateResolution()` is called
 * again; a list is reported when it changes (grpc-js asks again after every failed connection, and
 * rebuilds its subchannels for every list it gets); a failure is reported as UNAVAILABLE (what grpc-js's own DNS resolver reports), with
 * signpost's code and what to check in the details. Both listener APIs are served: the function
 * of grpc-js 1.14 and the `onSuccessfulResolution`/`onError` object of 1.10 to 1.13.
 */
import { Metadata, status, type ChannelOptions, type ServiceConfig, type StatusObject } from '@grpc/grpc-js';
import type { Discovery } from '../discovery.ts';
import { SignpostError } from '../errors.ts';
import { instanceKey } from '../instance.ts';
import { isIpLiteral } from '../routing.ts';
import type { Instance } from '../types.ts';
import { isHostname } from '../validate.ts';

/** The port of instances the registry and the target give none for: grpc-js's own default. */
export const DEFAULT_GRPC_PORT = 443;

/** Attribute keys of a resolution, read by load-balancing policies that care (grpc-js passes them as channel options). */
export const ZONES_ATTRIBUTE = 'signpost.zones';
export const NAME_ATTRIBUTE = 'signpost.name';

/** What grpc-js hands a resolver: the target, parsed. */
interface GrpcUri {
  readonly scheme?: string | undefined;
  readonly authority?: string | undefined;
  readonly path: string;
}

interface TcpAddress {
  host: string;
  port: number;
}

interface Endpoint {
  addresses: TcpAddress[];
}

type StatusOr<T> = { ok: true; value: T } | { ok: false; error: StatusObject };

/** grpc-js 1.14's listener. */
type ListenerFunction = (
  endpoints: StatusOr<Endpoint[]>,
  attributes: Record<string, unknown>,
  serviceConfig: StatusOr<ServiceConfig> | null,
  resolutionNote: string,
) => boolean;

/** The listener of grpc-js 1.10 to 1.13. */
interface ListenerObject {
  onSuccessfulResolution(
    endpoints: Endpoint[],
    serviceConfig: ServiceConfig | null,
    serviceConfigError: StatusObject | null,
    configSelector: null,
    attributes: Record<string, unknown>,
  ): void;
  onError(error: StatusObject): void;
}

const ROUND_ROBIN: ServiceConfig = { loadBalancingConfig: [{ round_robin: {} }], methodConfig: [] };

/** Scheme → the Discovery its channels resolve through. */
export const registrations = new Map<string, { discovery: Discovery; zone: () => string | undefined }>();

/**
 * The name and default port of a target's path (`orders.myapp.local:50051`, `[::1]:50051`);
 * undefined when it is not one. (grpc-js exports its own splitter only from 1.12 on.)
 */
export function parseTarget(target: GrpcUri): { host: string; port: number } | undefined {
  const path = target.path.replace(/^\/+/, '');
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(path);
  if (match === null) return undefined;
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined ? !isIpLiteral(host) : !isIpLiteral(host) && !isHostname(host.toLowerCase().replace(/\.$/, ''))) {
    return undefined;
  }
  const port = match[3] === undefined ? DEFAULT_GRPC_PORT : Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

export class SignpostGrpcResolver {
  readonly #target: GrpcUri;
  readonly #listener: ListenerFunction | ListenerObject;
  readonly #serviceConfig: ServiceConfig | null;
  readonly #parsed: { host: string; port: number } | undefined;
  #unwatch: (() => void) | undefined;
  /** The endpoints last reported (keys and zones), so that an unchanged list is not reported again. */
  #reported: string | undefined;
  #pending = false;
  #destroyed = false;

  constructor(target: GrpcUri, listener: ListenerFunction | ListenerObject, channelOptions: ChannelOptions) {
    this.#target = target;
    this.#listener = listener;
    // A service config of the channel's own (its load-balancing policy) wins over round_robin.
    this.#serviceConfig = channelOptions['grpc.service_config'] ? null : ROUND_ROBIN;
    this.#parsed = parseTarget(target);
  }

  /** The :authority of calls, and the name TLS certificates are checked against: the target's host and port. */
  static getDefaultAuthority(target: GrpcUri): string {
    if (parseTarget(target) === undefined) throw new Error(`signpost: cannot parse gRPC target ${describeTarget(target)}`);
    return target.path.replace(/^\/+/, '');
  }

  updateResolution(): void {
    this.#destroyed = false;
    const parsed = this.#parsed;
    const registration = registrations.get(this.#target.scheme ?? '');
    if (parsed === undefined || registration === undefined) {
      const details =
        parsed === undefined
          ? `signpost: ${describeTarget(this.#target)} is not a valid target: expected ${this.#target.scheme ?? 'signpost'}:///<name>[:<port>], such as signpost:///orders.myapp.local:50051`
          : `signpost: no Discovery is registered for the scheme ${this.#target.scheme}: call registerGrpcResolver({ discovery, scheme: '${this.#target.scheme}' }) before making the channel`;
      setImmediate(() => this.#fail({ code: status.UNAVAILABLE, details, metadata: new Metadata() }));
      return;
    }
    const { discovery } = registration;
    if (this.#unwatch === undefined) {
      try {
        this.#unwatch = discovery.watch(parsed.host, (instances) => {
          if (instances.length > 0) this.#succeed(instances);
          else this.updateResolution();
        });
      } catch (error) {
        setImmediate(() => this.#failWith(error));
        return;
      }
    }
    if (this.#pending) return;
    this.#pending = true;
    // resolve() answers on a later tick at the earliest: never within this call.
    discovery.resolve(parsed.host).then(
      (instances) => {
        this.#pending = false;
        this.#succeed(instances);
      },
      (error: unknown) => {
        this.#pending = false;
        this.#failWith(error);
      },
    );
  }

  destroy(): void {
    this.#destroyed = true;
    this.#reported = undefined;
    this.#unwatch?.();
    this.#unwatch = undefined;
  }

  #succeed(instances: readonly Instance[]): void {
    if (this.#destroyed || this.#parsed === undefined) return;
    const zone = registrations.get(this.#target.scheme ?? '')?.zone();
    const port = this.#parsed.port;
    const zones: Record<string, string> = {};
    const local: Endpoint[] = [];
    const other: Endpoint[] = [];
    const seen = new Set<string>();
    for (const instance of instances) {
      const address = { host: instance.address, port: instance.port ?? port };
      const key = instanceKey({ address: address.host, port: address.port });
      if (seen.has(key)) continue;
      seen.add(key);
      if (instance.zone !== undefined) zones[key] = instance.zone;
      // The caller's zone first: pick_first, the only policy that reads the order, then stays in it.
      (zone !== undefined && instance.zone !== undefined && instance.zone !== zone ? other : local).push({ addresses: [address] });
    }
    const endpoints = local.concat(other);
    // grpc-js asks again whenever a connection fails, and its policies rebuild their children on
    // every list they get: the same list again would only churn connections.
    const reported = JSON.stringify([endpoints, zones]);
    if (reported === this.#reported) return;
    this.#reported = reported;
    const attributes = { [ZONES_ATTRIBUTE]: zones, [NAME_ATTRIBUTE]: this.#parsed.host };
    const listener = this.#listener;
    if (typeof listener === 'function') {
      listener(
        { ok: true, value: endpoints },
        attributes,
        this.#serviceConfig === null ? null : { ok: true, value: this.#serviceConfig },
        '',
      );
    } else {
      listener.onSuccessfulResolution(endpoints, this.#serviceConfig, null, null, attributes);
    }
  }

  #failWith(error: unknown): void {
    const name = this.#parsed?.host ?? describeTarget(this.#target);
    const what =
      error instanceof SignpostError ? `${error.code}: ${error.message}` : `${error instanceof Error ? error.name : typeof error}`;
    this.#fail({
      code: status.UNAVAILABLE,
      details: `Name resolution failed for target ${describeTarget(this.#target)} (${name}): ${what}`,
      metadata: new Metadata(),
    });
  }

  #fail(error: StatusObject): void {
    if (this.#destroyed) return;
    this.#reported = undefined;
    const listener = this.#listener;
    if (typeof listener === 'function') listener({ ok: false, error }, {}, null, error.details);
    else listener.onError(error);
  }
}

function describeTarget(target: GrpcUri): string {
  return `${target.scheme === undefined ? '' : `${target.scheme}:`}${target.authority === undefined ? '' : `//${target.authority}/`}${target.path}`;
}
