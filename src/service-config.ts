/** The `services` and `namespaces` options: each entry checked once, and kept as a copy. */
import type { NamespaceConfig, ServiceConfig } from './options.ts';
import { checkStaticInstances } from './resolvers/static.ts';
import { CLOUD_MAP_HEALTH_STATUSES, checkAccountId } from './resolvers/cloudmap-client.ts';
import { normalizeName } from './routing.ts';
import {
  checkHostname,
  checkKeys,
  checkObject,
  checkOneOf,
  checkPort,
  checkString,
  invalid,
} from './validate.ts';

const VIA: readonly string[] = ['dns', 'srv', 'cloudmap', 'static'];

const CLOUD_MAP_KEYS = ['via', 'namespace', 'service', 'healthStatus', 'queryParameters', 'optionalParameters', 'ownerAccount', 'port'] as const;

function checkParameters(path: string, value: unknown): void {
  checkObject(path, value);
  for (const [key, item] of Object.entries(value)) {
    if (key.length === 0 || typeof item !== 'string') throw invalid(`${path}.${key}`, item, 'a string');
  }
}

/** The fields of a `via: 'cloudmap'` entry. */
function checkCloudMap(at: string, config: Record<string, unknown>, kind: 'service' | 'namespace'): void {
  checkKeys(at, config, CLOUD_MAP_KEYS);
  if (config.namespace !== undefined || kind === 'service') checkHostname(`${at}.namespace`, config.namespace);
  if (kind === 'namespace' && config.service !== undefined) {
    // A namespace rule maps each name's first label to its service.
    throw invalid(`${at}.service`, config.service, 'no service in a namespace rule (it is the first label of each name)');
  }
  if (kind === 'service') {
    checkString(`${at}.service`, config.service);
    if (config.service.includes('.')) throw invalid(`${at}.service`, config.service, 'a Cloud Map service name without dots');
  }
  if (config.healthStatus !== undefined) checkOneOf(`${at}.healthStatus`, config.healthStatus, CLOUD_MAP_HEALTH_STATUSES);
  if (config.queryParameters !== undefined) checkParameters(`${at}.queryParameters`, config.queryParameters);
  if (config.optionalParameters !== undefined) checkParameters(`${at}.optionalParameters`, config.optionalParameters);
  if (config.ownerAccount !== undefined) checkAccountId(`${at}.ownerAccount`, config.ownerAccount);
  if (config.port !== undefined) checkPort(`${at}.port`, config.port);
}

/** Checks one `services` entry (`kind: 'service'`) or `namespaces` entry (`kind: 'namespace'`). */
function checkConfig(at: string, config: unknown, kind: 'service' | 'namespace'): void {
  checkObject(at, config);
  checkOneOf(`${at}.via`, config.via, kind === 'service' ? VIA : VIA.filter((v) => v !== 'static'));
  switch (config.via) {
    case 'dns':
      checkKeys(at, config, ['via', 'port', 'family']);
      if (config.port !== undefined) checkPort(`${at}.port`, config.port);
      if (config.family !== undefined) checkOneOf(`${at}.family`, config.family, [4, 6, 'any']);
      break;
    case 'srv': {
      // A service names its SRV record; a namespace rule puts a prefix before each name.
      const field = kind === 'service' ? 'srv' : 'srvPrefix';
      checkKeys(at, config, ['via', field]);
      if (config[field] !== undefined) checkHostname(`${at}.${field}`, config[field]);
      break;
    }
    case 'cloudmap':
      checkCloudMap(at, config, kind);
      break;
    case 'static':
      checkKeys(at, config, ['via', 'instances']);
      checkStaticInstances(`${at}.instances`, config.instances);
      if ((config.instances as unknown[]).length === 0) {
        throw invalid(`${at}.instances`, config.instances, 'at least one instance');
      }
      break;
  }
}

function parseEntries<T>(value: unknown, path: string, kind: 'service' | 'namespace'): Readonly<Record<string, T>> {
  checkObject(path, value);
  const parsed: Record<string, T> = {};
  for (const [name, config] of Object.entries(value)) {
    checkHostname(`${path} key`, name);
    checkConfig(`${path}[${JSON.stringify(name)}]`, config, kind);
    // A copy: changing the caller's object later changes nothing.
    parsed[normalizeName(name)] = Object.freeze(structuredClone(config)) as T;
  }
  return Object.freeze(parsed);
}

/**
 * Checks the `services` option (throws InvalidArgumentError, SIGNPOST_ERR_INVALID_ARG, naming the
 * entry) and returns a copy keyed by normalized name.
 */
export function parseServices(value: unknown, path = 'services'): Readonly<Record<string, ServiceConfig>> {
  return parseEntries<ServiceConfig>(value, path, 'service');
}

/** The same for the `namespaces` option. */
export function parseNamespaces(value: unknown, path = 'namespaces'): Readonly<Record<string, NamespaceConfig>> {
  return parseEntries<NamespaceConfig>(value, path, 'namespace');
}
