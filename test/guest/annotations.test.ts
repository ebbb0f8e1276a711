// Static checks on the guest sources: page-table entries are only touched through the
// annotation header (DESIGN.md decision 8), and the report's figures come out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST } from './guest.ts';
import { headerUsingLines, sensitiveKind } from './report.ts';

test('no kernel line writes a page-table entry without an ab_ helper', () => {
  // An assignment statement whose target is *pte, *pde or an element of a directory or table
  // (declarations such as `pte_t *pte = vm_walk(...)` are not stores into an entry).
  const direct = /(^|[;{]\s*)(\*\s*(pte|pde)\b|\b(pgdir|kpgdir|pt)\[[^\]]*\])\s*(=[^=]|\|=|&=)/;
  const offenders: string[] = [];
  for (const f of readdirSync(join(GUEST, 'kernel'))) {
    if (!f.endsWith('.c')) continue;
    readFileSync(join(GUEST, 'kernel', f), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (direct.test(line.trim())) offenders.push(`kernel/${f}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(offenders, []);
});

test('the page-table code uses the annotation header', () => {
  const use = headerUsingLines();
  assert.ok((use.byFile.get('kernel/vm.c') ?? 0) > 5, JSON.stringify([...use.byFile]));
  assert.ok(use.lines >= (use.byFile.get('kernel/vm.c') ?? 0));
});

test('sensitive instruction kinds follow the afterburner list', () => {
  assert.equal(sensitiveKind('pushf', ''), 'pushf');
  assert.equal(sensitiveKind('popfl', ''), 'popf');
  assert.equal(sensitiveKind('out', '%al,(%dx)'), 'out');
  assert.equal(sensitiveKind('inb', '(%dx),%al'), 'in');
  assert.equal(sensitiveKind('mov', '%eax,%cr3'), 'mov crN/drN');
  assert.equal(sensitiveKind('mov', '%eax,%ds'), 'mov sreg');
  assert.equal(sensitiveKind('push', '%gs'), 'push/pop sreg');
  assert.equal(sensitiveKind('lgdtl', '(%eax)'), 'lgdt');
  assert.equal(sensitiveKind('ljmp', '$0x8,$0xc0100000'), 'ljmp');
  assert.equal(sensitiveKind('mov', '%eax,(%edx)'), undefined);
  assert.equal(sensitiveKind('push', '%ebp'), undefined);
});
