/**
 * Fixed instances, for local development and users' own tests, and the `SIGNPOST_STATIC`
 * environment override (`SIGNPOST_STATIC="api.myapp.local=127.0.0.1:3000,127.0.0.1:3001"`).
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.ts';
import { instanceKey, NO_ATTRIBUTES } from '../instance.ts';
import type { StaticInstance } from '../options.ts';
import { normalizeName } from '../routing.ts';
import type { Instance, Resolution, Resolver } from '../types.ts';
import {
  checkAddress,
  checkHostname,
  checkInteger,
  checkKeys,
  checkObject,
  checkPort,
  checkString,
  invalid,
} from '../validate.ts';

/** Static answers never change; this only bounds how often the cache looks again. */
const STATIC_TTL_MS = 3_600_000;

export function toInstance(config: StaticInstance): Instance {
  const instance: { -readonly [K in keyof Instance]: Instance[K] } = {
    id: config.id ?? instanceKey(config),
    address: config.address,
    weight: config.weight ?? 1,
    priority: config.priority ?? 0,
    attributes: config.attributes === undefined ? NO_ATTRIBUTES : Object.freeze({ ...config.attributes }),
  };
  if (config.port !== undefined) instance.port = config.port;
  if (config.zone !== undefined) instance.zone = config.zone;
  return Object.freeze(instance);
}

export class StaticResolver implements Resolver {
  readonly #resolution: Resolution;

  constructor(instances: readonly StaticInstance[]) {
    this.#resolution = Object.freeze({
      instances: Object.freeze(instances.map(toInstance)),
      ttl: STATIC_TTL_MS,
    });
  }

  resolve(): Promise<Resolution> {
    return Promise.resolve(this.#resolution);
  }
}

export function checkStaticInstances(path: string, value: unknown): asserts value is StaticInstance[] {
  if (!Array.isArray(value)) throw invalid(path, value, 'an array of { address, port }');
  value.forEach((item: unknown, i) => {
    const at = `${path}[${i}]`;
    checkObject(at, item);
    checkKeys(at, item, ['address', 'port', 'zone', 'weight', 'priority', 'id', 'attributes']);
    checkAddress(`${at}.address`, item.address);
    if (item.port !== undefined) checkPort(`${at}.port`, item.port);
    if (item.zone !== undefined) checkString(`${at}.zone`, item.zone);
    if (item.weight !== undefined) checkInteger(`${at}.weight`, item.weight, 0, 65_535);
    if (item.priority !== undefined) checkInteger(`${at}.priority`, item.priority, 0, 65_535);
    if (item.id !== undefined) checkString(`${at}.id`, item.id);
    if (item.attributes !== undefined) {
      checkObject(`${at}.attributes`, item.attributes);
      for (const [k, v] of Object.entries(item.attributes)) checkString(`${at}.attributes.${k}`, v);
    }
  });
}

/**
 * Parses `SIGNPOST_STATIC`: `name=addr:port[,addr:port...]`, several names separated by `;` or
 * white space; IPv6 as `[::1]:3000`. Returns name → instances.
 */
export function parseStaticOverride(text: string): Map<string, StaticInstance[]> {
  const result = new Map<string, StaticInstance[]>();
  const fail = (part: string, why: string) =>
    new InvalidArgumentError(
      `Invalid SIGNPOST_STATIC entry ${JSON.stringify(part)}: ${why}. ` +
        'Expected "name=address:port[,address:port]" entries separated by ";", e.g. ' +
        '"api.myapp.local=127.0.0.1:3000,127.0.0.1:3001;web.myapp.local=[::1]:4000"',
    );
  for (const part of text.split(/[;\s]+/)) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw fail(part, 'no "name=" before the addresses');
    const name = normalizeName(part.slice(0, eq));
    try {
      checkHostname('SIGNPOST_STATIC name', name);
    } catch {
      throw fail(part, `${JSON.stringify(name)} is not a DNS name`);
    }
    const instances: StaticInstance[] = [];
    for (const endpoint of part.slice(eq + 1).split(',')) {
      const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(endpoint);
      const address = match?.[1] ?? match?.[2];
      if (!match || address === undefined || isIP(address) === 0) {
        throw fail(part, `${JSON.stringify(endpoint)} is not an address or address:port`);
      }
      const instance: StaticInstance = { address };
      if (match[3] !== undefined) {
        const port = Number(match[3]);
        if (port < 1 || port > 65_535) throw fail(part, `port ${match[3]} is out of range`);
        instance.port = port;
      }
      instances.push(instance);
    }
    result.set(name, instances);
  }
  return result;
}
