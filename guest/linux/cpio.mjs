#!/usr/bin/env node
// Writes an initramfs: an uncompressed cpio archive in the "newc" format the kernel unpacks
// (the kernel's Documentation/driver-api/early-userspace/buffer-format.rst), byte for byte the
// same for the same inputs (every time stamp 0, owner root, inode numbers in order).
//
//   node cpio.mjs OUT dir:/PATH ... char:/PATH:MAJOR:MINOR ... file:/PATH:HOSTFILE ...
//
// Directories get mode 0755, files 0755 (the programs), character devices 0600.
import { readFileSync, writeFileSync } from 'node:fs';

const [out, ...specs] = process.argv.slice(2);
if (out === undefined || specs.length === 0) {
  console.error('usage: node cpio.mjs OUT dir:/PATH | char:/PATH:MAJOR:MINOR | file:/PATH:HOSTFILE ...');
  process.exit(2);
}

const chunks = [];
let size = 0;
let ino = 1;
const push = (bytes) => {
  chunks.push(bytes);
  size += bytes.length;
};
const pad4 = () => {
  if (size % 4 !== 0) push(new Uint8Array(4 - (size % 4)));
};
const hex8 = (v) => v.toString(16).padStart(8, '0');

function entry(name, mode, data, rdevMajor = 0, rdevMinor = 0) {
  const path = new TextEncoder().encode(`${name}\0`);
  const fields = [
    ino++,
    mode,
    0, // uid
    0, // gid
    1, // nlink
    0, // mtime
    data.length,
    0, // devmajor
    0, // devminor
    rdevMajor,
    rdevMinor,
    path.length,
    0, // check
  ];
  push(new TextEncoder().encode(`070701${fields.map(hex8).join('')}`));
  push(path);
  pad4();
  push(data);
  pad4();
}

for (const spec of specs) {
  const [kind, ...rest] = spec.split(':');
  const path = rest[0]?.replace(/^\//, '');
  if (!path) throw new Error(`cpio: bad entry '${spec}'`);
  if (kind === 'dir') entry(path, 0o040755, new Uint8Array());
  else if (kind === 'char') entry(path, 0o020600, new Uint8Array(), Number(rest[1]), Number(rest[2]));
  else if (kind === 'file') entry(path, 0o100755, readFileSync(rest.slice(1).join(':')));
  else throw new Error(`cpio: unknown entry kind '${kind}' in '${spec}'`);
}
ino = 0;
entry('TRAILER!!!', 0, new Uint8Array());
const all = new Uint8Array(size);
let at = 0;
for (const c of chunks) {
  all.set(c, at);
  at += c.length;
}
writeFileSync(out, all);
