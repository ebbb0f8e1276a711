// The machine's Web Worker: builds the guest with createGuest, runs it in slices of host time
// so the page's messages (console input, pause) get a look in between, and posts the console
// bytes and counter samples back. Compiled blocks need `new Function`; under a Content Security
// Policy that forbids it the CPU interprets every instruction (the same cycles and counters).
import { describeEnd } from '../machine/Machine.ts';
import { counterTotal, flattenCounters, type CounterTree } from '../machine/counters.ts';
import { createGuest } from '../platforms/createGuest.ts';
import type { Guest } from '../platforms/platform.ts';
import { runNetperf } from '../bench/netperf/run.ts';
import type { FromWorker, NetperfRowRequest, Sample, ToWorker } from './protocol.ts';

interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: { data: ToWorker }) => void) | null;
}
const scope = self as unknown as WorkerScope;
const post = (m: FromWorker): void => scope.postMessage(m);

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

/** Host milliseconds a slice of guest execution may take before the worker yields. */
const SLICE_MS = 25;
/** Host milliseconds between counter samples. */
const SAMPLE_MS = 250;

let guest: Guest | undefined;
let generation = 0;
let paused = false;
let pending: number[] = [];
let bootMs = 0;
let lastSample = { hostMs: 0, instructions: 0 };
/**
 * Where simulated time was tied to host time (at boot and resume): an idle guest (a shell
 * waiting for a key) skips to its next timer at once, so without this it would race through
 * simulated seconds and keep a host core busy; it never runs ahead of the host clock.
 */
let pace = { hostMs: 0, seconds: 0 };

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
  post({ type: 'console', bytes: Uint8Array.from(pending) });
  pending = [];
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
  try {
    while (performance.now() - start < SLICE_MS && ahead(g) <= 0) {
      const end = machine.run(machine.cpu.cycles + chunk);
      if (end.kind !== 'cycle-limit') {
        reason = describeEnd(end);
        break;
      }
      machine.resume();
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

scope.onmessage = (event) => {
  const m = event.data;
  switch (m.type) {
    case 'boot': {
      generation++;
      pending = [];
      const g = createGuest({
        platform: m.platform,
        kernel: m.kernel,
        kernelName: m.kernelName,
        cmdline: m.cmdline,
        console: (b) => pending.push(b),
      });
      if (typeof g === 'string') {
        guest = undefined;
        post({ type: 'error', message: g });
        return;
      }
      g.machine.cpu.blocksEnabled = evalRefusal === undefined;
      post(
        evalRefusal === undefined
          ? { type: 'mode', compiled: true }
          : { type: 'mode', compiled: false, reason: evalRefusal },
      );
      guest = g;
      paused = false;
      bootMs = performance.now();
      lastSample = { hostMs: 0, instructions: 0 };
      setPace(g);
      post({ type: 'state', state: 'running' });
      const gen = generation;
      setTimeout(() => step(gen), 0);
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
      {
        const gen = generation;
        setTimeout(() => step(gen), 0);
      }
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
  }
};
