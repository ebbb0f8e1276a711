/**
 * The benchmark's tables: the seed's layout first (System | Xput | CPU util | cycles/byte, as in
 * reference/seed-results.md), then the counts behind each row, then the setting (cost model,
 * client, transfer size). Figures of several runs are means; the JSON keeps every run.
 */
import { counterTotal, type CounterTree } from '../../machine/counters.ts';
import { PLATFORMS } from '../../platforms/createGuest.ts';
import type { CounterColumn } from '../../platforms/platform.ts';
import type { NetperfRun, VirtualizationCounters } from './run.ts';

export interface NetperfRow {
  label: string;
  runs: NetperfRun[];
  /** The platform the row ran on, and how its kernel meets it (for the comparison line). */
  hypervisor?: string;
  virtualization?: 'none' | 'para' | 'pre' | 'reuse';
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function spread(xs: number[], digits: number): string {
  const [lo, hi] = [Math.min(...xs).toFixed(digits), Math.max(...xs).toFixed(digits)];
  return xs.length < 2 || lo === hi ? '' : ` (${lo}–${hi})`;
}

export function formatSize(bytes: number): string {
  if (bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30} GB`;
  if (bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MB`;
  if (bytes % 2 ** 10 === 0) return `${bytes / 2 ** 10} KB`;
  return `${bytes} bytes`;
}

/** Means of the figures of a row's runs. */
export function summarise(row: NetperfRow): {
  throughputMbps: number;
  cpuUtilisation: number;
  cyclesPerByte: number;
} {
  return {
    throughputMbps: mean(row.runs.map((r) => r.throughputMbps)),
    cpuUtilisation: mean(row.runs.map((r) => r.cpuUtilisation)),
    cyclesPerByte: mean(row.runs.map((r) => r.cyclesPerByte)),
  };
}

export function markdownTables(rows: NetperfRow[]): string {
  const out: string[] = [];
  const reuse = rows.filter((r) => r.virtualization === 'reuse');
  const first = rows.filter((r) => r.virtualization !== 'reuse');
  if (first.length > 0) out.push(...seedTable(first));
  if (reuse.length > 0) {
    if (first.length > 0) out.push('');
    out.push(
      'Device driver reuse: the guest reaches the network through a driver VM (the same kernel, with the NIC)',
      '',
      ...seedTable(reuse),
    );
  }
  out.push(...countTables(rows));
  return out.join('\n');
}

/** The seed's layout: System | Xput | CPU util | cycles/byte. */
function seedTable(rows: NetperfRow[]): string[] {
  const out: string[] = [];
  out.push('| System | Xput [Mb/s] | CPU util | cycles/byte |', '|---|---|---|---|');
  for (const row of rows) {
    if (row.runs.some((r) => !r.ok)) {
      // Figures of an unverified transfer mean nothing: the row says so instead.
      out.push(`| ${row.label} | failed | — | — |`);
      continue;
    }
    const s = summarise(row);
    const x = row.runs.map((r) => r.throughputMbps);
    const u = row.runs.map((r) => r.cpuUtilisation * 100);
    const c = row.runs.map((r) => r.cyclesPerByte);
    out.push(
      `| ${row.label} | ${s.throughputMbps.toFixed(1)}${spread(x, 1)} | ` +
        `${(s.cpuUtilisation * 100).toFixed(1)}%${spread(u, 1)} | ` +
        `${s.cyclesPerByte.toFixed(2)}${spread(c, 2)} |`,
    );
  }
  return out;
}

/** The counts behind each row, then the virtualization counters per platform. */
function countTables(rows: NetperfRow[]): string[] {
  const out: string[] = [];
  out.push('');
  out.push(
    '| System | interval [ms] | busy cycles | idle cycles | instructions | interrupts (NIC) | ' +
      'port I/O | MMIO r/w | exceptions | INT n | NIC rx frames / dropped | ' +
      'client segments / retransmitted / dup ACKs / timeouts | host [s] | guest MIPS |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const row of rows) {
    const m = (f: (r: NetperfRun) => number): string =>
      Math.round(mean(row.runs.map(f))).toString();
    const ms = mean(row.runs.map((r) => (r.intervalCycles / r.hz) * 1000));
    out.push(
      `| ${row.label} | ${ms.toFixed(2)} | ${m((r) => r.busyCycles)} | ${m((r) => r.idleCycles)} | ` +
        `${m((r) => r.counters.instructions)} | ` +
        `${m((r) => r.counters.interrupts)} (${m((r) => r.counters.nicInterrupts)}) | ` +
        `${m((r) => r.counters.portReads + r.counters.portWrites)} | ` +
        `${m((r) => r.counters.mmioReads)} / ${m((r) => r.counters.mmioWrites)} | ` +
        `${m((r) => r.counters.exceptions)} | ${m((r) => r.counters.softwareInterrupts)} | ` +
        `${m((r) => r.counters.nic.rxFrames)} / ${m((r) => r.counters.nic.rxDropped)} | ` +
        `${m((r) => r.sender.counters.segmentsSent)} / ${m((r) => r.sender.counters.retransmissions)} / ` +
        `${m((r) => r.sender.counters.duplicateAcks)} / ${m((r) => r.sender.counters.timeouts)} | ` +
        `${mean(row.runs.map((r) => r.hostSeconds)).toFixed(1)} | ` +
        `${mean(row.runs.map((r) => r.guestMips)).toFixed(1)} |`,
    );
  }
  const virtualized = rows.filter((row) => row.runs.every((r) => r.counters.virtualization));
  if (virtualized.length > 0) out.push('', ...virtualizationTables(virtualized));
  return out;
}

/** "a 3, b 2" from counts by name, largest first; "—" when empty. */
function byKind(counts: Record<string, number>, name: (k: string) => string = (k) => k): string {
  const e = Object.entries(counts).filter(([, v]) => v > 0);
  if (e.length === 0) return '—';
  return e
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${name(k)} ${Math.round(v)}`)
    .join(', ');
}

/** The counts of a group (or one count) in a tree, by its dotted path; {} if absent. */
function at(tree: CounterTree, path: string): CounterTree | number {
  let node: CounterTree | number | undefined = tree;
  for (const part of path.split('.')) {
    node = typeof node === 'object' ? node[part] : undefined;
    if (node === undefined) return {};
  }
  return node;
}

/** Adds tree `b` into `a`, leaf by leaf. */
function addInto(a: CounterTree, b: CounterTree): void {
  for (const [k, v] of Object.entries(b)) {
    const mine = a[k];
    if (typeof v === 'number') a[k] = (typeof mine === 'number' ? mine : 0) + v;
    else {
      const sub: CounterTree = typeof mine === 'object' ? mine : {};
      addInto(sub, v);
      a[k] = sub;
    }
  }
}

/** Means over runs, leaf by leaf, of one level of counts (a group's kinds). */
function meanGroup(groups: (CounterTree | number)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const g of groups)
    if (typeof g === 'object')
      for (const [k, v] of Object.entries(g)) out[k] = (out[k] ?? 0) + counterTotal(v);
  for (const k of Object.keys(out)) out[k] /= groups.length;
  return out;
}

function cell(column: CounterColumn, runs: VirtualizationCounters[]): string {
  // The other VMs' counters: summed over the VMs, leaf by leaf.
  const others = (r: VirtualizationCounters): CounterTree => {
    const sum: CounterTree = {};
    for (const t of Object.values(r.vms ?? {})) if (typeof t === 'object') addInto(sum, t);
    return sum;
  };
  const trees = runs.map((r) =>
    column.source === 'hypervisor' ? r.hypervisor : column.source === 'vmm' ? r.vmm : others(r),
  );
  // A para-virtualized kernel's row has no in-place VMM: nothing to count, not zero.
  if (trees.every((t) => Object.keys(t).length === 0)) return '—';
  const count = (path: string): string =>
    Math.round(mean(trees.map((t) => counterTotal(at(t, path))))).toString();
  const hex = (k: string): string => `0x${Number(k).toString(16)}`;
  switch (column.show) {
    case 'count':
      return count(column.paths[0]);
    case 'pair':
    case 'list':
      return column.paths.map(count).join(' / ');
    case 'by-kind': {
      const kinds = meanGroup(trees.map((t) => at(t, column.paths[0])));
      const total = Object.values(kinds).reduce((a, b) => a + b, 0);
      return `${Math.round(total)}: ${byKind(kinds)}`;
    }
    case 'by-vector':
      return byKind(meanGroup(trees.map((t) => at(t, column.paths[0]))), hex);
  }
}

/**
 * The counts behind the virtualized rows, over the same interval: what the hypervisor and the
 * in-place VMM did (README, "The xen-pre row and its counters"). One table per platform, with
 * the columns the platform names (src/platforms, `counterColumns`).
 */
function virtualizationTables(rows: NetperfRow[]): string[] {
  const out: string[] = [];
  const byPlatform = new Map<string, NetperfRow[]>();
  for (const row of rows) {
    const platform = row.runs[0].counters.virtualization!.platform;
    const name = row.virtualization === 'reuse' ? `${platform} reuse` : platform;
    byPlatform.set(name, [...(byPlatform.get(name) ?? []), row]);
  }
  for (const [name, group] of byPlatform) {
    const [platform, reuse] = name.split(' ');
    const p = PLATFORMS.get(platform);
    const columns = (reuse === undefined ? p?.counterColumns : p?.reuseColumns) ?? [];
    if (columns.length === 0) continue;
    if (out.length > 0) out.push('');
    out.push(
      `| System | ${columns.map((c) => c.title).join(' | ')} |`,
      `|---|${columns.map((c) => (c.show === 'count' || c.show === 'pair' || c.show === 'list' ? '---:' : '---')).join('|')}|`,
    );
    for (const row of group) {
      const runs = row.runs.map((r) => r.counters.virtualization!);
      out.push(`| ${row.label} | ${columns.map((c) => cell(c, runs)).join(' | ')} |`);
    }
  }
  return out;
}

/** The paragraph under the tables: what was measured, under which cost model. */
export function setting(rows: NetperfRow[]): string {
  const first = rows[0]?.runs[0];
  if (first === undefined) return '';
  const runs = rows[0].runs.length;
  const lines = [
    `Cost model ${first.costModel} (${(first.hz / 1e9).toFixed(1)} GHz). ` +
      `TCP stream of ${formatSize(first.payloadBytes)} in 32 KB messages, 256 KB socket buffer, ` +
      `${runs} run${runs === 1 ? '' : 's'} per row${runs > 1 ? ' (means; ranges in brackets where runs differ)' : ''}, ` +
      `seed${runs > 1 ? 's' : ''} ` +
      `${rows[0].runs.map((r) => r.seed).join(', ')}.`,
    'Client machine: the TypeScript peer on the far end of the 1 Gb/s link, limited only by the ' +
      'link (its own work costs the guest nothing). Interval: from its first SYN to the start of ' +
      "netserver's result line; the counts above are over that interval.",
  ];
  for (const row of rows)
    for (const r of row.runs)
      if (!r.ok) lines.push(`${row.label}, seed ${r.seed} failed: ${r.error}`);
  const ok = rows.filter((row) => row.runs.every((r) => r.ok));
  if (ok.length >= 2) {
    const base = summarise(ok[0]).cyclesPerByte;
    const vs = ok.slice(1).map((row) => {
      const d = ((summarise(row).cyclesPerByte - base) / base) * 100;
      return `${row.label} ${d >= 0 ? '+' : ''}${d.toFixed(2)}%`;
    });
    lines.push(`Cycles/byte vs ${ok[0].label}: ${vs.join(', ')}.`);
  }
  lines.push(...preVsPara(ok));
  lines.push(...isolation(rows));
  return lines.join('\n');
}

/** The client link's counters of a run with several clients (the driver VM's), if any. */
function linkClients(run: NetperfRun): CounterTree | undefined {
  for (const tree of Object.values(run.counters.virtualization?.vms ?? {})) {
    if (typeof tree !== 'object') continue;
    const link = tree.clientLink;
    if (typeof link === 'object' && typeof link.clients === 'object') return link.clients;
  }
  return undefined;
}

/**
 * Runs with a second client of the driver VM (run.ts `secondClient`): each client's frames on
 * the link and the times its share of the send ring was full, and each domain's busy cycles;
 * then the guest's throughput and its own cycles per byte against the first such row's.
 */
function isolation(rows: NetperfRow[]): string[] {
  const out: string[] = [];
  const earlier: { label: string; hypervisor?: string; mbps: number; own: number }[] = [];
  for (const row of rows)
    for (const run of row.runs) {
      const clients = linkClients(run);
      if (clients === undefined) continue;
      const n = (k: string, what: string): number => {
        const c = clients[k];
        const v = typeof c === 'object' ? c[what] : undefined;
        return typeof v === 'number' ? v : 0;
      };
      const pair = (what: string): string => `${n('0', what)} / ${n('1', what)}`;
      const hv = run.counters.virtualization?.hypervisor ?? {};
      // Xen's by domain (its scheduler's), l4's by VM (the kernel's).
      const sched = typeof hv.scheduler === 'object' ? hv.scheduler : {};
      const busy =
        typeof sched.busyCycles === 'object'
          ? sched.busyCycles
          : typeof hv.busyCycles === 'object'
            ? hv.busyCycles
            : {};
      const prefix = run.counters.virtualization?.platform === 'l4' ? 'vm' : 'dom';
      // Domains or VMs in the order built: the driver VM, the second client, the guest.
      const cycles = [0, 1, 2].map((d) => {
        const v = busy[`${prefix}${d}`];
        return typeof v === 'number' ? v : 0;
      });
      const own = cycles[2] / run.payloadBytes;
      out.push(
        `${row.label}, seed ${run.seed}: on the link, guest / second client: frames sent ` +
          `${pair('sent')}, delivered ${pair('delivered')}, not delivered ${pair('notDelivered')}, ` +
          `share full ${pair('full')} times; busy cycles driver VM / second client / guest ` +
          `${cycles.map((c) => (c / 1e6).toFixed(1)).join(' / ')} M (the guest's own ` +
          `${own.toFixed(2)} cycles/byte).`,
      );
      const d = (a: number, b: number): string => {
        const x = ((a - b) / b) * 100;
        return `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`;
      };
      for (const base of earlier.filter((e) => e.hypervisor === row.hypervisor))
        out.push(
          `${row.label} against ${base.label}: the guest's throughput ` +
            `${d(run.throughputMbps, base.mbps)}, its own cycles/byte ${d(own, base.own)}.`,
        );
      earlier.push({ label: row.label, hypervisor: row.hypervisor, mbps: run.throughputMbps, own });
    }
  return out;
}

/**
 * Per hypervisor with both rows: the pre-virtualized kernel's cycles/byte against the kernel
 * para-virtualized for the same hypervisor (issue 14's goal: within ±3%; the seed's Xen rows
 * differ by −0.1%).
 */
function preVsPara(rows: NetperfRow[]): string[] {
  const out: string[] = [];
  const hypervisors = new Set(rows.map((r) => r.hypervisor));
  for (const h of hypervisors) {
    const para = rows.find((r) => r.hypervisor === h && r.virtualization === 'para');
    const pre = rows.find((r) => r.hypervisor === h && r.virtualization === 'pre');
    if (para === undefined || pre === undefined) continue;
    const a = summarise(para).cyclesPerByte;
    const b = summarise(pre).cyclesPerByte;
    const d = ((b - a) / a) * 100;
    out.push(
      `Pre- vs para-virtualized on ${h}: ${pre.label} ${b.toFixed(2)} against ` +
        `${para.label} ${a.toFixed(2)} cycles/byte, ${d >= 0 ? '+' : ''}${d.toFixed(2)}% ` +
        `(goal: within ±3%).`,
    );
  }
  return out;
}
