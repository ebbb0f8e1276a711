/**
 * Netperf runs in parallel (`previrt bench netperf --jobs N`): each run is a simulation of its
 * own — its own machine, clock and client — so runs in worker threads give exactly the figures
 * of a serial run (only the host's times differ). A pool of at most N workers (worker.ts,
 * started through worker.mjs, which loads TypeScript) takes the runs in order; progress and
 * console lines come back as messages; the results are returned in the runs' order.
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

const ENTRY = new URL('./worker.mjs', import.meta.url);

/** Runs the jobs on at most `jobs` workers; resolves with their runs in the jobs' order. */
export function runParallel(
  list: NetperfJob[],
  jobs: number,
  handlers: ParallelHandlers = {},
): Promise<NetperfRun[]> {
  const results: NetperfRun[] = new Array<NetperfRun>(list.length);
  let next = 0;
  let finished = 0;
  return new Promise((resolve, reject) => {
    if (list.length === 0) {
      resolve(results);
      return;
    }
    const workers: Worker[] = [];
    const fail = (e: Error): void => {
      for (const w of workers) void w.terminate();
      reject(e);
    };
    const give = (w: Worker): void => {
      if (next >= list.length) {
        void w.terminate();
        return;
      }
      const id = next++;
      handlers.onStart?.(id);
      w.postMessage({ id, job: list[id], console: handlers.onConsoleLine !== undefined });
    };
    for (let k = 0; k < Math.min(jobs, list.length); k++) {
      const w = new Worker(ENTRY);
      workers.push(w);
      w.on('message', (m: WorkerMessage) => {
        if (m.kind === 'progress') handlers.onProgress?.(m.id, m.progress);
        else if (m.kind === 'console') handlers.onConsoleLine?.(m.id, m.line);
        else if (m.kind === 'error') fail(new Error(`netperf worker: ${m.message}`));
        else {
          results[m.id] = m.run;
          handlers.onDone?.(m.id, m.run);
          if (++finished === list.length) resolve(results);
          give(w);
        }
      });
      w.on('error', (e) => fail(e));
      give(w);
    }
  });
}
