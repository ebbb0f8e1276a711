/**
 * A netperf worker thread (parallel.ts): runs the runs it is given, one at a time, and sends
 * back their progress, console lines (when asked) and results.
 */
import { parentPort } from 'node:worker_threads';
import type { NetperfJob, WorkerMessage } from './parallel.ts';
import { runNetperf } from './run.ts';

const port = parentPort;
if (port === null) throw new Error('worker.ts runs as a worker thread (parallel.ts)');
port.on('message', (m: { id: number; job: NetperfJob; console: boolean }) => {
  const send = (msg: WorkerMessage): void => port.postMessage(msg);
  try {
    const run = runNetperf({
      ...m.job,
      onProgress: (progress) => send({ id: m.id, kind: 'progress', progress }),
      onConsoleLine: m.console ? (line) => send({ id: m.id, kind: 'console', line }) : undefined,
    });
    send({ id: m.id, kind: 'done', run });
  } catch (e) {
    // The message alone: the command prints it on one line naming the run.
    send({ id: m.id, kind: 'error', message: e instanceof Error ? e.message : String(e) });
  }
});
