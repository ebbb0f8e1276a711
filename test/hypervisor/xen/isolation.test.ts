import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Errno,
  EvtchnOp,
  GDT_VIRT,
  Hypercall,
  HYPERVISOR_SLOT,
  MACH2PHYS_VIRT,
  MmuExt,
  Selector,
  UVMF_INVLPG,
} from '../../../src/hypervisor/xen/abi.ts';
import { buildDomain } from '../../../src/hypervisor/xen/builder.ts';
import { FrameType } from '../../../src/hypervisor/xen/frames.ts';
import { parseElf } from '../../../src/loader/elf.ts';
import { CpuFault } from '../../../src/x86/fault.ts';
import { buildPvGuest } from './build.ts';
import { freshXen, hypercall, mfnOf, poke, pteAddress, scratch } from './harness.ts';

const P = 1;
const RW = 2;
const PSE = 0x80;
const DOMID_SELF = 0x7ff0;

/** A machine with domain 0 at its entry and a second domain built beside it. */
function twoDomains() {
  const xm = freshXen();
  const image = parseElf(buildPvGuest('hello'), 'hello.elf');
  if (!('entry' in image)) throw new Error('elf');
  const other = buildDomain(xm.xen, image, { memoryMb: 8 });
  if (typeof other === 'string') throw new Error(other);
  return { xm, other: other.domain };
}

/** One mmu_update request {ptr, val} placed at a scratch page; returns the result. */
function mmuUpdate(xm: ReturnType<typeof freshXen>, ptr: number, val: number): number {
  const req = scratch(xm, 1);
  poke(xm, req, ptr, 0, val, 0);
  return hypercall(xm, Hypercall.mmu_update, req, 1, 0, DOMID_SELF);
}

function mmuext(xm: ReturnType<typeof freshXen>, cmd: number, arg1: number): number {
  const op = scratch(xm, 1);
  poke(xm, op, cmd, arg1, 0);
  return hypercall(xm, Hypercall.mmuext_op, op, 1, 0, DOMID_SELF);
}

function audit(xm: ReturnType<typeof freshXen>): void {
  assert.deepEqual(xm.xen.frames.audit(xm.xen.domains), []);
}

test('a domain cannot map another domain’s frame, a hypervisor frame, or memory beyond RAM', () => {
  const { xm, other } = twoDomains();
  const slot = pteAddress(xm, scratch(xm, 2));
  for (const flags of [P, P | RW]) {
    assert.equal(mmuUpdate(xm, slot, (other.p2m[3] << 12) | flags), -Errno.EPERM);
    assert.equal(mmuUpdate(xm, slot, (xm.xen.gdtMfn << 12) | flags), -Errno.EPERM);
    assert.equal(mmuUpdate(xm, slot, (xm.xen.m2pMfns[0] << 12) | flags), -Errno.EPERM);
    assert.equal(mmuUpdate(xm, slot, 0xfebff000 | flags), -Errno.EPERM);
  }
  // update_va_mapping goes through the same checks.
  const va = scratch(xm, 2);
  assert.equal(
    hypercall(xm, Hypercall.update_va_mapping, va, (other.p2m[3] << 12) | P, 0, UVMF_INVLPG),
    -Errno.EPERM,
  );
  // Writing another domain's page-table entry directly is refused too.
  assert.equal(mmuUpdate(xm, other.baseMfn! * 4096, 0), -Errno.EPERM);
  // Its own frames it can map.
  assert.equal(mmuUpdate(xm, slot, (xm.domain.p2m[40] << 12) | P | RW), 0);
  audit(xm);
});

test('page tables are never mapped writable; read-only is fine', () => {
  const xm = freshXen();
  const l2 = xm.domain.baseMfn!;
  const l1 = mfnOf(xm, xm.layout.pageTables + 4096);
  const slot = pteAddress(xm, scratch(xm, 2));
  assert.equal(mmuUpdate(xm, slot, (l2 << 12) | P | RW), -Errno.EINVAL);
  assert.equal(mmuUpdate(xm, slot, (l1 << 12) | P | RW), -Errno.EINVAL);
  assert.equal(mmuUpdate(xm, slot, (l2 << 12) | P), 0);
  // Turning that read-only mapping writable is a change of RW: revalidated, refused.
  assert.equal(mmuUpdate(xm, slot, (l2 << 12) | P | RW), -Errno.EINVAL);
  // Shared info may be mapped writable but never become a page table.
  const shared = xm.domain.sharedInfoMfn;
  assert.equal(mmuUpdate(xm, slot, (shared << 12) | P | RW), 0);
  assert.equal(mmuUpdate(xm, slot, 0), 0);
  assert.equal(mmuext(xm, MmuExt.PIN_L1_TABLE, shared), -Errno.EINVAL);
  // A frame mapped writable cannot be pinned as a table.
  assert.equal(mmuext(xm, MmuExt.PIN_L1_TABLE, mfnOf(xm, scratch(xm, 3))), -Errno.EINVAL);
  audit(xm);
});

test('PSE entries, the hypervisor slot and recursive L2 entries are refused', () => {
  const xm = freshXen();
  const l2 = xm.domain.baseMfn!;
  const frame = xm.domain.p2m[100];
  assert.equal(mmuUpdate(xm, l2 * 4096 + 0x100 * 4, (frame << 12) | P | RW | PSE), -Errno.EINVAL);
  assert.equal(mmuUpdate(xm, l2 * 4096 + 0x100 * 4, (frame << 12) | P | PSE), -Errno.EINVAL);
  assert.equal(mmuUpdate(xm, l2 * 4096 + HYPERVISOR_SLOT * 4, 0), -Errno.EPERM);
  assert.equal(mmuUpdate(xm, l2 * 4096 + 0x100 * 4, (l2 << 12) | P), -Errno.EINVAL);
  // An L1 whose entry maps itself writable does not validate.
  const va = scratch(xm, 4);
  const self = mfnOf(xm, va);
  poke(xm, va, (self << 12) | P | RW);
  assert.equal(hypercall(xm, Hypercall.update_va_mapping, va, 0, 0, UVMF_INVLPG), 0);
  assert.equal(mmuext(xm, MmuExt.PIN_L1_TABLE, self), -Errno.EINVAL);
  assert.equal(xm.xen.frames.type[self], FrameType.none);
  audit(xm);
});

test('new_baseptr only to a validated L2 of the domain', () => {
  const { xm, other } = twoDomains();
  const plain = mfnOf(xm, scratch(xm, 5));
  assert.equal(mmuext(xm, MmuExt.NEW_BASEPTR, plain), -Errno.EINVAL);
  assert.equal(mmuext(xm, MmuExt.NEW_BASEPTR, other.baseMfn!), -Errno.EINVAL);
  assert.equal(mmuext(xm, MmuExt.NEW_BASEPTR, 0xfffff), -Errno.EINVAL);
  assert.equal(mmuext(xm, MmuExt.PIN_L2_TABLE, other.baseMfn!), -Errno.EPERM);
  assert.equal(mmuext(xm, MmuExt.PIN_L3_TABLE, plain), -Errno.EINVAL);
  assert.equal(mmuext(xm, MmuExt.NEW_BASEPTR, xm.domain.baseMfn!), 0);
  audit(xm);
});

test('a new address space: built bottom-up, pinned, switched to; stale writable TLB entries flushed', () => {
  const xm = freshXen();
  const cpu = xm.machine.cpu;
  const l1Va = scratch(xm, 6);
  const l2Va = scratch(xm, 7);
  const l1 = mfnOf(xm, l1Va);
  const l2 = mfnOf(xm, l2Va);
  // The new L1 maps everything the current one for the kernel does; the L2 holds that L1.
  const kernelL1 = mfnOf(xm, xm.layout.pageTables + 4096);
  for (let i = 0; i < 1024; i++) {
    const e = cpu.readPhysical(kernelL1 * 4096 + i * 4, 4);
    const pfn = (xm.layout.virtBase >>> 12) + i;
    const isTable = [l1Va, l2Va].some((v) => v >>> 12 === pfn) || (e & RW) === 0;
    poke(xm, l1Va + i * 4, isTable ? e & ~RW : e);
  }
  poke(xm, l2Va + (xm.layout.virtBase >>> 22) * 4, (l1 << 12) | P | RW | 4);
  // Touch the L1 through its writable mapping so the TLB holds it, then unmap without a flush.
  cpu.writeLinear(l1Va, 4, cpu.readLinear(l1Va, 4));
  assert.equal(hypercall(xm, Hypercall.update_va_mapping, l1Va, 0, 0, 0), 0);
  assert.equal(hypercall(xm, Hypercall.update_va_mapping, l2Va, 0, 0, UVMF_INVLPG), 0);
  assert.equal(mmuext(xm, MmuExt.NEW_BASEPTR, l2), -Errno.EINVAL); // not validated yet
  assert.equal(mmuext(xm, MmuExt.PIN_L1_TABLE, l1), 0);
  // SAFETY: the pin flushed the stale writable translation: the write faults now.
  assert.throws(() => cpu.writeLinear(l1Va, 4, 0), CpuFault);
  assert.equal(mmuext(xm, MmuExt.PIN_L2_TABLE, l2), 0);
  assert.equal(mmuext(xm, MmuExt.PIN_L2_TABLE, l2), -Errno.EINVAL); // already pinned
  assert.equal(mmuext(xm, MmuExt.NEW_BASEPTR, l2), 0);
  assert.equal(cpu.cr3, l2 * 4096);
  assert.equal(xm.xen.counters.baseSwitches, 1);
  audit(xm);
  // The old tables are still pinned; unpinning the new L2 in use keeps it validated (CR3).
  assert.equal(mmuext(xm, MmuExt.UNPIN_TABLE, l2), 0);
  assert.equal(xm.xen.frames.typeCount[l2], 1);
  audit(xm);
});

test('the hypervisor window is read-only to ring 1 and out of reach of hypercall pointers', () => {
  const xm = freshXen();
  const cpu = xm.machine.cpu;
  assert.equal(cpu.cpl, 1);
  assert.equal(cpu.readLinear(GDT_VIRT + 8 * 3 + 4, 4) & 0x6000, 0x2000); // ring-1 code DPL 1
  assert.throws(() => cpu.writeLinear(GDT_VIRT, 4, 0), CpuFault);
  assert.throws(() => cpu.writeLinear(MACH2PHYS_VIRT, 4, 0), CpuFault);
  const m2p = cpu.readLinear(MACH2PHYS_VIRT + xm.domain.p2m[7] * 4, 4);
  assert.equal(m2p, 7);
  assert.equal(hypercall(xm, Hypercall.console_io, 0, 4, GDT_VIRT), -Errno.EFAULT);
  assert.equal(hypercall(xm, Hypercall.set_trap_table, MACH2PHYS_VIRT), -Errno.EFAULT);
  assert.equal(hypercall(xm, Hypercall.update_va_mapping, GDT_VIRT, 0, 0, 0), -Errno.EINVAL);
  // A trap handler in ring 0 or in the window is refused.
  const table = scratch(xm, 1);
  poke(xm, table, (Selector.HYPERVISOR_CS << 16) | 14, 0xc0001000, 0, 0);
  assert.equal(hypercall(xm, Hypercall.set_trap_table, table), -Errno.EPERM);
  poke(xm, table, (Selector.RING1_CS << 16) | 14, GDT_VIRT, 0, 0);
  assert.equal(hypercall(xm, Hypercall.set_trap_table, table), -Errno.EPERM);
  assert.equal(hypercall(xm, Hypercall.stack_switch, Selector.HYPERVISOR_DS, 0x1000), -Errno.EPERM);
  assert.equal(hypercall(xm, 99), -Errno.ENOSYS);
  assert.equal(
    hypercall(xm, Hypercall.event_channel_op, EvtchnOp.send, scratch(xm, 9)),
    -Errno.EINVAL,
  );
  audit(xm);
});

test('a guest fault without a handler crashes the domain with a message, not the host', () => {
  const xm = freshXen();
  const cpu = xm.machine.cpu;
  cpu.eip = 0x1000; // nothing is mapped there: #PF on the fetch
  const end = xm.machine.run(10_000_000);
  assert.equal(end.kind, 'triple-fault');
  assert.match(
    end.kind === 'triple-fault' ? end.detail : '',
    /^xen: domain 0 crashed: unhandled #PF \(error code 0x0\) at 0019:00001000, cr2 00001000/,
  );
  assert.equal(xm.xen.end?.kind, 'crash');
});
