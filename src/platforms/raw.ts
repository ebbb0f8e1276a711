/**
 * The raw PC (`none`): the kernel owns the machine. The multiboot loader puts it into machine
 * memory and starts the CPU at its entry as `qemu-system-i386 -kernel` does; an afterburned
 * kernel runs its NOP padding as it is.
 */
import { bootMultiboot } from '../loader/multiboot.ts';
import type { Platform } from './platform.ts';

export const rawPlatform: Platform = {
  name: 'none',
  summary: 'the raw PC: the kernel owns ring 0 and every device',
  counterColumns: [],
  prepare(config) {
    return (machine) => {
      const error = bootMultiboot(machine, {
        kernel: config.kernel,
        kernelName: config.kernelName,
        cmdline: config.cmdline ?? '',
        modules: config.modules ?? [],
      });
      if (error !== undefined) return error.message;
      return {
        input: (bytes) => machine.uart.receive(bytes),
        physicalMemory: () => machine.ram,
      };
    };
  },
};
