// Shared by the whole-system fuzzers (test/machine/fuzz.test.ts on the raw PC,
// test/vmm/fuzz.test.ts on xen): which seeds run, how a failure names its seed and how to run
// it again, and the snapshot round trip every wrecked guest must survive.
import assert, { AssertionError } from 'node:assert/strict';
import { relative } from 'node:path';
import type { EndReason } from '../src/machine/Machine.ts';
import type { Guest } from '../src/platforms/platform.ts';
import { restoreGuest, type RestoreOptions } from '../src/platforms/restoreGuest.ts';
import { readSnapshot, writeSnapshot, type Codec } from '../src/snapshot/file.ts';
import { ROOT } from './guest/guest.ts';

/**
 * The seeds to run: 1 to `count`; PREVIRT_FUZZ_SEEDS=N runs 1 to N, PREVIRT_FUZZ_SEED=S only S
 * (what a failure message says to use).
 */
export function fuzzSeeds(count: number): number[] {
  const one = process.env.PREVIRT_FUZZ_SEED;
  if (one !== undefined && one !== '') {
    const seed = Number(one);
    if (!Number.isInteger(seed) || seed < 1)
      throw new Error(`PREVIRT_FUZZ_SEED=${one}: not a seed`);
    return [seed];
  }
  const n = Number(process.env.PREVIRT_FUZZ_SEEDS ?? count);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`PREVIRT_FUZZ_SEEDS=${process.env.PREVIRT_FUZZ_SEEDS}: not a count`);
  return Array.from({ length: n }, (_, k) => k + 1);
}

/**
 * Runs `body` for one seed. Whatever goes wrong — an assertion or a host exception, which a
 * guest must never cause (DESIGN.md decision 9) — fails the test with the seed and the command
 * that runs just that seed again.
 */
export function withSeed(testFile: string, seed: number, body: () => void): void {
  const again = `PREVIRT_FUZZ_SEED=${seed} node --import tsx --test ${relative(ROOT, testFile)}`;
  try {
    body();
  } catch (e) {
    if (e instanceof AssertionError) {
      e.message = `seed ${seed}: ${e.message}\nrun it again: ${again}`;
      throw e;
    }
    const stack = e instanceof Error ? (e.stack ?? String(e)) : String(e);
    assert.fail(`seed ${seed}: host exception ${stack}\nrun it again: ${again}`);
  }
}

/** Text that only a host error puts into a message meant for the user or the guest's owner. */
const HOST_ERROR =
  /TypeError|RangeError|ReferenceError|SyntaxError|Cannot read|is not a function|is not defined|Maximum call stack|undefined|NaN/;

/** A guest-level message (a triple fault's, a crashed domain's) that a host error wrote. */
export function hostErrorIn(message: string): boolean {
  return HOST_ERROR.test(message);
}

/** Whether a run that was given `limit` may end as it did, by the clock alone. */
export function cycleLimitProblem(guest: Guest, end: EndReason, limit: number): string | undefined {
  const cycles = guest.stats().machine.cycles;
  if (end.kind === 'cycle-limit' && cycles < limit)
    return `ended at the cycle limit at cycle ${cycles}, before the limit ${limit}`;
  if (cycles > limit + guest.machine.costModel.hz / 100)
    return `ran to cycle ${cycles}, more than a slice past the limit ${limit}`;
  return undefined;
}

/** The snapshot file without compression: what it does to a state (JSON, pages, CRCs) is kept. */
const PLAIN: Codec = { name: 'none', compress: (b) => b, decompress: (b) => b };

/** Where two JSON values first differ, as a path ('' when they are equal). */
function difference(a: unknown, b: unknown, path = 'state'): string {
  if (a === b) return '';
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null)
    return `${path}: ${JSON.stringify(a)?.slice(0, 200)}, not ${JSON.stringify(b)?.slice(0, 200)}`;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = difference(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      `${path}.${k}`,
    );
    if (d !== '') return d;
  }
  return '';
}

/** Index of the first byte where two memories differ, or -1. */
function firstDifferentByte(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  if (Buffer.compare(a, b) === 0) return -1;
  return a.findIndex((byte, k) => byte !== b[k]);
}

/**
 * Asserts that `copy` is in the state `original` is in: every component's, and the memory (a
 * difference names the first field that differs: the copy's value, not the original's).
 */
export function assertSameState(copy: Guest, original: Guest, why: string): void {
  const [a, b] = [copy, original];
  const sa = a.save();
  const sb = b.save();
  const ja = JSON.stringify(sa.state);
  const jb = JSON.stringify(sb.state);
  if (ja !== jb) assert.fail(`${why}: ${difference(JSON.parse(ja), JSON.parse(jb))}`);
  const at = firstDifferentByte(sa.ram, sb.ram);
  assert.equal(at, -1, `${why}: memory differs at machine address 0x${at.toString(16)}`);
}

/**
 * A snapshot of the guest as it is (between runs), through the snapshot file's bytes and back
 * into a new guest (restoreGuest, with `options`): the restore must succeed, and a snapshot of
 * the restored guest must be the one it came from — the state was well-formed and every
 * component took all of it back. A snapshot taken at a cycle limit restores running (the end
 * is let go, as `resume` does), so the restored guest is compared after the original resumes.
 */
export function snapshotRoundTrip(guest: Guest, extra: unknown, options: RestoreOptions): Guest {
  const bytes = writeSnapshot(guest.save(extra), PLAIN);
  const contents = readSnapshot(bytes, PLAIN);
  assert.ok(typeof contents !== 'string', `the snapshot does not read back: ${String(contents)}`);
  const restored = restoreGuest(contents, options);
  assert.ok(typeof restored !== 'string', `the snapshot does not restore: ${String(restored)}`);
  guest.machine.resume();
  assertSameState(restored, guest, 'restored, then snapshotted again');
  return restored;
}
