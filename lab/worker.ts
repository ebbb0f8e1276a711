/**
 * The machine's Web Worker: builds the guest with the same factory as `previrt run`
 * (createGuest), runs it in slices of simulated time and yields between them, so console input
 * and pause requests get in and the page never blocks. Console output goes to the page in
 * batches, counters as samples a few times a second.
 */
import { describeEnd } from '../src/machine/Machine.ts';
import { flattenCounters, type CounterTree } from '../src/machine/counters.ts';
import { createGuest } from '../src/platforms/createGuest.ts';
import type { Guest } from '../src/platforms/platform.ts';
import type { FromWorker, Sample, ToWorker } from './protocol.ts';

const post = (message: FromWorker): void => postMessage(message);

/**
 * Whether compiled blocks can run here: they are built with `new Function`, which a strict
 * Content Security Policy (no 'unsafe-eval') forbids. Without it the CPU interprets every
 * instruction: the same results, cycles and counters, only slower.
 */
function compiledBlocksAllowed(): boolean {
  try {
    return (new Function('return 1') as () => number)() === 1;
  } catch {
    return false;
  }
}

const compiledBlocks = compiledBlocksAllowed();
let guest: Guest | undefined;
let running = false;
let generation = 0;
let pending: number[] = [];
let lastSample = 0;
const t0 = performance.now();

/** Host milliseconds one slice may take before the worker yields. */
const SLICE_MS = 30;

function flushConsole(): void {
  if (pending.length === 0) return;
  post({ type: 'console', bytes: Uint8Array.from(pending) });
  pending = [];
}

function sample(): void {
  if (guest === undefined) return;
  const stats = guest.stats();
  const s: Sample = {
    hostMs: performance.now() - t0,
    simulatedSeconds: stats.machine.simulatedSeconds,
    cycles: stats.machine.cycles,
    instructions: stats.machine.instructions,
    counters: [
      ['interrupts', stats.machine.irqs.reduce((a, b) => a + b, 0)],
      ...flattenCounters({ cpu: { ...stats.machine.cpu } } as unknown as CounterTree),
      ...(stats.hypervisor === undefined
        ? []
        : flattenCounters(stats.hypervisor.counters, stats.hypervisor.name)),
      ...(stats.vmm === undefined ? [] : flattenCounters(stats.vmm, 'vmm')),
    ],
  };
  post({ type: 'sample', sample: s });
}

function step(mine: number): void {
  if (mine !== generation || !running || guest === undefined) return;
  const machine = guest.machine;
  const start = performance.now();
  // Slices of 1 ms simulated until the host time slice is used up.
  const slice = Math.max(1, Math.floor(machine.costModel.hz / 1000));
  let end = machine.end;
  while (performance.now() - start < SLICE_MS) {
    machine.resume();
    end = machine.run(machine.cpu.cycles + slice);
    if (end.kind !== 'cycle-limit') break;
  }
  flushConsole();
  if (end !== undefined && end.kind !== 'cycle-limit') {
    running = false;
    sample();
    post({ type: 'state', state: 'ended', detail: describeEnd(end) });
    return;
  }
  if (performance.now() - lastSample > 250) {
    lastSample = performance.now();
    sample();
  }
  setTimeout(() => step(mine), 0);
}

onmessage = (event: MessageEvent<ToWorker>): void => {
  const m = event.data;
  switch (m.type) {
    case 'boot': {
      generation++;
      running = false;
      pending = [];
      const built = createGuest({
        platform: m.platform,
        kernel: m.kernel,
        kernelName: m.kernelName,
        cmdline: m.cmdline,
        console: (b) => pending.push(b),
      });
      if (typeof built === 'string') {
        guest = undefined;
        post({ type: 'error', message: built });
        return;
      }
      guest = built;
      guest.machine.cpu.blocksEnabled = compiledBlocks;
      running = true;
      post({ type: 'state', state: 'running' });
      const mine = generation;
      setTimeout(() => step(mine), 0);
      return;
    }
    case 'pause':
      if (!running) return;
      running = false;
      sample();
      post({ type: 'state', state: 'paused' });
      return;
    case 'resume':
      if (running || guest === undefined) return;
      if (guest.machine.end !== undefined && guest.machine.end.kind !== 'cycle-limit') return;
      running = true;
      post({ type: 'state', state: 'running' });
      setTimeout(() => step(generation), 0);
      return;
    case 'input':
      guest?.input(m.bytes);
      return;
  }
};

post({ type: 'ready', compiledBlocks });
