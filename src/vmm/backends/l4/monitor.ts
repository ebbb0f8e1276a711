/**
 * The monitor: a TypeScript thread in the VM's main space (the original wedge's monitor and IRQ
 * threads in one, AB l4ka vcpu.cc, irq.cc). It waits for anyone, with the virtual timer's
 * deadline as its receive timeout, and handles:
 *
 * - the guest kernel thread's page faults (mapped from the alias, or reflected: L4Backend
 *   `kernelFault`) and exceptions (`kernelException`);
 * - the timeout: the virtual timer (the core's `timerExpired`);
 * - a passed-through line's interrupt message (the core's `deviceInterrupt`), and the helper's
 *   "the guest ended it" (the acknowledgement to the interrupt thread unmasks the line);
 * - the helper's "console input is queued";
 * - an abort of its wait (the kernel thread re-armed the timer earlier): it waits again.
 *
 * After each it brings a pending virtual interrupt to the guest (L4Backend `deliver`).
 */
import {
  EXCEPTION_WORDS,
  Exregs,
  fpage,
  IpcError,
  irqThreadId,
  Label,
  mapItem,
  R,
  RWX,
  tagLabel,
  W,
  X,
} from '../../../hypervisor/l4/abi.ts';
import { message, type L4Api } from '../../../hypervisor/l4/api.ts';
import type { IpcResult, Message, TsProgram } from '../../../hypervisor/l4/thread.ts';
import { Vector } from '../../../x86/fault.ts';
import { EFLAGS_IF, Vcpu, WINDOW_BASE, WINDOW_SIZE } from '../../window.ts';
import {
  ENTRY_ASYNC,
  ENTRY_KERNEL_TRAP,
  PAGE_CORE_STUBS,
  PAGE_STUBS,
  VmmLabel,
  windowPage,
} from './layout.ts';

/** Vectors whose exceptions push an error code (SDM 3A Table 6-1). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);
import type { L4Backend } from './L4Backend.ts';

export class Monitor implements TsProgram {
  /** The reply of its last wait was the idle kernel thread's wake-up (see wakeLost). */
  private waking = false;

  constructor(private readonly b: L4Backend) {}

  start(api: L4Api): void {
    this.serve(api, api.wait(0, this.b.waitOptions()));
  }

  ipcDone(api: L4Api, result: IpcResult): void {
    this.serve(api, result);
  }

  private serve(api: L4Api, first: IpcResult | undefined): void {
    const b = this.b;
    let r = first;
    while (r !== undefined) {
      b.monitorRunning = true;
      let reply: { to: number; msg: Message } | undefined;
      try {
        if (!this.wakeLost(r)) {
          reply = this.handle(api, r);
          if (reply === undefined) {
            const wake = this.deliver(api);
            if (wake !== undefined) reply = { to: b.mainTid, msg: wake };
          } else this.deliver(api);
        }
      } finally {
        b.monitorRunning = false;
      }
      const options = b.waitOptions();
      r =
        reply === undefined ? api.wait(0, options) : api.replyWait(reply.to, reply.msg, 0, options);
    }
  }

  /**
   * Whether `r` says the wake-up just sent found the kernel thread not waiting (another thread
   * ran between its `hlt` and its wait at STUB_IPC): then it is idle still, and the next event
   * the monitor takes wakes it (a message now would be lost again at once).
   */
  private wakeLost(r: IpcResult): boolean {
    if (!this.waking) return false;
    this.waking = false;
    if (r.error === 0 || (r.error & 1) === 1) return false; // sent: this is the wait's result
    this.b.mainState = 'idle';
    return true;
  }

  private handle(api: L4Api, r: IpcResult): { to: number; msg: Message } | undefined {
    const b = this.b;
    if (r.error !== 0) {
      // The receive phase's timeout is the virtual timer's deadline (a failed send, the phase
      // bit clear, is not).
      if ((r.error & 1) === 1 && ((r.error >>> 1) & 7) === IpcError.timeout) b.timerFired();
      // An abort may be the toolstack's: the driver VM this VM's NIC goes through is gone.
      else b.netFront?.check();
      return undefined;
    }
    const label = tagLabel(r.tag);
    const w = (k: number): number => (r.words[k] ?? 0) >>> 0;
    if (label === Label.interrupt) {
      b.vmm.deviceInterrupt(r.from >>> 14);
      return undefined;
    }
    // The driver VM's or a client's VMM (netChannel.ts).
    for (const n of b.net) if (n.message(r)) return undefined;
    if (r.from === b.helperTid) {
      if (label === VmmLabel.ackIrq) api.send(irqThreadId(w(0)), message(0));
      else if (label === VmmLabel.console) b.takeConsoleInput();
      return undefined;
    }
    if (r.from !== b.mainTid) return undefined;
    if ((label & 0xfff0) === Label.pageFault) {
      const map = this.kernelFault(api, w(0), w(1), label & 7);
      return map === undefined ? undefined : { to: b.mainTid, msg: map };
    }
    if (label === Label.exception) return { to: b.mainTid, msg: this.kernelException(r.words) };
    return undefined;
  }

  /** The kernel thread's page fault: a mapping for the reply, or undefined (reflected). */
  private kernelFault(api: L4Api, address: number, eip: number, rwx: number): Message | undefined {
    const write = (rwx & W) !== 0;
    const page = (address & ~0xfff) >>> 0;
    let source: number | undefined;
    let rights = RWX;
    let errorCode = write ? 2 : 0;
    const win = windowPage(address) ?? this.windowAliasPage(address);
    if (win !== undefined) {
      source = this.b.alias(this.b.guestPages + win);
      if (win === PAGE_CORE_STUBS || win === PAGE_STUBS) rights = R | X;
    } else if (!this.b.paging.paging) {
      if (address >>> 0 < this.b.guestPages * 4096) source = this.b.alias(address >>> 12);
    } else {
      const w = this.b.paging.walk(this.b.paging.cr3, address, write, false);
      if (w.ok) {
        source = this.b.alias(w.frame);
        if (!w.writable) rights = R | X;
        if (source !== undefined && w.frame < this.b.paging.mappedOut.length)
          this.b.paging.mappedOut[w.frame] = 1;
        if (address >>> 0 < this.b.mapAt && source !== undefined)
          this.b.paging.mirror = this.b.paging.cr3 >>> 12;
      } else if (w.present) errorCode |= 1;
    }
    if (source !== undefined && source === page) {
      this.b.crash(`the kernel faulted at its own alias 0x${page.toString(16)}`);
      return undefined;
    }
    if (source !== undefined) {
      this.b.counters.kernelFaultsMapped++;
      return message(0, [], mapItem(page, fpage(source, 12, rights)));
    }
    this.b.counters.kernelFaultsReflected++;
    this.b.kernelTrap = { vector: Vector.PF, errorCode, faultAddress: address >>> 0, eip };
    api.exchangeRegisters({
      dest: this.b.mainTid,
      control: Exregs.abortReceive | Exregs.abortSend | Exregs.ip,
      sp: 0,
      ip: ENTRY_KERNEL_TRAP,
      flags: 0,
      userHandle: 0,
      pager: 0,
    });
    return undefined;
  }

  /** The window's alias below the kernel's link offset, while the kernel runs at its load address. */
  private windowAliasPage(address: number): number | undefined {
    if (this.b.paging.paging) return undefined;
    return windowPage((address + this.b.mapAt) >>> 0);
  }

  /** The kernel thread's exception: the reply takes it to ENTRY_KERNEL_TRAP. */
  private kernelException(words: number[]): Message {
    const w = (n: string): number => words[EXCEPTION_WORDS.indexOf(n as never)] >>> 0;
    const vector = w('exception');
    this.b.counters.kernelExceptions++;
    this.b.kernelTrap = {
      vector,
      errorCode: ERROR_CODE_VECTORS.has(vector) ? w('errorCode') : null,
      faultAddress: null,
      eip: w('eip'),
    };
    const reply = [...words];
    reply[EXCEPTION_WORDS.indexOf('eip')] = ENTRY_KERNEL_TRAP;
    return message(0, reply);
  }

  /**
   * A virtual interrupt may be pending after the monitor's work: bring it to the guest at a safe
   * point — wake the idle kernel (the returned message), force the process in user mode into
   * the kernel, or redirect the kernel thread (not while it is in VMM code: the core delivers
   * at the next sti, popf, iret or hlt then).
   */
  private deliver(api: L4Api): Message | undefined {
    const block = this.b.vcpuBlock();
    if (block.getUint32(Vcpu.pending, true) === 0) return undefined;
    const vif = (block.getUint32(Vcpu.vif, true) & EFLAGS_IF) !== 0;
    const exregs = (dest: number, control: number, ip: number): number =>
      api.exchangeRegisters({ dest, control, sp: 0, ip, flags: 0, userHandle: 0, pager: 0 }).ip;
    if (this.b.mainState === 'idle') {
      this.b.mainState = 'kernel';
      this.waking = true;
      return message(VmmLabel.wake);
    }
    if (this.b.mainState === 'user') {
      this.b.processes.force(exregs);
      return undefined;
    }
    if (!vif || this.b.syncDepth > 0 || this.b.redirectIp !== undefined) return undefined;
    if (this.b.main.state !== 'ready') return undefined;
    const ip = this.b.main.ctx.eip >>> 0;
    if (
      ip >= WINDOW_BASE ||
      (ip >= WINDOW_BASE - this.b.mapAt &&
        ip < WINDOW_BASE - this.b.mapAt + WINDOW_SIZE &&
        !this.b.paging.paging)
    )
      return undefined;
    this.b.redirectIp = exregs(this.b.mainTid, Exregs.ip, ENTRY_ASYNC);
    this.b.counters.kernelRedirects++;
    return undefined;
  }
}
