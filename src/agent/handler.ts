/**
 * The checks undici's own dispatchers make on a request before it goes anywhere, made the same way
 * and with undici's own errors, so a dispatch that undici's Agent rejects is rejected here too
 * (instead of being accepted and then hanging, as a legacy `onConnect`/`onHeaders`/`onComplete`
 * handler would, or an upgrade request whose handler cannot take the upgrade).
 */
import { errors, type Dispatcher } from 'undici';

type Handler = Dispatcher.DispatchHandler;

/** What undici's `assertRequestHandler` checks, with its messages. */
export function assertHandler(handler: Handler, method: unknown, upgrade: unknown): void {
  if (typeof handler.onRequestStart !== 'function') throw new errors.InvalidArgumentError('invalid onRequestStart method');
  if (typeof handler.onResponseError !== 'function') throw new errors.InvalidArgumentError('invalid onResponseError method');
  if (handler.onBodySent !== undefined && typeof handler.onBodySent !== 'function') {
    throw new errors.InvalidArgumentError('invalid onBodySent method');
  }
  if (handler.onRequestSent !== undefined && typeof handler.onRequestSent !== 'function') {
    throw new errors.InvalidArgumentError('invalid onRequestSent method');
  }
  if (upgrade || method === 'CONNECT') {
    if (typeof handler.onRequestUpgrade !== 'function') throw new errors.InvalidArgumentError('invalid onRequestUpgrade method');
  } else {
    if (typeof handler.onResponseStart !== 'function') throw new errors.InvalidArgumentError('invalid onResponseStart method');
    if (typeof handler.onResponseData !== 'function') throw new errors.InvalidArgumentError('invalid onResponseData method');
    if (typeof handler.onResponseEnd !== 'function') throw new errors.InvalidArgumentError('invalid onResponseEnd method');
  }
}

/**
 * undici's rule for an error found while dispatching: a handler that can take it gets it through
 * `onResponseError` (and dispatch returns false); one that cannot makes dispatch throw it.
 */
export function rejectDispatch(handler: Handler, error: unknown): false {
  if (typeof handler.onResponseError !== 'function') throw error;
  handler.onResponseError(null as never, error as Error);
  return false;
}
