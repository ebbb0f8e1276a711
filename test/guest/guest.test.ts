// The guest kernel (guest/): both variants build, and the self-test passes on QEMU and on
// previrt's own PC, with the same test lines everywhere.
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  BUILD,
  ROOT,
  afterburnedSkipReason,
  buildSkipReason,
  comparableLines,
  hasCommand,
  kernelPath,
  make,
  previrtRunSkipReason,
  runPrevirt,
  runQemu,
  type GuestRun,
} from './guest.ts';

const noBuild = buildSkipReason();
const noQemu = noBuild ?? (hasCommand('qemu-system-i386') ? undefined : 'qemu-system-i386 is not installed');
const noAfterburned = afterburnedSkipReason();
const noPrevirt = noBuild ?? previrtRunSkipReason();

/** What every passing self-test run shows. */
function assertSelftestPassed(run: GuestRun): void {
  assert.match(run.console, /^selftest: kernel: \d+ passed, 0 failed$/m, run.console);
  assert.match(run.console, /^selftest: user: \d+ passed, 0 failed$/m, run.console);
  assert.doesNotMatch(run.console, /^test: FAIL/m, run.console);
  assert.match(run.console, /^selftest: PASS$/m, run.console);
  assert.equal(run.status, 1, 'exit code 0 through isa-debug-exit gives host status 1');
}

const qemuSelftest = new Map<string, GuestRun>();
function qemuRun(): GuestRun {
  let run = qemuSelftest.get('native');
  if (!run) qemuSelftest.set('native', (run = runQemu(kernelPath('native'), 'init=selftest')));
  return run;
}

test('the native variant builds', { skip: noBuild }, () => {
  const r = make('native');
  assert.ok(r.ok, r.output);
});

test('the afterburned variant builds', { skip: noAfterburned }, () => {
  const r = make('afterburned');
  assert.ok(r.ok, r.output);
});

test('previrt verify-annotations passes on the afterburned kernel', { skip: noAfterburned }, () => {
  assert.ok(make('afterburned').ok);
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'previrt.mjs'), 'verify-annotations', kernelPath('afterburned')],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, / 0 offenders/);
});

test('the kernel never maps or links anything at 0xFC000000 and above', { skip: noBuild }, () => {
  assert.ok(make('native').ok);
  const r = runTool('readelf', ['-lW', kernelPath('native')]);
  for (const m of r.matchAll(/^\s+LOAD\s+\S+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+\S+\s+(0x[0-9a-f]+)/gm)) {
    const vaddr = Number(m[1]);
    const paddr = Number(m[2]);
    const memsz = Number(m[3]);
    assert.ok(vaddr >= 0xc0000000 && vaddr + memsz <= 0xfc000000, `segment at ${m[1]}`);
    assert.equal(vaddr - paddr, 0xc0000000, 'linked at KERNBASE + load address');
  }
});

test('QEMU: the self-test passes (native)', { skip: noQemu }, () => {
  assert.ok(make('native').ok);
  assertSelftestPassed(qemuRun());
});

test('QEMU: init=<program> -- args runs it as process 1 and its status ends the run', { skip: noQemu }, () => {
  assert.ok(make('native').ok);
  const run = runQemu(kernelPath('native'), 'init=hello -- one two');
  assert.match(run.console, /^hello from pid 1: one two$/m, run.console);
  assert.equal(run.status, 1);
});

test('QEMU: a multiboot module is a program, named after its file', { skip: noQemu }, () => {
  assert.ok(make('native').ok);
  const run = runQemu(kernelPath('native'), 'init=bad', {
    modules: [join(BUILD, 'user', 'bad.elf')],
    memMb: 64,
  });
  assert.match(run.console, /^programs: module 'bad'/m, run.console);
  assert.match(run.console, /^kernel: pid 1 \(bad\): page fault at eip [0-9a-f]+, address 0/m);
  // The host sees the low 8 bits of (142 << 1) | 1.
  assert.equal(run.status, ((142 << 1) | 1) & 0xff, run.console);
});

test('QEMU: the shell runs programs and exits with the status asked for', { skip: noQemu }, () => {
  assert.ok(make('native').ok);
  const run = runQemu(kernelPath('native'), 'init=shell', {
    input: 'programs\nhello a b\nno-such\nexit 3\n',
  });
  // Input typed ahead is echoed when it arrives, so output lines may start with echoes.
    assert.match(run.console, /hello from pid 2: a b$/m, run.console);
  assert.match(run.console, /no-such: no such program/, run.console);
  // One write() is never split by echoes: the kernel writes with interrupts off.
    assert.match(run.console, /utest\nsh\nhello\nspin\nbad\n/, run.console);
  assert.equal(run.status, (3 << 1) | 1, run.console);
});

test('QEMU: the afterburned variant passes too, same test lines as native', { skip: noQemu ?? noAfterburned }, () => {
  assert.ok(make('afterburned').ok);
  const run = runQemu(kernelPath('afterburned'), 'init=selftest');
  assertSelftestPassed(run);
  assert.deepEqual(comparableLines(run.console), comparableLines(qemuRun().console));
});

for (const variant of ['native', 'afterburned'] as const) {
  const skip = variant === 'afterburned' ? (noAfterburned ?? noPrevirt) : noPrevirt;
  test(`previrt run: the self-test passes (${variant}), same test lines as QEMU`, { skip }, () => {
    assert.ok(make(variant).ok);
    const run = runPrevirt(kernelPath(variant), 'init=selftest');
    assertSelftestPassed(run);
    if (!noQemu) assert.deepEqual(comparableLines(run.console), comparableLines(qemuRun().console));
  });
}

function runTool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}
