// First: on an unsupported Node it throws a clear error before undici is evaluated.
import './assert-node.ts';
export * from './errors.ts';
export type * from './types.ts';
export type * from './options.ts';
export type { Clock, ClockTimer } from './clock.ts';
export { Discovery, type InstancesChange } from './discovery.ts';
export {
  DiscoveryAgent,
  type AgentStats,
  type DiscoveryAgentOptions,
  type InstanceStats,
  type PickMessage,
  type PoolCloseMessage,
  type PoolCreateMessage,
  type PoolOptions,
  type RetryMessage,
} from './agent.ts';
export { discoveryInterceptor, type DiscoveryInterceptor, type DiscoveryInterceptorOptions } from './interceptor.ts';
export type { RetryBudgetOptions, RetryOptions } from './retry.ts';
export type { HealthTracker, HealthStats, InstanceHealth, InstanceHealthStats, FailureKind } from './health.ts';
export { instanceKey } from './instance.ts';
export type { CloudMapCallEvent, CloudMapRetryEvent, CloudMapSkippedEvent, CloudMapThrottledEvent } from './resolvers/cloudmap.ts';
