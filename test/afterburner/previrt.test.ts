// Afterburned code behaves exactly as before on previrt's own CPU (raw hardware, no
// hypervisor): the CPU's ring-3 exercise (src/x86/fixtures/rings.S: lgdt, lidt, ljmp, segment
// loads, ltr, iret, popf/pushf, sgdt, smsw, cli and in faulting in ring 3, int, out, hlt) runs
// plainly and afterburned; the console output, the port writes and the faults must be the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterburn } from '../../src/afterburner/afterburn.ts';
import { verifyAnnotations } from '../../src/afterburner/verify.ts';
import { flatCpu, testPlatform } from '../../src/x86/testing.ts';

const fixture = join(import.meta.dirname, '..', '..', 'src', 'x86', 'fixtures', 'rings.S');

function build(dir: string, name: string, text: string): { bin: Uint8Array; elf: string } {
  const s = join(dir, `${name}.s`);
  const o = join(dir, `${name}.o`);
  writeFileSync(s, text, 'latin1');
  execFileSync('as', ['--32', '-o', o, s]);
  const layout = ['-m', 'elf_i386', '-Ttext=0x1000', '-Tdata=0x3000', '-Tbss=0x5000'];
  const bin = join(dir, `${name}.bin`);
  const elf = join(dir, `${name}.elf`);
  execFileSync('ld', [...layout, '--oformat', 'binary', '-o', bin, o]);
  execFileSync('ld', [...layout, '-e', '0x1000', '-o', elf, o]);
  return { bin: readFileSync(bin), elf };
}

function run(bin: Uint8Array): {
  text: string;
  outs: unknown;
  gp: number;
  result: string;
  instructions: number;
} {
  const platform = testPlatform();
  const cpu = flatCpu(bin, 0x1000, platform);
  const result = cpu.run(1e7);
  return {
    text: platform.text(),
    outs: platform.outs,
    gp: cpu.counters.exceptions[13] ?? 0,
    result,
    instructions: cpu.counters.instructions,
  };
}

test('the CPU ring-3 exercise behaves the same afterburned on previrt (raw hardware)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-cpu-'));
  try {
    const source = readFileSync(fixture, 'latin1');
    const burned = afterburn(source, { file: fixture });
    assert.ok(burned.report.total >= 15, `${burned.report.total} sites`);
    const plain = build(dir, 'plain', source);
    const after = build(dir, 'burned', burned.text);
    const a = run(plain.bin);
    const b = run(after.bin);
    assert.equal(a.result, 'halt');
    assert.ok(a.text.length > 0);
    assert.deepEqual({ ...b, instructions: 0 }, { ...a, instructions: 0 });
    // The afterburned build's padding runs as NOPs (more instructions, same effect).
    assert.ok(b.instructions > a.instructions);
    const v = verifyAnnotations(after.elf, readFileSync(after.elf));
    assert.deepEqual(v.offenders, []);
    assert.equal(v.annotated, burned.report.total);
    t.diagnostic(
      `rings.S: ${burned.report.total} sites; output ${JSON.stringify(a.text)} both ways; ${a.instructions} vs ${b.instructions} instructions`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
