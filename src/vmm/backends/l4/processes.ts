/**
 * The guest's processes on l4 (src/vmm/README.md, "The l4 backend"): one L4 space and thread per
 * guest page directory, made through the resource monitor when the guest first returns to user
 * mode with that directory. The guest kernel's thread is their pager and exception handler: it
 * waits for them while the guest is in user mode, and what they do comes to it as a message —
 * a page fault (mapped from the alias with the guest's user rights, or brought into the guest
 * kernel as #PF), an exception (`int $0x80`, a fault: into the guest kernel's gate), or the #UD
 * of STUB_FORCE (a process redirected there so that its whole state comes with it, for a #PF the
 * guest must see or a virtual interrupt). The guest's `iret` to user mode is the reply that
 * sets all of a process's registers, so one thread per page directory suffices.
 */
import {
  EXCEPTION_WORDS,
  Exregs,
  fpage,
  KIP_VIRT,
  Label,
  mapItem,
  NILTHREAD,
  R,
  RmOp,
  RWX,
  Selector,
  UTCB_AREA,
  W,
  X,
} from '../../../hypervisor/l4/abi.ts';
import { message } from '../../../hypervisor/l4/api.ts';
import { Vector } from '../../../x86/fault.ts';
import type { GuestEvent } from '../../backend.ts';
import { WINDOW_BASE } from '../../window.ts';
import type { L4Backend } from './L4Backend.ts';
import { PAGE_STUBS, STUB_FORCE, STUB_START, STUBS } from './layout.ts';

/** Vectors whose exceptions push an error code (SDM 3A Table 6-1). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);
/** Process threads get thread numbers from here up (the VM's own are below). */
const USER_THREAD_BASE = 1024;
/** Below the kernel thread's priority: a process runs only while the guest is in user mode. */
const USER_PRIORITY_DELTA = 4;

/** A guest page directory's L4 space and thread. */
export interface UserThread {
  pd: number;
  tid: number;
  /**
   * fresh: started, its first exception not yet in; parked: waiting in an exception message
   * for the kernel thread's reply (the guest kernel has its state); running.
   */
  state: 'fresh' | 'parked' | 'running';
  /** The exception reply that takes it into user mode when its first exception comes. */
  resume: number[] | null;
  /** Redirected to STUB_FORCE: what for, and the EIP it was at. */
  forced: { kind: 'fault' | 'interrupt'; eip: number; address: number; errorCode: number } | null;
}

/** The process threads in a snapshot. */
export interface ProcessesState {
  current: number;
  users: UserThread[];
  nextUser: number;
}

export class Processes {
  /** The page directory of the process in user mode (or last there), -1 none. */
  current = -1;
  private readonly users = new Map<number, UserThread>();
  private readonly byTid = new Map<number, UserThread>();
  private nextUser = 0;

  constructor(private readonly b: L4Backend) {}

  /**
   * The guest's `iret` to user mode with directory `pd`: the reply that takes its process thread
   * there (`words`: the exception reply), or, for a new one, made and started, its first.
   */
  resume(pd: number, words: number[]): number {
    const u = this.userFor(pd);
    if (u === undefined) return this.b.waitFor(NILTHREAD);
    this.b.counters.userResumes++;
    this.current = u.pd;
    this.b.mainState = 'user';
    if (u.state === 'parked') {
      u.state = 'running';
      return this.b.waitFor(u.tid, message(0, words));
    }
    u.resume = words;
    return this.b.waitFor(NILTHREAD);
  }

  /** A message from a process thread for the waiting kernel thread; undefined if from none. */
  message(from: number, label: number, words: number[]): number | undefined {
    const u = this.byTid.get(from);
    if (u === undefined) return undefined;
    if ((label & 0xfff0) === Label.pageFault) return this.fault(u, words[0], words[1], label & 7);
    if (label === Label.exception) return this.exception(u, words);
    return undefined;
  }

  /** A virtual interrupt for the process in user mode: it is redirected to STUB_FORCE. */
  force(exregs: (dest: number, control: number, ip: number) => number): void {
    const u = this.users.get(this.current);
    if (u === undefined || u.state !== 'running' || u.forced !== null) return;
    const ip = exregs(u.tid, Exregs.ip, STUB_FORCE);
    u.forced = { kind: 'interrupt', eip: ip, address: 0, errorCode: 0 };
    this.b.counters.processesForced++;
  }

  /** The process thread of a guest page directory, made (through the resource monitor) if new. */
  private userFor(pd: number): UserThread | undefined {
    const known = this.users.get(pd);
    if (known !== undefined) return known;
    const tid = this.b.vm.threadId(USER_THREAD_BASE + this.nextUser);
    const h = this.b.helperTid;
    const steps: [number, number[]][] = [
      [RmOp.threadControl, [tid, tid, h, NILTHREAD, 0xffffffff]],
      [RmOp.spaceControl, [tid, 0, fpage(KIP_VIRT, 12), fpage(UTCB_AREA, 21), NILTHREAD]],
      [RmOp.threadControl, [tid, tid, h, NILTHREAD, UTCB_AREA]],
    ];
    for (const [op, words] of steps) {
      const e = this.b.rm(op, words);
      if (e !== 0) {
        this.b.crash(`cannot make a space for page directory 0x${(pd * 4096).toString(16)} (${e})`);
        return undefined;
      }
    }
    this.nextUser++;
    this.b.sync(() =>
      this.b.helper.schedule(
        tid,
        0xffffffff,
        Math.max(0, this.b.vm.priority - USER_PRIORITY_DELTA),
      ),
    );
    // Activated with the helper as pager, which sends the start message; then the kernel
    // thread is its pager (and, by the start stub, its exception handler).
    if (this.b.rm(RmOp.threadControl, [tid, tid, NILTHREAD, h, 0xffffffff]) !== 0) return undefined;
    this.b.sync(() => this.b.helper.send(tid, message(0, [STUB_START, 0])));
    if (this.b.rm(RmOp.threadControl, [tid, tid, NILTHREAD, this.b.mainTid, 0xffffffff]) !== 0)
      return undefined;
    const u: UserThread = { pd, tid, state: 'fresh', resume: null, forced: null };
    this.users.set(pd, u);
    this.byTid.set(tid, u);
    this.b.counters.processSpaces++;
    return u;
  }

  /** A process's page fault: mapped from the alias with the guest's rights, or #PF for the guest. */
  private fault(u: UserThread, address: number, eip: number, rwx: number): number {
    const write = (rwx & W) !== 0;
    const page = (address & ~0xfff) >>> 0;
    let source: number | undefined;
    let rights = R | X;
    if (page === STUBS) source = this.b.alias(this.b.guestPages + PAGE_STUBS);
    else if (address >>> 0 < WINDOW_BASE) {
      const w = this.b.paging.walk(u.pd * 4096, address, write, true);
      if (w.ok) {
        source = this.b.alias(w.frame);
        if (w.writable) rights = RWX;
        if (source !== undefined) this.b.paging.mappedOut[w.frame] = 1;
      } else {
        u.forced = {
          kind: 'fault',
          eip,
          address,
          errorCode: (w.present ? 1 : 0) | (write ? 2 : 0) | 4,
        };
      }
    }
    if (source === undefined) {
      if (u.forced === null)
        u.forced = { kind: 'fault', eip, address, errorCode: 1 | (write ? 2 : 0) | 4 };
      this.b.counters.userFaultsReflected++;
      this.b.exregs(u.tid, Exregs.abortReceive | Exregs.abortSend | Exregs.ip, STUB_FORCE);
      return this.b.waitFor(NILTHREAD);
    }
    this.b.counters.userFaultsMapped++;
    return this.b.waitFor(u.tid, message(0, [], mapItem(page, fpage(source, 12, rights))));
  }

  /** A process's exception: its system call, fault or forced entry goes into the guest kernel. */
  private exception(u: UserThread, words: number[]): number {
    const w = (n: string): number => words[EXCEPTION_WORDS.indexOf(n as never)] >>> 0;
    if (u.state === 'fresh' && u.resume !== null) {
      const resume = u.resume;
      u.resume = null;
      u.state = 'running';
      return this.b.waitFor(u.tid, message(0, resume));
    }
    let eip = w('eip');
    let vector = w('exception');
    let errorCode: number | undefined = ERROR_CODE_VECTORS.has(vector) ? w('errorCode') : undefined;
    let software = vector === Vector.BP || vector === Vector.OF;
    let faultAddress: number | undefined;
    const forced = eip === STUB_FORCE ? u.forced : null;
    this.b.loadRegisters(words);
    if (forced !== null) {
      eip = forced.eip;
      if (forced.kind === 'interrupt') return this.interrupt(u, words, eip);
      vector = Vector.PF;
      errorCode = forced.errorCode;
      faultAddress = forced.address;
      software = false;
    } else if (vector === Vector.GP && ((errorCode ?? 0) & 7) === 2) {
      // INT n from user mode, which L4 reports as #GP(n·8+2) at the instruction (a 2-byte CD n).
      vector = (errorCode ?? 0) >>> 3;
      errorCode = undefined;
      software = true;
      eip = (eip + 2) >>> 0;
    }
    const target = this.b.vmm.trap({
      vector,
      errorCode,
      software,
      faultAddress,
      context: { kind: 'registers', eip, eflags: w('eflags'), esp: w('esp') },
    } satisfies GuestEvent);
    u.forced = null;
    u.state = 'parked';
    this.b.mainState = 'kernel';
    this.b.counters.userExceptions++;
    return target;
  }

  /** A process forced into the kernel for a virtual interrupt: the frame a CPU would push. */
  private interrupt(u: UserThread, words: number[], eip: number): number {
    const cpu = this.b.cpu;
    const w = (n: string): number => words[EXCEPTION_WORDS.indexOf(n as never)] >>> 0;
    cpu.esp = this.b.kernelStack;
    cpu.push(Selector.USER_DS, 4);
    cpu.push(w('esp'), 4);
    cpu.push(w('eflags'), 4);
    cpu.push(Selector.USER_CS, 4);
    cpu.push(eip, 4);
    const target = this.b.vmm.eventsHandled();
    u.forced = null;
    if (target === undefined) {
      // Nothing to deliver after all: the process goes on where it was.
      const resume = [...words];
      resume[EXCEPTION_WORDS.indexOf('eip')] = eip;
      u.state = 'running';
      return this.b.waitFor(u.tid, message(0, resume));
    }
    u.state = 'parked';
    this.b.mainState = 'kernel';
    return target;
  }

  save(): ProcessesState {
    return {
      current: this.current,
      users: [...this.users.values()].map((u) => structuredClone(u)),
      nextUser: this.nextUser,
    };
  }

  restore(s: ProcessesState): void {
    this.current = s.current;
    this.users.clear();
    this.byTid.clear();
    for (const u of s.users) {
      const copy = structuredClone(u);
      this.users.set(copy.pd, copy);
      this.byTid.set(copy.tid, copy);
    }
    this.nextUser = s.nextUser;
  }
}
