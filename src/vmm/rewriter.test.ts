import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rewriteSites } from './rewriter.ts';
import { readSiteRecords } from './sections.ts';
import { ENTRY_EMULATE, STUB_IRQ_CHECK, Vcpu, VCPU_PAGE } from './window.ts';

/** A code image at link address 0xC0100000 for hand-made sites. */
function image(bytes: number[]): (at: number, n: number) => Uint8Array | undefined {
  const base = 0xc0100000;
  const code = Uint8Array.from(bytes);
  return (at, n) =>
    at < base || at + n > base + code.length ? undefined : code.slice(at - base, at - base + n);
}
const NOP7 = [0x0f, 0x1f, 0x80, 0, 0, 0, 0];
const le = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

describe('the rewriter', () => {
  it('turns cli into a move to the virtual IF, in place', () => {
    const r = rewriteSites(
      [{ kind: '', start: 0xc0100000, end: 0xc0100008 }],
      image([0xfa, ...NOP7]),
    );
    assert.ok(typeof r !== 'string');
    assert.deepEqual(
      [...r.patches[0].bytes],
      [0xc6, 0x05, ...le(VCPU_PAGE + Vcpu.vif + 1), 0x00, 0x90],
    );
    assert.equal(r.calls.size, 0);
  });

  it('makes a call site for mov to CR3, with the call relative to the entry', () => {
    const code = [0x0f, 0x22, 0xd8, ...new Array<number>(12).fill(0x90)];
    const r = rewriteSites([{ kind: '', start: 0xc0100000, end: 0xc010000f }], image(code));
    assert.ok(typeof r !== 'string');
    const call = r.patches[0].bytes;
    assert.equal(call[0], 0xe8);
    const rel = call[1] | (call[2] << 8) | (call[3] << 16) | (call[4] << 24);
    assert.equal((0xc0100005 + rel) >>> 0, ENTRY_EMULATE);
    assert.equal(r.calls.get(0xc0100005)?.kind, 'mov-to-cr');
  });

  it('leaves the interrupt check of sti to a hlt right after it', () => {
    const sti = [0xfb, ...new Array<number>(23).fill(0x90)];
    const hlt = [0xf4, ...new Array<number>(6).fill(0x90)];
    const records = [
      { kind: '', start: 0xc0100000, end: 0xc0100018 },
      { kind: '', start: 0xc0100018, end: 0xc010001f },
    ];
    const r = rewriteSites(records, image([...sti, ...hlt]));
    assert.ok(typeof r !== 'string');
    assert.ok(!r.patches[0].bytes.includes(0xe8), 'no call to the check in sti; hlt');
    const alone = rewriteSites([records[0]], image(sti));
    assert.ok(typeof alone !== 'string');
    const b = alone.patches[0].bytes;
    const rel = b[8] | (b[9] << 8) | (b[10] << 16) | (b[11] << 24);
    assert.equal(b[7], 0xe8);
    assert.equal((0xc010000c + rel) >>> 0, STUB_IRQ_CHECK);
  });

  it('refuses a replacement that does not fit its site', () => {
    // mov %eax,%cr3 without padding: the 5-byte call cannot fit in 3 bytes.
    const r = rewriteSites(
      [{ kind: '', start: 0xc0100000, end: 0xc0100003 }],
      image([0x0f, 0x22, 0xd8]),
    );
    assert.equal(
      r,
      'site at 0xc0100000 (mov-to-cr): the replacement needs 5 bytes but the site has 3 (instruction and padding)',
    );
  });

  it('refuses an instruction it does not emulate, and a site outside the image', () => {
    const r = rewriteSites(
      [{ kind: '', start: 0xc0100000, end: 0xc0100008 }],
      image([0x90, ...NOP7]),
    );
    assert.match(String(r), /site at 0xc0100000: instruction 90 is not one the VMM emulates/);
    const out = rewriteSites([{ kind: '', start: 0xc0200000, end: 0xc0200008 }], image([0xfa]));
    assert.match(String(out), /outside the kernel image/);
  });
});

describe('annotation sections', () => {
  it('names a kernel without .afterburn in one line', () => {
    // A minimal ELF32 header with one null section header and a name table.
    const elf = new Uint8Array(52 + 80 + 16);
    const v = new DataView(elf.buffer);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
    v.setUint32(32, 52, true); // e_shoff
    v.setUint16(46, 40, true); // e_shentsize
    v.setUint16(48, 2, true); // e_shnum
    v.setUint16(50, 1, true); // e_shstrndx
    v.setUint32(52 + 40 + 16, 132, true); // name table offset
    v.setUint32(52 + 40 + 20, 16, true);
    const r = readSiteRecords(elf, 'native.elf');
    assert.equal(typeof r, 'string');
    assert.match(String(r), /^native\.elf: not an afterburned kernel \(no \.afterburn section\)/);
  });
});
