// The browser-safe core (DESIGN.md decision 13) is the compiler's rule, not a convention: a file
// placed in any core layer is compiled by tsconfig.core.json, where Node's globals and modules do
// not exist, while test files and the Node side are not. The real config files are copied into a
// temporary folder with probe files at the places in question (the source tree is not touched),
// node_modules is linked so that @types/node could be found if the config let it in, and the
// probes are type-checked with the TypeScript compiler's API: about a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The layers that must run in a browser (DESIGN.md; platforms and snapshot may not exist yet). */
const CORE = [
  'x86',
  'machine',
  'loader',
  'net',
  'hypervisor',
  'vmm',
  'vmm/devices',
  'vmm/backends/xen',
  'afterburner',
  'platforms',
  'snapshot',
];
/** Files the core config must leave to the Node-typed one. */
const NODE_SIDE = [
  'src/x86/nodeProbe.test.ts',
  'src/vmm/devices/nodeProbe.test.ts',
  'src/afterburner/files.ts',
  'src/afterburner/verify.ts',
  'src/afterburner/wrapper.ts',
  'src/cli/nodeProbe.ts',
  'src/bench/nodeProbe.ts',
  'test/nodeProbe.ts',
  'scripts/nodeProbe.ts',
];

/** One use of Node per line; each line must fail to compile. */
const NODE_USES = [
  "export { readFileSync } from 'node:fs';",
  "export { readFile } from 'fs';",
  "export { randomBytes } from 'crypto';",
  "export { inspect } from 'util';",
  "import 'node:child_process';",
  "export const bytesOfNode = Buffer.from('x');",
  "export const env = process.env['HOME'];",
  'export const timer = setTimeout(() => 0, 1);',
  'export const hasRequire = typeof require;',
  'export const dir = __dirname;',
  'export const here = import.meta.dirname;',
  'export const sneaky = globalThis.process;',
  'export const now = performance.now();',
  "console.log('not declared for the core either');",
];
/** What the core may use: ECMAScript and the globals in types/core-globals.d.ts. */
const ALLOWED_USES = [
  'export const copy = structuredClone({ a: 1, b: [2] });',
  "export const bytes: Uint8Array = new TextEncoder().encode('x');",
  "export const text: string = new TextDecoder('utf-8', { fatal: true }).decode(bytes);",
  'export const wide = 1n << 40n;',
  'export const map = new Map<string, number>();',
];
/** "Cannot find name/module", "no such property" and "implicitly any" (globalThis.process). */
const MISSING = new Set([2304, 2307, 2339, 2584, 2591, 7017]);

test('every core layer compiles without Node: its globals and modules are errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-core-'));
  try {
    for (const name of ['package.json', 'tsconfig.base.json', 'tsconfig.core.json', 'types'])
      cpSync(join(ROOT, name), join(dir, name), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const write = (path: string, lines: string[]) => {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), lines.join('\n') + '\n');
    };
    for (const layer of CORE) {
      write(`src/${layer}/nodeProbe.ts`, NODE_USES);
      write(`src/${layer}/webProbe.ts`, ALLOWED_USES);
    }
    for (const path of NODE_SIDE) write(path, NODE_USES);

    const parsed = ts.getParsedCommandLineOfConfigFile(join(dir, 'tsconfig.core.json'), undefined, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) =>
        assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    });
    assert.ok(parsed);
    assert.deepEqual(parsed.errors, []);
    const files = parsed.fileNames.map((f) => relative(dir, f)).sort();
    const probes = CORE.flatMap((l) => [`src/${l}/nodeProbe.ts`, `src/${l}/webProbe.ts`]);
    assert.deepEqual(files, [...probes, 'types/core-globals.d.ts'].sort());

    const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
    assert.deepEqual(program.getOptionsDiagnostics().map(message), []);
    assert.deepEqual(program.getGlobalDiagnostics().map(message), []);
    for (const layer of CORE) {
      const web = program.getSourceFile(join(dir, `src/${layer}/webProbe.ts`));
      assert.ok(web);
      assert.deepEqual(diagnostics(program, web).map(message), [], `src/${layer}/webProbe.ts`);

      const probe = program.getSourceFile(join(dir, `src/${layer}/nodeProbe.ts`));
      assert.ok(probe);
      const found = diagnostics(program, probe);
      const failing = new Set(
        found.map((d) => probe.getLineAndCharacterOfPosition(d.start ?? 0).line),
      );
      const passing = NODE_USES.filter((_, line) => !failing.has(line));
      assert.deepEqual(passing, [], `src/${layer}: these compiled`);
      for (const d of found) assert.ok(MISSING.has(d.code), `src/${layer}: ${message(d)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function diagnostics(program: ts.Program, file: ts.SourceFile): ts.Diagnostic[] {
  return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
}

function message(d: ts.Diagnostic): string {
  return `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
}
