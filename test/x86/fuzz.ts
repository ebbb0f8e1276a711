/**
 * Random-byte fuzzing of previrt's CPU: pages of random bytes executed at CPL 0 or CPL 3 with a
 * monitor attached, so every exception comes back to us; we then jump somewhere else in the
 * random page and carry on. The only acceptable outcome of any byte sequence is architectural
 * behaviour (a fault, a halt, a shutdown): a host exception fails the run, and so does an event
 * the architecture does not define (testing.ts `notArchitectural`: vector, error code).
 *
 * With `blockThreshold` 1 every entry point is compiled into a block the first time it runs,
 * so random code goes through the block compiler too; `digest` folds in the CPU state at every
 * event and page change, so a run with blocks can be compared with an interpreted one.
 */
import { Cpu } from '../../src/x86/Cpu.ts';
import {
  TEST_COSTS,
  notArchitectural,
  testPlatform,
  writeDescriptor,
} from '../../src/x86/testing.ts';
import { xorshift32 } from '../random.ts';

export interface FuzzResult {
  instructions: number;
  events: number;
  exceptionsByVector: number[];
  shutdowns: number;
  digest: number;
}

export interface FuzzOptions {
  /** Compile blocks after this many runs of an entry point; 0: interpret only (default 0). */
  blockThreshold?: number;
}

const CODE = 0x10000;
const GDT = 0x1000;

/**
 * Runs `instructions` random instructions at the given CPL. A GDT with flat ring-0 and ring-3
 * code and data descriptors lets random far transfers and segment loads reach real checks.
 */
export function fuzz(
  instructions: number,
  seed: number,
  cpl: 0 | 3,
  options: FuzzOptions = {},
): FuzzResult {
  const rand = xorshift32(seed);
  const platform = testPlatform(1 << 20);
  const cpu = new Cpu(platform, TEST_COSTS);
  cpu.blocksEnabled = (options.blockThreshold ?? 0) > 0;
  cpu.blockThreshold = options.blockThreshold ?? 1;
  cpu.blockBudget = Infinity; // every hot entry compiled
  const ram = platform.ram;
  writeDescriptor(ram, GDT + 0x08, 0, 0xfffff, 0x9a);
  writeDescriptor(ram, GDT + 0x10, 0, 0xfffff, 0x92);
  writeDescriptor(ram, GDT + 0x18, 0, 0xfffff, 0xfa);
  writeDescriptor(ram, GDT + 0x20, 0, 0xfffff, 0xf2);
  const result: FuzzResult = {
    instructions: 0,
    events: 0,
    exceptionsByVector: new Array<number>(32).fill(0),
    shutdowns: 0,
    digest: 0,
  };
  const fold = (v: number): void => {
    result.digest = (Math.imul(result.digest ^ v, 0x01000193) + 0x9e3779b9) | 0;
  };
  const note = (): void => {
    fold(cpu.eip);
    for (const r of cpu.regs) fold(r);
    fold(cpu.getEflags());
    fold(cpu.cycles);
    fold(cpu.counters.instructions);
  };

  const restart = (): void => {
    // The test platform records every OUT; random REP OUTS would make that grow without end.
    platform.outs.length = 0;
    cpu.reset();
    cpu.enterFlatProtectedMode();
    cpu.gdtr = { base: GDT, limit: 0x27 };
    if (cpl === 3) {
      cpu.segs[1].load(0x1b, 0, 0xffffffff, 0xc0fb);
      for (const s of [0, 2, 3, 4, 5]) cpu.segs[s].load(0x23, 0, 0xffffffff, 0xc0f3);
      cpu.setCpl(3);
    }
    cpu.esp = 0x80000;
    cpu.eip = CODE + (rand() & 0xfff);
    for (let k = 0; k < 0x1000; k += 4) new DataView(ram.buffer).setUint32(CODE + k, rand(), true);
    cpu.invalidateAllCode();
  };
  cpu.attachMonitor({
    onEvent(e) {
      // Anything else is a CPU bug, as a host exception is: it fails the run.
      const why = notArchitectural(e);
      if (why !== undefined) throw new Error(`not an architectural event: ${why}`);
      result.events++;
      if (e.kind === 'exception' && e.vector < 32) result.exceptionsByVector[e.vector]++;
      fold(e.vector);
      note();
      // Continue elsewhere in the random page, with the privilege level we fuzz at.
      if (cpu.cpl !== cpl || (rand() & 7) === 0) restart();
      else cpu.eip = CODE + (rand() & 0xfff);
    },
  });
  restart();
  const start = cpu.counters.instructions;
  let done = 0;
  while (done < instructions) {
    // A fresh random page every 1,000 instructions, so tight loops do not hide the rest.
    const why = cpu.run(Number.MAX_SAFE_INTEGER, Math.min(1_000, instructions - done));
    done = cpu.counters.instructions - start + result.events;
    if (why === 'shutdown') result.shutdowns++;
    note();
    restart();
  }
  result.instructions = cpu.counters.instructions - start;
  return result;
}
