/**
 * previrt's L4 X.2-style interface (shared/reference/l4.md): thread IDs, message tags, flexpages,
 * timeouts, error codes, the kernel-synthesised message labels, the layout of the kernel's part
 * of every address space (GDT, TSS with its I/O bitmap, KIP, UTCB area), the UTCB and KIP
 * layouts and the system-call vectors. Numbers follow Pistachio's ia32 headers where previrt does
 * the same thing (PI user/include/l4/types.h, message.h, ipc.h); the binary layouts of the KIP
 * and the UTCB are previrt's own (README.md has the tables). It is not binary compatible.
 */

// ---- thread IDs (PI types.h: 18-bit thread number, 14-bit version on ia32) -----------------------

export const NILTHREAD = 0;
export const ANYTHREAD = 0xffffffff;
/** Any thread of the receiver's own address space (a local ID with all bits but the low 6 set). */
export const ANYLOCALTHREAD = 0xffffffc0;

export const THREAD_NUMBER_BITS = 18;
export const VERSION_BITS = 14;
/** Thread numbers below it are interrupt threads: thread number = IRQ line, version 1. */
export const THREAD_ID_SYSTEM_BASE = 16;
/** The first thread number of user threads: sigma0, then (unused) sigma1, then the root task. */
export const THREAD_ID_USER_BASE = 32;
export const SIGMA0_NUMBER = THREAD_ID_USER_BASE;
export const ROOT_NUMBER = THREAD_ID_USER_BASE + 2;

export function globalId(number: number, version: number): number {
  return ((number << VERSION_BITS) | (version & 0x3fff)) >>> 0;
}

export function threadNumber(tid: number): number {
  return tid >>> VERSION_BITS;
}

export function threadVersion(tid: number): number {
  return tid & 0x3fff;
}

/** A local ID (the UTCB's address) has its low 6 bits clear; a global ID's version does not. */
export function isLocalId(tid: number): boolean {
  return (tid & 0x3f) === 0 && tid !== NILTHREAD;
}

export const SIGMA0_ID = globalId(SIGMA0_NUMBER, 1);
export const ROOT_ID = globalId(ROOT_NUMBER, 1);

export function irqThreadId(irq: number): number {
  return globalId(irq, 1);
}

// ---- message tag, MR0 (PI message.h): label 16 | flags 4 | t 6 | u 6 ------------------------------

export const TAG_ERROR = 0x8000;
export const TAG_XCPU = 0x4000;
export const TAG_REDIRECTED = 0x2000;
export const TAG_PROPAGATED = 0x1000;

export function msgTag(label: number, u: number, t = 0, flags = 0): number {
  return (((label & 0xffff) << 16) | (flags & 0xf000) | ((t & 0x3f) << 6) | (u & 0x3f)) >>> 0;
}

export function tagLabel(tag: number): number {
  return tag >>> 16;
}

export function tagU(tag: number): number {
  return tag & 0x3f;
}

export function tagT(tag: number): number {
  return (tag >>> 6) & 0x3f;
}

/** Labels of the messages the kernel sends on a thread's behalf (AB l4ka/message.h). */
export const Label = {
  /** Page fault: 0xffe0 | rwx of the access (r 4, w 2, x 1); MR1 address, MR2 IP. */
  pageFault: 0xffe0,
  /** Hardware interrupt, from the interrupt thread (thread number = IRQ line). */
  interrupt: 0xfff0,
  /** Exception: the 12 words of EXCEPTION_WORDS. */
  exception: 0xffb0,
  /** Sigma0's protocol: MR1 the fpage wanted, MR2 attributes (PI sigma0). */
  sigma0Request: 0xffa0,
} as const;

/** The words of an exception message, MR1 onwards, and of its reply (AB l4ka/mrs.h). */
export const EXCEPTION_WORDS = [
  'eip',
  'eflags',
  'exception',
  'errorCode',
  'edi',
  'esi',
  'ebp',
  'esp',
  'ebx',
  'edx',
  'ecx',
  'eax',
] as const;

// ---- typed items (PI message.h): two words each --------------------------------------------------

/** Word 0 of a map item: snd base (bits 10–31) | 100 in bits 1–3 | C (bit 0, another item follows). */
export const ITEM_MAP = 0x8;
export const ITEM_GRANT = 0xa;

export function mapItem(sndBase: number, fpage: number, grant = false): [number, number] {
  return [((sndBase & 0xfffffc00) | (grant ? ITEM_GRANT : ITEM_MAP)) >>> 0, fpage >>> 0];
}

/** A simple string item (type 0xx): length (bits 10–31), pointer; j = c = 0. */
export function stringItem(length: number, pointer: number): [number, number] {
  return [((length & 0x3fffff) << 10) >>> 0, pointer >>> 0];
}

/** BR0, the acceptor: receive window fpage (bits 4–31, rights ignored) | s (bit 0: strings). */
export function acceptor(window: number, strings: boolean): number {
  return ((window & ~0xf) | (strings ? 1 : 0)) >>> 0;
}

// ---- flexpages (PI types.h: b 22 | s 6 | extended 1 | rwx 3) -----------------------------------

export const NILPAGE = 0;
/** s = 1, base 0: the whole address space (as much of it as maps: USER_LIMIT). */
export const COMPLETE_ADDRESS_SPACE = 1 << 4;

export const R = 4;
export const W = 2;
export const X = 1;
export const RWX = 7;

export function fpage(base: number, log2Size: number, rights = 0): number {
  return ((base & 0xfffffc00) | ((log2Size & 0x3f) << 4) | (rights & 7)) >>> 0;
}

export interface Fpage {
  /** First byte (aligned to the size). */
  base: number;
  /** Bytes; 0 for the nil page. */
  size: number;
  rights: number;
}

/**
 * A flexpage word. Sizes below a page are the nil page (nothing is mapped by them); s = 1 with
 * base 0 is the complete address space; s >= 32 is 4 GB. The base is aligned down to the size.
 */
export function decodeFpage(raw: number): Fpage {
  const rights = raw & 7;
  const s = (raw >>> 4) & 0x3f;
  if (s === 1 && raw >>> 10 === 0) return { base: 0, size: 2 ** 32, rights };
  if (s < 12) return { base: 0, size: 0, rights };
  if (s >= 32) return { base: 0, size: 2 ** 32, rights };
  const size = 2 ** s;
  const base = (raw & 0xfffffc00) >>> 0;
  return { base: base - (base % size), size, rights };
}

// ---- timeouts (PI types.h L4_Time_t: m 10 | e 5 | point 1) --------------------------------------

export const NEVER = 0;
/** e = 1, m = 0: a period of 0 µs. */
export const ZERO_TIME = 0x0400;

/** A relative period of about `us` microseconds (the nearest m·2^e not below it). */
export function timePeriod(us: number): number {
  if (us <= 0) return ZERO_TIME;
  let e = 0;
  let m = Math.ceil(us);
  while (m > 0x3ff) {
    e++;
    m = Math.ceil(us / 2 ** e);
  }
  return ((Math.min(e, 31) << 10) | m) >>> 0;
}

/**
 * A 16-bit time value: 'never', 'zero', or microseconds. Time points (bit 15) are not modelled:
 * they count as a zero timeout (README.md, "Simplified").
 */
export function decodeTime(raw: number): 'never' | 'zero' | number {
  const t = raw & 0xffff;
  if (t === NEVER) return 'never';
  if ((t & 0x8000) !== 0) return 'zero';
  const m = t & 0x3ff;
  const e = (t >>> 10) & 0x1f;
  if (m === 0) return 'zero';
  return m * 2 ** e;
}

/** The IPC timeouts word: send timeout in the upper half, receive timeout in the lower. */
export function timeouts(send: number, receive: number): number {
  return (((send & 0xffff) << 16) | (receive & 0xffff)) >>> 0;
}

// ---- error codes (PI types.h, ipc.h) ------------------------------------------------------------

/** The ErrorCode of a failed IPC: (offset << 4) | (code << 1) | phase (0 send, 1 receive). */
export const IpcError = {
  timeout: 1,
  nonExisting: 2,
  canceled: 3,
  overflow: 4,
  /** A transfer (string item) met a missing page in the invoker's own space. */
  xferTimeoutInvoker: 5,
  /** ... in the partner's space. */
  xferTimeoutPartner: 6,
  aborted: 7,
} as const;

export function ipcErrorWord(code: number, receivePhase: boolean, offset = 0): number {
  return ((offset << 4) | (code << 1) | (receivePhase ? 1 : 0)) >>> 0;
}

/** ErrorCode of the other system calls. */
export const L4Error = {
  noPrivilege: 1,
  invalidThread: 2,
  invalidSpace: 3,
  invalidScheduler: 4,
  invalidParam: 5,
  utcbArea: 6,
  kipArea: 7,
  noMem: 8,
} as const;

// ---- system calls: one vector each, from ring 3 (README.md has the register table) ---------------

export const Syscall = {
  ipc: 0x30,
  lipc: 0x31,
  unmap: 0x32,
  exchangeRegisters: 0x33,
  threadControl: 0x34,
  spaceControl: 0x35,
  schedule: 0x36,
  threadSwitch: 0x37,
  systemClock: 0x38,
  processorControl: 0x39,
  memoryControl: 0x3a,
  /** Also `lock; nop` (F0 90), which raises #UD, as Pistachio's KernelInterface. */
  kernelInterface: 0x3b,
} as const;

export type SyscallName = keyof typeof Syscall;

export const SYSCALL_NAMES = new Map<number, SyscallName>(
  (Object.entries(Syscall) as [SyscallName, number][]).map(([name, v]) => [v, name]),
);

/** Unmap's control word: k (the last MR with an fpage) in bits 0–5, flush in bit 6. */
export const UNMAP_FLUSH = 0x40;

/** ExchangeRegisters control bits (PI api/v4/syscalls.h exregs_ctrl_t). */
export const Exregs = {
  halt: 1 << 0,
  abortReceive: 1 << 1,
  abortSend: 1 << 2,
  sp: 1 << 3,
  ip: 1 << 4,
  flags: 1 << 5,
  userHandle: 1 << 6,
  pager: 1 << 7,
  /** Bit 0 says whether to halt (1) or resume (0). */
  haltValid: 1 << 8,
} as const;

/** The old state ExchangeRegisters returns in its control word. */
export const ExregsState = { halted: 1, receiving: 2, sending: 4 } as const;

/** Schedule's result: the destination's state (X.2 reference manual, Schedule). */
export const ThreadState = {
  error: 0,
  dead: 1,
  inactive: 2,
  running: 3,
  pendingSend: 4,
  sending: 5,
  waitingToReceive: 6,
  receiving: 7,
} as const;

// ---- the kernel's part of every address space: the top 4 MB (page-directory slot 1023) -----------

/** Everything below is the user's: only mappings put anything there. */
export const USER_LIMIT = 0xffc00000;
export const KERNEL_SLOT = 1023;
/** GDT (supervisor, read-only). */
export const GDT_VIRT = 0xffc00000;
/** The TSS (supervisor, read-only): its I/O bitmap follows at IO_BITMAP_VIRT. */
export const TSS_VIRT = 0xffc01000;
/** The space's I/O bitmap, 2 pages (SDM 1 19.5.2); all ones unless ports were given. */
export const IO_BITMAP_VIRT = 0xffc02000;
/** The kernel interface page (user, read-only). */
export const KIP_VIRT = 0xffc04000;
/** The UTCB area of every space: 4096 UTCBs of 512 bytes (user, read-write, per space). */
export const UTCB_AREA = 0xffe00000;
export const UTCB_AREA_SIZE = 0x200000;
export const UTCB_SIZE = 512;

/** GDT selectors: ring-0 code and data, ring-3 code and data (flat), the UTCB segment, the TSS. */
export const Selector = {
  KERNEL_CS: 0x08,
  KERNEL_DS: 0x10,
  USER_CS: 0x1b,
  USER_DS: 0x23,
  /** %gs: base = the current thread's UTCB, limit 511 (so %gs:0 is its own address). */
  UTCB: 0x2b,
  TSS: 0x30,
} as const;
export const GDT_ENTRIES = 7;

/** UTCB layout, byte offsets (README.md, "UTCB"). */
export const Utcb = {
  myLocalId: 0x00,
  myGlobalId: 0x04,
  processorNo: 0x08,
  userHandle: 0x0c,
  pager: 0x10,
  exceptionHandler: 0x14,
  /** Byte 0: preemption flags; byte 1: coprocessor flags (not used by previrt). */
  flags: 0x18,
  errorCode: 0x1c,
  xferTimeouts: 0x20,
  intendedReceiver: 0x24,
  /** The sender of the last message received (the virtual sender on a send: not modelled). */
  actualSender: 0x28,
  threadWord0: 0x2c,
  threadWord1: 0x30,
  /** BR0–BR32. */
  br: 0x40,
  /** MR0–MR63. */
  mr: 0x100,
} as const;
export const MR_COUNT = 64;
export const BR_COUNT = 33;

/** KIP layout, byte offsets (README.md, "Kernel interface page"). */
export const Kip = {
  magic: 0x00,
  apiVersion: 0x04,
  apiFlags: 0x08,
  kernelId: 0x0c,
  /** Offset of the memory descriptors << 16 | their number. */
  memoryInfo: 0x10,
  /** m (bits 12–21) · 2^a (bits 6–11) = UTCB size; 2^s (bits 0–5) = minimum UTCB area. */
  utcbInfo: 0x14,
  /** log2 of the KIP area's size. */
  kipAreaInfo: 0x18,
  /** significant thread-number bits (0–7) | system base (8–19) | user base (20–31). */
  threadInfo: 0x1c,
  /** read precision µs (0–15) | schedule precision µs (16–31). */
  clockInfo: 0x20,
  /** page sizes (bit n: 2^n bytes) | rights that can be given (bits 0–2). */
  pageInfo: 0x24,
  /** processors − 1. */
  processorInfo: 0x28,
  utcbAreaBase: 0x2c,
  utcbAreaSize: 0x30,
  sigma0: 0x34,
  rootServer: 0x38,
  clockHzLow: 0x3c,
  clockHzHigh: 0x40,
  /** The 11 system-call entries, offsets from the KIP's base, in X.2's order (KIP_ENTRIES). */
  entries: 0x48,
  memoryDescriptors: 0x100,
  /** The stubs the entries point at: `int $v; ret`, 4 bytes apart. */
  stubs: 0x800,
} as const;

export const KIP_MAGIC = 0x4be6344c; // 'L' '4' 0xE6 'K'
export const API_VERSION = ((0x84 << 24) | (0x05 << 16)) >>> 0;
/** previrt's kernel ID: 'p' 'v' in the high half (KernelId: id | subid). */
export const KERNEL_ID = 0x70760001;

/** The KIP's system-call entries in X.2's order (PI kip.h). */
export const KIP_ENTRIES: readonly SyscallName[] = [
  'spaceControl',
  'threadControl',
  'processorControl',
  'memoryControl',
  'ipc',
  'lipc',
  'unmap',
  'exchangeRegisters',
  'systemClock',
  'threadSwitch',
  'schedule',
];

/** KIP memory descriptor types (PI kip.h). */
export const MemoryType = { conventional: 1, reserved: 2, dedicated: 3, shared: 4 } as const;

// ---- page-table bits (SDM 3A 4.3, Table 4-6) -----------------------------------------------------

export const PTE_P = 0x1;
export const PTE_RW = 0x2;
export const PTE_US = 0x4;
export const PTE_A = 0x20;
export const PTE_D = 0x40;

// ---- the resource monitor's protocol (labels of requests to ROOT_ID; resourceMonitor.ts) ---------

export const RmOp = {
  /** MR1 length, MR2.. the bytes, four to a word: printed on the console. */
  console: 0x5201,
  /** MR1 status: the VM is done; the run ends with that status. */
  exit: 0x5202,
  /** MR1–MR5: ThreadControl's dest, space, scheduler, pager, utcb, for the VM's own threads. */
  threadControl: 0x5203,
  /** MR1–MR5: SpaceControl's space, control, KIP area, UTCB area, redirector. */
  spaceControl: 0x5204,
  /** MR1 irq, MR2 handler: associate a line of a device the VM was given with its thread. */
  associateIrq: 0x5205,
  /** MR1 irq. */
  deassociateIrq: 0x5206,
  /** MR1 fpage of guest-physical memory: mapped at MR2 (snd base) in the caller's window. */
  requestPages: 0x5207,
  /**
   * MR1 a thread of the VM: the console's input goes to it, as messages of this label from the
   * console input thread (consoleInput.ts): MR1 the byte count (1–240), MR2.. the bytes.
   */
  consoleInput: 0x5208,
  /**
   * MR1 a client VM's number: its memory becomes reachable by the caller's devices' DMA (the
   * original's request_client_pages, for a driver VM), at the bus address the reply's MR1
   * gives, MR2 bytes of it (MR0 = 1). Only for a driver VM the toolstack named for that client.
   */
  clientDma: 0x5209,
  /**
   * A client VM's network back end (a para-virtualized kernel's own driver, after its driver VM
   * was restarted: src/platforms/driverVm.ts): MR1 its monitor, MR2 its helper thread (MR0 = 1)
   * once the new one is connected, both 0 while it is being built and booted; error invalid
   * parameter if the VM has no back end.
   */
  netBackend: 0x520a,
} as const;
