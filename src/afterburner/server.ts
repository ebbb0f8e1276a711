/**
 * The afterburner server: one Node process that does the afterburning of many `as` runs, so
 * that a build through `gcc -B src/afterburner/bin` does not start Node once per source file
 * (about 0.1 s each; Linux's build runs `as` some 2,500 times). The wrapper script `bin/as`
 * sends its command line here when PREVIRT_AS_SERVER is set, gets back the real as's command
 * line with the afterburned files in their places, and runs it itself; when the server cannot
 * be reached it runs the Node wrapper as before, so a server is only ever a speed-up.
 *
 * Usage: `node src/afterburner/bin/server.mjs --port-file FILE [--jobs N] [--idle SECONDS]`.
 * It listens on 127.0.0.1 (bash reaches TCP through /dev/tcp, not Unix sockets), writes
 * `127.0.0.1:PORT:TOKEN` to FILE (mode 0600) once it listens, and exits after SECONDS without
 * a request (default 600) or on SIGTERM. The token, 128 random bits, keeps other local users
 * from having it read files as this user.
 *
 * Protocol, one request per connection, every field ended by a NUL byte:
 *   request: token, cwd, PATH, PREVIRT_REAL_AS, PREVIRT_AFTERBURN_REPORT, TMPDIR, argc, argv...
 *   reply:   action (run | exit | fallback), status, as, temp dir, messages, argc, argv...
 * `run`: write the messages to standard error, run `as argv...`, remove the temp dir, exit with
 * as's status. `exit`: write the messages, exit with status. `fallback`: run the Node wrapper
 * (the input is standard input, which the server cannot read).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { prepareAs, type PreparedAs } from './wrapper.ts';

/** The environment variables a request carries, in its order. */
const ENV_FIELDS = ['PATH', 'PREVIRT_REAL_AS', 'PREVIRT_AFTERBURN_REPORT', 'TMPDIR'] as const;
/** Fields before argv: token, cwd, the environment, argc. */
const HEAD_FIELDS = 2 + ENV_FIELDS.length + 1;
/** A request larger than this is not an `as` command line. */
const MAX_REQUEST = 1 << 20;

/** One request, parsed. */
export interface AsRequest {
  token: string;
  cwd: string;
  env: Record<string, string>;
  argv: string[];
}

/**
 * Parses the NUL-ended fields received so far: the request when complete, null when more bytes
 * are needed. Throws on a malformed request.
 */
export function parseRequest(bytes: Buffer): AsRequest | null {
  const fields: string[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0) continue;
    fields.push(bytes.toString('utf8', start, i));
    start = i + 1;
    if (fields.length === HEAD_FIELDS) {
      const argc = Number(fields[HEAD_FIELDS - 1]);
      if (!Number.isInteger(argc) || argc < 0 || argc > 100_000)
        throw new Error(`bad argc '${fields[HEAD_FIELDS - 1]}'`);
    }
    if (
      fields.length >= HEAD_FIELDS &&
      fields.length === HEAD_FIELDS + Number(fields[HEAD_FIELDS - 1])
    ) {
      const env: Record<string, string> = {};
      ENV_FIELDS.forEach((name, k) => (env[name] = fields[2 + k]!));
      return { token: fields[0]!, cwd: fields[1]!, env, argv: fields.slice(HEAD_FIELDS) };
    }
  }
  return null;
}

/** The reply's bytes for a prepared run. */
export function formatReply(prepared: PreparedAs): Buffer {
  const fields =
    prepared.kind === 'run'
      ? [
          'run',
          '0',
          prepared.as,
          prepared.dir,
          prepared.messages,
          String(prepared.args.length),
          ...prepared.args,
        ]
      : prepared.kind === 'exit'
        ? ['exit', String(prepared.status), '', '', prepared.messages, '0']
        : ['fallback', '0', '', '', '', '0'];
  return Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
}

/** What a worker thread is given. */
interface WorkerInput {
  self: string;
}

/** A worker thread: prepares the requests the main thread posts. */
function workerMain(): void {
  const { self } = workerData as WorkerInput;
  parentPort!.on('message', (request: AsRequest) => {
    parentPort!.postMessage(prepare(request, self));
  });
}

function prepare(request: AsRequest, self: string): PreparedAs {
  try {
    return prepareAs(request.argv, self, { cwd: request.cwd, env: request.env, stdin: false });
  } catch (e) {
    return { kind: 'exit', status: 1, messages: `previrt as server: ${String(e)}\n` };
  }
}

/** Runs the requests on `jobs` worker threads, first come first served. */
class Pool {
  private readonly idle: Worker[] = [];
  private readonly waiting: { request: AsRequest; done: (p: PreparedAs) => void }[] = [];
  private readonly busy = new Map<Worker, (p: PreparedAs) => void>();

  constructor(jobs: number, self: string, script: URL, execArgv: string[]) {
    for (let k = 0; k < jobs; k++) {
      const worker = new Worker(script, { workerData: { self } satisfies WorkerInput, execArgv });
      worker.on('message', (prepared: PreparedAs) => {
        const done = this.busy.get(worker)!;
        this.busy.delete(worker);
        this.idle.push(worker);
        this.next();
        done(prepared);
      });
      worker.on('error', (e) => {
        console.error(`previrt as server: a worker failed: ${e.message}`);
        process.exit(1);
      });
      worker.unref();
      this.idle.push(worker);
    }
  }

  run(request: AsRequest): Promise<PreparedAs> {
    return new Promise((done) => {
      this.waiting.push({ request, done });
      this.next();
    });
  }

  private next(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const worker = this.idle.pop()!;
      const { request, done } = this.waiting.shift()!;
      this.busy.set(worker, done);
      worker.postMessage(request);
    }
  }
}

export interface ServeOptions {
  portFile: string;
  jobs: number;
  idleSeconds: number;
  /** The wrapper script's path (so that it is not taken for the real as). */
  self: string;
  /** This module's URL, for the worker threads (the bundle's when bundled). */
  script: URL;
  /** The Node options a worker thread needs to load `script` (tsx's loader for TypeScript). */
  execArgv: string[];
}

/** Starts the server; resolves when it stops (idle time-out or SIGTERM). */
export function serve(options: ServeOptions): Promise<void> {
  const token = randomBytes(16).toString('hex');
  const tokenBytes = Buffer.from(token);
  const pool = new Pool(options.jobs, options.self, options.script, options.execArgv);
  let timer: NodeJS.Timeout | undefined;
  const counts: Record<PreparedAs['kind'], number> = { run: 0, exit: 0, 'needs-stdin': 0 };
  return new Promise((stopped) => {
    const server = createServer((socket: Socket) => {
      restartTimer();
      let received = Buffer.alloc(0);
      let answered = false;
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        if (answered) return;
        received = Buffer.concat([received, chunk]);
        let request: AsRequest | null;
        try {
          if (received.length > MAX_REQUEST) throw new Error('request too large');
          request = parseRequest(received);
        } catch {
          socket.destroy();
          return;
        }
        if (request === null) return;
        answered = true;
        const given = Buffer.from(request.token);
        if (given.length !== tokenBytes.length || !timingSafeEqual(given, tokenBytes)) {
          socket.destroy();
          return;
        }
        void pool.run(request).then((prepared) => {
          counts[prepared.kind]++;
          socket.end(formatReply(prepared));
        });
      });
    });
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      // The idle timer would keep the process alive until it fired (a build waiting for the
      // server to exit waited that long: up to --idle seconds).
      if (timer !== undefined) clearTimeout(timer);
      server.close();
      // The build's log says how much the server did (a fallback is a Node wrapper run).
      console.error(
        `previrt as server: ${counts.run + counts.exit} as runs afterburned` +
          (counts.exit > 0 ? ` (${counts.exit} with errors)` : '') +
          `, ${counts['needs-stdin']} left to the Node wrapper (standard input)`,
      );
      stopped();
    };
    const restartTimer = (): void => {
      if (stopping) return;
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(stop, options.idleSeconds * 1000);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no TCP address');
      const temp = `${options.portFile}.${process.pid}.tmp`;
      writeFileSync(temp, `127.0.0.1:${address.port}:${token}\n`, { mode: 0o600 });
      renameSync(temp, options.portFile);
      restartTimer();
    });
  });
}

/** Parses the command line; returns an error message or the options. */
export function parseServeArgs(
  argv: string[],
): { error: string } | Omit<ServeOptions, 'self' | 'script' | 'execArgv'> {
  let portFile: string | undefined;
  let jobs = availableParallelism();
  let idleSeconds = 600;
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k]!;
    const value = argv[k + 1];
    if (arg === '--port-file' && value !== undefined) portFile = value;
    else if (arg === '--jobs' && value !== undefined && /^[1-9][0-9]*$/.test(value))
      jobs = Number(value);
    else if (arg === '--idle' && value !== undefined && /^[1-9][0-9]*$/.test(value))
      idleSeconds = Number(value);
    else
      return {
        error: `previrt as server: bad argument '${arg}${value !== undefined ? ` ${value}` : ''}' (--port-file FILE [--jobs N] [--idle SECONDS])`,
      };
    k++;
  }
  if (portFile === undefined) return { error: 'previrt as server: --port-file FILE is required' };
  return { portFile, jobs, idleSeconds };
}

if (!isMainThread && (workerData as WorkerInput | undefined)?.self !== undefined) workerMain();
