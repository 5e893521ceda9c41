/**
 * Containing the user's callbacks: `onChange` listeners, custom balancers and an injected clock.
 * A callback that throws (or returns what it must not) never crashes the process, never leaves a
 * name frozen on an old answer and never breaks `close()`: the throw is published on
 * `signpost:callback:error` every time, a `SIGNPOST_CALLBACK_ERROR` warning is emitted once per
 * kind of callback, and signpost carries on (a broken balancer is replaced by round-robin, a
 * broken clock by the real one).
 */
import { RoundRobinBalancer } from './balancers/round-robin.ts';
import { systemClock, type Clock, type ClockTimer } from './clock.ts';
import { channels, type CallbackErrorMessage, type CallbackKind } from './diagnostics.ts';
import { scrubError } from './redact.ts';
import type { Balancer, BalancerFactory, Instance } from './types.ts';
import { describe } from './validate.ts';

export type { CallbackKind };

const callbackErrorChannel = channels.callbackError;

/** Reports contained callback failures: every one on the channel, a warning once per kind. */
export class CallbackReporter {
  readonly #warned = new Set<CallbackKind>();

  report(callback: CallbackKind, thrown: unknown, name?: string): void {
    const error = scrubError(thrown);
    if (callbackErrorChannel.hasSubscribers) {
      callbackErrorChannel.publish({ callback, name, error } satisfies CallbackErrorMessage);
    }
    if (this.#warned.has(callback)) return;
    this.#warned.add(callback);
    const fallback = callback.startsWith('balancer')
      ? '; the service is balanced round-robin instead'
      : callback.startsWith('clock')
        ? '; the real clock is used instead'
        : '';
    process.emitWarning(
      `signpost: ${a(callback)} failed (${error.name})${name === undefined ? '' : ` for ${name}`}${fallback}. ` +
        'signpost carried on; fix the callback (every failure is published on signpost:callback:error)',
      { code: 'SIGNPOST_CALLBACK_ERROR' },
    );
  }
}

function a(callback: CallbackKind): string {
  return callback === 'onChange listener' ? 'an onChange listener' : `the ${callback}`;
}

/** A thrown value for a callback that returned something it must not. */
class BadReturnError extends TypeError {
  constructor(what: string, value: unknown) {
    super(`${what} returned ${describe(value)}`);
    this.name = 'TypeError';
  }
}

function isBalancer(value: unknown): value is Balancer {
  const b = value as Partial<Balancer> | null;
  return typeof b === 'object' && b !== null && typeof b.update === 'function' && typeof b.pick === 'function';
}

/**
 * A custom balancer held at arm's length: if making it, `update` or `pick` throws, or it returns
 * something that is not one of its instances, it is reported and replaced by round-robin for
 * the rest of the service's life.
 */
class ContainedBalancer implements Balancer {
  readonly #name: string;
  readonly #reporter: CallbackReporter;
  #inner: Balancer;
  #custom: boolean;
  #members = new Set<Instance>();
  #instances: readonly Instance[] = [];

  constructor(name: string, factory: BalancerFactory, reporter: CallbackReporter) {
    this.#name = name;
    this.#reporter = reporter;
    let made: unknown;
    try {
      made = factory(name);
      if (!isBalancer(made)) throw new BadReturnError('the balancer factory', made);
      this.#inner = made;
      this.#custom = true;
    } catch (error) {
      reporter.report('balancer factory', error, name);
      this.#inner = new RoundRobinBalancer();
      this.#custom = false;
    }
  }

  update(instances: readonly Instance[]): void {
    this.#instances = instances;
    if (this.#custom) {
      this.#members = new Set(instances);
      try {
        this.#inner.update(instances);
        return;
      } catch (error) {
        this.#fail('balancer.update', error);
      }
    }
    this.#inner.update(instances);
  }

  pick(exclude?: ReadonlySet<string>): Instance | undefined {
    if (!this.#custom) return this.#inner.pick(exclude);
    let picked: Instance | undefined;
    try {
      picked = this.#inner.pick(exclude);
      if (picked === undefined || this.#members.has(picked)) return picked;
      throw new BadReturnError('pick()', picked);
    } catch (error) {
      this.#fail('balancer.pick', error);
    }
    return this.#inner.pick(exclude);
  }

  close(): void {
    try {
      this.#inner.close?.();
    } catch (error) {
      this.#reporter.report('balancer.close', error, this.#name);
    }
  }

  #fail(callback: CallbackKind, error: unknown): void {
    this.#reporter.report(callback, error, this.#name);
    try {
      this.#inner.close?.();
    } catch {
      // Already reported as broken: its close() is not asked to work.
    }
    this.#custom = false;
    this.#members = new Set();
    this.#inner = new RoundRobinBalancer();
    this.#inner.update(this.#instances);
  }
}

/** The user's balancer factory, each balancer it makes contained. */
export function containBalancerFactory(factory: BalancerFactory, reporter: CallbackReporter): BalancerFactory {
  return (name) => new ContainedBalancer(name, factory, reporter);
}

/** A timer the real clock made after the user's failed. */
class FallbackTimer {
  readonly timer: ClockTimer;
  constructor(timer: ClockTimer) {
    this.timer = timer;
  }
}

/** The user's clock, contained: a method that throws is reported, and the real clock stands in. */
export function containClock(clock: Clock, reporter: CallbackReporter): Clock {
  if (clock === systemClock) return clock;
  return {
    now() {
      try {
        const now = clock.now();
        if (typeof now === 'number' && !Number.isNaN(now)) return now;
        throw new BadReturnError('clock.now()', now);
      } catch (error) {
        reporter.report('clock.now', error);
        return systemClock.now();
      }
    },
    setTimeout(fn, ms) {
      try {
        return clock.setTimeout(fn, ms);
      } catch (error) {
        reporter.report('clock.setTimeout', error);
        return new FallbackTimer(systemClock.setTimeout(fn, ms));
      }
    },
    clearTimeout(timer) {
      if (timer instanceof FallbackTimer) {
        systemClock.clearTimeout(timer.timer);
        return;
      }
      try {
        clock.clearTimeout(timer);
      } catch (error) {
        reporter.report('clock.clearTimeout', error);
      }
    },
  };
}
