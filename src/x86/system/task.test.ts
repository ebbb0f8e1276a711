import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../../../test/x86/assemble.ts';
import type { Cpu } from '../Cpu.ts';
import * as F from '../flags.ts';
import type { CpuEvent } from '../monitor.ts';
import { flatCpu, testPlatform, writeDescriptor, writeGate } from '../testing.ts';

/** GDT selectors and TSS addresses of the set-up below. */
const MAIN = 0x18;
const TASK_B = 0x20;
const TASK_C = 0x28;
const GATE_B = 0x30;
const TSS_MAIN = 0x3000;
const TSS_B = 0x3100;
const TSS_C = 0x3200;
const GDT = 0x500;

/**
 * A flat GDT with three 32-bit TSSs (the main task, loaded into TR; B and C), a task gate in the
 * GDT for B and one in the IDT for #GP to C. B runs `taskB` at 0x1200, C runs `taskC` at 0x1300.
 */
function taskCpu(main: string, taskB: string, taskC = 'hlt'): { cpu: Cpu; v: DataView } {
  const platform = testPlatform();
  const ram = platform.ram;
  const v = new DataView(ram.buffer);
  writeDescriptor(ram, GDT + 0x08, 0, 0xfffff, 0x9a);
  writeDescriptor(ram, GDT + 0x10, 0, 0xfffff, 0x92);
  writeDescriptor(ram, GDT + MAIN, TSS_MAIN, 0x67, 0x89, 0);
  writeDescriptor(ram, GDT + TASK_B, TSS_B, 0x67, 0x89, 0);
  writeDescriptor(ram, GDT + TASK_C, TSS_C, 0x67, 0x89, 0);
  v.setUint32(GDT + GATE_B, TASK_B << 16, true); // task gate: the TSS selector, type 5, present
  v.setUint32(GDT + GATE_B + 4, 0x8500, true);
  v.setUint32(0x600 + 13 * 8, TASK_C << 16, true);
  v.setUint32(0x600 + 13 * 8 + 4, 0x8500, true);
  for (const [tss, eip, esp] of [
    [TSS_B, 0x1200, 0x70000],
    [TSS_C, 0x1300, 0x60000],
  ]) {
    v.setUint32(tss + 0x20, eip, true);
    v.setUint32(tss + 0x24, 0x2, true);
    v.setUint32(tss + 0x38, esp, true);
    v.setUint32(tss + 0x4c, 0x08, true);
    for (const seg of [0x48, 0x50, 0x54]) v.setUint32(tss + seg, 0x10, true);
  }
  const code = assemble(`
    lgdt gdtr
    lidt idtr
    ljmp $0x08, $start
start:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x80000, %esp
    movw $${MAIN}, %ax
    ltr %ax
${main}
    hlt
gdtr: .word 0x37
    .long ${GDT}
idtr: .word 0x7f
    .long 0x600
    .org 0x200
${taskB}
    .org 0x300
${taskC}`);
  writeGate(ram, 0x600 + 2 * 8, 0x08, 0x1400, 0xe, 0); // unused
  return { cpu: flatCpu(code, 0x1000, platform), v };
}

const busy = (v: DataView, sel: number): boolean =>
  (v.getUint32(GDT + sel + 4, true) & 0x200) !== 0;

test('task switch: CALL to a TSS nests (back link, NT, busy), IRET returns and un-nests', () => {
  const { cpu, v } = taskCpu(
    `movl $1, %esi
    lcall $${TASK_B}, $0
    movl $2, %esi`,
    `movl $0x42, 0x7000     /* B's registers are gone once the main task is back: memory */
    pushfl
    popl 0x7004
    str 0x7008
    iret
    jmp 0x1200`,
  );
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(cpu.esi, 2, 'back after the CALL');
  assert.equal(v.getUint32(0x7000, true), 0x42, 'task B ran');
  assert.equal(v.getUint32(0x7004, true) & F.NT, F.NT, 'NT set in the nested task');
  assert.equal(v.getUint16(0x7008, true), TASK_B, 'TR was B inside it');
  assert.equal(cpu.esp, 0x80000, "the main task's own registers again");
  assert.equal(v.getUint16(TSS_B, true), MAIN, 'the back link names the caller');
  assert.equal(cpu.tr.selector, MAIN);
  assert.equal(busy(v, MAIN), true, 'the caller stays busy');
  assert.equal(busy(v, TASK_B), false, 'IRET left B not busy');
  assert.equal(cpu.getEflags() & F.NT, 0);
  assert.equal(cpu.cr0 & 8, 8, 'CR0.TS');
  assert.equal(v.getUint32(TSS_B + 0x20, true), 0x1200 + 25, 'B saved after its IRET');
});

test('task switch: JMP through a task gate leaves the old task not busy; JMP to a busy TSS is #GP', () => {
  const { cpu, v } = taskCpu(`ljmp $${GATE_B}, $0`, `movl $0x99, %edi\n\thlt`);
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(cpu.edi, 0x99);
  assert.equal(cpu.tr.selector, TASK_B);
  assert.equal(busy(v, MAIN), false);
  assert.equal(busy(v, TASK_B), true);
  assert.equal(v.getUint16(TSS_B, true), 0, 'no back link for JMP');
  assert.equal(cpu.getEflags() & F.NT, 0, 'no NT for JMP');

  const again = taskCpu(`ljmp $${MAIN}, $0`, 'hlt').cpu;
  const events: CpuEvent[] = [];
  again.attachMonitor({
    onEvent(e) {
      events.push(e);
      again.halted = true;
    },
  });
  again.run(1e6);
  assert.deepEqual(events, [{ kind: 'exception', vector: 13, errorCode: MAIN }]);
});

test('task switch: #GP through a task gate in the IDT, the error code on the new task stack', () => {
  const { cpu, v } = taskCpu(
    `movw $0x1234, %ax
    movw %ax, %es          /* #GP(0x1234): an LDT selector, no LDT */
    movl $3, %esi`,
    'hlt',
    `popl 0x7000           /* the error code */
    addl $4, ${TSS_MAIN + 0x20}   /* skip movw %ax, %es in the saved EIP... */
    subl $2, ${TSS_MAIN + 0x20}   /* ...which is two bytes */
    iret
    jmp 0x1300`,
  );
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(v.getUint32(0x7000, true), 0x1234, 'error code pushed in the new task');
  assert.equal(cpu.esi, 3, 'the main task went on after the faulting instruction');
  assert.equal(v.getUint16(TSS_C, true), MAIN);
  assert.equal(cpu.counters.exceptions[13], 1);
  assert.equal(busy(v, TASK_C), false);
});
