/**
 * The migration stream (issue 16, across processes): a MigrationRecord (migration.ts) as bytes
 * for a socket between two previrt processes. Layout, integers little-endian:
 *
 *   0   8  magic "PVMIGR\r\n"
 *   8   4  stream version (MIGRATION_STREAM_VERSION)
 *   12  ..  chunks, each: kind (u8), length N (u32), N payload bytes, CRC-32 of kind, length
 *           and payload (u32)
 *
 * Chunks, in this order: `header` (JSON: the source platform, the record's version, the guest's
 * RAM in pages, the CRC-32 of the kernel file the guest booted), `pages` (any number: a first
 * page number (u32), then whole 4 KB pages of guest memory from there; all-zero runs are not
 * sent), `state` (JSON: the rest of the record), `vcpu` (the virtual-CPU block) and `end`.
 * Pre-copy rounds are more `pages` chunks before the state; a later chunk for the same page
 * wins.
 *
 * The reader (StreamReader) takes the bytes as they arrive and refuses, with one line, a stream
 * that is not one, of another version, from a platform that cannot migrate, damaged (a chunk's
 * CRC), or cut (the connection closed before `end`). No Node API here.
 */
import { crc32 } from '../machine/ethernet/frame.ts';
import type { MigrationRecord } from './migration.ts';
import { MIGRATION_RECORD_VERSION } from './migration.ts';

export const MIGRATION_STREAM_MAGIC = 'PVMIGR\r\n';
export const MIGRATION_STREAM_VERSION = 1;
/** The platforms a stream may come from (those with the in-place VMM's migration). */
export const MIGRATION_PLATFORMS: readonly string[] = ['xen', 'l4'];

const PAGE = 4096;
/** Pages per `pages` chunk (256 KB). */
const PAGES_PER_CHUNK = 64;
/** The largest chunk a reader accepts (a bound on what a bad length makes it buffer). */
const MAX_CHUNK = 64 * 1024 * 1024;

const enum Kind {
  header = 1,
  pages = 2,
  state = 3,
  vcpu = 4,
  end = 0xff,
}

/** What the first chunk says. */
export interface StreamHeader {
  from: string;
  recordVersion: number;
  guestPages: number;
  /** CRC-32 of the kernel file the guest booted (the destination must boot the same one). */
  kernelCrc: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function chunk(kind: Kind, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  const view = new DataView(out.buffer);
  out[0] = kind;
  view.setUint32(1, payload.length, true);
  out.set(payload, 5);
  view.setUint32(5 + payload.length, crc32(out, 0, 5 + payload.length), true);
  return out;
}

function isZero(bytes: Uint8Array, start: number, end: number): boolean {
  for (let k = start; k < end; k++) if (bytes[k] !== 0) return false;
  return true;
}

/** The stream's opening: magic, version and the header chunk. */
export function streamStart(header: StreamHeader): Uint8Array[] {
  const intro = new Uint8Array(12);
  intro.set(encoder.encode(MIGRATION_STREAM_MAGIC));
  new DataView(intro.buffer).setUint32(8, MIGRATION_STREAM_VERSION, true);
  return [intro, chunk(Kind.header, encoder.encode(JSON.stringify(header)))];
}

/** `pages` chunks for the listed pages of `memory` (all of them if `pages` is absent). */
export function pageChunks(memory: Uint8Array, pages?: Iterable<number>): Uint8Array[] {
  const count = Math.ceil(memory.length / PAGE);
  const list = pages === undefined ? Array.from({ length: count }, (_, p) => p) : [...pages];
  list.sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let k = 0;
  while (k < list.length) {
    const first = list[k];
    let n = 1;
    while (k + n < list.length && list[k + n] === first + n && n < PAGES_PER_CHUNK) n++;
    k += n;
    // Zero pages are not sent when the whole memory goes (the destination's starts zeroed).
    if (pages === undefined && isZero(memory, first * PAGE, (first + n) * PAGE)) continue;
    const payload = new Uint8Array(4 + n * PAGE);
    new DataView(payload.buffer).setUint32(0, first, true);
    payload.set(memory.subarray(first * PAGE, Math.min(memory.length, (first + n) * PAGE)), 4);
    out.push(chunk(Kind.pages, payload));
  }
  return out;
}

/** One `pages` chunk: whole pages `bytes` from page `first` on. */
export function pagesChunk(first: number, bytes: Uint8Array): Uint8Array {
  const payload = new Uint8Array(4 + bytes.length);
  new DataView(payload.buffer).setUint32(0, first, true);
  payload.set(bytes, 4);
  return chunk(Kind.pages, payload);
}

/** The stream's close: the record's state, the virtual-CPU block and the end mark. */
export function streamFinish(record: MigrationRecord): Uint8Array[] {
  const { memory: _memory, vcpuBlock, ...rest } = record;
  return [
    chunk(Kind.state, encoder.encode(JSON.stringify(rest))),
    chunk(Kind.vcpu, vcpuBlock),
    chunk(Kind.end, new Uint8Array(0)),
  ];
}

/** A whole stop-and-copy stream for `record`. */
export function encodeStream(record: MigrationRecord, kernelCrc: number): Uint8Array {
  const parts = [
    ...streamStart({
      from: record.from,
      recordVersion: record.version,
      guestPages: record.guestPages,
      kernelCrc,
    }),
    ...pageChunks(record.memory),
    ...streamFinish(record),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** What the destination expects of a stream. */
export interface StreamExpect {
  /** CRC-32 of the destination's kernel file. */
  kernelCrc: number;
}

/**
 * Reads a stream as its bytes arrive: `push` them, then `close` when the connection ends.
 * `error` holds the one line that refused it; `record` the record once `end` arrived.
 */
export class StreamReader {
  error: string | undefined;
  header: StreamHeader | undefined;
  record: MigrationRecord | undefined;
  /** Bytes read so far. */
  bytes = 0;
  private buffer = new Uint8Array(0);
  private opened = false;
  private memory: Uint8Array | undefined;
  private state: Omit<MigrationRecord, 'memory' | 'vcpuBlock'> | undefined;
  private vcpu: Uint8Array | undefined;

  constructor(private readonly expect: StreamExpect) {}

  /** True once the stream is complete or refused (more bytes are ignored). */
  get done(): boolean {
    return this.error !== undefined || this.record !== undefined;
  }

  push(data: Uint8Array): void {
    if (this.done) return;
    this.bytes += data.length;
    const joined = new Uint8Array(this.buffer.length + data.length);
    joined.set(this.buffer);
    joined.set(data, this.buffer.length);
    this.buffer = joined;
    let at = 0;
    const view = new DataView(joined.buffer);
    if (!this.opened) {
      if (joined.length < 12) return;
      const magic = decoder.decode(joined.subarray(0, 8));
      if (magic !== MIGRATION_STREAM_MAGIC) {
        this.error = 'the incoming connection is not a previrt migration stream (bad magic)';
        return;
      }
      const version = view.getUint32(8, true);
      if (version !== MIGRATION_STREAM_VERSION) {
        this.error = `migration stream version ${version} is not supported (this previrt reads version ${MIGRATION_STREAM_VERSION})`;
        return;
      }
      this.opened = true;
      at = 12;
    }
    while (!this.done && joined.length - at >= 5) {
      const length = view.getUint32(at + 1, true);
      if (length > MAX_CHUNK) {
        this.error = `the migration stream is damaged: a chunk of ${length} bytes at byte ${at}`;
        return;
      }
      if (joined.length - at < 9 + length) break;
      if (view.getUint32(at + 5 + length, true) !== crc32(joined, at, at + 5 + length)) {
        this.error = `the migration stream is damaged: CRC mismatch in the chunk at byte ${this.bytes - joined.length + at}`;
        return;
      }
      this.chunk(joined[at], joined.subarray(at + 5, at + 5 + length));
      at += 9 + length;
    }
    this.buffer = joined.slice(at);
  }

  /** The connection ended: a stream without its end is refused. */
  close(): void {
    if (!this.done)
      this.error = `the migration stream was cut after ${this.bytes} bytes (no end mark)`;
  }

  private chunk(kind: number, payload: Uint8Array): void {
    if (this.header === undefined && kind !== (Kind.header as number)) {
      this.error = 'the migration stream does not start with its header';
      return;
    }
    try {
      switch (kind) {
        case Kind.header: {
          const h = JSON.parse(decoder.decode(payload)) as StreamHeader;
          if (typeof h.from !== 'string' || !MIGRATION_PLATFORMS.includes(h.from)) {
            this.error = `the migration stream comes from platform '${String(h.from)}': only a guest of xen or l4 migrates`;
            return;
          }
          if (h.recordVersion !== MIGRATION_RECORD_VERSION) {
            this.error = `the migration stream holds a record of version ${String(h.recordVersion)} (this previrt reads version ${MIGRATION_RECORD_VERSION})`;
            return;
          }
          if (h.kernelCrc !== this.expect.kernelCrc) {
            this.error = `the migrated guest booted another kernel (CRC-32 ${h.kernelCrc.toString(16)}, this destination's is ${this.expect.kernelCrc.toString(16)})`;
            return;
          }
          this.header = h;
          this.memory = new Uint8Array(h.guestPages * PAGE);
          return;
        }
        case Kind.pages: {
          const first = new DataView(payload.buffer, payload.byteOffset).getUint32(0, true);
          const at = first * PAGE;
          if (at + payload.length - 4 > this.memory!.length) {
            this.error = `the migration stream sends page ${first}, beyond the guest's memory`;
            return;
          }
          this.memory!.set(payload.subarray(4), at);
          return;
        }
        case Kind.state:
          this.state = JSON.parse(decoder.decode(payload)) as typeof this.state;
          return;
        case Kind.vcpu:
          this.vcpu = payload.slice();
          return;
        case Kind.end:
          if (this.state === undefined || this.vcpu === undefined) {
            this.error = 'the migration stream ended without the guest state';
            return;
          }
          this.record = { ...this.state, memory: this.memory!, vcpuBlock: this.vcpu };
          return;
        default:
          this.error = `the migration stream has a chunk of unknown kind ${kind}`;
      }
    } catch (e) {
      this.error = `the migration stream's ${kind === 1 ? 'header' : 'state'} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
}

/** A whole stream's record, or the one line that refuses it. */
export function decodeStream(bytes: Uint8Array, expect: StreamExpect): MigrationRecord | string {
  const r = new StreamReader(expect);
  r.push(bytes);
  r.close();
  return r.record ?? r.error!;
}
