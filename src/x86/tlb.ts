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
/**
 * A supervisor page (U/S clear at a level), or any page with paging off: a supervisor access
 * needs no SMEP or SMAP check (SDM 3A 4.6.1). With CR4.SMEP or CR4.SMAP (and EFLAGS.AC clear)
 * the supervisor access masks ask for it, so that user pages take the checked path.
 */
export const T_SUPER = 128;

/** Entries per TLB; one TLB for code, one for data. */
export const TLB_ENTRIES = 64;

/**
 * One TLB in a snapshot (system/state.ts): its ring of linear pages in slot order (-1: empty
 * slot), the entry each slot's page has (physical page | T_* bits but T_RAM_WRITE, which is
 * derived, unsigned; 0 for an empty slot, or for a page whose entry went with an older slot of
 * the same page: a page refilled to set its dirty bit holds two slots, and evicting the older
 * one drops the entry), and the slot the next fill replaces. What the FIFO evicts next depends
 * on all three.
 */
export interface TlbRingState {
  pages: number[];
  entries: number[];
  next: number;
}

export interface TlbState {
  code: TlbRingState;
  data: TlbRingState;
}

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

  save(): TlbState {
    return {
      code: saveRing(this.codeRing, this.code, this.codeNext),
      data: saveRing(this.dataRing, this.data, this.dataNext),
    };
  }

  /**
   * Puts the saved contents back, replacing the current ones (no flush is counted: this is not
   * one). T_RAM_WRITE is derived: a restore starts with no decoded code (codeCache.ts), so every
   * entry of ordinary RAM (T_RAM) may take the fast write path until code is decoded in its page
   * again (`protectCodePage`). `ram(ppage)` says whether a physical page is ordinary RAM now; an
   * entry marked T_RAM for a page that is not is refused (the fast paths would index past RAM).
   */
  restore(state: TlbState, ram: (ppage: number) => boolean): void {
    const code = checkRing('code', state.code, ram);
    const data = checkRing('data', state.data, ram);
    this.flush(true);
    this.codeNext = loadRing(this.codeRing, this.code, code);
    this.dataNext = loadRing(this.dataRing, this.data, data);
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

function saveRing(ring: Int32Array, entries: Int32Array, next: number): TlbRingState {
  const pages = Array.from(ring);
  // T_RAM_WRITE is derived (see `restore`), so it is not part of the state.
  const entry = (p: number): number => (p >= 0 ? (entries[p] & ~T_RAM_WRITE) >>> 0 : 0);
  return { pages, entries: pages.map(entry), next };
}

/** Checks a saved ring and returns it with T_RAM_WRITE derived from T_RAM (see `restore`). */
function checkRing(which: string, s: TlbRingState, ram: (ppage: number) => boolean): TlbRingState {
  const bad = (why: string): Error => new Error(`CPU state: ${which} TLB ${why}`);
  if (s.pages.length !== TLB_ENTRIES || s.entries.length !== TLB_ENTRIES) {
    throw bad(`must have ${TLB_ENTRIES} slots`);
  }
  if (!Number.isInteger(s.next) || s.next < 0 || s.next >= TLB_ENTRIES) {
    throw bad(`next slot ${s.next} is out of range`);
  }
  const entries = s.entries.map((e, k) => {
    const page = s.pages[k];
    if (!Number.isInteger(page) || page < -1 || page >= 1 << 20)
      throw bad(`page ${page} is invalid`);
    if (!Number.isInteger(e) || e < 0 || e > 0xffffffff || (page < 0 && e !== 0)) {
      throw bad(`entry ${e} in slot ${k} is invalid`);
    }
    if ((e & T_RAM) !== 0 && !ram(e >>> 12)) {
      throw bad(`maps physical page 0x${(e >>> 12).toString(16)} as RAM, which it is not`);
    }
    return (e & T_RAM) !== 0 ? e | T_RAM_WRITE : e & ~T_RAM_WRITE;
  });
  return { pages: s.pages, entries, next: s.next };
}

function loadRing(ring: Int32Array, entries: Int32Array, s: TlbRingState): number {
  for (let k = 0; k < TLB_ENTRIES; k++) {
    const page = s.pages[k];
    ring[k] = page;
    if (page >= 0) entries[page] = s.entries[k];
  }
  return s.next;
}
