#!/usr/bin/env node
// The project's figures in one file, for "a refactor that changes no behaviour leaves every
// figure identical": the self-test's --stats --json (native raw, afterburned raw, afterburned on
// every hypervisor, each para-virtualized port on its hypervisor) and `bench netperf --json` at
// 16 MB (the raw and xen pre-virtualized rows, xen-para, l4-pre, l4-para, the driver reuse
// rows), with host-time fields removed. A figure set the saved file does not have yet (the para-virtualized ones, in a
// file saved before they existed) is listed as new, not as a difference; any other figure that
// changed, appeared or is gone is a difference.
//
//   node scripts/figures.mjs --save FILE      write them
//   node scripts/figures.mjs --compare FILE   compute them again and list every difference
//   options: --bytes SIZE (netperf payload, default 16M; 0 skips it)
//
// Run from the repository root after `make -C guest`. Exit status 1 when --compare finds a
// difference, 2 on bad usage.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const HOST_FIELDS = new Set(['hostMs', 'guestMips', 'hostSeconds', 'hostIntervalSeconds']);

function usage(message) {
  console.error(
    `figures: ${message}\nusage: node scripts/figures.mjs --save FILE | --compare FILE [--bytes SIZE]`,
  );
  process.exit(2);
}

const argv = process.argv.slice(2);
let mode;
let file;
let bytes = '16M';
for (let k = 0; k < argv.length; k++) {
  const a = argv[k];
  if (a === '--save' || a === '--compare') {
    mode = a.slice(2);
    file = argv[++k];
  } else if (a === '--bytes') bytes = argv[++k];
  else usage(`unknown option '${a}'`);
}
if (mode === undefined || file === undefined) usage('--save FILE or --compare FILE is needed');

function strip(value) {
  if (Array.isArray(value)) return value.map(strip);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) if (!HOST_FIELDS.has(k)) out[k] = strip(v);
  return out;
}

function previrt(args) {
  const r = spawnSync(process.execPath, ['bin/previrt.mjs', ...args], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  return r;
}

function selftest(kernel, hypervisor) {
  const args = ['run', '--kernel', kernel, '--append', 'init=selftest', '--stats', '--json'];
  if (hypervisor !== undefined) args.push('--hypervisor', hypervisor);
  const r = previrt(args);
  const json = r.stderr.slice(r.stderr.indexOf('{'));
  return { status: r.status, console: r.stdout, stats: strip(JSON.parse(json)) };
}

const figures = {
  selftest: {
    native: selftest('guest/build/native/kernel.elf'),
    afterburned: selftest('guest/build/afterburned/kernel.elf'),
    xen: selftest('guest/build/afterburned/kernel.elf', 'xen'),
    xenPara: selftest('guest/build/xen-para/kernel.elf', 'xen'),
    l4: selftest('guest/build/afterburned/kernel.elf', 'l4'),
    l4Para: selftest('guest/build/l4-para/kernel.elf', 'l4'),
  },
};
function netperf(configs) {
  const r = previrt(['bench', 'netperf', '--config', configs, '--bytes', bytes, '--json']);
  if (r.status !== 0) {
    console.error(r.stderr);
    usage(`bench netperf exited with ${r.status}`);
  }
  return strip(JSON.parse(r.stdout));
}
if (bytes !== '0') {
  figures.netperf = netperf('native,nops,xen-pre');
  figures.netperfPara = netperf('xen-para');
  figures.netperfL4 = netperf('l4-pre');
  figures.netperfL4Para = netperf('l4-para');
  // The driver reuse rows (a driver VM beside the guest).
  figures.netperfReuse = netperf('reuse-emul-l4,reuse-custom-xen,reuse-emul-xen');
  figures.netperfReuseCustomL4 = netperf('reuse-custom-l4');
}

if (mode === 'save') {
  writeFileSync(file, JSON.stringify(figures, null, 1) + '\n');
  console.log(`figures: written to ${file}`);
  process.exit(0);
}

const saved = JSON.parse(readFileSync(file, 'utf8'));
const differences = [];
const added = [];
function compare(path, a, b) {
  if (
    typeof a !== typeof b ||
    Array.isArray(a) !== Array.isArray(b) ||
    (a === null) !== (b === null)
  ) {
    differences.push(`${path}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`);
    return;
  }
  if (a !== null && typeof a === 'object') {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      // A whole figure set the file does not have (figures.X, figures.selftest.X) is new; a
      // new field inside a set the file has is a difference, as a changed one is.
      if (!(k in a) && path.split('.').length <= 2) added.push(`${path}.${k}`);
      else if (!(k in a))
        differences.push(`${path}.${k}: (new) ${JSON.stringify(b[k]).slice(0, 200)}`);
      else if (!(k in b))
        differences.push(`${path}.${k}: (gone) ${JSON.stringify(a[k]).slice(0, 200)}`);
      else compare(`${path}.${k}`, a[k], b[k]);
    }
    return;
  }
  if (a !== b) differences.push(`${path}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`);
}
compare('figures', saved, strip(figures));
if (added.length > 0) console.log(`figures: new, not in ${file}: ${added.join(', ')}`);
if (differences.length === 0) {
  console.log(`figures: every figure in ${file} is identical`);
  process.exit(0);
}
for (const d of differences.slice(0, 200)) console.log(d);
if (differences.length > 200) console.log(`... and ${differences.length - 200} more`);
console.log(`figures: ${differences.length} differences from ${file}`);
process.exit(1);
