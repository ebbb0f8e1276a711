// The virtual platform's COM1 is the machine's 16550 on the VMM's port bus, its received bytes
// timed on the backend's system time; console input typed before the guest programmed its 8259s
// reaches the guest (the guest kernel enables the UART's interrupt before it initialises them).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualPlatform } from './platform.ts';

const COM1 = 0x3f8;

function platform(): {
  p: VirtualPlatform;
  out: number[];
  /** Moves system time on to `ns` and fires the device events the backend's timer would. */
  runTo(ns: number): void;
  intr: () => boolean;
  deadlines: number[];
} {
  let now = 0;
  let intr = false;
  const out: number[] = [];
  const deadlines: number[] = [];
  const p = new VirtualPlatform({
    interruptLine: (level) => (intr = level),
    consoleByte: (b) => out.push(b),
    exit: () => {},
    reset: () => {},
    rtcStartSeconds: 0,
    deviceEoi: () => {},
    nowNs: () => now,
    programmed: () => {},
    deviceEventAt: (ns) => deadlines.push(ns),
  });
  return {
    p,
    out,
    deadlines,
    intr: () => intr,
    runTo(ns) {
      now = ns;
      p.clock.fireDue(ns);
    },
  };
}

/** What the guest kernel's uart_init does: 115200 baud, 8N1, FIFOs off, the RDA interrupt. */
function uartInit(p: VirtualPlatform): void {
  p.write(COM1 + 1, 1, 0);
  p.write(COM1 + 3, 1, 0x80);
  p.write(COM1, 1, 1);
  p.write(COM1 + 1, 1, 0);
  p.write(COM1 + 3, 1, 0x03);
  p.write(COM1 + 2, 1, 0);
  p.write(COM1 + 4, 1, 0x0b);
  p.write(COM1 + 1, 1, 0x01);
}

/** Both 8259s to vectors 32–47, all masked but the cascade and `unmasked` (master IRQs). */
function picInit(p: VirtualPlatform, unmasked: number): void {
  for (const [command, data, base, icw3] of [
    [0x20, 0x21, 32, 0x04],
    [0xa0, 0xa1, 40, 0x02],
  ]) {
    p.write(command, 1, 0x11);
    p.write(data, 1, base);
    p.write(data, 1, icw3);
    p.write(data, 1, 0x01);
    p.write(data, 1, 0xff);
  }
  p.write(0x21, 1, 0xff & ~(0x04 | unmasked));
}

describe('the virtual platform', () => {
  it('sends COM1 output to the console and times input on the backend clock', () => {
    const { p, out, runTo, intr, deadlines } = platform();
    picInit(p, 1 << 4);
    uartInit(p);
    p.write(COM1, 1, 0x41);
    assert.deepEqual(out, [0x41]);
    p.uart.receive([0x61, 0x62]);
    // One character time at 115200 baud: 10 bits, 86.8 µs.
    assert.deepEqual(deadlines, [86806]);
    runTo(86805);
    assert.equal(intr(), false);
    runTo(86806);
    assert.equal(intr(), true);
    assert.equal(p.acknowledge(), 36);
    assert.equal(p.read(COM1 + 5, 1) & 1, 1, 'LSR: data ready');
    assert.equal(p.read(COM1, 1), 0x61);
    p.write(0x20, 1, 0x20); // EOI
    runTo(2 * 86806);
    assert.equal(p.acknowledge(), 36, 'the next byte is a new interrupt');
    assert.equal(p.read(COM1, 1), 0x62);
    assert.equal(p.uart.bytesIn, 2);
  });

  for (const [when, before] of [
    ['before the UART interrupt is enabled', true],
    ['after the UART interrupt is enabled', false],
  ] as const) {
    it(`keeps input that arrived ${when}, before the 8259s were initialised`, () => {
      const { p, runTo, intr } = platform();
      if (!before) uartInit(p);
      p.uart.receive([0x78, 0x79]);
      runTo(10_000_000);
      if (before) uartInit(p);
      // ICW1 resets the 8259's edge detection while the UART's line is already high.
      picInit(p, 0);
      assert.equal(intr(), false, 'IRQ 4 still masked');
      p.write(0x21, 1, 0xff & ~(0x04 | 0x10));
      assert.equal(intr(), true, 'unmasking IRQ 4 delivers the waiting byte');
      assert.equal(p.acknowledge(), 36);
      assert.equal(p.read(COM1, 1), 0x78);
      p.write(0x20, 1, 0x20);
      runTo(20_000_000);
      assert.equal(p.acknowledge(), 36);
      assert.equal(p.read(COM1, 1), 0x79);
    });
  }
});
