import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Exregs,
  fpage,
  Label,
  mapItem,
  NEVER,
  stringItem,
  tagLabel,
  timePeriod,
} from '../../../src/hypervisor/l4/abi.ts';
import { message, type L4Api } from '../../../src/hypervisor/l4/api.ts';
import type { Vm } from '../../../src/hypervisor/l4/resourceMonitor.ts';
import type { IpcResult, TsProgram } from '../../../src/hypervisor/l4/thread.ts';
import { xorshift32 } from '../../random.ts';
import { buildL4Guest } from './build.ts';
import { boot, runFor, type Booted } from './harness.ts';

// The l4 system-call fuzzer (guest/fuzz.c): an x86 thread making seeded random system calls,
// with an x86 partner in another space and the TypeScript threads below, the audit after every
// slice of the run. PREVIRT_FUZZ_SEEDS=N runs N seeds of each kind instead of 3 and 1.
const SEEDS = Number(process.env.PREVIRT_FUZZ_SEEDS ?? 3);
const CALLS = 4000;

const SCRATCH = 0x180000;
const PROGRESS = 0x160000;

/** T: answers with random messages (map items from the scratch area, strings), or not. */
class Echo implements TsProgram {
  constructor(private readonly next: () => number) {}
  start(api: L4Api): void {
    this.loop(api, api.wait());
  }
  ipcDone(api: L4Api, r: IpcResult): void {
    this.loop(api, r);
  }
  private loop(api: L4Api, first: IpcResult | undefined): void {
    const next = this.next;
    for (let r = first; r !== undefined;) {
      const page = (): number => SCRATCH + (next() % 128) * 4096;
      api.setAcceptor(next() % 4 === 0 ? 0 : fpage(page(), 12 + (next() % 2)), next() % 2 === 0);
      api.utcb.set(0x44, stringItem(next() % 9000, 0)[0]);
      api.utcb.set(0x48, SCRATCH + (next() % 0x80000));
      const items =
        next() % 2 === 0
          ? [
              ...mapItem(page(), fpage(page(), 12, next() & 7), next() % 4 === 0),
              ...stringItem(next() % 64, page()),
            ]
          : [];
      const timeout = next() % 2 === 0 ? NEVER : timePeriod(50 + (next() % 500));
      const reply = message(next() & 0xffff, [next(), next()], items);
      r =
        r.error !== 0 || next() % 4 === 0
          ? api.wait(timeout)
          : api.replyWait(r.from, reply, timeout);
    }
  }
}

/** W: every 2 ms, aborts the fuzzer's IPC if it made no progress since the last look. */
class Watchdog implements TsProgram {
  private last = -1;
  constructor(
    private readonly b: () => Booted,
    private readonly vm: () => Vm,
  ) {}
  start(api: L4Api): void {
    api.wait(timePeriod(2000));
  }
  ipcDone(api: L4Api): void {
    const m = this.b();
    const vm = this.vm();
    const view = new DataView(m.machine.ram.buffer);
    const progress = view.getUint32(vm.base + PROGRESS, true);
    const f = m.l4.lookup(vm.mainThread, undefined);
    if (f !== undefined && progress === this.last && f.ipc !== undefined)
      api.exchangeRegisters({
        dest: f.tid,
        control: Exregs.abortSend | Exregs.abortReceive,
        sp: 0,
        ip: 0,
        flags: 0,
        userHandle: 0,
        pager: 0,
      });
    this.last = progress;
    api.wait(timePeriod(2000));
  }
}

/** C: the fuzzer's exception handler: steps over INT n (a #GP at it), lets traps go on. */
class Catcher implements TsProgram {
  exceptions = 0;
  start(api: L4Api): void {
    api.wait();
  }
  ipcDone(api: L4Api, first: IpcResult): void {
    for (let r: IpcResult | undefined = first; r !== undefined;) {
      if (r.error === 0 && tagLabel(r.tag) === Label.exception && r.words.length >= 12) {
        this.exceptions++;
        const w = r.words.slice(0, 12);
        if (w[2] === 13 && (w[3] & 2) !== 0) w[0] += 2;
        r = api.replyWait(r.from, message(0, w));
      } else r = api.wait();
    }
  }
}

interface Outcome {
  calls: number;
  finished: boolean;
  counters: ReturnType<Booted['l4']['stats']>;
  exceptions: number;
}

/** One fuzzer machine: runs until the guest is done or stops making progress. */
function fuzzOnce(seed: number, calls: number, privileged: boolean): Outcome {
  const fuzz = buildL4Guest('fuzz');
  const m = boot({
    machine: { memoryMb: 32 },
    vms: [
      {
        image: fuzz,
        imageName: 'fuzz.elf',
        memoryBytes: 2 << 20,
        stack: 0x180000,
        noStart: true,
        privileged,
      },
    ],
  });
  const vm = m.vms[0];
  const next = xorshift32(seed * 0x9e3779b9);
  const t = vm.createThread({ program: new Echo(next) });
  const w = vm.createThread({
    program: new Watchdog(
      () => m,
      () => vm,
    ),
  });
  const catcher = new Catcher();
  const c = vm.createThread({ program: catcher });
  const sp = 0x180000 - 24;
  const args = new Uint8Array(24);
  new DataView(args.buffer).setUint32(4, seed >>> 0, true);
  new DataView(args.buffer).setUint32(8, calls, true);
  new DataView(args.buffer).setUint32(12, t, true);
  new DataView(args.buffer).setUint32(16, w, true);
  new DataView(args.buffer).setUint32(20, c, true);
  vm.write(sp, args);
  vm.start(vm.mainThread, { ip: m.entries[0], sp, exceptionHandler: c });
  const view = new DataView(m.machine.ram.buffer);
  let progress = 0;
  let stalled = 0;
  let finished = false;
  for (let slice = 0; slice < 4000 && stalled < 3; slice++) {
    const end = runFor(m, 5_000_000);
    assert.deepEqual(m.l4.audit(), [], `seed ${seed}, slice ${slice}`);
    const now = view.getUint32(vm.base + PROGRESS, true);
    if (end.kind === 'exit') {
      finished = true;
      progress = now;
      break;
    }
    // Every thread blocked for good (the guest deleted its watchdog, or wedged itself).
    if (end.kind === 'halted') {
      progress = now;
      break;
    }
    assert.equal(end.kind, 'cycle-limit', `seed ${seed}: ${JSON.stringify(end)}`);
    stalled = now === progress ? stalled + 1 : 0;
    progress = now;
  }
  return { calls: progress, finished, counters: m.l4.stats(), exceptions: catcher.exceptions };
}

test(`l4 system-call fuzzer: ${SEEDS} seeds of ${CALLS} random calls from an x86 thread, audited`, () => {
  let calls = 0;
  let finished = 0;
  const seen = { timeout: 0, nonExisting: 0, canceled: 0, overflow: 0, xferTimeout: 0 };
  const pages = { mapped: 0, granted: 0, unmapped: 0, downgraded: 0 };
  let exceptions = 0;
  let pageFaults = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    // A run that wedges the guest (it can: it unmaps and grants its own pages) goes on anew.
    let left = CALLS;
    for (let round = 0; left > 0 && round < 5; round++) {
      const o = fuzzOnce(seed + 1000 * round, left, false);
      calls += o.calls;
      left -= o.calls;
      if (o.finished) finished++;
      const c = o.counters as unknown as {
        ipcErrors: typeof seen;
        pages: typeof pages;
        ipc: { pageFault: number };
      };
      for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k] += c.ipcErrors[k];
      for (const k of Object.keys(pages) as (keyof typeof pages)[]) pages[k] += c.pages[k];
      exceptions += o.exceptions;
      pageFaults += c.ipc.pageFault;
    }
  }
  assert.ok(calls >= SEEDS * 3000, `${calls} calls`);
  if (SEEDS >= 3) assert.ok(calls >= 10_000, `${calls} calls`);
  assert.ok(finished >= 1);
  // The fuzzer reached the error paths and the mapping database's deep paths.
  for (const [k, n] of Object.entries(seen))
    assert.ok(n > 0, `no ${k} errors: ${JSON.stringify(seen)}`);
  for (const [k, n] of Object.entries(pages))
    assert.ok(n > 0, `no pages ${k}: ${JSON.stringify(pages)}`);
  assert.ok(
    exceptions > 50 && pageFaults > 50,
    `${exceptions} exceptions, ${pageFaults} page faults`,
  );
});

test('l4 system-call fuzzer, privileged: the same calls from a space that may create and delete', () => {
  let calls = 0;
  let created = 0;
  for (let seed = 1; seed <= Math.max(1, Math.round(SEEDS / 3)); seed++) {
    let left = 2000;
    for (let round = 0; left > 0 && round < 10; round++) {
      const o = fuzzOnce(seed * 77 + 1000 * round, left, true);
      calls += o.calls;
      left -= Math.max(o.calls, 1);
      created += (o.counters as unknown as { threadsCreated: number }).threadsCreated;
    }
  }
  assert.ok(calls > 500, `${calls} calls`);
  assert.ok(created > 8, `${created} threads created`);
});
