/**
 * The MP configuration table a PC BIOS leaves for the operating system (Intel MultiProcessor
 * Specification 1.4, chapter 4): how the kernel learns that the machine has a local APIC and an
 * I/O APIC, and which I/O APIC pin each ISA and PCI interrupt reaches. previrt has no BIOS, so the
 * Linux loader writes the table where a BIOS would (SeaBIOS does the same on QEMU), in the BIOS
 * area at 0xF0000 that the e820 map reserves. A kernel built without MP table support (the
 * default Linux guest, the project's own kernel) never looks at it.
 *
 *   floating pointer (16 bytes)   "_MP_", the table's address, length 1 (paragraphs), revision 4
 *                                 (1.4), checksum, feature byte 1 = 0 (a table follows), feature
 *                                 byte 2 = 0 (virtual wire mode: no IMCR)
 *   table header (44 bytes)       "PCMP", the base table's length, revision 4, checksum, OEM and
 *                                 product IDs, the entry count, the local APICs' address
 *   entries, in the order 4.3 requires:
 *     processor (20)              the one CPU: its APIC ID and version, enabled, bootstrap, and
 *                                 its CPUID signature and feature flags
 *     bus (8)                     bus 0 "PCI", bus 1 "ISA"
 *     I/O APIC (8)                its ID, version, enabled, address
 *     I/O interrupt (8) each      every ISA IRQ 0-15 but 2 (the cascade): IRQ n on pin n, IRQ 0
 *                                 on pin 2 (IoApic.ts's wiring); each PCI function's INTx# on the
 *                                 pin of the ISA line it is routed to, level-triggered and active
 *                                 low, which replaces that line's ISA entry
 *     local interrupt (8) each    ExtINT on LINT0 of the bootstrap processor (the 8259 pair's
 *                                 virtual wire), NMI on LINT1 of every local APIC
 */
export const MP_FLOATING_POINTER = 0xf0000;

/** What the table describes: the machine's APICs, its processor and its PCI interrupt routing. */
export interface MpConfiguration {
  cpu: { apicId: number; apicVersion: number; signature: number; features: number };
  localApicBase: number;
  ioApic: { id: number; version: number; base: number };
  /** The I/O APIC pin of ISA IRQ n. */
  pinOfIsaIrq: (irq: number) => number;
  /** PCI functions of bus 0 with an interrupt: device number, INTx# (1 = INTA#) and the ISA line. */
  pciInterrupts: { device: number; pin: number; line: number }[];
}

const PCI_BUS = 0;
const ISA_BUS = 1;
const ENTRY_PROCESSOR = 0;
const ENTRY_BUS = 1;
const ENTRY_IO_APIC = 2;
const ENTRY_IO_INTERRUPT = 3;
const ENTRY_LOCAL_INTERRUPT = 4;
const INT = 0;
const NMI = 1;
const EXTINT = 3;
/** Interrupt flags: polarity in bits 0-1, trigger mode in bits 2-3 (0 = as the bus does). */
const ACTIVE_LOW_LEVEL = 0x3 | (0x3 << 2);
const ACTIVE_HIGH_EDGE = 0x1 | (0x1 << 2);

/**
 * Writes the floating pointer at `at` and the table right after it into `ram`; returns the
 * bytes written.
 */
export function writeMpTable(
  ram: Uint8Array,
  c: MpConfiguration,
  at = MP_FLOATING_POINTER,
): number {
  const entries: number[][] = [];
  const id32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  const ascii = (s: string, n: number) => [...s.padEnd(n, ' ')].map((ch) => ch.charCodeAt(0));

  entries.push([
    ENTRY_PROCESSOR,
    c.cpu.apicId,
    c.cpu.apicVersion,
    0x3, // enabled, bootstrap processor
    ...id32(c.cpu.signature),
    ...id32(c.cpu.features),
    ...new Array<number>(8).fill(0),
  ]);
  entries.push([ENTRY_BUS, PCI_BUS, ...ascii('PCI', 6)]);
  entries.push([ENTRY_BUS, ISA_BUS, ...ascii('ISA', 6)]);
  entries.push([ENTRY_IO_APIC, c.ioApic.id, c.ioApic.version, 0x1, ...id32(c.ioApic.base)]);
  const pciLines = new Set(c.pciInterrupts.map((p) => p.line));
  for (const p of c.pciInterrupts) {
    const source = (p.device << 2) | (p.pin - 1);
    const pin = c.pinOfIsaIrq(p.line);
    entries.push([ENTRY_IO_INTERRUPT, INT, ACTIVE_LOW_LEVEL, 0, PCI_BUS, source, c.ioApic.id, pin]);
  }
  for (let irq = 0; irq < 16; irq++) {
    if (irq === 2 || pciLines.has(irq)) continue;
    entries.push([ENTRY_IO_INTERRUPT, INT, 0, 0, ISA_BUS, irq, c.ioApic.id, c.pinOfIsaIrq(irq)]);
  }
  entries.push([ENTRY_LOCAL_INTERRUPT, EXTINT, 0, 0, ISA_BUS, 0, c.cpu.apicId, 0]);
  entries.push([ENTRY_LOCAL_INTERRUPT, NMI, ACTIVE_HIGH_EDGE, 0, ISA_BUS, 0, 0xff, 1]);

  const table = at + 16;
  const body = entries.flat();
  const length = 44 + body.length;
  const header = [
    ...ascii('PCMP', 4),
    length & 0xff,
    length >> 8,
    4, // revision 1.4
    0, // checksum, below
    ...ascii('PREVIRT', 8),
    ...ascii('PC', 12),
    ...id32(0), // no OEM table
    0,
    0,
    entries.length & 0xff,
    entries.length >> 8,
    ...id32(c.localApicBase),
    0, // no extended table
    0,
    0,
    0,
  ];
  const bytes = [...header, ...body];
  bytes[7] = checksum(bytes);
  const pointer = [...ascii('_MP_', 4), ...id32(table), 1, 4, 0, 0, 0, 0, 0, 0];
  pointer[10] = checksum(pointer);
  if (table + bytes.length > ram.length)
    throw new Error(`MP table: ${table + bytes.length} bytes needed, the memory has ${ram.length}`);
  ram.set(pointer, at);
  ram.set(bytes, table);
  return 16 + bytes.length;
}

/** The byte that makes the sum of `bytes` zero (mod 256). */
function checksum(bytes: number[]): number {
  return -bytes.reduce((a, b) => a + b, 0) & 0xff;
}
