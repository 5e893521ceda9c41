import { expect } from 'vitest';

/** Rejects if `promise` has not settled within `ms`: a bound, not a timing assertion. */
export async function settlesWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** The code of the SignpostError `promise` rejects with. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a rejection').toBeInstanceOf(Error);
  return (error as { code: string }).code;
}

/**
 * A resolution with its late address family folded in: a family that answers after the 50 ms
 * resolution delay (a loaded machine) comes in `late`, which is what the cache applies.
 */
export async function withLate<T extends { late?: Promise<T | undefined> }>(resolution: T): Promise<T> {
  const late = resolution.late === undefined ? undefined : await resolution.late;
  return late === undefined ? resolution : withLate(late);
}
