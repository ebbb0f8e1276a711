// The migration stream (src/vmm/migrationStream.ts): the self-test's record captured on one
// hypervisor, written as the stream, read back in pieces as a socket delivers them, and resumed
// on the other, reaches the uninterrupted run's console; a cut, damaged, wrong-version,
// wrong-platform or other-kernel stream is refused with one line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { crc32 } from '../../src/machine/ethernet/frame.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { captureGuest, resumeGuest, runToSafePoint } from '../../src/platforms/migrate.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import type { MigrationRecord } from '../../src/vmm/migration.ts';
import { StreamReader, decodeStream, encodeStream } from '../../src/vmm/migrationStream.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

const skip = buildSkipReason();
const LIMIT = 3_000_000_000;

function kernel(): Uint8Array {
  const r = make('afterburned');
  assert.ok(r.ok, r.output);
  return readFileSync(kernelPath('afterburned'));
}

function boot(platform: string, bytes: Uint8Array, out: { text: string }): Guest {
  const g = createGuest({
    platform,
    kernel: bytes,
    kernelName: 'kernel.elf',
    cmdline: 'init=selftest',
    memoryMb: 64,
    console: (b) => (out.text += String.fromCharCode(b)),
  });
  if (typeof g === 'string') assert.fail(g);
  return g;
}

describe('the migration stream', { skip }, () => {
  let bytes: Uint8Array;
  let record: MigrationRecord;
  let stream: Uint8Array;
  let source: Guest;
  const out = { text: '' };

  it('xen -> stream -> l4 reaches the PASS with the uninterrupted console', () => {
    bytes = kernel();
    const ref = { text: '' };
    assert.deepEqual(boot('xen', bytes, ref).machine.run(LIMIT), { kind: 'exit', value: 0 });
    source = boot('xen', bytes, out);
    source.machine.run(8_000_000);
    const c = runToSafePoint(source, 208_000_000);
    assert.ok('regs' in c);
    const r = captureGuest(source);
    if (typeof r === 'string') assert.fail(r);
    record = r;
    stream = encodeStream(record, crc32(bytes));
    // In pieces of odd sizes, as a socket may deliver them.
    const reader = new StreamReader({ kernelCrc: crc32(bytes) });
    for (let at = 0; at < stream.length; at += 7919) reader.push(stream.subarray(at, at + 7919));
    reader.close();
    assert.equal(reader.error, undefined);
    const got = reader.record!;
    assert.deepEqual(got.memory, record.memory);
    assert.deepEqual(
      JSON.parse(JSON.stringify({ ...got, memory: 0 })),
      JSON.parse(JSON.stringify({ ...record, memory: 0 })),
    );
    assert.ok(
      stream.length < record.memory.length,
      `${stream.length} bytes for ${record.memory.length}`,
    );
    const moved = resumeGuest(got, source.config, 'l4', {
      console: (b) => (out.text += String.fromCharCode(b)),
    });
    if (typeof moved === 'string') assert.fail(moved);
    assert.deepEqual(moved.machine.run(moved.machine.cpu.cycles + LIMIT), {
      kind: 'exit',
      value: 0,
    });
    assert.equal(out.text, ref.text);
    assert.match(out.text, /selftest: PASS/);
  });

  it('a cut, damaged, wrong-version, wrong-platform or other-kernel stream is refused', () => {
    const expect = { kernelCrc: crc32(bytes) };
    assert.match(
      String(decodeStream(stream.subarray(0, stream.length - 5), expect)),
      /^the migration stream was cut after \d+ bytes \(no end mark\)$/,
    );
    assert.match(String(decodeStream(stream.subarray(0, 100_000), expect)), /was cut/);
    const flipped = stream.slice();
    flipped[60_000] ^= 0x10;
    assert.match(
      String(decodeStream(flipped, expect)),
      /^the migration stream is damaged: CRC mismatch in the chunk at byte \d+$/,
    );
    const version = stream.slice();
    version[8] = 9;
    assert.equal(
      decodeStream(version, expect),
      'migration stream version 9 is not supported (this previrt reads version 1)',
    );
    assert.match(
      String(decodeStream(new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'), expect)),
      /not a previrt migration stream/,
    );
    const other = encodeStream({ ...record, from: 'none' }, expect.kernelCrc);
    assert.equal(
      decodeStream(other, expect),
      "the migration stream comes from platform 'none': only a guest of xen or l4 migrates",
    );
    assert.match(
      String(decodeStream(stream, { kernelCrc: 1 })),
      /^the migrated guest booted another kernel/,
    );
  });
});
