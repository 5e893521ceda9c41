/** Validation of `services` and `namespaces` entries. */
import { validateStaticInstances } from './resolvers/static.ts';
import {
  checkHostname,
  checkKeys,
  checkObject,
  checkOneOf,
  checkPort,
  checkString,
  invalid,
} from './validate.ts';

const VIA = ['dns', 'srv', 'cloudmap', 'static'] as const;
const HEALTH = ['HEALTHY', 'UNHEALTHY', 'ALL', 'HEALTHY_OR_ELSE_ALL'] as const;

function checkStringMap(path: string, value: unknown): void {
  checkObject(path, value);
  for (const [k, v] of Object.entries(value)) checkString(`${path}.${k}`, v);
}

function checkCloudMapFilters(at: string, config: Record<string, unknown>): void {
  if (config.healthStatus !== undefined) checkOneOf(`${at}.healthStatus`, config.healthStatus, HEALTH);
  if (config.queryParameters !== undefined) checkStringMap(`${at}.queryParameters`, config.queryParameters);
  if (config.optionalParameters !== undefined) checkStringMap(`${at}.optionalParameters`, config.optionalParameters);
}

function checkDnsConfig(at: string, config: Record<string, unknown>): void {
  if (config.port !== undefined) checkPort(`${at}.port`, config.port);
  if (config.family !== undefined) checkOneOf(`${at}.family`, config.family, [4, 6, 'any']);
}

export function validateServices(value: unknown, path = 'services'): void {
  checkObject(path, value);
  for (const [name, config] of Object.entries(value)) {
    const at = `${path}[${JSON.stringify(name)}]`;
    checkHostname(`${path} key`, name);
    checkObject(at, config);
    checkOneOf(`${at}.via`, config.via, VIA);
    switch (config.via) {
      case 'dns':
        checkKeys(at, config, ['via', 'port', 'family']);
        checkDnsConfig(at, config);
        break;
      case 'srv':
        checkKeys(at, config, ['via', 'srv']);
        if (config.srv !== undefined) checkHostname(`${at}.srv`, config.srv);
        break;
      case 'cloudmap':
        checkKeys(at, config, ['via', 'namespace', 'service', 'healthStatus', 'queryParameters', 'optionalParameters']);
        checkHostname(`${at}.namespace`, config.namespace);
        checkString(`${at}.service`, config.service);
        checkCloudMapFilters(at, config);
        break;
      case 'static':
        checkKeys(at, config, ['via', 'instances']);
        validateStaticInstances(`${at}.instances`, config.instances);
        if ((config.instances as unknown[]).length === 0) {
          throw invalid(`${at}.instances`, config.instances, 'at least one instance');
        }
        break;
    }
  }
}

export function validateNamespaces(value: unknown, path = 'namespaces'): void {
  checkObject(path, value);
  for (const [suffix, config] of Object.entries(value)) {
    const at = `${path}[${JSON.stringify(suffix)}]`;
    checkHostname(`${path} key`, suffix);
    checkObject(at, config);
    checkOneOf(`${at}.via`, config.via, ['dns', 'srv', 'cloudmap']);
    switch (config.via) {
      case 'dns':
        checkKeys(at, config, ['via', 'port', 'family']);
        checkDnsConfig(at, config);
        break;
      case 'srv':
        checkKeys(at, config, ['via', 'srvPrefix']);
        if (config.srvPrefix !== undefined) checkHostname(`${at}.srvPrefix`, config.srvPrefix);
        break;
      case 'cloudmap':
        checkKeys(at, config, ['via', 'namespace', 'healthStatus', 'queryParameters', 'optionalParameters']);
        if (config.namespace !== undefined) checkHostname(`${at}.namespace`, config.namespace);
        checkCloudMapFilters(at, config);
        break;
    }
  }
}
