/** The messages between the lab page (main.ts) and the machine's Web Worker (worker.ts). */

/** What the page asks of the worker. */
export type ToWorker =
  | { type: 'boot'; kernel: Uint8Array; kernelName: string; platform: string; cmdline: string }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'input'; bytes: Uint8Array };

/** A sample of the live counters, sent a few times a second while the machine runs. */
export interface Sample {
  hostMs: number;
  simulatedSeconds: number;
  cycles: number;
  instructions: number;
  /** Every counter of the guest's stats (machine, hypervisor, VMM), flattened `a.b.c` names. */
  counters: [string, number][];
}

/** What the worker tells the page. */
export type FromWorker =
  | { type: 'ready'; compiledBlocks: boolean }
  | { type: 'console'; bytes: Uint8Array }
  | { type: 'sample'; sample: Sample }
  | { type: 'state'; state: 'running' | 'paused' | 'ended'; detail?: string }
  | { type: 'error'; message: string };
