/**
 * The system calls of a TypeScript thread (thread.ts `TsProgram`): the same operations as the
 * trap ABI (syscalls.ts), charged as it is — the trap in and out (500 + 300) plus what the call
 * does (250 per message transferred, 100 per page-table entry mapped or unmapped, MOV to CR3 when
 * a space switch happens) — so that a VMM written in TypeScript costs what the original's C++
 * wedge did. One `L4Api` per TypeScript thread (`thread.api`, and `ipcDone`'s first argument).
 *
 * IPC returns its result when the call completes at once, and `undefined` when the thread
 * blocked: the program must then return; the result comes to its `ipcDone` later. A call to a
 * TypeScript thread that is waiting completes at once (its handler runs before the call
 * returns), so a Call to the resource monitor returns the reply.
 */
import {
  ANYTHREAD,
  acceptor as acceptorWord,
  COMPLETE_ADDRESS_SPACE,
  msgTag,
  NEVER,
  NILTHREAD,
  timeouts,
  Utcb,
  ZERO_TIME,
} from './abi.ts';
import type { L4Kernel } from './L4.ts';
import {
  exchangeRegisters,
  kernelInterface,
  schedule,
  spaceControl,
  startIpc,
  systemClock,
  threadControl,
  threadSwitch,
  unmap,
  type ExregsArgs,
  type ExregsResult,
} from './syscalls.ts';
import { BR, MR, type IpcResult, type Message, type Thread } from './thread.ts';

/** A message: a label, untyped words, typed items (the words of map, grant and string items). */
export function message(label: number, untyped: number[] = [], typed: number[] = []): Message {
  return { tag: msgTag(label, untyped.length, typed.length), words: [...untyped, ...typed] };
}

export interface IpcOptions {
  /** BR0 for this call's receive phase (default: the UTCB's, as set by `setAcceptor`). */
  acceptor?: number;
  /**
   * Receive until this cycle instead of the timeouts word's receive timeout (a previrt extension
   * for TypeScript threads: a point on the simulated clock, exact to the cycle).
   */
  receiveUntil?: number;
}

export class L4Api {
  constructor(
    private readonly k: L4Kernel,
    readonly thread: Thread,
  ) {}

  /** This thread's global ID. */
  get self(): number {
    return this.thread.tid;
  }

  /** The thread's UTCB (MRs after a receive, BRs, pager, error code...). */
  get utcb(): { get(offset: number): number; set(offset: number, value: number): void } {
    return this.thread.hostUtcb!;
  }

  /** Accept mappings into `window` (an fpage; the whole space by default) and strings or not. */
  setAcceptor(window = COMPLETE_ADDRESS_SPACE, strings = false): void {
    this.utcb.set(BR(0), acceptorWord(window, strings));
  }

  /** A system call: charged as the trap in and out, run as a kernel entry. */
  private call<T>(name: string, work: () => T): T {
    const t = this.thread;
    if (t.ipc !== undefined)
      throw new Error(
        `l4: thread 0x${t.tid.toString(16)} made a system call (${name}) while blocked in IPC`,
      );
    if (t.space === undefined) throw new Error(`l4: thread 0x${t.tid.toString(16)} was deleted`);
    const k = this.k;
    return k.hostEntry(() => {
      if (k.topLevel) k.activate(t.space!);
      k.charge(k.cpuCosts.gatePrivilege);
      k.counters.typeScriptSyscalls++;
      return work();
    });
  }

  /** The return to the caller, when its call completed (a blocked call returns in ipcDone). */
  private returned(): void {
    this.k.charge(this.k.cpuCosts.iretOuter);
  }

  // ---- IPC ----------------------------------------------------------------------------------------

  /**
   * Ipc: send `msg` to `to` (NILTHREAD: no send phase), then receive from `from` (NILTHREAD: no
   * receive phase; ANYTHREAD: open). `timeoutsWord` = send << 16 | receive (abi.ts timeouts).
   */
  ipc(
    to: number,
    from: number,
    timeoutsWord: number,
    msg: Message | undefined,
    options: IpcOptions = {},
  ): IpcResult | undefined {
    const t = this.thread;
    return this.call('ipc', () => {
      this.k.counters.syscalls.ipc++;
      if (options.acceptor !== undefined) this.utcb.set(BR(0), options.acceptor);
      if (msg !== undefined) {
        this.utcb.set(MR(0), msg.tag);
        msg.words.forEach((w, i) => this.utcb.set(MR(i + 1), w));
      }
      t.inCall = true;
      t.callResult = undefined;
      try {
        startIpc(this.k, t, to, from, timeoutsWord, msg, options.receiveUntil);
        this.k.drain();
      } finally {
        t.inCall = false;
      }
      const result = t.callResult;
      t.callResult = undefined;
      if (result !== undefined) this.returned();
      return result;
    });
  }

  /** Send only; `timeout` a send timeout (ZERO_TIME by default: the partner must be waiting). */
  send(to: number, msg: Message, timeout = ZERO_TIME): IpcResult | undefined {
    return this.ipc(to, NILTHREAD, timeouts(timeout, 0), msg);
  }

  /** Send, then receive from the same partner (L4_Call). */
  callIpc(
    to: number,
    msg: Message,
    receiveTimeout = NEVER,
    options: IpcOptions = {},
  ): IpcResult | undefined {
    return this.ipc(to, to, timeouts(NEVER, receiveTimeout), msg, options);
  }

  /** Reply, then wait for anyone (L4_ReplyWait); the reply's send timeout is zero. */
  replyWait(
    to: number,
    msg: Message,
    receiveTimeout = NEVER,
    options: IpcOptions = {},
  ): IpcResult | undefined {
    return this.ipc(to, ANYTHREAD, timeouts(ZERO_TIME, receiveTimeout), msg, options);
  }

  /** Receive from anyone (L4_Wait). */
  wait(receiveTimeout = NEVER, options: IpcOptions = {}): IpcResult | undefined {
    return this.ipc(NILTHREAD, ANYTHREAD, timeouts(0, receiveTimeout), undefined, options);
  }

  /** Receive from one thread. */
  receive(from: number, receiveTimeout = NEVER, options: IpcOptions = {}): IpcResult | undefined {
    return this.ipc(NILTHREAD, from, timeouts(0, receiveTimeout), undefined, options);
  }

  // ---- the other system calls ---------------------------------------------------------------

  /** Unmap (or flush) fpages; returns them with their status bits (R 4, W 2) in the rights. */
  unmap(fpages: number[], flush = false): number[] {
    return this.call('unmap', () => {
      const out = unmap(
        this.k,
        this.thread,
        (fpages.length - 1) | (flush ? 0x40 : 0),
        fpages.slice(0, 64),
      );
      out.forEach((v, i) => this.utcb.set(MR(i), v));
      this.returned();
      return out;
    });
  }

  exchangeRegisters(args: ExregsArgs): ExregsResult {
    return this.call('exchangeRegisters', () => {
      this.k.counters.syscalls.exchangeRegisters++;
      const r = exchangeRegisters(this.k, this.thread, args);
      if (r.error !== 0) this.utcb.set(Utcb.errorCode, r.error);
      this.returned();
      return r;
    });
  }

  /** ThreadControl (privileged): 0, or the error code. */
  threadControl(
    dest: number,
    space: number,
    scheduler: number,
    pager: number,
    utcb: number,
  ): number {
    return this.call('threadControl', () => {
      this.k.counters.syscalls.threadControl++;
      const e = threadControl(this.k, this.thread, dest, space, scheduler, pager, utcb);
      if (e !== 0) this.utcb.set(Utcb.errorCode, e);
      this.returned();
      return e;
    });
  }

  /** SpaceControl (privileged): 0, or the error code. */
  spaceControl(
    space: number,
    control: number,
    kipArea: number,
    utcbArea: number,
    redirector = NILTHREAD,
  ): number {
    return this.call('spaceControl', () => {
      this.k.counters.syscalls.spaceControl++;
      const e = spaceControl(this.k, this.thread, space, control, kipArea, utcbArea, redirector);
      if (e !== 0) this.utcb.set(Utcb.errorCode, e);
      this.returned();
      return e;
    });
  }

  schedule(
    dest: number,
    timeControl = 0xffffffff,
    prio = 0xffffffff,
    processorControl = 0xffffffff,
    preemptionControl = 0xffffffff,
  ): { result: number; timeControl: number; error: number } {
    return this.call('schedule', () => {
      this.k.counters.syscalls.schedule++;
      const r = schedule(
        this.k,
        this.thread,
        dest,
        timeControl,
        processorControl,
        prio,
        preemptionControl,
      );
      if (r.error !== 0) this.utcb.set(Utcb.errorCode, r.error);
      this.returned();
      return r;
    });
  }

  threadSwitch(dest = NILTHREAD): void {
    this.call('threadSwitch', () => {
      this.k.counters.syscalls.threadSwitch++;
      threadSwitch(this.k, this.thread, dest);
      this.returned();
    });
  }

  /** SystemClock: microseconds on the simulated clock. */
  systemClock(): number {
    return this.call('systemClock', () => {
      this.k.counters.syscalls.systemClock++;
      this.returned();
      return systemClock(this.k);
    });
  }

  kernelInterface(): ReturnType<typeof kernelInterface> {
    return this.call('kernelInterface', () => {
      this.k.counters.syscalls.kernelInterface++;
      this.returned();
      return kernelInterface();
    });
  }
}
