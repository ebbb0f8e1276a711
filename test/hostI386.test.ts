// How tests and scripts run gcc -m32 programs (test/hostI386.ts): natively where the host can,
// under qemu-i386 where it cannot, and either way on demand (PREVIRT_I386).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import {
  I386_PROBE_OUTPUT,
  detectI386,
  i386ModeFromEnv,
  i386Probe,
  i386Runner,
  type I386Runner,
} from './hostI386.ts';

function runProbe(runner: I386Runner): string {
  const c = runner.command(i386Probe());
  const r = spawnSync(c.file, c.args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${c.file} ${c.args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('PREVIRT_I386 takes native, qemu or auto, and refuses anything else in one line', () => {
  assert.equal(i386ModeFromEnv(undefined), 'auto');
  assert.equal(i386ModeFromEnv(''), 'auto');
  assert.equal(i386ModeFromEnv('auto'), 'auto');
  assert.equal(i386ModeFromEnv('native'), 'native');
  assert.equal(i386ModeFromEnv('qemu'), 'qemu');
  assert.throws(
    () => i386ModeFromEnv('x86'),
    /^Error: PREVIRT_I386=x86: expected native, qemu or auto$/,
  );
});

test('auto finds a way to run i386 programs, says which, and answers the same again', (t) => {
  const runner = i386Runner('auto');
  t.diagnostic(runner.description);
  assert.match(runner.description, /^reference: (the host CPU|qemu-i386) \(/);
  assert.equal(i386Runner('auto'), runner);
  assert.equal(runProbe(runner), I386_PROBE_OUTPUT);
});

test('qemu forced runs the program under qemu-i386', (t) => {
  const runner = detectI386('qemu');
  t.diagnostic(runner.description);
  assert.equal(runner.via, 'qemu-i386');
  assert.deepEqual(runner.command('/x/prog', ['a']), { file: 'qemu-i386', args: ['/x/prog', 'a'] });
  assert.equal(runProbe(runner), I386_PROBE_OUTPUT);
});

test('native forced runs it on the host CPU where it can, else fails with one clear message', (t) => {
  if (detectI386('auto').via === 'native') {
    const runner = detectI386('native');
    t.diagnostic(runner.description);
    assert.deepEqual(runner.command('/x/prog', ['a']), { file: '/x/prog', args: ['a'] });
    assert.equal(runProbe(runner), I386_PROBE_OUTPUT);
  } else {
    assert.throws(
      () => detectI386('native'),
      /native i386 execution was forced \(PREVIRT_I386=native\), but this host cannot execute i386 programs \(.+\); unset PREVIRT_I386 to use qemu-i386/,
    );
    t.diagnostic('this host cannot execute i386 programs: native forced fails as it should');
  }
});
