/**
 * Live migration between previrt processes (issue 16): `run --monitor unix:PATH` (the line
 * commands), `run --incoming tcp:HOST:PORT` (the destination) and the TCP transfer of the
 * migration stream (src/vmm/migrationStream.ts) between them.
 *
 * The simulated run never depends on host timing where a script asks it not to: with a monitor
 * the guest starts stopped (as QEMU's -S); `cont CYCLE` runs it to that simulated cycle and stops
 * it there, and `migrate` stops it at the next safe point from where it is — so the same
 * commands give the same cycles and counters. The destination answers `ok` once its guest is
 * built and about to run, or the one line that refused the stream; only then does the source
 * end. Any failure leaves the source's guest where it stopped, ready to go on.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import type { EndReason } from '../machine/Machine.ts';
import { crc32 } from '../machine/ethernet/frame.ts';
import { captureGuest, resumeGuest, runToSafePoint } from '../platforms/migrate.ts';
import type { Guest, GuestConfig } from '../platforms/platform.ts';
import { MigrationLink, preCopy, stopAndCopy } from '../bench/migrate/precopy.ts';
import { MIGRATION_RECORD_VERSION } from '../vmm/migration.ts';
import {
  encodeStream,
  pagesChunk,
  streamFinish,
  streamStart,
  StreamReader,
} from '../vmm/migrationStream.ts';

/** Simulated cycles the guest runs between looks at the monitor (the host's, not the guest's). */
const SLICE = 2_000_000;
/** How far past its stop the guest may run to reach a safe point for a migration. */
const SAFE_POINT_WINDOW = 200_000_000;

/** The simulated migration link of `migrate -p` (bits/s; as the in-process bench's). */
const PRECOPY_LINK_BPS = 1e9;
/** Host milliseconds without traffic after which the source gives a destination up. */
const ANSWER_TIMEOUT_MS = 30_000;

/** `tcp:HOST:PORT` parsed, or a message. */
export function parseTcp(spec: string): { host: string; port: number } | string {
  const m = /^tcp:([^:]*):(\d+)$/.exec(spec);
  if (m === null || Number(m[2]) > 65535) return `'${spec}' is not tcp:HOST:PORT`;
  return { host: m[1] === '' ? '127.0.0.1' : m[1], port: Number(m[2]) };
}

/** `unix:PATH` parsed, or a message. */
export function parseUnix(spec: string): string | { path: string } {
  return spec.startsWith('unix:') && spec.length > 5
    ? { path: spec.slice(5) }
    : `'${spec}' is not unix:PATH`;
}

/** The CRC-32 of the kernel file a guest booted (the stream names it). */
export function kernelCrc(config: Readonly<GuestConfig>): number {
  return crc32(config.kernel);
}

/**
 * Sends the guest, stopped at a safe point, as a stream to `spec`: undefined once the
 * destination said it runs it, else the one line why not.
 */
export async function sendGuest(guest: Guest, spec: string): Promise<string | undefined> {
  const to = parseTcp(spec);
  if (typeof to === 'string') return to;
  const record = captureGuest(guest);
  if (typeof record === 'string') return record;
  return sendStream(spec, to, encodeStream(record, kernelCrc(guest.config)));
}

/** What a pre-copy migration over the stream did. */
export interface PreCopyReport {
  /** Rounds while the guest ran, and the stop-and-copy's pages. */
  rounds: number[];
  finalPages: number;
  /** The stop-and-copy's time on the simulated link (ms): the downtime. */
  downtimeMs: number;
  /** The stream's bytes on the socket. */
  bytes: number;
}

/**
 * Sends the guest by pre-copy (src/bench/migrate/precopy.ts): its memory in rounds while it runs
 * on for each round's time on a simulated link of `bitsPerSecond`, each round's pages as `pages`
 * chunks of the stream as they go, then it stops at a safe point and the pages written since go
 * with its state. The report once the destination said it runs it, else the one line why not
 * (the guest has run on, on the source, and goes on there).
 */
export async function sendGuestPreCopy(
  guest: Guest,
  spec: string,
  bitsPerSecond: number,
): Promise<PreCopyReport | string> {
  const to = parseTcp(spec);
  if (typeof to === 'string') return to;
  const m = guest.machine;
  const migration = guest.vmm?.backend.migration;
  if (migration === undefined) return 'the guest has no in-place VMM to migrate';
  const hz = m.costModel.hz;
  const parts: Uint8Array[] = streamStart({
    from: guest.platform,
    recordVersion: MIGRATION_RECORD_VERSION,
    guestPages: migration.guestPages,
    kernelCrc: kernelCrc(guest.config),
  });
  const runFor = (cycles: number): boolean => {
    m.resume();
    return m.run(m.cpu.cycles + cycles).kind === 'cycle-limit';
  };
  const copy = preCopy(guest, new MigrationLink(bitsPerSecond, hz), runFor, (f, page) =>
    parts.push(pagesChunk(f, page)),
  );
  if (typeof copy === 'string') return copy;
  const context = runToSafePoint(guest, m.cpu.cycles + SAFE_POINT_WINDOW);
  const record = 'regs' in context ? captureGuest(guest) : `no safe point (${context.kind})`;
  if (typeof record === 'string') {
    copy.log?.stop();
    return record;
  }
  const finish = streamFinish(record);
  const state = finish.reduce((n, c) => n + c.length, 0);
  const last = stopAndCopy(copy, record, state);
  if (typeof last === 'string') return last;
  parts.push(...finish);
  const bytes = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of parts) {
    bytes.set(c, at);
    at += c.length;
  }
  const failed = await sendStream(spec, to, bytes);
  if (failed !== undefined) return failed;
  return {
    rounds: copy.rounds.map((r) => r.pages),
    finalPages: last.pages,
    downtimeMs: last.ms,
    bytes: bytes.length,
  };
}

/** Sends `bytes` to `to`: undefined once the destination answered ok, else the line why not. */
function sendStream(
  spec: string,
  to: { host: string; port: number },
  bytes: Uint8Array,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let answer = '';
    let settled = false;
    const done = (v: string | undefined): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(v);
    };
    const socket = createConnection(to.port, to.host, () => {
      socket.end(bytes);
    });
    // A destination that neither answers nor reads (stopped, or a peer that is not previrt) is
    // given up after a while without traffic; the guest stays stopped where it was.
    socket.setTimeout(ANSWER_TIMEOUT_MS, () =>
      done(`no answer from ${spec} in ${ANSWER_TIMEOUT_MS / 1000} s`),
    );
    socket.on('data', (d) => {
      answer += d.toString('utf8');
      const nl = answer.indexOf('\n');
      if (nl < 0) return;
      const line = answer.slice(0, nl);
      done(line === 'ok' ? undefined : `the destination refused the guest: ${line}`);
    });
    socket.on('error', (e: NodeJS.ErrnoException) =>
      done(`cannot send to ${spec} (${e.code ?? e.message})`),
    );
    socket.on('close', () => done('the destination closed the connection before it answered'));
  });
}

/**
 * Waits on `spec` for a guest: each connection's stream is read; a refused one is answered with
 * its line (also on stderr) and the next connection waited for; the first accepted one is
 * resumed on `platform` from `config` and answered `ok`. The guest, or a message if listening
 * fails.
 */
export async function receiveGuest(
  spec: string,
  config: Readonly<GuestConfig>,
  platform: string,
  console_: (byte: number) => void,
  say: (line: string) => void,
): Promise<Guest | string> {
  const at = parseTcp(spec);
  if (typeof at === 'string') return at;
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      const reader = new StreamReader({ kernelCrc: kernelCrc(config) });
      const answer = (): void => {
        if (reader.record === undefined) {
          say(`incoming migration refused: ${reader.error}`);
          socket.end(`${reader.error}\n`);
          return;
        }
        const guest = resumeGuest(reader.record, config, platform, { console: console_ });
        if (typeof guest === 'string') {
          say(`incoming migration refused: ${guest}`);
          socket.end(`${guest}\n`);
          return;
        }
        server.close();
        say(
          `guest received from ${reader.header!.from} (${reader.bytes} bytes), continuing on ${platform} at cycle ${guest.machine.cpu.cycles}`,
        );
        // The run that follows holds the event loop (without a monitor, until the guest ends):
        // it starts only once the answer is out, so the source never waits on it.
        // (A source that hangs up at once may leave only the close.)
        socket.on('close', () => resolve(guest));
        socket.end('ok\n', () => resolve(guest));
      };
      let answered = false;
      socket.on('data', (d: Buffer) => {
        if (answered) return;
        reader.push(d);
        if (reader.done) {
          answered = true;
          answer();
        }
      });
      socket.on('end', () => {
        if (answered) return;
        answered = true;
        reader.close();
        answer();
      });
      socket.on('error', () => {
        if (answered) return;
        answered = true;
        reader.close();
        say(`incoming migration refused: ${reader.error}`);
      });
    });
    server.on('error', (e: NodeJS.ErrnoException) =>
      resolve(`cannot listen on ${spec} (${e.code ?? e.message})`),
    );
    server.listen(at.port, at.host, () => say(`waiting for a guest on ${spec}`));
  });
}

/** How a monitored run ended. */
export type MonitoredEnd =
  | { kind: 'end'; end: EndReason; guest: Guest }
  | { kind: 'migrated' }
  | { kind: 'quit' }
  | { kind: 'error'; message: string };

/**
 * Runs the guest to `until` (absolute cycles), serving a monitor on `spec` (unix:PATH) if given:
 * the guest starts stopped with a monitor. Returns how the run ended.
 */
export async function runMonitored(
  guest: Guest,
  until: number,
  spec: string | undefined,
  say: (line: string) => void,
): Promise<MonitoredEnd> {
  const m = guest.machine;
  let running = spec === undefined;
  let stopAt = until;
  let finished: MonitoredEnd | undefined;
  let wake: (() => void) | undefined;
  let busy: Promise<void> = Promise.resolve();
  const poke = (): void => {
    wake?.();
    wake = undefined;
  };
  const status = (): string =>
    `VM status: ${running ? 'running' : 'paused'} (cycle ${m.cpu.cycles})`;

  const command = async (line: string): Promise<string> => {
    const [verb, ...args] = line.trim().split(/\s+/);
    switch (verb) {
      case 'info':
        return args[0] === 'status' ? status() : `unknown info: ${args.join(' ')}`;
      case 'stop':
        running = false;
        return `stopped at cycle ${m.cpu.cycles}`;
      case 'cont': {
        if (args.length > 0) {
          const c = Number(args[0]);
          if (!Number.isSafeInteger(c) || c <= m.cpu.cycles)
            return `error: cont ${args[0]}: not a cycle after ${m.cpu.cycles}`;
          stopAt = Math.min(until, c);
        } else stopAt = until;
        running = true;
        poke();
        return `running (to cycle ${stopAt === Number.MAX_SAFE_INTEGER ? 'the end' : stopAt})`;
      }
      case 'migrate': {
        const pre = args[0] === '-p';
        if (pre) args.shift();
        if (args.length !== 1) return 'error: migrate [-p] tcp:HOST:PORT';
        const target = parseTcp(args[0]);
        if (typeof target === 'string') return `error: ${target}`;
        const was = running;
        running = false;
        if (pre) {
          const r = await sendGuestPreCopy(guest, args[0], PRECOPY_LINK_BPS);
          if (typeof r === 'string') {
            say(`migration to ${args[0]} failed: ${r}`);
            running = was;
            poke();
            return `error: migration failed: ${r} (the guest is at cycle ${m.cpu.cycles})`;
          }
          const line = `migrated to ${args[0]} at cycle ${m.cpu.cycles} by pre-copy: ${r.rounds.length} rounds (${r.rounds.join(', ')} pages) and the stop-and-copy's ${r.finalPages}, downtime ${r.downtimeMs.toFixed(2)} ms at ${PRECOPY_LINK_BPS / 1e9} Gb/s, ${r.bytes} bytes`;
          say(`guest ${line}`);
          finished = { kind: 'migrated' };
          poke();
          return line;
        }
        const c = runToSafePoint(guest, m.cpu.cycles + SAFE_POINT_WINDOW);
        if (!('regs' in c)) {
          running = was;
          poke();
          return `error: migration failed: no safe point (${c.kind}) at cycle ${m.cpu.cycles}`;
        }
        const cycle = m.cpu.cycles;
        const failed = await sendGuest(guest, args[0]);
        if (failed !== undefined) {
          say(`migration to ${args[0]} failed: ${failed}`);
          running = was;
          poke();
          return `error: migration failed: ${failed}`;
        }
        say(`guest migrated to ${args[0]} at cycle ${cycle}`);
        finished = { kind: 'migrated' };
        poke();
        return `migrated to ${args[0]} at cycle ${cycle}`;
      }
      case 'quit':
        finished = { kind: 'quit' };
        poke();
        return `quit at cycle ${m.cpu.cycles}`;
      default:
        return `error: unknown command '${line.trim()}' (info status, stop, cont [CYCLE], migrate [-p] tcp:HOST:PORT, quit)`;
    }
  };

  let server: Server | undefined;
  if (spec !== undefined) {
    const at = parseUnix(spec);
    if (typeof at !== 'string') {
      if (existsSync(at.path)) unlinkSync(at.path);
      const s = createServer((socket: Socket) => {
        let text = '';
        socket.on('data', (d) => {
          text += d.toString('utf8');
          for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
            const line = text.slice(0, nl);
            text = text.slice(nl + 1);
            // One command at a time, in arrival order, each between slices of the run.
            busy = busy.then(async () => {
              const reply = finished === undefined ? await command(line) : 'error: the run is over';
              if (!socket.destroyed) socket.write(`${reply}\n`);
            });
          }
        });
        socket.on('error', () => undefined);
      });
      const listening = await new Promise<string | undefined>((resolve) => {
        s.on('error', (e: NodeJS.ErrnoException) =>
          resolve(`cannot listen on ${spec} (${e.code ?? e.message})`),
        );
        s.listen(at.path, () => resolve(undefined));
      });
      if (listening !== undefined) return { kind: 'error', message: listening };
      server = s;
      say(`monitor on ${spec}, the guest is stopped at cycle ${m.cpu.cycles} (cont to run it)`);
    } else return { kind: 'error', message: at };
  }
  try {
    for (;;) {
      await busy;
      if (finished !== undefined) return finished;
      if (!running) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      m.resume();
      const end = m.run(Math.min(stopAt, m.cpu.cycles + SLICE));
      if (end.kind !== 'cycle-limit') return { kind: 'end', end, guest };
      if (m.cpu.cycles >= until) return { kind: 'end', end, guest };
      if (m.cpu.cycles >= stopAt) {
        running = false;
        say(`stopped at cycle ${m.cpu.cycles}`);
      }
      // Lets the monitor's sockets in between slices.
      if (server !== undefined) await new Promise((r) => setImmediate(r));
    }
  } finally {
    server?.close();
    if (spec !== undefined) {
      const at = parseUnix(spec);
      if (typeof at !== 'string' && existsSync(at.path)) unlinkSync(at.path);
    }
  }
}

/** `previrt monitor PATH COMMAND`: sends one line, prints the answer; undefined or a message. */
export async function monitorCommand(path: string, line: string): Promise<string | undefined> {
  const p = path.startsWith('unix:') ? path.slice(5) : path;
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const socket = createConnection(p, () => socket.write(`${line}\n`));
    socket.on('data', (d) => {
      text += d.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl >= 0 && !settled) {
        settled = true;
        process.stdout.write(text.slice(0, nl + 1));
        socket.end();
        resolve(text.startsWith('error') ? '' : undefined);
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!settled) {
        settled = true;
        resolve(`cannot reach the monitor at ${p} (${e.code ?? e.message})`);
      }
    });
    socket.on('close', () => {
      if (!settled) {
        settled = true;
        resolve('the monitor closed the connection without an answer');
      }
    });
  });
}
