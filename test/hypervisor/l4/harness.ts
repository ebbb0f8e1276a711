import assert from 'node:assert/strict';
import {
  createL4Machine,
  type L4Machine,
  type L4MachineConfig,
} from '../../../src/hypervisor/l4/machine.ts';
import type { L4State } from '../../../src/hypervisor/l4/state.ts';
import { Utcb } from '../../../src/hypervisor/l4/abi.ts';
import type { L4Api } from '../../../src/hypervisor/l4/api.ts';
import type { Vm, VmConfig } from '../../../src/hypervisor/l4/resourceMonitor.ts';
import type { IpcResult, Thread, TsProgram, UtcbView } from '../../../src/hypervisor/l4/thread.ts';
import type { MachineState } from '../../../src/machine/machineState.ts';
import { buildL4Guest } from './build.ts';

/** A machine with the microkernel and its console collected. */
export interface Booted extends L4Machine {
  console: () => string;
}

export function boot(config: L4MachineConfig): Booted {
  let out = '';
  const m = createL4Machine({
    machine: { memoryMb: 64 },
    ...config,
    console: (b) => {
      out += String.fromCharCode(b);
    },
  });
  if (typeof m === 'string') throw new Error(m);
  return { ...m, console: () => out };
}

/** The whole-system guest's configuration: one VM of 4 MB with the PIT (ports, IRQ 0). */
export function systemConfig(): L4MachineConfig {
  return {
    vms: [
      {
        image: buildL4Guest('system'),
        imageName: 'system.elf',
        memoryBytes: 4 << 20,
        devices: [{ name: 'pit', ioPorts: [{ base: 0x40, length: 4 }], irqs: [0] }],
      },
    ],
  };
}

/** A machine with no VM: the roots only. */
export function bare(memoryMb = 64): Booted {
  return boot({ machine: { memoryMb } });
}

export function audit(m: L4Machine): void {
  assert.deepEqual(m.l4.audit(), []);
}

/** The machine and the kernel as JSON data, as a snapshot file holds them. */
export function snapshot(m: L4Machine): { machine: MachineState; l4: L4State } {
  return JSON.parse(JSON.stringify({ machine: m.machine.save(), l4: m.l4.save() })) as {
    machine: MachineState;
    l4: L4State;
  };
}

/** A fresh build of `config` with a snapshot put back (the machine, then the kernel). */
export function restored(config: L4MachineConfig, s: ReturnType<typeof snapshot>): Booted {
  const m = boot(config);
  m.machine.restore(s.machine, () => m.l4.restore(s.l4, 'hypervisor'));
  m.machine.resume();
  return m;
}

/** A TypeScript thread's program for tests: keeps what its blocked calls returned. */
export class Recorder implements TsProgram {
  readonly results: IpcResult[] = [];
  onResult: ((api: L4Api, r: IpcResult) => void) | undefined;
  started: ((api: L4Api) => void) | undefined;
  constructor(start?: (api: L4Api) => void) {
    this.started = start;
  }
  start(api: L4Api): void {
    this.started?.(api);
  }
  ipcDone(api: L4Api, r: IpcResult): void {
    this.results.push(r);
    this.onResult?.(api, r);
  }
}

/** `jmp .` at guest-physical 0x1000: where parked x86 threads sit. */
export const PARK = 0x1000;

/**
 * A VM whose main thread is started at a `jmp .` and is the current thread (nothing ran yet: the
 * registers are the ones the start message gave it).
 */
export function parkedVm(m: L4Machine, config: Partial<VmConfig> = {}): { vm: Vm; main: Thread } {
  const vm = m.l4.resourceMonitor.createVm({ memoryBytes: 1 << 20, ...config });
  if (typeof vm === 'string') throw new Error(vm);
  vm.write(PARK, Uint8Array.of(0xeb, 0xfe));
  vm.start(vm.mainThread, { ip: vm.mapAt + PARK, sp: vm.mapAt + 0x8000 });
  const main = m.l4.lookup(vm.mainThread, undefined)!;
  return { vm, main };
}

export type Regs = {
  eax: number;
  ecx: number;
  edx: number;
  ebx: number;
  ebp: number;
  esi: number;
  edi: number;
};

/** The current x86 thread makes system call `vector` with these registers; returns them after. */
export function sys(m: L4Machine, vector: number, regs: Partial<Regs> = {}): Regs {
  const cpu = m.machine.cpu;
  cpu.eax = regs.eax ?? 0;
  cpu.ecx = regs.ecx ?? 0;
  cpu.edx = regs.edx ?? 0;
  cpu.ebx = regs.ebx ?? 0;
  cpu.ebp = regs.ebp ?? 0;
  cpu.esi = regs.esi ?? 0;
  cpu.edi = regs.edi ?? 0;
  m.l4.onEvent({ kind: 'software', vector });
  return {
    eax: cpu.eax,
    ecx: cpu.ecx,
    edx: cpu.edx,
    ebx: cpu.ebx,
    ebp: cpu.ebp,
    esi: cpu.esi,
    edi: cpu.edi,
  };
}

/** A thread's UTCB words. */
export function utcb(m: L4Machine, tid: number): UtcbView {
  return m.l4.utcbOf(m.l4.lookup(tid, undefined)!)!;
}

/** Writes a message into a thread's MRs (MR0 the tag). */
export function setMrs(m: L4Machine, tid: number, tag: number, words: number[] = []): void {
  const u = utcb(m, tid);
  u.set(Utcb.mr, tag);
  words.forEach((w, i) => u.set(Utcb.mr + 4 * (i + 1), w));
}

export function mrs(m: L4Machine, tid: number, n: number): number[] {
  const u = utcb(m, tid);
  return Array.from({ length: n }, (_, i) => u.get(Utcb.mr + 4 * i));
}

/** Maps `pages` pages of a VM's memory into its main space, as the resource monitor would. */
export function mapVmPages(m: L4Machine, vm: Vm, gpa: number, pages: number): void {
  const to = m.l4.lookup(vm.mainThread, undefined)!.space!;
  const size = pages * 4096;
  const ok = m.l4.mdb.mapFpage(
    m.l4.rootSpace,
    { base: vm.base + gpa, size, rights: 7 },
    vm.mapAt + gpa,
    to,
    { base: vm.mapAt + gpa, size, rights: 0 },
    false,
  );
  if (!ok) throw new Error('kernel memory');
}

export function api(m: L4Machine, tid: number): L4Api {
  return m.l4.lookup(tid, undefined)!.api!;
}

/** Little x86 programs for threads (hand-assembled, position-independent). */
export const code = {
  /** inc %ebx; jmp back */
  spin: [0x43, 0xeb, 0xfd],
  /** eax = nil, edx = any, ecx = 0 (never); int $0x30; inc %ebx; jmp back */
  waitLoop: [0x31, 0xc0, 0xba, 0xff, 0xff, 0xff, 0xff, 0x31, 0xc9, 0xcd, 0x30, 0x43, 0xeb, 0xf2],
  /** mov addr, %eax; inc %ebx; jmp back */
  readLoop: (address: number): number[] => [
    0xa1,
    address & 0xff,
    (address >>> 8) & 0xff,
    (address >>> 16) & 0xff,
    address >>> 24,
    0x43,
    0xeb,
    0xf8,
  ],
};

/** An x86 thread in the VM's main space running `bytes` placed at guest-physical `at`. */
export function x86Thread(
  m: L4Machine,
  vm: Vm,
  bytes: number[],
  at: number,
  priority?: number,
): Thread {
  vm.write(at, Uint8Array.from(bytes));
  const tid = vm.createThread({ priority });
  vm.start(tid, { ip: vm.mapAt + at, sp: vm.mapAt + at + 0xff0 });
  return m.l4.lookup(tid, undefined)!;
}

/** A thread's EBX (the programs above count their rounds there). */
export function ebx(m: L4Machine, t: Thread): number {
  return m.l4.current === t ? m.machine.cpu.ebx : t.ctx.regs[3];
}

/** Runs the machine on for `cycles` more (after an earlier run ended at its cycle limit). */
export function runFor(m: L4Machine, cycles: number): ReturnType<L4Machine['machine']['run']> {
  m.machine.resume();
  return m.machine.run(m.machine.cpu.cycles + cycles);
}
