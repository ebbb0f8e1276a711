/**
 * The microkernel's audit, as xen's frame-table audit (xen/frames.ts `audit`): everything the
 * isolation of VMs rests on, recomputed from scratch. Tests and the fuzzer run it; an empty list
 * means every invariant holds:
 *
 * - the mapping database is a forest: every node is where its space says, roots are sigma0's
 *   (frame = page), children point back at their parents, share their frame and have no right
 *   their parent lacks; no node names a frame of the kernel's;
 * - the page tables are the database: every present entry of a user slot of every space is backed
 *   by a node of that space with that frame and at least its rights (writable only with w), and
 *   every node has its entry; every page-table frame is the space's and counted; sigma0's
 *   physical space has no entries; the kernel slot holds exactly the GDT, TSS, I/O bitmap, KIP
 *   and the space's own UTCB pages;
 * - no frame of one VM's region is reachable from another VM's spaces unless a thread of the
 *   owning VM mapped it there (a node of the owning VM's spaces among its ancestors);
 * - every frame of the kernel's pool in use has exactly one use;
 * - threads, ready queues and IPC queues agree with each other.
 */
import {
  GDT_VIRT,
  IO_BITMAP_VIRT,
  KERNEL_SLOT,
  KIP_VIRT,
  PTE_P,
  PTE_RW,
  PTE_US,
  TSS_VIRT,
  UTCB_AREA,
  W,
} from './abi.ts';
import type { L4Kernel } from './L4.ts';
import type { MapNode } from './mapdb.ts';
import { PDE_USER, type Space } from './space.ts';

export function auditKernel(k: L4Kernel): string[] {
  const problems: string[] = [];
  const problem = (why: string): void => {
    if (problems.length < 50) problems.push(why);
  };
  const read = (maddr: number): number => k.mem.read32(maddr);
  const uses = new Map<number, string>();
  const claim = (frame: number, what: string): void => {
    if (!k.pool.isUsed(frame)) problem(`${what}: frame ${frame} is not kernel memory in use`);
    const before = uses.get(frame);
    if (before !== undefined) problem(`frame ${frame} is both ${before} and ${what}`);
    uses.set(frame, what);
  };
  const s = k.shared;
  claim(s.gdt, 'the GDT');
  claim(s.tss, 'the TSS');
  claim(s.kip, 'the KIP');
  claim(s.noPorts[0], 'the closed I/O bitmap');
  claim(s.noPorts[1], 'the closed I/O bitmap');

  const regions = k.resourceMonitor.regions();
  const regionOf = (frame: number): number | undefined =>
    regions.find((r) => frame * 4096 >= r.base && frame * 4096 < r.base + r.size)?.vm;

  const spaces = [...k.spaces.values()].sort((a, b) => a.id - b.id);
  for (const space of spaces) auditSpace(k, space, problem, claim, read, regionOf);

  // Threads and queues.
  const counts = new Map<Space, number>();
  for (const t of k.allThreads()) {
    if (t.space !== undefined) {
      if (k.spaces.get(t.space.id) !== t.space)
        problem(`thread 0x${t.tid.toString(16)}: its space is gone`);
      counts.set(t.space, (counts.get(t.space) ?? 0) + 1);
    }
    if (
      t.kind === 'x86' &&
      t.utcbAddress >= 0 &&
      t.space?.utcbMachineAddress(t.utcbAddress) === undefined
    )
      problem(`thread 0x${t.tid.toString(16)}: its UTCB page is missing`);
    for (const sender of t.senders)
      if (sender.state !== 'sending' || sender.ipc?.to !== t.tid)
        problem(
          `thread 0x${sender.tid.toString(16)} waits in 0x${t.tid.toString(16)}'s queue but does not send to it`,
        );
    if (t.state === 'sending' && t.kind !== 'irq') {
      const dest = k.lookup(t.ipc?.to ?? 0, t);
      if (dest === undefined || !dest.senders.includes(t))
        problem(`thread 0x${t.tid.toString(16)} sends but is in no queue`);
    }
    if (t.queued && !(t.runnable && k.ready[t.priority].includes(t)))
      problem(`thread 0x${t.tid.toString(16)} is marked queued but is not ready in its queue`);
  }
  for (const space of spaces)
    if ((counts.get(space) ?? 0) !== space.threads)
      problem(`space ${space.id}: counts ${space.threads} threads, has ${counts.get(space) ?? 0}`);
  k.ready.forEach((q, p) => {
    for (const t of q) {
      if (!t.queued || t.priority !== p || !t.runnable)
        problem(`ready queue ${p}: thread 0x${t.tid.toString(16)} does not belong`);
      if (q.indexOf(t) !== q.lastIndexOf(t))
        problem(`ready queue ${p}: thread 0x${t.tid.toString(16)} twice`);
    }
  });
  if (k.current !== undefined && (k.current.queued || k.current.kind !== 'x86'))
    problem('the current thread is queued or not an x86 thread');
  if (uses.size !== k.pool.inUse)
    problem(`kernel memory: ${k.pool.inUse} frames in use, ${uses.size} accounted for`);
  return problems;
}

function auditSpace(
  k: L4Kernel,
  space: Space,
  problem: (why: string) => void,
  claim: (frame: number, what: string) => void,
  read: (maddr: number) => number,
  regionOf: (frame: number) => number | undefined,
): void {
  const name = `space ${space.id}`;
  claim(space.pd, `${name}'s page directory`);
  claim(space.kernelL1, `${name}'s kernel page table`);
  for (const [page, frame] of space.utcbPages) claim(frame, `${name}'s UTCB page ${page}`);
  if (space.ioBitmap !== undefined) space.ioBitmap.forEach((f) => claim(f, `${name}'s I/O bitmap`));

  // The kernel slot.
  if (read(space.pd * 4096 + KERNEL_SLOT * 4) !== ((space.kernelL1 << 12) | PDE_USER) >>> 0)
    problem(`${name}: the kernel slot's entry is wrong`);
  const expected = new Map<number, number>();
  const ports = space.ioBitmap ?? k.shared.noPorts;
  expected.set((GDT_VIRT >>> 12) & 0x3ff, k.shared.gdt);
  expected.set((TSS_VIRT >>> 12) & 0x3ff, k.shared.tss);
  expected.set((IO_BITMAP_VIRT >>> 12) & 0x3ff, ports[0]);
  expected.set(((IO_BITMAP_VIRT >>> 12) + 1) & 0x3ff, ports[1]);
  expected.set((KIP_VIRT >>> 12) & 0x3ff, k.shared.kip);
  for (const [page, frame] of space.utcbPages)
    expected.set(((UTCB_AREA >>> 12) + page) & 0x3ff, frame);
  const user = new Set([(KIP_VIRT >>> 12) & 0x3ff]);
  for (const page of space.utcbPages.keys()) user.add(((UTCB_AREA >>> 12) + page) & 0x3ff);
  for (let i = 0; i < 1024; i++) {
    const e = read(space.kernelL1 * 4096 + i * 4);
    const want = expected.get(i);
    if (want === undefined ? e !== 0 : (e & PTE_P) === 0 || e >>> 12 !== want)
      problem(`${name}: kernel page-table entry ${i} is 0x${e.toString(16)}`);
    if (want !== undefined && ((e & PTE_US) !== 0) !== user.has(i))
      problem(`${name}: kernel page-table entry ${i} has the wrong user bit`);
  }

  // User slots: page tables against nodes.
  const perSlot = new Map<number, number>();
  for (const vpn of space.mappings.keys())
    perSlot.set(vpn >>> 10, (perSlot.get(vpn >>> 10) ?? 0) + 1);
  for (let slot = 0; slot < KERNEL_SLOT; slot++) {
    const pde = read(space.pd * 4096 + slot * 4);
    const table = space.l1[slot];
    if (table < 0) {
      if (pde !== 0) problem(`${name}: slot ${slot} has entry 0x${pde.toString(16)} and no table`);
      if (!space.physical && (perSlot.get(slot) ?? 0) > 0)
        problem(`${name}: slot ${slot} has mappings and no table`);
      continue;
    }
    claim(table, `${name}'s page table ${slot}`);
    if (space.physical) problem(`${name} (physical) has a page table`);
    if (pde !== ((table << 12) | PDE_USER) >>> 0) problem(`${name}: slot ${slot}'s entry is wrong`);
    let present = 0;
    for (let i = 0; i < 1024; i++) {
      const pte = read(table * 4096 + i * 4);
      if ((pte & PTE_P) === 0) {
        if (pte !== 0) problem(`${name}: a non-present entry holds 0x${pte.toString(16)}`);
        continue;
      }
      present++;
      const vpn = slot * 1024 + i;
      const node = space.mappings.get(vpn);
      if (node === undefined) {
        problem(`${name}: page 0x${(vpn * 4096).toString(16)} is mapped with no mapping node`);
        continue;
      }
      if (pte >>> 12 !== node.frame)
        problem(`${name}: page 0x${(vpn * 4096).toString(16)} maps another frame than its node`);
      if ((pte & PTE_RW) !== 0 && (node.rights & W) === 0)
        problem(`${name}: page 0x${(vpn * 4096).toString(16)} is writable without the right`);
      if ((pte & PTE_US) === 0)
        problem(`${name}: page 0x${(vpn * 4096).toString(16)} is not a user page`);
    }
    if (present !== space.l1Count[slot])
      problem(`${name}: slot ${slot} counts ${space.l1Count[slot]} entries, has ${present}`);
    if (present !== (perSlot.get(slot) ?? 0))
      problem(`${name}: slot ${slot} has ${present} entries for ${perSlot.get(slot) ?? 0} nodes`);
    if (present === 0) problem(`${name}: slot ${slot}'s table is empty but kept`);
  }

  // The nodes: the tree and isolation.
  for (const [vpn, node] of space.mappings) {
    const at = `${name} page 0x${(vpn * 4096).toString(16)}`;
    if (node.space !== space || node.vpn !== vpn) problem(`${at}: the node is filed elsewhere`);
    if (node.rights <= 0 || node.rights > 7) problem(`${at}: rights ${node.rights}`);
    if (node.frame < k.memory.reservedEnd) problem(`${at}: maps kernel frame ${node.frame}`);
    for (const c of node.children)
      if (c.parent !== node) problem(`${at}: a child points elsewhere`);
    const parent = node.parent;
    if (parent === undefined) {
      if (!space.physical || node.frame !== vpn) problem(`${at}: a root outside sigma0's space`);
      continue;
    }
    if (!parent.children.includes(node)) problem(`${at}: its parent does not know it`);
    if (parent.frame !== node.frame) problem(`${at}: another frame than its parent`);
    if ((node.rights & ~parent.rights) !== 0) problem(`${at}: rights its parent lacks`);
    if (parent.space.mappings.get(parent.vpn) !== parent)
      problem(`${at}: its parent is not in its space`);
    const owner = regionOf(node.frame);
    if (owner !== undefined && space.vm >= 0 && owner !== space.vm && !mappedBy(node, owner))
      problem(
        `${at}: vm ${space.vm} reaches frame ${node.frame} of vm ${owner}, which no thread of vm ${owner} mapped it`,
      );
  }
}

/** A node of a space of `vm` is among the node's ancestors: that VM mapped it on. */
function mappedBy(node: MapNode, vm: number): boolean {
  for (let p = node.parent; p !== undefined; p = p.parent) if (p.space.vm === vm) return true;
  return false;
}
