import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../../../test/x86/assemble.ts';
import { CS, DS } from '../segment.ts';
import { flatCpu, testPlatform, writeDescriptor } from '../testing.ts';

/**
 * From flat protected mode into real mode the way kvm-unit-tests' realmode.flat goes: a 16-bit
 * code segment, CR0.PE cleared, a far jump to CS 0. Then real-mode segment loads, a far call, an
 * INT through the vector table and IRET, and RETF.
 */
test('real mode: segment bases are selector × 16, INT goes through the vector table, IRET and RETF return', () => {
  const platform = testPlatform();
  const ram = platform.ram;
  writeDescriptor(ram, 0x500 + 0x08, 0, 0xffff, 0x9a, 0); // 16-bit code
  writeDescriptor(ram, 0x500 + 0x10, 0, 0xfffff, 0x92, 0xc); // 4 GB data: big real mode
  const v = new DataView(ram.buffer);
  v.setUint16(0x20 * 4, 0x1800, true); // INT 0x20 → 0000:1800
  v.setUint16(0x20 * 4 + 2, 0, true);
  const cpu = flatCpu(
    assemble(`
    lgdt gdtr
    ljmp $0x08, $pm16
    .code16
pm16:
    movw $0x10, %ax
    movw %ax, %fs          /* a 4 GB limit that real mode keeps */
    movl %cr0, %eax
    andl $~1, %eax
    movl %eax, %cr0
    ljmp $0, $real
real:
    movw $0x700, %sp
    xorw %ax, %ax
    movw %ax, %ss
    movw $0x300, %ax
    movw %ax, %ds          /* base 0x3000 */
    movw $0x42, (0x10)     /* at 0x3010 */
    lcall $0x0100, $(far - 0x1000)  /* CS 0x100: base 0x1000 */
    movl $0x200000, %esi
    addr32 movl $0x12345678, %fs:(%esi)  /* past 64 KB: the big limit stays */
    cli
    int $0x20
    hlt
far:
    movw $7, %cx
    lret
gdtr: .word 0x17
    .long 0x500
    .org 0x800
    movw $9, %dx           /* the INT 0x20 handler at 0x1800 */
    pushf
    popw %bx               /* FLAGS inside the handler: IF cleared by the INT */
    iret`),
    0x1000,
    platform,
  );
  cpu.setEflags(cpu.getEflags() | 0x200);
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(cpu.realMode, true);
  assert.equal(cpu.segs[DS].base, 0x3000);
  assert.equal(v.getUint16(0x3010, true), 0x42);
  assert.equal(cpu.ecx & 0xffff, 7, 'the far call ran and returned');
  assert.equal(v.getUint32(0x200000, true), 0x12345678);
  assert.equal(cpu.edx & 0xffff, 9, 'the INT handler ran');
  assert.equal(cpu.ebx & 0x200, 0, 'with IF clear');
  assert.equal(cpu.segs[CS].selector, 0, 'IRET came back to CS 0');
  assert.equal(cpu.esp & 0xffff, 0x700);
});

test('real mode: LLDT, LTR, LAR, ARPL are #UD', () => {
  const platform = testPlatform();
  const cpu = flatCpu(
    assemble('movl %cr0, %eax\n\tandl $~1, %eax\n\tmovl %eax, %cr0\n\tlldt %ax'),
    0x1000,
    platform,
  );
  const events: unknown[] = [];
  cpu.attachMonitor({
    onEvent(e) {
      events.push(e);
      cpu.halted = true;
    },
  });
  cpu.run(1e6);
  assert.deepEqual(events, [{ kind: 'exception', vector: 6, errorCode: undefined }]);
});
