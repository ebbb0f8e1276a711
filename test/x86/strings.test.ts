/**
 * REP MOVS and REP STOS move whole runs inside a page when they can (ops/string.ts `bulk`): the
 * memory and registers must be what element-by-element execution gives, which this test
 * computes with its own byte-by-byte model, for runs that cross pages, overlap either way, are
 * unaligned, and write over code that runs next.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flatCpu } from '../../src/x86/testing.ts';
import { assemble } from './assemble.ts';

/** Element-by-element MOVS (forward) on a byte array. */
function movs(ram: Uint8Array, src: number, dst: number, count: number, size: number): void {
  for (let e = 0; e < count; e++) {
    const bytes = ram.slice(src + e * size, src + (e + 1) * size);
    ram.set(bytes, dst + e * size);
  }
}

function stos(ram: Uint8Array, dst: number, count: number, size: number, v: number): void {
  for (let k = 0; k < count * size; k++) ram[dst + k] = v >>> (8 * (k % size));
}

test('REP MOVS and REP STOS give element-by-element results', () => {
  const steps: [string, (ram: Uint8Array) => void][] = [
    [
      'movl $0x20000, %edi; movl $0x11223344, %eax; movl $3000, %ecx; rep stosl',
      (r) => stos(r, 0x20000, 3000, 4, 0x11223344),
    ],
    [
      'movl $0x23001, %edi; movb $0xab, %al; movl $5000, %ecx; rep stosb',
      (r) => stos(r, 0x23001, 5000, 1, 0xab),
    ],
    [
      'movl $0x25ffd, %edi; movw $0xbeef, %ax; movl $700, %ecx; rep stosw',
      (r) => stos(r, 0x25ffd, 700, 2, 0xbeef),
    ],
    [
      'movl $0x20000, %esi; movl $0x40003, %edi; movl $2600, %ecx; rep movsl',
      (r) => movs(r, 0x20000, 0x40003, 2600, 4),
    ],
    [
      'movl $0x40003, %esi; movl $0x40005, %edi; movl $3000, %ecx; rep movsw',
      (r) => movs(r, 0x40003, 0x40005, 3000, 2),
    ],
    [
      'movl $0x41001, %esi; movl $0x40ff0, %edi; movl $1500, %ecx; rep movsl',
      (r) => movs(r, 0x41001, 0x40ff0, 1500, 4),
    ],
    [
      'movl $0x23001, %esi; movl $0x23002, %edi; movl $4097, %ecx; rep movsb',
      (r) => movs(r, 0x23001, 0x23002, 4097, 1),
    ],
  ];
  const code = assemble(
    `${steps.map(([s]) => s).join('\n')}
    movl $patch_src, %esi        /* overwrite the immediate of the MOV below, then run it */
    movl $patch + 1, %edi
    movl $4, %ecx
    rep movsb
patch:
    movl $1, %ebx
    hlt
patch_src:
    .long 0x12345678`,
  );
  const cpu = flatCpu(code);
  const expected = new Uint8Array(cpu.ram.length);
  expected.set(code, 0x1000);
  assert.equal(cpu.run(1e9), 'halt');
  for (const [, model] of steps) model(expected);
  for (const [from, to] of [
    [0x20000, 0x28000],
    [0x3f000, 0x43000],
  ]) {
    const at = cpu.ram.subarray(from, to).findIndex((b, k) => b !== expected[from + k]);
    assert.equal(at, -1, `first difference at 0x${(from + at).toString(16)}`);
  }
  assert.equal(cpu.ebx, 0x12345678, 'the rewritten instruction ran with its new bytes');
  assert.equal(cpu.ecx, 0);
});
