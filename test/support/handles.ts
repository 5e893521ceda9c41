/**
 * The one open-handle counter of the tests: sockets, servers, timers, DNS requests and child
 * processes open now, by kind (`process.getActiveResourcesInfo()`), and what a test left open.
 */

const KINDS = new Set([
  'TCPWrap',
  'TCPSocketWrap',
  'TCPServerWrap',
  'UDPWrap',
  'Timeout',
  'QueryReqWrap',
  'GetAddrInfoReqWrap',
  'TLSWrap',
  'PipeWrap',
  'ProcessWrap',
]);

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What is open now, by kind. */
export function openHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (KINDS.has(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

export function totalHandles(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * The kinds open more often now than in `before`, once closes had up to 2 s to finish (fewer is
 * fine: a timer of the test runner's may have fired meanwhile). `{}` when nothing leaked.
 */
export async function handlesAbove(before: Record<string, number>): Promise<Record<string, number>> {
  const extra = (): Record<string, number> => {
    const over: Record<string, number> = {};
    for (const [kind, count] of Object.entries(openHandles())) {
      if (count > (before[kind] ?? 0)) over[kind] = count - (before[kind] ?? 0);
    }
    return over;
  };
  for (let i = 0; i < 100 && Object.keys(extra()).length > 0; i++) await tick(20);
  return extra();
}

/** What is open once the previous test's sockets and timers have finished closing (stable for 3 looks). */
export async function quietHandles(): Promise<Record<string, number>> {
  let last = JSON.stringify(openHandles());
  for (let stable = 0, i = 0; stable < 3 && i < 100; i++) {
    await tick(20);
    const now = JSON.stringify(openHandles());
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  return openHandles();
}
