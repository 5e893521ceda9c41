import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, test } from 'vitest';
import type { SignpostError } from '../src/errors.ts';
import { Discovery } from '../src/discovery.ts';
import {
  HealthTracker,
  instanceKey,
  parseEjectionOptions,
  type HealthEvent,
  type HealthMember,
  type InstanceHealth,
} from '../src/health.ts';
import type { EjectionOptions } from '../src/options.ts';
import type { Instance } from '../src/types.ts';
import { instance } from './balancers/helpers.ts';
import { FakeClock } from './support/fake-clock.ts';

const a = instance('10.0.0.1');
const b = instance('10.0.0.2');
const c = instance('10.0.0.3');
const d = instance('10.0.0.4');

function fail(tracker: HealthTracker, state: InstanceHealth, kind: Parameters<HealthTracker['onFailure']>[1], times = 1) {
  for (let i = 0; i < times; i++) {
    tracker.onStart(state);
    tracker.onFailure(state, kind);
  }
}

/** One service as a balancer shows it to the tracker. */
function groupOf(tracker: HealthTracker, onChange: (state: InstanceHealth, event: HealthEvent) => void) {
  const member: HealthMember & { instances: readonly Instance[] } = { instances: [], healthChanged: onChange };
  return {
    set(instances: readonly Instance[]) {
      member.instances = instances;
      tracker.track(member);
    },
    close: () => tracker.untrack(member),
  };
}

function setup(options: EjectionOptions | false = {}) {
  const clock = new FakeClock();
  const tracker = new HealthTracker(parseEjectionOptions(options), clock);
  const events: string[] = [];
  const group = groupOf(tracker, (state, event) => events.push(`${event} ${state.key}`));
  group.set([a, b, c, d]);
  return { clock, tracker, events, group };
}

let toClose: HealthTracker[] = [];
afterEach(() => {
  for (const t of toClose) t.close();
  toClose = [];
});

describe('instanceKey', () => {
  test('is address:port, with brackets for IPv6, and the address alone without a port', () => {
    expect(instanceKey({ address: '10.0.0.1', port: 80 })).toBe('10.0.0.1:80');
    expect(instanceKey({ address: 'fd00::1', port: 80 })).toBe('[fd00::1]:80');
    expect(instanceKey({ address: '10.0.0.1' })).toBe('10.0.0.1');
  });
});

describe('HealthTracker', () => {
  test('keeps one state per instance key and counts requests in flight', () => {
    const { tracker } = setup();
    const state = tracker.state(a);
    expect(tracker.state({ address: '10.0.0.1', port: 8080 })).toBe(state);
    tracker.onStart(state);
    tracker.onStart(state);
    expect(state.inflight).toBe(2);
    tracker.onSuccess(state);
    tracker.onFailure(state, '5xx');
    expect(state).toMatchObject({ inflight: 0, requests: 2, failures: 1, consecutiveFailures: 1, ejected: false });
    tracker.onSuccess(state);
    expect(state.inflight).toBe(0);
    fail(tracker, state, '5xx');
    tracker.onStart(state);
    tracker.onCancel(state);
    expect(state).toMatchObject({ inflight: 0, requests: 4, failures: 2, consecutiveFailures: 1 });
  });

  test('a refused connection ejects at once by default; the instance returns after the base time', () => {
    const { tracker, clock, events } = setup();
    const state = tracker.state(a);
    fail(tracker, state, 'connect');
    expect(state.ejected).toBe(true);
    expect(state.ejectedUntil).toBe(30_000);
    expect(events).toEqual(['eject 10.0.0.1:8080']);
    clock.advance(29_999);
    expect(state.ejected).toBe(true);
    clock.advance(1);
    expect(state.ejected).toBe(false);
    expect(state.consecutiveFailures).toBe(0);
    expect(events).toEqual(['eject 10.0.0.1:8080', 'return 10.0.0.1:8080']);
  });

  test('other failures eject after consecutiveFailures in a row; a success resets the count', () => {
    const { tracker } = setup({ consecutiveFailures: 3 });
    const state = tracker.state(a);
    fail(tracker, state, '5xx', 2);
    tracker.onStart(state);
    tracker.onSuccess(state);
    fail(tracker, state, 'timeout', 2);
    expect(state.ejected).toBe(false);
    fail(tracker, state, 'reset');
    expect(state.ejected).toBe(true);
  });

  test('consecutiveConnectFailures counts refused connections in a row', () => {
    const { tracker } = setup({ consecutiveConnectFailures: 2 });
    const state = tracker.state(a);
    fail(tracker, state, 'connect');
    fail(tracker, state, '5xx');
    fail(tracker, state, 'connect');
    expect(state.ejected).toBe(false);
    fail(tracker, state, 'connect');
    expect(state.ejected).toBe(true);
  });

  test('ejection time grows with each ejection, up to the max, and decays while healthy', () => {
    const { tracker, clock } = setup({ baseEjectionTime: 1000, maxEjectionTime: 2500 });
    const state = tracker.state(a);
    const durations: number[] = [];
    for (let i = 0; i < 4; i++) {
      fail(tracker, state, 'connect');
      durations.push(state.ejectedUntil - clock.now());
      clock.advance(state.ejectedUntil - clock.now());
    }
    expect(durations).toEqual([1000, 2000, 2500, 2500]);
    expect(state.ejections).toBe(4);
    // Back for 3 base periods: the multiplier falls from 4 to 1, so the next one is 2 × base.
    clock.advance(3000);
    fail(tracker, state, 'connect');
    expect(state.ejections).toBe(2);
    expect(state.ejectedUntil - clock.now()).toBe(2000);
  });

  test('late failures of an ejected instance do not extend its ejection', () => {
    const { tracker } = setup();
    const state = tracker.state(a);
    tracker.onStart(state);
    tracker.onStart(state);
    tracker.onFailure(state, 'connect');
    const until = state.ejectedUntil;
    tracker.onFailure(state, 'connect');
    expect(state.ejectedUntil).toBe(until);
    expect(state.ejections).toBe(1);
  });

  test('never ejects more than maxEjectedPercent of a service', () => {
    const { tracker, clock } = setup();
    const [sa, sb, sc] = [tracker.state(a), tracker.state(b), tracker.state(c)];
    fail(tracker, sa, 'connect');
    fail(tracker, sb, 'connect');
    fail(tracker, sc, 'connect');
    expect([sa.ejected, sb.ejected, sc.ejected]).toEqual([true, true, false]);
    expect(tracker.stats()).toMatchObject({ ejected: 2, totalEjections: 2, refusedEjections: 1 });
    // Once one returns, the next failure of the third may eject it.
    clock.advance(30_000);
    fail(tracker, sc, 'connect');
    expect(sc.ejected).toBe(true);
  });

  test('the share applies to every service that has the instance', () => {
    const clock = new FakeClock();
    const tracker = new HealthTracker(parseEjectionOptions({}), clock);
    toClose.push(tracker);
    groupOf(tracker, () => {}).set([a, b, c, d]);
    groupOf(tracker, () => {}).set([a, b]);
    fail(tracker, tracker.state(a), 'connect');
    fail(tracker, tracker.state(b), 'connect');
    expect(tracker.state(b).ejected).toBe(false);
    const single = groupOf(tracker, () => {});
    single.set([c]);
    fail(tracker, tracker.state(c), 'connect');
    expect(tracker.state(c).ejected).toBe(false);
  });

  test('ejection: false never ejects', () => {
    const { tracker } = setup(false);
    const state = tracker.state(a);
    fail(tracker, state, 'connect', 20);
    expect(state.ejected).toBe(false);
    expect(state.failures).toBe(20);
  });

  test('notifies only groups that have the instance, and global subscribers', () => {
    const { tracker, events } = setup();
    const other: string[] = [];
    groupOf(tracker, (s, e) => other.push(`${e} ${s.key}`)).set([instance('10.0.0.9')]);
    const all: string[] = [];
    const unsubscribeAll = tracker.subscribe((s, e) => all.push(`${e} ${s.key}`));
    fail(tracker, tracker.state(a), 'connect');
    expect(events).toEqual(['eject 10.0.0.1:8080']);
    expect(other).toEqual([]);
    expect(all).toEqual(['eject 10.0.0.1:8080']);
    unsubscribeAll();
  });

  test('publishes signpost:health:eject and signpost:health:return', () => {
    const { tracker, clock } = setup();
    const seen: unknown[] = [];
    const onEject = (message: unknown) => seen.push(['eject', message]);
    const onReturn = (message: unknown) => seen.push(['return', message]);
    subscribe('signpost:health:eject', onEject);
    subscribe('signpost:health:return', onReturn);
    try {
      fail(tracker, tracker.state(a), 'connect');
      clock.advance(30_000);
    } finally {
      unsubscribe('signpost:health:eject', onEject);
      unsubscribe('signpost:health:return', onReturn);
    }
    expect(seen).toEqual([
      ['eject', { key: '10.0.0.1:8080', kind: 'connect', ejections: 1, ejectionTime: 30_000, reason: 'consecutive' }],
      ['return', { key: '10.0.0.1:8080', by: 'timer' }],
    ]);
  });

  test('forget drops states that no service has, with their timers', () => {
    const { tracker, clock, group } = setup();
    fail(tracker, tracker.state(a), 'connect');
    tracker.state(b);
    expect(clock.pending).toBe(1);
    tracker.forget(['10.0.0.1:8080']);
    expect(tracker.stats().instances).toBe(2);
    group.set([b, c, d]);
    tracker.forget(['10.0.0.1:8080']);
    expect(clock.pending).toBe(0);
    expect(tracker.stats().instances).toBe(1);
    expect(tracker.state(a).ejected).toBe(false);
  });

  test('an instance forgotten while ejected, with a probe in flight, leaves no ejection behind', async () => {
    const { tracker, clock, group } = setup();
    let answer: ((ok: boolean) => void) | undefined;
    tracker.setProber(() => new Promise<boolean>((resolve) => (answer = resolve)));
    fail(tracker, tracker.state(a), 'connect');
    expect(tracker.anyEjected).toBe(true);
    await clock.run(1000);
    expect(answer).toBeDefined();
    group.set([b, c, d]);
    tracker.forget(['10.0.0.1:8080']);
    expect(tracker.anyEjected).toBe(false);
    answer!(true);
    await clock.run(0);
    expect(tracker.anyEjected).toBe(false);
    expect(tracker.stats()).toMatchObject({ instances: 0, ejected: 0 });
    expect(clock.pending).toBe(0);
  });

  test('states are made on first use: instances a service has but no request went to cost none', () => {
    const { tracker } = setup();
    expect(tracker.stats()).toMatchObject({ instances: 0, states: [] });
    expect(tracker.peek(a)).toBeUndefined();
    const state = tracker.state(a);
    expect(tracker.peek({ address: '10.0.0.1', port: 8080 })).toBe(state);
    expect(tracker.stats().instances).toBe(1);
  });

  test('stats lists every state', () => {
    const { tracker } = setup();
    fail(tracker, tracker.state(a), 'connect');
    tracker.state(b);
    const stats = tracker.stats();
    expect(stats.instances).toBe(2);
    expect(stats.states.find((s) => s.key === '10.0.0.1:8080')).toMatchObject({ ejected: true, failures: 1, ejections: 1 });
  });

  test('close clears every timer and ejects no more', () => {
    const { tracker, clock } = setup();
    fail(tracker, tracker.state(a), 'connect');
    tracker.close();
    expect(clock.pending).toBe(0);
    fail(tracker, tracker.state(b), 'connect');
    expect(tracker.state(b).ejected).toBe(false);
    tracker.close();
  });
});

describe('ejection options', () => {
  const bad: [string, unknown][] = [
    ['ejection', 'yes'],
    ['ejection', true],
    ['ejection.typo', { consecutiveFailure: 3 }],
    ['ejection.consecutiveConnectFailures', { consecutiveConnectFailures: 0 }],
    ['ejection.consecutiveConnectFailures', { consecutiveConnectFailures: 1.5 }],
    ['ejection.consecutiveFailures', { consecutiveFailures: 0 }],
    ['ejection.baseEjectionTime', { baseEjectionTime: 0 }],
    ['ejection.baseEjectionTime', { baseEjectionTime: '30s' }],
    ['ejection.maxEjectionTime', { maxEjectionTime: -1 }],
    ['ejection.maxEjectionTime below base', { baseEjectionTime: 10_000, maxEjectionTime: 5000 }],
    ['ejection.maxEjectionTime below default base', { maxEjectionTime: 1000 }],
    ['ejection.maxEjectedPercent', { maxEjectedPercent: 101 }],
    ['ejection.panicThreshold', { panicThreshold: -1 }],
    ['ejection.panicThreshold', { panicThreshold: 0.5 }],
    ['ejection.failurePercentage', { failurePercentage: 30 }],
    ['ejection.failurePercentage.threshold', { failurePercentage: { threshold: 0 } }],
    ['ejection.failurePercentage.threshold', { failurePercentage: { threshold: 101 } }],
    ['ejection.failurePercentage.minRequests', { failurePercentage: { minRequests: 0 } }],
    ['ejection.failurePercentage.interval', { failurePercentage: { interval: 50 } }],
    ['ejection.failurePercentage.typo', { failurePercentage: { treshold: 30 } }],
    ['ejection.probe', { probe: true }],
    ['ejection.probe.interval', { probe: { interval: 5 } }],
    ['ejection.probe.timeout', { probe: { timeout: -1 } }],
    ['ejection.probe.path', { probe: { path: 'health' } }],
    ['ejection.probe.typo', { probe: { every: 1000 } }],
    ['ejection.stallTimeout', { stallTimeout: -1 }],
    ['ejection.stallTimeout', { stallTimeout: 3_600_001 }],
    ['ejection.stallTimeout', { stallTimeout: '10s' }],
  ];
  test.each(bad)('%s: %j is rejected with SIGNPOST_ERR_INVALID_ARG', (_, value) => {
    expect(() => parseEjectionOptions(value)).toThrow(expect.objectContaining({ code: 'SIGNPOST_ERR_INVALID_ARG' }) as Error);
    let error: SignpostError | undefined;
    try {
      new Discovery({ ejection: value as never });
    } catch (e) {
      error = e as SignpostError;
    }
    expect(error?.code).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(error?.message).toMatch(/ejection/);
  });

  test('accepts valid options, false and undefined', () => {
    expect(() => parseEjectionOptions(undefined)).not.toThrow();
    expect(() => parseEjectionOptions(false)).not.toThrow();
    expect(() =>
      parseEjectionOptions({
        consecutiveConnectFailures: 2,
        consecutiveFailures: 5,
        baseEjectionTime: 1000,
        maxEjectionTime: 1000,
        maxEjectedPercent: 100,
        panicThreshold: 0,
        failurePercentage: { threshold: 50, minRequests: 10, interval: 5000 },
        probe: { interval: 500, timeout: 200, path: '/health' },
        stallTimeout: 0,
      }),
    ).not.toThrow();
    expect(() => parseEjectionOptions({ failurePercentage: false, probe: false })).not.toThrow();
  });
});

describe('outlier detection beyond consecutive failures', () => {
  test('failure percentage: an instance failing every other request is ejected once it had minRequests', () => {
    const { tracker, events } = setup();
    const state = tracker.state(a);
    for (let i = 0; i < 18; i++) {
      tracker.onStart(state);
      if (i % 2 === 0) tracker.onFailure(state, '5xx');
      else tracker.onSuccess(state);
    }
    expect(state.ejected).toBe(false);
    tracker.onStart(state);
    tracker.onFailure(state, '5xx');
    tracker.onStart(state);
    tracker.onSuccess(state);
    tracker.onStart(state);
    tracker.onFailure(state, '5xx');
    expect(state.ejected).toBe(true);
    expect(events).toEqual(['eject 10.0.0.1:8080']);
  });

  test('failure percentage: a low share, or failures spread over more than the interval, do not eject', () => {
    const { tracker, clock } = setup();
    const state = tracker.state(a);
    for (let i = 0; i < 200; i++) {
      tracker.onStart(state);
      if (i % 5 === 0) tracker.onFailure(state, '5xx');
      else tracker.onSuccess(state);
    }
    expect(state.ejected).toBe(false);
    const b1 = tracker.state(b);
    for (let i = 0; i < 40; i++) {
      clock.advance(11_000);
      tracker.onStart(b1);
      tracker.onFailure(b1, 'reset');
      tracker.onStart(b1);
      tracker.onSuccess(b1);
    }
    expect(b1.ejected).toBe(false);
  });

  test('failure percentage: a service failing alike everywhere keeps its instances', () => {
    const { tracker } = setup();
    const states = [a, b, c, d].map((i) => tracker.state(i));
    for (let round = 0; round < 30; round++) {
      for (const state of states) {
        tracker.onStart(state);
        if (round % 2 === 0) tracker.onFailure(state, '5xx');
        else tracker.onSuccess(state);
      }
    }
    expect(states.filter((s) => s.ejected)).toEqual([]);
  });

  test('failurePercentage: false turns it off', () => {
    const { tracker } = setup({ failurePercentage: false });
    const state = tracker.state(a);
    for (let i = 0; i < 100; i++) {
      tracker.onStart(state);
      if (i % 2 === 0) tracker.onFailure(state, '5xx');
      else tracker.onSuccess(state);
    }
    expect(state.ejected).toBe(false);
  });

  test('a stall ejects at once, and stallTimeout is 0 when ejection is off', () => {
    const { tracker } = setup();
    expect(tracker.stallTimeout).toBe(10_000);
    const state = tracker.state(a);
    tracker.onStall(state);
    expect(state).toMatchObject({ ejected: true, ejectedFor: 'stall' });
    expect(new HealthTracker(parseEjectionOptions(false), new FakeClock()).stallTimeout).toBe(0);
    expect(new HealthTracker(parseEjectionOptions({ stallTimeout: 0 }), new FakeClock()).stallTimeout).toBe(0);
  });

  test('an instance ejected for connection failures is probed and returns as soon as a probe answers', async () => {
    const { tracker, clock, events } = setup();
    const probes: string[] = [];
    let answering = false;
    const remove = tracker.setProber((key, path, timeout) => {
      probes.push(`${key} ${path ?? 'tcp'} ${timeout}`);
      return Promise.resolve(answering);
    });
    const state = tracker.state(a);
    fail(tracker, state, 'connect');
    expect(state.ejected).toBe(true);
    await clock.run(3000);
    expect(probes).toEqual(['10.0.0.1:8080 tcp 1000', '10.0.0.1:8080 tcp 1000', '10.0.0.1:8080 tcp 1000']);
    expect(state.ejected).toBe(true);
    answering = true;
    await clock.run(1000);
    expect(state.ejected).toBe(false);
    expect(events).toEqual(['eject 10.0.0.1:8080', 'return 10.0.0.1:8080']);
    remove();
  });

  test('without a health path, an instance ejected for 5xx or a stall is not probed (it accepts connections)', async () => {
    const { tracker, clock } = setup();
    const probes: string[] = [];
    tracker.setProber((key) => {
      probes.push(key);
      return Promise.resolve(true);
    });
    tracker.onStall(tracker.state(a));
    await clock.run(5000);
    expect(probes).toEqual([]);
    expect(tracker.state(a).ejected).toBe(true);
  });

  test('with a health path, every ejected instance is probed with it', async () => {
    const { tracker, clock } = setup({ probe: { path: '/health', interval: 500, timeout: 200 } });
    const probes: string[] = [];
    tracker.setProber((key, path, timeout) => {
      probes.push(`${key} ${path} ${timeout}`);
      return Promise.resolve(true);
    });
    tracker.onStall(tracker.state(a));
    await clock.run(500);
    expect(probes).toEqual(['10.0.0.1:8080 /health 200']);
    expect(tracker.state(a).ejected).toBe(false);
  });

  test('a Discovery on its own never probes: without a prober, an ejected instance waits for its time', async () => {
    const { tracker, clock } = setup();
    const state = tracker.state(a);
    fail(tracker, state, 'connect');
    await clock.run(29_000);
    expect(state.ejected).toBe(true);
    await clock.run(1000);
    expect(state.ejected).toBe(false);
  });
});
