// cli, sti, pushf and popf as the rewriter leaves them (inline code and calls into the window's
// stubs), run on the CPU in ring 1 as the guest kernel runs under the hypervisor: the arithmetic
// flags are the real ones, IF and IOPL the virtual CPU's. Also cpuid, which reports the raw
// PC's processor.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { P4_2_8GHZ } from '../machine/costModel.ts';
import { Cpu } from '../x86/Cpu.ts';
import { CpuFault } from '../x86/fault.ts';
import { CS, DS, ES, FS, GS, SS } from '../x86/segment.ts';
import { cpuidLeaf, CPUID_FEATURE } from '../x86/system/instructions.ts';
import { TEST_COSTS, testPlatform, writeDescriptor, writeGate } from '../x86/testing.ts';
import type { VmmBackend } from './backend.ts';
import type { RewriteResult } from './rewriter.ts';
import { rewriteSites } from './rewriter.ts';
import { InPlaceVmm } from './Vmm.ts';
import { ENTRY_POPF_DELIVER, STUB_IRET, stubPage, STUB_PAGE, Vcpu, VCPU_PAGE } from './window.ts';

const CODE = 0x1000;
const VCPU_PHYS = 0x200000;
const STUB_PHYS = 0x201000;
const GDT = 0x6000;
const CF = 0x1;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;
const IF = 0x200;

/** A ring-1 CPU with paging: the first 4 MB one-to-one, the window's first two pages. */
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

function ring1Cpu(): { cpu: Cpu; ram: Uint8Array; vcpu: DataView } {
  const platform = testPlatform(8 << 20);
  const cpu = new Cpu(platform, TEST_COSTS);
  const ram = platform.ram;
  const v = new DataView(ram.buffer);
  const pd = 0x300000;
  const low = 0x301000;
  const win = 0x302000;
  for (let k = 0; k < 1024; k++) v.setUint32(low + k * 4, (k << 12) | 3, true);
  v.setUint32(win, VCPU_PHYS | 3, true);
  v.setUint32(win + 4, STUB_PHYS | 1, true);
  v.setUint32(pd, low | 3, true);
  v.setUint32(pd + (VCPU_PAGE >>> 22) * 4, win | 3, true);
  ram.set(stubPage(STUB_PAGE), STUB_PHYS);
  // The hypervisor's flat ring-1 segments (an IRET in ring 1 reloads CS from the GDT).
  writeDescriptor(ram, GDT + 0x18, 0, 0xfffff, 0xbb);
  writeDescriptor(ram, GDT + 0x20, 0, 0xfffff, 0xb3);
  cpu.enterFlatProtectedMode();
  cpu.gdtr = { base: GDT, limit: 0x27 };
  cpu.cr3 = pd;
  cpu.cr0 = 0x80010011;
  cpu.segs[CS].load(0x19, 0, 0xffffffff, 0xc0bb);
  for (const s of [SS, DS, ES, FS, GS]) cpu.segs[s].load(0x21, 0, 0xffffffff, 0xc0b3);
  cpu.setCpl(1);
  cpu.setEflags(0x202);
  cpu.esp = 0x80000;
  const vcpu = new DataView(ram.buffer, VCPU_PHYS, 4096);
  vcpu.setUint32(Vcpu.flags, 0x2, true);
  vcpu.setUint32(Vcpu.vif, IF, true);
  return { cpu, ram, vcpu };
}

/** Loads `code` at CODE with its sites (offsets into `code`) rewritten. */
function load(ram: Uint8Array, code: number[], sites: [number, number][]): RewriteResult {
  const image = Uint8Array.from(code);
  const r = rewriteSites(
    sites.map(([start, end]) => ({ kind: '', start: CODE + start, end: CODE + end })),
    (at, n) => image.slice(at - CODE, at - CODE + n),
  );
  assert.ok(typeof r !== 'string', String(r));
  ram.set(image, CODE);
  for (const p of r.patches) ram.set(p.bytes, p.at);
  return r;
}

/** Runs from CODE to the `jmp .` at `stop` (the code's end unless given). */
function go(cpu: Cpu, code: number[], stop = code.length - 2): void {
  cpu.eip = CODE;
  cpu.run(cpu.cycles + 100_000, 300);
  assert.equal(cpu.eip, CODE + stop, 'stopped at the final jmp');
}

function run(cpu: Cpu, ram: Uint8Array, code: number[], sites: [number, number][]): void {
  load(ram, code, sites);
  go(cpu, code);
}

const PUSHF_SITE = [0x9c, 0x90, 0x90, 0x90, 0x90, 0x90]; // 1 + 5 bytes of padding
const POPF_SITE = [0x9d, ...new Array<number>(21).fill(0x90)]; // 1 + 21

describe('pushf and popf under the in-place VMM', () => {
  it('keep CF, ZF, SF and OF across a pushf/popf pair; the pushed word has the virtual IF', () => {
    for (const virtualIf of [true, false]) {
      const { cpu, ram, vcpu } = ring1Cpu();
      vcpu.setUint32(Vcpu.vif, virtualIf ? IF : 0, true);
      const set = CF | ZF | SF | OF | 0x2;
      const code = [
        ...[0x68, set & 0xff, set >> 8, 0, 0, 0x9d], // pushl $flags; popfl (native: ring 1)
        ...PUSHF_SITE, // pushf (rewritten)
        ...[0x8b, 0x34, 0x24], // movl (%esp), %esi
        ...[0x31, 0xc0], // xorl %eax, %eax: ZF set, CF SF OF clear
        ...POPF_SITE, // popf (rewritten)
        ...[0x9c, 0x5b], // pushfl; popl %ebx (native: the real flags now)
        ...[0xeb, 0xfe],
      ];
      run(cpu, ram, code, [
        [6, 12],
        [17, 39],
      ]);
      const mask = CF | ZF | SF | OF;
      assert.equal(cpu.esi & mask, mask, `pushed word 0x${cpu.esi.toString(16)}`);
      assert.equal(cpu.esi & IF, virtualIf ? IF : 0, 'the pushed word shows the virtual IF');
      assert.equal(cpu.esi & 0x3000, 0, 'IOPL 0 as the guest set it');
      assert.equal(cpu.ebx & mask, mask, `real flags after popf 0x${cpu.ebx.toString(16)}`);
      assert.equal(cpu.ebx & IF, IF, 'the real IF stays on');
      assert.equal(vcpu.getUint32(Vcpu.flags, true), 0x2);
      assert.equal(vcpu.getUint32(Vcpu.vif, true), virtualIf ? IF : 0);
      assert.equal(cpu.esp, 0x80000, 'the stack is balanced');
    }
  });

  it('popf loads the virtual IF and IOPL from the word and keeps the real ones', () => {
    const { cpu, ram, vcpu } = ring1Cpu();
    const word = IF | 0x3000 | CF | 0x2;
    const code = [0x68, ...[word & 0xff, word >> 8, 0, 0], ...POPF_SITE, 0x9c, 0x5b, 0xeb, 0xfe];
    vcpu.setUint32(Vcpu.vif, 0, true);
    run(cpu, ram, code, [[5, 27]]);
    assert.equal(vcpu.getUint32(Vcpu.flags, true), 0x3002, 'the virtual IOPL');
    assert.equal(vcpu.getUint32(Vcpu.vif, true), IF, 'the virtual IF');
    assert.equal(cpu.ebx & (IF | 0x3000 | CF), IF | CF, 'real: IF on, IOPL 0, CF from the word');
  });

  it('popf that turns the virtual IF on with an interrupt pending goes to the delivery entry', () => {
    const { cpu, ram, vcpu } = ring1Cpu();
    vcpu.setUint32(Vcpu.vif, 0, true);
    vcpu.setUint32(Vcpu.pending, 1, true);
    let seen: number[] = [];
    cpu.bindEntry(ENTRY_POPF_DELIVER, () => {
      seen = [cpu.pop(4), cpu.pop(4)];
      cpu.push(seen[0], 4);
    });
    const word = IF | ZF | 0x2;
    const code = [0x68, ...[word & 0xff, word >> 8, 0, 0], ...POPF_SITE, 0xeb, 0xfe];
    run(cpu, ram, code, [[5, 27]]);
    assert.deepEqual(seen, [CODE + 10, word], "the call's return address and the popped word");
    assert.equal(vcpu.getUint32(Vcpu.vif, true), IF);
  });
});

// ---- cli and sti -----------------------------------------------------------------------------

const PF = 0x4;
const AF = 0x10;
const ARITHMETIC = CF | PF | AF | ZF | SF | OF;

/** EFLAGS after `cmpl b, a` (SDM 2A CMP: a − b, flags as SUB). */
function cmpFlags(a: number, b: number): number {
  const r = (a - b) >>> 0;
  let parity = 1;
  for (let v = r & 0xff; v !== 0; v >>>= 1) parity ^= v & 1;
  return (
    (a >>> 0 < b >>> 0 ? CF : 0) |
    (parity ? PF : 0) |
    ((a ^ b ^ r) & AF) |
    (r === 0 ? ZF : 0) |
    (r >>> 31 ? SF : 0) |
    (((a ^ b) & (a ^ r)) >>> 31 ? OF : 0)
  );
}

/**
 * A backend the cli/sti code never calls into, but for the iret: it resumes from the guest's
 * frame with the ring-1 selectors of this test's GDT, as the xen backend does with its own.
 */
function quietBackend(cpu: Cpu, hiddenCpuFeatures = 0): VmmBackend {
  const unexpected = (what: string) => (): never => {
    throw new Error(`the backend was asked to ${what}`);
  };
  return {
    name: 'test',
    hiddenCpuFeatures,
    stats: () => ({}),
    save: () => ({ kind: 'test', version: 1 }),
    restore: () => undefined,
    returnFromInterrupt: (toUser, eflags) => {
      const at = (offset: number): number => (cpu.segs[SS].base + cpu.esp + offset) >>> 0;
      cpu.writeLinear(at(4), 4, toUser ? 0x2b : 0x19);
      cpu.writeLinear(at(8), 4, ((eflags & ~0x3200) | 0x200) >>> 0);
      if (toUser) cpu.writeLinear(at(16), 4, 0x33);
      return STUB_IRET;
    },
    nowNs: () => 0,
    setTimer: unexpected('set a timer'),
    consoleWrite: unexpected('write the console'),
    shutdown: unexpected('shut down'),
    crash: (message) => {
      throw new Error(message);
    },
    idle: unexpected('idle'),
    haltForever: unexpected('halt'),
    setKernelStack: unexpected('set the kernel stack'),
    deviceEoi: unexpected('end a device interrupt'),
    enablePaging: unexpected('enable paging'),
    loadCr3: unexpected('load CR3'),
    invlpg: unexpected('invlpg'),
    pageTableWrite: unexpected('write a page table'),
    pageTableRead: unexpected('read a page table'),
    pageTableTestClear: unexpected('clear a page-table entry'),
  };
}

const CLI_SITE = [0xfa, ...new Array<number>(7).fill(0x90)]; // 1 + 7 bytes of padding
const STI_SITE = [0xfb, ...new Array<number>(23).fill(0x90)]; // 1 + 23
const IRET_SITE = [0xcf, 0x90, 0x90, 0x90, 0x90]; // 1 + 4
const IDT = 0x5000;
const TIMER_VECTOR = 0x20;

/**
 * An in-place VMM on `cpu` whose guest has an interrupt gate for the timer in its IDT (SDM 3A
 * 6.11) and its 8259 programmed at 0x20 (the timer at TIMER_VECTOR), CS loaded, virtual IF on.
 */
function timerVmm(
  cpu: Cpu,
  ram: Uint8Array,
  vcpu: DataView,
  calls: RewriteResult['calls'],
): InPlaceVmm {
  const vmm = new InPlaceVmm(cpu, P4_2_8GHZ.software, quietBackend(cpu), calls, vcpu, {
    entries: cpu.defaultEntries,
    kernelOffset: 0,
    rtcStartSeconds: 0,
    boot: { codeSelector: 0x08, dataSelector: 0x10 },
  });
  writeGate(ram, IDT + TIMER_VECTOR * 8, 0x10, CODE + HANDLER, 0xe, 0);
  vmm.idtr = { base: IDT, limit: 0x7ff };
  vmm.setSegment(CS, 0x10);
  for (const [port, value] of [
    [0x20, 0x11],
    [0x21, TIMER_VECTOR],
    [0x21, 0x04],
    [0x21, 0x01],
    [0x21, 0x00],
  ]) {
    vmm.platform.write(port, 1, value);
  }
  vmm.virtualIf = true;
  return vmm;
}

/**
 * cmpl %edx, %eax; cli; (real flags to %esi); sti; (real flags to %edi); setcc and jcc on the
 * flags of the cmp. The interrupt handler clobbers the flags and records its frame's EIP.
 */
const CLI_STI_CODE = [
  ...[0x39, 0xd0], //        0: cmpl %edx, %eax
  ...CLI_SITE, //            2: cli
  ...[0x9c, 0x5e], //       10: pushfl; popl %esi (native: the real flags)
  ...STI_SITE, //           12: sti (an interrupt pending: delivered here)
  ...[0x9c, 0x5f], //       36: pushfl; popl %edi
  ...[0x0f, 0x92, 0xc0], // 38: setb %al
  ...[0x0f, 0x94, 0xc4], // 41: sete %ah
  ...[0x0f, 0x98, 0xc2], // 44: sets %dl
  ...[0x0f, 0x90, 0xc6], // 47: seto %dh
  ...[0x0f, 0x9a, 0xc1], // 50: setp %cl
  ...[0x7c, 0x04], //       53: jl 59
  ...[0xb5, 0x00], //       55: movb $0, %ch
  ...[0xeb, 0x02], //       57: jmp 61
  ...[0xb5, 0x01], //       59: movb $1, %ch
  ...[0xeb, 0xfe], //       61: jmp .
  0x90, //                  63
  ...[0x31, 0xed], //       64: handler: xorl %ebp, %ebp (ZF PF set, CF SF OF clear)
  0xf9, //                  66: stc
  ...[0x8b, 0x2c, 0x24], // 67: movl (%esp), %ebp (the frame's EIP)
  ...IRET_SITE, //          70: iret
];
const CLI_STI_SITES: [number, number][] = [
  [2, 10],
  [12, 36],
  [70, 75],
];
const HANDLER = 64;
/** The frame's EIP of an interrupt delivered at the sti: its call to the check returns there. */
const AFTER_STI_CHECK = 12 + 12;

describe('cli and sti under the in-place VMM', () => {
  const cases: [number, number][] = [
    [1, 2], //                  CF SF PF AF
    [5, 5], //                  ZF PF
    [0x80000000, 1], //         OF PF AF
    [2, 1], //                  none
    [0x7fffffff, 0xffffffff], // CF SF OF
    [0x3, 0x10], //             CF SF
  ];
  for (const pending of [false, true]) {
    it(`keep CF, PF, AF, ZF, SF and OF from a cmp to setcc and jcc${pending ? ', delivering a pending interrupt at the sti' : ''}`, () => {
      for (const [a, b] of cases) {
        const { cpu, ram, vcpu } = ring1Cpu();
        const r = load(ram, CLI_STI_CODE, CLI_STI_SITES);
        const vmm = timerVmm(cpu, ram, vcpu, r.calls);
        if (pending) {
          // Raised before the cli: the inline cli is no safe point, the sti is the first.
          vmm.platform.pic.setIrq(0, true);
          vmm.platform.pic.setIrq(0, false);
          assert.ok(vmm.interruptPending);
        }
        cpu.eax = a;
        cpu.edx = b;
        cpu.ebp = 0xdeadbeef;
        go(cpu, CLI_STI_CODE, 61);

        const want = cmpFlags(a, b);
        const what = `cmp 0x${a.toString(16)}, 0x${b.toString(16)}`;
        assert.equal(cpu.esi & ARITHMETIC, want, `${what}: flags after cli`);
        assert.equal(cpu.edi & ARITHMETIC, want, `${what}: flags after sti`);
        const bit = (f: number): number => ((want & f) !== 0 ? 1 : 0);
        assert.equal(cpu.eax & 0xff, bit(CF), `${what}: setb`);
        assert.equal((cpu.eax >>> 8) & 0xff, bit(ZF), `${what}: sete`);
        assert.equal(cpu.edx & 0xff, bit(SF), `${what}: sets`);
        assert.equal((cpu.edx >>> 8) & 0xff, bit(OF), `${what}: seto`);
        assert.equal(cpu.ecx & 0xff, bit(PF), `${what}: setp`);
        assert.equal((cpu.ecx >>> 8) & 0xff, bit(SF) ^ bit(OF), `${what}: jl`);
        assert.equal(vmm.virtualIf, true, 'the virtual IF is on after the sti');
        assert.equal(cpu.esp, 0x80000, 'the stack is balanced');
        if (pending) {
          assert.equal(cpu.ebp, CODE + AFTER_STI_CHECK, 'delivered at the sti');
          assert.equal(vmm.counters.virtualInterrupts[TIMER_VECTOR], 1);
          assert.equal(vmm.interruptPending, false);
        } else {
          assert.equal(cpu.ebp, 0xdeadbeef, 'no interrupt');
          assert.deepEqual(vmm.counters.virtualInterrupts, {});
        }
      }
    });
  }

  it('cli turns the virtual IF off', () => {
    const { cpu, ram, vcpu } = ring1Cpu();
    const code = [...CLI_SITE, 0xeb, 0xfe];
    const r = load(ram, code, [[0, 8]]);
    const vmm = new InPlaceVmm(cpu, P4_2_8GHZ.software, quietBackend(cpu), r.calls, vcpu, {
      entries: cpu.defaultEntries,
      kernelOffset: 0,
      rtcStartSeconds: 0,
      boot: { codeSelector: 0x08, dataSelector: 0x10 },
    });
    vmm.virtualIf = true;
    go(cpu, code);
    assert.equal(vmm.virtualIf, false);
  });
});

describe('cpuid under the in-place VMM', () => {
  // The features a backend says it cannot offer (the xen backend's set).
  const XEN_HIDDEN =
    CPUID_FEATURE.PSE |
    CPUID_FEATURE.PGE |
    CPUID_FEATURE.SEP |
    CPUID_FEATURE.MSR |
    CPUID_FEATURE.DE;
  // cpuid; jmp . — the site is the instruction and the afterburner's 8 bytes of padding.
  const CPUID_CODE = [0x0f, 0xa2, ...new Array<number>(8).fill(0x90), 0xeb, 0xfe];
  const leaf = (eax: number): number[] => {
    const { cpu, ram, vcpu } = ring1Cpu();
    const r = load(ram, CPUID_CODE, [[0, 10]]);
    new InPlaceVmm(cpu, P4_2_8GHZ.software, quietBackend(cpu, XEN_HIDDEN), r.calls, vcpu, {
      entries: cpu.defaultEntries,
      kernelOffset: 0,
      rtcStartSeconds: 0,
      boot: { codeSelector: 0x08, dataSelector: 0x10 },
    });
    cpu.eax = eax;
    go(cpu, CPUID_CODE);
    return [cpu.eax, cpu.ebx, cpu.ecx, cpu.edx];
  };

  it("reports the raw PC's processor, without the features the backend does not offer", () => {
    const [max, b, c, d] = leaf(0);
    assert.equal(max, 1);
    const vendor = Buffer.alloc(12);
    vendor.writeUInt32LE(b >>> 0, 0);
    vendor.writeUInt32LE(d >>> 0, 4);
    vendor.writeUInt32LE(c >>> 0, 8);
    assert.equal(vendor.toString('latin1'), 'GenuineIntel');
    const [signature, , , features] = leaf(1);
    assert.equal(signature, 0x633, 'family 6, as on the raw PC');
    const [, , , raw] = cpuidLeaf(1);
    for (const name of ['TSC', 'CX8', 'CMOV'] as const)
      assert.ok((features & CPUID_FEATURE[name]) !== 0 && (raw & CPUID_FEATURE[name]) !== 0, name);
    for (const name of ['PSE', 'PGE', 'SEP', 'MSR', 'DE'] as const)
      assert.equal(features & CPUID_FEATURE[name], 0, `${name} is hidden`);
    assert.equal(features & 1, 0, 'no FPU');
  });
});

describe('the privileged instructions Linux has, under the in-place VMM', () => {
  const pad = (bytes: number[]): number[] => [...bytes, ...new Array<number>(8).fill(0x90)];
  const SITE_RDMSR = pad([0x0f, 0x32]);
  const UD_HANDLER = 0x800;
  /** Runs `sites` (each an instruction and 8 bytes of padding), then `jmp .`. */
  const exec = (sites: number[][], hidden = CPUID_FEATURE.MSR | CPUID_FEATURE.SEP) => {
    const { cpu, ram, vcpu } = ring1Cpu();
    const code = [...sites.flat(), 0xeb, 0xfe];
    const spans: [number, number][] = [];
    let at = 0;
    for (const s of sites) spans.push([at, (at += s.length)]);
    // #UD and #GP handlers: `jmp .` at UD_HANDLER and UD_HANDLER + 2.
    code.push(...new Array<number>(UD_HANDLER - code.length).fill(0x90), 0xeb, 0xfe, 0xeb, 0xfe);
    const r = load(ram, code, spans);
    const vmm = new InPlaceVmm(cpu, P4_2_8GHZ.software, quietBackend(cpu, hidden), r.calls, vcpu, {
      entries: cpu.defaultEntries,
      kernelOffset: 0,
      rtcStartSeconds: 0,
      boot: { codeSelector: 0x08, dataSelector: 0x10 },
    });
    writeGate(ram, IDT + 6 * 8, 0x10, CODE + UD_HANDLER, 0xe, 0);
    writeGate(ram, IDT + 13 * 8, 0x10, CODE + UD_HANDLER + 2, 0xe, 0);
    vmm.idtr = { base: IDT, limit: 0x7ff };
    return { cpu, ram, vmm, code, end: at };
  };
  const runTo = (cpu: Cpu, stop: number): void => {
    cpu.eip = CODE;
    cpu.run(cpu.cycles + 100_000, 300);
    assert.equal(cpu.eip, CODE + stop);
  };

  it('RDMSR and WRMSR raise #UD with the MSR feature hidden, #GP(0) without; at the instruction', () => {
    for (const [hidden, vector, stop] of [
      [CPUID_FEATURE.MSR, 6, UD_HANDLER],
      [0, 13, UD_HANDLER + 2],
    ] as const) {
      const { cpu, vmm } = exec([SITE_RDMSR], hidden);
      runTo(cpu, stop);
      const words = vector === 13 ? 4 : 3;
      const frame = Array.from({ length: words }, (_, k) => cpu.readLinear(cpu.esp + k * 4, 4));
      if (vector === 13) assert.equal(frame.shift(), 0, 'error code 0');
      assert.equal(
        frame[0],
        CODE,
        "the frame's EIP is the instruction's (an exception fixup finds it)",
      );
      assert.equal(vmm.counters.trapsForwarded[vector], 1);
    }
  });

  it('MONITOR, MWAIT, XSETBV raise #UD (CPUID offers neither); RDPMC #GP(0); SYSEXIT #UD without SEP', () => {
    for (const [site, stop] of [
      [pad([0x0f, 0x01, 0xc8]), UD_HANDLER],
      [pad([0x0f, 0x01, 0xc9]), UD_HANDLER],
      [pad([0x0f, 0x01, 0xd1]), UD_HANDLER],
      [pad([0x0f, 0x33]), UD_HANDLER + 2],
      [pad([0x0f, 0x35]), UD_HANDLER],
    ] as const) {
      const { cpu } = exec([site]);
      runTo(cpu, stop);
    }
  });

  it('CLTS, LMSW, SMSW work on the virtual CR0; debug registers keep what is written; RDTSCP', () => {
    const { cpu, vmm, end } = exec([
      pad([0x0f, 0x06]), //             clts
      pad([0x0f, 0x01, 0xe0]), //       smsw %eax
      pad([0x0f, 0x01, 0xf3]), //       lmsw %bx
      pad([0x0f, 0x23, 0xf9]), //       mov %ecx, %dr7
      pad([0x0f, 0x21, 0xf2]), //       mov %dr6, %edx
      pad([0x0f, 0x21, 0xee]), //       mov %dr5, %esi (DR7: CR4.DE is clear)
      pad([0x0f, 0x09]), //             wbinvd
      pad([0x0f, 0x01, 0xf9]), //       rdtscp (EDX:EAX, ECX last)
    ]);
    vmm.cr0 = 0x3b; // ET, TS, EM, MP, PE
    cpu.ebx = 0x0002; //                 lmsw: MP only; PE stays
    cpu.ecx = 0x00000401;
    runTo(cpu, end);
    assert.equal(vmm.cr0, 0x33, 'CLTS cleared TS; LMSW loaded MP, cleared EM, kept PE');
    assert.equal(cpu.ecx, 0, 'RDTSCP: TSC_AUX');
    assert.equal(cpu.edx, 0, 'the TSC is small here');
    assert.equal(cpu.esi, 0x401, 'DR5 is DR7');
    assert.equal(vmm.debug[6], 0xffff0ff0, 'DR6 as at reset');
    assert.equal(vmm.save().debug?.[7], 0x401, 'a snapshot holds the debug registers');
  });

  it('SMSW to memory, LSS/LFS load the offset and the virtual selector', () => {
    const { cpu, ram, vmm, end } = exec([
      pad([0x0f, 0x01, 0x25, ...le32(0x7000)]), //      smsw 0x7000
      pad([0x0f, 0xb2, 0x25, ...le32(0x7010)]), //      lss 0x7010, %esp
      pad([0x0f, 0xb4, 0x1d, ...le32(0x7020)]), //      lfs 0x7020, %ebx
    ]);
    const v = new DataView(ram.buffer);
    v.setUint32(0x7010, 0x00071234, true);
    v.setUint16(0x7014, 0x0018, true);
    v.setUint32(0x7020, 0xcafe0000, true);
    v.setUint16(0x7024, 0x00d8, true);
    vmm.cr0 = 0x80050033;
    runTo(cpu, end);
    assert.equal(v.getUint16(0x7000, true), 0x0033);
    assert.equal(cpu.esp, 0x00071234);
    assert.equal(vmm.segment(SS), 0x18);
    assert.equal(cpu.ebx, 0xcafe0000);
    assert.equal(vmm.segment(4), 0xd8);
  });
});

// ---- events into the guest kernel ---------------------------------------------------------------

describe('a trap reaches the guest kernel the same way from a bounced frame and from registers', () => {
  const HANDLER_EIP = 0x00123450;
  const TSS = 0x6000;
  const KERNEL_STACK = 0x70000;
  /** A VMM with a gate for #PF (an interrupt gate to selector 0x60) and the guest's TSS. */
  const setup = (userMode: boolean) => {
    const { cpu, ram, vcpu } = ring1Cpu();
    const r = load(ram, [0xeb, 0xfe], []);
    const vmm = new InPlaceVmm(cpu, P4_2_8GHZ.software, quietBackend(cpu), r.calls, vcpu, {
      entries: cpu.defaultEntries,
      kernelOffset: 0,
      rtcStartSeconds: 0,
      boot: { codeSelector: 0x08, dataSelector: 0x10 },
    });
    writeGate(ram, IDT + 14 * 8, 0x60, HANDLER_EIP, 0xe, 0);
    new DataView(ram.buffer).setUint32(TSS + 4, KERNEL_STACK, true); // esp0
    const state = vmm.save();
    // The guest kernel's own view: its IDT, its TSS, and whether it was in user mode.
    vmm.restore(
      {
        ...state,
        idtr: { base: IDT, limit: 0x7ff },
        tr: { selector: 0x28, base: TSS },
        userMode,
        userCs: 0x1b,
        userSs: 0x23,
      },
      'vmm',
    );
    vmm.virtualIf = true;
    return { cpu, vmm };
  };
  /** The frame at ESP: error code, EIP, CS, EFLAGS (and ESP, SS from user mode). */
  const frame = (cpu: Cpu, words: number): number[] =>
    Array.from({ length: words }, (_, k) => cpu.readLinear(cpu.esp + k * 4, 4));

  for (const userMode of [false, true]) {
    it(`from ${userMode ? 'user' : 'kernel'} mode`, () => {
      const words = userMode ? 6 : 4;
      const interrupted = { eip: 0x08048123, eflags: 0x202 | CF | ZF, esp: 0x7f000 };

      // As a bouncing hypervisor delivers it: its frame on the stack, its own selectors.
      const a = setup(userMode);
      a.cpu.esp = userMode ? KERNEL_STACK : interrupted.esp;
      if (userMode) {
        a.cpu.push(0x33, 4);
        a.cpu.push(interrupted.esp, 4);
      }
      a.cpu.push(interrupted.eflags, 4);
      a.cpu.push(userMode ? 0x2b : 0x19, 4);
      a.cpu.push(interrupted.eip, 4);
      a.cpu.push(6, 4);
      const fromFrame = a.vmm.trap({
        vector: 14,
        errorCode: 6,
        software: false,
        faultAddress: 0xdead0000,
        context: { kind: 'frame' },
      });

      // As a hypervisor that sends exceptions as messages delivers it: the registers.
      const b = setup(userMode);
      const fromRegisters = b.vmm.trap({
        vector: 14,
        errorCode: 6,
        software: false,
        faultAddress: 0xdead0000,
        context: { kind: 'registers', ...interrupted },
      });

      for (const [what, x, to] of [
        ['frame', a, fromFrame],
        ['registers', b, fromRegisters],
      ] as const) {
        assert.equal(to, HANDLER_EIP, `${what}: the gate's handler`);
        assert.equal(x.vmm.cr2, 0xdead0000, `${what}: CR2`);
        assert.equal(x.vmm.virtualIf, false, `${what}: an interrupt gate clears the virtual IF`);
        assert.equal(x.vmm.userMode, false, `${what}: the kernel runs the handler`);
        assert.equal(x.vmm.segment(CS), 0x60, `${what}: the gate's CS`);
        assert.equal(
          x.cpu.esp,
          (userMode ? KERNEL_STACK : interrupted.esp) - words * 4,
          `${what}: the frame is on the ${userMode ? "TSS's kernel" : 'current'} stack`,
        );
      }
      // The same frame, as the guest's own CPU would have pushed it (SDM 3A 6.12.1): the guest's
      // selectors, its EFLAGS with the virtual IF (on), the real arithmetic flags.
      const expected = [
        6,
        interrupted.eip,
        userMode ? 0x1b : 0x08,
        (interrupted.eflags & ~0x3200) | IF,
        ...(userMode ? [interrupted.esp, 0x23] : []),
      ];
      assert.deepEqual(frame(a.cpu, words), expected, 'the bounced frame, rewritten');
      assert.deepEqual(frame(b.cpu, words), expected, 'the frame pushed from the registers');
    });
  }
});

describe('an interrupt delivery that faults on the guest IDT page', () => {
  // On l4 the kernel thread's pages beyond the alias are mapped on demand (a migrated Linux's
  // IDT, in its fixmap, at first): the gate's read faults inside the delivery entry, which runs
  // again once the page is there (the CPU's bound-call rule puts the registers back, not memory
  // or the virtual PIC). The interrupt must still be pending then, and the return address the
  // retry pops where it was.
  for (const entry of ['onDeliver', 'onPopfDeliver'] as const) {
    it(`${entry}: the PIC not acknowledged and the stack as it was; delivered on the retry`, () => {
      const { cpu, ram, vcpu } = ring1Cpu();
      const r = load(ram, [0xeb, 0xfe], []);
      const vmm = timerVmm(cpu, ram, vcpu, r.calls);
      vmm.platform.pic.setIrq(0, true);
      vmm.platform.pic.setIrq(0, false);
      // The stack as the entry finds it: the return address (and popf's word).
      const ret = CODE + 0x40;
      const word = 0x246;
      if (entry === 'onPopfDeliver') cpu.push(word, 4);
      cpu.push(ret, 4);
      const esp = cpu.esp;
      const words = (): number[] => [0, 4].map((o) => cpu.readLinear(esp + o, 4) >>> 0);
      const before = words();
      // The IDT's page not present (the identity table's entry for it).
      const pte = 0x301000 + (IDT >>> 12) * 4;
      const view = new DataView(ram.buffer);
      const mapped = view.getUint32(pte, true);
      view.setUint32(pte, 0, true);
      const call = (): void => (vmm as unknown as Record<typeof entry, () => void>)[entry]();
      assert.throws(call, (e: unknown) => e instanceof CpuFault && e.vector === 14);
      assert.ok(vmm.interruptPending, 'still pending');
      assert.equal(vmm.platform.pic.master.isr, 0, 'not in service');
      assert.deepEqual(vmm.counters.virtualInterrupts, {});
      assert.deepEqual(words(), before, 'the return address (and the word) as they were');
      // The retry, as the CPU makes it: ESP back, the page mapped.
      cpu.esp = esp;
      view.setUint32(pte, mapped, true);
      call();
      assert.equal(vmm.counters.virtualInterrupts[TIMER_VECTOR], 1);
      assert.equal(vmm.platform.pic.master.isr, 1, 'IRQ 0 in service');
      // Popped the return address (and the word), pushed the frame and the handler's address.
      const frame = [0, 4, 8, 12].map((o) => cpu.readLinear(cpu.esp + o, 4) >>> 0);
      assert.equal(frame[0], CODE + HANDLER, 'to the handler');
      assert.equal(frame[1], ret, "the frame's EIP");
      assert.equal(frame[2], 0x10, "the frame's CS");
      assert.equal(frame[3] & IF, IF, "the frame's EFLAGS, IF on");
    });
  }
});
