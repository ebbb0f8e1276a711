/**
 * Test support for the CPU: a flat-RAM platform that records port I/O, and helpers to build
 * descriptor tables in guest memory. Used by the CPU's own tests and the conformance tests.
 */
import type { CpuCosts } from './cost.ts';
import { Cpu } from './Cpu.ts';
import type { CpuPlatform } from './platform.ts';

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
