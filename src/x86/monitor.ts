/**
 * The hook hypervisors use to own ring 0 (DESIGN.md decision 5). With a monitor attached, the CPU
 * never vectors through the guest's IDT: every exception, hardware interrupt and software
 * interrupt becomes a call to `onEvent`, with the CPU state left as the hardware would leave it
 * just before delivery (EIP at the faulting instruction for faults, after it for traps and INT n).
 */
export type CpuEvent =
  | { kind: 'exception'; vector: number; errorCode: number | undefined }
  | { kind: 'interrupt'; vector: number }
  | { kind: 'software'; vector: number };

export interface Monitor {
  /**
   * Handle an event. The monitor may change any CPU state through the Cpu API (registers,
   * segments, CR3, EFLAGS), deliver the event into a guest handler with `Cpu.bounce`, or stop the
   * machine. When it returns, the CPU resumes at the (possibly changed) CS:EIP.
   */
  onEvent(event: CpuEvent): void;
}

/**
 * A TypeScript handler bound to a linear address (DESIGN.md decision 6), in an entry table
 * (entries.ts: one per VM or address space; the CPU consults the one a hypervisor selected with
 * `Cpu.useEntryTable`, `Cpu.bindEntry` binds in the default one). When the CPU is about to fetch
 * an instruction at that address, it calls the handler instead; the guest reached it with a near
 * CALL, so after the handler returns the CPU performs a near RET (pops EIP). The handler may
 * change any state, including the return address on the stack, to redirect the guest.
 *
 * Faults: the call and its RET act as one instruction at the entry. If the handler (or the RET)
 * throws a CpuFault — it read guest memory that is not mapped, say — the CPU puts the general
 * registers (ESP included) and EFLAGS back as they were when the handler was called, with EIP
 * at the entry, and delivers the fault as for an instruction there (to the monitor, or through
 * the IDT). When the guest's fault handler returns to the entry, the handler runs again from the
 * start. What the handler did before the fault stays done: memory it wrote, segment and control
 * registers it loaded, cycles it charged, counters (`boundCalls` counts both calls), CR2 and TLB
 * fills. So a handler should make its faultable accesses before its side effects, or make them
 * harmless to repeat. Any other exception is a host bug and propagates unchanged.
 */
export type BoundHandler = () => void;
