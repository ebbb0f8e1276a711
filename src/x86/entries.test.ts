// Bound entries per VM (entries.ts, Cpu.useEntryTable) and the rule for a fault inside a
// handler (Cpu.callBound): registers, ESP and EFLAGS as at the call, EIP at the entry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../../test/x86/assemble.ts';
import type { Cpu } from './Cpu.ts';
import * as F from './flags.ts';
import type { CpuEvent } from './monitor.ts';
import { flatCpu, testPlatform, writeDescriptor, writeGate, type TestPlatform } from './testing.ts';

test('two VMs bind the same address in their own tables; the table in use decides', () => {
  // The guest calls 0x9000 twice; between the calls an INT 0x80 lets the "hypervisor" switch
  // VMs. The run starts with the default table empty, so the switch also checks that a table
  // made current in the middle of a run slice is seen at once (the loop's test is per slice).
  const cpu = flatCpu(assemble('call 0x9000\n\tint $0x80\n\tcall 0x9000\n\thlt'));
  const calls: string[] = [];
  const a = cpu.createEntryTable('dom1');
  const b = cpu.createEntryTable('dom2');
  assert.equal(typeof a.bind(0x9000, 'vmm.emulate', () => calls.push('dom1')), 'function');
  assert.equal(typeof b.bind(0x9000, 'vmm.emulate', () => calls.push('dom2')), 'function');
  cpu.attachMonitor({
    onEvent(e) {
      assert.deepEqual(e, { kind: 'software', vector: 0x80 });
      cpu.useEntryTable(b);
    },
  });
  cpu.useEntryTable(a);
  assert.equal(cpu.run(1e6), 'halt');
  assert.deepEqual(calls, ['dom1', 'dom2']);
  assert.equal(cpu.activeEntryTable, b);
  assert.equal(cpu.counters.boundCalls, 2);
});

test('a table switched in during a run slice is seen at once, from an empty table too', () => {
  const cpu = flatCpu(assemble('int $0x80\n\tcall 0x9000\n\thlt'));
  const b = cpu.createEntryTable('dom2');
  let calls = 0;
  b.bind(0x9000, 'vmm.emulate', () => calls++);
  cpu.attachMonitor({ onEvent: () => cpu.useEntryTable(b) });
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(calls, 1);
});

test('a second binding at an address is refused, naming both; unbinding frees it', () => {
  const cpu = flatCpu(new Uint8Array(1));
  const t = cpu.createEntryTable('dom1');
  const unbind = t.bind(0xfc001000, 'vmm.emulate', () => {});
  assert.equal(typeof unbind, 'function');
  assert.equal(
    t.bind(0xfc001000, 'vmm.deliver', () => {}),
    "bound entry 'vmm.deliver' at 0xfc001000 overlaps 'vmm.emulate' in entry table 'dom1'",
  );
  assert.equal(t.nameAt(0xfc001000), 'vmm.emulate');
  if (typeof unbind === 'function') unbind();
  const again = t.bind(0xfc001000, 'vmm.deliver', () => {});
  assert.equal(typeof again, 'function');
  if (typeof unbind === 'function') unbind(); // a stale unbind leaves the new binding alone
  assert.equal(t.nameAt(0xfc001000), 'vmm.deliver');

  // The default table (bindEntry) refuses by throwing: its callers never expected a refusal.
  cpu.bindEntry(0x9000, () => {}, 'xen.upcall');
  assert.throws(
    () => cpu.bindEntry(0x9000, () => {}),
    /bound entry 'entry@0x00009000' at 0x00009000 overlaps 'xen\.upcall' in entry table 'default'/,
  );
  assert.throws(() => cpu.createEntryTable('dom1'), /entry table 'dom1' exists already/);
  const other = flatCpu(new Uint8Array(1)).createEntryTable('dom1');
  assert.throws(() => cpu.useEntryTable(other), /does not belong to this CPU/);
});

test('switching tables drops compiled blocks that run past an address bound in the new one', () => {
  // g falls through into f; once both are hot and compiled, the guest switches (INT 0x80 every
  // 20th round) between a table without and one with f bound: calls to g must reach the handler
  // exactly in the rounds the second table is in use, blocks or not.
  const code = assemble(`
    movl $100, %ecx
1:  call g
    movl %ecx, %eax
    xorl %edx, %edx
    movl $20, %esi
    divl %esi
    testl %edx, %edx
    jnz 2f
    int $0x80
2:  decl %ecx
    jnz 1b
    hlt
g:  addl $1, %ebx
f:  addl $100, %ebx
    ret`);
  const f = 0x1000 + code.length - 7; // "addl $100, %ebx" (6 bytes) and "ret"
  const results = [false, true].map((blocks) => {
    const cpu = flatCpu(code);
    cpu.blocksEnabled = blocks;
    cpu.blockThreshold = 2;
    cpu.blockBudget = Infinity; // every hot entry compiled
    const plain = cpu.createEntryTable('plain');
    const hooked = cpu.createEntryTable('hooked');
    let calls = 0;
    hooked.bind(f, 'f', () => {
      calls++;
      cpu.ebx += 1000;
    });
    cpu.useEntryTable(plain);
    cpu.attachMonitor({
      onEvent: () => cpu.useEntryTable(cpu.activeEntryTable === plain ? hooked : plain),
    });
    assert.equal(cpu.run(1e9), 'halt');
    return {
      ebx: cpu.ebx,
      calls,
      cycles: cpu.cycles,
      counters: cpu.counters,
      blocks: cpu.blockEntries,
    };
  });
  const [interpreted, compiled] = results;
  assert.ok(compiled.blocks > 0, 'no block ran');
  assert.equal(interpreted.calls, 59, 'rounds 99..80, 59..40 and 19..1 run with f bound');
  assert.deepEqual({ ...compiled, blocks: 0 }, { ...interpreted, blocks: 0 });
});

/**
 * Paging on with the first 4 MB identity-mapped except page 0x200 (not present, for the
 * handler to fault on), a flat GDT and an IDT whose #PF gate goes to `pf` in the program.
 */
function pagedCpu(program: string): { cpu: Cpu; platform: TestPlatform } {
  const platform = testPlatform();
  const ram = platform.ram;
  const v = new DataView(ram.buffer);
  v.setUint32(0x10000, 0x11000 | 3, true);
  for (let p = 0; p < 1024; p++) v.setUint32(0x11000 + p * 4, (p << 12) | 3, true);
  v.setUint32(0x11000 + 0x200 * 4, 0, true);
  v.setUint32(0x200000, 0x12345678, true);
  writeDescriptor(ram, 0x500 + 0x08, 0, 0xfffff, 0x9a);
  writeDescriptor(ram, 0x500 + 0x10, 0, 0xfffff, 0x92);
  const code = assemble(`
    lgdt gdtr
    lidt idtr
    movl $0x10000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
${program}
gdtr: .word 0x17
    .long 0x500
idtr: .word 0x7f
    .long 0x600
    .org 0x100               /* pf at 0x1100 */
pf: pushl %edx                /* the frame: error code, EIP, CS, EFLAGS above EDX */
    movl 8(%esp), %edx
    movl %edx, 0x7000         /* EIP of the fault */
    leal 20(%esp), %edx
    movl %edx, 0x7004         /* ESP before the frame */
    movl %eax, 0x7008
    movl 16(%esp), %edx
    movl %edx, 0x700c         /* EFLAGS */
    movl $0x200003, 0x11800   /* map page 0x200 */
    popl %edx
    addl $4, %esp
    iret`);
  writeGate(ram, 0x600 + 14 * 8, 0x08, 0x1100, 0xe, 0);
  const cpu = flatCpu(code, 0x1000, platform);
  return { cpu, platform };
}

/** A handler that takes its return address off the stack, changes EAX and CF, then faults. */
function restartableHandler(cpu: Cpu, log: { esp: number; eax: number }[]): () => void {
  return () => {
    log.push({ esp: cpu.esp, eax: cpu.eax });
    const ret = cpu.pop(4);
    cpu.eax = 0xdead;
    cpu.setEflags(cpu.getEflags() & ~F.CF);
    cpu.ebx = cpu.readLinear(0x200000, 4); // #PF the first time
    cpu.push(ret, 4);
  };
}

test('a #PF inside a handler reaches the IDT with the state of the call, then the handler runs again', () => {
  const { cpu, platform } = pagedCpu('movl $5, %eax\n\tstc\n\tcall 0x9000\n\thlt');
  const log: { esp: number; eax: number }[] = [];
  cpu.bindEntry(0x9000, restartableHandler(cpu, log), 'vmm.read');
  assert.equal(cpu.run(1e6), 'halt');
  const v = new DataView(platform.ram.buffer);
  // At the call ESP pointed at the return address; the fault came with that ESP, EAX and CF.
  assert.deepEqual(log, [
    { esp: 0x80000 - 4, eax: 5 },
    { esp: 0x80000 - 4, eax: 5 },
  ]);
  assert.equal(v.getUint32(0x7000, true), 0x9000, 'EIP of the fault: the entry');
  assert.equal(v.getUint32(0x7004, true), 0x80000 - 4, 'ESP as at the call');
  assert.equal(v.getUint32(0x7008, true), 5, 'EAX as at the call');
  assert.equal(v.getUint32(0x700c, true) & F.CF, F.CF, 'EFLAGS as at the call');
  assert.equal(cpu.cr2, 0x200000);
  // The second run completed: the value read, the return address back, RET done.
  assert.equal(cpu.ebx, 0x12345678);
  assert.equal(cpu.eax, 0xdead);
  assert.equal(cpu.esp, 0x80000);
  assert.equal(cpu.counters.exceptions[14], 1);
  assert.equal(cpu.counters.boundCalls, 2);
});

test('a #PF inside a handler reaches a monitor with the state of the call', () => {
  const { cpu, platform } = pagedCpu('movl $5, %eax\n\tstc\n\tcall 0x9000\n\thlt');
  const log: { esp: number; eax: number }[] = [];
  const table = cpu.createEntryTable('dom1');
  table.bind(0x9000, 'vmm.read', restartableHandler(cpu, log));
  cpu.useEntryTable(table);
  const seen: { event: CpuEvent; eip: number; esp: number; eax: number; cf: boolean }[] = [];
  cpu.attachMonitor({
    onEvent(event) {
      seen.push({ event, eip: cpu.eip, esp: cpu.esp, eax: cpu.eax, cf: cpu.getCF() });
      new DataView(platform.ram.buffer).setUint32(0x11800, 0x200003, true);
    },
  });
  assert.equal(cpu.run(1e6), 'halt');
  assert.deepEqual(seen, [
    {
      event: { kind: 'exception', vector: 14, errorCode: 0 },
      eip: 0x9000,
      esp: 0x80000 - 4,
      eax: 5,
      cf: true,
    },
  ]);
  assert.equal(log.length, 2);
  assert.equal(cpu.ebx, 0x12345678);
  assert.equal(cpu.esp, 0x80000);
});

test('the entries audit names bindings nobody bound again, extra ones and the table in use', () => {
  const make = (): Cpu => flatCpu(new Uint8Array(1));
  const cpu = make();
  const dom1 = cpu.createEntryTable('dom1');
  dom1.bind(0xfc000000, 'vmm.emulate', () => {});
  dom1.bind(0xfc000010, 'vmm.deliver', () => {});
  cpu.bindEntry(0x9000, () => {}, 'xen.upcall');
  cpu.useEntryTable(dom1);
  const state = JSON.parse(JSON.stringify(cpu.save())) as ReturnType<Cpu['save']>;
  assert.deepEqual(state.entries, {
    active: 'dom1',
    tables: [
      { name: 'default', bindings: [{ linear: 0x9000, name: 'xen.upcall' }] },
      {
        name: 'dom1',
        bindings: [
          { linear: 0xfc000000, name: 'vmm.emulate' },
          { linear: 0xfc000010, name: 'vmm.deliver' },
        ],
      },
    ],
  });

  const restored = make();
  restored.restore(state);
  const again = restored.createEntryTable('dom1');
  again.bind(0xfc000000, 'vmm.emulate', () => {});
  const extra = again.bind(0xfc000020, 'vmm.other', () => {});
  assert.equal(
    restored.unrestoredEntries(state),
    "bound entries differ from the snapshot (table in use 'default', in the snapshot 'dom1'; " +
      'not bound again: default:xen.upcall@0x00009000, dom1:vmm.deliver@0xfc000010; ' +
      'not in the snapshot: dom1:vmm.other@0xfc000020)',
  );
  restored.bindEntry(0x9000, () => {}, 'xen.upcall');
  again.bind(0xfc000010, 'vmm.deliver', () => {});
  restored.useEntryTable(again);
  assert.match(
    restored.unrestoredEntries(state) ?? '',
    /^[^;]*not in the snapshot: dom1:vmm.other/,
  );
  if (typeof extra === 'function') extra();
  assert.equal(restored.unrestoredEntries(state), undefined);
});
