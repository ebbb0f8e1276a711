// pushf and popf as the rewriter leaves them (calls into the window's stubs), run on the CPU in
// ring 1 as the guest kernel runs under the hypervisor: the arithmetic flags are the real ones,
// IF and IOPL the virtual CPU's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cpu } from '../x86/Cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../x86/segment.ts';
import { TEST_COSTS, testPlatform } from '../x86/testing.ts';
import { rewriteSites } from './rewriter.ts';
import { ENTRY_POPF_DELIVER, stubPage, STUB_PAGE, Vcpu, VCPU_PAGE } from './window.ts';

const CODE = 0x1000;
const VCPU_PHYS = 0x200000;
const STUB_PHYS = 0x201000;
const CF = 0x1;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;
const IF = 0x200;

/** A ring-1 CPU with paging: the first 4 MB one-to-one, the window's first two pages. */
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
  cpu.enterFlatProtectedMode();
  cpu.cr3 = pd;
  cpu.cr0 = 0x80010011;
  cpu.segs[CS].load(0x19, 0, 0xffffffff, 0xc0bb);
  for (const s of [SS, DS, ES, FS, GS]) cpu.segs[s].load(0x21, 0, 0xffffffff, 0xc0b3);
  cpu.setCpl(1);
  cpu.setEflags(0x202);
  cpu.esp = 0x80000;
  const vcpu = new DataView(ram.buffer, VCPU_PHYS, 4096);
  vcpu.setUint32(Vcpu.flags, 0x202, true);
  return { cpu, ram, vcpu };
}

/** Loads `code` at CODE with its pushf/popf sites rewritten, runs it to its final `jmp .`. */
function run(cpu: Cpu, ram: Uint8Array, code: number[], sites: [number, number][]): void {
  const image = Uint8Array.from(code);
  const r = rewriteSites(
    sites.map(([start, end]) => ({ kind: '', start: CODE + start, end: CODE + end })),
    (at, n) => image.slice(at - CODE, at - CODE + n),
  );
  assert.ok(typeof r !== 'string', String(r));
  ram.set(image, CODE);
  for (const p of r.patches) ram.set(p.bytes, p.at);
  cpu.eip = CODE;
  cpu.run(cpu.cycles + 100_000, 200);
  assert.equal(cpu.eip, CODE + code.length - 2, 'stopped at the final jmp');
}

const PUSHF_SITE = [0x9c, 0x90, 0x90, 0x90, 0x90, 0x90]; // 1 + 5 bytes of padding
const POPF_SITE = [0x9d, ...new Array<number>(21).fill(0x90)]; // 1 + 21

describe('pushf and popf under the in-place VMM', () => {
  it('keep CF, ZF, SF and OF across a pushf/popf pair; the pushed word has the virtual IF', () => {
    for (const virtualIf of [true, false]) {
      const { cpu, ram, vcpu } = ring1Cpu();
      vcpu.setUint32(Vcpu.flags, virtualIf ? 0x202 : 0x2, true);
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
      assert.equal(vcpu.getUint32(Vcpu.flags, true), virtualIf ? 0x202 : 0x2);
      assert.equal(cpu.esp, 0x80000, 'the stack is balanced');
    }
  });

  it('popf loads the virtual IF and IOPL from the word and keeps the real ones', () => {
    const { cpu, ram, vcpu } = ring1Cpu();
    const word = IF | 0x3000 | CF | 0x2;
    const code = [0x68, ...[word & 0xff, word >> 8, 0, 0], ...POPF_SITE, 0x9c, 0x5b, 0xeb, 0xfe];
    vcpu.setUint32(Vcpu.flags, 0x2, true);
    run(cpu, ram, code, [[5, 27]]);
    assert.equal(vcpu.getUint32(Vcpu.flags, true), 0x3202);
    assert.equal(cpu.ebx & (IF | 0x3000 | CF), IF | CF, 'real: IF on, IOPL 0, CF from the word');
  });

  it('popf that turns the virtual IF on with an interrupt pending goes to the delivery entry', () => {
    const { cpu, ram, vcpu } = ring1Cpu();
    vcpu.setUint32(Vcpu.flags, 0x2, true);
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
    assert.equal(vcpu.getUint32(Vcpu.flags, true), 0x202);
  });
});
