import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const OUTPUT = fileURLToPath(new URL('./output.ts', import.meta.url));

/** Runs a child that writes `count` bytes through byteWriter(1) after Node made stdout non-blocking. */
function writeThroughChild(count: number, extra = ''): ReturnType<typeof spawnSync> {
  const script = `
    import { byteWriter } from ${JSON.stringify(OUTPUT)};
    process.stdout; // makes Node switch the pipe to non-blocking, as any console.log would
    const w = byteWriter(1);
    for (let i = 0; i < ${count}; i++) w.byte(0x41 + (i % 26));
    w.flush();
    ${extra}`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    input: '',
    maxBuffer: 1 << 26,
  });
}

test('a slow pipe reader gets every byte, in order (EAGAIN is waited out)', () => {
  const r = writeThroughChild(2_000_000);
  assert.equal(r.status, 0, String(r.stderr));
  const out = String(r.stdout);
  assert.equal(out.length, 2_000_000);
  assert.equal(out.slice(0, 30), 'ABCDEFGHIJKLMNOPQRSTUVWXYZABCD');
  assert.equal(out.at(-1), String.fromCharCode(0x41 + (1_999_999 % 26)));
});

test('a reader that goes away ends the output quietly', () => {
  const script = `
    import { byteWriter } from ${JSON.stringify(OUTPUT)};
    const w = byteWriter(1);
    for (let i = 0; i < 1_000_000; i++) w.byte(0x41);
    w.flush();
    process.stderr.write(w.closed ? "closed" : "open");`;
  const r = spawnSync(
    'sh',
    [
      '-c',
      `"${process.execPath}" --import tsx --input-type=module -e '${script}' | head -c 10 >/dev/null`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0);
  assert.equal(r.stderr, 'closed');
});
