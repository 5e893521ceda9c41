/**
 * The agent's probe of an ejected instance. With a health path (`ejection.probe.path`), a GET of
 * it through the instance's own pool, with the Host header and TLS servername of a name it
 * serves: any answer below 500 within the probe timeout brings the instance back. Without one, a
 * TCP connect to the port the agent reaches it on (which the registry may not have given).
 */
import { connect } from 'node:net';
import type { Dispatcher } from 'undici';
import type { Prober } from '../health.ts';
import type { Endpoint } from './endpoint.ts';
import type { PoolEntry } from './pools.ts';
import type { RequestRouter } from './router.ts';

/** Answers undefined for an instance the agent never reached (another agent sharing the Discovery may have). */
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

/** Whether a TCP connection to the address is accepted within `timeout`. The socket never holds the process open. */
export function tcpProbe(address: string, port: number, timeout: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    socket.unref();
    socket.setTimeout(timeout);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}
