import { expect, test } from 'vitest';
import { DeadlineQueue, type Deadline } from '../src/deadlines.ts';
import { FakeClock } from './support/fake-clock.ts';

const item = (name: string): Deadline & { name: string } => ({ name, dueAt: 0, dueSeq: 0, deadlineIndex: -1 });

test('many deadlines on one timer: in order of due time, then of setting; replaced and cancelled ones do not run', () => {
  const clock = new FakeClock();
  const ran: string[] = [];
  const queue = new DeadlineQueue<ReturnType<typeof item>>(clock, (i) => ran.push(`${i.name}@${clock.now()}`));
  const items = Array.from({ length: 200 }, (_, i) => item(`i${i}`));
  // Set in a scrambled order, with ties.
  items.forEach((it, i) => queue.set(it, ((i * 37) % 200) * 10 + (i % 3 === 0 ? 5 : 0)));
  queue.set(items[5]!, 1); // replaced: runs at 1 only
  queue.cancel(items[6]!);
  expect(queue.size).toBe(199);
  expect(clock.pending).toBe(1);
  clock.advance(3000);
  expect(ran).toHaveLength(199);
  expect(ran[0]).toBe('i5@1');
  const times = ran.map((r) => Number(r.split('@')[1]));
  expect(times).toEqual([...times].sort((a, b) => a - b));
  expect(ran.some((r) => r.startsWith('i6@'))).toBe(false);
  expect(clock.pending).toBe(0);
});

test('a deadline set while firing, due now or later, runs at its time; clear() leaves no timer', () => {
  const clock = new FakeClock();
  const ran: string[] = [];
  const later = item('later');
  const now = item('now');
  const queue = new DeadlineQueue<ReturnType<typeof item>>(clock, (i) => {
    ran.push(`${i.name}@${clock.now()}`);
    if (i.name === 'first') {
      queue.set(now, 0);
      queue.set(later, 50);
    }
  });
  queue.set(item('first'), 100);
  clock.advance(200);
  expect(ran).toEqual(['first@100', 'now@100', 'later@150']);
  queue.set(item('x'), 10);
  queue.clear();
  expect(queue.size).toBe(0);
  expect(clock.pending).toBe(0);
});
