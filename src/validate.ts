/**
 * Small checks for constructor options. Each throws {@link InvalidArgumentError} naming the
 * option's path (`cache.minTtl`), the bad value and what is valid.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from './errors.ts';

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

export function invalid(path: string, value: unknown, expected: string): InvalidArgumentError {
  return new InvalidArgumentError(`Invalid ${path}: got ${describe(value)}; expected ${expected}`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

export function checkObject(path: string, value: unknown): asserts value is Record<string, unknown> {
  if (!isPlainObject(value)) throw invalid(path, value, 'an object');
}

/** Rejects keys the option object does not have: a typo must not be silently ignored. */
export function checkKeys(path: string, value: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(
        `Unknown option ${path ? `${path}.` : ''}${key}; valid options here are: ${allowed.join(', ')}`,
      );
    }
  }
}

/** A non-negative integer number of milliseconds (or at least `min`). */
export function checkDuration(path: string, value: unknown, min = 0): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2_147_483_647) {
    throw invalid(path, value, `an integer number of milliseconds from ${min} to 2147483647`);
  }
}

export function checkInteger(path: string, value: unknown, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(path, value, `an integer from ${min} to ${max}`);
  }
}

export function checkNumber(path: string, value: unknown, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(path, value, `a number from ${min} to ${max}`);
  }
}

export function checkPort(path: string, value: unknown): asserts value is number {
  checkInteger(path, value, 1, 65_535);
}

export function checkString(path: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(path, value, 'a non-empty string');
}

export function checkOneOf<T extends string | number>(path: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (!allowed.includes(value as T)) {
    throw invalid(path, value, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
}

export function checkAddress(path: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || isIP(value) === 0) throw invalid(path, value, 'an IPv4 or IPv6 address');
}

/**
 * A DNS name (letters, digits, `-` and `_`, dot-separated), without a trailing dot: labels of 1
 * to 63 characters that neither start nor end with `-`, checked in one pass (every cold name is).
 */
const HOSTNAME = /^(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$/i;

export function isHostname(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  return HOSTNAME.test(value);
}

export function checkHostname(path: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !isHostname(value)) {
    throw invalid(path, value, 'a DNS name such as "orders.myapp.local" (no scheme, port or trailing dot)');
  }
}

export function checkFunction(path: string, value: unknown): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') throw invalid(path, value, 'a function');
}

/** A {@link Clock}: an object with `now`, `setTimeout` and `clearTimeout` functions. */
export function checkClock(path: string, value: unknown): void {
  if (typeof value !== 'object' || value === null) {
    throw invalid(path, value, 'a clock: an object with now(), setTimeout(fn, ms) and clearTimeout(timer)');
  }
  const clock = value as Record<string, unknown>;
  for (const method of ['now', 'setTimeout', 'clearTimeout']) {
    if (typeof clock[method] !== 'function') {
      throw invalid(`${path}.${method}`, clock[method], 'a function (a clock has now(), setTimeout(fn, ms) and clearTimeout(timer))');
    }
  }
}

/** A host name argument: a string (its syntax is checked where it is routed). */
export function checkHostArgument(method: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(
      `Invalid argument to ${method}: got ${describe(value)}; expected a host name string such as "orders.myapp.local"`,
    );
  }
}
