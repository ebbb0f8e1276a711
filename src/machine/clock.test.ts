import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimClock } from './clock.ts';

test('events at one cycle fire in insertion order; cancelled ones never', () => {
  let now = 0;
  const clock = new SimClock(1000, () => now);
  const fired: string[] = [];
  clock.at(10, () => fired.push('a'));
  const b = clock.at(10, () => fired.push('b'));
  clock.at(5, () => fired.push('c'));
  clock.at(10, () => fired.push('d'));
  b.cancel();
  now = 10;
  assert.equal(clock.fireDue(10), 3);
  assert.deepEqual(fired, ['c', 'a', 'd']);
});

test('a restored clock fires the restored events in the saved order, the audit names what is missing', () => {
  let now = 0;
  const clock = new SimClock(1000, () => now);
  const saved: { name: string; cycle: number; seq: number }[] = [];
  for (const [name, cycle] of [
    ['x', 20],
    ['y', 20],
    ['z', 15],
  ] as const) {
    const t = clock.at(cycle, () => {}, `dev.${name}`);
    saved.push({ name, cycle: t.cycle, seq: t.seq });
  }
  const state = clock.save();
  assert.deepEqual(
    state.pending.map((e) => e.owner),
    ['dev.z', 'dev.x', 'dev.y'],
  );

  const copy = new SimClock(1000, () => now);
  copy.restore(structuredClone(state));
  const fired: string[] = [];
  // Restored in another order than they were scheduled: the saved places decide.
  for (const s of [...saved].reverse())
    copy.restoreAt(s, () => fired.push(s.name), `dev.${s.name}`);
  assert.equal(copy.unrestored(state), undefined);
  // A new event after the restore comes after every saved one at the same cycle.
  copy.at(20, () => fired.push('new'), 'dev.new');
  now = 20;
  copy.fireDue(20);
  assert.deepEqual(fired, ['z', 'x', 'y', 'new']);

  const partial = new SimClock(1000, () => 0);
  partial.restore(state);
  partial.restoreAt(saved[0], () => {}, 'dev.x');
  partial.at(3, () => {}, 'dev.extra');
  assert.match(
    partial.unrestored(state) ?? '',
    /not restored: dev\.z@15#2, dev\.y@20#1; not in the snapshot: dev\.extra@3#3/,
  );
  assert.throws(() => partial.restore({ ...state, version: 2 as 1 }), /version 2/);
});

test('events cancelled anywhere in the queue leave the others in (cycle, insertion) order', () => {
  // A seeded mix of inserts, cancels (taken out of the heap at once) and firing, against a
  // sorted list of what is still pending.
  let now = 0;
  const clock = new SimClock(1000, () => now);
  let state = 12345;
  const rand = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const live: { cycle: number; seq: number; cancel: () => void }[] = [];
  const fired: number[] = [];
  for (let step = 0; step < 3000; step++) {
    const op = rand(10);
    if (op < 6) {
      const cycle = now + rand(50);
      const t = clock.at(cycle, () => fired.push(t.seq));
      live.push({ cycle, seq: t.seq, cancel: () => t.cancel() });
    } else if (op < 9 && live.length > 0) {
      const [gone] = live.splice(rand(live.length), 1);
      gone.cancel();
      gone.cancel(); // twice is once
    } else {
      now += rand(20);
      live.sort((a, b) => a.cycle - b.cycle || a.seq - b.seq);
      const due = live.filter((e) => e.cycle <= now).map((e) => e.seq);
      live.splice(0, due.length);
      fired.length = 0;
      assert.equal(clock.fireDue(now), due.length);
      assert.deepEqual(fired, due);
      assert.equal(clock.pending, live.length);
    }
  }
});
