// Exact CPU restores (state.ts): run to cycle N, save, JSON round trip, restore into a new Cpu on
// a copy of the RAM, run on: registers, memory, cycles and every counter as in the uninterrupted
// run, also when the TLBs are under pressure (their contents decide later misses) and compiled
// blocks are in use.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../../../test/x86/assemble.ts';
import { Cpu, type CpuState } from '../Cpu.ts';
import { TLB_ENTRIES } from '../tlb.ts';
import { TEST_COSTS, flatCpu, testPlatform, type TestPlatform } from '../testing.ts';

const DATA_PAGES = 100; // at 0x200000: more than the 64-entry data TLB holds
const CODE_PAGES = 80; // at 0x300000: more than the 64-entry code TLB holds

/**
 * Paging with PGE and WP on, 4 MB identity-mapped; the last 16 code pages global (the FIFO
 * has not evicted them when CR3 is reloaded). Each round
 * reads and then writes each data page (a clean page's first write walks again to set D, so
 * rings hold a page twice), calls one function in each code page, reloads CR3 (global pages
 * stay) and invalidates one data page.
 */
const PROGRAM = assemble(`
    movl $0x10000, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x80, %eax
    movl %eax, %cr4
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    movl $12, %ebp
round:
    movl $0x200000, %esi
    movl $${DATA_PAGES}, %ecx
1:  movl (%esi), %eax
    addl %eax, %ebx
    movl %ebx, 4(%esi)
    addl $0x1000, %esi
    decl %ecx
    jnz 1b
    movl $0x300000, %esi
    movl $${CODE_PAGES}, %ecx
2:  call *%esi
    addl $0x1000, %esi
    decl %ecx
    jnz 2b
    movl %cr3, %eax
    movl %eax, %cr3
    movl %ebp, %eax
    shll $12, %eax
    invlpg 0x200000(%eax)
    decl %ebp
    jnz round
    hlt`);

function machine(): { cpu: Cpu; platform: TestPlatform } {
  const platform = testPlatform();
  const v = new DataView(platform.ram.buffer);
  v.setUint32(0x10000, 0x11000 | 7, true);
  for (let p = 0; p < 1024; p++) {
    const global = p >= 0x300 + CODE_PAGES - 16 && p < 0x300 + CODE_PAGES ? 0x100 : 0;
    v.setUint32(0x11000 + p * 4, (p << 12) | global | 3, true);
  }
  for (let k = 0; k < CODE_PAGES; k++) {
    // addl %ecx, %edi; imull $3, %edi, %edi; ret
    platform.ram.set([0x01, 0xcf, 0x6b, 0xff, 0x03, 0xc3], 0x300000 + k * 0x1000);
  }
  for (let k = 0; k < DATA_PAGES; k++) v.setUint32(0x200000 + k * 0x1000, k * 7, true);
  const cpu = flatCpu(PROGRAM, 0x1000, platform);
  return { cpu, platform };
}

function configure(cpu: Cpu, blocks: boolean, threshold: number): void {
  cpu.blocksEnabled = blocks;
  cpu.blockThreshold = threshold;
  cpu.blockBudget = Infinity; // every hot entry compiled
}

/** Everything the CPU leaves behind, its TLBs included, and the RAM. */
function outcome(cpu: Cpu, platform: TestPlatform): unknown {
  return { state: cpu.save(), ram: Buffer.from(platform.ram).toString('base64') };
}

for (const [blocks, threshold] of [
  [true, 2],
  [true, 256],
  [false, 1],
] as const) {
  test(`restored at any cycle, the CPU runs on as if uninterrupted (TLB pressure, blocks ${blocks ? `after ${threshold} runs` : 'off'})`, () => {
    const reference = machine();
    configure(reference.cpu, blocks, threshold);
    assert.equal(reference.cpu.run(1e9), 'halt');
    const expected = outcome(reference.cpu, reference.platform);
    const total = reference.cpu.cycles;
    const counters = reference.cpu.counters;
    assert.ok(counters.tlbMisses > 2 * (DATA_PAGES + CODE_PAGES), `${counters.tlbMisses} misses`);
    if (blocks) assert.ok(reference.cpu.blockEntries > 0, 'no block ran');

    for (const n of [1, 137, Math.floor(total / 7), Math.floor(total / 2), total - 40, total]) {
      const first = machine();
      configure(first.cpu, blocks, threshold);
      first.cpu.run(n);
      const state = JSON.parse(JSON.stringify(first.cpu.save())) as CpuState;
      const platform = testPlatform();
      platform.ram.set(first.platform.ram);
      const second = new Cpu(platform, TEST_COSTS);
      configure(second, blocks, threshold);
      second.restore(state);
      assert.deepEqual(second.save(), state, `the restored CPU saves what was restored (N=${n})`);
      assert.equal(second.run(1e9), 'halt');
      assert.deepEqual(outcome(second, platform), expected, `restored at cycle ${n}`);
      // Saving changed nothing in the CPU that was saved.
      assert.equal(first.cpu.run(1e9), 'halt');
      assert.deepEqual(outcome(first.cpu, first.platform), expected, `saved at cycle ${n}`);
    }
  });
}

test('the TLB rings are saved slot by slot, and a restore counts no flush', () => {
  const { cpu } = machine();
  cpu.run(1e9, 3800); // in the data loop of the fourth round: the global code pages stay cached
  const state = cpu.save();
  assert.equal(state.tlb.data.pages.length, TLB_ENTRIES);
  assert.ok(state.tlb.data.pages.filter((p) => p >= 0).length > 32);
  // The global code pages and the program's page survived the CR3 reload.
  assert.equal(state.tlb.code.pages.filter((p) => p >= 0).length, 17);
  // In the first round, a page read and then written holds two slots (the write walked again
  // to set the dirty bit), and the restore keeps both.
  const early = machine().cpu;
  early.run(1e9, 300);
  const first = early.save();
  const data = first.tlb.data.pages.filter((p) => p >= 0);
  assert.ok(new Set(data).size < data.length, 'a page in two slots');
  const copy = new Cpu(testPlatform(), TEST_COSTS);
  copy.restore(first);
  assert.deepEqual(copy.save().tlb, first.tlb);
  const flushes = state.counters.tlbFlushes;
  const fresh = new Cpu(testPlatform(), TEST_COSTS);
  fresh.restore(state);
  assert.equal(fresh.counters.tlbFlushes, flushes);
  assert.equal(fresh.counters.cr3Loads, state.counters.cr3Loads);
});

test('states of another version or shape are refused with a clear message', () => {
  const { cpu } = machine();
  const state = cpu.save();
  const fresh = new Cpu(testPlatform(), TEST_COSTS);
  assert.throws(
    () => fresh.restore({ ...state, version: 1 } as unknown as CpuState),
    /CPU state version 1 is not supported \(this build restores version 3 only/,
  );
  const bad = structuredClone(state);
  bad.tlb.data.pages.pop();
  assert.throws(() => fresh.restore(bad), /CPU state: data TLB must have 64 slots/);
  const mmio = structuredClone(state);
  mmio.mmioPages = [1 << 30];
  assert.throws(() => fresh.restore(mmio), /MMIO page 1073741824 is not a page of this machine/);
});

test('between-instruction state survives: HLT, the INTR line, the interrupt shadow, a shutdown', () => {
  const cpu = flatCpu(assemble('sti\n\thlt\n\tnop'));
  assert.equal(cpu.run(1e6), 'halt');
  cpu.setInterruptLine(true);
  const state = JSON.parse(JSON.stringify(cpu.save())) as CpuState;
  assert.equal(state.halted, true);
  assert.equal(state.interruptLine, true);
  const fresh = new Cpu(testPlatform(), TEST_COSTS);
  fresh.restore(state);
  assert.equal(fresh.halted, true);
  assert.equal(fresh.interruptPending, true);
  assert.deepEqual(fresh.save(), state);

  const down = flatCpu(assemble('lidt idt\n\tud2\nidt: .word 0\n\t.long 0'));
  assert.equal(down.run(1e6), 'shutdown');
  const after = new Cpu(testPlatform(), TEST_COSTS);
  after.restore(JSON.parse(JSON.stringify(down.save())) as CpuState);
  assert.equal(after.run(1e6), 'shutdown');
  assert.match(after.shutdownReason ?? '', /triple fault/);
});
