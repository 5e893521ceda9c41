import type { Instance } from './types.ts';

/** The attributes of instances the registry says nothing more about: one frozen object for all. */
export const NO_ATTRIBUTES: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The key that identifies an instance's endpoint across services and refreshes: `address:port`
 * (`[v6]:port`), or the bare address when the registry gave no port. Pools and health state
 * are keyed by it.
 */
export function instanceKey(instance: Pick<Instance, 'address' | 'port'>): string {
  const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
  return instance.port === undefined ? host : `${host}:${instance.port}`;
}

/** True when two sets hold the same instances with the same routing-relevant fields, in order. */
export function sameInstances(a: readonly Instance[], b: readonly Instance[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.id !== y.id ||
      x.address !== y.address ||
      x.port !== y.port ||
      x.zone !== y.zone ||
      x.weight !== y.weight ||
      x.priority !== y.priority ||
      x.healthStatus !== y.healthStatus
    ) {
      return false;
    }
  }
  return true;
}
