/**
 * How the backend reaches the hypervisor: hypercalls, charged as the VMM's `int $0x82` in and
 * out would be, whose arguments it writes into its own window pages (the argument pages, mapped
 * at ARGS_PAGE in every address space, so pointer arguments are that virtual address); and the
 * domain's shared-info page, read and written in place.
 */
import { Hypercall, MMU_UPDATE_SIZE } from '../../../hypervisor/xen/abi.ts';
import { dispatchHypercall, HYPERCALL_NAMES } from '../../../hypervisor/xen/hypercalls.ts';
import type { Cpu } from '../../../x86/Cpu.ts';
import { ARGS_PAGE, ARGS_PAGES, PAGE_ARGS, type DomainMemory } from './layout.ts';

const DOMID_SELF = 0x7ff0;

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

  /**
   * Page-table entry writes (machine address, value) in mmu_update calls, as many per call as
   * the argument pages hold: 0, or the first call's refusal (the rest are not sent).
   */
  mmuUpdate(entries: readonly { maddr: number; value: number }[]): number {
    const max = (ARGS_PAGES * 4096) / MMU_UPDATE_SIZE;
    for (let at = 0; at < entries.length; at += max) {
      const batch = entries.slice(at, at + max);
      batch.forEach((u, k) => {
        this.argWrite(k * 16, 4, u.maddr);
        this.argWrite(k * 16 + 4, 4, 0);
        this.argWrite(k * 16 + 8, 4, u.value);
        this.argWrite(k * 16 + 12, 4, 0);
      });
      const r = this.hypercall(Hypercall.mmu_update, [ARGS_PAGE, batch.length, 0, DOMID_SELF]);
      if (r !== 0) return r;
    }
    return 0;
  }

  /** One mmuext_op (`cmd` on `arg`, a frame or a linear address) for this domain. */
  mmuext(cmd: number, arg: number): number {
    this.argWrite(0, 4, cmd);
    this.argWrite(4, 4, arg);
    this.argWrite(8, 4, 0);
    return this.hypercall(Hypercall.mmuext_op, [ARGS_PAGE, 1, 0, DOMID_SELF]);
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
