/**
 * Netperf runs in parallel (`previrt bench netperf --jobs N`): each run is a simulation of its
 * own — its own machine, clock and client — so runs in worker threads give exactly the figures
 * of a serial run (only the host's times differ). A pool of at most N workers (worker.ts,
 * started through worker.mjs, which loads TypeScript, when this file runs as TypeScript; the
 * compiled worker.js when it runs from dist/) takes the runs in order; progress and console
 * lines come back as messages; the results are returned in the runs' order.
 */
import { Worker } from 'node:worker_threads';
import type { NetperfProgress, NetperfRun, NetperfRunOptions } from './run.ts';

/** A run as the worker gets it: the options without the callbacks. */
export type NetperfJob = Omit<NetperfRunOptions, 'onProgress' | 'onConsoleLine'>;

/** What a worker sends back about job `id`. */
export type WorkerMessage =
  | { id: number; kind: 'progress'; progress: NetperfProgress }
  | { id: number; kind: 'console'; line: string }
  | { id: number; kind: 'done'; run: NetperfRun }
  | { id: number; kind: 'error'; message: string };

export interface ParallelHandlers {
  /** Job `index` is starting (on a worker). */
  onStart?(index: number): void;
  onProgress?(index: number, p: NetperfProgress): void;
  /** Only asked for when given. */
  onConsoleLine?(index: number, line: string): void;
  onDone?(index: number, run: NetperfRun): void;
}

// Compiled (dist/parallel.js), the worker is plain JavaScript too; as TypeScript, worker.mjs
// registers tsx in the worker's thread first.
const ENTRY = new URL(
  import.meta.url.endsWith('.ts') ? './worker.mjs' : './worker.js',
  import.meta.url,
);

/** A run that did not come back from its worker: which one (its index in the list), and why. */
export class NetperfWorkerError extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Runs the jobs on at most `jobs` workers; resolves with their runs in the jobs' order. A run
 * that throws, or a worker that dies under one (an uncaught error, its exit, running out of
 * memory), rejects with a NetperfWorkerError naming that run; the other workers are stopped.
 */
export function runParallel(
  list: NetperfJob[],
  jobs: number,
  handlers: ParallelHandlers = {},
): Promise<NetperfRun[]> {
  const results: NetperfRun[] = new Array<NetperfRun>(list.length);
  let next = 0;
  let finished = 0;
  let failed = false;
  return new Promise((resolve, reject) => {
    if (list.length === 0) {
      resolve(results);
      return;
    }
    const workers: Worker[] = [];
    /** The run each worker has (undefined: none). */
    const current = new Map<Worker, number>();
    const fail = (index: number, message: string): void => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(new NetperfWorkerError(index, message));
    };
    const give = (w: Worker): void => {
      if (failed || next >= list.length) {
        current.delete(w);
        void w.terminate();
        return;
      }
      const id = next++;
      current.set(w, id);
      handlers.onStart?.(id);
      w.postMessage({ id, job: list[id], console: handlers.onConsoleLine !== undefined });
    };
    for (let k = 0; k < Math.min(jobs, list.length); k++) {
      const w = new Worker(ENTRY);
      workers.push(w);
      w.on('message', (m: WorkerMessage) => {
        if (m.kind === 'progress') handlers.onProgress?.(m.id, m.progress);
        else if (m.kind === 'console') handlers.onConsoleLine?.(m.id, m.line);
        else if (m.kind === 'error') fail(m.id, m.message);
        else {
          results[m.id] = m.run;
          handlers.onDone?.(m.id, m.run);
          if (++finished === list.length) resolve(results);
          give(w);
        }
      });
      const lost = (why: string): void => {
        const id = current.get(w);
        if (id !== undefined) fail(id, why);
      };
      w.on('error', (e) => lost(e instanceof Error ? (e.stack ?? e.message) : String(e)));
      w.on('exit', (code) => lost(`its worker thread exited (code ${code}) before the run ended`));
    }
    for (const w of workers) give(w);
  });
}
