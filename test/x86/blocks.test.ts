/**
 * Compiled blocks (src/x86/block.ts) against the interpreter: every program here runs twice,
 * once interpreted and once with blocks (compiled after two runs of an entry point), and must
 * leave the same registers, flags, memory, clock and counters — also when the run is cut into
 * slices of simulated time or instruction budgets that end inside blocks, when a block's own
 * code is rewritten, when an access in the middle of a block faults, and when a device raises an
 * interrupt from inside a block.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Cpu } from '../../src/x86/Cpu.ts';
import type { CpuEvent } from '../../src/x86/monitor.ts';
import { gp } from '../../src/x86/fault.ts';
import { DS } from '../../src/x86/segment.ts';
import { loadSegment } from '../../src/x86/system/descriptors.ts';
import {
  flatCpu,
  testPlatform,
  writeDescriptor,
  type TestPlatform,
} from '../../src/x86/testing.ts';
import { assemble } from './assemble.ts';

/** Everything a run leaves behind that blocks could get wrong. */
function snapshot(cpu: Cpu, ram: Uint8Array): unknown {
  let hash = 0;
  for (let k = 0; k < 0x100000; k++) hash = (Math.imul(hash, 31) + ram[k]) | 0;
  return {
    regs: [...cpu.regs],
    eip: cpu.eip,
    eflags: cpu.getEflags(),
    cycles: cpu.cycles,
    counters: cpu.counters,
    cr2: cpu.cr2,
    ram: hash,
  };
}

interface Twin {
  cpu: Cpu;
  platform: TestPlatform;
  /** What the test's own observer (monitor, device) recorded. */
  log: unknown[];
}

/**
 * Runs `code` on a fresh CPU with blocks on and off; `setup` attaches observers, `drive` runs
 * it (default: until HLT). Returns both, after checking that blocks actually ran.
 */
function twin(
  code: Uint8Array,
  drive: (cpu: Cpu) => unknown[] = (cpu) => [cpu.run(1e9)],
  setup: (t: Twin) => void = () => {},
): [Twin, Twin] {
  const runs = [false, true].map((blocks) => {
    const platform = testPlatform();
    const cpu = flatCpu(code, 0x1000, platform);
    cpu.blocksEnabled = blocks;
    cpu.blockThreshold = 2;
    cpu.blockBudget = Infinity; // every hot entry compiled
    const t: Twin = { cpu, platform, log: [] };
    setup(t);
    t.log.push(...drive(cpu));
    return t;
  });
  const [interpreted, compiled] = runs;
  assert.equal(interpreted.cpu.blockEntries, 0);
  assert.ok(compiled.cpu.blockEntries > 0, 'no block ran');
  assert.deepEqual(
    snapshot(compiled.cpu, compiled.platform.ram),
    snapshot(interpreted.cpu, interpreted.platform.ram),
  );
  assert.deepEqual(compiled.log, interpreted.log);
  assert.deepEqual(compiled.platform.outs, interpreted.platform.outs);
  return [interpreted, compiled];
}

/**
 * For the page-fault tests (paging on, CR3 = 0x80000): a directory whose first table maps the
 * first `present` pages one to one, and a monitor that logs `record` at each event and maps
 * the page at CR2, so that the access runs again.
 */
function mapOnFault(
  present: number,
  record: (e: CpuEvent, cpu: Cpu) => unknown[],
): (t: Twin) => void {
  return ({ cpu, platform, log }) => {
    const ram = new DataView(platform.ram.buffer);
    ram.setUint32(0x80000, 0x81000 | 3, true);
    for (let p = 0; p < present; p++) ram.setUint32(0x81000 + p * 4, (p << 12) | 3, true);
    cpu.attachMonitor({
      onEvent(e: CpuEvent) {
        log.push(...record(e, cpu));
        const page = cpu.cr2 >>> 12;
        ram.setUint32(0x81000 + page * 4, (page << 12) | 3, true);
      },
    });
  };
}

/** Loops over the forms the compiler writes out, and generic ones between them. */
const WORKLOAD = `
    movl $0x40000, %esi          /* data */
    movl $300, %ecx
1:  movl %ecx, %eax
    imull $0x9e3779b1, %eax, %eax
    movl %eax, (%esi,%ecx,4)
    movb %al, 0x2000(%esi,%ecx)
    movw %ax, 0x3000(%esi,%ecx,2)
    decl %ecx
    jnz 1b
    xorl %ebx, %ebx              /* checksum with every ALU form */
    movl $300, %ecx
2:  movl (%esi,%ecx,4), %eax
    imull $0x10001, %eax, %edx   /* CF and OF from the multiply ... */
    incl %edx                    /* ... kept by INC */
    setc %dl
    incl %edx
    incl %edx
    seto %dh
    adcl %edx, %ebp
    addl %eax, %ebx
    xorl $0x5a5a, %ebx
    orl (%esi,%ecx,4), %edx
    andl $0xfff0fff, %edx
    subl 4(%esi,%ecx,4), %ebx
    cmpl %eax, %ebx
    seta %dl
    setl %dh
    cmovbl %eax, %edi
    cmpl $0x1000, (%esi,%ecx,4)
    adcl $0, %ebp                /* generic: reads CF */
    movzbl 0x2000(%esi,%ecx), %eax
    movsbl 0x2000(%esi,%ecx), %edx
    addl %edx, %eax
    movzwl 0x3000(%esi,%ecx,2), %edx
    movswl %dx, %edx
    movzbl %ah, %eax
    shll $3, %eax                /* generic, registers only */
    roll %cl, %edx
    addl %eax, %ebx
    testl $1, %ecx
    jz 3f
    pushl %ebx
    pushl $0x1234
    call 5f
    addl $4, %esp
    popl %ebx
3:  cmpl $0, %ecx
    je 4f
    movl %ebx, %eax
    xorl %edx, %edx
    movl $7, %edi
    divl %edi                    /* generic, charges the divide's cost */
    addl %edx, %ebx
    decl %ecx
    jmp 2b
4:  movl %ebx, 0x40000
    cld                          /* REP MOVS ends a block */
    movl $0x40000, %esi
    movl $0x50000, %edi
    movl $100, %ecx
    rep movsl
    movl $0x50000, %esi
    hlt
5:  movl 4(%esp), %eax
    incl %eax
    movl %eax, 4(%esp)
    ret`;

/**
 * Runs a CPU to its HLT in slices of odd lengths and budgets (slice k: 1 + k % `cycles` cycles,
 * 1 + (k * `step`) % `budget` instructions), so that slices end at every position inside the
 * blocks; the EIP, clock (and with `flags`, EFLAGS) and reason after each, for at most `limit`
 * slices.
 */
function slices(
  cycles: number,
  step: number,
  budget: number,
  { flags = false, limit = 100_000 } = {},
): (cpu: Cpu) => unknown[] {
  return (cpu) => {
    const trace: unknown[] = [];
    for (let k = 0; cpu.halted === false && k < limit; k++) {
      const why = cpu.run(cpu.cycles + 1 + (k % cycles), 1 + ((k * step) % budget));
      if (flags) trace.push(cpu.eip, cpu.cycles, cpu.getEflags(), why);
      else trace.push(cpu.eip, cpu.cycles, why);
      if (why === 'halt') break;
    }
    return trace;
  };
}

test('blocks leave the interpreter’s registers, flags, memory, clock and counters', () => {
  const [, compiled] = twin(assemble(WORKLOAD));
  assert.equal(compiled.log[0], 'halt');
  assert.ok(compiled.cpu.counters.instructions > 10_000);
});

test('the compile budget: spent, hot entries wait; earned by code run in blocks', () => {
  const code = assemble(WORKLOAD);
  const run = (allowance: number, budget: number): Cpu => {
    const cpu = flatCpu(code, 0x1000, testPlatform());
    cpu.blockThreshold = 2;
    cpu.blockAllowance = allowance;
    cpu.blockBudget = budget;
    cpu.run(1e9);
    return cpu;
  };
  const free = run(0, Infinity);
  const none = run(0, 0);
  const one = run(1, 0); // the allowance lets the first block in, then nothing more is earned
  const earned = run(1, 1e6);
  assert.ok(free.blocksCompiled > 1);
  assert.equal(none.blocksCompiled, 0);
  assert.equal(none.blockEntries, 0);
  assert.equal(one.blocksCompiled, 1);
  assert.ok(one.blockSource > 1 && one.blockInstructions > 0);
  assert.ok(earned.blocksCompiled > 1 && earned.blocksCompiled <= free.blocksCompiled);
  const interpreted = flatCpu(code, 0x1000, testPlatform());
  interpreted.blocksEnabled = false;
  interpreted.run(1e9);
  for (const cpu of [free, none, one, earned]) {
    assert.deepEqual([...cpu.regs], [...interpreted.regs]);
    assert.equal(cpu.cycles, interpreted.cycles);
    assert.deepEqual(cpu.counters, interpreted.counters);
  }
});

test('slices of simulated time and instruction budgets that end inside blocks', () => {
  // Odd slice lengths and budgets, so slices end at every position inside the blocks (up to
  // MAX_LENGTH, 48 instructions, now that blocks follow CALLs and their RETs: slices of at
  // most 53 cycles let none of the workload's blocks in).
  const bySlices = slices(131, 7, 127);
  const [, compiled] = twin(assemble(WORKLOAD), bySlices);
  assert.ok(compiled.log.includes('halt'));
});

test('a store that rewrites an instruction later in the same block is seen at once', () => {
  // On the 100th pass the block that starts at 1 rewrites the immediate of the ADD that follows
  // the store in the same block: that ADD, on that pass already, must add the new value.
  const [interpreted] = twin(
    assemble(`
    xorl %ebx, %ebx
    movl $200, %ecx
1:  cmpl $100, %ecx
    jne patch
    movb $17, patch + 2
patch:
    addl $1, %ebx
    decl %ecx
    jnz 1b
    hlt`),
  );
  assert.equal(interpreted.cpu.ebx, 100 * 1 + 100 * 17);
});

test('a page fault in the middle of a block: the same EIP, CR2, clock and counters', () => {
  // Paging on; the loop walks a pointer up through pages and faults when it reaches one that is
  // not present. The monitor maps the page and lets the load run again.
  const code = assemble(`
    movl $0x80000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    movl $0x200000, %esi
    xorl %ebx, %ebx
    movl $3000, %ecx
1:  addl $1, %ebx
    movl (%esi), %eax
    addl %eax, %ebx
    addl $8, %esi
    decl %ecx
    jnz 1b
    hlt`);
  // 0–2 MB present, and 2 MB + one page; the pages after it fault on first use.
  const events = mapOnFault(513, (e, cpu) => [
    e,
    cpu.eip,
    cpu.cr2,
    cpu.cycles,
    cpu.counters.instructions,
    cpu.getEflags(),
  ]);
  const [, compiled] = twin(code, undefined, events);
  // Pages 0x201000 to 0x205000.
  assert.equal(compiled.log.filter((x) => typeof x === 'object' && x !== null).length, 5);
});

test('an interrupt a device raises from inside a block arrives after that instruction', () => {
  // Every store to the device page (MMIO) counts; the 300th raises the interrupt line. The
  // monitor records where the interrupt arrived (the instruction after the store) and lowers it.
  const code = assemble(`
    sti
    xorl %ebx, %ebx
    movl $400, %ecx
1:  addl $3, %ebx
    movl %ebx, 0x300000
    addl $5, %ebx
    decl %ecx
    jnz 1b
    hlt`);
  const device = ({ cpu, platform, log }: Twin): void => {
    cpu.markMmio(0x300000, 0x1000);
    let writes = 0;
    platform.mmioWrite = () => {
      if (++writes === 300) cpu.setInterruptLine(true);
    };
    cpu.attachMonitor({
      onEvent(e: CpuEvent) {
        log.push(e, cpu.eip, cpu.cycles, cpu.ebx);
        cpu.setInterruptLine(false);
      },
    });
  };
  const [interpreted] = twin(code, undefined, device);
  const [event, eip, , ebx] = interpreted.log;
  assert.deepEqual(event, { kind: 'interrupt', vector: 0x20 });
  assert.equal(ebx, 299 * 8 + 3, 'after the 300th store, before the ADD that follows it');
  assert.ok(typeof eip === 'number');
});

test('an entry point bound after its code was compiled into a block is called', () => {
  // g falls through into f; once both are hot, f is bound: calls to g must now reach the
  // handler at f (the block for g may not run past it).
  const code = assemble(`
    movl $50, %ecx
1:  call g
    decl %ecx
    jnz 1b
    hlt
g:  addl $1, %ebx
f:  addl $100, %ebx
    ret`);
  const bytes = [...code];
  const f = 0x1000 + bytes.length - 7; // "addl $100, %ebx" (6 bytes) and "ret"
  let calls = 0;
  const drive = (cpu: Cpu): unknown[] => {
    cpu.run(1e9, 100); // hot and compiled, half-way through the loop
    cpu.bindEntry(f, () => {
      calls++;
      cpu.ebx += 1000;
    });
    return [cpu.run(1e9)];
  };
  const [interpreted, compiled] = twin(code, drive);
  assert.equal(compiled.cpu.ebx, interpreted.cpu.ebx);
  assert.ok(calls > 0);
  assert.equal(calls % 2, 0, 'both runs called the handler the same number of times');
});

test('a segment register loaded inside a block ends it (the inline paths assume flat segments)', () => {
  // DS alternates between a flat segment and one based at 0x10000 inside the loop: the stores
  // through DS must land at base + offset.
  const [interpreted] = twin(
    assemble(`
    lgdt gdtr
    movl $300, %ecx
1:  pushl $0x18
    popl %ds                     /* base 0x10000 */
    movl %ecx, 0x100
    addl 0x104, %ebx
    pushl $0x10
    popl %ds                     /* flat */
    movl %ecx, 0x200
    decl %ecx
    jnz 1b
    hlt
    .align 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff     /* 0x08: flat code */
    .quad 0x00cf92000000ffff     /* 0x10: flat data */
    .quad 0x00cf92010000ffff     /* 0x18: data, base 0x10000 */
gdtr:
    .word 31
    .long gdt`),
  );
  const ram = new DataView(interpreted.platform.ram.buffer);
  assert.equal(ram.getUint32(0x10100, true), 1);
  assert.equal(ram.getUint32(0x200, true), 1);
});

test('shifts, rotates, NEG, ALU operations to memory, indirect calls and jumps inside blocks', () => {
  // Each result feeds a condition in the same block: ZF/SF after SHL/SHR/SAR come from their
  // result, after ROL/ROR/RCL/RCR and after any shift by 0 (in CL or as an immediate) from the
  // instruction before.
  const code = assemble(`
    movl $200, %edi
    xorl %ebx, %ebx
1:  movl %edi, %eax
    imull $0x9e3779b1, %eax, %eax
    movl %edi, %ecx
    andl $31, %ecx
    cmpl $7, %ecx
    shll %cl, %eax               /* CL is 0 one time in 32: ZF, SF from the CMP then */
    sete %dl
    sets %dh
    addl %edx, %ebx
    testl %eax, %eax
    rorl $5, %eax                /* ZF, SF still from the TEST; CF, OF from the rotate */
    setz %dl
    setc %dh
    adcl %edx, %ebx
    sarl $3, %eax
    setl %dl
    seto %dh
    addl %edx, %ebx
    shrl $0, %eax                /* a count of 0: no flag changes */
    setg %dl
    addl %edx, %ebx
    rcll $1, %eax
    sbbl %eax, %ebx
    roll %cl, %ebx
    shrl %eax
    jz 2f
    xorl %eax, %ebx
2:  negl %eax                    /* NEG: the flags of 0 - EAX */
    setc %dl
    setl %dh
    addl %edx, %ebx
    addl %eax, 0x40000(,%edi,4)  /* ALU to memory: read, operate, write; flags after */
    seto %dl
    subl $0x1234, 0x40000(,%edi,4)
    setb %dh
    xorl %ebx, 0x40000
    sets %cl
    orl $0x10, 0x40004
    andl %edi, 0x40008
    sete %ch
    addl %edx, %ebx
    addl %ecx, %ebx
    movl $3f, %eax               /* indirect calls and jumps end blocks */
    call *%eax
    movl $3f, 0x40010
    call *0x40010
    movl $4f, %eax
    jmp *%eax
3:  addl $3, %ebx
    ret
4:  decl %edi
    jnz 1b
    hlt`);
  twin(code);
});

test('SHL/SHR/SAR and ADC/SBB inline: their pending flags read by every condition, INC, ADC and the exits', () => {
  // Each shift leaves its flags pending in the block: Jcc, SETcc, CMOVcc, INC (keeps the
  // shift's CF), ADC (reads it), a taken branch out and the end of the block must see them; a
  // count of 0 in CL (one pass in 32) or on memory leaves the flags of the instruction before.
  const conditions = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np'];
  const more = ['l', 'ge', 'le', 'g'];
  const uses = (cc: string[]): string =>
    cc.map((c, n) => `set${c} %dl\n    addl %edx, %ebx\n    roll $${n + 1}, %ebx`).join('\n    ');
  const code = assemble(`
    movl $300, %edi
    xorl %ebx, %ebx
    xorl %edx, %edx
    movl $0x9e3779b1, %esi
1:  movl %edi, %eax
    imull $0x9e3779b1, %eax, %eax
    movl %eax, 0x40000(,%edi,4)
    shrl $3, %eax
    ${uses(conditions)}
    shll $1, %eax
    ${uses(more)}
    sarl $7, %eax
    ${uses(conditions)}
    shll $31, %esi
    ${uses(more)}
    cmovbl %eax, %ebp
    cmovol %esi, %ebp
    shrl $1, %esi
    incl %eax                    /* CF from the SHR stays */
    adcl $0, %ebx
    shll $4, %eax
    adcl %eax, %ebx              /* carry in from the SHL */
    adcl 0x40000(,%edi,4), %ebx
    sbbl %edi, %ebx
    sbbl $7, %eax
    ${uses(conditions)}
    adcl %esi, %eax
    ${uses(more)}
    sbbl 0x40000(,%edi,4), %edx
    setb %cl
    adcl %ebx, 0x40000(,%edi,4)  /* ADC, SBB to memory */
    sbbl $1, 0x40004(,%edi,4)
    setc %ch
    addl %ecx, %ebx
    movl %edi, %ecx
    andl $31, %ecx
    cmpl $9, %ecx
    shrl %cl, %eax               /* CL 0: the CMP's flags */
    seta %dl
    sarl %cl, 0x40000(,%edi,4)   /* on memory, by CL */
    setl %dh
    shll $5, 0x40004(,%edi,4)    /* on memory, by an immediate */
    setc %cl
    shrl 0x40008(,%edi,4)
    sets %ch
    addl %edx, %ebx
    addl %ecx, %ebx
    movl %edi, %ecx
    andl $3, %ecx
    cmpl $0, 0x40000(,%edi,4)
    shll $0, 0x40008(,%edi,4)    /* a count of 0: no flag changes */
    sbbl %eax, %ebx
    shrl $2, %eax
    jc 2f                        /* leaves the block with the shift's flags pending */
    shll $3, %esi
    jo 2f
    sarl $2, %ebx
    jl 2f
    shrl $5, %edx
2:  adcl %eax, %ebx
    decl %edi
    jnz 1b
    shrl $3, %ebx                /* pending at the end of the block: HLT reads no flag */
    hlt`);
  twin(code);
  const bySlices = slices(37, 5, 47, { flags: true, limit: 200_000 });
  twin(code, bySlices);
});

test('8- and 16-bit ALU, TEST and MOV forms, NOT, BSWAP and hint NOPs inside blocks', () => {
  // Their flags go to the CPU at once; the conditions after them, and ADC/SBB reading CF from
  // a pending 32-bit producer before them, must see what the interpreter sees.
  const code = assemble(`
    movl $300, %edi
    xorl %ebx, %ebx
    xorl %edx, %edx
1:  movl %edi, %eax
    imull $0x9e3779b1, %eax, %eax
    movl %eax, 0x40000(,%edi,4)
    nopw 0x0(%eax,%eax,1)
    movl %eax, %ecx
    bswap %ecx
    addb %cl, %al
    setc %dl
    seto %dh
    addl %edx, %ebx
    shrl $3, %ecx                /* CF pending for the ADC */
    adcb %ah, %bl
    setbe %dl
    sbbw %cx, %bx
    setl %dh
    addl %edx, %ebx
    cmpb 0x40000(,%edi,4), %ch
    seta %dl
    setg %dh
    addl %edx, %ebx
    testb $0x80, %al
    jz 2f
    subw $0x1234, %si
    andb $0x3f, %ah
    orw 0x40002(,%edi,4), %cx
    sets %dl
    setp %dh
    addl %edx, %ebx
2:  testw %cx, %ax
    setne %dl
    xorb %dl, 0x40001(,%edi,4)   /* on memory: read, operate, write */
    setns %dh
    addw $0x4321, 0x40002(,%edi,4)
    seto %dl
    adcb $1, 0x40003(,%edi,4)
    setc %dh
    addl %edx, %ebx
    cmpw $0x8000, 0x40002(,%edi,4)
    setge %dl
    testb %bl, 0x40001(,%edi,4)
    setz %dh
    addl %edx, %ebx
    movw %bx, 0x40002(,%edi,4)
    movw $0x55aa, 0x40006(,%edi,4)
    movw 0x40000(,%edi,4), %si
    movb %bh, %dl
    movb $0x9c, %ch
    movb $7, %al
    movw %si, %cx
    notl %ecx
    xorl %ecx, %ebx
    addl 0x40000(,%edi,4), %ebx
    addl %esi, %ebx
    decl %edi
    jnz 1b
    hlt`);
  twin(code);
});

test('direct JMPs a block follows: forward, backward, into code the block ran, and as its last instruction', () => {
  // The block from 1 follows the JMPs to 3, 2 and 4 (forward and backward in the page); the
  // JMP back to 2 goes to an instruction the block has already, so there the block leaves.
  // Run whole and in slices that end everywhere inside the blocks.
  const code = assemble(`
    movl $300, %edi
    xorl %ebx, %ebx
1:  movl %edi, %eax
    andl $7, %eax
    jmp 3f
2:  addl %eax, %ebx
    cmpl $5, %eax
    jb 5f
    jmp 4f
3:  imull $0x9e3779b1, %eax, %ecx
    xorl %ecx, %ebx
    jmp 2b
4:  roll $3, %ebx
    subl $5, %eax
    jmp 2b
5:  incl %ebx
    movl %ebx, 0x40000(,%edi,4)
    decl %edi
    jnz 1b
    hlt`);
  const [, compiled] = twin(code);
  assert.equal(compiled.log[0], 'halt');
  const bySlices = slices(37, 5, 43);
  twin(code, bySlices);
});

test('direct CALLs a block follows into its page, and their RETs: a fault on the push', () => {
  // The block from 1 follows the CALLs to 2 and 3 (in the page): the return address goes to
  // the stack, the block goes on in the callee, and at its RET back after the CALL (the address
  // popped is the one pushed). Run whole and in slices; then
  // with paging on and the stack moving down into pages that are not present, so that the
  // push of a followed CALL faults in the middle of a block (the monitor maps the page).
  const code = assemble(`
    movl $400, %edi
    xorl %ebx, %ebx
1:  movl %edi, %eax
    call 2f
    addl %eax, %ebx
    call 3f
    decl %edi
    jnz 1b
    hlt
2:  imull $0x9e3779b1, %eax, %eax
    xorl %eax, %ebx
    ret
3:  roll $5, %ebx
    movl %ebx, 0x40000(,%edi,4)
    ret`);
  const [, compiled] = twin(code);
  assert.equal(compiled.log[0], 'halt');
  // The loop is one block (1, 2, the ADD, 3, the DEC and JNZ back to 1) that loops inside its
  // function: a few block runs in all, where five a pass were before blocks followed CALLs
  // and three before they followed RETs.
  assert.ok(compiled.cpu.blockEntries < 10, `${compiled.cpu.blockEntries} block runs`);
  twin(code, slices(37, 5, 43));
  // A callee that returns elsewhere (it rewrites its return address): the block leaves at
  // the RET for the address popped.
  const elsewhere = assemble(`
    movl $300, %ecx
    xorl %ebx, %ebx
1:  movl %ecx, %eax
    call 2f
    incl %ebx
3:  addl %eax, %ebx
    decl %ecx
    jnz 1b
    hlt
2:  testl $1, %eax
    jz 4f
    movl $3b, (%esp)
4:  ret`);
  twin(elsewhere);
  twin(elsewhere, slices(37, 5, 43));
  const paged = assemble(`
    movl $0x80000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    movl $0x20a000, %esp
    xorl %ebx, %ebx
    movl $60, %ecx
1:  subl $0x100, %esp
    movl %ecx, %eax
    call 2f
    decl %ecx
    jnz 1b
    hlt
2:  addl %eax, %ebx
    roll $3, %ebx
    ret`);
  // 0–2 MB present; the stack's pages above it fault on first use.
  const events = mapOnFault(512, (e, cpu) => [
    e,
    cpu.eip,
    cpu.cr2,
    cpu.esp,
    cpu.cycles,
    cpu.counters.instructions,
  ]);
  const [, faulted] = twin(paged, undefined, events);
  // The pushes go from 0x209efc down to 0x2064fc: pages 0x209 (the first pass, interpreted)
  // down to 0x206 (in the loop's block, at 2 runs of an entry point compiled).
  assert.equal(faulted.log.filter((x) => typeof x === 'object' && x !== null).length, 4);
});

test('blocks that follow each other across code pages: CALL, JMP and RET, with code-TLB misses between', () => {
  // Paging on; the loop in the first page calls f in the second, which jumps to h in the third,
  // and g in the third; every 16th pass an INVLPG drops g's translation, so the block that calls
  // g finds no code-TLB entry for it and the loop walks the page tables (a counted TLB miss).
  // Whole, and in slices that end everywhere inside the blocks.
  const code = assemble(`
    movl $0x80000, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    xorl %ebx, %ebx
    movl $400, %ecx
1:  call f
    addl %eax, %ebx
    testl $15, %ecx
    jnz 2f
    invlpg g
2:  call g
    decl %ecx
    jnz 1b
    hlt
    .balign 4096
f:  movl %ecx, %eax
    imull $0x9e3779b1, %eax, %eax
    jmp h
    .balign 4096
g:  xorl %eax, %ebx
    roll $5, %ebx
    ret
h:  addl $7, %eax
    ret`);
  const paging = ({ platform }: Twin): void => {
    const ram = new DataView(platform.ram.buffer);
    ram.setUint32(0x80000, 0x81000 | 3, true);
    for (let p = 0; p < 512; p++) ram.setUint32(0x81000 + p * 4, (p << 12) | 3, true);
  };
  const [interpreted, compiled] = twin(code, undefined, paging);
  assert.equal(compiled.log[0], 'halt');
  assert.ok(interpreted.cpu.counters.tlbMisses > 25, 'the INVLPGs made code-TLB misses');
  const bySlices = slices(41, 7, 47);
  twin(code, bySlices, paging);
});

test('a bound entry called between blocks, its handler changing what the blocks depend on', () => {
  // A block calls the bound entry f; the handler adds to EBX and now and then charges the
  // clock, raises the interrupt line, loads a DS that is not flat (the blocks' inline memory
  // paths may not run) and back, or faults (#GP at the entry, then called again). The monitor
  // records every event and lowers the line.
  const code = assemble(`
    sti
    movl $0x40000, %esi
    movl $600, %ecx
1:  movl %ecx, %eax
    andl $3, %eax
    addl %eax, %ebx
    call f
    movl %ebx, (%esi,%ecx,4)
    xorl %eax, %ebx
    decl %ecx
    jnz 1b
    hlt
f:  ret`);
  const f = 0x1000 + code.length - 1;
  const entry = ({ cpu, log }: Twin): void => {
    let calls = 0;
    cpu.bindEntry(f, () => {
      calls++;
      if (calls === 13 || calls === 401) throw gp(0);
      cpu.ebx = (cpu.ebx + calls) | 0;
      if (calls % 7 === 0) cpu.charge(50);
      if (calls % 11 === 0) cpu.setInterruptLine(true);
      if (calls % 17 === 0) loadSegment(cpu, DS, calls % 34 === 0 ? 0x10 : 0x18);
    });
    cpu.attachMonitor({
      onEvent(e: CpuEvent) {
        log.push(e, cpu.eip, cpu.cycles, cpu.ebx, calls);
        cpu.setInterruptLine(false);
      },
    });
  };
  const setup = (t: Twin): void => {
    // GDT at 0x70000: flat code and data (0x08, 0x10) and data based at 0x10000 (0x18).
    const ram = t.platform.ram;
    writeDescriptor(ram, 0x70008, 0, 0xfffff, 0x9a);
    writeDescriptor(ram, 0x70010, 0, 0xfffff, 0x92);
    writeDescriptor(ram, 0x70018, 0x10000, 0xfffff, 0x92);
    t.cpu.gdtr = { base: 0x70000, limit: 0x1f };
    entry(t);
  };
  const [interpreted, compiled] = twin(code, undefined, setup);
  assert.equal(compiled.log.at(-1), 'halt');
  assert.ok(interpreted.log.filter((x) => typeof x === 'object' && x !== null).length > 50);
  const bySlices = slices(43, 3, 53);
  twin(code, bySlices, setup);
});

test('blocks that end before rarely reached code and before another block’s head', () => {
  // The JNZ skips the ADDs in all but one pass of 64: at a threshold of 16 or more the block
  // from 1 ends before them (the interpreter reached them a 64th as often as its head), and at
  // 2 it ends before the head of the block that starts there. Run whole and in slices.
  const adds = Array.from({ length: 24 }, (_, k) => `addl $${k + 1}, %ebx`).join('\n');
  const code = assemble(`
    movl $3000, %ecx
    xorl %ebx, %ebx
1:  movl %ecx, %eax
    andl $63, %eax
    jnz 2f
    ${adds}
2:  addl %ecx, %ebx
    movl %ebx, 0x40000(,%eax,4)
    decl %ecx
    jnz 1b
    hlt`);
  const interpreted = flatCpu(code, 0x1000, testPlatform());
  interpreted.blocksEnabled = false;
  interpreted.run(1e9);
  for (const threshold of [16, 64]) {
    for (const sliced of [false, true]) {
      const platform = testPlatform();
      const cpu = flatCpu(code, 0x1000, platform);
      cpu.blockThreshold = threshold;
      cpu.blockBudget = Infinity;
      if (sliced) {
        for (let k = 0; cpu.halted === false && k < 100_000; k++) {
          if (cpu.run(cpu.cycles + 1 + (k % 37), 1 + ((k * 5) % 43)) === 'halt') break;
        }
      } else cpu.run(1e9);
      assert.ok(cpu.blockEntries > 0, `threshold ${threshold}: no block ran`);
      assert.ok(cpu.halted);
      assert.deepEqual([...cpu.regs], [...interpreted.regs]);
      assert.equal(cpu.getEflags(), interpreted.getEflags());
      assert.equal(cpu.cycles, interpreted.cycles);
      assert.deepEqual(cpu.counters, interpreted.counters);
    }
  }
  // At threshold 2 nothing is cut for heat (a head's heat is 2): the loop's block holds the
  // ADDs, and the source compiled is larger.
  const source = (threshold: number): number => {
    const cpu = flatCpu(code, 0x1000, testPlatform());
    cpu.blockThreshold = threshold;
    cpu.blockBudget = Infinity;
    cpu.run(1e9);
    return cpu.blockSource;
  };
  assert.ok(source(16) < source(2), `${source(16)} characters at 16, ${source(2)} at 2`);
});

test('a block that reaches the head of a short block takes that block’s instructions in whole', () => {
  // B (at 2) is entered only through JMP *%esi while the first loop runs, so it becomes a
  // block of its own (3 instructions). The second loop's block (at 4) then reaches B's head
  // through its JMP and takes B in whole: one block run per pass where two were, with the
  // interpreter's results, whole and in slices.
  const code = assemble(`
    xorl %ebx, %ebx
    movl $2f, %esi
    movl $1f, %edi
    movl $200, %ecx
1:  decl %ecx
    jz 3f
    jmp *%esi
2:  addl %ecx, %ebx
    xorl $0x55, %ebx
    jmp *%edi
3:  movl $4f, %edi
    movl $300, %ecx
4:  decl %ecx
    jz 5f
    roll $3, %ebx
    addl $7, %ebx
    jmp 2b
5:  hlt`);
  const interpreted = flatCpu(code, 0x1000, testPlatform());
  interpreted.blocksEnabled = false;
  interpreted.run(1e9);
  for (const sliced of [false, true]) {
    const cpu = flatCpu(code, 0x1000, testPlatform());
    cpu.blockThreshold = 16;
    cpu.blockBudget = Infinity;
    if (sliced) {
      for (let k = 0; cpu.halted === false && k < 100_000; k++) {
        if (cpu.run(cpu.cycles + 1 + (k % 37), 1 + ((k * 5) % 43)) === 'halt') break;
      }
    } else {
      cpu.run(1e9);
      // The first loop: about 2 block runs a pass (its own block, B); the second: 1.
      assert.ok(cpu.blockEntries > 2 * 150 + 250, `${cpu.blockEntries} block runs`);
      assert.ok(cpu.blockEntries < 2 * 200 + 300 + 40, `${cpu.blockEntries} block runs`);
    }
    assert.ok(cpu.halted);
    assert.deepEqual([...cpu.regs], [...interpreted.regs]);
    assert.equal(cpu.getEflags(), interpreted.getEflags());
    assert.equal(cpu.cycles, interpreted.cycles);
    assert.deepEqual(cpu.counters, interpreted.counters);
  }
});
