/**
 * Counters as data (DESIGN.md decision 4: every run reports the raw counts behind its cycles).
 * A component that is not the machine's own — a hypervisor, the in-place VMM — names its
 * counters in a tree, and tools print, store and subtract trees without knowing the names.
 */

/**
 * Counters by name, nested by group: `{ hypercalls: { sched_op: 701 }, upcalls: 756 }`. Every
 * leaf is a count; tools print the tree as it is (`xen.hypercalls.sched_op 701`), so a
 * hypervisor's counters reach the user without the tools knowing their names.
 */
export interface CounterTree {
  [name: string]: number | CounterTree;
}

/** b − a leaf by leaf (missing leaves count 0); leaves that did not change are left out. */
export function counterDelta(a: CounterTree, b: CounterTree): CounterTree {
  const out: CounterTree = {};
  for (const [k, v] of Object.entries(b)) {
    const before = a[k];
    if (typeof v === 'number') {
      const d = v - (typeof before === 'number' ? before : 0);
      if (d !== 0) out[k] = d;
    } else {
      const d = counterDelta(typeof before === 'object' ? before : {}, v);
      if (Object.keys(d).length > 0) out[k] = d;
    }
  }
  return out;
}

/** The leaves of a tree as `[dotted.name, count]`, in the tree's order. */
export function flattenCounters(tree: CounterTree, prefix = ''): [string, number][] {
  const out: [string, number][] = [];
  for (const [k, v] of Object.entries(tree)) {
    const name = prefix === '' ? k : `${prefix}.${k}`;
    if (typeof v === 'number') out.push([name, v]);
    else out.push(...flattenCounters(v, name));
  }
  return out;
}

/** The sum of a group's leaves (a total of hypercalls by kind, say). */
export function counterTotal(tree: CounterTree | number | undefined): number {
  if (tree === undefined) return 0;
  if (typeof tree === 'number') return tree;
  return Object.values(tree).reduce<number>((sum, v) => sum + counterTotal(v), 0);
}
