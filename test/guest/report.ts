// The guest's figures: sensitive sites in each kernel by kind, the annotation sections, and how
// many lines of the guest use the annotation header (DESIGN.md decision 8).
// Usage: node --import tsx test/guest/report.ts   (npm run guest:report)
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GUEST,
  ROOT,
  kernelPath,
  make,
  type Variant,
} from './guest.ts';

/** Sensitive instructions as the afterburner treats them (reference/afterburner.md), by kind. */
export function sensitiveKind(mnemonic: string, operands: string): string | undefined {
  const m = mnemonic.replace(/^(rep|repz|repnz)\s+/, '');
  if (/^(pushf|popf|pushfl|popfl|cli|sti|hlt|iret|iretl|lret|clts|invlpg|cpuid|ud2|invd|wbinvd|rsm)$/.test(m))
    return m.replace(/l$/, '').replace(/^iret$/, 'iret');
  if (/^(lgdt|sgdt|lidt|sidt|lldt|sldt|ltr|str|smsw|lmsw|arpl|lar|lsl|rdmsr|wrmsr)l?$/.test(m))
    return m.replace(/l$/, '');
  if (/^(lds|les|lfs|lgs|lss)$/.test(m)) return m;
  if (/^(in|out)[bwl]?$/.test(m)) return m.startsWith('in') ? 'in' : 'out';
  if (/^(ins|outs)[bwl]?$/.test(m)) return m.startsWith('ins') ? 'ins' : 'outs';
  if (/^(ljmp|lcall)/.test(m)) return m.replace(/l$/, '').replace(/^ljmpl?/, 'ljmp');
  if (m === 'int' || m === 'int3' || m === 'into') return 'int';
  const seg = /%(cs|ds|es|fs|gs|ss)\b/;
  const ctl = /%(cr[0-4]|db[0-7])\b/;
  if (/^mov[wl]?$/.test(m) && ctl.test(operands)) return 'mov crN/drN';
  if (/^mov[wl]?$/.test(m) && seg.test(operands)) return 'mov sreg';
  if (/^(push|pop)[wl]?$/.test(m) && seg.test(operands)) return 'push/pop sreg';
  return undefined;
}

interface Insn {
  address: number;
  mnemonic: string;
  operands: string;
}

function disassemble(elf: string): Insn[] {
  const r = spawnSync('objdump', ['-d', '--no-show-raw-insn', '-w', elf], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`objdump failed on ${elf}: ${r.stderr}`);
  const out: Insn[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ address: parseInt(m[1], 16), mnemonic: m[2], operands: m[3] });
  }
  return out;
}

/** Every section whose name starts with `.afterburn`, with its {start, end} records (ELF32
 * section headers: System V ABI, "Sections"). */
function annotationSections(elf: string): Map<string, Array<[number, number]>> {
  const f = readFileSync(elf);
  const shoff = f.readUInt32LE(0x20);
  const shentsize = f.readUInt16LE(0x2e);
  const shnum = f.readUInt16LE(0x30);
  const shstrndx = f.readUInt16LE(0x32);
  const header = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: f.readUInt32LE(o), offset: f.readUInt32LE(o + 0x10), size: f.readUInt32LE(o + 0x14) };
  };
  const strtab = header(shstrndx).offset;
  const sections = new Map<string, Array<[number, number]>>();
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    const end = f.indexOf(0, strtab + h.name);
    const name = f.toString('latin1', strtab + h.name, end);
    if (!name.startsWith('.afterburn')) continue;
    const records: Array<[number, number]> = [];
    for (let o = h.offset; o + 8 <= h.offset + h.size; o += 8)
      records.push([f.readUInt32LE(o), f.readUInt32LE(o + 4)]);
    sections.set(name, records);
  }
  return sections;
}

function countBy<T>(items: T[], key: (t: T) => string | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of items) {
    const k = key(t);
    if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1);
  }
  return new Map([...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

function table(title: string, counts: Map<string, number>): string {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const rows = [...counts].map(([k, v]) => `  ${k.padEnd(28)} ${String(v).padStart(5)}`);
  return [`${title}: ${total}`, ...rows].join('\n');
}

/** Lines of guest C that call an annotation helper (ab_pte_set, ab_mmio_read32, ...). */
export function headerUsingLines(): { lines: number; byFile: Map<string, number> } {
  const byFile = new Map<string, number>();
  let lines = 0;
  for (const dir of ['kernel', 'user', 'lib']) {
    for (const f of readdirSync(join(GUEST, dir))) {
      if (!/\.[ch]$/.test(f)) continue;
      const n = readFileSync(join(GUEST, dir, f), 'utf8')
        .split('\n')
        .filter((l) => /\bab_(pte|pgd|mmio)_\w+\s*\(|#include\s+"afterburn\.h"/.test(l)).length;
      if (n) byFile.set(`${dir}/${f}`, n);
      lines += n;
    }
  }
  return { lines, byFile };
}

function report(variant: Variant): string {
  const elf = kernelPath(variant);
  const insns = disassemble(elf);
  const parts = [`== ${variant}: ${elf.slice(ROOT.length + 1)}`];
  parts.push(table('sensitive instructions in the kernel, by kind', countBy(insns, (i) => sensitiveKind(i.mnemonic, i.operands))));
  const byAddress = new Map(insns.map((i) => [i.address, i]));
  const sections = annotationSections(elf);
  const sectionCounts = new Map([...sections].map(([name, recs]) => [name, recs.length]));
  parts.push(table('annotation records, by section', sectionCounts));
  const generic = sections.get('.afterburn');
  if (generic) {
    parts.push(
      table(
        'afterburner sites (.afterburn), by instruction at the site',
        countBy(generic, ([start]) => {
          const i = byAddress.get(start);
          return i ? (sensitiveKind(i.mnemonic, i.operands) ?? i.mnemonic) : 'not an instruction start';
        }),
      ),
    );
  }
  return parts.join('\n');
}

/**
 * A para-virtualized port's size against the raw kernel (issue 14): its files, each beside the
 * PC platform file(s) it replaces with the lines a diff adds and removes (git diff --no-index),
 * the shared kernel's lines that exist for ports (preprocessor lines naming ARCH_ and the
 * #else/#endif that close them), and the Makefile's section for the ports without the other
 * port's lines (what this port would need alone).
 */
const XEN_PAIRS: [string, string[]][] = [
  ['entry.S', ['entry.S']],
  ['setup.c', []],
  ['trapasm.S', ['trapasm.S']],
  ['gdt.c', ['gdt.c']],
  ['evtchn.c', ['pic.c']],
  ['time.c', ['timer.c', 'cmos.c']],
  ['xencons.c', ['uart.c']],
  ['pci.c', ['pci.c']],
  ['vm.c', ['vm.c']],
  ['x86.h', ['x86.h']],
  ['mmu.h', []],
  ['xen.h', []],
  ['afterburn.h', []],
  ['arch_selftest.h', []],
  ['kernel.ld', ['kernel.ld']],
];

const L4_PAIRS: [string, string[]][] = [
  ['entry.S', ['entry.S']],
  ['setup.c', ['gdt.c', 'pic.c', 'uart.c', 'cmos.c']],
  ['trapasm.S', ['trapasm.S']],
  ['task.c', []],
  ['time.c', ['timer.c']],
  ['pci.c', ['pci.c']],
  ['vm.c', ['vm.c']],
  ['x86.h', ['x86.h']],
  ['mmu.h', []],
  ['l4.h', []],
  ['l4para.h', []],
  ['afterburn.h', []],
  ['arch_selftest.h', []],
  ['kernel.ld', ['kernel.ld']],
];

const PORTS = [
  { name: 'xen-para', what: 'the kernel para-virtualized for xen', pairs: XEN_PAIRS },
  { name: 'l4-para', what: 'the kernel para-virtualized for l4', pairs: L4_PAIRS },
];

function lineCount(path: string): number {
  return readFileSync(path, 'utf8').split('\n').length - 1;
}

/** Lines added and removed from `from` (the raw kernel's files, concatenated) to `to`. */
function diffLines(from: string[], to: string): { added: number; removed: number } {
  if (from.length === 0) return { added: lineCount(to), removed: 0 };
  const joined = from.map((f) => readFileSync(f, 'utf8')).join('');
  const r = spawnSync('git', ['diff', '--no-index', '--numstat', '--', '-', to], {
    input: joined,
    encoding: 'utf8',
  });
  const m = /^(\d+)\s+(\d+)/.exec(r.stdout);
  if (m === null) throw new Error(`git diff --no-index failed: ${r.stderr}`);
  return { added: Number(m[1]), removed: Number(m[2]) };
}

/** Lines of shared kernel sources that exist only so that a port can replace a part. */
function portHookLines(): Map<string, number> {
  const byFile = new Map<string, number>();
  for (const f of readdirSync(join(GUEST, 'kernel'))) {
    if (!/\.[chS]$/.test(f)) continue;
    const stack: boolean[] = [];
    let n = 0;
    for (const line of readFileSync(join(GUEST, 'kernel', f), 'utf8').split('\n')) {
      const d = /^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b/.exec(line);
      if (d === null) {
        if (/\bARCH_[A-Z]+\b/.test(line)) n++;
        continue;
      }
      if (d[1].startsWith('if')) stack.push(/\bARCH_[A-Z]+\b/.test(line));
      const ours = stack[stack.length - 1] === true;
      if (ours) n++;
      if (d[1] === 'endif') stack.pop();
    }
    if (n) byFile.set(`kernel/${f}`, n);
  }
  return byFile;
}

export function portReport(name: string, what: string, pairs: [string, string[]][]): string {
  const port = join(GUEST, 'arch', name);
  const others = PORTS.map((p) => p.name).filter((n) => n !== name);
  const rows: string[] = [];
  let total = 0;
  let added = 0;
  let removed = 0;
  for (const [file, raw] of pairs) {
    const n = lineCount(join(port, file));
    const d = diffLines(
      raw.map((r) => join(GUEST, 'kernel', r)),
      join(port, file),
    );
    total += n;
    added += d.added;
    removed += d.removed;
    const against = raw.length === 0 ? 'new' : `vs kernel/${raw.join(' + kernel/')}`;
    rows.push(`  ${file.padEnd(16)} ${String(n).padStart(5)}   +${d.added} -${d.removed} (${against})`);
  }
  const listed = new Set(pairs.map(([f]) => f));
  const unlisted = readdirSync(port).filter((f) => f !== 'README.md' && !listed.has(f));
  if (unlisted.length > 0) rows.push(`  (not counted: ${unlisted.join(', ')})`);
  const hooks = portHookLines();
  const hookLines = [...hooks.values()].reduce((a, b) => a + b, 0);
  const makefile = readFileSync(join(GUEST, 'Makefile'), 'utf8').split('\n');
  const from = makefile.findIndex((l) => l.startsWith('# ---- the para-virtualized port'));
  const to = makefile.findIndex((l, k) => k > from && l.startsWith('clean:'));
  const makeLines =
    from < 0 || to < 0
      ? 0
      : makefile
          .slice(from, to)
          .filter((l) => l.trim() !== '' && !others.some((o) => l.includes(o))).length;
  return [
    `== ${name}: guest/arch/${name} (${what})`,
    `port files: ${total} lines; against the raw kernel's files they replace: +${added} -${removed}`,
    ...rows,
    table('lines of the shared kernel that exist for ports (ARCH_ hooks)', hooks),
    `Makefile lines for the port: ${makeLines}`,
    `in all, the port adds ${added + hookLines + makeLines} lines and removes ${removed} against the raw kernel ` +
      `(port files ${added}, shared-source hooks ${hookLines}, Makefile ${makeLines})`,
  ].join('\n');
}

function main(): number {
  const out: string[] = [];
  if (!make('native').ok) {
    console.error('guest report: make -C guest native failed');
    return 1;
  }
  out.push(report('native'));
  if (!make('afterburned').ok) out.push('== afterburned: make -C guest afterburned failed');
  else {
    out.push(report('afterburned'));
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), 'verify-annotations', kernelPath('afterburned')], { encoding: 'utf8' });
    out.push(`previrt verify-annotations: exit ${r.status}\n${r.stdout}${r.stderr}`.trimEnd());
  }
  const header = readFileSync(join(ROOT, 'src', 'afterburner', 'include', 'afterburn.h'), 'utf8').split('\n').length - 1;
  const use = headerUsingLines();
  out.push(
    `annotation header src/afterburner/include/afterburn.h: ${header} lines\n` +
      table('guest lines that use the annotation header', use.byFile),
  );
  for (const p of PORTS) out.push(portReport(p.name, p.what, p.pairs));
  console.log(out.join('\n\n'));
  return 0;
}

if (import.meta.filename === process.argv[1]) process.exitCode = main();
