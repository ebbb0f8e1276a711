import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paraVirtualizedFor, readElfNotes } from './notes.ts';

/** One note record: {namesz, descsz, type}, name and desc each padded to 4 bytes. */
function note(name: string, type: number, desc: string): number[] {
  const pad = (b: number[]): number[] => [
    ...b,
    ...new Array<number>((4 - (b.length % 4)) % 4).fill(0),
  ];
  const n = [...Buffer.from(`${name}\0`, 'latin1')];
  const d = [...Buffer.from(desc, 'latin1')];
  const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  return [...u32(n.length), ...u32(d.length), ...u32(type), ...pad(n), ...pad(d)];
}

/**
 * A minimal ELF32 file: the header, the notes at offset 52, and either one program header
 * (PT_NOTE) or two section headers (null, SHT_NOTE) describing them.
 */
function elf(notes: number[], where: 'segment' | 'section'): Uint8Array {
  const bytes = new Uint8Array(52 + notes.length + 80);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  v.setUint16(16, 2, true);
  v.setUint16(18, 3, true);
  bytes.set(notes, 52);
  const table = 52 + notes.length;
  if (where === 'segment') {
    v.setUint32(28, table, true);
    v.setUint16(42, 32, true);
    v.setUint16(44, 1, true);
    v.setUint32(table, 4, true); // PT_NOTE
    v.setUint32(table + 4, 52, true);
    v.setUint32(table + 16, notes.length, true);
  } else {
    v.setUint32(32, table, true);
    v.setUint16(46, 40, true);
    v.setUint16(48, 2, true);
    v.setUint32(table + 40 + 4, 7, true); // SHT_NOTE
    v.setUint32(table + 40 + 16, 52, true);
    v.setUint32(table + 40 + 20, notes.length, true);
  }
  return bytes;
}

test('the para-virtualization note is found in a PT_NOTE segment and in an SHT_NOTE section', () => {
  const notes = [...note('GNU', 3, 'abcd'), ...note('previrt', 1, 'xen\0')];
  for (const where of ['segment', 'section'] as const) {
    const file = elf(notes, where);
    assert.deepEqual(
      readElfNotes(file).map((n) => [n.name, n.type, n.desc.length]),
      [
        ['GNU', 3, 4],
        ['previrt', 1, 4],
      ],
    );
    assert.equal(paraVirtualizedFor(file), 'xen');
  }
});

test('no note, another owner or another type: not para-virtualized', () => {
  assert.equal(paraVirtualizedFor(elf([], 'section')), undefined);
  assert.equal(paraVirtualizedFor(elf(note('previrt', 2, 'xen\0'), 'section')), undefined);
  assert.equal(paraVirtualizedFor(elf(note('Xen', 1, 'xen\0'), 'segment')), undefined);
});

test('malformed files and notes give no note, never an exception', () => {
  const good = elf(note('previrt', 1, 'l4\0'), 'segment');
  assert.equal(paraVirtualizedFor(good), 'l4');
  for (let n = 0; n < good.length; n++)
    assert.doesNotThrow(() => readElfNotes(good.subarray(0, n)));
  assert.equal(paraVirtualizedFor(good.subarray(0, 60)), undefined);
  assert.deepEqual(readElfNotes(new Uint8Array(0)), []);
  // A name size that runs past the segment.
  const bad = elf(note('previrt', 1, 'xen\0'), 'section');
  new DataView(bad.buffer).setUint32(52, 0xfffffff0, true);
  assert.deepEqual(readElfNotes(bad), []);
  // A header table that runs past the end of the file.
  const cut = elf(note('previrt', 1, 'xen\0'), 'section');
  new DataView(cut.buffer).setUint16(48, 500, true);
  assert.deepEqual(readElfNotes(cut), []);
});
