/**
 * Building the guest for the benchmark: `make -C guest` in the repository that holds this file
 * (found from the module's own path, so the command works from any directory).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');

/**
 * The name the boot loader shows the guest for a kernel file: relative to the repository, so
 * the guest (and every figure) is the same from any checkout or working directory.
 */
export function guestKernelName(path: string): string {
  return relative(REPO_ROOT, resolve(path));
}

/**
 * The benchmark's rows: the same sources without and with afterburning on the raw PC, the
 * afterburned kernel in a domain of the Xen-style hypervisor through the in-place VMM, with the
 * NIC passed through (the seed's "Xen in-place VMM" row), and the kernel hand-ported to that
 * hypervisor (the seed's "XenoLinux" row; labelled "-style" because the port is of previrt's
 * guest kernel, not of Linux), with the NIC granted to its domain.
 */
export const CONFIGS = {
  native: {
    label: 'native, raw',
    kernel: join(REPO_ROOT, 'guest/build/native/kernel.elf'),
    hypervisor: 'none',
  },
  nops: {
    label: 'NOPs, raw',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'none',
  },
  'xen-pre': {
    label: 'Xen in-place VMM',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'xen',
  },
  'xen-para': {
    label: 'XenoLinux-style (para)',
    kernel: join(REPO_ROOT, 'guest/build/xen-para/kernel.elf'),
    hypervisor: 'xen-para',
  },
} as const;

export type NetperfConfig = keyof typeof CONFIGS;

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

/**
 * Runs `make -C guest` (incremental, so nearly free when nothing changed). Builds are serialised
 * with flock on guest/build/.make.lock, as the guest tests do, so no run reads a half-written ELF.
 * Returns the build's output when it fails.
 */
export function buildGuest(): { ok: true } | { ok: false; output: string } {
  const guest = join(REPO_ROOT, 'guest');
  mkdirSync(join(guest, 'build'), { recursive: true });
  const argv = ['make', '-s', '--no-print-directory', '-C', guest];
  if (hasCommand('flock')) argv.unshift('flock', join(guest, 'build', '.make.lock'));
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.error !== undefined) return { ok: false, output: `${argv[0]}: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, output: `${r.stdout}${r.stderr}` };
  for (const c of Object.values(CONFIGS))
    if (!existsSync(c.kernel)) return { ok: false, output: `the build made no ${c.kernel}` };
  return { ok: true };
}
