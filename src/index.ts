export * from './errors.ts';
export type * from './types.ts';
export type * from './options.ts';
export type { Clock, ClockTimer } from './clock.ts';
export { Discovery, type InstancesChange } from './discovery.ts';
export { instanceKey } from './instance.ts';
