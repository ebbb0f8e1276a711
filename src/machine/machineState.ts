/**
 * A whole machine as data (DESIGN.md decision 11): the types of `Machine.save()` and the parts
 * of it that are the machine's own (RAM, how the run ended, the buses' counters). Each device's
 * state type lives beside the device; this file puts them together and checks the outer shape.
 *
 * Restore order (Machine.restore): the clock first (its queue numbering; it is emptied), then
 * RAM, the devices (each brings back the events it had pending at their saved places), the PIC
 * after the devices that drive its lines, the CPU last (a device restore may touch its TLB, as
 * the NIC's BARs do when they are placed again), the machine's own fields, then the components
 * outside the machine that scheduled events on its clock (a peer on the link, a hypervisor), and
 * only then the audit: every pending event and every bound CPU entry came back, or the restore
 * fails with one message that names what is missing.
 */
import type { CpuState } from '../x86/system/state.ts';
import type { ClockState } from './clock.ts';
import type { Dp83820State } from './devices/dp83820/Dp83820.ts';
import type { CmosState } from './devices/legacy/Cmos.ts';
import type { DmaPageRegistersState } from './devices/legacy/DmaPageRegisters.ts';
import type { KeyboardControllerState } from './devices/legacy/KeyboardController.ts';
import type { PicState } from './devices/legacy/Pic.ts';
import type { FwCfgState } from './devices/legacy/FwCfg.ts';
import type { PcTestdevState } from './devices/legacy/PcTestdev.ts';
import type { LocalApicState } from './devices/apic/LocalApic.ts';
import type { IoApicState } from './devices/apic/IoApic.ts';
import type { PitState } from './devices/legacy/Pit.ts';
import type { UartState } from './devices/legacy/Uart16550.ts';
import type { PciHostBridgeState } from './devices/pci/PciHostBridge.ts';
import type { LinkState } from './ethernet/link.ts';
import type { EndReason } from './Machine.ts';
import {
  arrayOf,
  bool,
  bytes,
  checkState,
  decodeBytes,
  encodeBytes,
  nullable,
  num,
  oneOf,
  shape,
  str,
  StateError,
  kind,
  type Check,
} from './state.ts';

export const PAGE_SIZE = 4096;

/**
 * Machine memory, page by page, so that memory the guest has not used costs nothing: zero pages
 * are left out, and a page is saved only up to its last non-zero byte (the rest of it is zero).
 * A kernel's free pages hold little more than the free list's link at their start, so a booted
 * guest's 256 MB come to a few MB of state. Compression is the snapshot file's business.
 */
export interface RamState {
  version: 1;
  /** The memory size in bytes (a restore into a machine of another size is refused). */
  bytes: number;
  pageSize: typeof PAGE_SIZE;
  /**
   * Every page with a non-zero byte, ascending; `data` is the page's bytes in base64 up to and
   * including its last non-zero byte (at most 4096).
   */
  pages: { page: number; data: string }[];
}

/** Machine memory as a RamState. */
export function saveRam(ram: Uint8Array): RamState {
  const words = new Uint32Array(ram.buffer, ram.byteOffset, ram.byteLength >>> 2);
  const perPage = PAGE_SIZE >>> 2;
  const pages: RamState['pages'] = [];
  for (let page = 0; page * PAGE_SIZE < ram.length; page++) {
    // The last non-zero word, then its last non-zero byte.
    let w = (page + 1) * perPage - 1;
    while (w >= page * perPage && words[w] === 0) w--;
    if (w < page * perPage) continue;
    let end = (w + 1) * 4;
    while (ram[end - 1] === 0) end--;
    pages.push({ page, data: encodeBytes(ram.subarray(page * PAGE_SIZE, end)) });
  }
  return { version: 1, bytes: ram.length, pageSize: PAGE_SIZE, pages };
}

const RAM: Check = checkState<RamState>('RAM', 1, {
  bytes: num,
  pageSize: oneOf(PAGE_SIZE),
  pages: arrayOf(shape<{ page: number; data: string }>({ page: num, data: bytes })),
});

/** Machine memory again: zero but for the saved pages. Checks every page first. */
export function restoreRam(ram: Uint8Array, state: RamState, path = 'ram'): void {
  RAM(state, path);
  if (state.bytes !== ram.length)
    throw new StateError(
      `${path}: the state has ${state.bytes / 2 ** 20} MB of memory, this machine ${ram.length / 2 ** 20} MB`,
    );
  const pages = state.pages.map((p, k) => {
    const where = `${path}.pages[${k}]`;
    if (!Number.isInteger(p.page) || p.page < 0 || (p.page + 1) * PAGE_SIZE > ram.length)
      throw new StateError(`${where}.page: ${p.page} is outside memory`);
    const data = decodeBytes(p.data, `${where}.data`);
    if (data.length > PAGE_SIZE)
      throw new StateError(`${where}.data: ${data.length} bytes, more than a page`);
    return { page: p.page, data };
  });
  ram.fill(0);
  for (const p of pages) ram.set(p.data, p.page * PAGE_SIZE);
}

/** The machine's own fields. */
export interface MachineOwnState {
  /** How the last run ended (null: it has not, or `resume` let it go on after a cycle limit). */
  end: EndReason | null;
  /** A write to isa-debug-exit not yet turned into an end (null: none), and the same for reset. */
  exitValue: number | null;
  resetRequested: boolean;
  unclaimedPortReads: number;
  unclaimedPortWrites: number;
  unclaimedMmioReads: number;
  unclaimedMmioWrites: number;
}

/**
 * The configuration a state was saved from: the machine it is restored into must be built from
 * the same one (createMachine with the same memory, cost model, RTC start and network).
 */
export interface MachineConfigState {
  memoryMb: number;
  costModel: string;
  hz: number;
  rtcStartSeconds: number;
  network: boolean;
  /** QEMU's test devices (MachineConfig.testDevices). */
  testDevices: boolean;
}

export interface MachineDevicesState {
  pic: PicState;
  apic: LocalApicState;
  ioApic: IoApicState;
  pit: PitState;
  keyboard: KeyboardControllerState;
  dmaPages: DmaPageRegistersState;
  cmos: CmosState;
  com1: UartState;
  pci: PciHostBridgeState;
  fwCfg: FwCfgState;
  /** pc-testdev, when the machine has the test devices (null otherwise). */
  pcTestdev: PcTestdevState | null;
  /** The DP83820 and its link, when the machine has a network (null otherwise). */
  nic: Dp83820State | null;
  link: LinkState | null;
}

export interface MachineState {
  version: 1;
  config: MachineConfigState;
  clock: ClockState;
  cpu: CpuState;
  /** A field of its own, so that a file writer can compress it apart from the rest. */
  ram: RamState;
  devices: MachineDevicesState;
  machine: MachineOwnState;
}

const END: Check = (v, path) => {
  shape<{ kind: string }>({
    kind: oneOf('exit', 'cycle-limit', 'halted', 'triple-fault', 'reset'),
  })(v, path);
  const kind = (v as { kind: string }).kind;
  if (kind === 'exit') shape<{ value: number }>({ value: num })(v, path);
  if (kind === 'triple-fault') shape<{ detail: string }>({ detail: str })(v, path);
};

/** Any versioned object: the component's own restore checks the rest. */
const VERSIONED: Check = (v, path) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new StateError(`${path}: expected a versioned state (an object), got ${kind(v)}`);
  num((v as { version?: unknown }).version, `${path}.version`);
};

/** The outer shape; each component checks its own state when it is restored. */
export const MACHINE_STATE: Check = checkState<MachineState>('machine', 1, {
  config: shape<MachineConfigState>({
    memoryMb: num,
    costModel: str,
    hz: num,
    rtcStartSeconds: num,
    network: bool,
    testDevices: bool,
  }),
  clock: VERSIONED,
  cpu: VERSIONED,
  ram: VERSIONED,
  devices: shape<MachineDevicesState>({
    pic: VERSIONED,
    apic: VERSIONED,
    ioApic: VERSIONED,
    pit: VERSIONED,
    keyboard: VERSIONED,
    dmaPages: VERSIONED,
    cmos: VERSIONED,
    com1: VERSIONED,
    pci: VERSIONED,
    fwCfg: VERSIONED,
    pcTestdev: nullable(VERSIONED),
    nic: nullable(VERSIONED),
    link: nullable(VERSIONED),
  }),
  machine: shape<MachineOwnState>({
    end: nullable(END),
    exitValue: nullable(num),
    resetRequested: bool,
    unclaimedPortReads: num,
    unclaimedPortWrites: num,
    unclaimedMmioReads: num,
    unclaimedMmioWrites: num,
  }),
});
