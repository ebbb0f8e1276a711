import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoadError } from './elf.ts';
import { placeMultiboot } from './multiboot.ts';

/**
 * A flat kernel of `size` bytes loaded at `loadAddr` by the a.out kludge (multiboot header flag
 * 16): the header at its start, then bytes 0x5a.
 */
function flatKernel(loadAddr: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size).fill(0x5a);
  const v = new DataView(bytes.buffer);
  const flags = 0x10000;
  const words = [0x1badb002, flags, -(0x1badb002 + flags) >>> 0, loadAddr, loadAddr, 0, 0];
  words.push(loadAddr + 32);
  words.forEach((w, k) => v.setUint32(k * 4, w >>> 0, true));
  return bytes;
}

function place(loadAddr: number, size: number, ramMb = 16) {
  const ram = new Uint8Array(ramMb << 20);
  const placed = placeMultiboot(ram, {
    kernel: flatKernel(loadAddr, size),
    kernelName: 'k',
    cmdline: 'a b',
    modules: [],
  });
  return { ram, placed };
}

function cmdline(ram: Uint8Array, mbi: number): string {
  const v = new DataView(ram.buffer);
  const at = v.getUint32(mbi + 16, true);
  return new TextDecoder().decode(ram.subarray(at, ram.indexOf(0, at)));
}

test('a kernel at 1 MB: the information structure at 0x9000, as before', () => {
  const { ram, placed } = place(0x100000, 0x3000);
  assert.ok(!(placed instanceof LoadError));
  assert.equal(placed.mbi, 0x9000);
  assert.equal(cmdline(ram, placed.mbi), 'k a b');
});

test('a kernel in low memory: the information structure after the image, not inside it', () => {
  // kvm-unit-tests' realmode.flat is linked at 0x8000 and runs to about 0xdb00.
  const { ram, placed } = place(0x8000, 0x5a30);
  assert.ok(!(placed instanceof LoadError));
  assert.equal(placed.entry, 0x8020);
  assert.ok(placed.mbi >= 0xe000 && placed.mbi < 0x9fc00, `mbi at 0x${placed.mbi.toString(16)}`);
  assert.ok(
    ram.subarray(0x8020, 0x8000 + 0x5a30).every((b) => b === 0x5a),
    'image intact',
  );
  assert.equal(cmdline(ram, placed.mbi), 'k a b');
});

test('a low kernel that fills conventional memory: the information structure from 1 MB', () => {
  const { ram, placed } = place(0x1000, 0x9f800 - 0x1000);
  assert.ok(!(placed instanceof LoadError));
  assert.equal(placed.mbi, 0x100000);
  assert.equal(cmdline(ram, placed.mbi), 'k a b');
});

test('a segment in the reserved area below 1 MB is refused', () => {
  const { placed } = place(0x9f000, 0x2000);
  assert.ok(placed instanceof LoadError);
  assert.match(placed.message, /reserved area from 0x9fc00/);
});
