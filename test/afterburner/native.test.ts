// Afterburned code behaves exactly as before on the host CPU: a user-space program with the
// user-safe sensitive instructions (and trapping ones stepped over by a signal handler), built
// with gcc -m32 plainly and through the as wrapper, prints the same; verify-annotations passes on
// everything but the C library's start-up code. Where the host cannot execute i386 programs both
// run under qemu-i386 (test/hostI386.ts; PREVIRT_I386=native|qemu forces one way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyAnnotations } from '../../src/afterburner/verify.ts';
import { wrapperDir } from '../../src/afterburner/files.ts';
import { i386Runner } from '../hostI386.ts';

const prog = join(import.meta.dirname, 'native', 'prog.c');
const cflags = ['-m32', '-O2', '-no-pie', '-fno-pie', '-Wall', '-Werror'];

function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('afterburned program prints the same as the plain one on the host', (t) => {
  const runner = i386Runner();
  t.diagnostic(runner.description);
  const run = (program: string): string => {
    const c = runner.command(program);
    return sh(c.file, c.args);
  };
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-native-'));
  try {
    const plain = join(dir, 'plain');
    const burned = join(dir, 'burned');
    const report = join(dir, 'report.txt');
    sh('gcc', [...cflags, '-o', plain, prog]);
    sh('gcc', [...cflags, `-B${wrapperDir()}`, '-o', burned, prog], {
      PREVIRT_AFTERBURN_REPORT: report,
    });
    const expected = run(plain);
    const got = run(burned);
    assert.equal(got, expected);
    assert.match(expected, /signals: 105\n$/);
    assert.match(readFileSync(report, 'utf8'), /sites, \d+ bytes of padding added/);

    const r = verifyAnnotations(burned, readFileSync(burned));
    // The C library's crt1.o (_start ends in hlt) is not afterburned; everything of prog.c is.
    assert.ok(r.annotated >= 40, `${r.annotated} annotated`);
    assert.deepEqual(
      r.offenders.filter((o) => !o.where.startsWith('_start')),
      [],
    );
    const p = verifyAnnotations(plain, readFileSync(plain));
    assert.equal(p.sensitive, r.sensitive);
    assert.equal(p.offenders.length, r.sensitive);
    t.diagnostic(
      `native program: ${r.sensitive} sensitive instructions, ${r.annotated} annotated, outputs equal`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
