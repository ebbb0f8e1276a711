/**
 * Test support for the CPU: a flat-RAM platform that records port I/O, and helpers to build
 * descriptor tables in guest memory. Used by the CPU's own tests and the conformance tests.
 */
import type { CpuCosts } from './cost.ts';
import { Cpu } from './Cpu.ts';
import type { CpuEvent } from './monitor.ts';
import type { CpuPlatform } from './platform.ts';
import { hasErrorCode } from './system/interrupts.ts';

/** The cost model preset p4-2.8ghz's CPU figures (reference/cost-model.md), for tests. */
export const TEST_COSTS: CpuCosts = {
  base: 1,
  repElement: 1,
  mul: 4,
  div: 40,
  cli: 20,
  sti: 30,
  pushf: 5,
  popf: 50,
  segmentLoad: 10,
  gateSame: 200,
  gatePrivilege: 500,
  iretSame: 100,
  iretOuter: 300,
  movCr3: 200,
  invlpg: 50,
  tlbMiss: 30,
  systemRegister: 100,
  io: 1000,
  mmioRead: 600,
  mmioWrite: 300,
  cpuid: 150,
  rdtsc: 80,
  hlt: 0,
};

export interface TestPlatform extends CpuPlatform {
  /** Every OUT, in order. */
  outs: { port: number; value: number }[];
  /** Bytes written to port 0xE9 (a debug console), as text. */
  text(): string;
}

export function testPlatform(memoryBytes = 4 << 20): TestPlatform {
  const outs: { port: number; value: number }[] = [];
  return {
    ram: new Uint8Array(memoryBytes),
    outs,
    text: () =>
      outs
        .filter((o) => o.port === 0xe9)
        .map((o) => String.fromCharCode(o.value))
        .join(''),
    mmioRead: () => 0xffffffff,
    mmioWrite: () => {},
    ioRead: () => 0xff,
    ioWrite: (port, _size, value) => {
      outs.push({ port, value });
    },
    acknowledgeInterrupt: () => 0x20,
  };
}

/** A CPU in 32-bit flat protected mode, ring 0, paging off, with `code` at `at`. */
export function flatCpu(code: Uint8Array, at = 0x1000, platform = testPlatform()): Cpu {
  const cpu = new Cpu(platform, TEST_COSTS);
  platform.ram.set(code, at);
  cpu.enterFlatProtectedMode();
  cpu.eip = at;
  cpu.esp = 0x80000;
  return cpu;
}

/** Writes a segment descriptor (SDM 3A 3.4.5) into memory. `type` is the access byte. */
export function writeDescriptor(
  ram: Uint8Array,
  address: number,
  base: number,
  limit: number,
  access: number,
  flags = 0xc,
): void {
  const v = new DataView(ram.buffer, ram.byteOffset);
  v.setUint32(address, ((base & 0xffff) << 16) | (limit & 0xffff), true);
  v.setUint32(
    address + 4,
    (base & 0xff000000) |
      ((flags & 0xf) << 20) |
      (limit & 0xf0000) |
      ((access & 0xff) << 8) |
      ((base >>> 16) & 0xff),
    true,
  );
}

/** Writes a 32-bit interrupt (type 0xE) or trap (0xF) gate. */
export function writeGate(
  ram: Uint8Array,
  address: number,
  selector: number,
  offset: number,
  type: number,
  dpl: number,
): void {
  const v = new DataView(ram.buffer, ram.byteOffset);
  v.setUint32(address, (selector << 16) | (offset & 0xffff), true);
  v.setUint32(address + 4, (offset & 0xffff0000) | 0x8000 | (dpl << 13) | (type << 8), true);
}

/**
 * Exception vectors an IA-32 CPU defines (SDM 3A Table 6-1): 9 is reserved since the 486, 15 and
 * 20–31 are reserved.
 */
const DEFINED_EXCEPTIONS = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19]);

/**
 * For random-code tests: why a monitor event is not one the architecture can produce, or
 * undefined if it is. An exception has a defined vector and an error code exactly when its vector
 * pushes one (SDM 3A Table 6-1: #DF, #TS, #NP, #SS, #GP, #PF, #AC); a software interrupt (INT n,
 * INT3, INTO) may have any vector; a hardware interrupt only comes when `interrupts` says the
 * test raised the INTR line.
 */
export function notArchitectural(event: CpuEvent, interrupts = false): string | undefined {
  const v = event.vector;
  if (!Number.isInteger(v) || v < 0 || v > 255) return `vector ${v} is not 0-255`;
  if (event.kind === 'software') return undefined;
  if (event.kind === 'interrupt') return interrupts ? undefined : `interrupt ${v} with INTR low`;
  if (!DEFINED_EXCEPTIONS.has(v)) return `exception ${v} is not defined`;
  const code = event.errorCode;
  if (hasErrorCode(v) !== (code !== undefined)) {
    return `exception ${v} ${code === undefined ? 'without' : 'with'} an error code`;
  }
  if (code !== undefined && (!Number.isInteger(code) || code < 0 || code > 0xffffffff)) {
    return `exception ${v} with error code ${code}`;
  }
  return undefined;
}
