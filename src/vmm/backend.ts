/**
 * What the in-place VMM's core needs from a hypervisor (one backend per hypervisor implements
 * it: backends/xen/XenBackend.ts). The core calls these; the backend calls the core back for
 * events (timerExpired, consoleInput, forwardTrap, afterUpcall).
 */
export interface VmmBackend {
  readonly name: string;
  /** Real selectors the guest runs with (ring-1 kernel, ring-3 user). */
  readonly selectors: { kernelCs: number; userCs: number; userSs: number };

  // ---- time, console, life cycle ----
  /** Nanoseconds of the hypervisor's system time for the guest. */
  nowNs(): number;
  /** One-shot timer at a system time (0 cancels); it ends in core.timerExpired(). */
  setTimer(deadlineNs: number): void;
  consoleWrite(bytes: Uint8Array): void;
  shutdown(kind: 'poweroff' | 'reboot', status: number): void;
  /** Ends the guest with a message (a guest the VMM cannot continue). */
  crash(message: string): void;
  /** Sleeps until an event: false if one is already pending (then call pollEvents). */
  block(): boolean;
  /** Handles pending events now (they call back into the core). */
  pollEvents(): void;
  /** hlt with interrupts off: the virtual CPU stops for good. */
  haltForever(): void;
  /** The guest kernel's stack for events from ring 3 (its TSS.esp0) before it returns there. */
  setKernelStack(esp0: number): void;
  /** The guest ended the interrupt of a passed-through device's line: re-enable the line. */
  deviceEoi(irq: number): void;

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
