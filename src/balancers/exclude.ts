/**
 * Retry exclusion: a retry asks the balancer for an instance it has not tried yet. The policies
 * take `exclude` themselves; these helpers serve the policies and the wrappers.
 */
import { instanceKey } from '../instance.ts';
import type { Instance } from '../types.ts';

/** The keys of a set's instances, worked out once per update so an exclusion check allocates nothing. */
export function keysOf(instances: readonly Instance[]): readonly string[] {
  return instances.map(instanceKey);
}

/** Whether `instance` may be picked under `exclude`. */
export function allowed(instance: Instance | undefined, exclude: ReadonlySet<string> | undefined): boolean {
  return instance !== undefined && (exclude === undefined || exclude.size === 0 || !exclude.has(instanceKey(instance)));
}

/** Any instance of the list not excluded, from a random start; undefined when all are. */
export function anyNotExcluded(instances: readonly Instance[], keys: readonly string[], exclude: ReadonlySet<string>): Instance | undefined {
  const n = instances.length;
  if (n === 0) return undefined;
  const start = Math.floor(Math.random() * n);
  for (let i = 0; i < n; i++) {
    const at = (start + i) % n;
    if (!exclude.has(keys[at]!)) return instances[at];
  }
  return undefined;
}
