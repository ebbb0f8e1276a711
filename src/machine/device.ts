/**
 * The small contracts every part of the emulated PC is built from (STYLE.md principle 2). A
 * device implements one or more of them and is registered on the machine's buses, which refuse
 * overlapping ranges and say why. Nothing here knows about the CPU's internals or a hypervisor.
 */

/** An access width in bytes. Port and MMIO accesses are 1, 2 or 4 bytes wide. */
export type AccessSize = 1 | 2 | 4;

/**
 * A device on the port-I/O bus. `offset` is relative to the base of the range it was
 * registered at, so a device can be placed at any base (COM1 at 0x3F8, COM2 at 0x2F8).
 */
export interface PortDevice {
  /** Short name used in bus errors and statistics ("uart0", "pic-master"). */
  readonly name: string;
  ioRead(offset: number, size: AccessSize): number;
  ioWrite(offset: number, size: AccessSize, value: number): void;
}

/** A device on the memory-mapped I/O bus; `offset` is relative to its registered base. */
export interface MmioDevice {
  readonly name: string;
  mmioRead(offset: number, size: AccessSize): number;
  mmioWrite(offset: number, size: AccessSize, value: number): void;
}

/**
 * One PCI function on bus 0 (PCI Local Bus Specification 3.0, ch. 6). The host bridge routes
 * configuration mechanism #1 accesses (ports 0xCF8/0xCFC) here. The function owns its
 * configuration space, including BAR sizing (write all-ones, read back the size mask); when the
 * guest moves a BAR or toggles decoding in the command register the function re-registers its
 * ranges on the buses through the callbacks it was constructed with.
 */
export interface PciFunction {
  readonly name: string;
  /** Reads `size` bytes at `offset` (0–255) of configuration space, little-endian. */
  configRead(offset: number, size: AccessSize): number;
  configWrite(offset: number, size: AccessSize, value: number): void;
}

/** An interrupt request line into the interrupt controller (an ISA IRQ pin or a PCI INTx#). */
export interface IrqLine {
  /** Drives the line high (true) or low (false). Edge or level semantics belong to the receiver. */
  set(level: boolean): void;
}

/** A pending event on the simulated clock. */
export interface Timer {
  /** Removes the event if it has not fired; harmless afterwards. */
  cancel(): void;
  /** Where it stands in the clock's order: its cycle and its insertion number (TimerState). */
  readonly cycle: number;
  readonly seq: number;
}

/**
 * A pending event as a snapshot holds it (DESIGN.md decision 11): the clock's events are
 * closures, so the component that scheduled one saves its place in the order and, on restore,
 * schedules the same work again at that place with `Clock.restoreAt`. Events at one cycle fire
 * in `seq` order, so a restored machine fires them exactly as the saved one would have.
 */
export interface TimerState {
  cycle: number;
  seq: number;
}

/**
 * The simulated clock (DESIGN.md decision 3). Time is counted in CPU cycles since power-on at
 * `hz` cycles per second; devices schedule work on it instead of reading any wall clock. Events
 * at the same cycle fire in the order they were scheduled, so runs are deterministic.
 */
export interface Clock {
  readonly hz: number;
  /** Cycles since power-on. Inside an event callback this is the event's own cycle. */
  now(): number;
  /**
   * Runs `callback` when the clock reaches `cycle` (at once at the next boundary if in the past).
   * `owner` names the component in snapshot audits ("pit", "dp83820.rx-dma").
   */
  at(cycle: number, callback: () => void, owner?: string): Timer;
  /** A saved event again, at its saved place in the order (restore only; see TimerState). */
  restoreAt(saved: TimerState, callback: () => void, owner?: string): Timer;
}

/**
 * Bus-master access to machine memory for DMA devices. The machine implements it for raw
 * hardware; a hypervisor may wrap it to translate and confine a domain's DMA. Addresses are
 * machine-physical. A transfer that touches any byte outside what the device may reach does
 * nothing and returns false, so the device can report a bus error to its driver instead of
 * throwing (DESIGN.md decision 9).
 */
export interface DmaMemory {
  read(paddr: number, into: Uint8Array): boolean;
  write(paddr: number, from: Uint8Array): boolean;
}

/**
 * Snapshot and migration state (DESIGN.md decision 11): every component that holds state has a
 * typed, versioned state object, plain JSON data encoded by the rules in state.ts (null for
 * none; bytes as base64 strings; wider words as arrays of numbers; a pending clock event as its
 * TimerState beside what it will do). `version` changes whenever the shape changes. `restore`
 * checks the state before it changes anything and refuses a version it does not know, or a
 * missing or mistyped field, with a `StateError` naming it (`path`, e.g. "devices.pit", prefixes
 * the field names); events the component had pending come back at their saved places
 * (`Clock.restoreAt`) on a clock restored first. Callbacks, sinks and peers are not state: the
 * component is built with them again and then restored.
 */
export interface Stateful<S extends { version: number }> {
  save(): S;
  restore(state: S, path?: string): void;
}

/** A range placed on a bus; `remove()` takes it off again (a PCI BAR that moves). */
export interface Registration {
  remove(): void;
}

/**
 * The machine's buses as a device sees them, for placing ranges at run time (PCI BARs). Each
 * call refuses a range that overlaps one already registered: it returns a string saying which
 * device holds the range, never throws, because the base addresses usually come from the guest.
 */
export interface BusAccess {
  registerPorts(base: number, length: number, device: PortDevice): Registration | string;
  registerMmio(base: number, length: number, device: MmioDevice): Registration | string;
}
