/**
 * The probe of an ejected instance, made by whoever reaches it (the agent, or the interceptor).
 * With a health path (`ejection.probe.path`), a GET of it with the Host header and TLS servername
 * of a name the instance serves: any answer below 500 within the probe timeout brings it back.
 * Without one, a TCP connect to the port the instance is reached on (which the registry may not
 * have given).
 */
import { connect } from 'node:net';
import type { Dispatcher } from 'undici';
import type { Prober } from '../health.ts';
import type { Endpoint } from './endpoint.ts';
import type { RequestRouter } from './router.ts';

/** Sends one GET and settles with its status code. */
export type ProbeGet = (endpoint: Endpoint, opts: Dispatcher.DispatchOptions) => Promise<number>;

/**
 * A prober for the instances a router reaches; undefined for one it never reached (another agent
 * sharing the Discovery may have). The router is held weakly (the interceptor is never closed).
 */
export function instanceProber(routerRef: WeakRef<RequestRouter>, get: ProbeGet): Prober {
  return (key, path, timeout) => {
    const endpoint = routerRef.deref()?.endpointsOf(key)[0];
    if (endpoint === undefined) return undefined;
    if (path === undefined) {
      const colon = endpoint.key.lastIndexOf(':');
      return tcpProbe(endpoint.key.slice(0, colon).replace(/^\[|\]$/g, ''), Number(endpoint.key.slice(colon + 1)), timeout);
    }
    const target = endpoint.target;
    const opts = {
      origin: endpoint.origin,
      path,
      method: 'GET',
      headers: { host: target.hostHeader },
      ...(endpoint.https && { servername: target.name }),
      headersTimeout: timeout,
      bodyTimeout: timeout,
    } as Dispatcher.DispatchOptions;
    return withTimeout(get(endpoint, opts), timeout).then(
      (status) => status < 500,
      () => false,
    );
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('probe timed out')), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A GET through a dispatch function: settles with the status once the headers came. */
export function getThrough(dispatch: Dispatcher.Dispatch): ProbeGet {
  return (_endpoint, opts) =>
    new Promise((resolve, reject) => {
      let status = 0;
      dispatch(opts, {
        onRequestStart() {},
        onResponseStart(controller, statusCode) {
          status = statusCode;
          resolve(statusCode);
          controller.abort(new Error('signpost: probe answered'));
        },
        onResponseData() {},
        onResponseEnd() {
          resolve(status);
        },
        onResponseError(_controller, error) {
          if (status === 0) reject(error);
        },
      });
    });
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
