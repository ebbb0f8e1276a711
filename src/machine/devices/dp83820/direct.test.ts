// The DP83820 with a direct peer instead of a wire (Dp83820Config.direct: the in-place VMM's
// model forwarding to a driver VM). TX: nothing moves until the peer's flush; then each packet's
// buffers are handed over at once, MORE chains as one packet, statuses written in order as the
// peer completes them, and a descriptor still with the peer is never handed over twice when the
// ring wraps. RX: the peer claims the buffers the driver gave the NIC, in ring order, and each
// completion writes the descriptor and raises the interrupt bits the driver waits for. The
// VMM's hold-off without an event of its own (Dp83820Config.holdoffWithoutEvent).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MmioDevice } from '../../device.ts';
import { ramDma, testClock } from '../../testing.ts';
import { Dp83820, type BufferPart } from './Dp83820.ts';
import { CFG, CMDSTS, CR, ISR, REG } from './registers.ts';

const u = (v: number): number => v >>> 0;

function rig(options: { holdoffWithoutEvent?: boolean } = {}) {
  const t = testClock();
  let line = false;
  const ram = new Uint8Array(1 << 16);
  const view = new DataView(ram.buffer);
  const dma = ramDma(ram);
  const handed: { parts: BufferPart[]; packet: number; done: (ok: boolean) => void }[] = [];
  let kicks = 0;
  let mmio: MmioDevice | undefined;
  const nic = new Dp83820({
    clock: t.clock,
    dma,
    irq: { set: (level) => (line = level) },
    buses: {
      registerMmio: (_b, _l, device) => {
        mmio = device;
        return { remove: () => {} };
      },
      registerPorts: () => ({ remove: () => {} }),
    },
    mac: Uint8Array.of(0, 0x0d, 0x42, 0, 0, 2),
    transmit: () => assert.fail('a direct NIC puts nothing on a wire'),
    direct: {
      transmit: (parts, packet) =>
        handed.push({ parts, packet, done: (ok) => nic.txPeerDone(packet, ok) }),
      rxKick: () => kicks++,
    },
    holdoffWithoutEvent: options.holdoffWithoutEvent,
  });
  nic.configWrite(0x14, 4, 0xe0000000);
  nic.configWrite(0x04, 2, 6);
  const wr = (reg: number, v: number): void => mmio!.mmioWrite(reg, 4, v);
  const rd = (reg: number): number => mmio!.mmioRead(reg, 4);
  const desc = (at: number, link: number, buf: number, cmdsts: number): void => {
    view.setUint32(at, link, true);
    view.setUint32(at + 4, buf, true);
    view.setUint32(at + 8, cmdsts >>> 0, true);
  };
  const cmdsts = (at: number): number => view.getUint32(at + 8, true);
  return { nic, ram, wr, rd, desc, cmdsts, handed, kicks: () => kicks, t, line: () => line };
}

test('direct TX: at the flush, packets handed over at once, completed in order', () => {
  const { nic, wr, rd, desc, cmdsts, handed } = rig();
  // A ring of three: a packet of one buffer, then one of two chained with MORE.
  desc(0x1000, 0x1020, 0x4000, CMDSTS.OWN | 60);
  desc(0x1020, 0x1040, 0x5000, CMDSTS.OWN | CMDSTS.MORE | 20);
  desc(0x1040, 0x1000, 0x6000, CMDSTS.OWN | CMDSTS.INTR | 40);
  wr(REG.TXDP, 0x1000);
  wr(REG.CR, CR.TXE);
  assert.equal(handed.length, 0, 'TXE only counts until the flush');
  nic.txFlush();
  assert.deepEqual(
    handed.map((h) => h.parts),
    [
      [{ address: 0x4000, length: 60 }],
      [
        { address: 0x5000, length: 20 },
        { address: 0x6000, length: 40 },
      ],
    ],
  );
  // The ring wrapped to a descriptor the peer still has: not handed over again.
  nic.txFlush();
  assert.equal(handed.length, 2);
  assert.equal(u(cmdsts(0x1000) & CMDSTS.OWN), u(CMDSTS.OWN));
  handed[0].done(true);
  assert.equal(u(cmdsts(0x1000)), u(CMDSTS.OK | 60));
  assert.equal(rd(REG.ISR) & ISR.TXOK, ISR.TXOK);
  // The engine found descriptor 0 the driver's and went idle; the driver gives it a new packet
  // and kicks, and it goes at the next flush.
  desc(0x1000, 0x1020, 0x7000, CMDSTS.OWN | 30);
  wr(REG.CR, CR.TXE);
  handed[1].done(false);
  assert.equal(handed.length, 2);
  nic.txFlush();
  assert.equal(u(cmdsts(0x1020)), u(CMDSTS.MORE | 20));
  assert.equal(u(cmdsts(0x1040) & (CMDSTS.OWN | CMDSTS.OK | CMDSTS.TX_ABORT)), u(CMDSTS.TX_ABORT));
  assert.equal(rd(REG.ISR) & (ISR.TXERR | ISR.TXDESC), ISR.TXERR | ISR.TXDESC);
  assert.deepEqual(handed[2]?.parts, [{ address: 0x7000, length: 30 }]);
  assert.equal(nic.counters.txFrames, 1);
  // A reset while a packet is with the peer: its completion changes nothing any more.
  wr(REG.CR, CR.RST);
  handed[2].done(true);
  assert.equal(u(cmdsts(0x1000)), u(CMDSTS.OWN | 30));
});

test('direct RX: the peer claims the driver buffers in order and completes them', () => {
  const { nic, wr, rd, desc, cmdsts, kicks } = rig();
  desc(0x2000, 0x2020, 0x8000, CMDSTS.INTR | 1536);
  desc(0x2020, 0x2000, 0x8800, CMDSTS.INTR | 1536);
  assert.equal(nic.rxClaim(), undefined, 'RX is off');
  wr(REG.RXDP, 0x2000);
  wr(REG.CR, CR.RXE);
  assert.equal(kicks(), 1);
  assert.deepEqual(nic.rxClaim(), { address: 0x8000, length: 1536 });
  assert.deepEqual(nic.rxClaim(), { address: 0x8800, length: 1536 });
  assert.equal(nic.rxClaim(), undefined, 'both are claimed');
  assert.ok(nic.rxComplete(100, true, 0xff));
  assert.equal(
    u(cmdsts(0x2000)),
    u(CMDSTS.OWN | CMDSTS.INTR | CMDSTS.OK | CMDSTS.DEST_BROADCAST | 100),
  );
  assert.equal(rd(REG.ISR) & (ISR.RXOK | ISR.RXDESC), ISR.RXOK | ISR.RXDESC);
  assert.ok(nic.rxComplete(0, false, 0));
  assert.equal(u(cmdsts(0x2020) & (CMDSTS.OWN | CMDSTS.OK)), u(CMDSTS.OWN));
  assert.equal(nic.rxComplete(60, true, 0), false, 'nothing claimed');
  // The driver has not given descriptor 0 back yet (OWN set): nothing to claim.
  assert.equal(nic.rxClaim(), undefined);
  desc(0x2000, 0x2020, 0x8000, CMDSTS.INTR | 1536);
  assert.deepEqual(nic.rxClaim(), { address: 0x8000, length: 1536 });
  assert.equal(nic.counters.rxFrames, 1);
});

test('a peer that goes away: its buffers unclaimed, the link down and up (CFG.LNKSTS, ISR.PHY)', () => {
  const { nic, wr, rd, desc } = rig();
  desc(0x2000, 0x2020, 0x8000, CMDSTS.INTR | 1536);
  desc(0x2020, 0x2000, 0x8800, CMDSTS.INTR | 1536);
  wr(REG.RXDP, 0x2000);
  wr(REG.CR, CR.RXE);
  assert.deepEqual(nic.rxClaim(), { address: 0x8000, length: 1536 });
  assert.ok(nic.rxComplete(60, true, 0));
  assert.deepEqual(nic.rxClaim(), { address: 0x8800, length: 1536 });
  // The peer is gone: the buffer it had is the NIC's again, claimed again from RXDP.
  nic.rxUnclaim();
  assert.deepEqual(nic.rxClaim(), { address: 0x8800, length: 1536 });
  rd(REG.ISR);
  assert.equal(u(rd(REG.CFG) & CFG.LNKSTS), u(CFG.LNKSTS));
  nic.setLink(false);
  assert.equal(rd(REG.CFG) & CFG.LNKSTS, 0);
  assert.equal(rd(REG.ISR) & ISR.PHY, ISR.PHY);
  // A reset keeps what the PHY says; the link comes back with the peer.
  wr(REG.CR, CR.RST);
  assert.equal(rd(REG.CFG) & CFG.LNKSTS, 0);
  nic.setLink(true);
  assert.equal(u(rd(REG.CFG) & CFG.LNKSTS), u(CFG.LNKSTS));
  assert.equal(rd(REG.ISR) & ISR.PHY, ISR.PHY);
});

test('a snapshot with packets and buffers with the peer: the restored chip completes them', () => {
  const a = rig();
  a.desc(0x1000, 0x1020, 0x4000, CMDSTS.OWN | 60);
  a.desc(0x1020, 0x1040, 0x5000, CMDSTS.OWN | CMDSTS.MORE | 20);
  a.desc(0x1040, 0x1000, 0x6000, CMDSTS.OWN | CMDSTS.INTR | 40);
  a.desc(0x2000, 0x2020, 0x8000, CMDSTS.INTR | 1536);
  a.desc(0x2020, 0x2000, 0x8800, CMDSTS.INTR | 1536);
  a.wr(REG.TXDP, 0x1000);
  a.wr(REG.RXDP, 0x2000);
  a.wr(REG.CR, CR.TXE | CR.RXE);
  a.nic.txFlush();
  assert.equal(a.handed.length, 2);
  a.handed[0].done(true);
  assert.deepEqual(a.nic.rxClaim(), { address: 0x8000, length: 1536 });
  // Saved with the second packet and the first RX buffer with the peer, the third
  // descriptor waited for (the ring wrapped onto the first, still its until the status).
  const state = JSON.parse(JSON.stringify(a.nic.save())) as ReturnType<typeof a.nic.save>;
  assert.equal(state.direct.handedOver.length, 1);
  const b = rig();
  b.ram.set(a.ram);
  b.nic.restore(state);
  for (const r of [a, b]) {
    r.nic.txPeerDone(a.handed[1].packet, true);
    assert.ok(r.nic.rxComplete(60, true, 0));
    assert.deepEqual(r.nic.rxClaim(), { address: 0x8800, length: 1536 });
  }
  assert.deepEqual(b.ram, a.ram, 'the same descriptors written back');
  assert.deepEqual(b.nic.save(), a.nic.save());
  assert.equal(u(b.cmdsts(0x1040) & (CMDSTS.OWN | CMDSTS.OK)), u(CMDSTS.OK));
  // A packet number the restored chip does not know is ignored.
  b.nic.txPeerDone(a.handed[0].packet, false);
  assert.deepEqual(b.nic.save(), a.nic.save());
});

test('a function reset (the device back from a destroyed VM): engines stopped, decoding off', () => {
  const { nic, wr, rd, desc, handed } = rig();
  desc(0x1000, 0x1000, 0x4000, CMDSTS.OWN | 60);
  wr(REG.TXDP, 0x1000);
  wr(REG.IMR, ISR.TXOK);
  wr(REG.CR, CR.TXE);
  nic.functionReset();
  assert.equal(nic.configRead(0x04, 2), 0, 'no decoding, no bus mastering');
  assert.equal(u(nic.configRead(0x14, 4)), 0xe0000000, 'the BAR keeps its place');
  nic.txFlush();
  assert.equal(handed.length, 0, "the old driver's packet is not sent");
  nic.configWrite(0x04, 2, 6);
  assert.equal(rd(REG.TXDP), 0);
  assert.equal(rd(REG.IMR), 0);
});

test('hold-off without an event (the VMM model): held as IHR says, up where the host looks', () => {
  const { nic, wr, rd, desc, t, line } = rig({ holdoffWithoutEvent: true });
  const HOLDOFF = 200e-6 * t.clock.hz; // IHR = 2: 2 × 100 µs
  desc(0x2000, 0x2020, 0x8000, CMDSTS.INTR | 1536);
  desc(0x2020, 0x2040, 0x8800, CMDSTS.INTR | 1536);
  desc(0x2040, 0x2000, 0x9000, CMDSTS.INTR | 1536);
  wr(REG.IHR, 2);
  wr(REG.IMR, ISR.RXOK);
  wr(REG.IER, 1);
  wr(REG.RXDP, 0x2000);
  wr(REG.CR, CR.RXE);
  for (let k = 0; k < 3; k++) nic.rxClaim();
  assert.ok(nic.rxComplete(60, true, 0));
  assert.ok(line(), 'no hold-off runs: the interrupt at once');
  rd(REG.ISR); // the driver's read: the hold-off starts
  assert.equal(line(), false);
  assert.equal(nic.holdoffEnd(), HOLDOFF);
  t.advance(HOLDOFF / 2);
  assert.ok(nic.rxComplete(60, true, 0));
  assert.equal(line(), false, 'held while the hold-off runs');
  assert.equal(t.clock.next(), undefined, 'and no event of its own on the clock');
  nic.holdoffCheck();
  assert.equal(line(), false, 'the host looks before its end: still held');
  t.advance(HOLDOFF + 10);
  assert.equal(line(), false, 'its end passes unseen');
  nic.holdoffCheck();
  assert.ok(line(), 'the host looks after its end: the interrupt');

  // The host goes idle with an interrupt held: the hold-off's end is an event after all.
  rd(REG.ISR);
  const end = nic.holdoffEnd()!;
  assert.ok(nic.rxComplete(60, true, 0));
  nic.idle();
  assert.equal(t.clock.next(), end);
  assert.equal(nic.save().holdoff?.cycle, end, 'a snapshot keeps it');
  t.advance(end);
  assert.ok(line(), 'the interrupt comes at the hold-off end, as the chip would give it');
  assert.equal(nic.holdoffEnd(), undefined);

  // Nothing held: idle schedules nothing; a peer may ask for the wake-up all the same.
  rd(REG.ISR);
  nic.idle();
  assert.equal(t.clock.next(), undefined);
  nic.wakeAtHoldoffEnd();
  assert.equal(t.clock.next(), nic.holdoffEnd());
  t.advance(nic.holdoffEnd()!);
  assert.equal(line(), false, 'nothing to give: no interrupt');
});
