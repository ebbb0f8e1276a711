// The lab page: picks a kernel, platform and command line, boots them in the machine's Web
// Worker (worker.ts), shows COM1 in xterm.js (typing goes to COM1) and the live counters in a
// table and a uPlot chart; moves the running guest between its xen and l4 hosts (migrate.ts,
// in the worker) and saves and loads snapshot files. The page never runs the emulator itself,
// so it never blocks.
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import nativeUrl from '../../guest/build/native/kernel.elf?url';
import afterburnedUrl from '../../guest/build/afterburned/kernel.elf?url';
import xenParaUrl from '../../guest/build/xen-para/kernel.elf?url';
import l4ParaUrl from '../../guest/build/l4-para/kernel.elf?url';
import type {
  FromWorker,
  GuestInfo,
  MigrationReport,
  NetperfRowResult,
  Sample,
  ToWorker,
} from './protocol.ts';

/** The bundled guest builds (guest/build), by the name the page shows. */
const KERNELS: [string, string][] = [
  ['native', nativeUrl],
  ['afterburned', afterburnedUrl],
  ['xen-para', xenParaUrl],
  ['l4-para', l4ParaUrl],
];

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`lab: no element #${id}`);
  return e as T;
}

const kernelSelect = el<HTMLSelectElement>('kernel');
const platformSelect = el<HTMLSelectElement>('platform');
const cmdlineInput = el<HTMLInputElement>('cmdline');
const pauseOnInput = el<HTMLInputElement>('pauseOn');
const memorySelect = el<HTMLSelectElement>('memory');
const bootButton = el<HTMLButtonElement>('boot');
const pauseButton = el<HTMLButtonElement>('pause');
const resumeButton = el<HTMLButtonElement>('resume');
const resetButton = el<HTMLButtonElement>('reset');
const status = el<HTMLSpanElement>('status');
const mode = el<HTMLSpanElement>('mode');
const drop = el<HTMLLabelElement>('drop');

let dropped: { name: string; bytes: Uint8Array } | undefined;
for (const [name] of KERNELS) kernelSelect.add(new Option(name, name));

const term = new Terminal({ cols: 80, rows: 30, convertEol: true, fontSize: 13 });
term.open(el('terminal'));

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker, transfer: Transferable[] = []): void => worker.postMessage(m, transfer);
const encoder = new TextEncoder();
term.onData((data) => send({ type: 'input', bytes: encoder.encode(data.replace(/\r/g, '\n')) }));

// --- counters and chart ---
const rows = new Map<string, HTMLTableCellElement>();
function row(label: string, value: string): void {
  let cell = rows.get(label);
  if (cell === undefined) {
    const tr = el<HTMLTableElement>('counters').tBodies[0].insertRow();
    tr.insertCell().textContent = label;
    cell = tr.insertCell();
    rows.set(label, cell);
  }
  cell.textContent = value;
}

const series: number[][] = [[], [], []];
const plot = new uPlot(
  {
    title: 'guest MIPS and interrupts/s (host time)',
    width: 420,
    height: 220,
    series: [
      { label: 'host s' },
      { label: 'guest MIPS', stroke: '#2a6', scale: 'mips' },
      { label: 'interrupts/s', stroke: '#c42', scale: 'irq' },
    ],
    axes: [{}, { scale: 'mips' }, { scale: 'irq', side: 1 }],
    scales: { x: { time: false } },
  },
  series as uPlot.AlignedData,
  el('chart'),
);
let lastIrq = { ms: 0, n: 0 };

/** The groups of counters the table shows by kind (their total, then the three largest). */
function byKind(counters: [string, number][], test: (name: string) => boolean): string {
  const picked = counters.filter(([n, v]) => test(n) && v > 0);
  const total = picked.reduce((a, [, v]) => a + v, 0);
  const top = picked
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([n, v]) => `${n.split('.').slice(-1)[0]} ${v}`);
  return top.length === 0 ? '0' : `${total} (${top.join(', ')})`;
}

function showSample(s: Sample): void {
  row('guest MIPS', s.mips.toFixed(1));
  row('simulated time', `${s.simulatedSeconds.toFixed(4)} s`);
  row('cycles', String(s.cycles));
  row('instructions', String(s.instructions));
  row('traps', String(s.traps));
  row('interrupts', String(s.interrupts));
  row(
    'hypercalls / IPCs',
    byKind(s.counters, (n) => /^(xen|l4)\./.test(n) && /hypercall|ipc|syscall/i.test(n)),
  );
  row(
    'VMM calls',
    byKind(s.counters, (n) => n.startsWith('vmm.')),
  );
  el('allCounters').textContent = s.counters.map(([n, v]) => `${n} ${v}`).join('\n');
  const irqRate =
    s.hostMs > lastIrq.ms ? ((s.interrupts - lastIrq.n) * 1000) / (s.hostMs - lastIrq.ms) : 0;
  lastIrq = { ms: s.hostMs, n: s.interrupts };
  series[0].push(s.hostMs / 1000);
  series[1].push(s.mips);
  series[2].push(irqRate);
  plot.setData(series as uPlot.AlignedData);
}

// --- controls ---
const migrateButton = el<HTMLButtonElement>('migrateButton');
const snapSave = el<HTMLButtonElement>('snapSave');
/** The guest the worker runs (its last 'guest' message), and the run's state. */
let current: GuestInfo | undefined;
let state: 'idle' | 'running' | 'paused' = 'idle';

/** The other host of a migration: xen <-> l4. */
function otherHost(platform: string): string | undefined {
  return platform === 'xen' ? 'l4' : platform === 'l4' ? 'xen' : undefined;
}

/** ` on PLATFORM` for the guest the worker runs, or nothing before it has said. */
function platformOn(): string {
  return current === undefined ? '' : ` on ${current.platform}`;
}

function setState(s: 'idle' | 'running' | 'paused', text?: string): void {
  state = s;
  const on = s !== 'idle' ? platformOn() : '';
  status.textContent = text ?? `${s}${on}`;
  status.dataset.state = s;
  pauseButton.disabled = s !== 'running';
  resumeButton.disabled = s !== 'paused';
  resetButton.disabled = s === 'idle';
  const to = current === undefined ? undefined : otherHost(current.platform);
  migrateButton.textContent = to === undefined ? 'Migrate' : `Migrate to ${to}`;
  // A paused guest moves too and stays paused (with pre-copy it runs on for the rounds' time on
  // the link, as any live migration's source does).
  migrateButton.disabled = s === 'idle' || to === undefined;
  snapSave.disabled = s === 'idle';
}

async function kernelBytes(): Promise<{ name: string; bytes: Uint8Array }> {
  if (dropped !== undefined && kernelSelect.value === `dropped:${dropped.name}`) return dropped;
  const entry = KERNELS.find(([n]) => n === kernelSelect.value) ?? KERNELS[0];
  const response = await fetch(entry[1]);
  if (!response.ok) throw new Error(`${entry[0]}: HTTP ${response.status}`);
  return { name: entry[0], bytes: new Uint8Array(await response.arrayBuffer()) };
}

async function boot(): Promise<void> {
  // At once, before the kernel's fetch: the last run's console and status are gone as soon as
  // Boot is clicked (neither its 'selftest: PASS' nor its 'ended: ...' can pass for this run's).
  term.reset();
  for (const s of series) s.length = 0;
  lastIrq = { ms: 0, n: 0 };
  status.textContent = 'loading the kernel';
  status.dataset.state = 'loading';
  let k: { name: string; bytes: Uint8Array };
  try {
    k = await kernelBytes();
  } catch (e) {
    setState('idle', `cannot load the kernel: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  const bytes = k.bytes.slice();
  send(
    {
      type: 'boot',
      kernel: bytes,
      kernelName: k.name,
      platform: platformSelect.value,
      cmdline: cmdlineInput.value,
      memoryMb: Number(memorySelect.value),
      pauseOn: pauseOnInput.value,
    },
    [bytes.buffer],
  );
  current = undefined;
  migMessage('', false);
  setState('running', 'booting');
}

bootButton.onclick = () => void boot();
resetButton.onclick = () => void boot();
pauseButton.onclick = () => send({ type: 'pause' });
resumeButton.onclick = () => send({ type: 'resume' });

drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add('over');
};
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = e.dataTransfer?.files[0];
  if (file === undefined) return;
  void file.arrayBuffer().then((buf) => {
    dropped = { name: file.name, bytes: new Uint8Array(buf) };
    const value = `dropped:${file.name}`;
    if (!Array.from(kernelSelect.options).some((o) => o.value === value)) {
      kernelSelect.add(new Option(`${file.name} (dropped)`, value));
    }
    kernelSelect.value = value;
  });
};

// --- netperf ---
/**
 * The rows of `previrt bench netperf` (src/bench/netperf/build.ts, CONFIGS) with the kernel and
 * platform each uses, and the seed's published cycles/byte for it (reference/seed-results.md,
 * the README's table: the poster's 2.8 GHz Pentium 4, 1 GB transferred).
 */
const NETPERF_ROWS: {
  key: string;
  label: string;
  kernel: string;
  hypervisor: string;
  seed: number;
}[] = [
  { key: 'native', label: 'native, raw', kernel: 'native', hypervisor: 'none', seed: 9.64 },
  { key: 'nops', label: 'NOPs, raw', kernel: 'afterburned', hypervisor: 'none', seed: 9.17 },
  {
    key: 'l4-para',
    label: 'L4Ka::Linux-style (l4-para)',
    kernel: 'l4-para',
    hypervisor: 'l4',
    seed: 9.77,
  },
  {
    key: 'l4-pre',
    label: 'L4Ka in-place VMM',
    kernel: 'afterburned',
    hypervisor: 'l4',
    seed: 10.22,
  },
  {
    key: 'xen-para',
    label: 'XenoLinux-style (xen-para)',
    kernel: 'xen-para',
    hypervisor: 'xen',
    seed: 11.29,
  },
  {
    key: 'xen-pre',
    label: 'Xen in-place VMM',
    kernel: 'afterburned',
    hypervisor: 'xen',
    seed: 11.28,
  },
];
const npRows = el<HTMLSpanElement>('npRows');
for (const r of NETPERF_ROWS) {
  const label = document.createElement('label');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.value = r.key;
  box.checked = r.key === 'native' || r.key === 'xen-pre';
  label.append(box, ` ${r.key}`);
  npRows.append(label);
}
const npResults: NetperfRowResult[] = [];
/** How many rows the current netperf run has. */
let npTotal = 0;
/** The short name of a result's row (its checkbox's), for the chart's axis and legend. */
function npKey(k: number): string {
  const label = npResults[k]?.label;
  return NETPERF_ROWS.find((r) => r.label === label)?.key ?? '';
}
// Two bars per row, side by side: previrt's to the left of the row's x, the seed's to the right
// (align -1 and 1). uPlot centres every bar series on x by default (align 0), so with the same
// size the seed's bar, drawn last, covered previrt's. The x scale runs half a row beyond the
// first and last rows so that their bars are not cut at the plot's edges.
const npPlot = new uPlot(
  {
    title: "cycles/byte: previrt and the seed's",
    width: 420,
    height: 220,
    series: [
      { label: 'row', value: (_u, v) => (v === null ? '--' : npKey(v)) },
      {
        label: 'previrt',
        fill: '#2a6',
        stroke: '#2a6',
        paths: uPlot.paths.bars?.({ size: [0.35], align: -1 }),
        points: { show: false },
        value: (_u, v) => (v === null ? '--' : v.toFixed(2)),
      },
      {
        label: 'seed',
        fill: '#888',
        stroke: '#888',
        paths: uPlot.paths.bars?.({ size: [0.35], align: 1 }),
        points: { show: false },
        value: (_u, v) => (v === null ? '--' : v.toFixed(2)),
      },
    ],
    scales: {
      x: { time: false, range: () => [-0.5, Math.max(0, npResults.length - 1) + 0.5] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: [
      {
        splits: () => npResults.map((_, k) => k),
        values: (_u, ticks) => ticks.map((t) => npKey(t)),
        grid: { show: false },
      },
      {},
    ],
  },
  [[], [], []],
  el('npChart'),
);

function showNetperfRow(r: NetperfRowResult): void {
  npResults.push(r);
  if (npResults.length < npTotal) {
    el<HTMLSpanElement>('npStatus').textContent =
      `running: ${npResults.length} of ${npTotal} row(s)`;
  }
  const seed = NETPERF_ROWS.find((x) => x.label === r.label)?.seed;
  const tr = el<HTMLTableElement>('npTable').tBodies[0].insertRow();
  const cells = [
    r.label,
    r.ok ? r.throughputMbps.toFixed(1) : '',
    r.ok ? `${(r.cpuUtilisation * 100).toFixed(1)}%` : '',
    r.ok ? r.cyclesPerByte.toFixed(2) : '',
    seed === undefined ? '' : seed.toFixed(2),
    r.verdict,
    r.hostSeconds.toFixed(1),
  ];
  for (const c of cells) tr.insertCell().textContent = c;
  tr.cells[5].className = r.ok ? 'ok' : 'bad';
  npPlot.setData([
    npResults.map((_, k) => k),
    npResults.map((x) => (x.ok ? x.cyclesPerByte : null)),
    npResults.map((x) => NETPERF_ROWS.find((y) => y.label === x.label)?.seed ?? 0),
  ]);
}

async function runNetperfRows(): Promise<void> {
  const picked = NETPERF_ROWS.filter((r) =>
    Array.from(npRows.querySelectorAll('input')).some((b) => b.checked && b.value === r.key),
  );
  if (picked.length === 0) return;
  el<HTMLButtonElement>('npRun').disabled = true;
  npTotal = picked.length;
  el<HTMLSpanElement>('npStatus').textContent = `running: 0 of ${npTotal} row(s)`;
  el<HTMLTableElement>('npTable').tBodies[0].replaceChildren();
  npResults.length = 0;
  npPlot.setData([[], [], []]);
  const rows = [];
  for (const r of picked) {
    const url = KERNELS.find(([n]) => n === r.kernel)?.[1] ?? '';
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    rows.push({ label: r.label, kernel: bytes, kernelName: r.kernel, hypervisor: r.hypervisor });
  }
  send({
    type: 'netperf',
    payloadBytes: Number(el<HTMLSelectElement>('npBytes').value),
    seed: Number(el<HTMLInputElement>('npSeed').value),
    rows,
  });
  // The worker stops the running guest, if any (one machine at a time): the status says so, or
  // keeps how the last run ended.
  setState('idle', state === 'idle' ? (status.textContent ?? 'idle') : 'stopped for netperf');
}
el<HTMLButtonElement>('npRun').onclick = () => void runNetperfRows();

// --- migrate ---
const migStatus = el<HTMLSpanElement>('migStatus');
function migMessage(text: string, bad: boolean): void {
  migStatus.textContent = text;
  migStatus.className = bad ? 'bad' : '';
}

migrateButton.onclick = () => {
  const to = current === undefined ? undefined : otherHost(current.platform);
  if (to === undefined) return;
  migrateButton.disabled = true;
  migMessage(`migrating to ${to}`, false);
  send({
    type: 'migrate',
    to,
    preCopy: el<HTMLInputElement>('migPreCopy').checked,
    linkBitsPerSecond: Number(el<HTMLSelectElement>('migLink').value),
  });
};

/** The move's figures as the pre-copy reported them: a line, and a table row per round. */
function showMigration(r: MigrationReport): void {
  const gbps = r.linkBitsPerSecond / 1e9;
  const preRounds = r.rounds.length - 1;
  migMessage(`moved ${r.from} → ${r.to}`, false);
  el('migSummary').textContent =
    `${r.from} → ${r.to} over ${gbps} Gb/s: ${r.rounds.length} rounds ` +
    `(${preRounds} pre-copy, 1 stop-and-copy), ${r.pagesSent} pages, ` +
    `${(r.bytesSent / 1024).toFixed(0)} KB; safe point ${r.safePoint}; ` +
    `downtime ${r.downtimeMs.toFixed(3)} ms, move ${r.totalMs.toFixed(3)} ms (simulated)`;
  const body = el<HTMLTableElement>('migTable').tBodies[0];
  body.replaceChildren();
  r.rounds.forEach((round, k) => {
    const tr = body.insertRow();
    const cells = [
      round.final ? 'stop' : String(k + 1),
      String(round.pages),
      String(round.zeroPages),
      String(round.skipped),
      (round.bytes / 1024).toFixed(0),
      round.ms.toFixed(3),
    ];
    for (const c of cells) tr.insertCell().textContent = c;
  });
}

// --- snapshot ---
const snapStatus = el<HTMLParagraphElement>('snapStatus');
const snapFile = el<HTMLInputElement>('snapFile');
const snapDrop = el<HTMLLabelElement>('snapDrop');
function snapMessage(text: string, bad: boolean): void {
  snapStatus.textContent = text;
  snapStatus.className = bad ? 'bad' : '';
}

snapSave.onclick = () => {
  snapMessage('saving', false);
  send({ type: 'save' });
};

function loadSnapshot(file: File): void {
  snapMessage(`loading ${file.name}`, false);
  void file.arrayBuffer().then((buf) => {
    const bytes = new Uint8Array(buf);
    send({ type: 'load', bytes, name: file.name }, [bytes.buffer]);
  });
}
snapFile.onchange = () => {
  const file = snapFile.files?.[0];
  if (file !== undefined) loadSnapshot(file);
  snapFile.value = '';
};
snapDrop.ondragover = (e) => {
  e.preventDefault();
  snapDrop.classList.add('over');
};
snapDrop.ondragleave = () => snapDrop.classList.remove('over');
snapDrop.ondrop = (e) => {
  e.preventDefault();
  snapDrop.classList.remove('over');
  const file = e.dataTransfer?.files[0];
  if (file !== undefined) loadSnapshot(file);
};

function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }),
  );
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

worker.onmessage = (event: MessageEvent<FromWorker>) => {
  const m = event.data;
  switch (m.type) {
    case 'mode':
      mode.className = `mode ${m.compiled ? 'compiled' : 'interpreted'}`;
      mode.textContent = m.compiled
        ? 'compiled blocks'
        : `interpreter: the page's Content Security Policy forbids new Function (${m.reason ?? ''})`;
      return;
    case 'console':
      term.write(m.bytes);
      return;
    case 'sample':
      showSample(m.sample);
      return;
    case 'state':
      // A guest that paused itself says why: `paused on xen: the console printed "..."`.
      setState(m.state, m.why === undefined ? undefined : `${m.state}${platformOn()}: ${m.why}`);
      return;
    case 'ended':
      setState('idle', `ended: ${m.reason}`);
      return;
    case 'error':
      setState('idle', `error: ${m.message}`);
      return;
    case 'netperf-row':
      showNetperfRow(m.row);
      return;
    case 'netperf-done':
      el<HTMLSpanElement>('npStatus').textContent = `done: ${npResults.length} row(s)`;
      el<HTMLButtonElement>('npRun').disabled = false;
      return;
    case 'guest':
      current = m.guest;
      platformSelect.value = m.guest.platform;
      if (m.guest.migrationRefusal !== undefined && otherHost(m.guest.platform) !== undefined)
        migMessage(m.guest.migrationRefusal, true);
      setState(state);
      return;
    case 'migrated':
      showMigration(m.report);
      setState(state);
      return;
    case 'migrate-failed':
      migMessage(`not moved: ${m.message}`, true);
      setState(state);
      return;
    case 'snapshot':
      download(m.bytes, m.name);
      snapMessage(`saved ${m.name} (${(m.bytes.length / 1024).toFixed(0)} KB)`, false);
      return;
    case 'snapshot-failed':
      snapMessage(`not saved: ${m.message}`, true);
      return;
    case 'loaded':
      // The snapshot's console so far, then the guest's own output goes on after it.
      term.reset();
      term.write(m.console);
      for (const x of series) x.length = 0;
      lastIrq = { ms: 0, n: 0 };
      snapMessage(`loaded ${m.name}: running on from cycle ${m.cycle}`, false);
      return;
    case 'load-failed':
      snapMessage(`not loaded: ${m.message}`, true);
      return;
  }
};
worker.onerror = (e) => setState('idle', `worker failed: ${e.message}`);
