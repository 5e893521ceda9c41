/**
 * Where the caller and its instances run: the caller's availability zone (given, from
 * `SIGNPOST_ZONE`, or read from the ECS task metadata endpoint), and the zone of an address by
 * the `subnets` map. Zone affinity uses both.
 */
import { get } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { InvalidArgumentError } from './errors.ts';
import { checkString, describe, isPlainObject } from './validate.ts';

/** How long reading the ECS task metadata may take, in milliseconds. */
export const DEFAULT_ZONE_TIMEOUT_MS = 1000;
/** The task metadata document is a few kilobytes; more than this is not one. */
const MAX_METADATA_BYTES = 1_048_576;

export interface ResolveCallerZoneOptions {
  /**
   * A zone name, or `'auto'` to read it from the ECS task metadata (v4) endpoint.
   * @default the `SIGNPOST_ZONE` environment variable (a name or 'auto'), else no zone
   */
  zone?: string | undefined;
  /** The environment to read `SIGNPOST_ZONE` and `ECS_CONTAINER_METADATA_URI_V4` from. @default process.env */
  env?: NodeJS.ProcessEnv | undefined;
  /** How long the metadata request may take, in milliseconds. @default 1000 */
  timeout?: number | undefined;
}

/**
 * The caller's availability zone, or undefined when it is not known (no zone affinity then).
 *
 * `'auto'` reads `AvailabilityZone` from `${ECS_CONTAINER_METADATA_URI_V4}/task`; without that
 * variable (not on ECS) it yields undefined at once. A failure emits one warning with code
 * `SIGNPOST_ZONE` and yields undefined: it never rejects.
 */
export async function resolveCallerZone(options: ResolveCallerZoneOptions = {}): Promise<string | undefined> {
  const env = options.env ?? process.env;
  const zone = options.zone ?? (env.SIGNPOST_ZONE || undefined);
  if (zone !== 'auto') return zone;
  const base = env.ECS_CONTAINER_METADATA_URI_V4;
  if (!base) {
    warn(
      "zone is 'auto' but ECS_CONTAINER_METADATA_URI_V4 is not set (not running on ECS?): " +
        'routing ignores zones; set zone (or SIGNPOST_ZONE) to the zone name to keep traffic in it',
    );
    return undefined;
  }
  const url = `${base.replace(/\/+$/, '')}/task`;
  try {
    const body = await getText(url, options.timeout ?? DEFAULT_ZONE_TIMEOUT_MS);
    const task = JSON.parse(body) as unknown;
    const found = isPlainObject(task) ? task.AvailabilityZone : undefined;
    if (typeof found !== 'string' || found === '') {
      warn(`the ECS task metadata at ${url} has no AvailabilityZone: routing ignores zones; set zone to the zone name`);
      return undefined;
    }
    return found;
  } catch (error) {
    warn(
      `could not read the caller's zone from the ECS task metadata at ${url} (${error instanceof Error ? error.message : String(error)}): ` +
        'routing ignores zones; check that the task can reach its metadata endpoint, or set zone to the zone name',
    );
    return undefined;
  }
}

function warn(message: string): void {
  process.emitWarning(`signpost: ${message}`, { code: 'SIGNPOST_ZONE' });
}

function getText(url: string, timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = get(url, { signal: AbortSignal.timeout(timeout) }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`HTTP ${response.statusCode}`));
        return;
      }
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_METADATA_BYTES) request.destroy(new Error('the response is too large'));
      });
      response.on('end', () => resolve(body));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

/** The `zone` and `subnets` options, checked. */
export interface ZoneSettings {
  /** The caller's zone as given (a name, or 'auto'); undefined: `SIGNPOST_ZONE`, else none. */
  readonly zone: string | undefined;
  /** The zone of an address by `subnets`; undefined without `subnets`. */
  readonly zoneOf: ((address: string) => string | undefined) | undefined;
}

/** Checks the `zone` and `subnets` options; throws InvalidArgumentError naming the bad one. */
export function parseZoneOptions(options: { zone?: unknown; subnets?: unknown }): ZoneSettings {
  if (options.zone !== undefined) checkString('zone', options.zone);
  return Object.freeze({
    zone: options.zone as string | undefined,
    zoneOf: options.subnets === undefined ? undefined : createSubnetMatcher(options.subnets as Record<string, string>),
  });
}

interface SubnetEntry {
  readonly prefix: number;
  readonly zone: string;
  readonly list: BlockList;
}

/**
 * A function giving the zone of an IPv4 or IPv6 address by the `subnets` map
 * (`{ '10.0.1.0/24': 'us-east-1a', 'fd00:1::/64': 'us-east-1a' }`), or undefined when no subnet
 * has it. When subnets overlap, the most specific (longest prefix) wins. IPv4-mapped IPv6
 * addresses (`::ffff:10.0.1.5`) match IPv4 subnets.
 *
 * @throws InvalidArgumentError naming the key, for a key that is not a CIDR or a zone that is
 *   not a non-empty string.
 */
export function createSubnetMatcher(subnets: Record<string, string>): (address: string) => string | undefined {
  if (!isPlainObject(subnets)) {
    throw new InvalidArgumentError(`Invalid subnets: got ${describe(subnets)}; expected an object of CIDR → zone name`);
  }
  const groups = new Map<string, SubnetEntry>();
  for (const [cidr, zone] of Object.entries(subnets)) {
    const path = `subnets[${JSON.stringify(cidr)}]`;
    checkString(path, zone);
    const { address, prefix, family } = parseCidr(cidr, path);
    // One list per prefix length and zone: an address matches at most one subnet of a length.
    const key = `${prefix}/${family}/${zone}`;
    let entry = groups.get(key);
    if (entry === undefined) groups.set(key, (entry = { prefix: family === 'ipv4' ? prefix + 96 : prefix, zone, list: new BlockList() }));
    entry.list.addSubnet(address, prefix, family);
  }
  const entries = [...groups.values()].sort((a, b) => b.prefix - a.prefix);
  return (address) => {
    const version = isIP(address);
    if (version === 0) return undefined;
    const family = version === 4 ? 'ipv4' : 'ipv6';
    for (const entry of entries) if (entry.list.check(address, family)) return entry.zone;
    return undefined;
  };
}

function parseCidr(cidr: string, path: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const slash = cidr.lastIndexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const bits = slash < 0 ? '' : cidr.slice(slash + 1);
  const version = isIP(address);
  const max = version === 4 ? 32 : 128;
  if (version === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    throw new InvalidArgumentError(
      `Invalid subnets key ${JSON.stringify(cidr)} (${path}): expected a CIDR such as "10.0.1.0/24" or "fd00:1::/64"`,
    );
  }
  return { address, prefix: Number(bits), family: version === 4 ? 'ipv4' : 'ipv6' };
}
