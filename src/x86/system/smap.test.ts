import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../../../test/x86/assemble.ts';
import type { CpuEvent } from '../monitor.ts';
import { flatCpu, testPlatform } from '../testing.ts';
import { cpuidLeaf, CPUID_LEAF7_EBX, CPUID_LEAF7_ECX } from './instructions.ts';

/**
 * Paging on, the first 4 MB identity-mapped as supervisor pages but page 0x200 (a user page,
 * holding data at 0x200000 and a RET at 0x200100). Every exception goes to a monitor that
 * lists it and resumes at the address in EBX.
 */
function pagedCpu(program: string): { events: CpuEvent[]; cpu: ReturnType<typeof flatCpu> } {
  const platform = testPlatform();
  const v = new DataView(platform.ram.buffer);
  v.setUint32(0x10000, 0x11000 | 7, true);
  for (let p = 0; p < 1024; p++) v.setUint32(0x11000 + p * 4, (p << 12) | 3, true);
  v.setUint32(0x11000 + 0x200 * 4, 0x200000 | 7, true);
  v.setUint32(0x200000, 0x12345678, true);
  platform.ram[0x200100] = 0xc3; // ret
  const cpu = flatCpu(
    assemble(`
    movl $0x10000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    movl $0x80000, %esp
${program}
    hlt`),
    0x1000,
    platform,
  );
  const events: CpuEvent[] = [];
  cpu.attachMonitor({
    onEvent(e) {
      events.push(e);
      cpu.eip = cpu.ebx;
    },
  });
  assert.equal(cpu.run(1e6), 'halt');
  return { events, cpu };
}

test('CPUID leaf 7 offers SMEP, SMAP, UMIP and RDPID; CR4 takes their bits', () => {
  const [max] = cpuidLeaf(0);
  assert.equal(max, 7);
  const [, ebx, ecx] = cpuidLeaf(7, 0);
  assert.equal(ebx, CPUID_LEAF7_EBX.SMEP | CPUID_LEAF7_EBX.SMAP);
  assert.equal(ecx, CPUID_LEAF7_ECX.UMIP | CPUID_LEAF7_ECX.RDPID);
  assert.deepEqual(cpuidLeaf(7, 1), [0, 0, 0, 0], 'no sub-leaf 1');
});

test('SMAP: a supervisor read of a user page faults with AC clear, not with STAC; CLAC again', () => {
  const { events, cpu } = pagedCpu(`
    movl 0x200000, %esi        /* SMAP off: fine */
    movl %cr4, %eax
    orl $0x200000, %eax
    movl %eax, %cr4
    movl $1f, %ebx
    movl 0x200000, %edi        /* #PF(P) */
1:  stac
    movl 0x200000, %ecx        /* AC set: fine */
    movl $2f, %ebx
    movl $5, 0x200004          /* AC set: a write is fine too */
    clac
    movl $2f, %ebx
    movl $7, 0x200008          /* #PF(P|W) */
2:  movl 0x100000, %edx        /* a supervisor page: fine */`);
  assert.equal(cpu.esi, 0x12345678);
  assert.equal(cpu.edi, 0, 'the faulting read did not complete');
  assert.equal(cpu.ecx, 0x12345678);
  assert.deepEqual(events, [
    { kind: 'exception', vector: 14, errorCode: 1 },
    { kind: 'exception', vector: 14, errorCode: 3 },
  ]);
  assert.equal(cpu.cr2, 0x200008);
  assert.equal(cpu.readPhysical(0x200004, 4), 5);
  assert.equal(cpu.readPhysical(0x200008, 4), 0);
});

test('SMEP: supervisor code in a user page faults (I/D set in the error code)', () => {
  const { events, cpu } = pagedCpu(`
    call 0x200100              /* SMEP off: the RET there runs */
    movl %cr4, %eax
    orl $0x100000, %eax
    movl %eax, %cr4
    movl $1f, %ebx
    call 0x200100              /* #PF(P|I) */
1:  movl $9, %ecx`);
  assert.deepEqual(events, [{ kind: 'exception', vector: 14, errorCode: 0x11 }]);
  assert.equal(cpu.cr2, 0x200100);
  assert.equal(cpu.ecx, 9);
});

test('UMIP leaves SGDT at CPL 0 alone (user-mode faults: kvm-unit-tests umip)', () => {
  const { events, cpu } = pagedCpu(`
    movl %cr4, %eax
    orl $0x800, %eax
    movl %eax, %cr4
    sgdt 0x7000
    movl $9, %ecx`);
  assert.deepEqual(events, []);
  assert.equal(cpu.ecx, 9);
});
