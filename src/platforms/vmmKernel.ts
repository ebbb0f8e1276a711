/**
 * The kernel a platform with the in-place VMM boots: an afterburned multiboot ELF, or an
 * afterburned Linux bzImage (the kernel inside it, load.ts). Anything else is refused by the
 * VMM's loader with one line (no `.afterburn` section, a malformed ELF, a payload it cannot
 * take out).
 */
import { readAfterburned, type AfterburnedKernel } from '../vmm/load.ts';
import type { GuestConfig } from './platform.ts';

export function readVmmKernel(config: GuestConfig): AfterburnedKernel | string {
  return readAfterburned(config.kernel, config.kernelName);
}
