import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MmioBus } from '../../bus.ts';
import type { BusAccess } from '../../device.ts';
import { cloneClock, testClock, throughJson, type TestClock } from '../../testing.ts';
import { APIC_BUS_HZ, APIC_DEFAULT_BASE, CPUID_EDX_APIC, LocalApic } from './LocalApic.ts';

const REG = {
  id: 0x20,
  version: 0x30,
  tpr: 0x80,
  ppr: 0xa0,
  eoi: 0xb0,
  svr: 0xf0,
  isr: 0x100,
  tmr: 0x180,
  irr: 0x200,
  esr: 0x280,
  icrLow: 0x300,
  icrHigh: 0x310,
  lvtTimer: 0x320,
  lint0: 0x350,
  lint1: 0x360,
  lvtError: 0x370,
  initialCount: 0x380,
  currentCount: 0x390,
  divide: 0x3e0,
} as const;

interface Rig {
  apic: LocalApic;
  bus: MmioBus;
  time: TestClock;
  /** The CPU's INTR line as the APIC last drove it. */
  intr: () => boolean;
  nmis: () => number;
  /** Vectors the 8259 pair gave on INTA. */
  pic: { vector: number; acks: number };
  read: (reg: number) => number;
  write: (reg: number, value: number) => void;
}

function rig(time = testClock()): Rig {
  const bus = new MmioBus();
  const buses: BusAccess = {
    registerPorts: () => 'no ports here',
    registerMmio: (base, length, device) => bus.register(base, length, device),
  };
  let line = false;
  let nmis = 0;
  const pic = { vector: 0x20, acks: 0 };
  const apic = new LocalApic({
    clock: time.clock,
    buses,
    intr: (level) => (line = level),
    acknowledgeExtInt: () => {
      pic.acks++;
      return pic.vector;
    },
    nmi: () => nmis++,
  });
  return {
    apic,
    bus,
    time,
    intr: () => line,
    nmis: () => nmis,
    pic,
    read: (reg) => bus.read(APIC_DEFAULT_BASE + reg, 4),
    write: (reg, value) => bus.write(APIC_DEFAULT_BASE + reg, 4, value),
  };
}

/** Software-enabled with spurious vector 0xFF, as kvm-unit-tests' enable_apic leaves it. */
function enabled(): Rig {
  const r = rig();
  r.write(REG.svr, 0x1ff);
  return r;
}

/** A fixed IPI to self (shorthand 01). */
function selfIpi(r: Rig, vector: number): void {
  r.write(REG.icrLow, (1 << 18) | vector);
}

test('local APIC at reset: the BIOS virtual-wire state, the 8259 drives INTR and answers INTA', () => {
  const r = rig();
  assert.equal(r.apic.readBaseMsr(), 0xfee00900, 'base 0xFEE00000, BSP, globally enabled');
  assert.equal(r.apic.cpuidEdx(), CPUID_EDX_APIC);
  assert.equal(r.read(REG.version), 0x00050014);
  assert.equal(r.read(REG.svr), 0xff, 'software-disabled');
  assert.equal(r.read(REG.lint0), 0x700, 'LINT0 ExtINT, unmasked');
  assert.equal(r.read(REG.lvtTimer), 0x10000, 'timer masked');
  r.apic.setExtIntLine(true);
  assert.equal(r.intr(), true, 'the 8259 INTR passes through');
  assert.equal(r.apic.acknowledge(), 0x20, 'the vector is the 8259s');
  assert.equal(r.pic.acks, 1);
  r.apic.setExtIntLine(false);
  assert.equal(r.intr(), false);
});

test('local APIC: a self IPI goes through IRR and ISR; EOI retires it', () => {
  const r = enabled();
  selfIpi(r, 0x40);
  assert.equal(r.intr(), true);
  assert.equal(r.read(REG.irr + 0x20), 1, 'IRR bit 0x40');
  assert.equal(r.apic.acknowledge(), 0x40);
  assert.equal(r.read(REG.irr + 0x20), 0);
  assert.equal(r.read(REG.isr + 0x20), 1, 'ISR bit 0x40');
  assert.equal(r.read(REG.ppr), 0x40, 'PPR is the in-service class');
  assert.equal(r.intr(), false);
  r.write(REG.eoi, 0);
  assert.equal(r.read(REG.isr + 0x20), 0);
  assert.equal(r.read(REG.ppr), 0);
});

test('local APIC priorities (SDM 10.8.3): class above PPR only; EOI with several in service', () => {
  const r = enabled();
  selfIpi(r, 0x50);
  assert.equal(r.apic.acknowledge(), 0x50);
  // 0x55 is in the same class as the one in service: it waits. 0x61 preempts.
  selfIpi(r, 0x55);
  assert.equal(r.intr(), false, 'same class as in service: held in IRR');
  selfIpi(r, 0x61);
  assert.equal(r.intr(), true);
  assert.equal(r.apic.acknowledge(), 0x61);
  assert.equal(r.read(REG.ppr), 0x60);
  r.write(REG.eoi, 0); // retires 0x61, the highest in service
  assert.equal(r.read(REG.isr + 0x60) & 2, 0, '0x61 retired');
  assert.equal(r.read(REG.isr + 0x20) & (1 << 16), 1 << 16, '0x50 still in service');
  assert.equal(r.intr(), false, '0x55 still below PPR 0x50');
  r.write(REG.eoi, 0); // retires 0x50
  assert.equal(r.intr(), true);
  assert.equal(r.apic.acknowledge(), 0x55);
  // TPR raises the bar the same way.
  r.write(REG.eoi, 0);
  r.write(REG.tpr, 0x80);
  selfIpi(r, 0x71);
  assert.equal(r.intr(), false, 'TPR class 8 holds vector 0x71');
  assert.equal(r.read(REG.ppr), 0x80);
  r.write(REG.tpr, 0x60);
  assert.equal(r.intr(), true);
});

test('local APIC: illegal vectors and reserved registers set ESR bits, latched by a write', () => {
  const r = enabled();
  r.write(REG.lvtError, 0xe0);
  selfIpi(r, 0x05);
  assert.equal(r.read(REG.esr), 0, 'not latched yet');
  r.write(REG.esr, 0);
  assert.equal(r.read(REG.esr), (1 << 5) | (1 << 6), 'send and receive illegal vector');
  assert.equal(r.apic.acknowledge(), 0xe0, 'the LVT error entry interrupt');
  r.write(REG.eoi, 0);
  r.write(0x3f0, 1); // reserved
  r.write(REG.esr, 0);
  assert.equal(r.read(REG.esr), 1 << 7, 'illegal register address');
  r.write(REG.esr, 0);
  assert.equal(r.read(REG.esr), 0);
});

test('local APIC: software disable masks the LVTs and holds interrupts; the spurious vector', () => {
  const r = enabled();
  r.write(REG.lvtTimer, 0x30);
  r.write(REG.svr, 0xef);
  assert.equal(r.read(REG.svr), 0xef);
  assert.equal(r.read(REG.lvtTimer) & 0x10000, 0x10000, 'masked by the disable');
  r.write(REG.lvtTimer, 0x30);
  assert.equal(r.read(REG.lvtTimer) & 0x10000, 0x10000, 'and cannot be unmasked');
  selfIpi(r, 0x40);
  assert.equal(r.intr(), false);
  assert.equal(r.apic.acknowledge(), 0xef, 'nothing to give: the spurious vector');
});

test('local APIC: LINT0 masked keeps the 8259 out; global disable lets it in', () => {
  const r = enabled();
  r.write(REG.lint0, 0x10700);
  r.apic.setExtIntLine(true);
  assert.equal(r.intr(), false, 'LINT0 masked');
  assert.equal(r.apic.writeBaseMsr(0xfee00000), true, 'global disable');
  assert.equal(r.apic.cpuidEdx(), 0, 'CPUID no longer shows an APIC');
  assert.equal(r.intr(), true, 'no APIC: INTR straight from the 8259');
  assert.equal(r.apic.writeBaseMsr(0xfee00800), true);
  assert.equal(r.read(REG.svr), 0xff, 're-enabled from the reset state');
  assert.equal(r.apic.writeBaseMsr(0xfee00801), false, 'reserved bit: #GP');
  assert.equal(r.apic.writeBaseMsr(0x1_0000_0000), false, 'above 4 GB: #GP');
});

test('local APIC: the register page moves with IA32_APIC_BASE', () => {
  const r = enabled();
  assert.equal(r.apic.writeBaseMsr(0xfed00800), true);
  assert.equal(r.bus.read(0xfed00000 + REG.version, 4), 0x00050014);
  assert.equal(r.bus.read(APIC_DEFAULT_BASE + REG.version, 4), 0xffffffff, 'old page unclaimed');
});

test('local APIC: NMI IPI to self, IPIs to others reach nobody, INIT to self is refused', () => {
  const r = enabled();
  r.write(REG.icrLow, (1 << 18) | (4 << 8));
  assert.equal(r.nmis(), 1);
  r.write(REG.icrHigh, 0x01000000);
  r.write(REG.icrLow, 0x41); // fixed to APIC ID 1: nobody
  r.write(REG.icrLow, (3 << 18) | 0x41); // all excluding self
  r.write(REG.icrLow, (1 << 18) | (5 << 8)); // INIT to self
  assert.equal(r.intr(), false);
  r.write(REG.icrHigh, 0);
  r.write(REG.icrLow, 0x42); // fixed to APIC ID 0: this one
  assert.equal(r.apic.acknowledge(), 0x42);
  assert.equal(r.apic.ipisDropped, 3);
  assert.equal(r.read(REG.icrLow) & (1 << 12), 0, 'delivery status idle');
});

test('local APIC timer: one-shot and periodic on the simulated clock, divide and current count', () => {
  const r = enabled();
  const perCount = 2_800_000_000 / APIC_BUS_HZ; // 14 cycles per bus clock
  r.write(REG.divide, 0xb); // divide by 1
  r.write(REG.lvtTimer, 0x30); // one-shot, vector 0x30
  r.write(REG.initialCount, 1000);
  r.time.advance(500 * perCount);
  assert.equal(r.read(REG.currentCount), 500);
  assert.equal(r.intr(), false);
  r.time.advance(1000 * perCount);
  assert.equal(r.intr(), true);
  assert.equal(r.read(REG.currentCount), 0);
  assert.equal(r.apic.acknowledge(), 0x30);
  r.write(REG.eoi, 0);
  r.time.advance(5000 * perCount);
  assert.equal(r.apic.timerFires, 1, 'one-shot: once');

  r.write(REG.divide, 0x1); // divide by 4
  r.write(REG.lvtTimer, 0x20031); // periodic, vector 0x31
  const start = r.time.now();
  r.write(REG.initialCount, 100);
  let fired = 0;
  for (let k = 1; k <= 5; k++) {
    r.time.advance(start + k * 100 * 4 * perCount);
    if (r.intr()) {
      assert.equal(r.apic.acknowledge(), 0x31);
      r.write(REG.eoi, 0);
      fired++;
    }
  }
  assert.equal(fired, 5, 'periodic: once per period');
  r.time.advance(start + 5.5 * 100 * 4 * perCount);
  assert.equal(r.read(REG.currentCount), 50);
  r.write(REG.initialCount, 0);
  assert.equal(r.read(REG.currentCount), 0, 'a zero initial count stops it');
});

test('local APIC state: a restored APIC keeps its registers and its timer expiry', () => {
  const a = enabled();
  a.write(REG.divide, 0xb);
  a.write(REG.lvtTimer, 0x20033);
  a.write(REG.initialCount, 700);
  selfIpi(a, 0x90);
  a.apic.acknowledge();
  selfIpi(a, 0x45);
  a.time.advance(300 * 14);
  const saved = throughJson(a.apic.save());
  const twinClock = cloneClock(a.time);
  const b = rig(twinClock);
  b.apic.restore(saved);
  assert.equal(twinClock.audit(), undefined, 'the timer event came back');
  assert.deepEqual(b.apic.save(), a.apic.save());
  for (const r of [a, b]) r.time.advance(1500 * 14);
  assert.deepEqual(b.apic.save(), a.apic.save());
  assert.equal(b.apic.timerFires, 2);
  assert.throws(() => b.apic.restore({ ...saved, version: 2 } as never), /version 2/);
});

test('local APIC: I/O APIC messages to this APIC, and the EOI of a level vector goes back', () => {
  const time = testClock();
  const bus = new MmioBus();
  const eois: number[] = [];
  const apic = new LocalApic({
    clock: time.clock,
    buses: { registerPorts: () => 'none', registerMmio: (b, l, d) => bus.register(b, l, d) },
    intr: () => {},
    acknowledgeExtInt: () => 0,
    nmi: () => {},
    levelEoi: (v) => eois.push(v),
  });
  bus.write(APIC_DEFAULT_BASE + REG.svr, 4, 0x1ff);
  apic.receive({ vector: 0x51, mode: 0, level: false, destination: 1, logical: false });
  apic.receive({ vector: 0x45, mode: 0, level: true, destination: 0, logical: false });
  assert.equal(apic.acknowledge(), 0x45, 'only the one for APIC ID 0');
  assert.equal(bus.read(APIC_DEFAULT_BASE + REG.tmr + 0x20, 4), 1 << 5, 'TMR: level');
  bus.write(APIC_DEFAULT_BASE + REG.eoi, 4, 0);
  assert.deepEqual(eois, [0x45]);
  assert.equal(apic.acknowledge(), 0xff, 'nothing else: spurious');
});

test('local APIC timer in TSC-deadline mode: fires when the TSC reaches the deadline, then disarms', () => {
  const time = testClock();
  const bus = new MmioBus();
  let line = false;
  const tscOffset = 1_000_000; // the guest wrote the TSC ahead of the cycle count
  const apic = new LocalApic({
    clock: time.clock,
    buses: { registerPorts: () => 'none', registerMmio: (b, l, d) => bus.register(b, l, d) },
    intr: (level) => (line = level),
    acknowledgeExtInt: () => 0,
    nmi: () => {},
    tscOffset: () => tscOffset,
  });
  const write = (reg: number, v: number): void => bus.write(APIC_DEFAULT_BASE + reg, 4, v);
  write(REG.svr, 0x1ff);
  assert.equal(apic.cpuidEcx(), 1 << 24, 'CPUID.1:ECX.TSC_DEADLINE');
  apic.writeDeadlineMsr(5000);
  assert.equal(apic.readDeadlineMsr(), 0, 'ignored outside TSC-deadline mode');
  write(REG.lvtTimer, (2 << 17) | 0x61);
  write(REG.initialCount, 100);
  assert.equal(bus.read(APIC_DEFAULT_BASE + REG.currentCount, 4), 0, 'no count in this mode');
  apic.writeDeadlineMsr(tscOffset + 5000);
  assert.equal(apic.readDeadlineMsr(), tscOffset + 5000);
  time.advance(4999);
  assert.equal(line, false);
  time.advance(5000);
  assert.equal(line, true, 'the TSC reached the deadline');
  assert.equal(apic.readDeadlineMsr(), 0, 'disarmed once it fired');
  assert.equal(apic.acknowledge(), 0x61);
  write(REG.eoi, 0);
  apic.writeDeadlineMsr(tscOffset + 9000);
  write(REG.lvtTimer, 0x61); // back to one-shot: disarmed
  time.advance(20000);
  assert.equal(line, false);
  assert.equal(apic.timerFires, 1);
  apic.writeDeadlineMsr(1); // in the past, but not in deadline mode now: ignored
  write(REG.lvtTimer, (2 << 17) | 0x61);
  apic.writeDeadlineMsr(1); // in the past: fires at once
  time.advance(20001);
  assert.equal(line, true);
});
