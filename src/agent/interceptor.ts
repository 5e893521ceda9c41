/**
 * discoveryInterceptor: the agent's routing as an undici interceptor, for a dispatcher you
 * already have: `new Agent({ connect: { ca } }).compose(discoveryInterceptor({ discovery }))`.
 * The origin of a discovered request is rewritten to the instance's address and port, while the
 * Host header and the TLS servername stay the logical name; the dispatcher underneath keeps one
 * pool per instance origin. Other requests go down the chain untouched.
 *
 * Compose it first (innermost), other interceptors after it, so they see the logical origin:
 * `new Agent().compose(discoveryInterceptor({ discovery }), interceptors.retry(), interceptors.redirect())`.
 */
import type { Dispatcher } from 'undici';
import { Discovery, discoveryHealth } from '../discovery.ts';
import { InvalidArgumentError } from '../errors.ts';
import { checkKeys, checkObject, invalid } from '../validate.ts';
import { dnsAroundSignpost, hostHeaderOf, isIpOrigin, rewrittenOrigin } from './compose.ts';
import { assertHandler, rejectDispatch } from './handler.ts';
import { getThrough, instanceProber } from './probe.ts';
import type { Send } from './request.ts';
import { parseRetryOptions, type RetryOptions } from './retry-policy.ts';
import { RequestRouter, type AgentStats } from './router.ts';

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
  const router = new RequestRouter(options.discovery, parseRetryOptions(options.retry));
  // Ejected instances are probed through the dispatcher the interceptor was last composed into.
  let probeDispatch: Dispatcher.Dispatch | undefined;
  const unprobe = discoveryHealth(options.discovery).setProber(
    instanceProber(new WeakRef(router), (endpoint, opts) =>
      probeDispatch === undefined ? Promise.reject(new Error('not composed')) : getThrough(probeDispatch)(endpoint, opts),
    ),
  );
  follow(options.discovery, router, unprobe);
  const interceptor = (dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch => {
    probeDispatch = dispatch;
    const send: Send = (_endpoint, opts, handler) => dispatch(opts, handler);
    return function discoveryDispatch(opts, handler) {
      if (handler === null || typeof handler !== 'object') return dispatch(opts, handler);
      try {
        const target = opts === null || typeof opts !== 'object' ? null : router.target(opts.origin);
        if (target === null) {
          const from = opts == null ? undefined : rewrittenOrigin(opts);
          if (from !== undefined && isIpOrigin(opts.origin)) {
            const discovered = router.target(from as string | URL);
            if (discovered !== null && hostHeaderOf(opts.headers) === discovered.hostHeader) throw dnsAroundSignpost(discovered.name);
          }
          return dispatch(opts, handler);
        }
        assertHandler(handler, opts.method, opts.upgrade);
        return router.dispatch(opts, handler, target, send);
      } catch (error) {
        return rejectDispatch(handler, error);
      }
    };
  };
  return Object.assign(interceptor, { stats: () => router.stats() });
}

/** Unsubscribes the routers of interceptors that were garbage-collected. */
const unsubscribeWhenCollected = new FinalizationRegistry<() => void>((unsubscribe) => unsubscribe());

/**
 * Tells the router when instances leave, so it drops what it cached for them (their health state
 * is Discovery's no longer). The interceptor is never closed: Discovery holds the router weakly,
 * and the subscription (and the prober) end when the interceptor is collected.
 */
function follow(discovery: Discovery, router: RequestRouter, unprobe: () => void): void {
  const ref = new WeakRef(router);
  const stop = discovery.onChange((change) => {
    const live = ref.deref();
    if (live === undefined) unsubscribe();
    else for (const { keys } of live.instancesChanged(change)) for (const key of keys) live.forget(key);
  });
  const unsubscribe = (): void => {
    stop();
    unprobe();
  };
  unsubscribeWhenCollected.register(router, unsubscribe);
}
