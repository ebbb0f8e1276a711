/**
 * The PC/AT port map: where each legacy device sits on the port-I/O bus and which ISA interrupt
 * it raises (IBM PC/AT Technical Reference, "System I/O address map"; the ELCR of the PIIX at
 * 0x4D0; PCI configuration mechanism #1 at 0xCF8; QEMU's isa-debug-exit at 0xF4, DESIGN.md
 * decision 2). One table for the raw machine (Machine.ts) and the in-place VMM's virtual platform
 * (src/vmm/platform.ts), so both present the guest the same PC.
 */
import type { PortBus } from './bus.ts';
import type { PortDevice } from './device.ts';

export interface PortRange {
  base: number;
  length: number;
  /** What sits there, for a reader and for set-up errors. */
  what: string;
}

/** The legacy devices' ranges, in address order. */
export const PC_PORTS = {
  picMaster: { base: 0x20, length: 2, what: '8259A master (command, data)' },
  pit: { base: 0x40, length: 4, what: '8254 channels 0-2 and control word' },
  // 0x60-0x64: data, port B and the rest of the 8042's window, status/command at 0x64.
  keyboard: { base: 0x60, length: 5, what: '8042 keyboard controller' },
  cmos: { base: 0x70, length: 2, what: 'MC146818 CMOS RTC (index, data)' },
  post: { base: 0x80, length: 1, what: 'POST diagnostic port' },
  dmaPages: { base: 0x81, length: 15, what: '74LS612 DMA page registers' },
  picSlave: { base: 0xa0, length: 2, what: '8259A slave (command, data)' },
  debugExit: { base: 0xf4, length: 4, what: 'isa-debug-exit (iosize 4)' },
  com1: { base: 0x3f8, length: 8, what: '16550A UART, COM1' },
  elcr: { base: 0x4d0, length: 2, what: 'PIIX edge/level control registers' },
  pciConfig: { base: 0xcf8, length: 8, what: 'PCI CONFIG_ADDRESS and CONFIG_DATA' },
} as const satisfies Record<string, PortRange>;

export type PcPort = keyof typeof PC_PORTS;

/** ISA interrupt lines of the PC/AT (IRQ 2 is the slave 8259's cascade). */
export const PC_IRQ = {
  pit: 0,
  keyboard: 1,
  cascade: 2,
  com1: 4,
  rtc: 8,
} as const;

/**
 * Places one device for every entry of the table on `bus`. A record of all of them is required,
 * so the machine and the virtual platform cannot leave one out. Returns the bus's refusal, if any.
 */
export function placePcPorts(
  bus: PortBus,
  devices: Record<PcPort, PortDevice>,
): string | undefined {
  for (const [port, range] of Object.entries(PC_PORTS) as [PcPort, PortRange][]) {
    const r = bus.register(range.base, range.length, devices[port]);
    if (typeof r === 'string') return r;
  }
  return undefined;
}
