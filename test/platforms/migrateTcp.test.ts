// Live migration between two previrt processes over loopback TCP (src/cli/migrateNet.ts): the
// self-test started on xen under a monitor, stopped at a simulated cycle, and migrated to an l4
// destination (`run --incoming`) reaches its PASS there, the two consoles together the
// uninterrupted run's, the exit status the destination's. Before that, every fault leaves the
// source able to go on: no destination, a destination gone mid-stream, a flipped byte and a
// wrong version (each through a relay in front of the real destination, which refuses them).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

const skip = buildSkipReason();
const BIN = join(import.meta.dirname, '../../bin/previrt.mjs');

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  done: Promise<number>;
}
function previrt(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, out: '', err: '', done: Promise.resolve(0) };
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString('latin1')));
  child.stderr!.on('data', (d: Buffer) => (p.err += d.toString('latin1')));
  p.done = new Promise((r) => child.on('exit', (code) => r(code ?? -1)));
  return p;
}
async function until(p: Proc, re: RegExp): Promise<void> {
  for (let k = 0; k < 600 && !re.test(p.err); k++) await new Promise((r) => setTimeout(r, 50));
  assert.match(p.err, re);
}
async function monitor(path: string, line: string): Promise<string> {
  const p = previrt(['monitor', path, ...line.split(' ')]);
  await p.done;
  return p.out.trim();
}
/** A relay on `port` to the destination on `to`, changing the stream with `edit` (or cutting it). */
function relay(port: number, to: number, edit: (b: Buffer, at: number) => Buffer | 'cut'): Server {
  return createServer((a) => {
    const b = createConnection(to, '127.0.0.1');
    let at = 0;
    a.on('data', (d: Buffer) => {
      const e = edit(Buffer.from(d), at);
      at += d.length;
      if (e === 'cut') {
        a.destroy();
        b.destroy();
      } else b.write(e);
    });
    a.on('end', () => b.end());
    b.on('end', () => a.end());
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
  }).listen(port, '127.0.0.1');
}

const flip = (offset: number, mask: number) => (b: Buffer, at: number) => {
  if (offset >= at && offset < at + b.length) b[offset - at] ^= mask;
  return b;
};

describe('live migration between processes over TCP', { skip }, () => {
  for (const [from, to, port] of [
    ['xen', 'l4', 47_611],
    ['l4', 'xen', 47_621],
  ] as const)
    it(`${from} -> ${to}: faults leave the source running, then the move reaches the PASS`, async () => {
      assert.ok(make('afterburned').ok);
      const base = ['run', '--kernel', kernelPath('afterburned'), '--append', 'init=selftest'];
      const ref = previrt([...base, '--memory', '64', '--hypervisor', from]);
      const dir = mkdtempSync(join(tmpdir(), 'previrt-mig-'));
      const mon = join(dir, 'mon');
      const dst = previrt([
        ...base,
        '--memory',
        '64',
        '--hypervisor',
        to,
        '--incoming',
        `tcp:127.0.0.1:${port}`,
      ]);
      const src = previrt([
        ...base,
        '--memory',
        '64',
        '--hypervisor',
        from,
        '--monitor',
        `unix:${mon}`,
      ]);
      await until(src, /monitor on/);
      await until(dst, /waiting for a guest/);
      assert.equal(await monitor(mon, 'cont 8000000'), 'running (to cycle 8000000)');
      await until(src, /stopped at cycle 8000000/);
      // Nobody listens there.
      assert.match(
        await monitor(mon, `migrate tcp:127.0.0.1:${port + 9}`),
        /^error: migration failed: cannot send to .*ECONNREFUSED/,
      );
      const faults: [string, (b: Buffer, at: number) => Buffer | 'cut', RegExp][] = [
        ['cut', (b, at) => (at > 1_000_000 ? 'cut' : b), /closed the connection|cannot send/],
        [
          'flipped',
          flip(3_000_000, 0x04),
          /refused the guest: the migration stream is damaged: CRC mismatch/,
        ],
        [
          'version',
          flip(8, 0x02),
          /refused the guest: migration stream version 3 is not supported/,
        ],
      ];
      for (const [k, [name, edit, want]] of faults.entries()) {
        const r = relay(port + 1 + k, port, edit);
        const answer = await monitor(mon, `migrate tcp:127.0.0.1:${port + 1 + k}`);
        r.close();
        assert.match(answer, want, name);
        assert.match(await monitor(mon, 'info status'), /^VM status: paused/, name);
      }
      assert.match(
        await monitor(mon, `migrate tcp:127.0.0.1:${port}`),
        /^migrated to tcp:127.0.0.1:\d+ at cycle 8000000$/,
      );
      assert.equal(await src.done, 0);
      assert.equal(await dst.done, 1, dst.err);
      assert.equal(await ref.done, 1);
      assert.match(dst.err, /incoming migration refused: the migration stream is damaged/);
      assert.match(dst.err, /incoming migration refused: migration stream version 3/);
      assert.equal(src.out + dst.out, ref.out);
      assert.match(dst.out, /selftest: PASS/);
    });
});
