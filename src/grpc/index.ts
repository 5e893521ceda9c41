/**
 * `signpost/grpc`: the grpc-js resolver. Its own entry point, so that `import 'signpost'` never
 * loads `@grpc/grpc-js` (an optional peer dependency): only importing this module does.
 *
 *   import { registerGrpcResolver } from 'signpost/grpc';
 *   registerGrpcResolver({ discovery });
 *   new grpc.Client('signpost:///orders.myapp.local:50051', grpc.credentials.createInsecure());
 */
import '../assert-node.ts';
import { experimental } from '@grpc/grpc-js';
import { Discovery } from '../discovery.ts';
import { InvalidArgumentError } from '../errors.ts';
import { checkKeys, checkObject, describe as describeValue } from '../validate.ts';
import { registrations, SignpostGrpcResolver } from './resolver.ts';

export { DEFAULT_GRPC_PORT, NAME_ATTRIBUTE, ZONES_ATTRIBUTE } from './resolver.ts';

/** The schemes grpc-js resolves itself: taking one over would reroute every channel that uses it. */
const RESERVED_SCHEMES: readonly string[] = ['dns', 'unix', 'unix-abstract', 'ipv4', 'ipv6', 'xds', 'google-c2p'];

export interface GrpcResolverOptions {
  /** The Discovery whose instances channels of this scheme get (not closed by signpost). */
  discovery: Discovery;
  /**
   * The URI scheme of the targets it resolves: `signpost:///orders.myapp.local:50051`. A
   * letter, then letters, digits, `+`, `-` or `.`; not one of grpc-js's own (`dns`, `unix`,
   * `ipv4`, `ipv6`, …). Register one scheme per Discovery to use several.
   * @default 'signpost'
   */
  scheme?: string;
}

/**
 * Registers the signpost resolver with grpc-js for `scheme`: channels to
 * `<scheme>:///<name>[:<port>]` get the instances of `name` from `discovery`, with their ports
 * (the target's port, else 443, for instances the registry gives none for), and every change to
 * them, for grpc-js's load balancing (round_robin, unless the channel's `grpc.service_config` picks
 * another policy). Registering a scheme again moves it to the new Discovery for channels made
 * from then on. Returns the function that unregisters it: channels made afterwards fail with
 * UNAVAILABLE saying so.
 */
export function registerGrpcResolver(options: GrpcResolverOptions): () => void {
  const raw: unknown = options;
  checkObject('options', raw);
  checkKeys('', raw, ['discovery', 'scheme']);
  if (!(raw.discovery instanceof Discovery)) {
    throw new InvalidArgumentError(
      `Invalid discovery for registerGrpcResolver(): got ${describeValue(raw.discovery)}; expected a Discovery (new Discovery({ ... }))`,
    );
  }
  const scheme = raw.scheme ?? 'signpost';
  if (typeof scheme !== 'string' || !/^[a-z][a-z0-9+.-]*$/i.test(scheme) || RESERVED_SCHEMES.includes(scheme.toLowerCase())) {
    throw new InvalidArgumentError(
      `Invalid scheme for registerGrpcResolver(): got ${describeValue(scheme)}; expected a URI scheme (a letter, then letters, digits, ` +
        `"+", "-" or "."), not one grpc-js resolves itself (${RESERVED_SCHEMES.join(', ')})`,
    );
  }
  const discovery = raw.discovery;
  let zone: string | undefined;
  discovery.zone.then(
    (found) => (zone = found),
    () => undefined,
  );
  const registration = { discovery, zone: () => zone };
  registrations.set(scheme, registration);
  experimental.registerResolver(scheme, SignpostGrpcResolver as unknown as Parameters<typeof experimental.registerResolver>[1]);
  return () => {
    if (registrations.get(scheme) === registration) registrations.delete(scheme);
  };
}
