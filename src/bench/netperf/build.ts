/**
 * Building the guest for the benchmark: `make -C guest` in the repository that holds this file
 * (found from the module's own path, so the command works from any directory).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { BootModule } from '../../loader/multiboot.ts';
import { guestRefusal } from '../../platforms/createGuest.ts';
import type { NetperfRunOptions } from './run.ts';

/**
 * The repository: the nearest folder above this module that holds guest/Makefile (this module
 * runs from src/bench/netperf, compiled from dist/bench/netperf, or bundled from dist/bundle).
 */
function repoRoot(): string {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'guest', 'Makefile'))) return dir;
    if (dirname(dir) === dir) return resolve(import.meta.dirname, '..', '..', '..');
  }
}

export const REPO_ROOT = repoRoot();

/**
 * The name the boot loader shows the guest for a kernel file: relative to the repository, so
 * the guest (and every figure) is the same from any checkout or working directory.
 */
export function guestKernelName(path: string): string {
  return relative(REPO_ROOT, resolve(path));
}

/**
 * How a row's kernel meets its platform: not at all (raw PC), ported by hand, pre-virtualized;
 * or pre-virtualized with its network through a driver VM (the driver reuse table).
 */
export type Virtualization = 'none' | 'para' | 'pre' | 'reuse';

export interface ConfigEntry {
  /** The row's label, as the seed's table names the system. */
  label: string;
  kernel: string;
  /** The platform (src/platforms): `none` or a hypervisor. */
  hypervisor: string;
  virtualization: Virtualization;
  /** The NIC's path (run.ts `nicPath`): the real NIC given to the guest unless said. */
  nicPath?: 'emulated' | 'driver-vm';
  /**
   * A second client of the driver VM beside the guest (run.ts `secondClient`): `quiet`
   * sends one frame and idles, `spin` sends one frame and computes for good (all the CPU its
   * domain gets, nothing on the network), `flood` keeps its transmit ring full
   * (guest/user/flood.c).
   */
  secondClient?: 'quiet' | 'spin' | 'flood';
}

/**
 * The benchmark's rows, in the seed's order (reference/seed-results.md): the same sources
 * without and with afterburning on the raw PC; then per hypervisor the kernel para-virtualized
 * for it and the afterburned kernel through the in-place VMM, each with the NIC given to its
 * domain. The kernel hand-ported to the Xen-style hypervisor (guest/arch/xen-para) is the
 * seed's "XenoLinux" row, labelled "-style" because the port is of previrt's guest kernel, not
 * of Linux; likewise the kernel hand-ported to the L4-style microkernel (guest/arch/l4-para)
 * is the seed's "L4Ka::Linux" row. The L4 rows come between nops and xen-para: l4-para, then
 * "L4Ka in-place VMM" (l4-pre), the afterburned kernel in a VM of the microkernel. The comparison of pre- with
 * para-virtualized on the same hypervisor (report.ts) picks rows up from these fields.
 */
export const CONFIGS = {
  native: {
    label: 'native, raw',
    kernel: join(REPO_ROOT, 'guest/build/native/kernel.elf'),
    hypervisor: 'none',
    virtualization: 'none',
  },
  nops: {
    label: 'NOPs, raw',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'none',
    virtualization: 'none',
  },
  'l4-para': {
    label: 'L4Ka::Linux-style (l4-para)',
    kernel: join(REPO_ROOT, 'guest/build/l4-para/kernel.elf'),
    hypervisor: 'l4',
    virtualization: 'para',
  },
  'l4-pre': {
    label: 'L4Ka in-place VMM',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'l4',
    virtualization: 'pre',
  },
  'xen-para': {
    label: 'XenoLinux-style (xen-para)',
    kernel: join(REPO_ROOT, 'guest/build/xen-para/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'para',
  },
  'xen-pre': {
    label: 'Xen in-place VMM',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'pre',
  },
  // The seed's second table (issue "reuse"): the guest's network through a driver VM that runs
  // the same afterburned kernel with the real NIC; not in the default list.
  'reuse-custom-l4': {
    label: 'Custom driver (l4)',
    kernel: join(REPO_ROOT, 'guest/build/l4-para/kernel.elf'),
    hypervisor: 'l4',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
  },
  'reuse-emul-l4': {
    label: 'DP83820 emulation (l4)',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'l4',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
  },
  'reuse-custom-xen': {
    label: 'Custom driver (xen)',
    kernel: join(REPO_ROOT, 'guest/build/xen-para/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
  },
  'reuse-emul-xen': {
    label: 'DP83820 emulation (xen)',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
  },
  // Isolation (README, "Isolation"): the same row beside a second client of the driver VM, one
  // quiet, one that only computes and one flooding the wire; the guest's figures with the
  // flooder should stay near those beside the client that takes the CPU without the network.
  'reuse-quiet-xen': {
    label: 'DP83820 emulation (xen), a quiet second client',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
    secondClient: 'quiet',
  },
  'reuse-spin-xen': {
    label: 'DP83820 emulation (xen), a second client that computes',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
    secondClient: 'spin',
  },
  'reuse-flood-xen': {
    label: 'DP83820 emulation (xen), a flooding second client',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'xen',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
    secondClient: 'flood',
  },
  // The same on l4 (the seed's platform): the driver VM's VMM serves both clients by IPC. (No
  // computing client here: at the same priority and 10 ms slices it starves the guest's TCP,
  // README "A flooding client".)
  'reuse-quiet-l4': {
    label: 'DP83820 emulation (l4), a quiet second client',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'l4',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
    secondClient: 'quiet',
  },
  'reuse-flood-l4': {
    label: 'DP83820 emulation (l4), a flooding second client',
    kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
    hypervisor: 'l4',
    virtualization: 'reuse',
    nicPath: 'driver-vm',
    secondClient: 'flood',
  },
} as const satisfies Record<string, ConfigEntry>;

export type NetperfConfig = keyof typeof CONFIGS;

/** The rows of `bench netperf` without --config: the seed's first table. */
export const DEFAULT_CONFIGS: NetperfConfig[] = [
  'native',
  'nops',
  'l4-para',
  'l4-pre',
  'xen-para',
  'xen-pre',
];

/** The driver VM's kernel and command line (the same afterburned binary; its shell idles). */
export const DRIVER_VM = {
  kernel: join(REPO_ROOT, 'guest/build/afterburned/kernel.elf'),
  cmdline: 'init=sh',
};

/**
 * The second client's program (a module: guest/Makefile's MODULE_PROGRAMS) and its arguments:
 * its own address 10.0.2.16, UDP to the client machine (10.0.2.2, its MAC 02:00:00:00:00:02),
 * full-sized frames for `flood`, one small frame for `quiet` (then it idles) and for `spin` (then
 * it loops; in each case its kernel's stack stops answering for the guest's address).
 */
export const SECOND_CLIENT_PROGRAM = {
  module: join(REPO_ROOT, 'guest/build/user/flood.elf'),
  flood: 'init=flood -- 10.0.2.16 10.0.2.2 02:00:00:00:00:02 1472',
  quiet: 'init=flood -- 10.0.2.16 10.0.2.2 02:00:00:00:00:02 18 1',
  spin: 'init=flood -- 10.0.2.16 10.0.2.2 02:00:00:00:00:02 18 1 spin',
  readyLine: 'flood: sending',
};

/**
 * What a row's NIC path adds to its runs (run.ts options): the driver VM, for a reuse row, and
 * the second client, for an isolation row.
 */
export function nicPathOptions(c: ConfigEntry): {
  nicPath?: 'emulated' | 'driver-vm';
  driverKernel?: NetperfRunOptions['driverKernel'];
  secondClient?: NetperfRunOptions['secondClient'];
} {
  if (c.nicPath === undefined) return {};
  if (c.nicPath === 'emulated') return { nicPath: 'emulated' };
  const p = SECOND_CLIENT_PROGRAM;
  return {
    nicPath: 'driver-vm',
    driverKernel: {
      kernel: readFileSync(DRIVER_VM.kernel),
      kernelName: guestKernelName(DRIVER_VM.kernel),
      cmdline: DRIVER_VM.cmdline,
    },
    ...(c.secondClient === undefined
      ? {}
      : {
          secondClient: {
            cmdline: p[c.secondClient],
            modules: [{ name: 'flood.elf', bytes: readFileSync(p.module), string: 'flood.elf' }],
            readyLine: p.readyLine,
          },
        }),
  };
}

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

/**
 * The Linux guest built through the afterburner (`bash guest/linux/build.sh afterburned`: the
 * default configuration, gcc -B the `as` wrapper, guest/linux/patches applied); its vmlinux is
 * beside it. The same initramfs.
 */
export const LINUX_AFTERBURNED_KERNEL = join(REPO_ROOT, 'guest/linux/build/afterburned/bzImage');

/**
 * The Linux guest (guest/linux, README "Running Linux"): Debian's Linux 6.1 with its ns83820
 * driver and TCP, and the project's netserver in its initramfs, which /init runs and then powers
 * off with its status. `--guest linux` has the rows of the seed's first table that run Linux
 * itself, each with its kernel: native the plain bzImage; nops, l4-pre and xen-pre the one
 * afterburned bzImage, with the NIC passed through as for the project's kernel (CONFIGS). The
 * para-virtualized rows stay the project's kernel's: previrt has no hand-ported Linux. A row
 * whose platform refuses the kernel (createGuest's line) is left out of the default and refused
 * when asked for (linuxRowRefusal), so a platform that comes to run Linux needs no change here.
 */
export const LINUX_GUEST = {
  kernel: join(REPO_ROOT, 'guest/linux/build/bzImage'),
  initramfs: join(REPO_ROOT, 'guest/linux/build/initramfs.cpio'),
  cmdline: 'console=ttyS0 netserver',
  configs: {
    native: join(REPO_ROOT, 'guest/linux/build/bzImage'),
    nops: LINUX_AFTERBURNED_KERNEL,
    'l4-pre': LINUX_AFTERBURNED_KERNEL,
    'xen-pre': LINUX_AFTERBURNED_KERNEL,
  } as Partial<Record<NetperfConfig, string>>,
};

/** The initramfs as the boot module of a Linux row (named as the repository names it). */
export function linuxInitramfs(): BootModule {
  const name = guestKernelName(LINUX_GUEST.initramfs);
  return { name, bytes: readFileSync(LINUX_GUEST.initramfs), string: name };
}

/**
 * Why row `config`'s platform will not run its Linux kernel: the platform's own line
 * (createGuest's first step, before any machine is built), or undefined when it would.
 */
export function linuxRowRefusal(config: NetperfConfig): string | undefined {
  const kernel = LINUX_GUEST.configs[config];
  if (kernel === undefined) return `no Linux row '${config}'`;
  return guestRefusal({
    platform: CONFIGS[config].hypervisor,
    kernel: readFileSync(kernel),
    kernelName: guestKernelName(kernel),
    cmdline: LINUX_GUEST.cmdline,
    modules: [linuxInitramfs()],
    nic: {},
    console: () => {},
  });
}

/**
 * The Linux guest's variant with the local APIC and the I/O APIC (guest/linux/kernel-apic.config,
 * `bash guest/linux/build.sh apic`); the same initramfs.
 */
export const LINUX_APIC_KERNEL = join(REPO_ROOT, 'guest/linux/build/apic/bzImage');

/**
 * `npm run guest:linux` (guest/linux/build.sh): the kernel once per configuration (minutes, the
 * first time), the programs and the initramfs each time (a second). Its progress goes to stderr.
 * `variant` 'apic' builds LINUX_APIC_KERNEL instead of the default kernel, 'afterburned'
 * LINUX_AFTERBURNED_KERNEL.
 */
export function buildLinuxGuest(
  variant?: 'apic' | 'afterburned',
): { ok: true } | { ok: false; output: string } {
  const args = [
    join(REPO_ROOT, 'guest/linux/build.sh'),
    ...(variant === undefined ? [] : [variant]),
  ];
  const r = spawnSync('bash', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error !== undefined) return { ok: false, output: `bash: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, output: `${r.stdout}${r.stderr}` };
  const kernel =
    variant === undefined
      ? LINUX_GUEST.kernel
      : variant === 'apic'
        ? LINUX_APIC_KERNEL
        : LINUX_AFTERBURNED_KERNEL;
  for (const f of [kernel, LINUX_GUEST.initramfs])
    if (!existsSync(f)) return { ok: false, output: `the build made no ${f}` };
  return { ok: true };
}
