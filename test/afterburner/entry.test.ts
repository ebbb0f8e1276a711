// Kernel entry code in the style of Linux's entry.S through gcc -E (as a kernel build does with
// .S files): cpp macros that become several statements on a line, numeric labels shared with
// exception tables and fixup sections, gas macros. Every sensitive instruction annotated; the
// exception-table entries still point at the instruction that may fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterburn } from '../../src/afterburner/afterburn.ts';
import { verifyAnnotations } from '../../src/afterburner/verify.ts';
import { parseElf32, readPairs } from '../../src/afterburner/elf.ts';

test('Linux-style entry.S: preprocessed, afterburned, exception tables intact', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-entry-'));
  try {
    const pre = execFileSync('gcc', ['-m32', '-E', join(import.meta.dirname, 'gcc', 'entry.S')], {
      encoding: 'latin1',
    });
    const burned = afterburn(pre, { file: 'entry.s' });
    assert.deepEqual(burned.report.warnings, []);
    const s = join(dir, 'entry.s');
    writeFileSync(s, burned.text, 'latin1');
    execFileSync('as', ['--32', '-o', join(dir, 'entry.o'), s]);
    const elf = join(dir, 'entry.elf');
    execFileSync('ld', ['-m', 'elf_i386', '-e', '_start', '-o', elf, join(dir, 'entry.o')]);
    const bytes = readFileSync(elf);
    const r = verifyAnnotations(elf, bytes);
    assert.deepEqual(r.offenders, []);
    assert.ok(r.annotated >= 25, `${r.annotated}`);
    // Each exception-table entry's faulting address is the start of an annotated site.
    const sections = parseElf32(bytes).sections;
    const exTable = sections.find((x) => x.name === '__ex_table')!;
    const sites = new Set(
      readPairs(
        bytes,
        sections.find((x) => x.name === '.afterburn')!,
      ).map((p) => p.start),
    );
    const entries = readPairs(bytes, exTable);
    assert.equal(entries.length, 4);
    for (const e of entries)
      assert.ok(sites.has(e.start), `ex_table entry 0x${e.start.toString(16)}`);
    t.diagnostic(
      `entry.S: ${r.annotated} sites, ${entries.length} exception-table entries on sites`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
