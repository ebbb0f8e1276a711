// The messages between the lab page (main.ts) and the machine's Web Worker (worker.ts).

/** Page → worker. */
export type ToWorker =
  | {
      type: 'boot';
      kernel: Uint8Array;
      kernelName: string;
      platform: string;
      cmdline: string;
    }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'input'; bytes: Uint8Array }
  | { type: 'netperf'; payloadBytes: number; seed: number; rows: NetperfRowRequest[] };

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
  | { type: 'state'; state: 'running' | 'paused' }
  | { type: 'ended'; reason: string }
  | { type: 'error'; message: string }
  | { type: 'netperf-row'; row: NetperfRowResult }
  | { type: 'netperf-done' };
