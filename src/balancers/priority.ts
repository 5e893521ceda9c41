import type { Instance } from '../types.ts';

/**
 * The instances of the lowest priority present (RFC 2782: a client must try the lowest-numbered
 * priority it can reach). A records all have priority 0, so they all stay.
 */
export function lowestPriority(instances: readonly Instance[]): readonly Instance[] {
  if (instances.length === 0) return instances;
  let lowest = Infinity;
  let mixed = false;
  for (const instance of instances) {
    if (instance.priority !== lowest && lowest !== Infinity) mixed = true;
    if (instance.priority < lowest) lowest = instance.priority;
  }
  return mixed ? instances.filter((instance) => instance.priority === lowest) : instances;
}
