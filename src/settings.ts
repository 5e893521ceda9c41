/**
 * {@link DiscoveryOptions} parsed once, in the constructor, into the settings Discovery runs on.
 * Each area parses its own option (`parseCacheOptions` beside the cache, `parseEjectionOptions`
 * beside the health tracker, …): one pass that checks every value, throwing
 * InvalidArgumentError (SIGNPOST_ERR_INVALID_ARG) that names the option, the value and what is
 * valid, and returns a frozen copy with every default applied. The classes behind Discovery take
 * those settings as they are and check nothing again.
 */
import { AddressPolicy, parseAddressOptions } from './address-policy.ts';
import { parseBalancerOptions, type BalancerSettings } from './balancers/index.ts';
import { parseCacheOptions, type CacheSettings } from './cache.ts';
import type { Clock } from './clock.ts';
import { parseDnsOptions } from './dns/client.ts';
import { InvalidArgumentError } from './errors.ts';
import { parseEjectionOptions, type EjectionSettings } from './health.ts';
import type { DiscoveryOptions, DnsOptions, NamespaceConfig, ServiceConfig } from './options.ts';
import { parseCloudMapOptions, type CloudMapSettings } from './resolvers/cloudmap-client.ts';
import { parseStaticOverride } from './resolvers/static.ts';
import { parseAliases, type Aliases } from './routing.ts';
import { parseNamespaces, parseServices } from './service-config.ts';
import { checkClock, checkKeys, checkObject, checkOneOf, isPlainObject } from './validate.ts';
import { parseZoneOptions, type ZoneSettings } from './zone.ts';

/** Every option of {@link DiscoveryOptions}, checked and with its defaults. */
export interface DiscoverySettings {
  /** By normalized name, `SIGNPOST_STATIC` applied. */
  readonly services: Readonly<Record<string, ServiceConfig>>;
  readonly namespaces: Readonly<Record<string, NamespaceConfig>>;
  readonly aliases: Aliases;
  readonly unlisted: 'passthrough' | 'dns';
  /** Checked; the defaults that depend on resolv.conf apply when DNS is first used. */
  readonly dns: DnsOptions;
  readonly cloudMap: CloudMapSettings;
  readonly cache: CacheSettings;
  readonly balancer: BalancerSettings;
  readonly ejection: EjectionSettings;
  readonly zone: ZoneSettings;
  readonly clock: Clock | undefined;
  readonly addresses: AddressPolicy;
}

const KNOWN_OPTIONS = [
  'services',
  'namespaces',
  'aliases',
  'unlisted',
  'dns',
  'cloudMap',
  'cache',
  'balancer',
  'zone',
  'zoneAffinity',
  'subnets',
  'ejection',
  'clock',
  'addresses',
] as const;

/** Parses the options of a Discovery; throws InvalidArgumentError for the first bad one. */
export function parseDiscoveryOptions(value: unknown = {}): DiscoverySettings {
  checkObject('options', value);
  checkKeys('', value, KNOWN_OPTIONS);
  const options = value as DiscoveryOptions;
  const addresses = parseAddressOptions(options.addresses);
  const services = { ...parseServices(options.services === undefined ? {} : options.services) };
  checkStaticAddresses(services, addresses, 'services');
  // Local development: SIGNPOST_STATIC overrides the registry for the names it lists.
  const override = process.env.SIGNPOST_STATIC;
  if (override) {
    for (const [name, instances] of parseStaticOverride(override)) {
      services[name] = Object.freeze({ via: 'static', instances });
      checkStaticAddresses({ [name]: services[name] }, addresses, 'SIGNPOST_STATIC');
    }
  }
  if (options.unlisted !== undefined) checkOneOf('unlisted', options.unlisted, ['passthrough', 'dns']);
  if (options.clock !== undefined) checkClock('clock', options.clock);
  const balancer = parseBalancerOptions(options);
  const cloudMapOptions: unknown = options.cloudMap === undefined ? {} : options.cloudMap;
  const cloudMap = parseCloudMapOptions(
    // One weight attribute: `balancer.weightAttribute` names the one Cloud Map weights are read from.
    balancer.weightAttribute === undefined || !isPlainObject(cloudMapOptions)
      ? cloudMapOptions
      : { weightAttribute: balancer.weightAttribute, ...cloudMapOptions },
  );
  if (balancer.weightAttribute !== undefined && cloudMap.weightAttribute !== balancer.weightAttribute) {
    throw new InvalidArgumentError(
      `Invalid balancer.weightAttribute: ${JSON.stringify(balancer.weightAttribute)} differs from cloudMap.weightAttribute ` +
        `(${JSON.stringify(cloudMap.weightAttribute)}); they are one setting, the attribute instance weights are read from: set it once`,
    );
  }
  return Object.freeze({
    services: Object.freeze(services),
    namespaces: parseNamespaces(options.namespaces === undefined ? {} : options.namespaces),
    aliases: parseAliases(options.aliases),
    unlisted: options.unlisted ?? 'passthrough',
    dns: parseDnsOptions(options.dns === undefined ? {} : options.dns),
    cloudMap,
    cache: parseCacheOptions(options.cache === undefined ? {} : options.cache),
    balancer,
    ejection: parseEjectionOptions(options.ejection),
    zone: parseZoneOptions(options),
    clock: options.clock,
    addresses,
  });
}

/**
 * Static instances must pass the address policy: a static service (or `SIGNPOST_STATIC`) that
 * names a link-local or multicast address is a constructor error, not a silent skip.
 */
function checkStaticAddresses(services: Record<string, ServiceConfig>, policy: AddressPolicy, source: string): void {
  for (const [name, config] of Object.entries(services)) {
    if (config.via !== 'static') continue;
    config.instances.forEach((instance, i) => {
      const reason = policy.refuse(instance.address);
      if (reason === undefined) return;
      const where = source === 'services' ? `services[${JSON.stringify(name)}].instances[${i}].address` : `SIGNPOST_STATIC entry for ${name}`;
      throw new InvalidArgumentError(
        `Invalid ${where}: ${JSON.stringify(instance.address)} is never used as an instance: it is ${reason}`,
        { hostname: name },
      );
    });
  }
}
