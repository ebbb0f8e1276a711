/**
 * QEMU's firmware configuration device, the x86 I/O-port interface (QEMU docs/specs/fw_cfg.rst:
 * a 16-bit selector at 0x510, the selected item's bytes one at a time at 0x511), with the items
 * test kernels and firmware read from it: the signature "QEMU", the interface ID (1: the
 * traditional interface, no DMA), the RAM size, the number of CPUs and the maximum. An item
 * this device does not hold reads as zeros, as an unknown key does on QEMU. previrt follows
 * QEMU's conventions (DESIGN.md decision 2); kvm-unit-tests learns the CPU count here.
 */
import type { AccessSize, PortDevice, Stateful } from '../../device.ts';
import { checkState, num } from '../../state.ts';

export const FW_CFG_PORT = 0x510;

const KEY = { signature: 0x00, id: 0x01, ramSize: 0x03, cpus: 0x05, maxCpus: 0x0f } as const;

export interface FwCfgState {
  version: 1;
  /** The selected item's key and how many of its bytes have been read. */
  selector: number;
  offset: number;
}

const STATE = checkState<FwCfgState>('fw_cfg', 1, { selector: num, offset: num });

export class FwCfg implements PortDevice, Stateful<FwCfgState> {
  readonly name = 'fw_cfg';
  private readonly items = new Map<number, Uint8Array>();
  private selector = 0;
  private offset = 0;

  constructor(machine: { ramBytes: number; cpus: number }) {
    this.items.set(KEY.signature, new TextEncoder().encode('QEMU'));
    this.items.set(KEY.id, le(1, 4));
    this.items.set(KEY.ramSize, le(machine.ramBytes, 8));
    this.items.set(KEY.cpus, le(machine.cpus, 2));
    this.items.set(KEY.maxCpus, le(machine.cpus, 2));
  }

  // GUEST-CONTROLLED: the selector (any 16-bit key; unknown ones read as zeros).
  ioWrite(offset: number, size: AccessSize, value: number): void {
    if (offset !== 0 || size === 1) return; // the selector register is 16 bits wide
    this.selector = value & 0xffff;
    this.offset = 0;
  }

  ioRead(offset: number, size: AccessSize): number {
    if (offset !== 1) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    // The data register is one byte wide; wider reads on QEMU's x86 port give byte by byte too.
    let v = 0;
    for (let k = 0; k < size; k++) v |= this.nextByte() << (8 * k);
    return v >>> 0;
  }

  private nextByte(): number {
    const item = this.items.get(this.selector);
    if (item === undefined || this.offset >= item.length) return 0;
    return item[this.offset++];
  }

  save(): FwCfgState {
    return { version: 1, selector: this.selector, offset: this.offset };
  }

  restore(state: FwCfgState, path = 'fw_cfg'): void {
    STATE(state, path);
    this.selector = state.selector;
    this.offset = state.offset;
  }
}

/** `value` as `bytes` little-endian bytes. */
function le(value: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let k = 0; k < bytes; k++) out[k] = Math.floor(value / 2 ** (8 * k)) & 0xff;
  return out;
}
