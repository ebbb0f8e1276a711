/**
 * IPC (PI api/v4/ipc.cc, shared/reference/l4.md "IPC"): one call is an optional send phase
 * followed by an optional receive phase. A send finds its partner waiting (the message moves at
 * once) or blocks with the send timeout (zero: fails at once; never; or a period on the
 * simulated clock). A receive takes the first sender queued for it that the from-specifier
 * accepts (any thread, any local thread, one thread), or blocks with the receive timeout.
 * Message transfer copies MR0 (the tag) and the u untyped and t typed words; typed items map or
 * grant pages into the receiver's acceptor window and copy strings into its buffers. A failed
 * IPC returns the error word (code, phase, bytes transferred) to both partners where both took
 * part. Each message transferred costs 250 cycles (l4Ipc); mapped pages 100 each (mapdb.ts);
 * strings one cycle per 4 bytes (a REP MOVSD element).
 *
 * Messages the kernel sends for a thread (page faults to its pager, exceptions to its exception
 * handler, interrupts from interrupt threads) are IPCs of their own kind: the faulting thread
 * blocks sending, then receiving the reply, which the kernel applies (mappings, registers)
 * instead of writing it into the thread's message registers.
 */
import {
  ANYLOCALTHREAD,
  ANYTHREAD,
  COMPLETE_ADDRESS_SPACE,
  decodeFpage,
  decodeTime,
  EXCEPTION_WORDS,
  IpcError,
  ipcErrorWord,
  ITEM_GRANT,
  ITEM_MAP,
  NILPAGE,
  NILTHREAD,
  TAG_ERROR,
  tagT,
  tagU,
  Utcb,
} from './abi.ts';
import type { L4Kernel } from './L4.ts';
import { BR, MR, type IpcOp, type IpcResult, type Message, type Thread } from './thread.ts';

/** Why a transfer failed: the error code, the bytes moved before, and whose space faulted. */
interface TransferFailure {
  code: number;
  offset: number;
  /** For a missing page in a string copy: the sender's space or the receiver's. */
  faultIn?: 'sender' | 'receiver';
}

const EAX = 0;
const ESI = 6;

export class IpcEngine {
  constructor(private readonly k: L4Kernel) {}

  /** Starts `t`'s IPC: its send phase if it has a partner, else its receive phase. */
  begin(t: Thread, op: IpcOp): void {
    t.ipc = op;
    if (op.to !== NILTHREAD) this.sendPhase(t);
    else this.receivePhase(t);
  }

  private sendPhase(t: Thread): void {
    const op = t.ipc!;
    op.phase = 'send';
    const dest = this.k.lookup(op.to, t);
    if (dest === undefined) return this.fail(t, IpcError.nonExisting, false);
    if (dest.kind === 'irq') {
      // Only the associated handler talks to an interrupt thread: its message acknowledges the
      // interrupt (PI api/v4/interrupt.cc), which unmasks the line.
      if (dest.handler !== t.tid) return this.fail(t, IpcError.nonExisting, false);
      this.k.charge(this.k.costs.l4Ipc);
      this.k.counters.ipc.other++;
      this.k.interrupts.acknowledge(dest);
      return this.afterSend(t);
    }
    if (dest.state === 'receiving' && this.accepts(dest, t)) {
      const failure = this.transfer(t, dest);
      if (failure !== undefined) {
        this.failBoth(t, dest, failure);
        return;
      }
      return this.afterSend(t);
    }
    const timeout = decodeTime(op.timeouts >>> 16);
    if (timeout === 'zero') return this.fail(t, IpcError.timeout, false);
    t.state = 'sending';
    dest.senders.push(t);
    if (timeout !== 'never') this.arm(t, this.k.now() + this.k.microsToCycles(timeout));
  }

  /** The send phase is done: on to the receive phase, or the call is over. */
  private afterSend(t: Thread): void {
    const op = t.ipc!;
    if (t.kind === 'irq') {
      // The interrupt's message is with its handler: the line stays masked until the reply.
      t.ipc = undefined;
      t.state = 'inactive';
      t.pendingIrq = false;
      t.inService = true;
      return;
    }
    if (op.from === NILTHREAD) {
      this.finish(t, { error: 0, from: NILTHREAD, tag: 0, words: [] });
      return;
    }
    this.receivePhase(t);
  }

  private receivePhase(t: Thread): void {
    const op = t.ipc!;
    op.phase = 'receive';
    const sender = t.senders.find((s) => this.acceptsSpec(op.from, t, s));
    if (sender !== undefined) {
      t.senders.splice(t.senders.indexOf(sender), 1);
      this.disarm(sender);
      sender.state = sender.kind === 'irq' ? 'inactive' : 'ready';
      const failure = this.transfer(sender, t);
      if (failure !== undefined) {
        this.failBoth(sender, t, failure);
        return;
      }
      this.afterSend(sender);
      return;
    }
    if (
      op.from !== ANYTHREAD &&
      op.from !== ANYLOCALTHREAD &&
      this.k.lookup(op.from, t) === undefined
    )
      return this.fail(t, IpcError.nonExisting, true);
    let deadline: number | undefined;
    if (op.receiveUntil !== undefined) {
      if (op.receiveUntil <= this.k.now()) return this.fail(t, IpcError.timeout, true);
      deadline = op.receiveUntil;
    } else {
      const timeout = decodeTime(op.timeouts);
      if (timeout === 'zero') return this.fail(t, IpcError.timeout, true);
      if (timeout !== 'never') deadline = this.k.now() + this.k.microsToCycles(timeout);
    }
    t.state = 'receiving';
    if (deadline !== undefined) this.arm(t, deadline);
  }

  /** A waiting receiver takes this sender (the from-specifier it waits with accepts it). */
  private accepts(receiver: Thread, sender: Thread): boolean {
    return this.acceptsSpec(receiver.ipc!.from, receiver, sender);
  }

  private acceptsSpec(from: number, receiver: Thread, sender: Thread): boolean {
    if (from === ANYTHREAD) return true;
    if (from === ANYLOCALTHREAD)
      return sender.space !== undefined && sender.space === receiver.space;
    return from === sender.tid;
  }

  // ---- message transfer ------------------------------------------------------------------------

  /**
   * Moves the sender's message to the receiver, whose IPC then completes (as does the sender's
   * send phase, left to the caller). Returns why it failed, if it did; nothing is delivered then.
   */
  private transfer(sender: Thread, receiver: Thread): TransferFailure | undefined {
    const k = this.k;
    const msg = sender.ipc!.message ?? { tag: 0, words: [] };
    k.charge(k.costs.l4Ipc);
    const kind = sender.ipc!.kind;
    if (kind === 'pageFault') k.counters.ipc.pageFault++;
    else if (kind === 'exception') k.counters.ipc.exception++;
    else if (kind === 'interrupt') k.counters.ipc.interrupt++;
    else k.counters.ipc.other++;

    const rop = receiver.ipc!;
    const u = tagU(msg.tag);
    const t = tagT(msg.tag);
    const words = msg.words.slice(0, u + t);
    // What the receiver accepts: a window for mappings and whether strings. The kernel receives
    // a page-fault or exception reply on the thread's behalf into its whole address space.
    let window = NILPAGE;
    let strings = false;
    const utcb = k.utcbOf(receiver);
    if (rop.kind === 'pageFault' || rop.kind === 'exception') window = COMPLETE_ADDRESS_SPACE;
    else if (rop.kind === 'call' && utcb !== undefined) {
      const br0 = utcb.get(BR(0));
      window = br0 & ~0xf;
      strings = (br0 & 1) !== 0;
    }
    let offset = 0;
    let buffer = 1;
    for (let i = u; i < u + t;) {
      if (i + 1 >= u + t) return { code: IpcError.overflow, offset };
      const w0 = words[i];
      const type = w0 & 0xe;
      if ((type & 0x8) === 0) {
        // A string item (simple: one substring, j = 0).
        const length = w0 >>> 10;
        const pointer = words[i + 1];
        if (((w0 >>> 4) & 0x1f) !== 0 || !strings || utcb === undefined)
          return { code: IpcError.overflow, offset };
        if (buffer + 1 >= 33) return { code: IpcError.overflow, offset };
        const bw = utcb.get(BR(buffer));
        const bufferLength = bw >>> 10;
        const bufferPointer = utcb.get(BR(buffer + 1));
        if ((bw & 0x8) !== 0 || length > bufferLength) return { code: IpcError.overflow, offset };
        const copied = this.copyString(sender, pointer, receiver, bufferPointer, length);
        offset += copied.bytes;
        if (copied.faultIn !== undefined)
          return { code: IpcError.xferTimeoutInvoker, offset, faultIn: copied.faultIn };
        words[i] = ((length << 10) | (w0 & 0x3ff)) >>> 0;
        words[i + 1] = bufferPointer;
        // The next string goes into the next buffer if this one says more follow (C bit).
        buffer = (bw & 1) !== 0 ? buffer + 2 : 33;
        i += 2;
      } else if (type === ITEM_MAP || type === ITEM_GRANT) {
        if (window === NILPAGE) return { code: IpcError.overflow, offset };
        const send = decodeFpage(words[i + 1]);
        const from = sender.space;
        const to = receiver.space;
        if (from !== undefined && to !== undefined) {
          const ok = k.mdb.mapFpage(
            from,
            send,
            (w0 & 0xfffffc00) >>> 0,
            to,
            decodeFpage(window | 0),
            type === ITEM_GRANT,
          );
          if (!ok) return { code: IpcError.overflow, offset };
        }
        i += 2;
      } else {
        // Other item types (X.2 extensions: control transfer) are not modelled.
        return { code: IpcError.overflow, offset };
      }
    }
    this.deliver(receiver, sender, {
      error: 0,
      from: sender.tid,
      tag: (msg.tag & ~TAG_ERROR) >>> 0,
      words: words.slice(0, u + t),
    });
    return undefined;
  }

  /**
   * Copies a string between two spaces through their mappings (the kernel's copy: it sets the
   * accessed and dirty bits the CPU would). A page missing (or not readable / writable) in
   * either space ends it as a zero transfer timeout would.
   */
  private copyString(
    sender: Thread,
    src: number,
    receiver: Thread,
    dst: number,
    length: number,
  ): { bytes: number; faultIn?: 'sender' | 'receiver' } {
    const k = this.k;
    let done = 0;
    while (done < length) {
      const s = (src + done) >>> 0;
      const d = (dst + done) >>> 0;
      const chunk = Math.min(length - done, 4096 - (s & 0xfff), 4096 - (d & 0xfff));
      const from = k.memoryAt(sender.space, s, false);
      if (from === undefined) return { bytes: done, faultIn: 'sender' };
      const to = k.memoryAt(receiver.space, d, true);
      if (to === undefined) return { bytes: done, faultIn: 'receiver' };
      k.copyMachine(from, to, chunk);
      done += chunk;
    }
    k.charge(Math.ceil(length / 4) * k.cpuCosts.repElement);
    k.counters.stringBytes += length;
    return { bytes: done };
  }

  /** The receiver's IPC completes with this message. */
  private deliver(receiver: Thread, sender: Thread, result: IpcResult): void {
    this.disarm(receiver);
    // The running thread woke it: it runs next if the running thread now blocks (direct switch).
    if (receiver.kind === 'x86' && this.k.current === sender) this.k.handoff = receiver;
    const op = receiver.ipc!;
    if (op.kind === 'pageFault') {
      // The mappings are made; the thread restarts the instruction.
    } else if (op.kind === 'exception') {
      // The reply's words replace the registers (exception number and error code are ignored).
      const ctx = receiver.ctx;
      const u = tagU(result.tag);
      EXCEPTION_WORDS.forEach((name, i) => {
        if (i >= u) return;
        const v = result.words[i] >>> 0;
        if (name === 'eip') ctx.eip = v;
        else if (name === 'eflags') ctx.eflags = v;
        else if (name === 'exception' || name === 'errorCode') return;
        else ctx.regs[['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'].indexOf(name)] = v;
      });
    } else if (op.kind === 'start') {
      receiver.ctx.eip = result.words[0] >>> 0;
      receiver.ctx.regs[4] = result.words[1] >>> 0;
    } else {
      const utcb = this.k.utcbOf(receiver);
      if (utcb !== undefined) {
        utcb.set(MR(0), result.tag);
        result.words.forEach((w, i) => utcb.set(MR(i + 1), w));
        utcb.set(Utcb.actualSender, sender.tid);
      }
    }
    this.finish(receiver, result);
  }

  // ---- completion, failure, timeouts, aborts ------------------------------------------------

  /** `t`'s IPC is over: its registers (x86) or its call's result (TypeScript). */
  finish(t: Thread, result: IpcResult): void {
    const k = this.k;
    const op = t.ipc;
    t.ipc = undefined;
    this.disarm(t);
    if (t.kind === 'irq') {
      t.state = 'inactive';
      return;
    }
    t.state = 'ready';
    const utcb = k.utcbOf(t);
    if (result.error !== 0 && utcb !== undefined) utcb.set(Utcb.errorCode, result.error);
    if (t.kind === 'ts') {
      if (result.error !== 0) utcb?.set(MR(0), result.tag);
      if (t.inCall) t.callResult = result;
      else k.deliveries.push({ thread: t, result });
      return;
    }
    if (op?.kind === 'call') {
      t.ctx.regs[EAX] = result.from >>> 0;
      t.ctx.regs[ESI] = (result.tag | (result.error !== 0 ? TAG_ERROR : 0)) >>> 0;
      if (result.error !== 0 && utcb !== undefined) utcb.set(MR(0), (result.tag | TAG_ERROR) >>> 0);
    } else if ((op?.kind === 'pageFault' || op?.kind === 'exception') && result.error !== 0) {
      const code = (result.error >>> 1) & 7;
      if (code === IpcError.nonExisting) {
        const who = op.kind === 'pageFault' ? 'pager' : 'exception handler';
        k.haltThread(t, `its ${who} 0x${op.to.toString(16)} does not exist`);
        return;
      }
    }
    k.makeReady(t);
  }

  /** Fails `t`'s IPC in the phase it is in. */
  fail(t: Thread, code: number, receivePhase: boolean, offset = 0): void {
    this.k.countIpcError(code);
    this.finish(t, {
      error: ipcErrorWord(code, receivePhase, offset),
      from: NILTHREAD,
      tag: TAG_ERROR,
      words: [],
    });
  }

  /** A transfer failed: the sender in its send phase, the receiver in its receive phase. */
  private failBoth(sender: Thread, receiver: Thread, f: TransferFailure): void {
    let senderCode = f.code;
    let receiverCode = f.code;
    if (f.faultIn === 'sender') receiverCode = IpcError.xferTimeoutPartner;
    if (f.faultIn === 'receiver') senderCode = IpcError.xferTimeoutPartner;
    this.fail(receiver, receiverCode, true, f.offset);
    if (sender.kind === 'irq') {
      // An interrupt message never fails (it has no items); nothing to report.
      sender.ipc = undefined;
      sender.state = 'inactive';
      return;
    }
    this.fail(sender, senderCode, false, f.offset);
  }

  private arm(t: Thread, deadline: number): void {
    this.disarm(t);
    t.timer = this.k.clock.at(
      deadline,
      () => this.k.timerEntry(() => this.timedOut(t)),
      'l4.timeout',
    );
  }

  disarm(t: Thread): void {
    t.timer?.cancel();
    t.timer = undefined;
  }

  /** A timeout passed: the IPC fails in the phase the thread waits in. */
  timedOut(t: Thread): void {
    t.timer = undefined;
    this.k.counters.timeouts++;
    if (t.state === 'sending') {
      this.removeSender(t);
      this.fail(t, IpcError.timeout, false);
    } else if (t.state === 'receiving') {
      this.fail(t, IpcError.timeout, true);
    }
  }

  /** Takes a blocked sender out of its partner's queue. */
  removeSender(t: Thread): void {
    const dest = t.ipc === undefined ? undefined : this.k.lookup(t.ipc.to, t);
    for (const q of dest === undefined ? this.k.allThreads() : [dest]) {
      const at = q.senders.indexOf(t);
      if (at >= 0) q.senders.splice(at, 1);
    }
  }

  /**
   * ExchangeRegisters' abort: a blocked send or receive (as the flags say) ends with "canceled";
   * for a page-fault or exception message the thread simply runs again.
   */
  abort(t: Thread, send: boolean, receive: boolean): void {
    if (t.ipc === undefined) return;
    if (t.state === 'sending' && send) {
      this.removeSender(t);
      this.fail(t, IpcError.canceled, false);
    } else if (t.state === 'receiving' && receive) {
      this.fail(t, IpcError.canceled, true);
    }
  }

  /** `gone` is deleted: whoever waits on it fails with "non-existing partner". */
  partnerGone(gone: Thread): void {
    for (const s of [...gone.senders]) {
      gone.senders.splice(gone.senders.indexOf(s), 1);
      if (s.kind === 'irq') {
        s.ipc = undefined;
        s.state = 'inactive';
        continue;
      }
      this.fail(s, IpcError.nonExisting, false);
    }
    for (const t of this.k.allThreads()) {
      if (t.state === 'receiving' && t.ipc?.from === gone.tid)
        this.fail(t, IpcError.nonExisting, true);
    }
  }
}

/** The message a thread's MRs hold now (u + t words after MR0), or why it cannot be sent. */
export function readMessage(get: (offset: number) => number): Message | undefined {
  const tag = get(MR(0));
  const n = tagU(tag) + tagT(tag);
  if (n > 63) return undefined;
  const words: number[] = [];
  for (let i = 1; i <= n; i++) words.push(get(MR(i)));
  return { tag, words };
}
