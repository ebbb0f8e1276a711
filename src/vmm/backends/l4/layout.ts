/**
 * The l4 backend's part of the VMM window (../../window.ts) and of the VM's memory.
 *
 * The VM is one contiguous region of machine memory from the resource monitor: the guest's RAM
 * (guest-physical 0 up), then the VMM's own pages (the window's pages live there: the
 * virtual-CPU block, the core's stubs, the backend's stubs, a stack); a passed-through NIC's
 * register page is a device window beyond it (DEVICE_ALIAS). The resource monitor maps the region into the VM's main
 * space at `mapAt + guest-physical`, with mapAt the kernel's link offset: that is the guest
 * kernel's own one-to-one map of RAM (the original's "kernel alias", AB l4ka backend.cc), and
 * the source of every other mapping the VMM makes (window pages, other kernel addresses, the
 * guest's processes' pages).
 */
import { BACKEND_ENTRIES, BACKEND_PAGES, le32, WINDOW_BASE } from '../../window.ts';

/** Window pages, in the order they follow the guest's RAM in the VM's memory. */
export const VMM_PAGES = 4;
export const PAGE_VCPU = 0;
export const PAGE_CORE_STUBS = 1;
/** The backend's stubs: mapped read-only into the guest kernel's space and every process's. */
export const PAGE_STUBS = 2;
export const PAGE_STACK = 3;

export const STUBS = BACKEND_PAGES;
/**
 * Where the passed-through NIC's register page is in the main space (its alias: mapped there by
 * the resource monitor, the source of the guest's own mapping of its BAR). In the window, which
 * the guest never uses, past the bound entries.
 */
export const DEVICE_ALIAS = WINDOW_BASE + 0x200000;
export const STACK_TOP = BACKEND_PAGES + 0x2000;

/** `int $0x30; jmp ENTRY_DISPATCH`: the guest kernel's thread waits (registers set by a handler). */
export const STUB_IPC = STUBS;
/**
 * A new process thread's first instructions (AB vm/backend.cc's start stub): its pager (the
 * guest kernel's thread) becomes its exception handler too, then `ud2` sends the exception
 * message whose reply is the guest's first `iret` into the process.
 *   movl %gs:0x10, %eax ; movl %eax, %gs:0x14 ; ud2
 */
export const STUB_START = STUBS + 0x40;
/** A process thread redirected here raises #UD: its whole state comes as an exception message. */
export const STUB_FORCE = STUBS + 0x80;

/** Bound entries (never mapped). */
export const ENTRY_BOOT = BACKEND_ENTRIES;
/** After the guest kernel's thread's IPC (STUB_IPC): a message for it is in its UTCB. */
export const ENTRY_DISPATCH = BACKEND_ENTRIES + 0x10;
/** The monitor redirected the guest kernel's thread here for a fault of its own. */
export const ENTRY_KERNEL_TRAP = BACKEND_ENTRIES + 0x20;
/** The monitor redirected it here for a virtual interrupt (ExchangeRegisters). */
export const ENTRY_ASYNC = BACKEND_ENTRIES + 0x30;

/** Label of the monitor's and the helper's messages (previrt's own). */
export const VmmLabel = {
  /** Monitor → kernel thread: the idle guest has an interrupt. */
  wake: 0x5301,
  /** Helper → monitor: the guest ended the interrupt of a passed-through line (MR1). */
  ackIrq: 0x5302,
  /** Helper → monitor: console input is queued. */
  console: 0x5303,
} as const;

/** The backend's stub page (SDM Vol. 2 encodings). */
export function backendStubs(): Uint8Array {
  const page = new Uint8Array(4096).fill(0xcc);
  const next = STUB_IPC + 2 + 5;
  page.set([0xcd, 0x30, 0xe9, ...le32(ENTRY_DISPATCH - next)], STUB_IPC - STUBS);
  page.set([0x65, 0xa1, ...le32(0x10), 0x65, 0xa3, ...le32(0x14), 0x0f, 0x0b], STUB_START - STUBS);
  page.set([0x0f, 0x0b], STUB_FORCE - STUBS);
  return page;
}

/** The window page behind a linear address of the window, if it is one the VMM maps. */
export function windowPage(linear: number): number | undefined {
  const page = ((linear >>> 0) - WINDOW_BASE) >>> 12;
  return linear >>> 0 >= WINDOW_BASE && page < VMM_PAGES ? page : undefined;
}
