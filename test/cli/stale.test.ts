import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../guest/guest.ts';

/** bin/stale.mjs's verdict on the repository-like folder `repo` (undefined: dist/ is current). */
function staleReason(repo: string): string | undefined {
  const stale = pathToFileURL(join(ROOT, 'bin', 'stale.mjs')).href;
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { staleReason } = await import(${JSON.stringify(stale)}); ` +
        `console.log(JSON.stringify(staleReason(${JSON.stringify(repo)}) ?? null));`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as string | null) ?? undefined;
}

test('dist/ is stale when it was never built, or a source or tsconfig is newer than its build', () => {
  const repo = mkdtempSync(join(tmpdir(), 'previrt-stale-'));
  try {
    const at = (path: string, seconds: number): void => utimesSync(path, seconds, seconds);
    mkdirSync(join(repo, 'src', 'x86'), { recursive: true });
    const source = join(repo, 'src', 'x86', 'cpu.ts');
    const testFile = join(repo, 'src', 'x86', 'cpu.test.ts');
    const config = join(repo, 'tsconfig.build.json');
    for (const f of [source, testFile, config, join(repo, 'tsconfig.base.json')]) {
      writeFileSync(f, '');
      at(f, 1000);
    }
    assert.equal(staleReason(repo), 'dist/ is not built');
    mkdirSync(join(repo, 'dist'));
    const built = join(repo, 'dist', '.built');
    writeFileSync(built, '');
    at(built, 2000);
    assert.equal(staleReason(repo), undefined);
    // A test beside the code is not part of dist/: editing it changes nothing.
    at(testFile, 3000);
    assert.equal(staleReason(repo), undefined);
    at(source, 3000);
    assert.equal(staleReason(repo), 'src/ is newer than dist/');
    at(source, 1000);
    at(config, 3000);
    assert.equal(staleReason(repo), 'src/ is newer than dist/');
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
});

test('previrt with PREVIRT_TSX=1 runs the sources through tsx and says nothing about it', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), '--help'], {
    encoding: 'utf8',
    env: { ...process.env, PREVIRT_TSX: '1' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: previrt <command>/);
  assert.equal(r.stderr, '');
});
