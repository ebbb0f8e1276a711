/**
 * Bound entries (DESIGN.md decision 6): linear addresses where the CPU, about to fetch an
 * instruction, calls a TypeScript handler instead (monitor.ts `BoundHandler`). The in-place VMM
 * of each VM binds its entries in the top of that VM's address space, so two VMs may bind the
 * same address: each VM (or address space) has its own `EntryTable`, and the CPU consults one
 * table at a time, the one the hypervisor made current with `Cpu.useEntryTable` when it switched
 * to that VM. Inside one table an address has at most one binding; a second one is refused with
 * a message naming both (as the buses refuse overlapping ranges, STYLE.md principle 2).
 *
 * Handlers are closures, not data: a snapshot holds every table's name and its bindings'
 * addresses and names (`EntriesState`), the owner binds its handlers again after a restore, and
 * `Cpu.unrestoredEntries` names any binding nobody brought back, as the clock's `unrestored`
 * does for events.
 */
import type { BoundHandler } from './monitor.ts';

/** Removes a binding; harmless when called again. */
export type Unbind = () => void;

/** One binding as a snapshot holds it: where, and the name its owner gave it. */
export interface EntryBinding {
  linear: number;
  name: string;
}

/** A table in a snapshot: its name and its bindings by ascending address. */
export interface EntryTableState {
  name: string;
  bindings: EntryBinding[];
}

/** Every entry table of a CPU in a snapshot, and the name of the one in use. */
export interface EntriesState {
  active: string;
  tables: EntryTableState[];
}

/** An address as messages show it: 0x and eight hex digits. */
export const hex32 = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

export class EntryTable {
  /**
   * PERF: linear address → handler, the map the run loop looks up before every fetch while the
   * table is in use (Cpu.callBound); kept a plain Map so that lookup stays what it was.
   */
  readonly handlers = new Map<number, BoundHandler>();
  private readonly names = new Map<number, string>();
  /**
   * PERF: the compiled blocks' epoch while this table is in use (the CPU's): a new one whenever
   * its bindings change or all code is dropped, so that the blocks of one VM survive another
   * VM's turn on the CPU.
   */
  epoch = 0;

  constructor(
    readonly name: string,
    /** Told of every new binding, so the CPU can drop compiled blocks that run past it. */
    private readonly bound: (table: EntryTable) => void,
  ) {}

  /**
   * Binds `handler` at `linear` under `name` (used in messages and snapshot audits). Returns
   * the unbind function, or, if the address is bound already in this table, a message naming
   * both bindings (nothing changes then).
   */
  bind(linear: number, name: string, handler: BoundHandler): Unbind | string {
    const key = linear >>> 0;
    const held = this.names.get(key);
    if (held !== undefined) {
      return `bound entry '${name}' at ${hex32(key)} overlaps '${held}' in entry table '${this.name}'`;
    }
    this.handlers.set(key, handler);
    this.names.set(key, name);
    this.bound(this);
    let live = true;
    return () => {
      if (!live) return;
      live = false;
      this.handlers.delete(key);
      this.names.delete(key);
    };
  }

  /** The name of the binding at `linear`, if any. */
  nameAt(linear: number): string | undefined {
    return this.names.get(linear >>> 0);
  }

  get size(): number {
    return this.handlers.size;
  }

  /** The bindings by ascending address (for snapshots and audits). */
  bindings(): EntryBinding[] {
    return [...this.names].sort((a, b) => a[0] - b[0]).map(([linear, name]) => ({ linear, name }));
  }

  save(): EntryTableState {
    return { name: this.name, bindings: this.bindings() };
  }
}

/**
 * The audit after a restore: `now` (the tables as the owners rebuilt them) against `saved`.
 * Undefined when the table in use and every binding (table, address, name) are as saved; else
 * one message naming what differs.
 */
export function entriesDiffer(saved: EntriesState, now: EntriesState): string | undefined {
  const keys = (s: EntriesState): Set<string> =>
    new Set(
      s.tables.flatMap((t) => t.bindings.map((b) => `${t.name}:${b.name}@${hex32(b.linear)}`)),
    );
  const want = keys(saved);
  const have = keys(now);
  const missing = [...want].filter((k) => !have.has(k));
  const extra = [...have].filter((k) => !want.has(k));
  const parts: string[] = [];
  if (saved.active !== now.active) {
    parts.push(`table in use '${now.active}', in the snapshot '${saved.active}'`);
  }
  if (missing.length > 0) parts.push(`not bound again: ${missing.join(', ')}`);
  if (extra.length > 0) parts.push(`not in the snapshot: ${extra.join(', ')}`);
  if (parts.length === 0) return undefined;
  return `bound entries differ from the snapshot (${parts.join('; ')})`;
}
