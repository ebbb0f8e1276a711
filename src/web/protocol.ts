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
  | { type: 'input'; bytes: Uint8Array };

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
  | { type: 'error'; message: string };
