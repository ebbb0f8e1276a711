/**
 * Hardware interrupts as IPC (PI api/v4/interrupt.cc): interrupt thread n (version 1) stands for
 * line n of the machine's 8259 pair, which the kernel programs at start (vectors 0x20–0x2F, every
 * line masked but the cascade). ThreadControl(irq, irq, -, handler, -) associates a handler and
 * unmasks the line; pager = irq itself dissociates it. When the line interrupts, the kernel masks
 * it, sends the EOI and sends the handler a message from the interrupt thread (label 0xfff0, no
 * words); an interrupt that comes while the handler is busy waits in the interrupt thread's send.
 * The line stays masked until the handler's reply to the interrupt thread, as xen's pirq does.
 * The kernel's own accesses to the 8259 are not charged (xen's are not either).
 */
import { Label, msgTag, NEVER, NILTHREAD } from './abi.ts';
import type { L4Kernel } from './L4.ts';
import type { Thread } from './thread.ts';

export const IRQ_LINES = 16;
export const IRQ_VECTOR_BASE = 0x20;

export class Interrupts {
  constructor(private readonly k: L4Kernel) {}

  /** ICW1–ICW4 on both 8259s, then every line masked but the cascade (IRQ 2). */
  programPic(): void {
    const out = (port: number, value: number): void => this.k.machine.ports.write(port, 1, value);
    for (const [cmd, data, base, wiring] of [
      [0x20, 0x21, IRQ_VECTOR_BASE, 0x04],
      [0xa0, 0xa1, IRQ_VECTOR_BASE + 8, 0x02],
    ]) {
      out(cmd, 0x11);
      out(data, base);
      out(data, wiring);
      out(data, 0x01);
    }
    out(0x21, 0xfb);
    out(0xa1, 0xff);
  }

  setMasked(irq: number, masked: boolean): void {
    if (irq === 2) return;
    const ports = this.k.machine.ports;
    const port = irq < 8 ? 0x21 : 0xa1;
    const bit = 1 << (irq & 7);
    const imr = ports.read(port, 1);
    ports.write(port, 1, masked ? imr | bit : imr & ~bit);
  }

  /** The CPU took vector `vector` from the PIC. */
  hardware(vector: number): void {
    const irq = vector - IRQ_VECTOR_BASE;
    if (irq < 0 || irq >= IRQ_LINES) return;
    const ports = this.k.machine.ports;
    // A spurious IRQ 7/15 is not in service and gets no EOI (8259A datasheet, IRQ7 note).
    ports.write(0x20, 1, 0x0b);
    const isr = ports.read(0x20, 1);
    ports.write(0xa0, 1, 0x0b);
    const slaveIsr = ports.read(0xa0, 1);
    const inService = irq < 8 ? (isr & (1 << irq)) !== 0 : (slaveIsr & (1 << (irq - 8))) !== 0;
    if (!inService) return;
    this.setMasked(irq, true);
    if (irq >= 8) ports.write(0xa0, 1, 0x60 | (irq - 8));
    ports.write(0x20, 1, 0x60 | (irq >= 8 ? 2 : irq));
    this.k.counters.interrupts++;
    const it = this.k.irqThread(irq);
    if (it === undefined || it.handler === NILTHREAD || it.inService || it.pendingIrq) return;
    it.pendingIrq = true;
    this.send(it);
  }

  /** The interrupt thread's message to its handler: delivered now, or waiting in its send. */
  private send(it: Thread): void {
    const handler = this.k.lookup(it.handler, it);
    if (handler === undefined) {
      it.pendingIrq = false;
      return;
    }
    this.k.ipc.begin(it, {
      kind: 'interrupt',
      phase: 'send',
      to: handler.tid,
      from: NILTHREAD,
      timeouts: NEVER,
      receiveUntil: undefined,
      message: { tag: msgTag(Label.interrupt, 0), words: [] },
    });
  }

  /** The handler replied to the interrupt thread: the line is unmasked. */
  acknowledge(it: Thread): void {
    if (!it.inService) return;
    it.inService = false;
    this.setMasked(it.irq, false);
  }

  /** ThreadControl on an interrupt thread: `handler` takes its interrupts (NIL: none). */
  associate(it: Thread, handler: number): void {
    if (it.handler !== NILTHREAD) this.dissociate(it);
    it.handler = handler;
    it.inService = false;
    this.setMasked(it.irq, false);
  }

  dissociate(it: Thread): void {
    this.setMasked(it.irq, true);
    if (it.state === 'sending') this.k.ipc.removeSender(it);
    it.ipc = undefined;
    it.state = 'inactive';
    it.handler = NILTHREAD;
    it.pendingIrq = false;
    it.inService = false;
  }
}
