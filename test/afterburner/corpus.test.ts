// The generated corpus, assembled and linked with GNU binutils and checked by
// verify-annotations: every sensitive instruction annotated after the afterburner, every one an
// offender without it; look-alikes untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterburn } from '../../src/afterburner/afterburn.ts';
import { verifyAnnotations } from '../../src/afterburner/verify.ts';
import { parseElf32 } from '../../src/afterburner/elf.ts';
import {
  buildCorpus,
  candidates,
  DATA_LOOKALIKES,
  filterValid,
  INTEL_LOOKALIKES,
  INTEL_SENSITIVE,
  LOOKALIKES,
  prefixed,
} from './corpus.ts';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** Assembles and links `text`; returns the ELF path. */
function link(dir: string, name: string, text: string): string {
  const src = join(dir, `${name}.s`);
  writeFileSync(src, text, 'latin1');
  run('as', ['--32', '-o', join(dir, `${name}.o`), src]);
  // .data low: 16-bit forms (`ljmpw $8,$sym`, addr16) need `sym` below 64 KB.
  const ldArgs = [
    '-m',
    'elf_i386',
    '-e',
    '_start',
    '--section-start=.data=0x2000',
    '-Ttext=0x100000',
  ];
  run('ld', [...ldArgs, '-o', join(dir, `${name}.elf`), join(dir, `${name}.o`)]);
  return join(dir, `${name}.elf`);
}

test('generated corpus: every sensitive instruction annotated, and every one an offender without the afterburner', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-corpus-'));
  try {
    const valid = filterValid(candidates());
    const validPrefixed = filterValid(valid.flatMap(prefixed));
    const corpus = buildCorpus(valid, validPrefixed);
    const burned = afterburn(corpus.text, { file: 'corpus.s' });
    assert.deepEqual(burned.report.warnings, []);
    // One line out for each line in: messages from as point at the right line.
    assert.equal(burned.text.split('\n').length, corpus.text.split('\n').length);

    const elf = link(dir, 'burned', burned.text);
    const ok = verifyAnnotations(elf, readFileSync(elf));
    assert.deepEqual(ok.offenders.slice(0, 5), []);
    assert.equal(ok.sensitive, corpus.sensitive);
    assert.equal(ok.annotated, corpus.sensitive);
    assert.equal(ok.sites, corpus.sensitive);

    const plain = link(dir, 'plain', corpus.text);
    const bad = verifyAnnotations(plain, readFileSync(plain));
    assert.equal(bad.sensitive, corpus.sensitive);
    assert.equal(bad.offenders.length, corpus.sensitive);
    t.diagnostic(
      `corpus: ${corpus.text.split('\n').length} lines, ${valid.length} instruction forms + ${validPrefixed.length} prefixed, ` +
        `${corpus.sensitive} sensitive instructions, ${burned.report.total} sites in the text, ${ok.annotated} annotated after linking, ` +
        `${burned.report.paddingBytes} bytes of padding (text sites)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('look-alikes pass through untouched and assemble to the same bytes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-look-'));
  try {
    const text = [
      '\t.text',
      '\t.globl _start',
      '_start:',
      ...LOOKALIKES.map((l) => `\t${l}`),
      '\t.data',
      ...DATA_LOOKALIKES.map((l) => `\t${l}`),
      'cli: sti: hlt: ds: cs: in: .long 0',
      '',
    ].join('\n');
    const burned = afterburn(text, { file: 'look.s' });
    assert.equal(burned.text, text);
    assert.equal(burned.report.total, 0);
    const elf = link(dir, 'look', text);
    const r = verifyAnnotations(elf, readFileSync(elf));
    assert.equal(r.sensitive, 0);
    assert.ok(
      parseElf32(readFileSync(elf)).sections.every((s) => !s.name.startsWith('.afterburn')),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Intel syntax regions: the same instructions in their other spelling', () => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-intel-'));
  try {
    const lines = ['\t.intel_syntax noprefix', '\t.text', '\t.globl _start', '_start:'];
    const text = [
      ...lines,
      ...[...INTEL_SENSITIVE, ...INTEL_LOOKALIKES].map((l) => `\t${l}`),
      '\t.att_syntax',
      '\tmovl %cr0, %eax',
      '',
    ].join('\n');
    const burned = afterburn(text, { file: 'intel.s' });
    assert.equal(burned.report.total, INTEL_SENSITIVE.length + 1);
    const elf = link(dir, 'intel', burned.text);
    const r = verifyAnnotations(elf, readFileSync(elf));
    assert.deepEqual(r.offenders, []);
    assert.equal(r.annotated, INTEL_SENSITIVE.length + 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('header sites: short or non-NOP padding is an offender', () => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-header-'));
  try {
    const site = (pad: string): string =>
      `771: movl %eax,(%edx); ${pad}; 772: ; .pushsection .afterburn.pte_set,"a"; .long 771b, 772b; .popsection`;
    const text = [
      '\t.text',
      '\t.globl _start',
      '_start:',
      site('.byte 0x66,0x0f,0x1f,0x44,0x00,0x00,0x66,0x0f,0x1f,0x44,0x00,0x00'),
      site('.byte 0x90,0x90'),
      site('.byte 0x8d,0xb4,0x26,0,0,0,0,0x8d,0x74,0x26,0x00,0x90'),
      '',
    ].join('\n');
    const elf = link(dir, 'header', text);
    const r = verifyAnnotations(elf, readFileSync(elf));
    assert.deepEqual(r.headerSites, { '.afterburn.pte_set': 3 });
    assert.deepEqual(
      r.offenders.map((o) => o.problem),
      ['header site: padding 2 bytes, needs 12', 'header site: padding is not all NOP'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
