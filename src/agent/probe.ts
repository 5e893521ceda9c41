/**
 * The agent's probe of an ejected instance. With a health path (`ejection.probe.path`), a GET of
 * it through the instance's own pool, with the Host header and TLS servername of a name it
 * serves: any answer below 500 within the probe timeout brings the instance back. Without one, a
 * TCP connect to the port the agent reaches it on (which the registry may not have given).
 */
import type { Dispatcher } from 'undici';
import { tcpProbe, type Prober } from '../health.ts';
import type { Endpoint } from './endpoint.ts';
import type { PoolEntry } from './pools.ts';
import type { RequestRouter } from './router.ts';

/** Answers undefined for an instance the agent never reached: the tracker then probes it itself. */
export function instanceProber(router: RequestRouter, poolFor: (endpoint: Endpoint, servername: string | undefined) => Dispatcher): Prober {
  return (key, path, timeout) => {
    const endpoint = router.endpointsOf(key)[0];
    if (endpoint === undefined) return undefined;
    if (path === undefined) {
      const colon = endpoint.key.lastIndexOf(':');
      return tcpProbe(endpoint.key.slice(0, colon).replace(/^\[|\]$/g, ''), Number(endpoint.key.slice(colon + 1)), timeout);
    }
    const target = (endpoint.slot as PoolEntry | undefined)?.lastTarget;
    if (target === undefined) return undefined;
    const servername = endpoint.https ? target.name : undefined;
    const pool = poolFor(endpoint, servername);
    return pool
      .request({
        origin: endpoint.origin,
        path,
        method: 'GET',
        headers: { host: target.hostHeader },
        ...(servername !== undefined && { servername }),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout),
      } as Dispatcher.RequestOptions)
      .then(
        async ({ statusCode, body }) => {
          await body.dump().catch(() => undefined);
          return statusCode < 500;
        },
        () => false,
      );
  };
}
