/** Validation of `services` and `namespaces` entries. */
import { validateCloudMapResolverConfig } from './resolvers/cloudmap.ts';
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

const VIA: readonly string[] = ['dns', 'srv', 'cloudmap', 'static'];

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
      validateCloudMapResolverConfig(config, at, ['via']);
      // A service names both; a namespace rule defaults them to its suffix and the first label.
      if (kind === 'service') {
        checkHostname(`${at}.namespace`, config.namespace);
        checkString(`${at}.service`, config.service);
      } else if (config.service !== undefined) {
        throw invalid(`${at}.service`, config.service, 'no service in a namespace rule (it is the first label of each name)');
      }
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

export function validateServices(value: unknown, path = 'services'): void {
  checkObject(path, value);
  for (const [name, config] of Object.entries(value)) {
    checkHostname(`${path} key`, name);
    checkConfig(`${path}[${JSON.stringify(name)}]`, config, 'service');
  }
}

export function validateNamespaces(value: unknown, path = 'namespaces'): void {
  checkObject(path, value);
  for (const [suffix, config] of Object.entries(value)) {
    checkHostname(`${path} key`, suffix);
    checkConfig(`${path}[${JSON.stringify(suffix)}]`, config, 'namespace');
  }
}
