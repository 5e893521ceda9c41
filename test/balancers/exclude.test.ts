/**
 * Retry exclusion lives in the balancer: asked to leave out the instances a request already
 * tried, every policy and wrapper gives another usable instance while one remains, never an
 * ejected one, and undefined when all were tried.
 */
import { describe, expect, test } from 'vitest';
import { createBalancer } from '../../src/balancers/index.ts';
import { LeastRequestBalancer } from '../../src/balancers/least-request.ts';
import { RoundRobinBalancer } from '../../src/balancers/round-robin.ts';
import { WeightedBalancer } from '../../src/balancers/weighted.ts';
import { HealthTracker, parseEjectionOptions } from '../../src/health.ts';
import { instanceKey } from '../../src/instance.ts';
import type { Balancer, Instance } from '../../src/types.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { instance } from './helpers.ts';

const a = instance('10.0.1.1', { zone: 'a' });
const b = instance('10.0.1.2', { zone: 'a' });
const c = instance('10.0.2.1', { zone: 'b', weight: 5 });
const d = instance('10.0.2.2', { zone: 'b' });
const set = [a, b, c, d];
const keys = (...instances: Instance[]) => new Set(instances.map(instanceKey));

function picks(balancer: Balancer, exclude: ReadonlySet<string>, n = 2000): Set<string> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(balancer.pick(exclude)?.address ?? 'none');
  return seen;
}

const policies: Array<[string, () => Balancer]> = [
  ['round-robin', () => new RoundRobinBalancer()],
  ['weighted', () => new WeightedBalancer()],
  ['least-request', () => new LeastRequestBalancer(() => ({ inflight: 0 }))],
];

describe.each(policies)('%s', (_, make) => {
  test('never picks an excluded instance, and still reaches every other one', () => {
    const balancer = make();
    balancer.update(set);
    expect(picks(balancer, keys(a, c))).toEqual(new Set(['10.0.1.2', '10.0.2.2']));
  });

  test('gives undefined when every instance was tried; an empty exclusion changes nothing', () => {
    const balancer = make();
    balancer.update(set);
    expect(balancer.pick(keys(...set))).toBeUndefined();
    expect(picks(balancer, new Set())).toEqual(new Set(set.map((i) => i.address)));
  });
});

function tracker() {
  const clock = new FakeClock();
  return new HealthTracker(parseEjectionOptions({ maxEjectedPercent: 100, panicThreshold: 0 }), clock);
}

function eject(health: HealthTracker, target: Instance): void {
  const state = health.state(target);
  health.onStart(state);
  health.onFailure(state, 'connect');
}

describe('the wrappers', () => {
  test('a retry never goes to an ejected instance while a usable one remains', () => {
    const health = tracker();
    const balancer = createBalancer('svc', { health, zoneAffinity: false });
    balancer.update(set);
    eject(health, b);
    eject(health, d);
    // a was tried: only c is both untried and usable.
    expect(picks(balancer, keys(a))).toEqual(new Set(['10.0.2.1']));
    // Every usable one tried: undefined (the agent then takes any usable instance, not an ejected one).
    expect(balancer.pick(keys(a, c))).toBeUndefined();
    expect(picks(balancer, new Set())).toEqual(new Set(['10.0.1.1', '10.0.2.1']));
  });

  test('zone affinity: with every local instance tried, a retry crosses to another zone', () => {
    const health = tracker();
    const balancer = createBalancer('svc', { health, zone: { current: 'a' }, zoneAffinity: { minLocal: 2 } });
    balancer.update(set);
    expect(picks(balancer, new Set())).toEqual(new Set(['10.0.1.1', '10.0.1.2']));
    expect(picks(balancer, keys(a))).toEqual(new Set(['10.0.1.2']));
    expect(picks(balancer, keys(a, b))).toEqual(new Set(['10.0.2.1', '10.0.2.2']));
  });

  test('a custom policy that ignores exclude is picked again by the wrapper', () => {
    const health = tracker();
    const stubborn = (): Balancer => {
      let list: readonly Instance[] = [];
      return {
        update: (instances) => void (list = instances),
        pick: () => list[0],
      };
    };
    const balancer = createBalancer('svc', { health, balancer: stubborn, zoneAffinity: false });
    balancer.update(set);
    expect(balancer.pick()).toBe(a);
    const other = picks(balancer, keys(a));
    expect(other.has('10.0.1.1')).toBe(false);
    expect(other.size).toBeGreaterThan(1);
  });
});
