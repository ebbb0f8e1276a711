import type { CodeCache } from './codeCache.ts';
import type { Cpu } from './Cpu.ts';
import type { CpuPlatform } from './platform.ts';

/**
 * Physical memory as the CPU addresses it (platform.ts): guest RAM, read and written in place,
 * and everything else (pages marked MMIO, addresses past RAM), which goes to the platform's
 * devices and is counted and charged on the CPU's clock. A write to RAM that holds decoded code
 * retires the instructions it overlaps. This is the slow path: the CPU's fast paths index `ram`
 * and `view` directly once the TLB says a page is ordinary RAM.
 */
export class PhysicalMemory {
  readonly ram: Uint8Array;
  readonly view: DataView;
  /** Per physical page of RAM: 1 when its accesses go to the platform's mmio callbacks. */
  readonly mmioPages: Uint8Array;
  private readonly cpu: Cpu;
  private readonly platform: CpuPlatform;
  private readonly code: CodeCache;

  constructor(cpu: Cpu, platform: CpuPlatform, code: CodeCache) {
    this.cpu = cpu;
    this.platform = platform;
    this.code = code;
    this.ram = platform.ram;
    this.view = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    this.mmioPages = new Uint8Array(Math.ceil(this.ram.length / 4096));
  }

  /** Routes a physical range through the mmio callbacks (page granular). */
  markMmio(physical: number, length: number): void {
    const end = Math.min(physical + length, this.ram.length);
    for (let p = physical >>> 12; p * 4096 < end; p++) this.mmioPages[p] = 1;
  }

  /** Whether a physical page is ordinary RAM (read and written in place, not through MMIO). */
  isRam(ppage: number): boolean {
    return ppage * 4096 < this.ram.length && this.mmioPages[ppage] === 0;
  }

  /** The physical pages of RAM marked MMIO, ascending (for snapshots, system/state.ts). */
  saveMmio(): number[] {
    const pages: number[] = [];
    this.mmioPages.forEach((v, p) => {
      if (v !== 0) pages.push(p);
    });
    return pages;
  }

  /** Exactly these pages are MMIO (a restore; the TLB is restored after this, not flushed). */
  restoreMmio(pages: number[]): void {
    for (const p of pages) {
      if (!Number.isInteger(p) || p < 0 || p >= this.mmioPages.length) {
        throw new Error(`CPU state: MMIO page ${p} is not a page of this machine's RAM`);
      }
    }
    this.mmioPages.fill(0);
    for (const p of pages) this.mmioPages[p] = 1;
  }

  read(p: number, size: number): number {
    if (p + size <= this.ram.length && this.mmioPages[p >>> 12] === 0) {
      if (size === 1) return this.ram[p];
      if (size === 2) return this.view.getUint16(p, true);
      return this.view.getUint32(p, true);
    }
    if (size === 1 || size === 2 || size === 4) {
      if (this.mmioPages[p >>> 12] === 1 || p >= this.ram.length) {
        this.cpu.counters.mmioReads++;
        this.cpu.cycles += this.cpu.costs.mmioRead;
        // A device answers with `size` bytes; anything above them is not on the bus.
        const v = this.platform.mmioRead(p, size);
        return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
      }
    }
    return 0;
  }

  write(p: number, size: number, v: number): void {
    if (p + size <= this.ram.length && this.mmioPages[p >>> 12] === 0) {
      if (size === 1) this.ram[p] = v;
      else if (size === 2) this.view.setUint16(p, v, true);
      else this.view.setUint32(p, v >>> 0, true);
      if (this.code.pages[p >>> 12] !== undefined) this.code.invalidate(p, size);
      return;
    }
    if (size === 1 || size === 2 || size === 4) {
      this.cpu.counters.mmioWrites++;
      this.cpu.cycles += this.cpu.costs.mmioWrite;
      this.platform.mmioWrite(p, size, v >>> 0);
    }
  }
}
