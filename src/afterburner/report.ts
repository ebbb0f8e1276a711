/** The afterburner's report and its error type (no Node dependencies). */
import type { SiteKind } from './sensitive.ts';

/** What the afterburner did to one file (and the files it included). */
export interface AfterburnReport {
  /** Annotated sites by kind. */
  sites: Partial<Record<SiteKind, number>>;
  /** Total annotated sites. */
  total: number;
  /** Bytes of NOP padding added. */
  paddingBytes: number;
  /** `.afterburn_noannotate` regions. */
  noannotateRegions: number;
  /** Sensitive instructions left alone because they lie in such a region. */
  notAnnotated: number;
  /**
   * Statements that are a macro parameter alone (`\op`): gas decides at each expansion whether
   * they are a site (a sensitive mnemonic without operands) or not.
   */
  deferred: number;
  /** Things it could not decide (a mnemonic that is a macro parameter), as file:line messages. */
  warnings: string[];
}

/** Bad input: an unparseable operand of a sensitive instruction and the like. */
export class AfterburnError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'AfterburnError';
  }
}

/** The report as text lines: sites by kind, totals, padding. */
export function formatReport(report: AfterburnReport, file: string): string {
  const kinds = Object.entries(report.sites).sort(
    (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]),
  );
  const lines = [`${file}: ${report.total} sites, ${report.paddingBytes} bytes of padding added`];
  for (const [kind, n] of kinds) lines.push(`  ${kind.padEnd(10)} ${n}`);
  if (report.deferred > 0)
    lines.push(`  ${report.deferred} macro-parameter statements decided by gas at each expansion`);
  if (report.noannotateRegions > 0)
    lines.push(
      `  ${report.noannotateRegions} .afterburn_noannotate regions, ${report.notAnnotated} sensitive instructions left alone`,
    );
  return lines.join('\n');
}
