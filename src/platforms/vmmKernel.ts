/**
 * The kernel a platform with the in-place VMM boots: an afterburned multiboot ELF. A Linux
 * bzImage is refused by name (pre-virtualized Linux is not supported yet), anything else by the
 * VMM's loader (no `.afterburn` section, a malformed ELF).
 */
import { isLinuxKernel } from '../loader/linux.ts';
import { readAfterburned, type AfterburnedKernel } from '../vmm/load.ts';
import type { GuestConfig } from './platform.ts';

export function readVmmKernel(config: GuestConfig, platform: string): AfterburnedKernel | string {
  if (isLinuxKernel(config.kernel))
    return `${config.kernelName}: a Linux bzImage; the ${platform} platform boots afterburned multiboot kernels only (pre-virtualized Linux is not supported yet: use --hypervisor none)`;
  return readAfterburned(config.kernel, config.kernelName);
}
