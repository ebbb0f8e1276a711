import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneClock, testClock, throughJson, type TestClock } from '../testing.ts';
import { withFcs } from './frame.ts';
import { EthernetLink } from './link.ts';

const frame = (n: number): Uint8Array =>
  withFcs(Uint8Array.from({ length: 60 + n }, (_, k) => k ^ n));

/** A link with a receiver at both ends that records (cycle, first payload byte, length). */
function rig(t: TestClock, link: EthernetLink): string[][] {
  const got: string[][] = [[], []];
  for (const end of [0, 1] as const)
    link.attach(end, { receive: (f) => got[end].push(`${t.clock.now()}:${f[15]}:${f.length}`) });
  return got;
}

test('a frame arrives when its last bit does and the wire is busy until the gap has gone', () => {
  const t = testClock(1_000_000_000);
  const link = new EthernetLink(t.clock, 1_000_000_000);
  const got = rig(t, link);
  const free = link.send(0, frame(4)); // 68 bytes with FCS
  assert.equal(free, (8 + 68 + 12) * 8);
  t.advance(10_000);
  assert.deepEqual(got[1], [`${(8 + 68) * 8}:${15 ^ 4}:68`]);
});

test('link state: frames in flight both ways, a held (reordered) frame and the fault generator', () => {
  const a = testClock(2_800_000_000);
  const faults = { seed: 9, drop: 0.1, duplicate: 0.2, reorder: 0.3, corrupt: 0.1 };
  const link = new EthernetLink(a.clock, 1_000_000_000, faults);
  const gotA = rig(a, link);
  for (let n = 0; n < 40; n++) {
    link.send(0, frame(n));
    if (n % 3 === 0) link.send(1, frame(100 + n));
  }
  a.advance(40_000); // some delivered, the rest still on the wire
  // Go on until a frame is held back (the next one in its direction releases it).
  for (let n = 50; link.save().directions[0].held === null && n < 90; n++) link.send(0, frame(n));
  const state = throughJson(link.save());
  assert.ok(state.directions[0].inFlight.length > 0 && state.directions[1].inFlight.length > 0);
  assert.ok(
    state.directions.some((d) => d.held !== null),
    'a frame is held back to reorder',
  );
  const b = cloneClock(a);
  const twin = new EthernetLink(b.clock, 1_000_000_000);
  const gotB = rig(b, twin);
  twin.restore(state);
  assert.equal(b.audit(), undefined, 'every delivery came back at its place');
  assert.deepEqual(twin.save(), link.save());
  const before = gotA.map((g) => g.length);
  for (const [t, l] of [
    [a, link],
    [b, twin],
  ] as const) {
    for (let n = 0; n < 20; n++) l.send(n % 2 === 0 ? 0 : 1, frame(200 + n));
    t.advance(10_000_000);
  }
  assert.deepEqual(
    gotB,
    gotA.map((g, k) => g.slice(before[k])),
    'the same frames, at the same cycles, in the same order',
  );
  assert.deepEqual(twin.save(), link.save());
  assert.deepEqual(twin.counters(0), link.counters(0));
  assert.throws(
    () => twin.restore({ ...state, directions: [state.directions[0]] }),
    /link\.directions: expected 2 entries, got 1/,
  );
});
