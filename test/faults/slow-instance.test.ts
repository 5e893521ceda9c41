/**
 * A slow instance (slowloris-like): it accepts connections and answers late. Headers that come
 * too late trip headersTimeout, the GET is retried on another instance, and the instance is
 * ejected; a body that trickles trips bodyTimeout (the response was already given to the caller,
 * so that request fails with undici's typed error) and the instance is ejected too. After its
 * ejection no request is sent to it.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { errors, request } from 'undici';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { Fleet, InstanceServer, Ledger } from '../fixtures/fleet.ts';
import { ProcessWatch, report, scaled } from './support.ts';
import { handlesAbove, openHandles } from '../support/handles.ts';

const NAME = 'slow.faults.local';
const ledger = new Ledger();
let fleet: InstanceServer[] = [];
const watch = new ProcessWatch();

beforeAll(async () => {
  watch.start();
  fleet = (await Fleet.start(0, { octets: [15, 16, 17], samePort: true, ledger, keepAliveTimeout: 5000, keepSeen: false })).servers;
});

afterAll(async () => {
  await Promise.all(fleet.map((b) => b.kill()));
  watch.stop();
});

interface Outcome {
  requests: number;
  ok: number;
  failed: number;
  errorCodes: Record<string, number>;
  retries: number;
  ejections: { key: string; kind: string }[];
  picksOfSlowAfterEjection: number;
  slowFailures: number;
}

async function run(slowDown: (instance: InstanceServer) => void, total: number): Promise<Outcome> {
  const slow = fleet[0]!;
  slowDown(slow);
  const discovery = new Discovery({
    services: { [NAME]: { via: 'static', instances: fleet.map((b) => ({ address: b.address, port: b.port })) } },
  });
  const agent = new DiscoveryAgent({ discovery, headersTimeout: 300, bodyTimeout: 300, retry: { retries: 2, budget: false } });
  const ejections: { key: string; kind: string }[] = [];
  let ejected = false;
  let picksAfter = 0;
  const onEject = (message: unknown): void => {
    const { key, kind } = message as { key: string; kind: string };
    ejections.push({ key, kind });
    if (key === slow.key) ejected = true;
  };
  const onPick = (message: unknown): void => {
    if (ejected && (message as { key: string }).key === slow.key) picksAfter++;
  };
  subscribe('signpost:health:eject', onEject);
  subscribe('signpost:agent:pick', onPick);
  const outcome = { requests: 0, ok: 0, failed: 0, errorCodes: {} as Record<string, number> };
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) {
      next++;
      outcome.requests++;
      try {
        const response = await request(`http://${NAME}:${slow.port}/`, { dispatcher: agent });
        await response.body.text();
        outcome.ok++;
      } catch (error) {
        outcome.failed++;
        const code = (error as { code?: string }).code ?? String(error);
        outcome.errorCodes[code] = (outcome.errorCodes[code] ?? 0) + 1;
        // Only undici's typed timeout may reach the caller (a body cut after the headers).
        expect(error).toBeInstanceOf(errors.BodyTimeoutError);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  const stats = agent.stats();
  unsubscribe('signpost:health:eject', onEject);
  unsubscribe('signpost:agent:pick', onPick);
  await agent.close();
  await discovery.close();
  slow.behaviour = 'ok';
  slow.delay = 0;
  return {
    ...outcome,
    retries: stats.retries,
    ejections,
    picksOfSlowAfterEjection: picksAfter,
    slowFailures: stats.instances[slow.key]?.failures ?? 0,
  };
}

test('headers that come too late: headersTimeout fires, the GET is retried elsewhere, the instance is ejected', async () => {
  const before = openHandles();
  const result = await run((s) => {
    s.delay = 5000; // headers that come too late
  }, scaled(2000));
  report('slow instance: late headers', {
    requests: result.requests,
    failures: result.failed,
    retries: result.retries,
    ejections: result.ejections.length,
    ejectedFor: result.ejections.map((e) => `${e.key} (${e.kind})`).join(', '),
    slowInstanceFailures: result.slowFailures,
    picksOfSlowAfterEjection: result.picksOfSlowAfterEjection,
  });
  expect(result.failed).toBe(0);
  expect(result.ok).toBe(result.requests);
  expect(result.retries).toBeGreaterThan(0);
  expect(result.ejections).toContainEqual({ key: fleet[0]!.key, kind: 'timeout' });
  expect(result.ejections.every((e) => e.key === fleet[0]!.key)).toBe(true);
  expect(result.picksOfSlowAfterEjection).toBe(0);
  await fleet[0]!.kill();
  fleet[0] = await InstanceServer.start(fleet[0]!.address, fleet[0]!.port, { ledger, keepAliveTimeout: 5000, keepSeen: false });
  expect(await handlesAbove(before)).toEqual({});
});

test('a body that trickles: bodyTimeout fires, the instance is ejected, then gets no more requests', async () => {
  const before = openHandles();
  const result = await run((s) => {
    s.behaviour = 'trickle';
    s.trickle = { interval: 1000, chunks: 5 };
  }, scaled(2000));
  report('slow instance: trickling body', {
    requests: result.requests,
    // Committed responses (headers already given to the caller) cannot be retried: by design.
    bodyTimeoutsSeenByCaller: result.failed,
    errorCodes: JSON.stringify(result.errorCodes),
    retries: result.retries,
    ejections: result.ejections.length,
    ejectedFor: result.ejections.map((e) => `${e.key} (${e.kind})`).join(', '),
    slowInstanceFailures: result.slowFailures,
    picksOfSlowAfterEjection: result.picksOfSlowAfterEjection,
  });
  expect(result.errorCodes.UND_ERR_BODY_TIMEOUT ?? 0).toBeGreaterThan(0);
  expect(result.ejections).toContainEqual({ key: fleet[0]!.key, kind: 'timeout' });
  expect(result.picksOfSlowAfterEjection).toBe(0);
  // Only requests picked before the ejection could fail: at most the lanes in flight plus the
  // failures that tipped it over.
  expect(result.failed).toBeLessThanOrEqual(8 + 5);
  expect(await handlesAbove(before)).toEqual({});
  expect(watch.unhandled).toEqual([]);
});
