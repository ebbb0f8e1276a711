// The afterburner server (src/afterburner/server.ts) behind the `as` wrapper: gcc -B with
// PREVIRT_AS_SERVER set gives the objects and reports the Node wrapper gives, errors are the
// same message and status, and what the server cannot serve (standard input, a wrong token, no
// server) falls back to the Node wrapper. The server's own count says which runs it served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { wrapperDir } from '../../src/afterburner/files.ts';
import { WRAPPER_CFLAGS } from './wrapperFlags.ts';
import { formatReply, parseRequest, parseServeArgs } from '../../src/afterburner/server.ts';

const serverScript = join(wrapperDir(), 'server.mjs');
const sources = join(import.meta.dirname, 'gcc');

function gcc(
  args: string[],
  env: Record<string, string>,
): { status: number | null; stderr: string } {
  return spawnSync('gcc', args, { encoding: 'utf8', env: { ...process.env, ...env } });
}

/** gcc -c of `src` into `out` through the wrapper. */
function compile(src: string, out: string, env: Record<string, string>, extra: string[] = []) {
  const r = gcc([...WRAPPER_CFLAGS, ...extra, '-c', src, '-o', out], env);
  return r;
}

test('requests and replies: NUL-ended fields, complete only with every argument', () => {
  const fields = ['tok', '/w', '/bin', '', 'r.txt', '', '2', '--32', 'a.s'];
  const bytes = Buffer.from(fields.map((f) => `${f}\0`).join(''));
  assert.equal(parseRequest(bytes.subarray(0, bytes.length - 1)), null);
  assert.deepEqual(parseRequest(bytes), {
    token: 'tok',
    cwd: '/w',
    env: { PATH: '/bin', PREVIRT_REAL_AS: '', PREVIRT_AFTERBURN_REPORT: 'r.txt', TMPDIR: '' },
    argv: ['--32', 'a.s'],
  });
  assert.throws(() => parseRequest(Buffer.from('t\0c\0p\0r\0a\0t\0many\0')), /bad argc/);
  assert.equal(
    formatReply({ kind: 'exit', status: 1, messages: 'x.s:1: bad\n' }).toString(),
    'exit\x001\0\0\0x.s:1: bad\n\x000\0',
  );
  assert.deepEqual(parseServeArgs(['--port-file', 'p', '--jobs', '3', '--idle', '5']), {
    portFile: 'p',
    jobs: 3,
    idleSeconds: 5,
  });
  assert.match(
    (parseServeArgs(['--jobs', '0', '--port-file', 'p']) as { error: string }).error,
    /bad argument '--jobs 0'/,
  );
  assert.match((parseServeArgs([]) as { error: string }).error, /--port-file FILE is required/);
});

test('gcc -B through the server: the same objects and reports, errors, fallbacks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-ab-server-'));
  const portFile = join(dir, 'port');
  const server = spawn(
    process.execPath,
    [serverScript, '--port-file', portFile, '--jobs', '2', '--idle', '600'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let serverLog = '';
  server.stderr.on('data', (b: Buffer) => (serverLog += b.toString()));
  const exited = new Promise<number | null>((done) => server.on('exit', (code) => done(code)));
  try {
    for (let k = 0; k < 600 && !existsSync(portFile); k++) await sleep(50);
    assert.ok(existsSync(portFile), `the server wrote no port file: ${serverLog}`);
    const address = readFileSync(portFile, 'utf8').trim();
    assert.match(address, /^127\.0\.0\.1:\d+:[0-9a-f]{32}$/);
    // The served runs' temporary files go to a folder of their own, to see them removed.
    const temp = join(dir, 'tmp');
    mkdirSync(temp);
    const served = { PREVIRT_AS_SERVER: address, TMPDIR: temp };

    // C (gcc's temporary .s) and preprocessed assembly, with a report each way.
    for (const name of ['kernel.c', 'entry.S']) {
      const plainReport = join(dir, `${name}.plain.txt`);
      const servedReport = join(dir, `${name}.served.txt`);
      const a = compile(join(sources, name), join(dir, `${name}.plain.o`), {
        PREVIRT_AFTERBURN_REPORT: plainReport,
      });
      assert.equal(a.status, 0, a.stderr);
      const b = compile(join(sources, name), join(dir, `${name}.served.o`), {
        ...served,
        PREVIRT_AFTERBURN_REPORT: servedReport,
      });
      assert.equal(b.status, 0, b.stderr);
      assert.deepEqual(
        readFileSync(join(dir, `${name}.served.o`)),
        readFileSync(join(dir, `${name}.plain.o`)),
      );
      // gcc's temporary file names differ from run to run; the rest of the line may not.
      const tidy = (file: string) =>
        readFileSync(file, 'utf8').replace(/^\S*\/cc\w+\.s/gm, 'TMP.s');
      assert.equal(tidy(servedReport), tidy(plainReport));
      assert.match(tidy(servedReport), /sites/);
    }

    // An afterburner error: the same message and a failing status, from the server.
    const bad = join(dir, 'bad.s');
    writeFileSync(bad, '\tlgdt %eax\n');
    const as = join(wrapperDir(), 'as');
    const plainBad = spawnSync(as, ['--32', '-o', join(dir, 'bad.o'), bad], { encoding: 'utf8' });
    const servedBad = spawnSync(as, ['--32', '-o', join(dir, 'bad.o'), bad], {
      encoding: 'utf8',
      env: { ...process.env, ...served },
    });
    assert.equal(plainBad.status, 1);
    assert.equal(servedBad.status, 1);
    assert.match(servedBad.stderr, /bad\.s:1: cannot parse the operands '%eax'/);
    assert.equal(servedBad.stderr, plainBad.stderr);

    // Standard input (gcc -pipe), a wrong token and no server: the Node wrapper, same object.
    const kernel = join(sources, 'kernel.c');
    const pipe = compile(kernel, join(dir, 'pipe.o'), served, ['-pipe']);
    assert.equal(pipe.status, 0, pipe.stderr);
    const wrong = compile(kernel, join(dir, 'wrong.o'), {
      PREVIRT_AS_SERVER: address.replace(/:[0-9a-f]+$/, ':0000'),
    });
    assert.equal(wrong.status, 0, wrong.stderr);
    const none = compile(kernel, join(dir, 'none.o'), { PREVIRT_AS_SERVER: '127.0.0.1:1:00' });
    assert.equal(none.status, 0, none.stderr);
    for (const name of ['pipe.o', 'wrong.o', 'none.o'])
      assert.deepEqual(readFileSync(join(dir, name)), readFileSync(join(dir, 'kernel.c.plain.o')));

    // SIGTERM stops it at once, not when its idle time-out (600 s) would have (a build waits
    // for it to exit).
    server.kill('SIGTERM');
    assert.equal(await Promise.race([exited, sleep(60_000, 'still running', { ref: false })]), 0);
    // Served: kernel.c, entry.S and bad.s (with its error); -pipe asked and was sent back.
    assert.match(
      serverLog,
      /previrt as server: 3 as runs afterburned \(1 with errors\), 1 left to the Node wrapper/,
    );
    // Every temporary directory the server made was removed by the script after as ran.
    assert.deepEqual(readdirSync(temp), []);
  } finally {
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
