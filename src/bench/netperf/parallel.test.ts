import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NetperfWorkerError, runParallel, type NetperfJob } from './parallel.ts';

test('a run that fails in its worker thread rejects naming that run, and stops the pool', async () => {
  const job = (kernel: Uint8Array): NetperfJob => ({
    label: 'bad',
    kernel,
    kernelName: 'bad.elf',
    payloadBytes: 1024,
    seed: 1,
  });
  // Not a kernel: the loader refuses it inside the worker, in one line (no stack).
  const garbage = new Uint8Array(64).fill(0x90);
  const started: number[] = [];
  await assert.rejects(
    runParallel([job(garbage), job(garbage)], 1, { onStart: (k) => started.push(k) }),
    (e: unknown) => {
      assert.ok(e instanceof NetperfWorkerError);
      assert.equal(e.index, 0);
      assert.equal(e.message, 'bad.elf: not an ELF file (no \\x7fELF magic)');
      return true;
    },
  );
  // The first failure ends the pool: the second run is never started.
  assert.deepEqual(started, [0]);
});
