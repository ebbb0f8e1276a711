// The messages between the lab page (main.ts) and the machine's Web Worker (worker.ts).
import type { Round } from '../bench/migrate/precopy.ts';

/** Page → worker. */
export type ToWorker =
  | {
      type: 'boot';
      kernel: Uint8Array;
      kernelName: string;
      platform: string;
      cmdline: string;
      /** Machine memory in MB (createGuest's default if absent). */
      memoryMb?: number;
      /**
       * Pause the guest, once, at the end of the first 10-ms slice of simulated time in which
       * its console has printed this text (absent or empty: never).
       */
      pauseOn?: string;
    }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'input'; bytes: Uint8Array }
  | { type: 'netperf'; payloadBytes: number; seed: number; rows: NetperfRowRequest[] }
  /** Move the running guest to the other host (migrate.ts). */
  | { type: 'migrate'; to: string; preCopy: boolean; linkBitsPerSecond: number }
  /** Pause the guest and send its snapshot file back. */
  | { type: 'save' }
  /** Continue the guest of a snapshot file in place of the current one (if it is a good one). */
  | { type: 'load'; bytes: Uint8Array; name: string };

/** What one move did: the pre-copy's rounds and the stop-and-copy (precopy.ts), as they came. */
export interface MigrationReport {
  from: string;
  to: string;
  /** Where the guest stopped for the stop-and-copy: in its kernel, or idle in `hlt`. */
  safePoint: 'kernel' | 'idle';
  preCopy: boolean;
  linkBitsPerSecond: number;
  /** The pre-copy rounds, then the stop-and-copy round (the last, `final`). */
  rounds: Round[];
  pagesSent: number;
  bytesSent: number;
  /** Simulated ms from the start of the move to the guest running on the destination. */
  totalMs: number;
  /** Simulated ms the guest was stopped: the stop-and-copy round's time on the link. */
  downtimeMs: number;
}

/** The guest the worker runs now (after a boot, a move or a load). */
export interface GuestInfo {
  platform: string;
  kernelName: string;
  cmdline: string;
  /** Why it cannot migrate (migrationRefusal), or undefined if it can. */
  migrationRefusal?: string;
}

/** One row of the netperf panel: a configuration of `previrt bench netperf` (build.ts). */
export interface NetperfRowRequest {
  label: string;
  kernel: Uint8Array;
  kernelName: string;
  hypervisor: string;
}

/** One finished netperf row (from NetperfRun). */
export interface NetperfRowResult {
  label: string;
  ok: boolean;
  /** The checksum verdict: netserver's result line, or why the transfer is not verified. */
  verdict: string;
  throughputMbps: number;
  cpuUtilisation: number;
  cyclesPerByte: number;
  hostSeconds: number;
}

/** One sample of the live counters. */
export interface Sample {
  /** Host milliseconds since boot. */
  hostMs: number;
  simulatedSeconds: number;
  cycles: number;
  instructions: number;
  /** Guest instructions per host second over the last interval, in millions. */
  mips: number;
  interrupts: number;
  traps: number;
  /** Every counter of the guest's stats (machine, hypervisor, vmm), flattened. */
  counters: [string, number][];
}

/** Worker → page. */
export type FromWorker =
  | { type: 'mode'; compiled: boolean; reason?: string }
  | { type: 'console'; bytes: Uint8Array }
  | { type: 'sample'; sample: Sample }
  /** `why`: what paused it, when the guest paused itself (a `pauseOn` text it printed). */
  | { type: 'state'; state: 'running' | 'paused'; why?: string }
  | { type: 'ended'; reason: string }
  | { type: 'error'; message: string }
  | { type: 'netperf-row'; row: NetperfRowResult }
  | { type: 'netperf-done' }
  | { type: 'guest'; guest: GuestInfo }
  | { type: 'migrated'; report: MigrationReport }
  | { type: 'migrate-failed'; message: string }
  /** A snapshot file: its bytes and a file name for the download. */
  | { type: 'snapshot'; bytes: Uint8Array; name: string }
  | { type: 'snapshot-failed'; message: string }
  /** A snapshot file's guest runs: the console it had printed up to the snapshot comes with it. */
  | { type: 'loaded'; name: string; cycle: number; console: Uint8Array }
  | { type: 'load-failed'; message: string };
