import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../../../test/x86/assemble.ts';
import { flatCpu, testPlatform, writeDescriptor, writeGate } from '../testing.ts';
import type { Cpu } from '../Cpu.ts';

/**
 * A flat GDT and an IDT whose NMI gate (vector 2, an interrupt gate) goes to a handler at
 * 0x1100 that counts in EBX and returns with IRET; the program runs with interrupts off.
 */
function nmiCpu(program: string): Cpu {
  const platform = testPlatform();
  const ram = platform.ram;
  writeDescriptor(ram, 0x500 + 0x08, 0, 0xfffff, 0x9a);
  writeDescriptor(ram, 0x500 + 0x10, 0, 0xfffff, 0x92);
  const code = assemble(`
    lgdt gdtr
    lidt idtr
    ljmp $0x08, $start
start:
    cli
${program}
gdtr: .word 0x17
    .long 0x500
idtr: .word 0x7f
    .long 0x600
    .org 0x100               /* the NMI handler at 0x1100 */
    incl %ebx
    nop
    nop
    iret`);
  writeGate(ram, 0x600 + 2 * 8, 0x08, 0x1100, 0xe, 0);
  const cpu = flatCpu(code, 0x1000, platform);
  cpu.esp = 0x80000;
  return cpu;
}

/** Steps until EIP is `eip` (at most `limit` steps). */
function stepTo(cpu: Cpu, eip: number, limit = 50): void {
  for (let k = 0; k < limit && cpu.eip !== eip; k++) cpu.step();
  assert.equal(cpu.eip, eip);
}

test('NMI: taken with IF clear, blocked until IRET, one request latched meanwhile', () => {
  const cpu = nmiCpu('spin: jmp spin');
  for (let k = 0; k < 5; k++) cpu.step();
  const inLoop = cpu.eip;
  assert.equal(cpu.interruptsEnabled, false);
  cpu.raiseNmi();
  cpu.step();
  assert.equal(cpu.eip, 0x1100, 'the NMI was taken at once, whatever IF');
  cpu.step(); // incl %ebx
  cpu.raiseNmi();
  cpu.raiseNmi(); // the same request: one is latched
  cpu.step();
  assert.equal(cpu.eip, 0x1100 + 2, 'blocked inside the handler: the NOP ran');
  stepTo(cpu, 0x1100, 5); // nop, iret, then the latched NMI
  assert.equal(cpu.ebx, 1);
  stepTo(cpu, inLoop, 10);
  assert.equal(cpu.ebx, 2, 'the latched NMI ran once');
  for (let k = 0; k < 20; k++) cpu.step();
  assert.equal(cpu.ebx, 2, 'and only once');
});

test('NMI wakes HLT with interrupts off, and the state keeps a latched and a blocked NMI', () => {
  const cpu = nmiCpu('hlt\n\tmovl $7, %ecx\n\thlt');
  assert.equal(cpu.run(1e6), 'halt');
  cpu.raiseNmi();
  assert.equal(cpu.interruptPending, true);
  cpu.step();
  assert.equal(cpu.eip, 0x1100);
  cpu.raiseNmi();
  const state = cpu.save();
  assert.equal(state.nmiPending, true);
  assert.equal(state.nmiBlocked, true);
  const why = cpu.run(cpu.cycles + 1e6);
  assert.equal(
    why,
    'halt',
    `${cpu.shutdownReason} eip ${cpu.eip.toString(16)} esp ${cpu.esp.toString(16)}`,
  );
  assert.equal(cpu.ebx, 2, 'the latched one after the IRET');
  assert.equal(cpu.ecx, 7);
});
