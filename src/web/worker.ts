// The machine's Web Worker: builds the guest with createGuest, runs it in slices of host time
// so the page's messages (console input, pause) get a look in between, and posts the console
// bytes and counter samples back. Compiled blocks need `new Function`; under a Content Security
// Policy that forbids it the CPU interprets every instruction (the same cycles and counters).
import { describeEnd } from '../machine/Machine.ts';
import { counterTotal, flattenCounters, type CounterTree } from '../machine/counters.ts';
import { decodeBytes, encodeBytes } from '../machine/state.ts';
import { createGuest } from '../platforms/createGuest.ts';
import { migrationRefusal } from '../platforms/migrate.ts';
import type { Guest } from '../platforms/platform.ts';
import { restoreGuest } from '../platforms/restoreGuest.ts';
import { saveGuest } from '../platforms/snapshot.ts';
import { runNetperf } from '../bench/netperf/run.ts';
import { migrateLive } from './migrate.ts';
import type { FromWorker, NetperfRowRequest, Sample, ToWorker } from './protocol.ts';
import { readSnapshotFile, writeSnapshotFile } from './snapshotFile.ts';

interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((event: { data: ToWorker }) => void) | null;
}
const scope = self as unknown as WorkerScope;
const post = (m: FromWorker, transfer: Transferable[] = []): void => scope.postMessage(m, transfer);

/** Whether this realm may compile code at run time (a strict CSP forbids it). */
function evalAllowed(): string | undefined {
  try {
    const f = new Function('return 1') as () => number;
    return f() === 1 ? undefined : 'new Function returned the wrong value';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
const evalRefusal = evalAllowed();

function modeOf(): { compiled: boolean; reason?: string } {
  return evalRefusal === undefined ? { compiled: true } : { compiled: false, reason: evalRefusal };
}

/** Host milliseconds a slice of guest execution may take before the worker yields. */
const SLICE_MS = 25;
/** Host milliseconds between counter samples. */
const SAMPLE_MS = 250;
/** The console bytes a snapshot keeps (its last ones), so a loaded one shows where it was. */
const TRANSCRIPT_BYTES = 1 << 20;

let guest: Guest | undefined;
let generation = 0;
let paused = false;
let pending: number[] = [];
/** The guest's console output since boot, its last TRANSCRIPT_BYTES (chunks as posted). */
let transcript: Uint8Array[] = [];
let transcriptBytes = 0;
let bootMs = 0;
let lastSample = { hostMs: 0, instructions: 0 };
/**
 * Where simulated time was tied to host time (at boot and resume): an idle guest (a shell
 * waiting for a key) skips to its next timer at once, so without this it would race through
 * simulated seconds and keep a host core busy; it never runs ahead of the host clock.
 */
let pace = { hostMs: 0, seconds: 0 };
/**
 * The boot's `pauseOn` text while it has not appeared: `at` is how many of `pending`'s bytes
 * were looked at, `tail` the last bytes before them (a text split across two chunks is found).
 * It is looked for after each chunk of simulated time, so the pause falls on the same cycle
 * however fast the host is.
 */
let watch: { text: string; at: number; tail: string } | undefined;

/** Whether the console has printed the watched text by now (then it is watched no more). */
function consoleShows(): boolean {
  if (watch === undefined || pending.length === watch.at) return false;
  let seen = watch.tail;
  for (let i = watch.at; i < pending.length; i++) seen += String.fromCharCode(pending[i]);
  watch.at = pending.length;
  if (seen.includes(watch.text)) {
    watch = undefined;
    return true;
  }
  watch.tail = seen.slice(Math.max(0, seen.length - (watch.text.length - 1)));
  return false;
}

/** Host milliseconds simulated time is ahead of the host clock since `pace` was set. */
function ahead(g: Guest): number {
  const simulatedMs = (g.machine.cpu.cycles / g.machine.costModel.hz - pace.seconds) * 1000;
  return simulatedMs - (performance.now() - pace.hostMs);
}

function setPace(g: Guest): void {
  pace = { hostMs: performance.now(), seconds: g.machine.cpu.cycles / g.machine.costModel.hz };
}

function flushConsole(): void {
  if (pending.length === 0) return;
  const bytes = Uint8Array.from(pending);
  pending = [];
  if (watch !== undefined) watch.at = 0;
  transcript.push(bytes);
  transcriptBytes += bytes.length;
  while (transcriptBytes - transcript[0].length >= TRANSCRIPT_BYTES)
    transcriptBytes -= transcript.shift()!.length;
  post({ type: 'console', bytes });
}

function joined(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out.subarray(Math.max(0, out.length - TRANSCRIPT_BYTES));
}

/**
 * What the lab keeps beside the guest in a snapshot (its `extra`): the console so far. A
 * snapshot from `previrt run` has none of it (its extra is null).
 */
interface LabExtra {
  lab: { console: string };
}

function transcriptOf(extra: unknown): Uint8Array {
  const lab = (extra as Partial<LabExtra> | null)?.lab;
  if (lab === undefined || typeof lab.console !== 'string') return new Uint8Array(0);
  try {
    return decodeBytes(lab.console, 'extra.lab.console');
  } catch {
    return new Uint8Array(0);
  }
}

/** Makes `g` the guest that runs (after a boot, a move or a load) and tells the page. */
function adopt(g: Guest): void {
  g.machine.cpu.blocksEnabled = evalRefusal === undefined;
  guest = g;
  lastSample = {
    hostMs: performance.now() - bootMs,
    instructions: g.machine.cpu.counters.instructions,
  };
  setPace(g);
  post({
    type: 'guest',
    guest: {
      platform: g.platform,
      kernelName: g.config.kernelName,
      cmdline: g.config.cmdline ?? '',
      migrationRefusal: migrationRefusal(g),
    },
  });
}

/** The guest ended while the worker had it outside `step` (a pre-copy): say so as step does. */
function endedMeanwhile(g: Guest): boolean {
  const end = g.machine.end;
  if (end === undefined || end.kind === 'cycle-limit') return false;
  flushConsole();
  sample(g);
  post({ type: 'ended', reason: describeEnd(end) });
  if (guest === g) guest = undefined;
  return true;
}

function start(): void {
  const gen = generation;
  setTimeout(() => step(gen), 0);
}

function sample(g: Guest): void {
  const stats = g.stats();
  const m = stats.machine;
  const now = performance.now() - bootMs;
  const dt = now - lastSample.hostMs;
  const tree: CounterTree = { machine: m.cpu as unknown as CounterTree };
  if (stats.hypervisor !== undefined) tree[stats.hypervisor.name] = stats.hypervisor.counters;
  if (stats.vmm !== undefined) tree.vmm = stats.vmm;
  const cpuTree = m.cpu as unknown as CounterTree;
  const s: Sample = {
    hostMs: now,
    simulatedSeconds: m.simulatedSeconds,
    cycles: m.cycles,
    instructions: m.instructions,
    mips: dt > 0 ? (m.instructions - lastSample.instructions) / dt / 1000 : 0,
    interrupts: m.irqs.reduce((a, b) => a + b, 0),
    traps: counterTotal(cpuTree.exceptions) + m.cpu.softwareInterrupts,
    counters: flattenCounters(tree),
  };
  lastSample = { hostMs: now, instructions: m.instructions };
  post({ type: 'sample', sample: s });
}

function step(gen: number): void {
  const g = guest;
  if (g === undefined || gen !== generation || paused) return;
  const machine = g.machine;
  const start = performance.now();
  const chunk = machine.costModel.hz / 100;
  let reason: string | undefined;
  let shown: string | undefined;
  try {
    while (performance.now() - start < SLICE_MS && ahead(g) <= 0) {
      const end = machine.run(machine.cpu.cycles + chunk);
      if (end.kind !== 'cycle-limit') {
        reason = describeEnd(end);
        break;
      }
      machine.resume();
      const text = watch?.text;
      if (consoleShows()) {
        shown = text;
        break;
      }
    }
  } catch (e) {
    reason = `the emulator failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  flushConsole();
  if (reason !== undefined || performance.now() - bootMs - lastSample.hostMs >= SAMPLE_MS) {
    sample(g);
  }
  if (reason !== undefined) {
    post({ type: 'ended', reason });
    guest = undefined;
    return;
  }
  if (shown !== undefined) {
    paused = true;
    sample(g);
    post({ type: 'state', state: 'paused', why: `the console printed ${JSON.stringify(shown)}` });
    return;
  }
  setTimeout(() => step(gen), Math.min(50, Math.max(0, ahead(g))));
}

/** The netperf rows one after another, each posted as it finishes (a row blocks the worker). */
function netperfRows(
  rows: NetperfRowRequest[],
  payloadBytes: number,
  seed: number,
  k: number,
): void {
  if (k >= rows.length) {
    post({ type: 'netperf-done' });
    return;
  }
  const r = rows[k];
  try {
    const run = runNetperf({
      label: r.label,
      kernel: r.kernel,
      kernelName: r.kernelName,
      hypervisor: r.hypervisor,
      payloadBytes,
      seed,
    });
    post({
      type: 'netperf-row',
      row: {
        label: r.label,
        ok: run.ok,
        verdict: run.ok ? (run.resultLine ?? 'ok') : (run.error ?? 'failed'),
        throughputMbps: run.throughputMbps,
        cpuUtilisation: run.cpuUtilisation,
        cyclesPerByte: run.cyclesPerByte,
        hostSeconds: run.hostSeconds,
      },
    });
  } catch (e) {
    post({
      type: 'netperf-row',
      row: {
        label: r.label,
        ok: false,
        verdict: `the emulator failed: ${e instanceof Error ? e.message : String(e)}`,
        throughputMbps: 0,
        cpuUtilisation: 0,
        cyclesPerByte: 0,
        hostSeconds: 0,
      },
    });
  }
  setTimeout(() => netperfRows(rows, payloadBytes, seed, k + 1), 0);
}

/** Pauses the guest and posts its snapshot file (the console so far goes with it). */
async function save(g: Guest): Promise<void> {
  paused = true;
  flushConsole();
  sample(g);
  post({ type: 'state', state: 'paused' });
  try {
    // The state is taken now; the page may resume the guest while the file is compressed.
    const extra: LabExtra = { lab: { console: encodeBytes(joined(transcript)) } };
    const contents = saveGuest(g, extra);
    const name = `previrt-${g.platform}-${g.config.kernelName}-${contents.header.cycle}.pvsnap`;
    const bytes = await writeSnapshotFile(contents);
    post({ type: 'snapshot', bytes, name }, [bytes.buffer]);
  } catch (e) {
    post({ type: 'snapshot-failed', message: e instanceof Error ? e.message : String(e) });
  }
}

/**
 * Continues the snapshot in `bytes` in place of the current guest; a file that is not a good
 * snapshot is refused with one line and the current guest goes on as it was.
 */
async function load(bytes: Uint8Array, name: string): Promise<void> {
  const contents = await readSnapshotFile(bytes);
  if (typeof contents === 'string') {
    post({ type: 'load-failed', message: `${name}: ${contents}` });
    return;
  }
  // The restore runs nothing, so nothing reaches `pending` before the commit below.
  const g = restoreGuest(contents, { console: (b) => pending.push(b) });
  if (typeof g === 'string') {
    post({ type: 'load-failed', message: `${name}: ${g}` });
    return;
  }
  // The commit: the loaded guest replaces the current one.
  generation++;
  const console = transcriptOf((contents.state as { extra?: unknown }).extra);
  transcript = console.length > 0 ? [console] : [];
  transcriptBytes = console.length;
  pending = [];
  watch = undefined;
  paused = false;
  bootMs = performance.now();
  adopt(g);
  post({ type: 'mode', ...modeOf() });
  post({ type: 'loaded', name, cycle: g.machine.cpu.cycles, console });
  post({ type: 'state', state: 'running' });
  start();
}

scope.onmessage = (event) => {
  const m = event.data;
  switch (m.type) {
    case 'boot': {
      generation++;
      pending = [];
      transcript = [];
      transcriptBytes = 0;
      watch =
        m.pauseOn === undefined || m.pauseOn === ''
          ? undefined
          : { text: m.pauseOn, at: 0, tail: '' };
      const g = createGuest({
        platform: m.platform,
        kernel: m.kernel,
        kernelName: m.kernelName,
        cmdline: m.cmdline,
        memoryMb: m.memoryMb,
        console: (b) => pending.push(b),
      });
      if (typeof g === 'string') {
        guest = undefined;
        post({ type: 'error', message: g });
        return;
      }
      post({ type: 'mode', ...modeOf() });
      paused = false;
      bootMs = performance.now();
      adopt(g);
      post({ type: 'state', state: 'running' });
      start();
      return;
    }
    case 'pause':
      paused = true;
      if (guest !== undefined) sample(guest);
      post({ type: 'state', state: 'paused' });
      return;
    case 'resume':
      if (!paused) return;
      paused = false;
      if (guest !== undefined) setPace(guest);
      post({ type: 'state', state: 'running' });
      start();
      return;
    case 'input':
      guest?.input(m.bytes);
      return;
    case 'netperf':
      // The running guest, if any, stops: one machine at a time in this worker.
      generation++;
      guest = undefined;
      netperfRows(m.rows, m.payloadBytes, m.seed, 0);
      return;
    case 'migrate': {
      const g = guest;
      if (g === undefined) {
        post({ type: 'migrate-failed', message: 'no guest is running' });
        return;
      }
      // Both hosts are here: the pre-copy runs the source between this message and the next.
      const moved = migrateLive(g, {
        to: m.to,
        preCopy: m.preCopy,
        linkBitsPerSecond: m.linkBitsPerSecond,
        console: (b) => pending.push(b),
      });
      if (typeof moved === 'string') {
        post({ type: 'migrate-failed', message: moved });
        // The source is the guest still: it runs on from where the attempt left it, if it can.
        if (!endedMeanwhile(g)) g.machine.resume();
        return;
      }
      // The commit: the destination runs, the source is dropped (never run again).
      flushConsole();
      adopt(moved.guest);
      sample(moved.guest);
      post({ type: 'migrated', report: moved.report });
      return;
    }
    case 'save':
      if (guest === undefined) {
        post({ type: 'snapshot-failed', message: 'no guest to save' });
        return;
      }
      void save(guest);
      return;
    case 'load':
      void load(m.bytes, m.name);
      return;
  }
};
