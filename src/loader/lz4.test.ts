import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { xorshift32 } from '../../test/random.ts';
import { isLz4Legacy, Lz4Error, lz4LegacyDecode } from './lz4.ts';

/** `lz4 -l` (the legacy frame, as Linux's build runs it) over `data`, at `level`. */
function lz4Legacy(data: Uint8Array, level: number): Uint8Array {
  return new Uint8Array(
    execFileSync('lz4', ['-l', `-${level}`, '-c'], { input: data, maxBuffer: 64 << 20 }),
  );
}

/** Text, runs, repeats at short and long distances and noise: every kind of sequence. */
function mixed(size: number, seed: number): Uint8Array {
  const next = xorshift32(seed);
  const rng = { below: (n: number): number => next() % n };
  const out = new Uint8Array(size);
  const words = ['mov', 'eax', 'push', 'ebp', 'call', 'ret', '\n', ' ', 'previrt'];
  let at = 0;
  while (at < size) {
    const kind = rng.below(4);
    if (kind === 0) {
      for (const c of new TextEncoder().encode(words[rng.below(words.length)]))
        if (at < size) out[at++] = c;
    } else if (kind === 1) {
      const b = rng.below(256);
      for (let n = rng.below(300); n > 0 && at < size; n--) out[at++] = b;
    } else if (kind === 2 && at > 0) {
      const from = at - 1 - rng.below(Math.min(at, 70000));
      for (let n = 4 + rng.below(400); n > 0 && at < size; n--) out[at++] = out[from + (n % 7)];
    } else {
      for (let n = rng.below(64); n > 0 && at < size; n--) out[at++] = rng.below(256);
    }
  }
  return out;
}

test('lz4: the legacy frame lz4 -l writes decodes to the original bytes (several blocks)', () => {
  // 9 MB: two legacy blocks (at most 8 MB each).
  for (const [size, level, seed] of [
    [0, 9, 1],
    [1, 9, 2],
    [100_000, 1, 3],
    [9 << 20, 9, 4],
  ] as const) {
    const data = mixed(size, seed);
    const frame = lz4Legacy(data, level);
    assert.ok(isLz4Legacy(frame));
    const out = lz4LegacyDecode(frame, size);
    assert.ok(out instanceof Uint8Array, out instanceof Lz4Error ? out.message : '');
    assert.equal(Buffer.compare(Buffer.from(out), Buffer.from(data)), 0, `size ${size}`);
  }
});

test('lz4: a concatenated frame continues after its magic', () => {
  const a = mixed(50_000, 5);
  const b = mixed(30_000, 6);
  const fb = lz4Legacy(b, 9);
  const both = new Uint8Array([...lz4Legacy(a, 9), ...fb]);
  const out = lz4LegacyDecode(both, a.length + b.length);
  assert.ok(out instanceof Uint8Array);
  assert.deepEqual(out, new Uint8Array([...a, ...b]));
});

test('lz4: damaged frames are one message each, nothing read or written out of bounds', () => {
  const data = mixed(200_000, 7);
  const frame = lz4Legacy(data, 9);
  const error = (bytes: Uint8Array, size = data.length): string => {
    const r = lz4LegacyDecode(bytes, size);
    assert.ok(r instanceof Lz4Error, 'a damaged frame must be refused');
    return r.message;
  };
  assert.match(error(frame.subarray(4)), /not an LZ4 legacy frame/);
  assert.match(error(frame.subarray(0, frame.length - 1000)), /claims \d+ bytes, \d+ are left/);
  assert.match(error(frame, data.length + 5), /the frame ends after 200000 of 200005 bytes/);
  assert.match(error(frame, 1000), /the output exceeds 1000 bytes/);
  // Random damage inside the block: every outcome is a value, never an exception.
  const next = xorshift32(8);
  const rng = { below: (n: number): number => next() % n };
  let refused = 0;
  for (let k = 0; k < 200; k++) {
    const bad = frame.slice();
    for (let n = 0; n < 4; n++) bad[8 + rng.below(bad.length - 8)] = rng.below(256);
    if (lz4LegacyDecode(bad, data.length) instanceof Lz4Error) refused++;
  }
  assert.ok(refused > 0, 'some damage must be detected');
  // A block whose first match points before the output.
  const block = Uint8Array.of(0x10, 0x41, 0x05, 0x00, 0x10, 0x42);
  const frameOf = new Uint8Array(8 + block.length);
  new DataView(frameOf.buffer).setUint32(0, 0x184c2102, true);
  new DataView(frameOf.buffer).setUint32(4, block.length, true);
  frameOf.set(block, 8);
  assert.match(error(frameOf, 10), /a match offset 5 points before the block's output/);
});
