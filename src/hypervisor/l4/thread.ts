/**
 * Threads (PI api/v4/tcb.h): three kinds behind one kind of thread ID.
 *
 * - `x86`: code the CPU runs in ring 3 of its space; its registers live in the CPU while it
 *   runs and in `ctx` otherwise; its UTCB is a 512-byte slot of its space's UTCB area.
 * - `ts`: a TypeScript thread (sigma0, the resource monitor, a VMM's monitor): a `TsProgram`
 *   whose `ipcDone` runs when an IPC it blocked in completes; it makes system calls through its
 *   `L4Api` (api.ts). Its UTCB has the same layout, as host memory.
 * - `irq`: an interrupt thread (thread number = IRQ line): the kernel sends its messages.
 */
import type { Timer } from '../../machine/device.ts';
import { Utcb, UTCB_SIZE } from './abi.ts';
import type { L4Api } from './api.ts';
import type { Space } from './space.ts';

export type ThreadKind = 'x86' | 'ts' | 'irq';

/**
 * What an IPC in progress is for: a system call (or a TypeScript thread's call), a message the
 * kernel sends for the thread (page fault, exception), the start message an activated thread
 * waits for, or an interrupt thread's message.
 */
export type IpcKind = 'call' | 'pageFault' | 'exception' | 'start' | 'interrupt';

/** A message as it travels: MR0 (the tag) and MR1 onwards (u + t words). */
export interface Message {
  tag: number;
  words: number[];
}

export interface IpcOp {
  kind: IpcKind;
  phase: 'send' | 'receive';
  /** Send partner (a global ID), NILTHREAD for none. */
  to: number;
  /** Receive specifier: NILTHREAD, ANYTHREAD, ANYLOCALTHREAD or a global ID. */
  from: number;
  /** The timeouts word (send << 16 | receive). */
  timeouts: number;
  /** An absolute receive deadline in cycles instead of the receive timeout (TypeScript only). */
  receiveUntil: number | undefined;
  /** The message of the send phase, taken from the MRs when the call was made. */
  message: Message | undefined;
}

/** The outcome of an IPC, as a thread sees it when its call returns. */
export interface IpcResult {
  /** 0, or the error word (abi.ts ipcErrorWord): (offset << 4) | (code << 1) | phase. */
  error: number;
  /** The sender of the message received, NILTHREAD if none. */
  from: number;
  /** MR0 as received (with the error flag on failure). */
  tag: number;
  /** MR1 onwards, as received. */
  words: number[];
}

/**
 * The code of a TypeScript thread. `ipcDone` is called when an IPC the thread blocked in (its
 * API call returned undefined) completes: a message came, a timeout passed, another thread
 * aborted it. It may make system calls through `api`; after one returns undefined (the thread
 * blocked again) it must return. `start` runs once when the thread is created (typically a
 * `wait`). Programs keep their own state as data: `save`/`restore` for snapshots.
 */
export interface TsProgram {
  start?(api: L4Api): void;
  ipcDone(api: L4Api, result: IpcResult): void;
  save?(): unknown;
  restore?(state: unknown, path: string): void;
}

/** A thread's saved registers: EAX..EDI in encoding order, EIP, EFLAGS. */
export interface Context {
  regs: number[];
  eip: number;
  eflags: number;
}

/** Read and write a thread's UTCB, wherever it lives. */
export interface UtcbView {
  get(offset: number): number;
  set(offset: number, value: number): void;
}

/** A TypeScript thread's UTCB: the same layout as an x86 thread's, in host memory. */
export class HostUtcb implements UtcbView {
  readonly words = new Uint32Array(UTCB_SIZE / 4);
  get(offset: number): number {
    return this.words[offset >>> 2];
  }
  set(offset: number, value: number): void {
    this.words[offset >>> 2] = value >>> 0;
  }
}

export class Thread {
  state: 'inactive' | 'ready' | 'sending' | 'receiving' = 'inactive';
  /** ExchangeRegisters halted it: it does not run (an IPC it is in still completes). */
  halted = false;
  /** In its priority's ready queue (x86 threads that are ready but not on the CPU). */
  queued = false;
  ipc: IpcOp | undefined;
  timer: Timer | undefined;
  /** Threads blocked sending to this one, in the order they came (FIFO). */
  readonly senders: Thread[] = [];
  readonly ctx: Context = { regs: [0, 0, 0, 0, 0, 0, 0, 0], eip: 0, eflags: 0x202 };

  priority = 100;
  /** Time-slice length and what is left of the current one, in cycles. */
  timeslice: number;
  remaining: number;
  /** The X.2 TimeControl word as last set (the total quantum is kept, not enforced). */
  timeControl = 0;
  scheduler: number;
  /** Where its UTCB is in its space, -1 while it has none (x86 threads). */
  utcbAddress = -1;

  // TypeScript threads
  program: TsProgram | undefined;
  api: L4Api | undefined;
  readonly hostUtcb: HostUtcb | undefined;
  /** Its API call is on the host stack: a completion is that call's result, not an ipcDone. */
  inCall = false;
  callResult: IpcResult | undefined;

  // interrupt threads
  irq = -1;
  /** The associated handler, NILTHREAD when none. */
  handler = 0;
  /** An interrupt came and its message is not yet delivered. */
  pendingIrq = false;
  /** Its message was delivered; the line stays masked until the handler replies. */
  inService = false;

  constructor(
    readonly tid: number,
    readonly kind: ThreadKind,
    public space: Space | undefined,
    timeslice: number,
    scheduler: number,
  ) {
    this.timeslice = timeslice;
    this.remaining = timeslice;
    this.scheduler = scheduler;
    this.hostUtcb = kind === 'ts' ? new HostUtcb() : undefined;
  }

  get number(): number {
    return this.tid >>> 14;
  }

  /** Runnable on the CPU: an x86 thread not blocked, not halted, with a UTCB. */
  get runnable(): boolean {
    return this.kind === 'x86' && this.state === 'ready' && !this.halted;
  }
}

export const MR = (k: number): number => Utcb.mr + k * 4;
export const BR = (k: number): number => Utcb.br + k * 4;
