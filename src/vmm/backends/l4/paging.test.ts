// The l4 backend's page-table logic (paging.ts) against a recording host: walks with the guest's
// rights and accessed/dirty bits, page-table writes as unmaps of the old frame's alias (all
// rights, or only write), status bits folded into accessed/dirty, frames never mapped out
// skipped, a directory entry's change revoking its old table's frames, 64 fpages per call.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFpage, R, RWX, W } from '../../../hypervisor/l4/abi.ts';
import { GuestPaging, PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US } from './paging.ts';

const PAGES = 1024; // 4 MB of guest memory
const ALIAS = 0xc0000000;
const PD = 0x1000;
const PT = 0x2000;

function setup(status = 0): {
  p: GuestPaging;
  view: DataView;
  calls: { pages: { base: number; rights: number }[]; flush: boolean }[];
} {
  const view = new DataView(new ArrayBuffer(PAGES * 4096));
  const calls: { pages: { base: number; rights: number }[]; flush: boolean }[] = [];
  const p = new GuestPaging(view, PAGES, {
    unmap: (fpages, flush) => {
      calls.push({
        pages: fpages.map((f) => ({ base: decodeFpage(f).base, rights: decodeFpage(f).rights })),
        flush,
      });
      return fpages.map((f) => (f & ~0xf) | status);
    },
    alias: (frame) => (frame < PAGES ? (ALIAS + frame * 4096) >>> 0 : undefined),
    crash: (m) => assert.fail(m),
  });
  p.paging = true;
  p.cr3 = PD;
  // The directory maps its first 4 MB through PT; PT maps page k to frame k (the guest's own
  // one-to-one map, enough for the entries' pointers to be translated).
  view.setUint32(PD, PT | PTE_P | PTE_RW | PTE_US, true);
  for (let k = 0; k < 1024; k++) view.setUint32(PT + k * 4, (k << 12) | PTE_P | PTE_RW, true);
  return { p, view, calls };
}

test('walks give the guest’s rights and set accessed and dirty as the CPU would', () => {
  const { p, view } = setup();
  view.setUint32(PT + 5 * 4, (0x300 << 12) | PTE_P | PTE_US, true); // user, read-only
  const read = p.walk(PD, 0x5000, false, true);
  assert.deepEqual(read, { ok: true, frame: 0x300, writable: false, user: true, pteAt: PT + 20 });
  assert.equal(view.getUint32(PT + 20, true) & (PTE_A | PTE_D), PTE_A);
  assert.deepEqual(p.walk(PD, 0x5000, true, true), { ok: false, present: true });
  // Supervisor pages are not the user's; the kernel writes read-only pages only without CR0.WP.
  assert.deepEqual(p.walk(PD, 0x6000, false, true), { ok: false, present: true });
  assert.equal(p.walk(PD, 0x5000, true, false).ok, true);
  p.cr0Of = () => 0x80010000;
  assert.deepEqual(p.walk(PD, 0x5000, true, false), { ok: false, present: true });
  assert.deepEqual(p.walk(PD, 0x400000, false, false), { ok: false, present: false });
  const w = p.walk(PD, 0x7000, true, false);
  assert.equal(w.ok, true);
  assert.equal(view.getUint32(PT + 7 * 4, true) & (PTE_A | PTE_D), PTE_A | PTE_D);
});

test('a page-table write unmaps the old frame’s alias: all rights for a new frame, W for read-only', () => {
  const { p, view, calls } = setup();
  const ptr = PT + 9 * 4; // the entry's address, guest-virtual = guest-physical here
  p.write(1, ptr, (0x200 << 12) | PTE_P | PTE_RW);
  assert.equal(calls.length, 0, 'never mapped out: nothing to unmap');
  p.mappedOut[0x200] = 1;
  p.write(1, ptr, (0x200 << 12) | PTE_P); // made read-only
  assert.deepEqual(calls.pop(), { pages: [{ base: ALIAS + 0x200000, rights: W }], flush: false });
  assert.equal(p.mappedOut[0x200], 1, 'still mapped out, read-only');
  p.write(1, ptr, (0x201 << 12) | PTE_P | PTE_RW); // another frame
  assert.deepEqual(calls.pop(), { pages: [{ base: ALIAS + 0x200000, rights: RWX }], flush: false });
  assert.equal(p.mappedOut[0x200], 0);
  assert.equal(view.getUint32(ptr, true), (0x201 << 12) | PTE_P | PTE_RW);
  // A write that takes nothing away unmaps nothing.
  p.mappedOut[0x201] = 1;
  p.write(1, ptr, (0x201 << 12) | PTE_P | PTE_RW | PTE_US);
  assert.equal(calls.length, 0);
});

test('test-and-clear returns the entry with the status bits folded into accessed and dirty', () => {
  const { p, view, calls } = setup(R | W);
  const ptr = PT + 12 * 4;
  view.setUint32(ptr, (0x222 << 12) | PTE_P | PTE_RW, true);
  p.mappedOut[0x222] = 1;
  const old = p.testClear(ptr);
  assert.equal(old, (0x222 << 12) | PTE_P | PTE_RW | PTE_A | PTE_D);
  assert.equal(view.getUint32(ptr, true), 0);
  assert.equal(calls.length, 1);
  // A downgrade to read-only keeps the frame: the bits go into the new entry.
  view.setUint32(ptr, (0x223 << 12) | PTE_P | PTE_RW, true);
  p.mappedOut[0x223] = 1;
  p.write(1, ptr, (0x223 << 12) | PTE_P);
  assert.equal(view.getUint32(ptr, true), (0x223 << 12) | PTE_P | PTE_A | PTE_D);
});

test('a directory entry’s change revokes every mapped-out frame of its old table, 64 a call', () => {
  const { p, calls } = setup();
  for (let k = 100; k < 200; k++) p.mappedOut[k] = 1;
  p.write(2, PD + 4, 0); // slot 1 was empty: nothing
  assert.equal(calls.length, 0);
  p.write(2, PD, 0); // slot 0's table maps frames 0..1023
  assert.deepEqual(
    calls.map((c) => c.pages.length),
    [64, 36],
  );
  assert.equal(calls[0].pages[0].base, ALIAS + 100 * 4096);
  assert.ok(calls.every((c) => c.pages.every((x) => x.rights === RWX) && !c.flush));
});

test('the window’s directory slots are not the guest’s, and a pointer outside memory is a crash', () => {
  const { p, view } = setup();
  // Slot 1008 (0xFC000000, the window): the write is dropped.
  p.write(2, PD + 1008 * 4, 0x5000 | PTE_P);
  assert.equal(view.getUint32(PD + 1008 * 4, true), 0);
  let crashed = '';
  const q = new GuestPaging(view, PAGES, {
    unmap: () => [],
    alias: () => undefined,
    crash: (m) => (crashed = m),
  });
  q.paging = true;
  q.cr3 = PD;
  q.write(1, 0x800000, 1);
  assert.match(crashed, /page-table pointer 0x800000 is not in guest memory/);
});
