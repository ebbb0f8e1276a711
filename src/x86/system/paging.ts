/**
 * The page walk of 32-bit paging (SDM Vol. 3A 4.3): two levels of 4 KB tables, 4 MB pages when
 * CR4.PSE and PDE.PS are set, access rights combined from both levels (4.6), accessed and dirty
 * bits (4.8), and the #PF error code (4.7). The TLBs that cache the result live in Cpu.ts.
 */
import type { Cpu } from '../Cpu.ts';
import { pf } from '../fault.ts';

export interface WalkResult {
  physical: number;
  /** User-mode accesses allowed (U/S set at both levels). */
  user: boolean;
  /** Writes allowed (R/W set at both levels). */
  writable: boolean;
  /** The dirty bit is set, so a write needs no further walk. */
  dirty: boolean;
  global: boolean;
}

/** CR4 bits that change what a supervisor access may do (SDM 3A 2.5, 4.6.1). */
export const CR4_SMEP = 1 << 20;
export const CR4_SMAP = 1 << 21;

const P = 1;
const RW = 2;
const US = 4;
const A = 0x20;
const D = 0x40;
const PS = 0x80;
const G = 0x100;

function fault(cpu: Cpu, linear: number, present: boolean, write: boolean, user: boolean): never {
  cpu.cr2 = linear >>> 0;
  throw pf((present ? 1 : 0) | (write ? 2 : 0) | (user ? 4 : 0));
}

/**
 * Walks the tables for `linear`, checks the access (a write, with user privilege or not), sets
 * the accessed and dirty bits, and returns the translation. Raises #PF with CR2 set.
 */
export function walk(cpu: Cpu, linear: number, write: boolean, user: boolean): WalkResult {
  const pdeAddress = ((cpu.cr3 & 0xfffff000) + ((linear >>> 22) << 2)) >>> 0;
  let pde = cpu.readPhysical(pdeAddress, 4);
  if ((pde & P) === 0) fault(cpu, linear, false, write, user);
  const wp = (cpu.cr0 & 0x10000) !== 0;

  if ((pde & PS) !== 0 && (cpu.cr4 & 0x10) !== 0) {
    const u = (pde & US) !== 0;
    const w = (pde & RW) !== 0;
    checkRights(cpu, linear, u, w, write, user, wp);
    const updated = pde | A | (write ? D : 0);
    if (updated !== pde) cpu.writePhysical(pdeAddress, 4, updated >>> 0);
    pde = updated;
    return {
      physical: ((pde & 0xffc00000) | (linear & 0x3fffff)) >>> 0,
      user: u,
      writable: w,
      dirty: (pde & D) !== 0,
      global: (pde & G) !== 0,
    };
  }

  const pteAddress = ((pde & 0xfffff000) + (((linear >>> 12) & 0x3ff) << 2)) >>> 0;
  let pte = cpu.readPhysical(pteAddress, 4);
  if ((pte & P) === 0) fault(cpu, linear, false, write, user);
  const u = (pde & pte & US) !== 0;
  const w = (pde & pte & RW) !== 0;
  checkRights(cpu, linear, u, w, write, user, wp);
  if ((pde & A) === 0) cpu.writePhysical(pdeAddress, 4, (pde | A) >>> 0);
  const updated = pte | A | (write ? D : 0);
  if (updated !== pte) cpu.writePhysical(pteAddress, 4, updated >>> 0);
  pte = updated;
  return {
    physical: ((pte & 0xfffff000) | (linear & 0xfff)) >>> 0,
    user: u,
    writable: w,
    dirty: (pte & D) !== 0,
    global: (pte & G) !== 0,
  };
}

/** SDM 3A 4.6: user accesses need U/S; writes need R/W, for supervisor writes only with CR0.WP. */
function checkRights(
  cpu: Cpu,
  linear: number,
  u: boolean,
  w: boolean,
  write: boolean,
  user: boolean,
  wp: boolean,
): void {
  if (user && !u) fault(cpu, linear, true, write, user);
  if (write && !w && (user || wp)) fault(cpu, linear, true, write, user);
}
