/** The request path: the only part of signpost that knows undici and HTTP. */
export { DiscoveryAgent, type DiscoveryAgentOptions } from './agent.ts';
export { discoveryInterceptor, type DiscoveryInterceptor, type DiscoveryInterceptorOptions } from './interceptor.ts';
export { DEFAULT_CONNECT_TIMEOUT_MS, type PoolOptions } from './pool-options.ts';
export type { Attempt, AttemptsInfo } from './request-errors.ts';
export type { RetryBudgetOptions, RetryOptions } from './retry-policy.ts';
export type { AgentStats, InstanceStats } from './router.ts';
