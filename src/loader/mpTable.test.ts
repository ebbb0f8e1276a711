/**
 * The MP table (mpTable.ts) read back the way the MP specification 1.4 describes and Linux's
 * arch/x86/kernel/mpparse.c reads it: the floating pointer found by its signature on a 16-byte
 * boundary of the BIOS area, both checksums, the entries in their order, and the routes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMachine, Machine } from '../machine/Machine.ts';
import { bootLinux } from './linux.ts';
import { MP_FLOATING_POINTER, writeMpTable, type MpConfiguration } from './mpTable.ts';

const config: MpConfiguration = {
  cpu: { apicId: 0, apicVersion: 0x14, signature: 0x633, features: 0x0383a1fe },
  localApicBase: 0xfee00000,
  ioApic: { id: 1, version: 0x11, base: 0xfec00000 },
  pinOfIsaIrq: (irq) => (irq === 0 ? 2 : irq),
  pciInterrupts: [{ device: 3, pin: 1, line: 11 }],
};

const text = (ram: Uint8Array, at: number, n: number) =>
  String.fromCharCode(...ram.subarray(at, at + n));
const sum = (ram: Uint8Array, at: number, n: number) =>
  ram.subarray(at, at + n).reduce((a, b) => a + b, 0) & 0xff;

interface Entry {
  type: number;
  bytes: Uint8Array;
}

/** The scan of 0xF0000-0xFFFFF for "_MP_" and the table it points to, checked as Linux does. */
function readMpTable(ram: Uint8Array): { localApic: number; entries: Entry[] } {
  let fp = -1;
  for (let a = 0xf0000; a < 0x100000; a += 16)
    if (text(ram, a, 4) === '_MP_' && ram[a + 8] === 1 && sum(ram, a, 16) === 0) fp = a;
  assert.notEqual(fp, -1, 'no valid floating pointer in 0xF0000-0xFFFFF');
  const dv = new DataView(ram.buffer);
  assert.equal(ram[fp + 9], 4, 'revision 1.4');
  assert.equal(ram[fp + 11], 0, 'feature byte 1: a table follows (no default configuration)');
  const table = dv.getUint32(fp + 4, true);
  assert.equal(text(ram, table, 4), 'PCMP');
  const length = dv.getUint16(table + 4, true);
  assert.equal(sum(ram, table, length), 0, 'table checksum');
  assert.equal(ram[table + 6], 4);
  const count = dv.getUint16(table + 34, true);
  const entries: Entry[] = [];
  let at = table + 44;
  for (let k = 0; k < count; k++) {
    const type = ram[at];
    const size = type === 0 ? 20 : 8;
    entries.push({ type, bytes: ram.slice(at, at + size) });
    at += size;
  }
  assert.equal(at, table + length, 'the entries fill the base table exactly');
  return { localApic: dv.getUint32(table + 36, true), entries };
}

test('the floating pointer and the table are found and their checksums hold', () => {
  const ram = new Uint8Array(1 << 20);
  const n = writeMpTable(ram, config);
  const t = readMpTable(ram);
  assert.equal(t.localApic, 0xfee00000);
  assert.equal(n, 16 + 44 + t.entries.reduce((a, e) => a + e.bytes.length, 0));
  // Entries in the order of the specification (4.3): processors, buses, I/O APICs, I/O
  // interrupts, local interrupts.
  const types = t.entries.map((e) => e.type);
  assert.deepEqual(
    types,
    [...types].sort((a, b) => a - b),
  );
  const cpu = t.entries[0].bytes;
  assert.deepEqual([...cpu.subarray(0, 4)], [0, 0, 0x14, 3]);
  assert.equal(new DataView(cpu.buffer).getUint32(4, true), 0x633);
  const buses = t.entries.filter((e) => e.type === 1).map((e) => text(e.bytes, 2, 6).trim());
  assert.deepEqual(buses, ['PCI', 'ISA']);
  const io = t.entries.find((e) => e.type === 2)!.bytes;
  assert.deepEqual([...io.subarray(1, 4)], [1, 0x11, 1]);
  assert.equal(new DataView(io.buffer).getUint32(4, true), 0xfec00000);
});

test('ISA IRQ 0 reaches pin 2, the cascade none, and a PCI INTA# the pin of its line, level-low', () => {
  const ram = new Uint8Array(1 << 20);
  writeMpTable(ram, config);
  const routes = readMpTable(ram)
    .entries.filter((e) => e.type === 3)
    .map((e) => ({
      flags: e.bytes[2],
      bus: e.bytes[4],
      irq: e.bytes[5],
      apic: e.bytes[6],
      pin: e.bytes[7],
    }));
  const isa = routes.filter((r) => r.bus === 1);
  assert.deepEqual(
    isa.map((r) => r.irq),
    [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15],
    'every ISA IRQ but the cascade (2) and the PCI line (11)',
  );
  assert.deepEqual(isa[0], { flags: 0, bus: 1, irq: 0, apic: 1, pin: 2 });
  assert.ok(isa.every((r) => r.irq === 0 || r.pin === r.irq));
  // Source bus IRQ of a PCI interrupt: device << 2 | INTx# - 1; active low (3), level (3 << 2).
  assert.deepEqual(
    routes.filter((r) => r.bus === 0),
    [{ flags: 0x0f, bus: 0, irq: 3 << 2, apic: 1, pin: 11 }],
  );
  const local = readMpTable(ram)
    .entries.filter((e) => e.type === 4)
    .map((e) => [e.bytes[1], e.bytes[6], e.bytes[7]]);
  assert.deepEqual(local, [
    [3, 0, 0], // ExtINT on LINT0 of APIC 0
    [1, 0xff, 1], // NMI on LINT1 of every local APIC
  ]);
});

test('a table that does not fit the memory is an error, not a write past its end', () => {
  const ram = new Uint8Array(MP_FLOATING_POINTER + 64);
  assert.throws(() => writeMpTable(ram, config), /MP table: \d+ bytes needed/);
});

test('the Linux loader leaves the table of the machine it boots and programs the I/O APIC ID', () => {
  const m = createMachine({ memoryMb: 16, network: {} });
  assert.ok(m instanceof Machine, String(m));
  const image = new Uint8Array(0x2000);
  // A minimal bzImage: the setup header's magic, protocol 2.06, one setup sector.
  const dv = new DataView(image.buffer);
  image[0x1f1] = 1;
  dv.setUint16(0x1fe, 0xaa55, true);
  image[0x200] = 0xeb; // jmp over the header, which ends at 0x202 + 0x6a
  image[0x201] = 0x6a;
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, 0x0206, true);
  image[0x211] = 1; // loaded high
  dv.setUint32(0x214, 0x100000, true);
  dv.setUint32(0x22c, 0x7fffffff, true); // initrd_addr_max
  const error = bootLinux(m, { kernel: image, kernelName: 'k', cmdline: '', initrd: [] });
  assert.equal(error, undefined, error?.message);
  const t = readMpTable(m.ram);
  const pci = t.entries.filter((e) => e.type === 3 && e.bytes[4] === 0);
  // The DP83820 at 00:03.0 on INTA#, line 11 (Machine.ts).
  assert.deepEqual(
    pci.map((e) => [e.bytes[5], e.bytes[7]]),
    [[3 << 2, 11]],
  );
  m.ioApic.mmioWrite(0, 4, 0);
  assert.equal(m.ioApic.mmioRead(0x10, 4) >>> 24, 1);
});
