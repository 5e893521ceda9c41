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

const TRACKED = new Set(['UDPWrap', 'TCPWrap', 'TCPSocketWrap', 'Timeout', 'GetAddrInfoReqWrap', 'QueryReqWrap']);

/** Sockets, timers and DNS requests open right now, by kind. */
export function openResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (TRACKED.has(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

/**
 * Waits (a few turns of the loop) until no kind of resource is open more often than in `before`.
 * Fewer is fine: a timer of the test runner's may have fired meanwhile.
 */
export async function expectNoLeaks(before: Record<string, number>): Promise<void> {
  const extra = (): Record<string, number> => {
    const over: Record<string, number> = {};
    for (const [kind, count] of Object.entries(openResources())) {
      if (count > (before[kind] ?? 0)) over[kind] = count - (before[kind] ?? 0);
    }
    return over;
  };
  for (let i = 0; i < 50 && Object.keys(extra()).length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(extra()).toEqual({});
}

/** The open resources once the previous test's sockets and timers have finished closing. */
export async function quietResources(): Promise<Record<string, number>> {
  let last = JSON.stringify(openResources());
  for (let stable = 0, i = 0; stable < 3 && i < 100; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = JSON.stringify(openResources());
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  return openResources();
}

/**
 * A resolution with its late address family folded in: a family that answers after the 50 ms
 * resolution delay (a loaded machine) comes in `late`, which is what the cache applies.
 */
export async function withLate<T extends { late?: Promise<T | undefined> }>(resolution: T): Promise<T> {
  const late = resolution.late === undefined ? undefined : await resolution.late;
  return late === undefined ? resolution : withLate(late);
}
