// Live migration between previrt processes over loopback TCP (src/cli/migrateNet.ts). The
// self-test started under a monitor is stopped at simulated cycles and moved on: xen -> l4 ->
// xen -> l4, early in boot, mid-test and idle near the end, each destination started with
// `run --incoming` (and a monitor of its own); the consoles together are the uninterrupted
// run's, the exit status the last destination's. Before a move, every fault leaves the source
// able to go on: nobody listening, a destination killed mid-stream, a cut connection, a flipped
// byte, a wrong version, a wrong platform (each through a relay in front of a real destination,
// which refuses it with one line). Every wait is bounded: a bug fails here, it does not hang.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from '../../src/machine/ethernet/frame.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

const skip = buildSkipReason();
const BIN = join(import.meta.dirname, '../../bin/previrt.mjs');
/** The longest any one step may take on a loaded machine (a whole self-test run is ~15 s). */
const STEP_MS = 90_000;

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  done: Promise<number>;
}
const started: Proc[] = [];
function previrt(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, out: '', err: '', done: Promise.resolve(0) };
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString('latin1')));
  child.stderr!.on('data', (d: Buffer) => (p.err += d.toString('latin1')));
  p.done = new Promise((r) => child.on('close', (code) => r(code ?? -1)));
  started.push(p);
  return p;
}
// Whatever a failed assertion left running goes, so the test process can end.
after(() => {
  for (const p of started) if (p.child.exitCode === null) p.child.kill('SIGKILL');
});

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
/** Waits until `p` has said `re` on stderr (or ended, or the bound passed). */
async function until(p: Proc, re: RegExp): Promise<void> {
  const t0 = Date.now();
  let ended = false;
  void p.done.then(() => (ended = true));
  while (!re.test(p.err) && !ended && Date.now() - t0 < STEP_MS)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(p.err, re, `waiting for ${re} from previrt ${p.child.spawnargs.slice(2).join(' ')}`);
}
async function exited(p: Proc, what: string): Promise<number> {
  return within(p.done, `${what} to exit`);
}
async function monitor(path: string, line: string): Promise<string> {
  const p = previrt(['monitor', path, ...line.split(' ')]);
  await exited(p, `previrt monitor ${line}`);
  return p.out.trim();
}
/**
 * A relay on `port` to `to` (both ways), changing what the source sends with `edit`. Both of its
 * sockets stay half open, as a direct connection does: a destination that refused the guest
 * answers and ends its side but reads on, so the source's remaining bytes still go to it (with
 * Node's default, the relay's write after that end failed, it dropped the source's side, and
 * the source got EPIPE before it read the answer: seen under load).
 */
function relay(port: number, to: number, edit: (b: Buffer, at: number) => Buffer | 'cut'): Server {
  return createServer({ allowHalfOpen: true }, (a) => {
    const b = createConnection({ port: to, host: '127.0.0.1', allowHalfOpen: true });
    let at = 0;
    a.on('data', (d: Buffer) => {
      const e = edit(Buffer.from(d), at);
      at += d.length;
      if (e === 'cut') {
        a.destroy();
        b.destroy();
      } else if (!b.destroyed) b.write(e);
    });
    b.on('data', (d: Buffer) => a.write(d));
    a.on('end', () => b.end());
    b.on('end', () => a.end());
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  }).listen(port, '127.0.0.1');
}
async function through<T>(r: Server, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } finally {
    await new Promise((done) => r.close(done));
  }
}

const flip = (offset: number, mask: number) => (b: Buffer, at: number) => {
  if (offset >= at && offset < at + b.length) b[offset - at] ^= mask;
  return b;
};
/** Names another platform in the header chunk (at byte 12), its CRC made right again. */
const platform = (from: string, to: string) => (b: Buffer, at: number) => {
  if (at > 0) return b;
  const length = b.readUInt32LE(13);
  assert.ok(b.length >= 21 + length, 'the header chunk in the first read');
  const json = b.subarray(17, 17 + length);
  const k = json.indexOf(`"from":"${from}"`);
  assert.ok(k >= 0 && from.length === to.length);
  json.write(to, k + 8, 'latin1');
  b.writeUInt32LE(crc32(b, 12, 17 + length), 17 + length);
  return b;
};

const base = () => ['run', '--kernel', kernelPath('afterburned'), '--append', 'init=selftest'];
const on = (h: string) => [...base(), '--memory', '32', '--hypervisor', h];

describe('live migration between processes over TCP', { skip }, () => {
  let ref: Proc;
  before(() => {
    assert.ok(make('afterburned').ok);
    ref = previrt(on('xen'));
  });

  it('xen -> l4: each fault is refused with one line, the source goes on, then the move reaches the PASS', async () => {
    const port = 47_611;
    const mon = join(mkdtempSync(join(tmpdir(), 'previrt-mig-')), 'mon');
    const dst = previrt([...on('l4'), '--incoming', `tcp:127.0.0.1:${port}`]);
    const victim = previrt([...on('l4'), '--incoming', `tcp:127.0.0.1:${port + 8}`]);
    const src = previrt([...on('xen'), '--monitor', `unix:${mon}`]);
    await until(src, /monitor on/);
    await until(dst, /waiting for a guest/);
    await until(victim, /waiting for a guest/);
    assert.equal(await monitor(mon, 'cont 8000000'), 'running (to cycle 8000000)');
    await until(src, /stopped at cycle 8000000/);
    assert.match(
      await monitor(mon, `migrate tcp:127.0.0.1:${port + 9}`),
      /^error: migration failed: cannot send to .*ECONNREFUSED/,
      'nobody listening',
    );
    const faults: [string, (b: Buffer, at: number) => Buffer | 'cut', RegExp][] = [
      [
        'killed',
        (b, at) => {
          if (at > 1_000_000) victim.child.kill('SIGKILL');
          return b;
        },
        /closed the connection|cannot send/,
      ],
      ['cut', (b, at) => (at > 1_000_000 ? 'cut' : b), /closed the connection|cannot send/],
      ['flipped', flip(3_000_000, 0x04), /refused the guest: the migration stream is damaged: CRC/],
      ['version', flip(8, 0x02), /refused the guest: migration stream version 3 is not supported/],
      ['platform', platform('xen', 'kvm'), /refused the guest: .* from platform 'kvm'/],
    ];
    for (const [k, [name, edit, want]] of faults.entries()) {
      const to = name === 'killed' ? port + 8 : port;
      const answer = await through(relay(port + 1 + k, to, edit), () =>
        monitor(mon, `migrate tcp:127.0.0.1:${port + 1 + k}`),
      );
      assert.match(answer, want, name);
      assert.match(await monitor(mon, 'info status'), /^VM status: paused \(cycle 8000000\)/, name);
    }
    assert.equal(await exited(victim, 'the killed destination'), -1);
    assert.match(
      await monitor(mon, `migrate tcp:127.0.0.1:${port}`),
      /^migrated to tcp:127.0.0.1:\d+ at cycle 8000000$/,
    );
    assert.equal(await exited(src, 'the source'), 0, src.err);
    assert.equal(await exited(dst, 'the destination'), await exited(ref, 'the reference run'));
    const refused = dst.err.split('\n').filter((l) => l.includes('incoming migration refused'));
    assert.equal(refused.length, 4, dst.err);
    assert.match(refused[0], /: the migration stream was cut after \d+ bytes \(no end mark\)$/);
    assert.match(refused[1], /: the migration stream is damaged: CRC mismatch in the chunk at/);
    assert.match(refused[2], /: migration stream version 3 is not supported/);
    assert.match(refused[3], /: the migration stream comes from platform 'kvm'/);
    assert.equal(src.out + dst.out, ref.out);
    assert.match(dst.out, /selftest: PASS/);
  });

  it('xen -> l4 -> xen -> l4 early in boot, mid-test and idle: the consoles together are the PASS', async () => {
    const port = 47_631;
    const dir = mkdtempSync(join(tmpdir(), 'previrt-mig-'));
    const hops: [string, number][] = [
      ['xen', 3_000_000],
      ['l4', 30_000_000],
      ['xen', 100_000_000],
      ['l4', 0],
    ];
    const procs = hops.map(([h, stop], k) =>
      previrt([
        ...on(h),
        ...(k > 0 ? ['--incoming', `tcp:127.0.0.1:${port + k}`] : []),
        ...(stop > 0 ? ['--monitor', `unix:${join(dir, `mon${k}`)}`] : []),
      ]),
    );
    for (const [k, [h, stop]] of hops.entries()) {
      if (stop === 0) break;
      const mon = join(dir, `mon${k}`);
      await until(procs[k], /monitor on/);
      await until(procs[k + 1], /waiting for a guest/);
      assert.equal(await monitor(mon, `cont ${stop}`), `running (to cycle ${stop})`);
      // The run stops at the first instruction boundary at or past the cycle asked for.
      await until(procs[k], /run: stopped at cycle \d+/);
      const at = Number(/run: stopped at cycle (\d+)/.exec(procs[k].err)![1]);
      assert.ok(at >= stop && at < stop + 10_000, `stopped at ${at}`);
      const moved = await monitor(mon, `migrate tcp:127.0.0.1:${port + k + 1}`);
      const m = /^migrated to tcp:127.0.0.1:(\d+) at cycle (\d+)$/.exec(moved);
      assert.ok(m !== null && Number(m[1]) === port + k + 1, `from ${h}: ${moved}`);
      // To a safe point from there (at once if it is one).
      assert.ok(Number(m[2]) >= at, moved);
      await until(procs[k + 1], new RegExp(`continuing on ${hops[k + 1][0]} at cycle \\d+`));
      assert.equal(await exited(procs[k], `the source on ${h}`), 0, procs[k].err);
    }
    const last = procs[procs.length - 1];
    assert.equal(await exited(last, 'the last destination'), await exited(ref, 'the reference'));
    assert.equal(procs.map((p) => p.out).join(''), ref.out);
    assert.match(last.out, /selftest: PASS/);
  });
});
