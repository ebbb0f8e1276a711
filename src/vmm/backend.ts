/**
 * The two sides of the in-place VMM (DESIGN.md decision 10): the core (Vmm.ts), which knows no
 * hypervisor, and one backend per hypervisor (backends/<name>/), which knows nothing of the
 * guest's instructions. They meet only through the two interfaces here: the core calls the
 * backend (`VmmBackend`) for everything that needs the hypervisor, and the backend calls the
 * core (`VmmCore`) when something happened to the guest. src/vmm/README.md, "Adding a
 * hypervisor backend", says which files a new backend is and what it implements.
 *
 * Addresses and values are the guest's: guest-virtual pointers, guest-physical frames in
 * page-table entries, the guest's own selectors and EFLAGS. Translating them to what the
 * hypervisor wants (machine frames, its selectors) is the backend's job.
 */
import type { CounterTree } from '../machine/counters.ts';
import type { BackendMigration } from './migration.ts';
import type { VirtualPlatform } from './platform.ts';

/** How the state the guest was interrupted in reached the VMM. */
export type InterruptedContext =
  /**
   * A hardware-format frame on the current stack at ESP — [error code] EIP CS EFLAGS, plus ESP
   * SS if the guest was in user mode — as a hypervisor that bounces events builds it (a trap
   * bounce), with the hypervisor's selectors. The core rewrites it in place to the frame
   * the guest's own CPU would have pushed.
   */
  | { kind: 'frame' }
  /**
   * The interrupted registers, as a hypervisor that sends exceptions as messages delivers them
   * (an L4 exception IPC). The backend has loaded the general registers into the CPU; the core
   * pushes the guest's frame onto the guest kernel's stack (the current one, or the one the
   * guest's TSS names for events from user mode) and sets ESP.
   */
  | { kind: 'registers'; eip: number; eflags: number; esp: number };

/** A trap, fault or system call of the guest, for the guest kernel's own handler. */
export interface GuestEvent {
  vector: number;
  errorCode: number | undefined;
  /** INT n: the guest gate's DPL must allow it from user mode (else #GP, as on hardware). */
  software: boolean;
  /** For a page fault: the linear address (the guest's CR2 becomes it). */
  faultAddress?: number;
  context: InterruptedContext;
}

/** A backend's saved state: its kind and version first, the rest its own (JSON data). */
export interface BackendState {
  kind: string;
  version: number;
}

/** What the core calls; a backend implements it for one hypervisor. */
export interface VmmBackend {
  readonly name: string;
  /**
   * CPUID leaf 1 EDX features the guest cannot use on this hypervisor (the core shows the raw
   * PC's processor without them): a hypervisor that refuses 4 MB pages takes PSE, say.
   */
  readonly hiddenCpuFeatures: number;
  /**
   * A byte of guest-virtual memory through the guest's own page tables, for what the CPU cannot
   * read from where the VMM runs (on l4, a process's page the kernel's L4 space has not been
   * given); undefined if the guest has no mapping there. Optional: without it the core reads
   * only what its own address space maps.
   */
  readGuestByte?(linear: number): number | undefined;
  /**
   * With an emulated device (devices/emulatedNic.ts): the physical address, as the CPU sees it,
   * of the page the backend maps where the guest maps the device's memory BAR; a register access
   * whose address lands there is the model's. Undefined without one.
   */
  readonly emulatedRegisterPage?: number;
  /** The backend's own counters (its hypervisor's are the hypervisor's), as groups by name. */
  stats(): CounterTree;
  /** Its state for a snapshot (what the VM's memory and the hypervisor do not hold). */
  save(): BackendState;
  /**
   * Restores a snapshot into a backend built from the same configuration; a StateError
   * (machine/state.ts) naming the field if it does not fit.
   */
  restore(state: BackendState, path: string): void;
  /** Its side of live migration (migration.ts), if it can move a guest in and out. */
  readonly migration?: BackendMigration;

  // ---- time, console, life cycle ----
  /** Nanoseconds of the hypervisor's system time for the guest. */
  nowNs(): number;
  /** One-shot timer at a system time (0 cancels); when it fires, the backend calls core.timerExpired(). */
  setTimer(deadlineNs: number): void;
  consoleWrite(bytes: Uint8Array): void;
  shutdown(kind: 'poweroff' | 'reboot', status: number): void;
  /** Ends the guest with a message (a guest the VMM cannot continue). */
  crash(message: string): void;
  /**
   * The guest idles (hlt with the virtual IF on and no interrupt pending): sleep until an event.
   * True: the guest now sleeps, and what wakes it reaches the core later through the backend.
   * False: events were already waiting; the backend has handled them (they called the core)
   * and the core looks for an interrupt to deliver at once.
   */
  idle(): boolean;
  /**
   * Optional, instead of `idle`: for a backend whose guest kernel runs as a thread that must
   * block in the hypervisor (an L4 thread waits in IPC; it cannot halt the CPU). Returns the
   * address the VMM entry returns to: code that blocks. What wakes the guest reaches the core
   * later through `eventsHandled`, with the frame of the interrupted `hlt` (EIP `resume`).
   */
  sleep?(resume: number): number;
  /**
   * hlt with interrupts off: the virtual CPU stops for good. Returns the address the VMM entry
   * returns to: `resume` (after the hlt), or code that blocks for good (a VM whose end does not
   * end the run parks its kernel thread there, so the machine's other VMs go on).
   */
  haltForever(resume: number): number;
  /** The guest kernel's stack for events from user mode (its TSS.esp0), before it returns there. */
  setKernelStack(esp0: number): void;
  /** The guest ended the interrupt of a passed-through device's line: re-enable the line. */
  deviceEoi(irq: number): void;
  /**
   * The guest's `iret`: the frame at ESP is the guest's own (EIP, its CS, EFLAGS, and ESP, SS
   * when `toUser`), the virtual CPU already updated. Make the CPU continue there with
   * `eflags` (the guest's arithmetic flags; IF and IOPL are virtual). Returns the address the
   * VMM entry returns to.
   */
  returnFromInterrupt(toUser: boolean, eflags: number): number;

  // ---- memory management (guest-physical addresses and values as the guest sees them) ----
  /** CR0.PG turned on with this CR3: the guest's initial page tables take over. */
  enablePaging(cr3: number): void;
  /** MOV to CR3 with paging on. */
  loadCr3(cr3: number): void;
  invlpg(linear: number): void;
  /** A page-table (1) or page-directory (2) entry write at guest virtual address `ptr`. */
  pageTableWrite(level: 1 | 2, ptr: number, value: number): void;
  pageTableRead(level: 1 | 2, ptr: number): number;
  /** Reads a page-table entry and clears it (atomically, as xchg). */
  pageTableTestClear(ptr: number): number;
}

/** What a backend calls: the core's side, for events from the hypervisor. */
export interface VmmCore {
  /** The virtual PC (a backend adds passed-through functions to its PCI bus). */
  readonly platform: VirtualPlatform;
  /** The virtual CPU is in user mode (the guest's `iret` took it there; no event since). */
  readonly userMode: boolean;
  /**
   * A trap, fault or system call for the guest kernel: builds the guest's frame and enters its
   * handler through the guest's IDT. Returns where the guest continues.
   */
  trap(event: GuestEvent): number;
  /**
   * After the backend handled events that interrupted the guest (an upcall; the interrupted
   * state is a `frame` at ESP): delivers a pending virtual interrupt if the interrupted code
   * may take one and returns its handler; undefined to resume the guest as it was.
   */
  eventsHandled(): number | undefined;
  /** The backend's one-shot timer fired. */
  timerExpired(): void;
  /** Console input arrived. */
  consoleInput(bytes: Iterable<number>): void;
  /** A passed-through device's line interrupted. */
  deviceInterrupt(irq: number): void;
}
