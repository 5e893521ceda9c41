/**
 * discoveryInterceptor: the agent's routing as an undici interceptor, for a dispatcher you
 * already have: `new Agent({ connect: { ca } }).compose(discoveryInterceptor({ discovery }))`.
 * The origin of a discovered request is rewritten to the instance's address and port, while the
 * Host header and the TLS servername stay the logical name; the dispatcher underneath keeps one
 * pool per instance origin. Other requests go down the chain untouched.
 */
import type { Dispatcher } from 'undici';
import { RequestRouter, type AgentStats, type Send } from './agent/routed-request.ts';
import { Discovery } from './discovery.ts';
import { InvalidArgumentError } from './errors.ts';
import { retryPolicy, type RetryOptions } from './retry.ts';
import { checkKeys, checkObject, invalid } from './validate.ts';

export interface DiscoveryInterceptorOptions {
  /** The Discovery to route with. The interceptor never closes it. */
  discovery: Discovery;
  /** Retries on another instance. @default { retries: 2 } */
  retry?: RetryOptions;
}

/** An undici interceptor, with the counters of the requests it routed. */
export interface DiscoveryInterceptor {
  (dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch;
  /** Request counters per instance key, and retries (shared by every dispatcher it is composed into). */
  stats(): AgentStats;
}

export function discoveryInterceptor(options: DiscoveryInterceptorOptions): DiscoveryInterceptor {
  const raw: unknown = options;
  if (raw === undefined) throw new InvalidArgumentError('discoveryInterceptor needs options: { discovery }');
  checkObject('options', raw);
  checkKeys('', raw, ['discovery', 'retry']);
  if (!(options.discovery instanceof Discovery)) throw invalid('discovery', options.discovery, 'a Discovery');
  const router = new RequestRouter(options.discovery, retryPolicy(options.retry));
  follow(options.discovery, router);
  const interceptor = (dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch => {
    const send: Send = (_endpoint, opts, handler) => {
      dispatch(opts, handler);
    };
    return function discoveryDispatch(opts, handler) {
      const target = router.target(opts.origin);
      if (target === null) return dispatch(opts, handler);
      return router.dispatch(opts, handler, target, send);
    };
  };
  return Object.assign(interceptor, { stats: () => router.stats() });
}

/** Unsubscribes the routers of interceptors that were garbage-collected. */
const unsubscribeWhenCollected = new FinalizationRegistry<() => void>((unsubscribe) => unsubscribe());

/**
 * Tells the router when instances leave, so it drops what it cached for them (their health state
 * is Discovery's no longer). The interceptor is never closed: Discovery holds the router weakly,
 * and the subscription ends when the interceptor is collected.
 */
function follow(discovery: Discovery, router: RequestRouter): void {
  const ref = new WeakRef(router);
  const unsubscribe = discovery.onChange((change) => {
    const live = ref.deref();
    if (live === undefined) unsubscribe();
    else live.instancesChanged(change);
  });
  unsubscribeWhenCollected.register(router, unsubscribe);
}
