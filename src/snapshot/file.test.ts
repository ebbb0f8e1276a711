import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { readSnapshot, readSnapshotHeader, writeSnapshot, type Codec } from './file.ts';

const deflate: Codec = {
  name: 'deflate-raw',
  compress: (b) => deflateRawSync(b),
  decompress: (b) => inflateRawSync(b),
};

function contents() {
  const ram = new Uint8Array(64 * 4096 + 100);
  ram[5] = 1; // page 0
  ram.fill(0xab, 10 * 4096, 11 * 4096); // page 10
  ram[64 * 4096 + 99] = 7; // the partial last page
  return {
    header: {
      format: 'previrt-snapshot' as const,
      stateVersion: 1,
      createdBy: 'test',
      platform: 'xen',
      kernelName: 'kernel.elf',
      cycle: 12345,
    },
    state: { cpu: { eax: 1 }, list: [1, 2, 3] },
    ram,
    blobs: new Map([['kernel', Uint8Array.of(0x7f, 0x45, 0x4c, 0x46)]]),
  };
}

test('a snapshot file round-trips: header, state, memory (zero pages cost a bit), blobs', () => {
  const c = contents();
  const bytes = writeSnapshot(c, deflate);
  // 65 pages of which 3 are not zero, compressed: far smaller than the memory.
  assert.ok(bytes.length < 4096, `${bytes.length} bytes`);
  const back = readSnapshot(bytes, deflate);
  assert.ok(typeof back !== 'string', String(back));
  assert.deepEqual(back.header, c.header);
  assert.deepEqual(back.state, c.state);
  assert.deepEqual(back.ram, c.ram);
  assert.deepEqual(back.blobs.get('kernel'), c.blobs.get('kernel'));
  const header = readSnapshotHeader(bytes);
  assert.ok(typeof header !== 'string');
  assert.deepEqual(
    header.sections.map((s) => [s.name, s.encoding, s.codec]),
    [
      ['state', 'json', 'deflate-raw'],
      ['ram', 'pages', 'deflate-raw'],
      ['kernel', 'bytes', 'deflate-raw'],
    ],
  );
});

test('a truncated, damaged, foreign or newer file is refused with one line', () => {
  const bytes = writeSnapshot(contents(), deflate);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /too short/],
    ['truncated', bytes.subarray(0, bytes.length - 10), /damaged or truncated|truncated/],
    ['a text file', new TextEncoder().encode('hello, this is not a snapshot at all'), /bad magic/],
  ];
  const flipped = bytes.slice();
  flipped[bytes.length >> 1] ^= 0x40;
  cases.push(['a flipped byte', flipped, /damaged or truncated/]);
  const newer = bytes.slice();
  new DataView(newer.buffer).setUint32(8, 99, true);
  cases.push(['a newer container', newer, /version 99 is not supported/]);
  for (const [what, b, message] of cases) {
    const r = readSnapshot(b, deflate);
    assert.equal(typeof r, 'string', what);
    assert.match(r as string, message, what);
    assert.ok(!(r as string).includes('\n'), `${what}: one line`);
  }
  const otherCodec: Codec = { ...deflate, name: 'zstd' };
  assert.match(readSnapshot(bytes, otherCodec) as string, /codec deflate-raw/);
});
