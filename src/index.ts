// First: on an unsupported Node it throws a clear error before undici is evaluated.
import './assert-node.ts';
export {
  ClosedError,
  InvalidArgumentError,
  NoInstancesError,
  NotFoundError,
  ResolveError,
  SignpostError,
  type SignpostErrorCode,
  type SignpostErrorOptions,
} from './errors.ts';
export type { Balancer, BalancerFactory, Instance } from './types.ts';
export type * from './options.ts';
export type { Clock, ClockTimer } from './clock.ts';
export { Discovery, type DiscoveryHealth, type InstancesChange } from './discovery.ts';
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
  type PoolOptions,
  type RetryBudgetOptions,
  type RetryOptions,
} from './agent/index.ts';
export type { HealthStats, InstanceHealthStats, FailureKind } from './health.ts';
// The former name of the type of `discovery.health`, now a read-only view.
export type { DiscoveryHealth as HealthTracker } from './discovery.ts';
export { instanceKey } from './instance.ts';
export { channels } from './diagnostics.ts';
export type * from './diagnostics.ts';
export type { DiscoveryLookup } from './lookup.ts';
export {
  DiscoveryHttpAgent,
  DiscoveryHttpsAgent,
  type ConnectAttempt,
  type DiscoveryHttpAgentOptions,
  type DiscoveryHttpsAgentOptions,
  type DiscoveryNodeAgentOptions,
} from './http-agent.ts';
