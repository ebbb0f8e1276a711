/**
 * The raw PC (`none`): the kernel owns the machine. The loader puts it into machine memory and
 * starts the CPU at its entry as `qemu-system-i386 -kernel` does: a Linux bzImage (recognised
 * by its setup header) through the Linux boot protocol, with the modules as its initrd; any
 * other kernel through multiboot. An afterburned kernel runs its NOP padding as it is.
 */
import { bootLinux, isLinuxKernel } from '../loader/linux.ts';
import { bootMultiboot } from '../loader/multiboot.ts';
import type { Platform } from './platform.ts';

export const rawPlatform: Platform = {
  name: 'none',
  summary: 'the raw PC: the kernel owns ring 0 and every device',
  counterColumns: [],
  prepare(config) {
    const linux = isLinuxKernel(config.kernel);
    if (linux) {
      const withArgs = (config.modules ?? []).find((m) => /\s/.test(m.string.trim()));
      if (withArgs !== undefined)
        return `${withArgs.name}: a Linux initrd takes no arguments (got '${withArgs.string}')`;
    }
    return (machine) => {
      const request = {
        kernel: config.kernel,
        kernelName: config.kernelName,
        cmdline: config.cmdline ?? '',
      };
      const error = linux
        ? bootLinux(machine, { ...request, initrd: config.modules ?? [] })
        : bootMultiboot(machine, { ...request, modules: config.modules ?? [] });
      if (error !== undefined) return error.message;
      return {
        input: (bytes) => machine.uart.receive(bytes),
        physicalMemory: () => machine.ram,
      };
    };
  },
};
