import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSize, markdownTables, setting } from './report.ts';
import type { NetperfRun } from './run.ts';
import { parseSize } from '../../cli/commands/bench.ts';

function run(over: Partial<NetperfRun>): NetperfRun {
  const zeroNic = {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxFcsErrors: 0,
    txFrames: 0,
    txBytes: 0,
    busErrors: 0,
    interrupts: 0,
    unknownRegisterReads: 0,
  };
  return {
    label: 'native, raw',
    seed: 1,
    payloadBytes: 1 << 20,
    costModel: 'p4-2.8ghz',
    hz: 2.8e9,
    ok: true,
    intervalEnd: 'result-line',
    intervalCycles: 28_000_000,
    busyCycles: 14_000_000,
    idleCycles: 14_000_000,
    throughputMbps: 838.9,
    cpuUtilisation: 0.5,
    cyclesPerByte: 13.35,
    counters: {
      instructions: 1,
      interrupts: 2,
      nicInterrupts: 1,
      portReads: 3,
      portWrites: 4,
      mmioReads: 5,
      mmioWrites: 6,
      exceptions: 0,
      softwareInterrupts: 7,
      tlbMisses: 0,
      pitTicks: 1,
      nic: zeroNic,
    },
    sender: {
      state: 'done',
      payloadBytes: 1 << 20,
      streamBytes: (1 << 20) + 12,
      payloadCrc: 0,
      mss: 1460,
      maxWindow: 262144,
      times: {},
      counters: {} as NetperfRun['sender']['counters'],
    },
    machineEnd: 'exit 0',
    hostSeconds: 1,
    hostIntervalSeconds: 0.5,
    guestMips: 10,
    totalInstructions: 10_000_000,
    ...over,
  };
}

test('the seed layout: one row per configuration, means, ranges only where runs differ', () => {
  const table = markdownTables([
    { label: 'native, raw', runs: [run({}), run({ seed: 2 })] },
    {
      label: 'NOPs, raw',
      runs: [run({ cyclesPerByte: 13.0 }), run({ seed: 2, cyclesPerByte: 14.0 })],
    },
  ]);
  const lines = table.split('\n');
  assert.equal(lines[0], '| System | Xput [Mb/s] | CPU util | cycles/byte |');
  assert.equal(lines[2], '| native, raw | 838.9 | 50.0% | 13.35 |');
  assert.equal(lines[3], '| NOPs, raw | 838.9 | 50.0% | 13.50 (13.00–14.00) |');
  assert.match(
    table,
    /\| native, raw \| 10\.00 \| 14000000 \| 14000000 \| 1 \| 2 \(1\) \| 7 \| 5 \/ 6 \|/,
  );
});

test('a failed run blanks its row and is named under the table', () => {
  const rows = [
    { label: 'native, raw', runs: [run({})] },
    { label: 'NOPs, raw', runs: [run({ ok: false, error: 'netserver printed no result line' })] },
  ];
  assert.match(markdownTables(rows), /^\| NOPs, raw \| failed \| — \| — \|$/m);
  const text = setting(rows);
  assert.match(text, /NOPs, raw, seed 1 failed: netserver printed no result line/);
  assert.doesNotMatch(text, /cycles\/byte\.$/m, 'no comparison with a failed row');
  assert.match(text, /^Cost model p4-2\.8ghz \(2\.8 GHz\)\. TCP stream of 1 MB/);
});

test('sizes: K, M, G are powers of 1024 both ways', () => {
  assert.equal(parseSize('64M'), 64 * 2 ** 20);
  assert.equal(parseSize('1g'), 2 ** 30);
  assert.equal(parseSize('512K'), 512 * 1024);
  assert.equal(parseSize('1000'), 1000);
  assert.equal(parseSize('1.5M'), undefined);
  assert.equal(parseSize('-1M'), undefined);
  assert.equal(formatSize(16 * 2 ** 20), '16 MB');
  assert.equal(formatSize(1000), '1000 bytes');
});
