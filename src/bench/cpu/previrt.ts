import { readFileSync } from 'node:fs';
import { P4_2_8GHZ } from '../../machine/costModel.ts';
import { Cpu } from '../../x86/Cpu.ts';
import { MarkerWatcher } from './markers.ts';

export interface PrevirtResult {
  /** Guest instructions between the BEGIN and END markers (exact, counted by the CPU). */
  instructions: number;
  /** Simulated cycles between the markers. */
  cycles: number;
  /** Host milliseconds between the markers. */
  ms: number;
  checksum: string;
}

/**
 * Loads the workload's PT_LOAD segments at their physical addresses and runs it on previrt's
 * CPU with a minimal platform: COM1's transmit register and line status, isa-debug-exit. The
 * benchmark measures the CPU, so nothing else sits in the loop.
 */
/** The PT_LOAD segments of an ELF32 executable: physical address, file range, memory size. */
function loadable(
  elf: Uint8Array,
): { paddr: number; offset: number; filesz: number; memsz: number }[] {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const phoff = view.getUint32(28, true);
  const phnum = view.getUint16(44, true);
  const out = [];
  for (let k = 0; k < phnum; k++) {
    const ph = phoff + k * 32;
    if (view.getUint32(ph, true) !== 1) continue;
    out.push({
      offset: view.getUint32(ph + 4, true),
      paddr: view.getUint32(ph + 12, true),
      filesz: view.getUint32(ph + 16, true),
      memsz: view.getUint32(ph + 20, true),
    });
  }
  return out;
}

/** The first physical address above every loaded segment (its BSS included). */
export function imageEnd(elf: Uint8Array): number {
  return Math.max(0, ...loadable(elf).map((s) => s.paddr + Math.max(s.filesz, s.memsz)));
}

/**
 * Copies an ELF32 executable's PT_LOAD segments to their physical addresses in `ram` (our own
 * test and benchmark programs, so no validation but that they fit, unlike src/loader) and
 * returns the entry. A segment beyond `ram` is an Error naming the sizes.
 */
export function loadSegments(elf: Uint8Array, ram: Uint8Array): number {
  const end = imageEnd(elf);
  if (end > ram.length)
    throw new Error(
      `the program needs ${Math.ceil(end / 2 ** 20)} MB of memory, the machine has ${ram.length >> 20} MB`,
    );
  for (const s of loadable(elf)) ram.set(elf.subarray(s.offset, s.offset + s.filesz), s.paddr);
  return new DataView(elf.buffer, elf.byteOffset, elf.byteLength).getUint32(24, true);
}

/** `blocks: false` runs the interpreter alone (no compiled blocks), for comparison. */
export function runOnPrevirt(elfPath: string, blocks = true, memoryMb = 64): PrevirtResult {
  const ram = new Uint8Array(memoryMb << 20);
  const entry = loadSegments(readFileSync(elfPath), ram);
  let begin = { instructions: 0, cycles: 0, ms: 0 };
  let result: PrevirtResult | undefined;
  const cpu: Cpu = new Cpu(
    {
      ram,
      mmioRead: () => 0xffffffff,
      mmioWrite: () => {},
      ioRead: (port) => (port === 0x3fd ? 0x60 : 0xff), // LSR: transmitter empty
      ioWrite: (port, _size, value) => {
        if (port === 0x3f8) watcher.byte(value);
      },
      acknowledgeInterrupt: () => 0x27,
    },
    P4_2_8GHZ.cpu,
  );
  const watcher = new MarkerWatcher(
    () => {
      begin = {
        instructions: cpu.counters.instructions,
        cycles: cpu.cycles,
        ms: performance.now(),
      };
    },
    (checksum) => {
      result = {
        instructions: cpu.counters.instructions - begin.instructions,
        cycles: cpu.cycles - begin.cycles,
        ms: performance.now() - begin.ms,
        checksum,
      };
      cpu.requestStop();
    },
  );
  cpu.blocksEnabled = blocks;
  cpu.enterFlatProtectedMode();
  cpu.eip = entry;
  cpu.eax = 0x2badb002;
  // Run in slices of simulated time, as the machine's event loop does.
  let why = cpu.run(cpu.cycles + 1_000_000);
  while (why === 'limit') why = cpu.run(cpu.cycles + 1_000_000);
  if (result === undefined) {
    throw new Error(`the workload ended (${why}) before printing its END marker`);
  }
  return result;
}
