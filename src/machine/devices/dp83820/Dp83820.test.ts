import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimClock } from '../../clock.ts';
import type { MmioDevice, PortDevice } from '../../device.ts';
import { fcsValid, withFcs } from '../../ethernet/frame.ts';
import { EthernetLink } from '../../ethernet/link.ts';
import { cloneClock, ramDma, testClock, throughJson, type TestClock } from '../../testing.ts';
import { EXTSTS, rxChecksumStatus } from './checksumOffload.ts';
import { ipFrame } from './testFrames.ts';
import { Dp83820 } from './Dp83820.ts';
import { CMDSTS, CR, ISR, MEAR, REG, RFCR } from './registers.ts';

const MAC = Uint8Array.from([0x00, 0x0d, 0x42, 0x10, 0x20, 0x30]);
const HZ = 2_800_000_000;

function rig(t: TestClock = testClock(HZ)) {
  const clock = t.clock;
  const ram = new Uint8Array(1 << 20);
  const dma = ramDma(ram);
  let irq = false;
  /** The line's changes, with their cycles. */
  const edges: string[] = [];
  const sent: Uint8Array[] = [];
  const mmio: { base: number; device: MmioDevice }[] = [];
  const ports: { base: number; device: PortDevice }[] = [];
  const link = new EthernetLink(clock);
  const nic = new Dp83820({
    clock,
    dma,
    irq: {
      set: (l) => {
        if (l !== irq) edges.push(`${clock.now()}:${l ? 'up' : 'down'}`);
        irq = l;
      },
    },
    buses: {
      registerMmio: (base, _len, device) => {
        mmio.push({ base, device });
        return {
          remove: () =>
            mmio.splice(
              mmio.findIndex((m) => m.device === device),
              1,
            ),
        };
      },
      registerPorts: (base, _len, device) => {
        ports.push({ base, device });
        return {
          remove: () =>
            ports.splice(
              ports.findIndex((m) => m.device === device),
              1,
            ),
        };
      },
    },
    mac: MAC,
    transmit: (frame) => {
      sent.push(frame);
      return link.send(0, frame);
    },
  });
  link.attach(0, nic);
  const view = new DataView(ram.buffer);
  return {
    nic,
    ram,
    view,
    sent,
    mmio,
    ports,
    link,
    edges,
    irq: () => irq,
    r: (reg: number) => nic.read(reg, 4),
    w: (reg: number, v: number) => nic.write(reg, 4, v),
    clock: t,
    run: (cycles: number) => t.advance(t.now() + cycles),
  };
}

test('PCI identity, BAR sizing and placement on the buses', () => {
  const t = rig();
  assert.equal(t.nic.configRead(0, 4), 0x0022100b);
  assert.equal(t.nic.configRead(0x08, 4) >>> 8, 0x020000);
  t.nic.configWrite(0x14, 4, 0xffffffff);
  assert.equal(t.nic.configRead(0x14, 4), 0xfffff000, '4 KB memory BAR');
  t.nic.configWrite(0x10, 4, 0xffffffff);
  assert.equal(t.nic.configRead(0x10, 4), 0xffffff01, '256-byte I/O BAR');
  t.nic.configWrite(0x14, 4, 0xfeb00000);
  t.nic.configWrite(0x10, 4, 0xc000);
  assert.equal(t.mmio.length, 0, 'nothing decoded before the command register enables it');
  t.nic.configWrite(0x04, 2, 0x7);
  assert.deepEqual(
    t.mmio.map((m) => m.base),
    [0xfeb00000],
  );
  assert.deepEqual(
    t.ports.map((m) => m.base),
    [0xc000],
  );
  assert.equal(t.mmio[0].device.mmioRead(REG.SRR, 4), 0x103);
  t.nic.configWrite(0x14, 4, 0xfec00000);
  assert.deepEqual(
    t.mmio.map((m) => m.base),
    [0xfec00000],
    'a moved BAR is re-registered',
  );
});

test('reset, link status as Linux decodes it, MAC through RFCR/RFDR', () => {
  const t = rig();
  t.w(REG.CR, CR.RST);
  assert.equal(t.r(REG.CR) & CR.RST, 0, 'RST self-clears');
  const cfg = t.r(REG.CFG) ^ 0x70000000;
  assert.ok((cfg & 0x80000000) !== 0, 'link up');
  assert.ok((cfg & 0x40000000) !== 0, '1000 Mb/s');
  assert.ok((cfg & 0x10000000) !== 0, 'full duplex');
  const mac: number[] = [];
  for (let i = 0; i < 3; i++) {
    t.w(REG.RFCR, 2 * i);
    const v = t.r(REG.RFDR);
    mac.push(v & 0xff, (v >> 8) & 0xff);
  }
  assert.deepEqual(mac, Array.from(MAC));
  t.w(REG.PTSCR, 0x400);
  assert.equal(t.r(REG.PTSCR) & 0x600, 0x200, 'RBIST done, enable cleared');
});

test('EEPROM read through MEAR bit-banging (start, READ opcode, address, 16 data bits)', () => {
  const t = rig();
  const pins = (sel: boolean, clk: boolean, di: boolean): void =>
    t.w(REG.MEAR, (sel ? MEAR.EESEL : 0) | (clk ? MEAR.EECLK : 0) | (di ? MEAR.EEDI : 0));
  const readWord = (address: number): number => {
    pins(true, false, false);
    const bits = [1, 1, 0, ...Array.from({ length: 6 }, (_, k) => (address >> (5 - k)) & 1)];
    for (const b of bits) {
      pins(true, false, b === 1);
      pins(true, true, b === 1);
    }
    let v = 0;
    for (let k = 0; k < 16; k++) {
      pins(true, false, false);
      pins(true, true, false);
      v = (v << 1) | ((t.r(REG.MEAR) & MEAR.EEDO) !== 0 ? 1 : 0);
    }
    pins(false, false, false);
    return v;
  };
  assert.equal(readWord(0xc), MAC[0] | (MAC[1] << 8));
  assert.equal(readWord(0xa), MAC[4] | (MAC[5] << 8));
});

test('ISR is read-to-clear; IMR and IER gate the interrupt line', () => {
  const t = rig();
  t.w(REG.CR, CR.SWI);
  assert.equal(t.irq(), false, 'masked');
  t.w(REG.IMR, ISR.SWI);
  assert.equal(t.irq(), false, 'IER clear');
  t.w(REG.IER, 1);
  assert.equal(t.irq(), true);
  assert.equal(t.r(REG.ISR) & ISR.SWI, ISR.SWI);
  assert.equal(t.irq(), false, 'reading ISR cleared it');
  assert.equal(t.r(REG.ISR), 0);
});

/** An RX ring of `n` 32-bit descriptors at 0x1000 with 2 KB buffers at 0x10000. */
function rxRing(t: ReturnType<typeof rig>, n: number, wide = false): number[] {
  const stride = 32;
  const addrs = Array.from({ length: n }, (_, k) => 0x1000 + k * stride);
  addrs.forEach((a, k) => {
    const next = k + 1 < n ? addrs[k + 1] : 0;
    if (wide) {
      t.view.setUint32(a, next, true);
      t.view.setUint32(a + 8, 0x10000 + k * 2048, true);
      t.view.setUint32(a + 16, CMDSTS.INTR | 1514, true);
    } else {
      t.view.setUint32(a, next, true);
      t.view.setUint32(a + 4, 0x10000 + k * 2048, true);
      t.view.setUint32(a + 8, CMDSTS.INTR | 1514, true);
    }
  });
  t.w(REG.RXCFG, 0xf4700000); // Linux: AEP|ARP|AIRL|RX_FD|STRIPCRC|MXDMA512
  t.w(REG.RFCR, RFCR.RFEN | RFCR.AAB | RFCR.APM);
  t.w(REG.RXDP, addrs[0]);
  t.w(REG.CR, CR.RXE);
  return addrs;
}

function frameTo(mac: Uint8Array, payload: number): Uint8Array {
  const f = new Uint8Array(14 + payload);
  f.set(mac, 0);
  f.set([2, 0, 0, 0, 0, 1], 6);
  f[12] = 0x08;
  for (let k = 14; k < f.length; k++) f[k] = k & 0xff;
  return f;
}

test('RX: a frame from the wire lands in the next descriptor with OWN|OK|length; RXIDLE at the end', () => {
  for (const wide of [false, true]) {
    const t = rig();
    if (wide) t.w(REG.CFG, t.r(REG.CFG) | 0x800); // M64ADDR: 64-bit descriptors
    const addrs = rxRing(t, 2, wide);
    t.w(REG.IMR, ISR.RXOK | ISR.RXDESC | ISR.RXIDLE);
    t.w(REG.IER, 1);
    const frame = frameTo(MAC, 1000);
    for (let k = 0; k < 3; k++) t.link.send(1, withFcs(frame));
    t.run(HZ / 1000);
    const cmdsts = t.view.getUint32(addrs[0] + (wide ? 16 : 8), true);
    assert.equal(cmdsts & (CMDSTS.OWN | CMDSTS.OK), CMDSTS.OWN | CMDSTS.OK);
    assert.equal(cmdsts & 0xffff, frame.length, 'CRC stripped');
    assert.deepEqual(t.ram.subarray(0x10000, 0x10000 + frame.length), frame);
    assert.equal(t.nic.counters.rxFrames, 2);
    assert.equal(
      t.r(REG.ISR) & (ISR.RXOK | ISR.RXDESC | ISR.RXIDLE),
      ISR.RXOK | ISR.RXDESC | ISR.RXIDLE,
    );
    assert.equal(t.irq(), false);
  }
});

test('RX: frames for other addresses are filtered; a corrupted frame is an FCS error', () => {
  const t = rig();
  rxRing(t, 4);
  t.link.send(1, withFcs(frameTo(Uint8Array.from([2, 2, 2, 2, 2, 2]), 100)));
  const bad = withFcs(frameTo(MAC, 100));
  bad[50] ^= 0x10;
  t.link.send(1, bad);
  t.run(HZ / 1000);
  assert.equal(t.nic.counters.rxFrames, 0);
  assert.equal(t.nic.counters.rxDropped, 1);
  assert.equal(t.nic.counters.rxFcsErrors, 1);
  assert.equal(t.r(0x64), 1, 'MIB RxFCSErrors');
  assert.equal(t.r(0x64), 0, 'MIB counters clear on read');
});

test('TX: an owned descriptor chain goes on the wire with FCS; status written back; TXOK and TXIDLE', () => {
  const t = rig();
  const payload = frameTo(Uint8Array.from([2, 0, 0, 0, 0, 9]), 200);
  t.ram.set(payload.subarray(0, 100), 0x20000);
  t.ram.set(payload.subarray(100), 0x30000);
  t.view.setUint32(0x2000, 0x2020, true);
  t.view.setUint32(0x2004, 0x20000, true);
  t.view.setUint32(0x2008, CMDSTS.OWN | CMDSTS.MORE | 100, true);
  t.view.setUint32(0x2020, 0, true);
  t.view.setUint32(0x2024, 0x30000, true);
  t.view.setUint32(0x2028, CMDSTS.OWN | CMDSTS.INTR | (payload.length - 100), true);
  t.w(REG.TXDP, 0x2000);
  t.w(REG.CR, CR.TXE);
  t.run(HZ / 1000);
  assert.equal(t.sent.length, 1);
  assert.ok(fcsValid(t.sent[0]));
  assert.deepEqual(t.sent[0].subarray(0, payload.length), payload);
  const last = t.view.getUint32(0x2028, true);
  assert.equal(last & (CMDSTS.OWN | CMDSTS.OK), CMDSTS.OK);
  assert.equal(last & 0xffff, payload.length - 100, 'SIZE kept');
  assert.equal(
    t.r(REG.ISR) & (ISR.TXOK | ISR.TXDESC | ISR.TXIDLE),
    ISR.TXOK | ISR.TXDESC | ISR.TXIDLE,
  );
  assert.equal(t.nic.counters.txFrames, 1);
});

test('a driver re-initialising the chip mid-stream (a restarted driver VM): nothing of the old rings runs on', () => {
  const t = rig();
  // Two packets queued, the first one on the wire and its completion still pending.
  const payload = frameTo(Uint8Array.from([2, 0, 0, 0, 0, 9]), 200);
  t.ram.set(payload, 0x20000);
  for (const [at, link] of [
    [0x2000, 0x2020],
    [0x2020, 0],
  ]) {
    t.view.setUint32(at, link, true);
    t.view.setUint32(at + 4, 0x20000, true);
    t.view.setUint32(at + 8, CMDSTS.OWN | CMDSTS.INTR | payload.length, true);
  }
  rxRing(t, 2);
  t.w(REG.TXDP, 0x2000);
  t.w(REG.CR, CR.TXE);
  t.run(1000);
  assert.equal(t.sent.length, 1);
  t.link.send(1, withFcs(frameTo(MAC, 1000)));
  // The toolstack's reset when the old driver's VM is gone, then the new driver's CR.RST.
  t.nic.functionReset();
  t.w(REG.CR, CR.RST);
  t.run(HZ / 1000);
  assert.equal(t.sent.length, 1, 'the second packet is not sent');
  assert.equal(t.r(REG.ISR), 0, 'no completion of the old packet after the reset');
  assert.equal(
    (t.view.getUint32(0x2028, true) & CMDSTS.OWN) >>> 0,
    CMDSTS.OWN >>> 0,
    'the old packet is left as it was',
  );
  assert.equal(t.nic.counters.rxFrames, 0, 'RX is off until the new driver enables it');
  // The new driver's rings elsewhere: frames land there, not in the old ones.
  const rx = 0x6000;
  t.view.setUint32(rx, 0, true);
  t.view.setUint32(rx + 4, 0x40000, true);
  t.view.setUint32(rx + 8, CMDSTS.INTR | 1514, true);
  t.w(REG.RFCR, RFCR.RFEN | RFCR.APM);
  t.w(REG.RXDP, rx);
  t.w(REG.CR, CR.RXE);
  t.link.send(1, withFcs(frameTo(MAC, 500)));
  t.run(HZ / 1000);
  assert.equal(t.nic.counters.rxFrames, 1);
  assert.equal(t.view.getUint32(rx + 8, true) & CMDSTS.OK, CMDSTS.OK);
  assert.equal(t.view.getUint32(0x1000 + 8, true) & CMDSTS.OWN, 0, 'the old ring is untouched');
});

test('a descriptor or buffer outside memory is a bus error reported to the driver, not a throw', () => {
  const t = rig();
  t.w(REG.TXDP, 0xfff00000);
  t.w(REG.CR, CR.TXE);
  t.view.setUint32(0x1000, 0, true);
  t.view.setUint32(0x1004, 0xfff00000, true); // RX buffer outside memory
  t.view.setUint32(0x1008, 1514, true);
  t.w(REG.RFCR, RFCR.RFEN | RFCR.APM);
  t.w(REG.RXDP, 0x1000);
  t.w(REG.CR, CR.RXE);
  t.link.send(1, withFcs(frameTo(MAC, 64)));
  t.run(HZ / 1000);
  assert.equal(t.nic.counters.busErrors, 2);
  const isr = t.r(REG.ISR);
  assert.ok((isr & ISR.RMABT) !== 0);
  assert.ok((isr & ISR.RXERR) !== 0);
});

test('the link serialises frames at 1 Gb/s: preamble, frame with FCS, inter-frame gap', () => {
  let now = 0;
  const clock = new SimClock(HZ, () => now);
  const link = new EthernetLink(clock);
  const arrivals: number[] = [];
  link.attach(1, { receive: () => arrivals.push(clock.now()) });
  const frame = new Uint8Array(1518);
  const free1 = link.send(0, frame);
  link.send(0, frame);
  now = HZ;
  clock.fireDue(now);
  // (8 + 1518 + 12) bytes × 8 bits at 1 ns per bit = 12.304 µs per frame on the wire.
  assert.equal(free1, Math.ceil(12304e-9 * HZ));
  assert.equal(arrivals.length, 2);
  assert.equal(arrivals[1] - arrivals[0], Math.ceil(12304e-9 * HZ));
  assert.equal(link.send(0, new Uint8Array(1600)), undefined, 'oversize frames are refused');
});

test('DP83820 state: mid-DMA, hold-off armed, FIFO full, TX in progress: a restored chip goes on alike', () => {
  const a = rig();
  a.nic.configWrite(0x14, 4, 0xfeb00000);
  a.nic.configWrite(0x10, 4, 0xc000);
  a.nic.configWrite(0x04, 2, 0x7);
  const addrs = rxRing(a, 4);
  a.w(REG.IHR, 2); // 200 µs hold-off after each ISR read
  a.w(REG.IMR, ISR.RXOK | ISR.RXDESC | ISR.RXIDLE | ISR.TXOK | ISR.TXIDLE);
  a.w(REG.IER, 1);
  // A TX chain of 20 packets, and a burst from the wire that overflows ring and FIFO.
  for (let k = 0; k < 20; k++) {
    const d = 0x3000 + k * 32;
    a.ram.set(frameTo(Uint8Array.from([2, 0, 0, 0, 0, 9]), 1000 + k), 0x40000 + k * 2048);
    a.view.setUint32(d, k < 19 ? d + 32 : 0, true);
    a.view.setUint32(d + 4, 0x40000 + k * 2048, true);
    a.view.setUint32(d + 8, CMDSTS.OWN | (1014 + k), true);
  }
  a.w(REG.TXDP, 0x3000);
  a.w(REG.CR, CR.TXE);
  for (let k = 0; k < 60; k++) a.link.send(1, withFcs(frameTo(MAC, 60 + k * 20)));
  a.run(20_000);
  a.r(REG.ISR); // the driver's read: the hold-off starts
  /** The driver gives the whole ring back to the chip and kicks the RX engine. */
  const refill = (t: ReturnType<typeof rig>): void => {
    for (const d of addrs) t.view.setUint32(d + 8, CMDSTS.INTR | 1514, true);
    t.w(REG.RXDP, addrs[0]);
    t.w(REG.CR, CR.RXE);
  };
  let state = a.nic.save();
  for (let step = 0; step < 400; step++) {
    state = a.nic.save();
    if (state.rxDma !== null && state.holdoff !== null && state.tx.length > 0) break;
    if (state.rxIdle) refill(a);
    a.run(500);
  }
  assert.ok(state.rxDma !== null, 'an RX DMA is under way');
  assert.ok(state.holdoff !== null, 'the hold-off timer is armed');
  assert.ok(state.tx.length > 0, 'the TX engine has work pending');
  assert.ok(state.rxFifo.length > 0, 'frames wait in the receive FIFO');
  assert.ok(a.link.save().directions[1].inFlight.length > 0, 'frames are still on the wire');

  const saved = throughJson({ nic: a.nic.save(), link: a.link.save(), ram: Array.from(a.ram) });
  const b = rig(cloneClock(a.clock));
  b.ram.set(saved.ram);
  b.nic.restore(saved.nic);
  b.link.restore(saved.link);
  assert.equal((b.clock as ReturnType<typeof cloneClock>).audit(), undefined);
  assert.deepEqual(b.nic.save(), a.nic.save());
  assert.deepEqual(
    b.mmio.map((m) => m.base),
    [0xfeb00000],
    'the memory BAR is placed again',
  );
  assert.deepEqual(
    b.ports.map((m) => m.base),
    [0xc000],
  );
  assert.equal(b.irq(), a.irq());

  // Both go on: a driver that services the ring whenever the line is up.
  const drive = (t: ReturnType<typeof rig>): void => {
    const edges = t.edges.length;
    const sent = t.sent.length;
    for (let step = 0; step < 2000; step++) {
      t.run(2_000);
      if (!t.irq()) continue;
      t.r(REG.ISR);
      refill(t);
    }
    t.edges.splice(0, edges);
    t.sent.splice(0, sent);
  };
  drive(a);
  drive(b);
  assert.ok(a.sent.length > 0 && a.edges.length > 4, 'the continuation transmits and interrupts');
  assert.deepEqual(b.edges, a.edges, 'the interrupt line changes at the same cycles');
  assert.deepEqual(b.sent, a.sent, 'the same frames transmitted');
  assert.deepEqual(b.ram, a.ram, 'the same DMA into memory');
  assert.deepEqual(b.nic.save(), a.nic.save());
  assert.deepEqual(b.nic.counters, a.nic.counters);

  state = throughJson(a.nic.save());
  assert.throws(
    () => b.nic.restore({ ...state, version: 3 } as never),
    /nic: DP83820 state version 3/,
  );
  assert.throws(
    () => b.nic.restore({ ...state, tx: [{ kind: 'later', at: { cycle: 1, seq: 1 } }] } as never),
    /nic\.tx\[0\]\.kind: expected one of step, done, got "later"/,
  );
  const { holdoffUntil: _, ...missing } = state;
  assert.throws(
    () => b.nic.restore(missing as never),
    /nic\.holdoffUntil: expected a number, got nothing/,
  );
});

test('checksum offload as Linux sets it up (CFG.EXTSTS_EN, VTCR.PPCHK, VRCR.IPEN): TX fills them in, RX reports them in extsts', () => {
  const t = rig();
  t.w(REG.CFG, t.r(REG.CFG) | 0x100); // EXTSTS_EN
  t.w(REG.VTCR, 0x8 | 0x2); // PPCHK | VPPTI
  t.w(REG.VRCR, 0x10 | 0x1); // IPEN | VTDEN
  const frame = ipFrame(6, 500);
  t.ram.set(frame.subarray(0, 54), 0x20000);
  t.ram.set(frame.subarray(54), 0x30000);
  const extsts = EXTSTS.IPPKT | EXTSTS.TCPPKT;
  t.view.setUint32(0x2000, 0x2020, true);
  t.view.setUint32(0x2004, 0x20000, true);
  t.view.setUint32(0x2008, CMDSTS.OWN | CMDSTS.MORE | 54, true);
  t.view.setUint32(0x200c, extsts, true);
  t.view.setUint32(0x2020, 0, true);
  t.view.setUint32(0x2024, 0x30000, true);
  t.view.setUint32(0x2028, CMDSTS.OWN | CMDSTS.INTR | (frame.length - 54), true);
  t.view.setUint32(0x202c, extsts, true);
  t.w(REG.TXDP, 0x2000);
  t.w(REG.CR, CR.TXE);
  t.run(HZ / 1000);
  assert.equal(t.sent.length, 1);
  const sent = t.sent[0].subarray(0, t.sent[0].length - 4);
  assert.equal(rxChecksumStatus(sent), EXTSTS.IPPKT | EXTSTS.TCPPKT, 'both checksums right');

  const addrs = rxRing(t, 3);
  const good = Uint8Array.from(sent);
  good.set(MAC, 0);
  const bad = Uint8Array.from(good);
  bad[bad.length - 1] ^= 0xff;
  t.link.send(1, withFcs(good));
  t.link.send(1, withFcs(bad));
  t.run(HZ / 1000);
  assert.equal(t.view.getUint32(addrs[0] + 12, true), EXTSTS.IPPKT | EXTSTS.TCPPKT);
  assert.equal(t.view.getUint32(addrs[1] + 12, true), EXTSTS.IPPKT | EXTSTS.TCPPKT | EXTSTS.TCPERR);
  assert.equal(t.nic.counters.rxFrames, 2, 'a bad checksum is reported, not dropped');
});

test('without CFG.EXTSTS_EN the chip neither checksums nor writes extsts', () => {
  const t = rig();
  t.w(REG.VTCR, 0x8);
  t.w(REG.VRCR, 0x10);
  const frame = ipFrame(6, 100);
  t.ram.set(frame, 0x20000);
  t.view.setUint32(0x2000, 0, true);
  t.view.setUint32(0x2004, 0x20000, true);
  t.view.setUint32(0x2008, CMDSTS.OWN | frame.length, true);
  t.view.setUint32(0x200c, EXTSTS.IPPKT | EXTSTS.TCPPKT, true);
  t.w(REG.TXDP, 0x2000);
  t.w(REG.CR, CR.TXE);
  t.run(HZ / 1000);
  assert.deepEqual(t.sent[0].subarray(0, frame.length), frame, 'sent as it was');
  const addrs = rxRing(t, 2);
  t.view.setUint32(addrs[0] + 12, 0x5a5a5a5a, true);
  const f = Uint8Array.from(frame);
  f.set(MAC, 0);
  t.link.send(1, withFcs(f));
  t.run(HZ / 1000);
  assert.equal(t.view.getUint32(addrs[0] + 12, true), 0x5a5a5a5a, 'extsts untouched');
});
