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
import { IpcError, irqThreadId, Label, tagLabel } from '../../../hypervisor/l4/abi.ts';
import { message, type L4Api } from '../../../hypervisor/l4/api.ts';
import type { IpcResult, Message, TsProgram } from '../../../hypervisor/l4/thread.ts';
import { VmmLabel } from './layout.ts';
import type { L4Backend } from './L4Backend.ts';

export class Monitor implements TsProgram {
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
        reply = this.handle(api, r);
        if (reply === undefined) {
          const wake = b.deliver(api);
          if (wake !== undefined) reply = { to: b.mainTid, msg: wake };
        } else b.deliver(api);
      } finally {
        b.monitorRunning = false;
      }
      const options = b.waitOptions();
      r =
        reply === undefined ? api.wait(0, options) : api.replyWait(reply.to, reply.msg, 0, options);
    }
  }

  private handle(api: L4Api, r: IpcResult): { to: number; msg: Message } | undefined {
    const b = this.b;
    if (r.error !== 0) {
      if (((r.error >>> 1) & 7) === IpcError.timeout) b.timerFired();
      return undefined;
    }
    const label = tagLabel(r.tag);
    const w = (k: number): number => (r.words[k] ?? 0) >>> 0;
    if (label === Label.interrupt) {
      b.vmm.deviceInterrupt(r.from >>> 14);
      return undefined;
    }
    if (r.from === b.helperTid) {
      if (label === VmmLabel.ackIrq) api.send(irqThreadId(w(0)), message(0));
      else if (label === VmmLabel.console) b.takeConsoleInput();
      return undefined;
    }
    if (r.from !== b.mainTid) return undefined;
    if ((label & 0xfff0) === Label.pageFault) {
      const map = b.kernelFault(api, w(0), w(1), label & 7);
      return map === undefined ? undefined : { to: b.mainTid, msg: map };
    }
    if (label === Label.exception) return { to: b.mainTid, msg: b.kernelException(r.words) };
    return undefined;
  }
}
