import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Command } from '../command.ts';
import { describeEnd } from '../../machine/Machine.ts';
import { createGuest } from '../../platforms/createGuest.ts';
import { verifyAnnotations } from '../../afterburner/verify.ts';
import { buildGuest, CONFIGS, guestKernelName, nicPathOptions } from '../../bench/netperf/build.ts';
import {
  formatSize,
  markdownTables,
  setting,
  type NetperfRow,
} from '../../bench/netperf/report.ts';
import { runNetperf } from '../../bench/netperf/run.ts';
import { parseSize } from './bench.ts';

const usage = `usage: previrt demo [--quiet] [--bytes SIZE]

The main job (README): builds the guest kernel twice from the same sources (native: gcc → as;
afterburned: gcc → afterburner → as) and twice hand-ported, to the Xen-style hypervisor
(xen-para) and to the L4-style microkernel (l4-para), checks the afterburned ELF with
verify-annotations, boots both on the emulated raw PC with init=selftest, the afterburned one on
the Xen-style hypervisor and on the L4-style microkernel through the in-place VMM and each port
on its own hypervisor, and prints a table (self-test result, simulated time, busy and idle
cycles, instructions, port I/O, host speed); then runs the netperf receive benchmark on the six
(previrt bench netperf, the seed's table: native, NOPs, L4Ka::Linux, L4Ka in-place VMM,
XenoLinux, Xen in-place VMM), with the pre- vs para-virtualized comparison on each hypervisor,
and on the seed's second table so far: a guest through a driver VM (the afterburned binary
with the NIC): on l4 the afterburned kernel with its unmodified driver against the VMM's
DP83820 model; on xen that, and the xen-para kernel with its custom virtual network driver.

  --quiet        no guest console output, only progress lines and the tables
  --bytes SIZE   netperf payload per configuration (default 16M; 0 skips the benchmark)
exit status: 0 if every configuration passes its self-test and every transfer is verified,
1 otherwise, 2 on bad usage or if the build fails.`;

interface Row {
  config: string;
  passed: boolean;
  reason: string;
  ms: number;
  busy: number;
  idle: number;
  instructions: number;
  ioAccesses: number;
  hostMs: number;
}

function runSelftest(config: string, elf: string, quiet: boolean, platform: string): Row {
  let line = '';
  let output = '';
  const serialOut = (b: number): void => {
    const c = String.fromCharCode(b);
    output += c;
    if (quiet) return;
    if (c === '\n') {
      console.log(`  [${config}] ${line}`);
      line = '';
    } else line += c;
  };
  const guest = createGuest({
    platform,
    kernel: readFileSync(elf),
    // The boot loader shows the guest its file name: the same from any checkout or directory,
    // so the figures are too (as in previrt bench netperf).
    kernelName: guestKernelName(elf),
    cmdline: 'init=selftest',
    console: serialOut,
  });
  if (typeof guest === 'string') throw new Error(guest);
  const machine = guest.machine;
  const t0 = performance.now();
  const end = machine.run(60 * machine.costModel.hz);
  const hostMs = performance.now() - t0;
  const s = machine.stats();
  const passed = end.kind === 'exit' && end.value === 0 && /selftest: PASS/.test(output);
  return {
    config,
    passed,
    reason: end.kind === 'exit' ? `exit ${end.value}` : describeEnd(end),
    ms: s.simulatedSeconds * 1000,
    busy: s.busyCycles,
    idle: s.idleCycles,
    instructions: s.instructions,
    ioAccesses: s.cpu.ioReads + s.cpu.ioWrites,
    hostMs,
  };
}

export const demo: Command = {
  name: 'demo',
  summary:
    'the main job: build the guest, run its self-test and netperf raw, on xen and on l4, print the tables',
  usage,
  async run(argv) {
    let quiet = false;
    let bytes = 16 << 20;
    for (let k = 0; k < argv.length; k++) {
      const a = argv[k];
      if (a === '--quiet') quiet = true;
      else if (a === '--bytes') {
        const n = argv[k + 1] === '0' ? 0 : parseSize(argv[k + 1] ?? '');
        if (n === undefined) {
          console.error(
            `previrt demo: --bytes needs a size such as 16M or 0 (previrt demo --help)`,
          );
          return 2;
        }
        bytes = n;
        k++;
      } else {
        console.error(`previrt demo: unknown option '${a}' (previrt demo --help)`);
        return 2;
      }
    }
    console.log(
      'demo: building the guest kernel (make -C guest): native, afterburned, xen-para and l4-para',
    );
    const build = buildGuest();
    if (!build.ok) {
      console.error(build.output);
      console.error('previrt demo: the guest build failed (output above)');
      return 2;
    }
    const native = relative(process.cwd(), CONFIGS.native.kernel);
    const afterburned = relative(process.cwd(), CONFIGS.nops.kernel);
    const verify = verifyAnnotations(afterburned, readFileSync(afterburned));
    const headerSites = Object.values(verify.headerSites).reduce((a, b) => a + b, 0);
    console.log(
      `demo: verify-annotations ${afterburned}: ${verify.sensitive} sensitive instructions, ` +
        `${verify.annotated} annotated, ${verify.offenders.length} offenders; ${verify.sites} sites ` +
        `plus ${headerSites} from the annotation header`,
    );
    const rows: Row[] = [];
    for (const [config, elf] of [
      ['native, raw', native],
      ['NOPs (afterburned), raw', afterburned],
    ]) {
      console.log(`demo: booting ${elf} on the raw PC with init=selftest (${config})`);
      rows.push(runSelftest(config, elf, quiet, 'none'));
    }
    const xenRow = 'afterburned, Xen in-place VMM';
    console.log(
      `demo: booting ${afterburned} on the xen hypervisor with init=selftest (${xenRow})`,
    );
    rows.push(runSelftest(xenRow, afterburned, quiet, 'xen'));
    const l4Row = 'afterburned, L4Ka in-place VMM';
    console.log(`demo: booting ${afterburned} on the l4 microkernel with init=selftest (${l4Row})`);
    rows.push(runSelftest(l4Row, afterburned, quiet, 'l4'));
    const para = relative(process.cwd(), CONFIGS['xen-para'].kernel);
    const paraRow = 'para-virtualized for xen (xen-para)';
    console.log(`demo: booting ${para} on the xen hypervisor with init=selftest (${paraRow})`);
    rows.push(runSelftest(paraRow, para, quiet, 'xen'));
    const l4Para = relative(process.cwd(), CONFIGS['l4-para'].kernel);
    const l4ParaRow = 'para-virtualized for l4 (l4-para)';
    console.log(`demo: booting ${l4Para} on the l4 microkernel with init=selftest (${l4ParaRow})`);
    rows.push(runSelftest(l4ParaRow, l4Para, quiet, 'l4'));
    console.log('');
    console.log(
      '| configuration | self-test | simulated ms | busy cycles | idle cycles | instructions | port I/O | host ms | guest MIPS |',
    );
    console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const mips = (r.instructions / Math.max(r.hostMs, 1) / 1000).toFixed(1);
      console.log(
        `| ${r.config} | ${r.passed ? 'PASS' : `FAIL (${r.reason})`} | ${r.ms.toFixed(1)} | ${r.busy} | ${r.idle} | ${r.instructions} | ${r.ioAccesses} | ${r.hostMs.toFixed(0)} | ${mips} |`,
      );
    }
    const [a, b] = rows;
    console.log('');
    console.log(
      `Afterburned vs native: ${(((b.busy - a.busy) / a.busy) * 100).toFixed(2)}% busy cycles, ` +
        `${(((b.instructions - a.instructions) / a.instructions) * 100).toFixed(2)}% instructions ` +
        '(the NOP padding executes on raw hardware). Cost model: p4-2.8ghz.',
    );
    const x = rows[2];
    console.log(
      `The same afterburned binary on xen vs raw: ${(((x.busy - b.busy) / b.busy) * 100).toFixed(2)}% ` +
        'busy cycles (hypercalls, bounces and VMM calls instead of privileged instructions).',
    );
    const l = rows[3];
    console.log(
      `The same afterburned binary on l4 vs raw: ${(((l.busy - b.busy) / b.busy) * 100).toFixed(2)}% ` +
        'busy cycles (IPC, mapping and VMM calls instead of privileged instructions).',
    );
    const netRows: NetperfRow[] = [];
    if (bytes > 0) {
      console.log('');
      for (const c of Object.values(CONFIGS)) {
        console.log(`demo: netperf receive, ${formatSize(bytes)} into ${c.label} (init=netserver)`);
        const run = runNetperf({
          label: c.label,
          kernel: readFileSync(c.kernel),
          kernelName: guestKernelName(c.kernel),
          payloadBytes: bytes,
          seed: 1,
          hypervisor: c.hypervisor,
          ...nicPathOptions(c),
          onConsoleLine: quiet ? undefined : (l) => console.log(`  [${c.label}] ${l}`),
        });
        netRows.push({
          label: c.label,
          runs: [run],
          hypervisor: c.hypervisor,
          virtualization: c.virtualization,
        });
      }
      console.log('');
      console.log(markdownTables(netRows));
      console.log('');
      console.log(setting(netRows));
    }
    const verified = netRows.every((r) => r.runs.every((run) => run.ok));
    return rows.every((r) => r.passed) && verified ? 0 : 1;
  },
};
