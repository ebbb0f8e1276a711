/**
 * Grant tables (Xen's grant_table.h, v1; shared/reference/xen-pv.md and driver-reuse.md): how a
 * domain lets another one reach some of its frames — the split network driver's rings and
 * buffers, a client's frames for a driver VM. The granter writes entries {flags, domid, frame}
 * into its table (frames the hypervisor gives it with `setup_table`, mapped by the guest like
 * shared info); the grantee names an entry by its reference to map the frame (`map_grant_ref`),
 * or to copy to or from it (`copy`), and unmaps it by the handle it got (`unmap_grant_ref`).
 *
 * Where a mapping goes is previrt's: into the grantee's pseudo-physical space, at its grant
 * window (abi.ts GRANT_WINDOW_PAGES pages just above its memory), as Xen maps grants for
 * auto-translated guests. A device granted to the grantee may DMA there (devices.ts translates
 * the window), and the grantee's in-place VMM reaches the frame there.
 *
 * The reference counts are the hypervisor's, never the shared entry's (the lesson of XSA-224 and
 * XSA-234): an entry in use has an active record with its frame and its readers and writers,
 * taken from the entry when it was first mapped; a writable mapping holds a `writable` type
 * reference on the frame, so the granter cannot make it a page table while the grantee may write
 * it; GTF_reading and GTF_writing in the shared entry tell the granter the entry is in use (it
 * must not end access then), and are cleared when the last mapping goes. A granter that clears
 * its entry anyway changes nothing the hypervisor relies on: the mapping stays until unmapped.
 */
import {
  DOMID_SELF,
  Errno,
  GNTCOPY,
  GNTMAP,
  GNTST,
  GnttabCopy,
  GnttabMap,
  GnttabOp,
  GnttabQuery,
  GnttabSetup,
  GnttabUnmap,
  GRANT_ENTRIES_PER_FRAME,
  GRANT_ENTRY_SIZE,
  GRANT_FRAMES_MAX,
  GRANT_WINDOW_PAGES,
  GTF,
  INVALID_P2M_ENTRY,
} from './abi.ts';
import type { Domain } from './domain.ts';
import { FrameType } from './frames.ts';
import type { XenHypervisor } from './Xen.ts';
import { arrayOf, bool, nullable, num, shape, type Check } from '../../machine/state.ts';

/** An entry of this domain's table in use by another domain. */
export interface ActiveGrant {
  ref: number;
  grantee: number;
  mfn: number;
  readers: number;
  writers: number;
}

/** A mapping this domain holds of another domain's frame, by its handle. */
export interface GrantMapping {
  granter: number;
  ref: number;
  mfn: number;
  /** Its page in the grant window (0 .. GRANT_WINDOW_PAGES-1). */
  slot: number;
  readonly: boolean;
}

export interface GrantTableState {
  frames: number[];
  active: ActiveGrant[];
  maps: (GrantMapping | null)[];
}

export const GRANT_TABLE_STATE: Check = shape<GrantTableState>({
  frames: arrayOf(num),
  active: arrayOf(
    shape<ActiveGrant>({ ref: num, grantee: num, mfn: num, readers: num, writers: num }),
  ),
  maps: arrayOf(
    nullable(shape<GrantMapping>({ granter: num, ref: num, mfn: num, slot: num, readonly: bool })),
  ),
});

/** Counters of grant-table work, for the hypervisor's statistics. */
export interface GrantCounters {
  maps: number;
  unmaps: number;
  copies: number;
  copiedBytes: number;
  errors: number;
}

/** One domain's grant state: its table (as granter) and its mappings (as grantee). */
export class GrantTable {
  /** Machine frames of the shared table (empty until setup_table). */
  frames: number[] = [];
  /** Entries of this table in use by another domain, by reference. */
  readonly active = new Map<number, ActiveGrant>();
  /** Mappings this domain holds, by handle (undefined: free handle). */
  maps: (GrantMapping | undefined)[] = [];

  /** The machine frame at a page of the grant window, or undefined. */
  windowFrame(slot: number): number | undefined {
    for (const m of this.maps) if (m !== undefined && m.slot === slot) return m.mfn;
    return undefined;
  }

  /** Whether this domain holds a mapping of `mfn` (a device it drives may DMA there). */
  holds(mfn: number): boolean {
    return this.maps.some((m) => m !== undefined && m.mfn === mfn);
  }

  /** Whether another domain still maps `mfn` through one of this table's entries. */
  activeFrame(mfn: number): boolean {
    for (const a of this.active.values()) if (a.mfn === mfn) return true;
    return false;
  }

  /** Frames on which this table's writable grants hold a type reference (for the frame audit). */
  typeReferences(): number[] {
    const out: number[] = [];
    for (const a of this.active.values()) if (a.writers > 0) out.push(a.mfn);
    return out;
  }

  save(): GrantTableState {
    return {
      frames: [...this.frames],
      active: [...this.active.values()].map((a) => ({ ...a })),
      maps: this.maps.map((m) => (m === undefined ? null : { ...m })),
    };
  }

  restore(s: GrantTableState, path: string): void {
    GRANT_TABLE_STATE(s, path);
    this.frames = [...s.frames];
    this.active.clear();
    for (const a of s.active) this.active.set(a.ref, { ...a });
    this.maps = s.maps.map((m) => (m === null ? undefined : { ...m }));
  }
}

/** grant_table_op(cmd, uop, count): `count` operations of one kind; per-operation status. */
export function grantTableOp(
  xen: XenHypervisor,
  dom: Domain,
  [cmd, uop, count]: readonly number[],
): number {
  if (count > 256) return -Errno.EINVAL; // previrt's batch limit (Xen preempts instead)
  const op =
    cmd === GnttabOp.map_grant_ref
      ? { size: GnttabMap.size, run: mapGrant }
      : cmd === GnttabOp.unmap_grant_ref
        ? { size: GnttabUnmap.size, run: unmapGrant }
        : cmd === GnttabOp.setup_table
          ? { size: GnttabSetup.size, run: setupTable }
          : cmd === GnttabOp.copy
            ? { size: GnttabCopy.size, run: copyGrant }
            : cmd === GnttabOp.query_size
              ? { size: GnttabQuery.size, run: querySize }
              : undefined;
  if (op === undefined) return -Errno.ENOSYS;
  for (let k = 0; k < count; k++) {
    // GUEST-CONTROLLED: every field of every operation, read through copyFromGuest.
    const at = (uop + k * op.size) >>> 0;
    const raw = xen.copyFromGuest(dom, at, op.size);
    if (raw === undefined) return -Errno.EFAULT;
    const out = op.run(xen, dom, new DataView(raw.buffer));
    if (out < 0) xen.grantCounters.errors++;
    if (!xen.copyToGuest(dom, at, raw)) return -Errno.EFAULT;
  }
  return 0;
}

type Op = (xen: XenHypervisor, dom: Domain, v: DataView) => number;

/** A domain by the ID an operation names (DOMID_SELF: the caller). */
function domainById(xen: XenHypervisor, caller: Domain, id: number): Domain | undefined {
  if (id === DOMID_SELF) return caller;
  const d = xen.domains[id];
  return d !== undefined && d.alive ? d : undefined;
}

/** setup_table {u16 dom; u32 nr_frames; s16 status; u32 frame_list}: the table's frames. */
const setupTable: Op = (xen, dom, v) => {
  const status = (s: number): number => {
    v.setInt16(GnttabSetup.status, s, true);
    return s;
  };
  const target = v.getUint16(GnttabSetup.dom, true);
  if (target !== DOMID_SELF && target !== dom.id) return status(GNTST.permission_denied);
  const n = v.getUint32(GnttabSetup.nr_frames, true);
  if (n === 0 || n > GRANT_FRAMES_MAX) return status(GNTST.general_error);
  const table = dom.grantTable;
  if (table.frames.length < n) {
    const more = xen.frames.allocate(dom.id, n - table.frames.length);
    if (more === undefined) return status(GNTST.no_device_space);
    for (const mfn of more) {
      xen.machine.ram.fill(0, mfn * 4096, mfn * 4096 + 4096);
      xen.frames.noPageTable[mfn] = 1;
      xen.setM2p(mfn, INVALID_P2M_ENTRY);
    }
    table.frames.push(...more);
  }
  const list = new Uint8Array(n * 4);
  const lv = new DataView(list.buffer);
  for (let k = 0; k < n; k++) lv.setUint32(k * 4, table.frames[k], true);
  if (!xen.copyToGuest(dom, v.getUint32(GnttabSetup.frame_list, true), list))
    return status(GNTST.bad_virt_addr);
  return status(GNTST.okay);
};

/** query_size {u32 nr_frames (out); u32 max_nr_frames (out); u16 dom; s16 status}. */
const querySize: Op = (_xen, dom, v) => {
  const target = v.getUint16(GnttabQuery.dom, true);
  if (target !== DOMID_SELF && target !== dom.id) {
    v.setInt16(GnttabQuery.status, GNTST.permission_denied, true);
    return GNTST.permission_denied;
  }
  v.setUint32(GnttabQuery.nr_frames, dom.grantTable.frames.length, true);
  v.setUint32(GnttabQuery.max_nr_frames, GRANT_FRAMES_MAX, true);
  v.setInt16(GnttabQuery.status, GNTST.okay, true);
  return GNTST.okay;
};

/** The machine address of a granter's entry, or undefined for a reference beyond its table. */
function entryAddress(granter: Domain, ref: number): number | undefined {
  const frame = granter.grantTable.frames[Math.floor(ref / GRANT_ENTRIES_PER_FRAME)];
  if (frame === undefined || ref < 0) return undefined;
  return frame * 4096 + (ref % GRANT_ENTRIES_PER_FRAME) * GRANT_ENTRY_SIZE;
}

interface Entry {
  at: number;
  flags: number;
  domid: number;
  frame: number;
}

function readEntry(xen: XenHypervisor, granter: Domain, ref: number): Entry | undefined {
  const at = entryAddress(granter, ref);
  if (at === undefined) return undefined;
  const ram = xen.machine.ram;
  return {
    at,
    flags: ram[at] | (ram[at + 1] << 8),
    domid: ram[at + 2] | (ram[at + 3] << 8),
    frame: (ram[at + 4] | (ram[at + 5] << 8) | (ram[at + 6] << 16) | (ram[at + 7] << 24)) >>> 0,
  };
}

/** The machine frame `granter`'s entry `ref` names (whatever its flags), for the toolstack. */
export function grantedFrame(xen: XenHypervisor, granter: Domain, ref: number): number | undefined {
  return readEntry(xen, granter, ref)?.frame;
}

function writeFlags(xen: XenHypervisor, at: number, flags: number): void {
  xen.cpu.writePhysical(at, 2, flags & 0xffff);
}

/**
 * Checks that `grantee` may use `granter`'s entry `ref` (for writing, too, if `write`): the
 * entry permits access to it, and names a frame the granter owns that is no page table.
 */
function checkEntry(
  xen: XenHypervisor,
  granter: Domain,
  grantee: Domain,
  ref: number,
  write: boolean,
): Entry | number {
  const e = readEntry(xen, granter, ref);
  if (e === undefined) return GNTST.bad_gntref;
  if ((e.flags & GTF.type_mask) !== GTF.permit_access || e.domid !== grantee.id)
    return GNTST.permission_denied;
  if (write && (e.flags & GTF.readonly) !== 0) return GNTST.permission_denied;
  if (!xen.frames.ownedBy(granter, e.frame) || xen.frames.noPageTable[e.frame] !== 0)
    return GNTST.bad_page;
  const t = xen.frames.type[e.frame];
  if (t === FrameType.l1 || t === FrameType.l2) return GNTST.bad_page;
  return e;
}

/**
 * map_grant_ref {u64 host_addr; u32 flags; u32 ref; u16 dom; s16 status; u32 handle;
 * u64 dev_bus_addr}: host_addr is a guest-physical address in the caller's grant window; with
 * GNTMAP_device_map, dev_bus_addr is the address its device's DMA uses (the same).
 */
const mapGrant: Op = (xen, dom, v) => {
  const status = (s: number): number => {
    v.setInt16(GnttabMap.status, s, true);
    return s;
  };
  const flags = v.getUint32(GnttabMap.flags, true);
  if ((flags & (GNTMAP.host_map | GNTMAP.device_map)) === 0) return status(GNTST.general_error);
  const readonly = (flags & GNTMAP.readonly) !== 0;
  const granter = domainById(xen, dom, v.getUint16(GnttabMap.dom, true));
  if (granter === undefined || granter === dom) return status(GNTST.bad_domain);
  const hostAddr = v.getUint32(GnttabMap.host_addr, true);
  const slot = Math.floor(hostAddr / 4096) - dom.p2m.length;
  if (
    v.getUint32(GnttabMap.host_addr + 4, true) !== 0 ||
    hostAddr % 4096 !== 0 ||
    slot < 0 ||
    slot >= GRANT_WINDOW_PAGES ||
    dom.grantTable.windowFrame(slot) !== undefined
  )
    return status(GNTST.bad_virt_addr);
  const ref = v.getUint32(GnttabMap.ref, true);
  const table = granter.grantTable;
  let active = table.active.get(ref);
  if (active !== undefined && active.grantee !== dom.id) return status(GNTST.permission_denied);
  // A new mapping checks the entry again (its readonly bit may have changed); the frame is the
  // active record's, taken when the entry was first mapped.
  const e = checkEntry(xen, granter, dom, ref, !readonly);
  if (typeof e === 'number') return status(e);
  if (active !== undefined && e.frame !== active.mfn) return status(GNTST.general_error);
  if (!readonly && (active === undefined || active.writers === 0)) {
    if (xen.frames.getType(granter, e.frame, FrameType.writable) !== 0)
      return status(GNTST.bad_page);
  }
  let handle = dom.grantTable.maps.indexOf(undefined);
  if (handle < 0) handle = dom.grantTable.maps.length;
  if (active === undefined) {
    active = { ref, grantee: dom.id, mfn: e.frame, readers: 0, writers: 0 };
    table.active.set(ref, active);
  }
  if (readonly) active.readers++;
  else active.writers++;
  writeFlags(xen, e.at, e.flags | GTF.reading | (active.writers > 0 ? GTF.writing : 0));
  dom.grantTable.maps[handle] = { granter: granter.id, ref, mfn: e.frame, slot, readonly };
  xen.grantCounters.maps++;
  xen.scheduler.workFor(granter);
  // Applying a mapping: as one validated page-table entry (cost-model.md, Xen rows).
  xen.cpu.charge(xen.costs.xenPteUpdate);
  v.setUint32(GnttabMap.handle, handle, true);
  const bus = (flags & GNTMAP.device_map) !== 0 ? hostAddr : 0;
  v.setUint32(GnttabMap.dev_bus_addr, bus, true);
  v.setUint32(GnttabMap.dev_bus_addr + 4, 0, true);
  return status(GNTST.okay);
};

/** unmap_grant_ref {u64 host_addr; u64 dev_bus_addr; u32 handle; s16 status}. */
const unmapGrant: Op = (xen, dom, v) => {
  const status = (s: number): number => {
    v.setInt16(GnttabUnmap.status, s, true);
    return s;
  };
  const handle = v.getUint32(GnttabUnmap.handle, true);
  const m = dom.grantTable.maps[handle];
  if (m === undefined) return status(GNTST.bad_handle);
  const hostAddr = v.getUint32(GnttabUnmap.host_addr, true);
  if (hostAddr !== 0 && hostAddr !== (dom.p2m.length + m.slot) * 4096)
    return status(GNTST.bad_virt_addr);
  dom.grantTable.maps[handle] = undefined;
  releaseMapping(xen, m);
  xen.grantCounters.unmaps++;
  const granter = xen.domains[m.granter];
  if (granter !== undefined) xen.scheduler.workFor(granter);
  xen.cpu.charge(xen.costs.xenPteUpdate);
  return status(GNTST.okay);
};

/**
 * One mapping gone: the granter's counts, type reference and entry flags follow. A destroyed
 * granter (destroy.ts) has no table any more; its frame, kept for the mapping, is freed with the
 * last mapping of it.
 */
export function releaseMapping(xen: XenHypervisor, m: GrantMapping): void {
  const granter = xen.domains[m.granter];
  const active = granter?.grantTable.active.get(m.ref);
  if (granter === undefined || active === undefined) return; // cannot happen while counts hold
  if (m.readonly) active.readers--;
  else if (--active.writers === 0) xen.frames.putType(active.mfn);
  const e = readEntry(xen, granter, m.ref);
  if (active.readers + active.writers === 0) {
    granter.grantTable.active.delete(m.ref);
    if (e !== undefined) writeFlags(xen, e.at, e.flags & ~(GTF.reading | GTF.writing));
    if (granter.state === 'destroyed' && !granter.grantTable.activeFrame(active.mfn))
      xen.freeFrame(active.mfn);
  } else if (active.writers === 0 && e !== undefined) {
    writeFlags(xen, e.at, e.flags & ~GTF.writing);
  }
}

/**
 * copy: `len` bytes from source to dest, each side {u32 ref or frame; u16 domid; u16 offset}.
 * A side flagged as a grant reference is an entry of domain `domid` that permits the caller
 * (read for the source, write for the destination); the other side is the caller's own page,
 * named by its pseudo-physical frame. Charged as a REP MOVSD of the bytes.
 */
const copyGrant: Op = (xen, dom, v) => {
  const status = (s: number): number => {
    v.setInt16(GnttabCopy.status, s, true);
    return s;
  };
  const len = v.getUint16(GnttabCopy.len, true);
  const flags = v.getUint16(GnttabCopy.flags, true);
  /** The domains whose grants the copy uses: the work is theirs (scheduler.ts, workFor). */
  const granters: Domain[] = [];
  const side = (at: number, isRef: boolean, write: boolean): number => {
    const value = v.getUint32(at, true);
    const offset = v.getUint16(at + 6, true);
    if (offset + len > 4096) return GNTST.bad_copy_arg;
    if (!isRef) {
      const id = v.getUint16(at + 4, true);
      if (id !== DOMID_SELF && id !== dom.id) return GNTST.permission_denied;
      const mfn = dom.p2m[value];
      if (mfn === undefined || !xen.frames.ownedBy(dom, mfn)) return GNTST.bad_page;
      if (write) {
        const t = xen.frames.type[mfn];
        if (t === FrameType.l1 || t === FrameType.l2) return GNTST.bad_page;
      }
      return mfn * 4096 + offset;
    }
    const granter = domainById(xen, dom, v.getUint16(at + 4, true));
    if (granter === undefined || granter === dom) return GNTST.bad_domain;
    const e = checkEntry(xen, granter, dom, value, write);
    if (typeof e === 'number') return e;
    granters.push(granter);
    return e.frame * 4096 + offset;
  };
  const from = side(GnttabCopy.source, (flags & GNTCOPY.source_gref) !== 0, false);
  if (from < 0) return status(from);
  const to = side(GnttabCopy.dest, (flags & GNTCOPY.dest_gref) !== 0, true);
  if (to < 0) return status(to);
  const ram = xen.machine.ram;
  const bytes = ram.slice(from, from + len);
  for (let k = 0; k < len; k++) xen.cpu.writePhysical(to + k, 1, bytes[k]);
  xen.cpu.charge(1 + Math.ceil(len / 4));
  xen.grantCounters.copies++;
  xen.grantCounters.copiedBytes += len;
  for (const g of granters) xen.scheduler.workFor(g);
  return status(GNTST.okay);
};
