/**
 * How the backend reaches the hypervisor: hypercalls, charged as the VMM's `int $0x82` in and
 * out would be, whose arguments it writes into its own window pages (the argument pages, mapped
 * at ARGS_PAGE in every address space, so pointer arguments are that virtual address); and the
 * domain's shared-info page, read and written in place.
 */
import { dispatchHypercall, HYPERCALL_NAMES } from '../../../hypervisor/xen/hypercalls.ts';
import type { Cpu } from '../../../x86/Cpu.ts';
import { PAGE_ARGS, type DomainMemory } from './layout.ts';

export class HypercallChannel {
  constructor(
    private readonly mem: DomainMemory,
    private readonly cpu: Cpu,
  ) {}

  /** A hypercall as the VMM's `int $0x82` would make it: counted and charged as one. */
  hypercall(nr: number, args: number[]): number {
    const xen = this.mem.xen;
    const name = HYPERCALL_NAMES.get(nr) ?? 'unknown';
    xen.counters.hypercalls[name] = (xen.counters.hypercalls[name] ?? 0) + 1;
    this.mem.dom.hypercalls++;
    this.cpu.charge(this.cpu.costs.gatePrivilege);
    xen.updateTime(this.mem.dom);
    const a = [0, 0, 0, 0, 0].map((_, k) => (args[k] ?? 0) >>> 0);
    const r = dispatchHypercall(xen, this.mem.dom, nr, [a[0], a[1], a[2], a[3], a[4]]);
    if (r < 0) xen.counters.hypercallErrors++;
    this.cpu.charge(this.cpu.costs.iretOuter);
    return r;
  }

  argWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const at = this.mem.windowAddress(PAGE_ARGS + (offset >>> 12), offset & 0xfff);
    const view = this.mem.view;
    if (size === 1) view.setUint8(at, value);
    else if (size === 2) view.setUint16(at, value, true);
    else view.setUint32(at, value >>> 0, true);
  }

  argRead(offset: number): number {
    return this.mem.read32(this.mem.windowAddress(PAGE_ARGS + (offset >>> 12), offset & 0xfff));
  }

  readShared8(offset: number): number {
    return this.mem.view.getUint8(this.mem.dom.sharedInfoMfn * 4096 + offset);
  }

  readShared32(offset: number): number {
    return this.mem.read32(this.mem.dom.sharedInfoMfn * 4096 + offset);
  }

  writeShared32(offset: number, value: number): void {
    this.mem.view.setUint32(this.mem.dom.sharedInfoMfn * 4096 + offset, value >>> 0, true);
  }

  writeShared8(offset: number, value: number): void {
    this.mem.view.setUint8(this.mem.dom.sharedInfoMfn * 4096 + offset, value);
  }
}
