/**
 * The mapping database (PI generic/mdb.h, shared/reference/l4.md "Flexpages and mapping
 * database"): one tree per frame, rooted at sigma0's mapping of it. Every other mapping is a
 * node derived from the mapping it was mapped from:
 *
 * - map: the receiver gets a child of the sender's node, with rights = item rights AND the
 *   sender's; a mapping the receiver had at that page is removed first (with its subtree), unless
 *   it is already a child of the same node, which is then upgraded (idempotent map);
 * - grant: the sender's node moves to the receiver (its subtree stays, downgraded to the new
 *   rights); sigma0's roots are only ever mapped;
 * - unmap(rights): every mapping derived from the caller's loses those rights, recursively (a
 *   mapping left with none goes, with its subtree); flush also takes them from the caller's own.
 *   It returns the referenced and written bits of the caller's mapping and all derived ones
 *   since the last query, from the page tables' accessed and dirty bits, and resets them.
 *
 * Each node is one page-table entry in its space (space.ts); every change of one is charged
 * 100 cycles (l4MapPage, "map or unmap one page").
 */
import { PTE_A, PTE_D, R, USER_LIMIT, W, type Fpage } from './abi.ts';
import type { PageTableMemory, Space } from './space.ts';

export interface MapNode {
  id: number;
  space: Space;
  vpn: number;
  frame: number;
  /** r 4, w 2, x 1; never 0 (a node without rights is removed). */
  rights: number;
  parent: MapNode | undefined;
  children: MapNode[];
}

export interface MapCounters {
  mapped: number;
  granted: number;
  unmapped: number;
  downgraded: number;
}

/** What the database needs beside the page tables. */
export interface MapEnvironment {
  readonly mem: PageTableMemory;
  /** Charges one page-table entry changed. */
  chargePage(): void;
  /** True if sigma0 may map this frame (its RAM, or device memory beyond RAM). */
  physicalFrame(frame: number): boolean;
  readonly counters: MapCounters;
}

/** A node as a snapshot keeps it: the tree in pre-order, parents before children. */
export type SavedNode = [
  id: number,
  space: number,
  vpn: number,
  frame: number,
  rights: number,
  parent: number,
];

export class MappingDb {
  private nextId = 1;

  constructor(private readonly env: MapEnvironment) {}

  /**
   * The node a space maps `vpn` with: in sigma0's physical space, the root of that frame
   * (created when first asked for, for the frames sigma0 owns).
   */
  source(space: Space, vpn: number): MapNode | undefined {
    const node = space.mappings.get(vpn);
    if (node !== undefined || !space.physical) return node;
    if (!this.env.physicalFrame(vpn)) return undefined;
    const root: MapNode = {
      id: this.nextId++,
      space,
      vpn,
      frame: vpn,
      rights: 7,
      parent: undefined,
      children: [],
    };
    space.mappings.set(vpn, root);
    return root;
  }

  /**
   * Maps (or grants) the pages of a send fpage into a receive window (PI's map_fpage: the larger
   * side is indexed by the send base). Returns false if kernel memory ran out part-way.
   */
  mapFpage(
    from: Space,
    send: Fpage,
    sndBase: number,
    to: Space,
    window: Fpage,
    grant: boolean,
  ): boolean {
    if (send.size === 0 || window.size === 0) return true;
    let srcBase: number;
    let dstBase: number;
    let size: number;
    if (send.size <= window.size) {
      srcBase = send.base;
      dstBase = window.base + (sndBase % window.size) - ((sndBase % window.size) % send.size);
      size = send.size;
    } else {
      const offset = (sndBase % send.size) - ((sndBase % send.size) % window.size);
      srcBase = send.base + offset;
      dstBase = window.base;
      size = window.size;
    }
    // The larger of the range and the sender's mappings decides how to walk (a whole address
    // space has a million pages, a sender a few hundred mappings).
    const pages = size / 4096;
    const first = srcBase / 4096;
    let vpns: number[];
    if (!from.physical && pages > from.mappings.size) {
      vpns = [...from.mappings.keys()]
        .filter((v) => v >= first && v < first + pages)
        .sort((a, b) => a - b);
    } else {
      vpns = [];
      for (let k = 0; k < pages; k++) vpns.push(first + k);
    }
    for (const vpn of vpns) {
      const dst = dstBase / 4096 + (vpn - first);
      if (vpn * 4096 >= USER_LIMIT || dst * 4096 >= USER_LIMIT) continue;
      const node = this.source(from, vpn);
      if (node === undefined) continue;
      if (!this.mapPage(node, to, dst, send.rights, grant)) return false;
    }
    return true;
  }

  /** One page: `node`'s frame into `to` at `vpn`. False if kernel memory ran out. */
  mapPage(node: MapNode, to: Space, vpn: number, itemRights: number, grant: boolean): boolean {
    const rights = itemRights & node.rights;
    if (rights === 0) return true;
    const existing = to.mappings.get(vpn);
    if (existing !== undefined) {
      // A page mapped onto itself, or onto one of the mappings it derives from, stays as it is
      // (replacing it would cut the source off its own tree).
      if (existing === node || isAncestor(existing, node)) return true;
      if (!grant && existing.parent === node) {
        const upgraded = existing.rights | rights;
        if (upgraded === existing.rights) return true;
        existing.rights = upgraded;
        if (!to.setPte(this.env.mem, vpn, node.frame, upgraded)) return false;
        this.env.chargePage();
        this.env.counters.mapped++;
        return true;
      }
      this.removeSubtree(existing);
    }
    // Sigma0's roots are only ever mapped: a granted root would leave its frame without one.
    if (grant && node.parent !== undefined) {
      if (!to.setPte(this.env.mem, vpn, node.frame, rights)) return false;
      node.space.mappings.delete(node.vpn);
      node.space.clearPte(this.env.mem, node.vpn);
      node.space = to;
      node.vpn = vpn;
      to.mappings.set(vpn, node);
      this.env.chargePage();
      this.env.counters.granted++;
      if (rights !== node.rights) {
        node.rights = rights;
        for (const c of [...node.children]) this.revoke(c, ~rights & 7);
      }
      return true;
    }
    const child: MapNode = {
      id: this.nextId++,
      space: to,
      vpn,
      frame: node.frame,
      rights,
      parent: node,
      children: [],
    };
    if (!to.setPte(this.env.mem, vpn, node.frame, rights)) return false;
    node.children.push(child);
    to.mappings.set(vpn, child);
    this.env.chargePage();
    this.env.counters.mapped++;
    return true;
  }

  /**
   * Unmap or flush one fpage of a space: returns the fpage's status bits (R referenced, W
   * written; x86 has no executed bit) over every page of it, collected before the revocation.
   */
  unmapFpage(space: Space, page: Fpage, flush: boolean): number {
    if (page.size === 0) return 0;
    const first = page.base / 4096;
    const pages = page.size / 4096;
    let vpns: number[];
    if (pages > space.mappings.size) {
      vpns = [...space.mappings.keys()]
        .filter((v) => v >= first && v < first + pages)
        .sort((a, b) => a - b);
    } else {
      vpns = [];
      for (let k = 0; k < pages; k++) if (space.mappings.has(first + k)) vpns.push(first + k);
    }
    let status = 0;
    for (const vpn of vpns) {
      const node = space.mappings.get(vpn);
      if (node === undefined) continue;
      status |= this.collectStatus(node);
      for (const c of [...node.children]) this.revoke(c, page.rights);
      if (flush && page.rights !== 0) this.revoke(node, page.rights);
    }
    return status;
  }

  /** Takes `rights` from a node and its subtree; a node left with none goes. */
  revoke(node: MapNode, rights: number): void {
    if ((node.rights & rights) === 0) return;
    const left = node.rights & ~rights;
    if (left === 0) {
      this.removeSubtree(node);
      return;
    }
    node.rights = left;
    node.space.setPte(this.env.mem, node.vpn, node.frame, left);
    this.env.chargePage();
    this.env.counters.downgraded++;
    for (const c of [...node.children]) this.revoke(c, rights);
  }

  /** Removes a node and everything derived from it (children first). */
  removeSubtree(node: MapNode): void {
    for (const c of [...node.children]) this.removeSubtree(c);
    node.space.mappings.delete(node.vpn);
    if (!node.space.physical) {
      node.space.clearPte(this.env.mem, node.vpn);
      this.env.chargePage();
      this.env.counters.unmapped++;
    }
    const parent = node.parent;
    if (parent !== undefined) {
      const k = parent.children.indexOf(node);
      if (k >= 0) parent.children.splice(k, 1);
    }
    node.children.length = 0;
  }

  /** R and W over a node and its subtree from the accessed and dirty bits, which it resets. */
  private collectStatus(node: MapNode): number {
    let status = 0;
    const visit = (n: MapNode): void => {
      if (!n.space.physical) {
        const bits = n.space.pteStatus(this.env.mem, n.vpn);
        if ((bits & PTE_A) !== 0) status |= R;
        if ((bits & PTE_D) !== 0) status |= W;
        if (n.space.resetPteStatus(this.env.mem, n.vpn)) this.env.chargePage();
      }
      for (const c of n.children) visit(c);
    };
    visit(node);
    return status;
  }

  /** Removes every mapping of a space (it is being deleted). */
  flushSpace(space: Space): void {
    const vpns = [...space.mappings.keys()].sort((a, b) => a - b);
    for (const vpn of vpns) {
      const node = space.mappings.get(vpn);
      if (node !== undefined) this.removeSubtree(node);
    }
  }

  // ---- snapshots ----------------------------------------------------------------------------

  /** Every node, each tree in pre-order (so children keep their order when rebuilt). */
  save(roots: Iterable<MapNode>): { nextId: number; nodes: SavedNode[] } {
    const nodes: SavedNode[] = [];
    const visit = (n: MapNode): void => {
      nodes.push([n.id, n.space.id, n.vpn, n.frame, n.rights, n.parent?.id ?? 0]);
      for (const c of n.children) visit(c);
    };
    for (const r of roots) visit(r);
    return { nextId: this.nextId, nodes };
  }

  /** Rebuilds the trees into the spaces (their page tables are machine memory, restored). */
  restore(
    saved: { nextId: number; nodes: SavedNode[] },
    spaces: Map<number, Space>,
    fail: (why: string) => never,
  ): void {
    const byId = new Map<number, MapNode>();
    for (const [id, spaceId, vpn, frame, rights, parentId] of saved.nodes) {
      const space = spaces.get(spaceId);
      if (space === undefined) fail(`node ${id}: no space ${spaceId}`);
      const parent = parentId === 0 ? undefined : byId.get(parentId);
      if (parentId !== 0 && parent === undefined)
        fail(`node ${id}: parent ${parentId} comes later or is missing`);
      if (space.mappings.has(vpn)) fail(`node ${id}: space ${spaceId} maps page ${vpn} twice`);
      const node: MapNode = { id, space, vpn, frame, rights, parent, children: [] };
      parent?.children.push(node);
      space.mappings.set(vpn, node);
      byId.set(id, node);
    }
    this.nextId = saved.nextId;
  }
}

export function isAncestor(a: MapNode, node: MapNode): boolean {
  for (let p = node.parent; p !== undefined; p = p.parent) if (p === a) return true;
  return false;
}
