/**
 * A machine running previrt's `l4` with VMs built by its resource monitor from ELF images: what
 * the microkernel's own tests run (each VM's image is loaded at its guest-physical addresses and
 * its main thread started at the entry). Afterburned guest kernels will come through the
 * in-place VMM's l4 backend instead.
 */
import { parseElf, LoadError } from '../../loader/elf.ts';
import { createMachine, type Machine, type MachineConfig } from '../../machine/Machine.ts';
import { L4Kernel, type L4Options } from './L4.ts';
import type { Vm, VmConfig } from './resourceMonitor.ts';

export interface L4VmImage extends VmConfig {
  /** An ELF32 image linked at guest-physical addresses (mapAt + them, as its threads see them). */
  image: Uint8Array;
  imageName?: string;
  /** The main thread's stack pointer (default: the top of the VM's memory, as the VM sees it). */
  stack?: number;
  /** Words put at the stack pointer (arguments of the main thread's entry, after its return address). */
  arguments?: number[];
  /** The main thread's pager and exception handler (default: the resource monitor). */
  pager?: number;
  exceptionHandler?: number;
  /** Do not start the main thread (the caller starts it, after making threads of its own). */
  noStart?: boolean;
}

export interface L4MachineConfig {
  machine?: Omit<MachineConfig, 'serialOut'>;
  /** Console output of the kernel and of the resource monitor's console service. */
  console?: (byte: number) => void;
  kernel?: Omit<L4Options, 'console'>;
  vms?: L4VmImage[];
}

export interface L4Machine {
  machine: Machine;
  l4: L4Kernel;
  vms: Vm[];
  /** Each VM's entry point. */
  entries: number[];
}

export function createL4Machine(config: L4MachineConfig = {}): L4Machine | string {
  const machine = createMachine({ ...config.machine, serialOut: config.console });
  if (typeof machine === 'string') return machine;
  let l4: L4Kernel;
  try {
    l4 = new L4Kernel(machine, { ...config.kernel, console: config.console });
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const vms: Vm[] = [];
  const entries: number[] = [];
  for (const v of config.vms ?? []) {
    const name = v.imageName ?? 'image';
    const image = parseElf(v.image, name);
    if (image instanceof LoadError) return image.message;
    const vm = l4.resourceMonitor.createVm(v);
    if (typeof vm === 'string') return `${name}: ${vm}`;
    for (const s of image.segments) {
      const gpa = (s.vaddr - vm.mapAt) >>> 0;
      if (gpa + s.memsz > vm.size)
        return `${name}: a segment at 0x${s.vaddr.toString(16)} does not fit the VM`;
      vm.write(gpa, s.data);
    }
    const stack = v.stack ?? (vm.mapAt + vm.size) >>> 0;
    const args = v.arguments ?? [];
    const sp = (stack - 4 * (args.length + 1)) >>> 0;
    const words = new Uint8Array(4 * (args.length + 1));
    const view = new DataView(words.buffer);
    args.forEach((a, k) => view.setUint32(4 * (k + 1), a >>> 0, true));
    vm.write((sp - vm.mapAt) >>> 0, words);
    if (v.noStart !== true)
      vm.start(vm.mainThread, {
        ip: image.entry,
        sp,
        pager: v.pager,
        exceptionHandler: v.exceptionHandler,
      });
    vms.push(vm);
    entries.push(image.entry);
  }
  return { machine, l4, vms, entries };
}
