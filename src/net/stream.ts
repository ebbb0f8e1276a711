/**
 * The byte stream the client machine sends (lead notes, network contract): N seeded
 * pseudo-random payload bytes, then a 12-byte trailer — ASCII "PVCK", N as a u32 little-endian,
 * and the CRC-32 (as zlib) of the N payload bytes as a u32 little-endian. The netserver program
 * checks the CRC of what it received against the trailer.
 *
 * Any byte of the payload can be produced on its own (word k of the payload is a hash of the seed
 * and k), so a retransmission regenerates its bytes instead of the sender keeping the whole
 * stream in memory; the CRC is computed on the way, the first time each byte is produced.
 */
import { crc32Update } from './checksum.ts';

export const TRAILER_BYTES = 12;
export const TRAILER_MAGIC = 'PVCK';
/** Largest payload: stream offsets stay below 2^31, so TCP sequence arithmetic is plain. */
export const MAX_PAYLOAD = 2 ** 30;

/** Word `index` of the payload for `seed`: the murmur3 finaliser of (seed, index). */
function word(seedMix: number, index: number): number {
  let h = (Math.imul(index, 0x9e3779b1) ^ seedMix) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fills `out` with payload bytes starting at `offset` (no bounds checks: payload only). */
export function payloadBytes(seed: number, offset: number, out: Uint8Array): void {
  const seedMix = word(0x5bd1e995, seed >>> 0);
  const n = out.length;
  let k = 0;
  let index = Math.floor(offset / 4);
  let b = offset & 3;
  while (k < n) {
    const w = word(seedMix, index++);
    if (b === 0 && k + 4 <= n) {
      // PERF: whole words (all but the ends of a segment) without the byte loop.
      out[k] = w & 0xff;
      out[k + 1] = (w >>> 8) & 0xff;
      out[k + 2] = (w >>> 16) & 0xff;
      out[k + 3] = w >>> 24;
      k += 4;
      continue;
    }
    for (; b < 4 && k < n; b++, k++) out[k] = (w >>> (8 * b)) & 0xff;
    b = 0;
  }
}

export function buildTrailer(length: number, crc: number): Uint8Array {
  const t = new Uint8Array(TRAILER_BYTES);
  for (let k = 0; k < 4; k++) t[k] = TRAILER_MAGIC.charCodeAt(k);
  const v = new DataView(t.buffer);
  v.setUint32(4, length >>> 0, true);
  v.setUint32(8, crc >>> 0, true);
  return t;
}

/** Reads a trailer back: the payload length and CRC it states, or a message if it is not one. */
export function parseTrailer(t: Uint8Array): { length: number; crc: number } | string {
  if (t.length !== TRAILER_BYTES) return `trailer must be ${TRAILER_BYTES} bytes`;
  const magic = String.fromCharCode(...t.subarray(0, 4));
  if (magic !== TRAILER_MAGIC) return `trailer magic '${magic}', expected '${TRAILER_MAGIC}'`;
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  return { length: v.getUint32(4, true), crc: v.getUint32(8, true) };
}

/**
 * Its part of the client machine's snapshot: how far the running CRC has got. The bytes
 * themselves are a function of the seed and the offset, so that is all the generator's position.
 */
export interface PayloadStreamState {
  crcDone: number;
  crc: number;
}

/** The whole stream: payload then trailer, readable at any offset. */
export class PayloadStream {
  /** Payload bytes covered by `crc` so far (always a prefix). */
  private crcDone = 0;
  private crc = 0;

  constructor(
    readonly payloadLength: number,
    readonly seed: number,
  ) {}

  /** Payload plus trailer. */
  get length(): number {
    return this.payloadLength + TRAILER_BYTES;
  }

  /** The CRC-32 of the whole payload (computes whatever part has not been produced yet). */
  payloadCrc(): number {
    this.extendCrc(this.payloadLength);
    return this.crc;
  }

  /** Fills `out` with stream bytes from `offset`; the caller keeps within `length`. */
  read(offset: number, out: Uint8Array): void {
    const payloadEnd = Math.min(offset + out.length, this.payloadLength);
    if (offset < payloadEnd) {
      const part = out.subarray(0, payloadEnd - offset);
      this.extendCrc(offset);
      payloadBytes(this.seed, offset, part);
      if (this.crcDone >= offset && this.crcDone < payloadEnd) {
        this.crc = crc32Update(this.crc, part, this.crcDone - offset, part.length);
        this.crcDone = payloadEnd;
      }
    }
    const end = offset + out.length;
    if (end > this.payloadLength) {
      const trailer = buildTrailer(this.payloadLength, this.payloadCrc());
      const from = Math.max(offset, this.payloadLength);
      out.set(trailer.subarray(from - this.payloadLength, end - this.payloadLength), from - offset);
    }
  }

  save(): PayloadStreamState {
    return { crcDone: this.crcDone, crc: this.crc };
  }

  restore(s: PayloadStreamState): void {
    if (!Number.isInteger(s.crcDone) || s.crcDone < 0 || s.crcDone > this.payloadLength) {
      throw new Error(`sender state: CRC position ${s.crcDone} is outside the payload`);
    }
    this.crcDone = s.crcDone;
    this.crc = s.crc >>> 0;
  }

  /** Brings the running CRC up to payload offset `upTo` by producing the bytes in between. */
  private extendCrc(upTo: number): void {
    if (this.crcDone >= upTo) return;
    const chunk = new Uint8Array(65536);
    while (this.crcDone < upTo) {
      const n = Math.min(chunk.length, upTo - this.crcDone);
      const part = chunk.subarray(0, n);
      payloadBytes(this.seed, this.crcDone, part);
      this.crc = crc32Update(this.crc, part);
      this.crcDone += n;
    }
  }
}
