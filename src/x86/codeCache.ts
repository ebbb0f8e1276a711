import { CpuFault, Vector } from './fault.ts';
import { decode } from './decode.ts';
import type { Instr } from './instr.ts';

/**
 * The decoded-instruction cache: each instruction is decoded once per physical address and kept
 * per 4 KB physical page. A write that overlaps cached instructions retires them and bumps the
 * page's generation, which invalidates the compiled blocks made from that page (block.ts).
 */
export class CodeCache {
  /**
   * Per physical page: the instructions decoded there by page offset, undefined while the page
   * holds none. PERF: both levels are preallocated dense arrays (sparse stores would put V8
   * arrays into slow dictionary mode); the Cpu's fetch path reads them directly.
   */
  readonly pages: ((Instr | undefined)[] | undefined)[];
  /** Per physical page: how many writes retired decoded instructions there. */
  readonly generation: Int32Array;
  private readonly ram: Uint8Array;
  /** Reads an instruction byte at a linear address (a fetch access: may fault). */
  private readonly fetchByte: (linear: number) => number;
  /** Scratch buffer for decoding instructions that cross a page or leave RAM. */
  private readonly fetchBuffer = new Uint8Array(16);

  constructor(ram: Uint8Array, fetchByte: (linear: number) => number) {
    this.ram = ram;
    this.fetchByte = fetchByte;
    const pageCount = Math.ceil(ram.length / 4096);
    this.pages = new Array<(Instr | undefined)[] | undefined>(pageCount).fill(undefined);
    this.generation = new Int32Array(pageCount);
  }

  /** A fresh, empty instruction array for a physical page that holds no code yet. */
  addPage(ppage: number): (Instr | undefined)[] {
    const page = new Array<Instr | undefined>(4096).fill(undefined);
    this.pages[ppage] = page;
    return page;
  }

  /** Someone wrote guest memory at [p, p+length): drop decoded instructions overlapping it. */
  invalidate(p: number, length: number): void {
    const first = Math.max(0, p - 15);
    for (let a = first; a < p + length; a++) {
      const page = this.pages[a >>> 12];
      if (page === undefined) {
        a = (a | 0xfff) >>> 0;
        continue;
      }
      const instr = page[a & 0xfff];
      if (instr !== undefined && a + instr.length > p) {
        retire(instr);
        page[a & 0xfff] = undefined;
        this.generation[a >>> 12]++;
      }
    }
  }

  /** Drops every decoded instruction. */
  clear(): void {
    for (const page of this.pages) if (page !== undefined) for (const i of page) if (i) retire(i);
    this.pages.fill(undefined);
  }

  /**
   * For the block compiler: the 32-bit instruction decoded at a physical address (decoding it
   * now if needed), or undefined if it cannot be cached there (its page holds no code yet, it
   * leaves the page or the bytes do not decode).
   */
  decodedAt(physical: number): Instr | undefined {
    const page = this.pages[physical >>> 12];
    if (page === undefined) return undefined;
    const cached = page[physical & 0xfff];
    if (cached !== undefined) return cached.codeBig ? cached : undefined;
    if ((physical & 0xfff) > 0xff0) return undefined;
    const instr = decode(this.ram, physical, true);
    if (instr.length === 0 || (physical & 0xfff) + instr.length > 0x1000) return undefined;
    page[physical & 0xfff] = instr;
    return instr;
  }

  /** Decodes from a scratch copy (page-crossing instructions, code in MMIO): not cached. */
  decodeUncached(linear: number, big: boolean): Instr {
    const buf = this.fetchBuffer;
    let n = 0;
    for (; n < 15; n++) {
      try {
        buf[n] = this.fetchByte(linear + n);
      } catch (e) {
        if (n === 0) throw e;
        // The decoder will raise the fault again if it needs this byte.
        break;
      }
    }
    const instr = decode(buf.subarray(0, n), 0, big);
    if (instr.length === 0) {
      // Ran out of bytes: the fetch of byte n is what faults.
      this.fetchByte(linear + n);
      throw new CpuFault(Vector.GP, 0);
    }
    return instr;
  }
}

/**
 * Marks a decoded instruction invalid (its bytes changed) and drops its own links, so a dead
 * instruction keeps nothing else alive: only live instructions' links can still reach it, and
 * they are never followed to it.
 */
function retire(instr: Instr): void {
  instr.dead = true;
  instr.next = undefined;
  instr.target = undefined;
  // Its block is dead too: it lets go of the blocks that followed it (Block.after0).
  if (instr.block !== undefined) instr.block.after0 = instr.block.after1 = undefined;
  instr.block = undefined;
}
