/**
 * The afterburner: one pass over GNU as (AT&T) assembly that finds every sensitive instruction,
 * pads it with NOPs and records the site, passing everything else through byte for byte.
 *
 * A site is written on the instruction's own line, so line numbers in the output match the
 * input (assembler messages point at the right line):
 *
 *     77701: cli; .byte 0x0f,...; 77702: ; .pushsection .afterburn,"a"; .balign 4;
 *            .long 77701b, 77702b; .popsection
 *
 * Numeric local labels give every expansion of a macro or `.rept` body its own site. The
 * in-place VMM reads the {start, end} pairs of `.afterburn` (afterburn-wedge/common/bind.h in
 * the original). `.afterburn_noannotate` ... `.afterburn_annotate` regions are left alone and
 * recorded as {start, end} pairs in `.afterburn_noannotate`.
 */
import {
  classify,
  classifyIntel,
  OPERAND_DEPENDENT,
  PADDING,
  PREFIXES,
  SENSITIVE,
  type SiteKind,
} from './sensitive.ts';
import { nopDirective } from './nops.ts';
import { AfterburnError, type AfterburnReport } from './report.ts';
import {
  isIdent,
  mentionsSpecialRegister,
  skipChar,
  skipString,
  splitOperands,
} from './operands.ts';

export { AfterburnError, formatReport, type AfterburnReport } from './report.ts';

export interface AfterburnOptions {
  /** Name used in messages. */
  file?: string;
  /** Reads the file of an `.include` directive; null when not found (the directive is kept). */
  include?: (name: string, fromFile: string) => { path: string; text: string } | null;
}

const START = '77701';
const END = '77702';
const NA_START = '77703';
const NA_END = '77704';

/** Segment, control, debug and test registers, for the check inside macro bodies. */
const SPECIAL_REGISTERS = [
  ...['cs', 'ds', 'es', 'fs', 'gs', 'ss'],
  ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => `cr${n}`),
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((n) => [`db${n}`, `dr${n}`]),
  ...[3, 4, 5, 6, 7].map((n) => `tr${n}`),
].map((r) => '%' + r);

/**
 * First two characters (lower-cased) of every word that can start a sensitive instruction: a
 * cheap filter that lets the common instructions of compiler output pass without a lookup.
 */
const CANDIDATE_STARTS: ReadonlySet<number> = new Set(
  [...SENSITIVE.keys(), ...OPERAND_DEPENDENT, ...PREFIXES].map(
    (w) => ((w.charCodeAt(0) | 0x20) << 8) | (w.charCodeAt(1) | 0x20),
  ),
);

/** Characters that make a line more than one plain statement: ; # " ' / */
const SPECIAL_CHARS = [';', '#', '"', "'", '/'];

interface Edit {
  at: number;
  del: number;
  text: string;
}

function record(section: string, start: string, end: string): string {
  return `.pushsection ${section},"a"; .balign 4; .long ${start}b, ${end}b; .popsection`;
}

/** The gas macro that decides a statement that is only a macro parameter (`\op`). */
const DEFER_MACRO = '__previrt_ab_insn';

/**
 * Its one-line definition: the parameter's text is compared (`.ifc`) with each sensitive
 * mnemonic that takes no operands (`rdmsr`, `cli`, `pushfl`, ...); a match becomes a site with
 * that kind's padding and leaves the macro (`.exitm` closes its conditionals); anything else is
 * assembled as it is. gas splits a line at `;` before it invokes a macro, so a parameter holding
 * several statements passes only its first here.
 */
function deferMacro(padding: (n: number) => string): string {
  const byPad = new Map<number, string[]>();
  for (const [mnemonic, entry] of SENSITIVE) {
    if (entry.shape !== 'none' || !/^[a-z0-9]+$/.test(mnemonic)) continue;
    const pad = PADDING[entry.kind];
    byPad.set(pad, [...(byPad.get(pad) ?? []), mnemonic]);
  }
  const pads = [...byPad.keys()].sort((a, b) => a - b);
  const checks = pads
    .flatMap((pad) =>
      byPad.get(pad)!.map((m) => `.ifc \\insn,${m}; .set .Lab_pad, ${pad}; .endif; `),
    )
    .join('');
  const sites = pads
    .map(
      (pad, k) =>
        `${k === 0 ? '.if' : '.elseif'} .Lab_pad == ${pad}; ${START}: \\insn; ${padding(pad)}; ` +
        `${END}: ; ${record('.afterburn', START, END)}; .exitm; `,
    )
    .join('');
  // Anything else comes last and outside every conditional: a parameter that opens a block
  // (`.rept \nr; call 772f; ...; .endr`, Linux's FILL_RETURN_BUFFER) takes the rest of its
  // line as gas goes on reading after the expansion.
  return `.macro ${DEFER_MACRO} insn:vararg; .set .Lab_pad, 0; ${checks}${sites}.endif; \\insn; .endm; `;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0c || c === 0x0b;
}

/** State of one afterburner run; `.include` files share it with the file that includes them. */
class Burner {
  readonly report: AfterburnReport = {
    sites: {},
    total: 0,
    paddingBytes: 0,
    noannotateRegions: 0,
    notAnnotated: 0,
    deferred: 0,
    warnings: [],
  };
  /** A statement went to DEFER_MACRO: the output must define it. */
  deferUsed = false;
  private code16 = false;
  /** `.intel_syntax`: operands without `%` and `$`, far jumps spelled `jmp far`. */
  private intel = false;
  private macroDepth = 0;
  private noannotate = false;
  private readonly macroNames = new Set<string>();
  // Per text being processed:
  private text = '';
  private file = '';
  private line = 0;
  private edits: Edit[] = [];
  private pendingPrefix = -1;
  private inBlockComment = false;
  /** Next position of each SPECIAL_CHARS character at or after the current line (indexOf). */
  private nextSpecial: number[] = [];
  /** `.byte` padding directives already built, by size (and mode). */
  private readonly padCache = new Map<number, string>();

  constructor(private readonly options: AfterburnOptions) {}

  run(text: string, file: string): string {
    const saved = {
      text: this.text,
      file: this.file,
      line: this.line,
      edits: this.edits,
      pending: this.pendingPrefix,
      comment: this.inBlockComment,
      special: this.nextSpecial,
    };
    this.text = text;
    this.file = file;
    this.edits = [];
    this.pendingPrefix = -1;
    this.inBlockComment = false;
    this.nextSpecial = SPECIAL_CHARS.map(() => -1);
    this.line = 0;
    const len = text.length;
    let pos = 0;
    while (pos < len) {
      let nl = text.indexOf('\n', pos);
      if (nl < 0) nl = len;
      this.line++;
      this.scanLine(pos, nl);
      pos = nl + 1;
    }
    const edits = this.edits;
    let out: string;
    if (edits.length === 0) out = text;
    else {
      const parts: string[] = [];
      let last = 0;
      for (const e of edits) {
        parts.push(text.slice(last, e.at), e.text);
        last = e.at + e.del;
      }
      parts.push(text.slice(last));
      out = parts.join('');
    }
    this.text = saved.text;
    this.file = saved.file;
    this.line = saved.line;
    this.edits = saved.edits;
    this.pendingPrefix = saved.pending;
    this.inBlockComment = saved.comment;
    this.nextSpecial = saved.special;
    return out;
  }

  finish(): string {
    if (!this.noannotate) return '';
    // An unclosed region ends with the file; say so rather than guess silently.
    this.report.warnings.push(`${this.file}: .afterburn_noannotate is never closed; closed at end`);
    this.noannotate = false;
    return `\n${NA_END}: ${record('.afterburn_noannotate', NA_START, NA_END)}\n`;
  }

  fail(message: string): never {
    throw new AfterburnError(this.file, this.line, message);
  }

  /** Splits one physical line [from, to) into statements and handles each. */
  private scanLine(from: number, to: number): void {
    const t = this.text;
    let i = from;
    if (this.inBlockComment) {
      const close = t.indexOf('*/', from);
      if (close < 0 || close >= to) return;
      this.inBlockComment = false;
      i = close + 2;
    }
    // Fast path: a line with no quote, comment or separator is one statement.
    if (!this.hasSpecial(i, to)) {
      this.statement(i, to);
      return;
    }
    // A `/` first on a line starts a comment (gas i386 line_comment_chars), unless it is `/*`.
    let k = i;
    while (k < to && isSpace(t.charCodeAt(k))) k++;
    if (k === from && t.charCodeAt(k) === 0x2f && t.charCodeAt(k + 1) !== 0x2a) return;
    let start = i;
    for (let j = i; j < to; j++) {
      const c = t.charCodeAt(j);
      if (c === 0x22) {
        const close = skipString(t, j);
        j = close < 0 || close >= to ? to : close;
      } else if (c === 0x27) j = skipChar(t, j);
      else if (c === 0x3b /* ; */) {
        this.statement(start, j);
        start = j + 1;
      } else if (c === 0x23 /* # */) {
        this.statement(start, j);
        return;
      } else if (c === 0x2f && t.charCodeAt(j + 1) === 0x2a) {
        this.statement(start, j);
        const close = t.indexOf('*/', j + 2);
        if (close < 0 || close >= to) {
          this.inBlockComment = true;
          return;
        }
        j = close + 1;
        start = close + 2;
      }
    }
    this.statement(start, to);
  }

  /** Whether [from, to) holds a SPECIAL_CHARS character; one indexOf per character and text. */
  private hasSpecial(from: number, to: number): boolean {
    const next = this.nextSpecial;
    let found = false;
    for (let k = 0; k < next.length; k++) {
      if (next[k]! < from) {
        const at = this.text.indexOf(SPECIAL_CHARS[k]!, from);
        next[k] = at < 0 ? Infinity : at;
      }
      if (next[k]! < to) found = true;
    }
    return found;
  }

  /** Reads a symbol (label, mnemonic or directive name) at i; returns its end. */
  private symbolEnd(i: number, to: number): number {
    const t = this.text;
    if (t.charCodeAt(i) === 0x22) {
      const close = skipString(t, i);
      return close < 0 || close >= to ? i : close + 1;
    }
    let j = i;
    const inMacro = this.macroDepth > 0;
    while (j < to) {
      const c = t.charCodeAt(j);
      if (isIdent(c)) j++;
      else if (inMacro && (c === 0x5c || c === 0x40)) j++;
      else if (
        inMacro &&
        c === 0x28 &&
        t.charCodeAt(j + 1) === 0x29 &&
        t.charCodeAt(j - 1) === 0x5c
      )
        j += 2;
      else break;
    }
    return j;
  }

  /** One statement [from, to): labels, then a directive, an assignment or an instruction. */
  private statement(from: number, to: number): void {
    const t = this.text;
    let i = from;
    while (i < to && isSpace(t.charCodeAt(i))) i++;
    while (to > i && isSpace(t.charCodeAt(to - 1))) to--;
    if (i >= to) return;
    // Labels.
    for (;;) {
      const end = this.symbolEnd(i, to);
      if (end > i && t.charCodeAt(end) === 0x3a /* : */ && end < to) {
        this.pendingPrefix = -1;
        i = end + 1;
        while (i < to && isSpace(t.charCodeAt(i))) i++;
        if (i >= to) return;
        continue;
      }
      break;
    }
    const first = t.charCodeAt(i);
    if (first === 0x2e /* . */) {
      this.pendingPrefix = -1;
      this.directive(i, to);
      return;
    }
    const stmtStart = i;
    const c0 = t.charCodeAt(i);
    if (
      c0 !== 0x7b /* { */ &&
      c0 !== 0x5c /* \ */ &&
      !CANDIDATE_STARTS.has(((c0 | 0x20) << 8) | (t.charCodeAt(i + 1) | 0x20))
    ) {
      this.pendingPrefix = -1;
      return;
    }
    // Prefixes: words (`rep`, `data16`, `ds`), `/`-joined (`rep/outsb`), pseudo-prefixes (`{load}`).
    let mnemonic: string;
    for (;;) {
      if (t.charCodeAt(i) === 0x7b /* { */) {
        const close = t.indexOf('}', i);
        if (close < 0 || close >= to) return;
        i = close + 1;
      } else {
        const end = this.symbolEnd(i, to);
        if (end === i) {
          this.pendingPrefix = -1;
          return; // not an instruction (an expression statement gas will judge)
        }
        const word = t.slice(i, end).toLowerCase();
        if (!PREFIXES.has(word)) {
          mnemonic = word;
          i = end;
          break;
        }
        i = end;
        if (t.charCodeAt(i) === 0x2f /* / */) i++;
      }
      while (i < to && isSpace(t.charCodeAt(i))) i++;
      if (i >= to) {
        // A prefix on its own (`rep;` before `outsb`): the site starts here if the next
        // statement is sensitive, because the CPU sees one instruction.
        if (this.pendingPrefix < 0) this.pendingPrefix = stmtStart;
        return;
      }
    }
    while (i < to && isSpace(t.charCodeAt(i))) i++;
    const nextChar = t.charCodeAt(i);
    if (nextChar === 0x3d /* = */ || (nextChar === 0x3a && i < to)) {
      this.pendingPrefix = -1;
      return; // `sym = expr`
    }
    const dot = mnemonic.indexOf('.');
    if (dot > 0) mnemonic = mnemonic.slice(0, dot); // `mov.s`, `mov.d32` encoding suffixes
    if (mnemonic.includes('\\')) {
      this.pendingPrefix = -1;
      // The whole statement is one parameter (`\op`, as `op_safe_regs rdmsr` passes it): gas
      // decides at each expansion through DEFER_MACRO.
      const whole = t.slice(stmtStart, to).trim();
      if (/^\\[A-Za-z_]\w*$/.test(whole) && i >= to) {
        if (this.noannotate) return;
        this.edits.push({ at: stmtStart, del: 0, text: `${DEFER_MACRO} ` });
        this.deferUsed = true;
        this.report.deferred++;
        return;
      }
      this.report.warnings.push(
        `${this.file}:${this.line}: warning: mnemonic '${t.slice(stmtStart, to)}' is a macro parameter; not annotated`,
      );
      return;
    }
    const start = this.pendingPrefix >= 0 ? this.pendingPrefix : stmtStart;
    this.pendingPrefix = -1;
    const sensitive = SENSITIVE.has(mnemonic);
    if (!sensitive && !OPERAND_DEPENDENT.has(mnemonic)) return;
    if (this.macroNames.has(mnemonic)) return; // a user macro of that name: its body is annotated
    if (this.intel) {
      this.intelStatement(start, i, to, mnemonic, sensitive);
      return;
    }
    if (!sensitive) {
      // mov/push/pop/jmp/call: cheap filters before splitting operands.
      const c0 = mnemonic.charCodeAt(0);
      if (c0 === 0x6a || c0 === 0x63) {
        if (t.indexOf(',', i) < 0 || t.indexOf(',', i) >= to) return;
      } else if (!mentionsSpecialRegister(t, i, to)) {
        if (this.macroDepth > 0 && t.indexOf('\\', i) >= 0 && t.indexOf('\\', i) < to)
          this.macroOperands(start, i, to, mnemonic);
        return;
      }
    }
    const operandText = t.slice(i, to);
    const operands = splitOperands(operandText);
    if (operands === null)
      this.fail(
        `cannot parse the operands '${operandText.trim()}' of sensitive instruction '${mnemonic}'`,
      );
    const fromMacro = operands.some((op) => op.includes('\\'));
    let result = classify(mnemonic, operands);
    if (result !== null && 'error' in result) {
      if (fromMacro && sensitive) result = { kind: SENSITIVE.get(mnemonic)!.kind };
      else if (fromMacro) {
        this.report.warnings.push(
          `${this.file}:${this.line}: warning: '${t.slice(stmtStart, to)}' may be sensitive once its macro parameters are known; not annotated`,
        );
        return;
      } else
        this.fail(
          `cannot parse the operands '${operandText.trim()}' of sensitive instruction '${mnemonic}': ${result.error}`,
        );
    }
    if (result === null) return;
    this.site(start, to, result.kind);
  }

  /** An instruction in Intel syntax: the same mnemonics, other operand spellings. */
  private intelStatement(
    start: number,
    i: number,
    to: number,
    mnemonic: string,
    sensitive: boolean,
  ): void {
    if (sensitive) {
      this.site(start, to, SENSITIVE.get(mnemonic)!.kind);
      return;
    }
    const operandText = this.text.slice(i, to);
    const operands = splitOperands(operandText);
    if (operands === null)
      this.fail(`cannot parse the operands '${operandText.trim()}' of '${mnemonic}'`);
    const kind = classifyIntel(mnemonic, operands);
    if (kind !== null) this.site(start, to, kind);
  }

  /** Annotates the instruction [start, end) as a site of `kind`. */
  private site(start: number, end: number, kind: SiteKind): void {
    if (this.noannotate) {
      this.report.notAnnotated++;
      return;
    }
    const pad = PADDING[kind];
    const r = this.report;
    r.sites[kind] = (r.sites[kind] ?? 0) + 1;
    r.total++;
    r.paddingBytes += pad;
    this.edits.push({ at: start, del: 0, text: `${START}: ` });
    this.edits.push({
      at: end,
      del: 0,
      text: `; ${this.padding(pad)}; ${END}: ; ${record('.afterburn', START, END)}`,
    });
  }

  private padding(n: number): string {
    const key = n * 2 + (this.code16 ? 1 : 0);
    let text = this.padCache.get(key);
    if (text === undefined) {
      text = nopDirective(n, this.code16);
      this.padCache.set(key, text);
    }
    return text;
  }

  /**
   * mov/push/pop in a macro body whose operand is a macro parameter: whether it is sensitive
   * is known only when the macro expands, so let gas decide with `.ifc` per register.
   */
  private macroOperands(start: number, i: number, to: number, mnemonic: string): void {
    const t = this.text;
    if (this.noannotate) return;
    const operands = splitOperands(t.slice(i, to));
    if (operands === null) return;
    // Only an operand that is nothing but a parameter (`\reg`, `%\reg`) can name a register.
    const params = operands.filter((op) => /^%?\\[A-Za-z_][\w]*(\\\(\))?$/.test(op));
    if (params.length === 0) return;
    const kind: SiteKind = mnemonic.startsWith('mov')
      ? 'mov_cr'
      : mnemonic.startsWith('push')
        ? 'push_seg'
        : 'pop_seg';
    if (mnemonic.startsWith('j') || mnemonic.startsWith('c')) return;
    const insn = t.slice(start, to);
    const pad = PADDING[kind];
    // One `.ifc` per register, no `.irp`: under `.altmacro` a `%` in .irp arguments would be
    // evaluated as an expression.
    // All on the instruction's line (gas takes conditionals statement by statement).
    const checks = params
      .flatMap((p) => SPECIAL_REGISTERS.map((r) => `.ifc ${p},${r}; .set .Lab_sens, 1; .endif; `))
      .join('');
    const text =
      `.set .Lab_sens, 0; ${checks}.if .Lab_sens; ` +
      `${START}: ${insn}; ${this.padding(pad)}; ${END}: ; ${record('.afterburn', START, END)}; ` +
      `.else; ${insn}; .endif`;
    this.edits.push({ at: start, del: to - start, text });
    const r = this.report;
    r.sites[kind] = (r.sites[kind] ?? 0) + 1;
    r.total++;
    r.paddingBytes += pad;
  }

  /** Directives the afterburner must follow; all others pass through. */
  private directive(i: number, to: number): void {
    const t = this.text;
    // Only .macro .purgem .rept .irp .irpc .endm .endr .code* .afterburn_* .include matter.
    const c1 = t.charCodeAt(i + 1) | 0x20;
    if (c1 === 0x63 /* c */) {
      if ((t.charCodeAt(i + 2) | 0x20) !== 0x6f || (t.charCodeAt(i + 3) | 0x20) !== 0x64) return;
    } else if (
      c1 !== 0x6d && // .macro
      c1 !== 0x72 && // .rept
      c1 !== 0x69 && // .irp .irpc .include
      c1 !== 0x65 && // .endm .endr
      c1 !== 0x61 && // .afterburn_*
      c1 !== 0x70 // .purgem
    )
      return;
    const end = this.symbolEnd(i, to);
    const name = t.slice(i, end).toLowerCase();
    switch (name) {
      case '.macro': {
        let j = end;
        while (j < to && isSpace(t.charCodeAt(j))) j++;
        const nameEnd = this.symbolEnd(j, to);
        if (nameEnd > j) this.macroNames.add(t.slice(j, nameEnd).toLowerCase());
        this.macroDepth++;
        return;
      }
      case '.purgem': {
        let j = end;
        while (j < to && isSpace(t.charCodeAt(j))) j++;
        this.macroNames.delete(t.slice(j, this.symbolEnd(j, to)).toLowerCase());
        return;
      }
      case '.rept':
      case '.irp':
      case '.irpc':
        this.macroDepth++;
        return;
      case '.endm':
      case '.endr':
        if (this.macroDepth > 0) this.macroDepth--;
        return;
      case '.code16':
      case '.code16gcc':
        this.code16 = true;
        return;
      case '.intel_syntax':
        this.intel = true;
        return;
      case '.att_syntax':
        this.intel = false;
        return;
      case '.code32':
      case '.code64':
        this.code16 = false;
        return;
      case '.afterburn_noannotate':
        if (this.noannotate)
          this.fail('.afterburn_noannotate inside a region that is already not annotated');
        this.noannotate = true;
        this.report.noannotateRegions++;
        this.edits.push({ at: i, del: to - i, text: `${NA_START}:` });
        return;
      case '.afterburn_annotate':
        if (!this.noannotate) this.fail('.afterburn_annotate without .afterburn_noannotate');
        this.noannotate = false;
        this.edits.push({
          at: i,
          del: to - i,
          text: `${NA_END}: ${record('.afterburn_noannotate', NA_START, NA_END)}`,
        });
        return;
      case '.include':
        this.include(i, end, to);
        return;
      default:
        return;
    }
  }

  /** `.include "file"`: afterburn the included text in place (gas would not see it otherwise). */
  private include(i: number, end: number, to: number): void {
    const read = this.options.include;
    if (read === undefined) return;
    const t = this.text;
    const q = t.indexOf('"', end);
    if (q < 0 || q >= to) return;
    const close = skipString(t, q);
    if (close < 0 || close >= to) return;
    const name = t.slice(q + 1, close);
    const found = read(name, this.file);
    if (found === null) return; // gas reports the missing file
    const body = this.run(found.text, found.path);
    this.edits.push({ at: i, del: close + 1 - i, text: `\n${body}\n` });
  }
}

/**
 * Afterburns one assembly file. Throws AfterburnError on bad input (file:line in the message).
 */
export function afterburn(
  text: string,
  options: AfterburnOptions = {},
): { text: string; report: AfterburnReport } {
  const burner = new Burner(options);
  let out = burner.run(text, options.file ?? '<input>') + burner.finish();
  // On the first line, so that the output keeps the input's line numbers.
  if (burner.deferUsed) out = deferMacro((n) => nopDirective(n, false)) + out;
  return { text: out, report: burner.report };
}
