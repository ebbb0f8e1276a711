/**
 * The in-place VMM's window in every guest address space (DESIGN.md decision 6): 0xFC000000 up
 * to the hypervisor's own window at 0xFFC00000. The guest kernel never uses it (guest
 * memlayout.h). What is mapped there:
 *
 *   0xFC000000  the virtual-CPU block (read-write, supervisor): the words the inline code the
 *               rewriter writes into the guest works on (virtual EFLAGS, segment selectors, a
 *               "virtual interrupt pending" byte)
 *   0xFC001000  stub code (read-only): the interrupt check that sti and popf call, an `iret`
 *   0xFC002000  the hypercall argument pages of a backend (read-write)
 *
 * and, not mapped at all, the entry addresses the CPU binds to TypeScript handlers
 * (cpu.bindEntry): a `call` from a rewritten site, a bounced trap or an event upcall that reaches
 * one of them runs the handler instead of fetching code.
 */

export const WINDOW_BASE = 0xfc000000;
/** First address above the VMM's window (the hypervisor's window starts there). */
export const WINDOW_END = 0xffc00000;
export const WINDOW_SLOT = WINDOW_BASE >>> 22;

export const VCPU_PAGE = WINDOW_BASE;
export const STUB_PAGE = WINDOW_BASE + 0x1000;
export const ARGS_PAGE = WINDOW_BASE + 0x2000;
export const ARGS_PAGES = 8;
/** Pages of the window a backend maps: vCPU block, stubs, argument pages. */
export const WINDOW_PAGES = 2 + ARGS_PAGES;

/** Offsets in the virtual-CPU block (u32 each; selectors zero-extended). */
export const Vcpu = {
  /** Virtual EFLAGS: only IF (bit 9) has a meaning; pushf pushes this word, popf pops into it. */
  flags: 0,
  /** Non-zero while the virtual PIC has an interrupt for the CPU (IF not considered). */
  pending: 4,
  /** Virtual segment selectors, in the SDM's encoding order ES CS SS DS FS GS. */
  segs: 8,
} as const;

/** Address of virtual segment register `sreg` (0 ES … 5 GS) in the block. */
export function vcpuSeg(sreg: number): number {
  return VCPU_PAGE + Vcpu.segs + sreg * 4;
}

// ---- bound entries (never mapped) --------------------------------------------------------------

export const ENTRY_BASE = WINDOW_BASE + 0x100000;
/** A rewritten site that needs TypeScript: the site table says which (by return address). */
export const ENTRY_EMULATE = ENTRY_BASE;
/** Deliver the pending virtual interrupt (reached from the interrupt-check stub). */
export const ENTRY_DELIVER = ENTRY_BASE + 0x10;
/** Backend event entries: upcall and failsafe callbacks. */
export const ENTRY_UPCALL = ENTRY_BASE + 0x20;
export const ENTRY_FAILSAFE = ENTRY_BASE + 0x30;
/** Trap entries, one per vector (16 bytes apart). */
export const ENTRY_TRAPS = ENTRY_BASE + 0x1000;

export function trapEntry(vector: number): number {
  return ENTRY_TRAPS + vector * 16;
}

// ---- stub code ---------------------------------------------------------------------------------

/** The interrupt check sti and popf call: `irq_check` in the stub page. */
export const STUB_IRQ_CHECK = STUB_PAGE;
/** A lone `iret`: handlers that resume the guest from a trap frame return through it. */
export const STUB_IRET = STUB_PAGE + 0x20;

/**
 * The stub page's bytes, assembled by hand (SDM Vol. 2):
 *
 *   irq_check: testb $2, flags+1      ; virtual IF (bit 9 of the virtual EFLAGS)
 *              jz 1f
 *              cmpb $0, pending
 *              jnz ENTRY_DELIVER      ; jumps, so the handler returns to the site's caller
 *           1: ret
 *   iret:      iret
 *
 * `at` is the page's linear address (the jnz is relative): the window itself, or its alias in
 * the address space of a guest that runs with virtual paging off.
 */
export function stubPage(at: number, deliver: number): Uint8Array {
  const page = new Uint8Array(4096).fill(0xcc);
  const code = [
    ...[0xf6, 0x05, ...le32(VCPU_PAGE + Vcpu.flags + 1), 0x02],
    ...[0x74, 0x0d],
    ...[0x80, 0x3d, ...le32(VCPU_PAGE + Vcpu.pending), 0x00],
    ...[0x0f, 0x85, ...le32(deliver - (at + 7 + 2 + 7 + 6))],
    0xc3,
  ];
  page.set(code, STUB_IRQ_CHECK - STUB_PAGE);
  page[STUB_IRET - STUB_PAGE] = 0xcf;
  return page;
}

export function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}
