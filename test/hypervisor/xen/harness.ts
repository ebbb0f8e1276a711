import assert from 'node:assert/strict';
import { HYPERCALL_VECTOR } from '../../../src/hypervisor/xen/abi.ts';
import { buildDomain, enterDomain } from '../../../src/hypervisor/xen/builder.ts';
import type { Domain } from '../../../src/hypervisor/xen/domain.ts';
import { createXenMachine, type XenMachine } from '../../../src/hypervisor/xen/machine.ts';
import { parseElf } from '../../../src/loader/elf.ts';
import { buildPvGuest } from './build.ts';

/** A machine with the hello guest built but not started: the CPU is at the guest's entry. */
export function freshXen(domainMemoryMb = 16, machineMemoryMb = 64): XenMachine {
  const xm = createXenMachine({
    kernel: buildPvGuest('hello'),
    domainMemoryMb,
    machine: { memoryMb: machineMemoryMb },
  });
  if (typeof xm === 'string') throw new Error(xm);
  return xm;
}

/**
 * Makes a hypercall as the guest kernel would (`int $0x82` from ring 1 exits to the monitor with
 * these registers) and returns EAX as a signed number.
 */
export function hypercall(xm: XenMachine, nr: number, ...args: number[]): number {
  const cpu = xm.machine.cpu;
  cpu.eax = nr >>> 0;
  cpu.ebx = (args[0] ?? 0) >>> 0;
  cpu.ecx = (args[1] ?? 0) >>> 0;
  cpu.edx = (args[2] ?? 0) >>> 0;
  cpu.esi = (args[3] ?? 0) >>> 0;
  cpu.edi = (args[4] ?? 0) >>> 0;
  xm.xen.onEvent({ kind: 'software', vector: HYPERCALL_VECTOR });
  return cpu.eax | 0;
}

/** Guest virtual address of a scratch page in the start-of-day padding (mapped writable). */
export function scratch(xm: XenMachine, page = 0): number {
  return xm.layout.stackTop + page * 4096;
}

/** Machine frame behind a start-of-day virtual address. */
export function mfnOf(xm: XenMachine, va: number): number {
  return xm.domain.p2m[(va - xm.layout.virtBase) >>> 12];
}

/** Writes little-endian u32 words into the domain through its mapping of `va`. */
export function poke(xm: XenMachine, va: number, ...words: number[]): void {
  const bytes = new Uint8Array(words.length * 4);
  const v = new DataView(bytes.buffer);
  words.forEach((w, k) => v.setUint32(k * 4, w >>> 0, true));
  if (!xm.xen.copyToGuest(xm.domain, va, bytes)) throw new Error(`poke: 0x${va.toString(16)}`);
}

/** Machine address of the L1 entry that maps `va` in the current address space. */
export function pteAddress(xm: XenMachine, va: number): number {
  const cpu = xm.machine.cpu;
  const pde = cpu.readPhysical((cpu.cr3 & ~0xfff) + (va >>> 22) * 4, 4);
  return (pde & ~0xfff) + ((va >>> 12) & 0x3ff) * 4;
}

/** Domain 0 and domain 1, both built and entered; each has a scratch area after its stack. */
export function twoDomains(): {
  xm: XenMachine;
  d0: Domain;
  d1: Domain;
  scratch: Map<Domain, number>;
  virtBase1: number;
} {
  const xm = freshXen();
  const image = parseElf(buildPvGuest('hello'), 'hello.elf');
  if (!('entry' in image)) throw new Error('elf');
  const built = buildDomain(xm.xen, image, { memoryMb: 16 });
  if (typeof built === 'string') throw new Error(built);
  enterDomain(xm.xen, built.domain, image.entry, built.layout);
  const scratch = new Map([
    [xm.domain, xm.layout.stackTop],
    [built.domain, built.layout.stackTop],
  ]);
  return { xm, d0: xm.domain, d1: built.domain, scratch, virtBase1: built.layout.virtBase };
}

/** Runs `work` as domain `dom` (the hypervisor switches the CPU to it first). */
export function as<T>(xm: XenMachine, dom: Domain, work: () => T): T {
  xm.xen.switchTo(dom);
  return work();
}

/** Writes bytes into a domain at a virtual address of its own. */
export function put(xm: XenMachine, dom: Domain, va: number, bytes: Uint8Array): void {
  assert.ok(xm.xen.copyToGuest(dom, va, bytes), `put at 0x${va.toString(16)}`);
}

/** Reads bytes of a domain at a virtual address of its own. */
export function get(xm: XenMachine, dom: Domain, va: number, n: number): DataView {
  const b = xm.xen.copyFromGuest(dom, va, n);
  assert.ok(b !== undefined);
  return new DataView(b.buffer);
}

/** A hypercall's argument structure, `size` bytes filled in by `fill`. */
export function struct(size: number, fill: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer));
  return b;
}
