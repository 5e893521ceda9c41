// First: on an unsupported Node it throws a clear error before undici is evaluated.
import './assert-node.ts';
export * from './errors.ts';
export type * from './types.ts';
export type * from './options.ts';
export type { Clock, ClockTimer } from './clock.ts';
export { Discovery, type InstancesChange } from './discovery.ts';
export {
  DiscoveryAgent,
  discoveryInterceptor,
  type AgentStats,
  type Attempt,
  type AttemptsInfo,
  type DiscoveryAgentOptions,
  type DiscoveryInterceptor,
  type DiscoveryInterceptorOptions,
  type InstanceStats,
  type PickMessage,
  type PoolCloseMessage,
  type PoolCreateMessage,
  type PoolOptions,
  type RetryBudgetOptions,
  type RetryMessage,
  type RetryOptions,
  type StallMessage,
} from './agent/index.ts';
export type { HealthTracker, HealthStats, InstanceHealth, InstanceHealthStats, FailureKind } from './health.ts';
export { instanceKey } from './instance.ts';
export type { DiscoveryLookup } from './lookup.ts';
export {
  DiscoveryHttpAgent,
  DiscoveryHttpsAgent,
  type ConnectAttempt,
  type DiscoveryHttpAgentOptions,
  type DiscoveryHttpsAgentOptions,
  type DiscoveryNodeAgentOptions,
} from './http-agent.ts';
export type { CloudMapCallEvent, CloudMapRetryEvent, CloudMapSkippedEvent, CloudMapThrottledEvent } from './resolvers/cloudmap.ts';
