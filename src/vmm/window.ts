/**
 * The in-place VMM's window in every guest address space (DESIGN.md decision 6): the top 64 MB,
 * 0xFC000000–0xFFFFFFFF. The guest kernel never uses it (guest memlayout.h); a backend's
 * hypervisor may keep the top of it for itself. The core's part:
 *
 *   0xFC000000  the virtual-CPU block (read-write, supervisor): the words the inline code the
 *               rewriter writes into the guest works on (virtual IOPL, virtual IF, segment
 *               selectors, a "virtual interrupt pending" byte)
 *   0xFC001000  stub code (read-only): the interrupt check that sti and popf call, an `iret`
 *   0xFC002000  and up: the backend's pages (argument pages, a boot stack)
 *
 * and, not mapped at all, the entry addresses the CPU binds to TypeScript handlers
 * (cpu.bindEntry): a `call` from a rewritten site, a bounced trap or an event upcall that reaches
 * one of them runs the handler instead of fetching code. The core's entries are in the first 4 KB
 * of ENTRY_BASE; BACKEND_ENTRIES and up are the backend's.
 */

export const WINDOW_BASE = 0xfc000000;
/** The window's size: the top 64 MB of the address space. */
export const WINDOW_SIZE = 0x4000000;
export const WINDOW_SLOT = WINDOW_BASE >>> 22;

export const VCPU_PAGE = WINDOW_BASE;
export const STUB_PAGE = WINDOW_BASE + 0x1000;
/** The first window page a backend may use for itself. */
export const BACKEND_PAGES = WINDOW_BASE + 0x2000;

/** Offsets in the virtual-CPU block (u32 each; selectors zero-extended). */
export const Vcpu = {
  /**
   * Virtual EFLAGS but IF: IOPL (bits 12–13) as the guest set it, bit 1 set, every other bit 0
   * (the arithmetic flags are the real CPU's). The pushf stub relies on that shape.
   */
  flags: 0,
  /**
   * The virtual IF alone, at its EFLAGS place: 0 or 0x200, so only byte 1 ever changes (0 or
   * 2). Apart from IOPL so that cli and sti are a `movb` to that byte: a MOV changes no flags
   * (SDM 2A MOV), an AND or OR of the bit in a shared word would (CLI and STI change only IF,
   * SDM 2A). The pushf stub adds the word as it is. Its name is the VME flag's (SDM 3A 20.3).
   */
  vif: 4,
  /** 1 while the virtual PIC has an interrupt for the CPU (IF not considered), else 0. */
  pending: 8,
  /** Virtual segment selectors, in the SDM's encoding order ES CS SS DS FS GS. */
  segs: 12,
} as const;

/** EFLAGS.IF and IOPL (SDM 1 3.4.3). */
export const EFLAGS_IF = 0x200;
export const EFLAGS_IOPL = 0x3000;

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
/** popf turned the virtual IF on with an interrupt pending (stack: return address, the word). */
export const ENTRY_POPF_DELIVER = ENTRY_BASE + 0x40;
/** The first entry address a backend may bind (its trap and event entries). */
export const BACKEND_ENTRIES = ENTRY_BASE + 0x1000;

// ---- stub code ---------------------------------------------------------------------------------

/** The interrupt check sti calls: `irq_check` in the stub page. */
export const STUB_IRQ_CHECK = STUB_PAGE;
/** A lone `iret`: a backend whose handlers resume the guest from a frame returns through it. */
export const STUB_IRET = STUB_PAGE + 0x20;
/** pushf and popf: the real arithmetic flags with the virtual IF and IOPL. */
export const STUB_PUSHF = STUB_PAGE + 0x40;
export const STUB_POPF = STUB_PAGE + 0x80;

/** EFLAGS bits that are the virtual CPU's, not the real one's: IF and IOPL. */
export const VIRTUAL_FLAGS = EFLAGS_IF | EFLAGS_IOPL;

/**
 * The stub page's bytes, assembled by hand (SDM Vol. 2). `at` is the page's linear address (the
 * jumps to bound entries are relative): the window itself, or its alias in the address space of
 * a guest that runs with virtual paging off, where the entries are bound too.
 *
 *   irq_check: pushl %ecx             ; after sti, which just set the virtual IF: only the
 *              movzbl pending, %ecx   ; pending byte needs a look (the delivery entry checks
 *              jecxz 1f               ; both again). No instruction here changes a flag:
 *              popl %ecx              ; STI changes only IF (SDM 2A STI)
 *              jmp ENTRY_DELIVER      ; jumps, so the handler returns to the site's caller
 *           1: popl %ecx
 *              ret
 *   iret:      iret
 *
 *   pushf:     pushfl                 ; [F][ret]: what the site's call left, then the real flags
 *              pushl %eax ; pushl %ecx
 *              movl 12(%esp), %eax ; movl 8(%esp), %ecx ; movl %eax, 8(%esp)   ; [ret] moves down
 *              movl flags, %eax
 *              leal -0x202(%ecx,%eax), %ecx   ; F − (IF|1) + virtual IOPL|1, no flag changes
 *              movl vif, %eax
 *              leal (%ecx,%eax), %ecx ; + virtual IF
 *              movl %ecx, 12(%esp)    ; the word where the return address was
 *              popl %ecx ; popl %eax ; ret
 *
 * SAFETY (pushf): the real EFLAGS of the guest kernel always have IF = 1, IOPL = 0 and bit 1
 * set (ring 1 or 3 with IOPL 0 cannot change IF or IOPL, SDM 2B POPF/IRET), the virtual
 * flags word has only IOPL and bit 1 and the vif word only IF: so subtracting 0x202 clears IF
 * and the additions cannot carry.
 *
 *   popf:      pushl %eax             ; [eax][ret][W]
 *              movl 8(%esp), %eax ; andl $0x3000, %eax ; orb $2, %al
 *              movl %eax, flags       ; virtual IOPL from the popped word
 *              movzbl 9(%esp), %eax ; andb $2, %al
 *              movb %al, vif+1        ; virtual IF from the popped word
 *              popl %eax
 *              jz 1f                  ; IF off: nothing to deliver
 *              cmpb $0, pending
 *              jnz ENTRY_POPF_DELIVER ; the handler loads the flags and delivers
 *           1: pushl 4(%esp) ; popfl  ; the real POPF in ring 1 loads the arithmetic flags and
 *              ret $4                 ; leaves IF and IOPL alone; drop the word
 */
export function stubPage(at: number): Uint8Array {
  const page = new Uint8Array(4096).fill(0xcc);
  const flags = le32(VCPU_PAGE + Vcpu.flags);
  const vif = le32(VCPU_PAGE + Vcpu.vif);
  const pending = le32(VCPU_PAGE + Vcpu.pending);
  const rel = (target: number, next: number): number[] => le32(target - next);
  const check = [
    0x51,
    ...[0x0f, 0xb6, 0x0d, ...pending],
    ...[0xe3, 0x06],
    0x59,
    ...[0xe9, ...rel(ENTRY_DELIVER, at + 1 + 7 + 2 + 1 + 5)],
    0x59,
    0xc3,
  ];
  page.set(check, STUB_IRQ_CHECK - STUB_PAGE);
  page[STUB_IRET - STUB_PAGE] = 0xcf;
  const pushf = [
    0x9c,
    0x50,
    0x51,
    ...[0x8b, 0x44, 0x24, 0x0c],
    ...[0x8b, 0x4c, 0x24, 0x08],
    ...[0x89, 0x44, 0x24, 0x08],
    ...[0xa1, ...flags],
    ...[0x8d, 0x8c, 0x01, ...le32(-0x202)],
    ...[0xa1, ...vif],
    ...[0x8d, 0x0c, 0x01],
    ...[0x89, 0x4c, 0x24, 0x0c],
    0x59,
    0x58,
    0xc3,
  ];
  page.set(pushf, STUB_PUSHF - STUB_PAGE);
  const popfHead = [
    0x50,
    ...[0x8b, 0x44, 0x24, 0x08],
    ...[0x25, ...le32(EFLAGS_IOPL)],
    ...[0x0c, 0x02],
    ...[0xa3, ...flags],
    ...[0x0f, 0xb6, 0x44, 0x24, 0x09],
    ...[0x24, 0x02],
    ...[0xa2, ...le32(VCPU_PAGE + Vcpu.vif + 1)],
    0x58,
    ...[0x74, 0x0d],
    ...[0x80, 0x3d, ...pending, 0x00],
  ];
  const jnzNext = at + (STUB_POPF - STUB_PAGE) + popfHead.length + 6;
  const popf = [
    ...popfHead,
    ...[0x0f, 0x85, ...rel(ENTRY_POPF_DELIVER, jnzNext)],
    ...[0xff, 0x74, 0x24, 0x04],
    0x9d,
    ...[0xc2, 0x04, 0x00],
  ];
  page.set(popf, STUB_POPF - STUB_PAGE);
  return page;
}

export function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}
