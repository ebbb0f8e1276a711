// A byte sink for guest console output that never loses a byte and never throws on a busy pipe.
//
// Node may leave standard output non-blocking when it is a pipe (its parent's end decides), so a
// plain writeSync can fail with EAGAIN whenever the reader is slower than the guest. The writer
// buffers like C stdio (unbuffered on a terminal, 4 KB blocks otherwise, but a finished line
// never waits more than 200 ms of host time), waits and retries on
// EAGAIN, and stops writing quietly if the reader has gone away (EPIPE), as `cmd | head` expects.
import { writeSync } from 'node:fs';
import { isatty } from 'node:tty';

const BLOCK = 4096;
/** A complete line waits at most this long (host time) before it is written, so logs show progress. */
const LINE_LATENCY_MS = 200;
const pause = new Int32Array(new SharedArrayBuffer(4));

export interface ByteWriter {
  /** Queues one byte; it reaches the file at once on a terminal, else when the buffer fills, at a newline 200 ms after the last write, or at flush. */
  byte(b: number): void;
  /** Writes everything queued. */
  flush(): void;
  /** Whether the reader went away (EPIPE): later bytes are dropped. */
  readonly closed: boolean;
}

export function byteWriter(fd: number): ByteWriter {
  const buf = Buffer.alloc(BLOCK);
  const interactive = isatty(fd);
  let used = 0;
  let closed = false;
  let flushedAt = performance.now();
  function flush(): void {
    let off = 0;
    while (off < used && !closed) {
      try {
        off += writeSync(fd, buf, off, used - off);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') Atomics.wait(pause, 0, 0, 1);
        else if (code === 'EPIPE') closed = true;
        else throw e;
      }
    }
    used = 0;
    flushedAt = performance.now();
  }
  return {
    byte(b) {
      if (closed) return;
      buf[used++] = b;
      if (used === BLOCK || interactive) flush();
      else if (b === 0x0a && performance.now() - flushedAt > LINE_LATENCY_MS) flush();
    },
    flush,
    get closed() {
      return closed;
    },
  };
}
