import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CpuEvent } from './monitor.ts';
import { assemble } from '../../test/x86/assemble.ts';
import { flatCpu, notArchitectural, testPlatform } from './testing.ts';

const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'previrt-cpu-'));

function run(source: string): ReturnType<typeof flatCpu> {
  const cpu = flatCpu(assemble(`${source}\n\thlt`));
  assert.equal(cpu.run(1e6), 'halt');
  return cpu;
}

test('arithmetic results and flags', () => {
  const cpu = run(`
    movl $0xffffffff, %eax
    addl $1, %eax          /* 0, CF ZF */
    setc %bl
    setz %bh
    movl $0x7fffffff, %ecx
    incl %ecx              /* OF SF */
    seto %dl
    sets %dh
    movl %edx, %ebp
    movl $7, %esi
    imull $-3, %esi, %esi  /* -21 */
    movl $100, %eax
    movl $0, %edx
    movl $7, %edi
    divl %edi              /* 14 r 2 */`);
  assert.equal(cpu.ebx & 0xffff, 0x0101);
  assert.equal(cpu.ebp & 0xffff, 0x0101);
  assert.equal(cpu.esi | 0, -21);
  assert.equal(cpu.eax, 14);
  assert.equal(cpu.edx, 2);
});

test('string instructions with REP, and MOVS across a page boundary', () => {
  const cpu = run(`
    movl $0x2ff8, %esi
    movl $0x5ff0, %edi
    movl $0x11223344, 0x2ff8
    movl $0x55667788, 0x2ffc
    movl $0x99aabbcc, 0x3000
    movl $3, %ecx
    cld
    rep movsl
    movl 0x5ff8, %eax`);
  assert.equal(cpu.eax, 0x99aabbcc);
  assert.equal(cpu.ecx, 0);
  assert.equal(cpu.edi, 0x5ffc);
});

test('#DE reaches the monitor with EIP at the faulting DIV', () => {
  const cpu = flatCpu(assemble('xorl %ecx, %ecx\n\tdivl %ecx\n\thlt'));
  const events: CpuEvent[] = [];
  cpu.attachMonitor({
    onEvent(e) {
      events.push(e);
      cpu.eip += 2; // skip the two-byte DIV
    },
  });
  assert.equal(cpu.run(1e6), 'halt');
  assert.deepEqual(events, [{ kind: 'exception', vector: 0, errorCode: undefined }]);
  assert.equal(cpu.counters.monitorExits, 1);
});

test('ring 3 sees the hardware behaviour pre-virtualization deals with (POPF, PUSHF, SGDT, SMSW, RPL)', () => {
  // fixtures/rings.S: letters in order = checks passed; see the file for what each means.
  const s = join(here, 'fixtures', 'rings.S');
  const o = join(work, 'rings.o');
  const bin = join(work, 'rings.bin');
  execFileSync('as', ['--32', '-o', o, s]);
  execFileSync('ld', [
    '-m',
    'elf_i386',
    '-Ttext=0x1000',
    '-Tdata=0x3000',
    '-Tbss=0x5000',
    '--oformat',
    'binary',
    '-o',
    bin,
    o,
  ]);
  const platform = testPlatform();
  const cpu = flatCpu(readFileSync(bin), 0x1000, platform);
  assert.equal(cpu.run(1e7), 'halt');
  assert.equal(platform.text(), 'RIGMPPSK\n');
  assert.equal(cpu.counters.exceptions[13], 2);
  assert.equal(cpu.cpl, 0);
  assert.deepEqual(platform.outs.at(-1), { port: 0xf4, value: 0 });
});

test('the ring-3 exercise prints the same on QEMU (the reference machine)', (t) => {
  if (!hasQemu()) {
    t.skip('qemu-system-i386 is not installed (Debian package qemu-system-x86)');
    return;
  }
  const o = join(work, 'rings-mb.o');
  const elf = join(work, 'rings.elf');
  execFileSync('as', ['--32', '-o', o, join(here, 'fixtures', 'rings.S')]);
  execFileSync('ld', [
    '-m',
    'elf_i386',
    '--no-warn-rwx-segments',
    '-T',
    join(here, 'fixtures', 'rings.ld'),
    '-o',
    elf,
    o,
  ]);
  const qemu = spawnSync(
    'qemu-system-i386',
    [
      '-kernel',
      elf,
      // A file, not stdio: QEMU's stdio backend may drop bytes when the pipe is busy (seen on
      // loaded 2-core machines).
      '-debugcon',
      `file:${join(work, 'rings.debugcon')}`,
      '-device',
      'isa-debug-exit,iobase=0xf4,iosize=4',
      '-display',
      'none',
      '-no-reboot',
      '-m',
      '16',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(qemu.status, 1, 'QEMU exits through isa-debug-exit with (0 << 1) | 1');
  assert.equal(readFileSync(join(work, 'rings.debugcon'), 'utf8'), 'RIGMPPSK\n');
});

function hasQemu(): boolean {
  return spawnSync('qemu-system-i386', ['--version']).status === 0;
}

test('paging: #PF error code and CR2, accessed and dirty bits, TLB misses and flushes', () => {
  const platform = testPlatform();
  const ram = new DataView(platform.ram.buffer);
  // Page directory at 0x10000, one table at 0x11000 identity-mapping the first 4 MB, except
  // page 0x200 (not present) and page 0x201 (read-only, user).
  ram.setUint32(0x10000, 0x11000 | 7, true);
  for (let p = 0; p < 1024; p++) ram.setUint32(0x11000 + p * 4, (p << 12) | 3, true);
  ram.setUint32(0x11000 + 0x200 * 4, 0, true);
  ram.setUint32(0x11000 + 0x201 * 4, (0x201 << 12) | 5, true);
  const cpu = flatCpu(
    assemble(`
    movl $0x10000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80010000, %eax   /* PG, WP */
    movl %eax, %cr0
    movl 0x300000, %ebx     /* read: sets A */
    movl %ebx, 0x300004     /* write: sets D */
    movl 0x200000, %ebx     /* not present: #PF 0 */
    movl %ebx, 0x201000     /* read-only with WP: #PF 3 */
    hlt`),
    0x1000,
    platform,
  );
  const faults: { code: number | undefined; cr2: number }[] = [];
  cpu.attachMonitor({
    onEvent(e) {
      assert.equal(e.kind, 'exception');
      if (e.kind === 'exception') faults.push({ code: e.errorCode, cr2: cpu.cr2 });
      cpu.eip += 6; // both faulting MOVs are 6 bytes (absolute address)
    },
  });
  assert.equal(cpu.run(1e6), 'halt');
  assert.deepEqual(faults, [
    { code: 0, cr2: 0x200000 },
    { code: 3, cr2: 0x201000 },
  ]);
  const pte300 = ram.getUint32(0x11000 + 0x300 * 4, true);
  assert.equal(pte300 & 0x60, 0x60, 'accessed and dirty');
  assert.ok(cpu.counters.tlbMisses >= 3);
  assert.ok(cpu.counters.cr3Loads === 1);
});

test('device registers above 2 GB are reached on the first access after a TLB miss', () => {
  // A physical address with bit 31 set once came back from the TLB fill as a negative number,
  // so the first access to a page (a NIC's registers at 0xE0000000) never reached the device.
  const platform = testPlatform();
  const reads: number[] = [];
  const writes: { address: number; value: number }[] = [];
  platform.mmioRead = (address) => {
    reads.push(address);
    return 0x1234;
  };
  platform.mmioWrite = (address, _size, value) => {
    writes.push({ address, value });
  };
  const cpu = flatCpu(
    assemble(`
    movl 0xe0000010, %eax
    movl %eax, 0xe0001014
    movl 0xe0002018, %ebx
    hlt`),
    0x1000,
    platform,
  );
  assert.equal(cpu.run(1e6), 'halt');
  assert.deepEqual(reads, [0xe0000010, 0xe0002018]);
  assert.deepEqual(writes, [{ address: 0xe0001014, value: 0x1234 }]);
  assert.equal(cpu.ebx, 0x1234);
  assert.equal(cpu.counters.mmioReads, 2);
  assert.equal(cpu.counters.mmioWrites, 1);
});

test('a fault with no usable IDT ends in a triple fault, reported, not thrown', () => {
  const cpu = flatCpu(assemble('lidt idt\n\tud2\nidt: .word 0\n\t.long 0'));
  assert.equal(cpu.run(1e6), 'shutdown');
  assert.match(cpu.shutdownReason ?? '', /triple fault/);
  assert.equal(cpu.counters.exceptions[8], 1);
});

test('a bound entry address calls TypeScript with call semantics', () => {
  const cpu = flatCpu(assemble('movl $5, %eax\n\tcall 0x9000\n\tincl %eax\n\thlt'));
  let calls = 0;
  cpu.bindEntry(0x9000, () => {
    calls++;
    cpu.eax = cpu.eax * 10;
  });
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(calls, 1);
  assert.equal(cpu.eax, 51);
});

test('code written at run time is seen (decoded-instruction cache invalidation)', () => {
  const cpu = run(`
    movl $1, %eax
    movb $0x42, patch + 1   /* turn "movl $1, %ebx" into "movl $0x42, %ebx" */
patch:
    movl $1, %ebx`);
  assert.equal(cpu.ebx, 0x42);
});

test('code rewritten inside a running loop is seen on the next pass (instruction links)', () => {
  // The loop runs four times. On the first pass the interpreter links the jump to its target and
  // each instruction to the one after it; the second pass follows those links and then rewrites
  // an immediate at the jump target (patch1) and one reached by falling through (patch2): the
  // third and fourth passes must use the new bytes, not the linked old instructions.
  const cpu = run(`
    xorl %ebx, %ebx
    movl $4, %ecx
1:
patch1:
    movl $1, %eax
    addl %eax, %ebx
patch2:
    movl $0x100, %edx
    addl %edx, %ebx
    cmpl $3, %ecx
    jne 2f
    movb $0x10, patch1 + 1
    movb $0x20, patch2 + 2
2:
    decl %ecx
    jnz 1b`);
  assert.equal(cpu.ebx, 1 + 1 + 0x10 + 0x10 + 0x100 + 0x100 + 0x2000 + 0x2000);
});

test('instruction links never cross a page: a remapped page runs its new code', () => {
  // A jump in page 0x2000 goes to \`back\` in page 0x1000 (the first instruction decoded in a page
  // is looked up while the fetch page is still the caller's). Between the two calls, linear page
  // 0x1000 is remapped from physical 0x1000 to a copy at 0x5000 whose \`back\` adds 0x2000000
  // instead of 0x1000000: a link from the jump to the old \`back\` would run the old code.
  const platform = testPlatform();
  const ram = new DataView(platform.ram.buffer);
  ram.setUint32(0x10000, 0x11000 | 3, true);
  for (let p = 0; p < 1024; p++) ram.setUint32(0x11000 + p * 4, (p << 12) | 3, true);
  const cpu = flatCpu(
    assemble(`
    movl $0x10000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    xorl %ebx, %ebx
    call back                       /* decoded and cached before the jump looks it up */
    call tail
    movl $0x5003, 0x11000 + 1 * 4   /* linear 0x1000 -> physical 0x5000 (the copy) */
    invlpg 0x1000
    call tail
    hlt
    .org 0x800
back:
    addl $0x1000000, %ebx
    ret
    .org 0x1000                     /* address 0x2000 */
tail:
    jmp back`),
    0x1000,
    platform,
  );
  platform.ram.copyWithin(0x5000, 0x1000, 0x2000);
  assert.equal(platform.ram[0x5805], 0x01, 'the immediate of back in the copy');
  platform.ram[0x5805] = 0x02;
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(cpu.ebx, 0x1000000 + 0x1000000 + 0x2000000);
});

test('random bytes at CPL 0 raise only architectural events, each counted once', () => {
  // Flat ring 0 with no GDT or IDT worth the name: whatever the bytes do, the monitor must see
  // only events the SDM defines (notArchitectural: vector, error code per Table 6-1), the run
  // must end normally (with a monitor nothing is delivered through the IDT, so no triple fault),
  // and the counters must count exactly the events the monitor saw. test/x86/fuzz.test.ts runs
  // the same check over more code (a GDT, CPL 3, compiled blocks); this is the quick one.
  let seed = 12345;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 24;
  };
  const wrong: string[] = [];
  const seen = { exception: 0, software: 0, interrupt: 0 };
  let instructions = 0;
  for (let round = 0; round < 50; round++) {
    const bytes = new Uint8Array(4096).map(() => rand());
    const cpu = flatCpu(bytes);
    let events = 0;
    cpu.attachMonitor({
      onEvent(e) {
        events++;
        seen[e.kind]++;
        const why = notArchitectural(e);
        if (why !== undefined) wrong.push(`round ${round}: ${why}`);
        // Skip ahead past whatever faulted; stay inside the random page.
        cpu.eip = 0x1000 + (rand() << 4);
        cpu.setCpl(0);
      },
    });
    const why = cpu.run(1e9, 2000);
    assert.ok(why === 'limit' || why === 'halt', `round ${round} ended with '${why}'`);
    const c = cpu.counters;
    const counted = c.exceptions.reduce((a, b) => a + b, 0) + c.softwareInterrupts + c.interrupts;
    assert.equal(counted, events, `round ${round}: events counted and seen`);
    assert.equal(c.monitorExits, events, `round ${round}: monitor exits`);
    instructions += c.instructions;
  }
  assert.deepEqual(wrong, []);
  assert.equal(seen.interrupt, 0);
  assert.ok(seen.exception > 100 && seen.software > 0, JSON.stringify(seen));
  assert.ok(instructions > 10_000, `${instructions} instructions`);
});

test('hint NOPs 0F 19-0F 1F (ENDBR32 among them) and PREFETCHh execute as NOPs; 0F 18 with a register is #UD', () => {
  // Memory operands that point nowhere: a NOP touches no memory, so nothing faults.
  const cpu = run(`
    endbr32
    .byte 0xf3, 0x0f, 0x1e, 0xfa     /* endbr64 */
    prefetchnta 0x7ffffff0
    prefetcht0 (%eax)
    .byte 0x0f, 0x18, 0x20           /* 0F 18 /4 (%eax): a hint NOP */
    .byte 0x0f, 0x19, 0x05, 0xf0, 0xff, 0xff, 0x7f
    .byte 0x0f, 0x1a, 0x00
    .byte 0x0f, 0x1b, 0xc1
    .byte 0x0f, 0x1c, 0x40, 0x10
    .byte 0x66, 0x0f, 0x1d, 0x04, 0x24
    .byte 0x0f, 0x1e, 0xc8
    nopl 0x12345678(%eax,%ebx,4)
    nopw (%eax)
    movl $7, %ecx`);
  assert.equal(cpu.ecx, 7);
  assert.equal(
    cpu.counters.exceptions.reduce((a, b) => a + b, 0),
    0,
  );
  assert.equal(cpu.counters.instructions, 14 + 1); // and the HLT

  const reg = flatCpu(assemble('.byte 0x0f, 0x18, 0xc0\n\thlt'));
  const events: CpuEvent[] = [];
  reg.attachMonitor({
    onEvent(e) {
      events.push(e);
      reg.eip += 3;
    },
  });
  assert.equal(reg.run(1e6), 'halt');
  assert.deepEqual(events, [{ kind: 'exception', vector: 6, errorCode: undefined }]);
});

test('MSR 0x8b (IA32_BIOS_SIGN_ID): writes are ignored and reads give 0, no microcode update', () => {
  // The sequence Linux runs on a family-6 Intel CPU (intel_get_microcode_revision).
  const cpu = run(`
    movl $0x8b, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    movl $1, %eax
    cpuid
    movl $0x8b, %ecx
    movl $-1, %eax
    movl $-1, %edx
    rdmsr
    movl $0x8b, %ecx
    movl $0x1234, %eax
    movl $0x5678, %edx
    wrmsr
    movl %eax, %esi
    rdmsr`);
  assert.equal(cpu.eax, 0);
  assert.equal(cpu.edx, 0);
  assert.equal(
    cpu.counters.exceptions.reduce((a, b) => a + b, 0),
    0,
  );
});

/** Runs `source`; every exception skips the 2-byte instruction that raised it, and is listed. */
function runSkippingFaults(source: string): { cpu: ReturnType<typeof flatCpu>; faults: number[] } {
  const cpu = flatCpu(assemble(`${source}\n\thlt`));
  const faults: number[] = [];
  cpu.attachMonitor({
    onEvent(e) {
      if (e.kind === 'exception') faults.push(e.vector);
      cpu.eip += 2;
    },
  });
  assert.equal(cpu.run(1e6), 'halt');
  return { cpu, faults };
}

test('IA32_MISC_ENABLE: reset value, writable bits read back, read-only bits kept, reserved #GP', () => {
  const { cpu, faults } = runSkippingFaults(`
    movl $0x1a0, %ecx
    rdmsr
    movl %eax, %esi
    movl $0x00c50009, %eax /* the msr test's value, bits 7, 11, 12 from the reset value */
    orl $0x1800, %eax
    movl $4, %edx
    wrmsr
    rdmsr
    movl %eax, %edi
    movl %edx, %ebp
    movl $0x2, %eax        /* bit 1: reserved */
    xorl %edx, %edx
    wrmsr
    movl $0x80, %eax       /* bit 7 (read-only) written as 1: kept at 0 */
    wrmsr
    rdmsr`);
  assert.equal(cpu.esi, 0x1801, 'fast strings; BTS and PEBS unavailable; no perf monitoring');
  assert.equal(cpu.edi, 0x00c51809);
  assert.equal(cpu.ebp, 4, 'bit 34 (XD disable)');
  assert.deepEqual(faults, [13]);
  assert.equal(cpu.eax, 0x1800);
});

test('IA32_EFER reads 0 and refuses any bit; IA32_APIC_BASE without an APIC is #GP', () => {
  const { cpu, faults } = runSkippingFaults(`
    movl $0xc0000080, %ecx
    movl $-1, %eax
    movl $-1, %edx
    rdmsr
    movl %eax, %esi
    movl %edx, %edi
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr                  /* 0: fine */
    movl $1, %eax          /* SCE: no SYSCALL here */
    wrmsr
    movl $0x1b, %ecx
    rdmsr`);
  assert.equal(cpu.esi, 0);
  assert.equal(cpu.edi, 0);
  assert.deepEqual(faults, [13, 13], 'EFER.SCE, then the APIC base on a platform without one');
});

test('RDPID: IA32_TSC_AUX into a register, announced by CPUID 7 ECX bit 22; RDSEED is #UD', () => {
  const { cpu, faults } = runSkippingFaults(`
    movl $7, %eax
    xorl %ecx, %ecx
    cpuid
    movl %ecx, %edi
    movl $0xc0000103, %ecx
    movl $0xbeef, %eax
    xorl %edx, %edx
    wrmsr
    rdpid %esi
    .byte 0x0f, 0xc7, 0xfb /* without F3: RDSEED %ebx, not offered (then sti: the fault skips 2) */`);
  assert.equal(cpu.edi & (1 << 22), 1 << 22, 'CPUID.7.0:ECX.RDPID');
  assert.equal(cpu.esi, 0xbeef);
  assert.deepEqual(faults, [6]);
});

test('RDTSCP: the TSC with IA32_TSC_AUX in ECX, announced by CPUID 0x80000001; RDPMC is #GP', () => {
  const { cpu, faults } = runSkippingFaults(`
    movl $0x80000000, %eax
    cpuid
    movl %eax, %ebp
    movl $0x80000001, %eax
    cpuid
    movl %edx, %edi
    movl $0xc0000103, %ecx
    movl $0x1234, %eax
    xorl %edx, %edx
    wrmsr
    xorl %ecx, %ecx
    rdtscp
    movl %ecx, %esi
    xorl %ecx, %ecx
    rdpmc`);
  assert.equal(cpu.ebp, 0x80000001, 'the highest extended leaf');
  assert.equal(cpu.edi, 1 << 27, 'RDTSCP');
  assert.equal(cpu.esi, 0x1234);
  assert.deepEqual(faults, [13], 'RDPMC: no counters');
});

test('LFENCE, MFENCE, SFENCE run (Linux fences its TSC-deadline writes); other 0F AE forms do not', () => {
  // Each form on its own 8-byte slot: a fault resumes at the next slot.
  const cpu = flatCpu(
    assemble(`
    movl %cr0, %eax
    andl $~0xc, %eax       /* EM and TS clear: the other forms are #UD, not #NM */
    movl %eax, %cr0
    movl $0x100, %ebx
    .balign 8
    lfence
    mfence
    .balign 8
    sfence
    incl %esi              /* reached: the three fences ran */
    .balign 8
    .byte 0x66, 0x0f, 0xae, 0xf0  /* 66 0F AE /6: TPAUSE, not offered */
    .balign 8
    .byte 0xf3, 0x0f, 0xae, 0xf0  /* F3 0F AE /6: UMONITOR, not offered */
    .balign 8
    clflush (%ebx)         /* CPUID has no CLFSH */
    .balign 8
    fxsave (%ebx)
    .balign 8
    .byte 0xf0, 0x0f, 0xae, 0xf0  /* LOCK MFENCE */
    .balign 8
    hlt`),
  );
  const faults: number[] = [];
  cpu.attachMonitor({
    onEvent(e) {
      if (e.kind !== 'exception') return;
      faults.push(e.vector);
      cpu.eip = (cpu.eip + 8) & ~7;
    },
  });
  assert.equal(cpu.run(1e6), 'halt');
  assert.equal(cpu.esi, 1);
  assert.deepEqual(faults, [6, 6, 6, 6, 6]);
  // With CR0.EM set (the maths emulator's machine) FXSAVE is #NM; the fences still run.
  const em = runSkippingFaults(`
    movl %cr0, %eax
    orl $4, %eax
    movl %eax, %cr0
    mfence
    incl %esi
    .byte 0x0f, 0xae, 0x03, 0xc0 /* fxsave (%ebx); the skip of 2 lands on 03 c0, add %eax, %eax */`);
  assert.equal(em.cpu.esi, 1);
  assert.deepEqual(em.faults, [7]);
});
