import { describe, expect, it } from 'vitest';
import {
  CallBudget,
  COLD_FLOOR_THROTTLES,
  CUT_INTERVAL_MS,
  MAX_STRETCH,
  RECOVERY_MS,
  RESUME_FACTOR,
  STORM_MS,
} from '../../src/resolvers/cloudmap-budget.ts';
import { FakeClock } from '../support/fake-clock.ts';

const signal = (): AbortSignal => new AbortController().signal;

/** Takes tokens until one has to wait; returns how many went at once. */
async function burst(budget: CallBudget, clock: FakeClock, max = 1000): Promise<number> {
  let taken = 0;
  for (; taken < max; taken++) {
    let done = false;
    const controller = new AbortController();
    void budget.take(controller.signal).then(
      () => (done = true),
      () => {},
    );
    await clock.run(0);
    if (!done) {
      controller.abort();
      await clock.run(0);
      break;
    }
  }
  return taken;
}

describe('CallBudget', () => {
  it('lets one second of maxCallsPerSecond go at once, then one call per 1/rate', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(5, clock);
    expect(await burst(budget, clock)).toBe(5);
    const order: number[] = [];
    for (let i = 0; i < 3; i++) void budget.take(signal()).then(() => order.push(i));
    await clock.run(199);
    expect(order).toEqual([]);
    await clock.run(1);
    expect(order).toEqual([0]);
    await clock.run(400);
    expect(order).toEqual([0, 1, 2]);
  });

  it('halves the polling share on throttling, at most once per cut interval, down to 1/MAX_STRETCH', () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(2);
    expect(budget.stretch()).toBe(1);
    expect(budget.throttled()).toBe(true);
    expect(budget.throttled()).toBe(false);
    expect(budget.stretch()).toBe(2);
    // The bucket now refills at the polling share: 2 calls/s ÷ 0.9 × ½.
    expect(budget.rate()).toBeCloseTo(2 / 0.9 / 2, 6);
    for (let i = 0; i < 10; i++) {
      clock.advance(CUT_INTERVAL_MS);
      budget.throttled();
    }
    expect(budget.stretch()).toBe(MAX_STRETCH);
    expect(budget.snapshot()).toMatchObject({ throttled: true, stretch: MAX_STRETCH });
  });

  it('grows back linearly once throttling stops, by the whole polling rate per RECOVERY_MS', () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(2);
    budget.throttled();
    // No growth while throttled answers may still be coming in.
    clock.advance(CUT_INTERVAL_MS);
    expect(budget.stretch()).toBe(2);
    clock.advance(RECOVERY_MS / 4);
    expect(budget.stretch()).toBeCloseTo(1 / 0.75, 6);
    clock.advance(RECOVERY_MS / 4);
    expect(budget.stretch()).toBe(1);
    expect(budget.rate()).toBe(50);
  });

  it('after a storm (throttled, nothing answered), resumes at RESUME_FACTOR of the share that last got answers', () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(2);
    budget.answered();
    for (let i = 0; i < 6; i++) {
      budget.throttled();
      clock.advance(CUT_INTERVAL_MS);
    }
    expect(budget.stretch()).toBe(MAX_STRETCH);
    clock.advance(STORM_MS);
    budget.answered();
    expect(budget.stretch()).toBeCloseTo(1 / RESUME_FACTOR, 6);
  });

  it('with answers among throttled calls (a fleet above its quota), only grows linearly', () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(2);
    budget.answered();
    budget.throttled();
    clock.advance(CUT_INTERVAL_MS);
    budget.answered();
    expect(budget.stretch()).toBe(2);
  });

  it('spends tokens at the cut rate while throttled, so retries wait instead of adding load', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(9);
    expect(await burst(budget, clock, 100)).toBe(50);
    budget.throttled();
    // 9 calls/s ÷ 0.9 × ½ = 5 a second.
    let went = 0;
    for (let i = 0; i < 20; i++) void budget.take(signal()).then(() => went++);
    await clock.run(1000);
    expect(went).toBe(5);
  });

  it('after one throttled answer, cold names are served at the cut share of maxCallsPerSecond, not the polling rate', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    // One name polled every 5 s: 0.2 calls a second planned.
    budget.setDemand(0.2);
    expect(await burst(budget, clock, 100)).toBe(50);
    budget.throttled();
    budget.answered();
    // Polling: 0.2 × ½ ÷ 0.9, a token every 9 s. Cold names: 50 × ½ = 25 a second.
    expect(budget.rate()).toBeCloseTo(0.2 / 2 / 0.9, 6);
    const served: string[] = [];
    for (let i = 0; i < 5; i++) void budget.take(signal(), 'cold').then(() => served.push(`cold ${i}`));
    void budget.take(signal()).then(() => served.push('poll'));
    await clock.run(200);
    expect(served).toEqual(['cold 0', 'cold 1', 'cold 2', 'cold 3', 'cold 4']);
    // With no cold name waiting, the rate is the polling rate again.
    expect(budget.rate()).toBeCloseTo(0.2 / 2 / 0.9, 6);
    await clock.run(8000);
    expect(served).toHaveLength(5);
    await clock.run(1000);
    expect(served).toEqual(['cold 0', 'cold 1', 'cold 2', 'cold 3', 'cold 4', 'poll']);
  });

  it("a cold name's retry of a throttled attempt is not held either, before Cloud Map answers again", async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(0.2);
    expect(await burst(budget, clock, 100)).toBe(50);
    budget.throttled();
    let went = false;
    void budget.take(signal(), 'cold').then(() => (went = true));
    await clock.run(40);
    expect(went).toBe(true);
  });

  it('two throttled answers in a row end the cold floor until Cloud Map answers again', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(0.2);
    expect(await burst(budget, clock, 100)).toBe(50);
    budget.throttled();
    budget.throttled();
    let went = false;
    void budget.take(signal(), 'cold').then(() => (went = true));
    expect(budget.rate()).toBeCloseTo(0.2 / 2 / 0.9, 6);
    await clock.run(1000);
    expect(went).toBe(false);
    budget.answered();
    await clock.run(40);
    expect(went).toBe(true);
  });

  it('from the second throttled answer in a row (a storm), cold names wait at the polling rate, at the front', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(50, clock);
    budget.setDemand(9);
    expect(await burst(budget, clock, 100)).toBe(50);
    budget.answered();
    for (let i = 0; i < 3; i++) {
      budget.throttled();
      await clock.run(i < 2 ? CUT_INTERVAL_MS : STORM_MS - 2 * CUT_INTERVAL_MS);
    }
    // Three throttled answers in a row, three cuts, down to 1/MAX_STRETCH: 9 ÷ 6 ÷ 0.9 = 1.67
    // calls a second, cold or not.
    expect(COLD_FLOOR_THROTTLES).toBeLessThanOrEqual(3);
    expect(await burst(budget, clock)).toBe(1);
    const served: string[] = [];
    void budget.take(signal()).then(() => served.push('poll'));
    for (let i = 0; i < 3; i++) void budget.take(signal(), 'cold').then(() => served.push(`cold ${i}`));
    expect(budget.rate()).toBeCloseTo(9 / MAX_STRETCH / 0.9, 6);
    // A token every 600 ms.
    await clock.run(1500);
    expect(served).toEqual(['cold 0', 'cold 1', 'cold 2']);
    await clock.run(600);
    expect(served).toEqual(['cold 0', 'cold 1', 'cold 2', 'poll']);
    // Cloud Map answers again: the floor is back for the next cold names.
    budget.answered();
    for (let i = 3; i < 6; i++) void budget.take(signal(), 'cold').then(() => served.push(`cold ${i}`));
    expect(budget.rate()).toBeGreaterThan(10);
    await clock.run(100);
    expect(served.slice(4)).toEqual(['cold 3', 'cold 4', 'cold 5']);
  });

  it('follow-ups and cold names wait at the front of the line, in the order they came', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(1, clock);
    await budget.take(signal());
    const order: string[] = [];
    void budget.take(signal()).then(() => order.push('poll 1'));
    void budget.take(signal(), 'follow-up').then(() => order.push('follow-up 1'));
    void budget.take(signal()).then(() => order.push('poll 2'));
    void budget.take(signal(), 'cold').then(() => order.push('cold 1'));
    void budget.take(signal(), 'follow-up').then(() => order.push('follow-up 2'));
    await clock.run(5000);
    expect(order).toEqual(['follow-up 1', 'cold 1', 'follow-up 2', 'poll 1', 'poll 2']);
  });

  it('rejects waiters when aborted or closed', async () => {
    const clock = new FakeClock();
    const budget = new CallBudget(1, clock);
    await budget.take(signal());
    const controller = new AbortController();
    const aborted = budget.take(controller.signal);
    const closed = budget.take(signal());
    controller.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    budget.rejectAll(new Error('closed'));
    await expect(closed).rejects.toThrow('closed');
    expect(clock.pending).toBe(0);
  });
});
