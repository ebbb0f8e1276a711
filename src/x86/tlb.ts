/**
 * The TLBs: one for instruction fetches, one for data, each a FIFO cache of 64 translations of
 * 4 KB linear pages (cost-model.md: "64-entry TLB per kind"). The Cpu fills them after a page
 * walk (`Cpu.fillTlb`) and flushes them on the events the SDM names (3A 4.10.4).
 */

/** TLB entry bits, beside the physical page number in bits 12–31. */
export const T_VALID = 1;
export const T_USER = 2;
export const T_WRITE = 4;
export const T_USER_WRITE = 8;
/** The page is ordinary RAM: the fast path may read it directly. */
export const T_RAM = 16;
/** Ordinary RAM holding no decoded code: the fast path may write it directly. */
export const T_RAM_WRITE = 32;
export const T_GLOBAL = 64;

/** Entries per TLB; one TLB for code, one for data. */
export const TLB_ENTRIES = 64;

/**
 * Both TLBs. PERF: an entry is looked up by indexing a per-linear-page array (`data`, `code`:
 * physical page | T_* bits, 0 when not cached), which the memory fast paths, the interpreter
 * loop and compiled blocks read directly; the rings remember which pages hold entries, in fill
 * order, so that a flush and the FIFO replacement touch 64 slots, not a million.
 */
export class Tlbs {
  readonly data = new Int32Array(1 << 20);
  readonly code = new Int32Array(1 << 20);
  private readonly dataRing = new Int32Array(TLB_ENTRIES).fill(-1);
  private readonly codeRing = new Int32Array(TLB_ENTRIES).fill(-1);
  private dataNext = 0;
  private codeNext = 0;

  /** Drops entries: all of them, or all but global pages. */
  flush(includeGlobal: boolean): void {
    for (let k = 0; k < TLB_ENTRIES; k++) {
      const d = this.dataRing[k];
      if (d >= 0 && (includeGlobal || (this.data[d] & T_GLOBAL) === 0)) {
        this.data[d] = 0;
        this.dataRing[k] = -1;
      }
      const c = this.codeRing[k];
      if (c >= 0 && (includeGlobal || (this.code[c] & T_GLOBAL) === 0)) {
        this.code[c] = 0;
        this.codeRing[k] = -1;
      }
    }
  }

  /** Drops the entries for one linear page (INVLPG), global or not. */
  invalidatePage(page: number): void {
    for (let k = 0; k < TLB_ENTRIES; k++) {
      if (this.dataRing[k] === page) this.dataRing[k] = -1;
      if (this.codeRing[k] === page) this.codeRing[k] = -1;
    }
    this.data[page] = 0;
    this.code[page] = 0;
  }

  /** Caches a code translation in place of the oldest one; returns the page evicted, or -1. */
  insertCode(page: number, entry: number): number {
    const old = this.codeRing[this.codeNext];
    if (old >= 0) this.code[old] = 0;
    this.codeRing[this.codeNext] = page;
    this.codeNext = (this.codeNext + 1) % TLB_ENTRIES;
    this.code[page] = entry;
    return old;
  }

  /** Caches a data translation in place of the oldest one. */
  insertData(page: number, entry: number): void {
    const old = this.dataRing[this.dataNext];
    if (old >= 0) this.data[old] = 0;
    this.dataRing[this.dataNext] = page;
    this.dataNext = (this.dataNext + 1) % TLB_ENTRIES;
    this.data[page] = entry;
  }

  /**
   * A physical page just got decoded code: data entries that map it leave the fast write path,
   * so that every write there is seen and can retire the instructions it overlaps.
   */
  protectCodePage(ppage: number): void {
    for (let k = 0; k < TLB_ENTRIES; k++) {
      const page = this.dataRing[k];
      if (page >= 0 && this.data[page] >>> 12 === ppage) this.data[page] &= ~T_RAM_WRITE;
    }
  }
}
