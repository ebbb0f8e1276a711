/**
 * LZ4's legacy frame, the one `lz4 -l` writes and Linux's `CONFIG_KERNEL_LZ4` build puts into a
 * bzImage (scripts/Makefile.lib `cmd_lz4`: the frame, then the uncompressed size as 4 bytes,
 * little-endian): the magic 0x184C2102, then blocks, each a 4-byte compressed length and an LZ4
 * block of at most 8 MB uncompressed (lz4's doc/lz4_Frame_format.md, "Legacy frame"; the block
 * format in doc/lz4_Block_format.md). Another magic where a block length would be starts a
 * concatenated frame. Malformed input is an `Lz4Error` naming what is wrong and where; nothing
 * here reads or writes outside its arrays.
 */

export class Lz4Error {
  constructor(readonly message: string) {}
}

export const LZ4_LEGACY_MAGIC = 0x184c2102;
/** A legacy block decompresses to at most 8 MB. */
const LEGACY_BLOCK_MAX = 8 << 20;
/** A match is at least 4 bytes: the token's match length counts from 4. */
const MIN_MATCH = 4;

/** Whether the bytes start with the legacy frame's magic. */
export function isLz4Legacy(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && u32(bytes, 0) === LZ4_LEGACY_MAGIC;
}

/**
 * Decompresses a legacy frame to exactly `size` bytes (the size Linux appends after it; the
 * frame itself does not say). Blocks are read until the output has `size` bytes; what follows
 * (Linux's 4-byte size) is not looked at.
 */
export function lz4LegacyDecode(input: Uint8Array, size: number): Uint8Array | Lz4Error {
  if (!isLz4Legacy(input)) return new Lz4Error('not an LZ4 legacy frame (no magic 0x184c2102)');
  const out = new Uint8Array(size);
  let at = 4;
  let written = 0;
  while (written < size) {
    if (at + 4 > input.length)
      return new Lz4Error(
        `the frame ends after ${written} of ${size} bytes (no block length at offset ${at})`,
      );
    const length = u32(input, at);
    at += 4;
    if (length === LZ4_LEGACY_MAGIC) continue;
    if (length === 0 || at + length > input.length)
      return new Lz4Error(
        `the block at offset ${at - 4} claims ${length} bytes, ${input.length - at} are left`,
      );
    const limit = Math.min(size, written + LEGACY_BLOCK_MAX);
    const end = decodeBlock(input.subarray(at, at + length), out, written, limit);
    if (end instanceof Lz4Error)
      return new Lz4Error(`the block at offset ${at - 4}: ${end.message}`);
    written = end;
    at += length;
  }
  return out;
}

/**
 * One LZ4 block into `out` from `start`, never past `limit`; returns where the output ends. A
 * block is sequences of a token (literal length, match length − 4), the literals, a 2-byte
 * offset back into the output and the match; the last sequence has literals only.
 */
function decodeBlock(
  block: Uint8Array,
  out: Uint8Array,
  start: number,
  limit: number,
): number | Lz4Error {
  let i = 0;
  let o = start;
  const extended = (n: number): number | Lz4Error => {
    if (n !== 15) return n;
    for (;;) {
      if (i >= block.length) return new Lz4Error('a length runs past the end of the block');
      const b = block[i++];
      n += b;
      if (b !== 255) return n;
    }
  };
  while (i < block.length) {
    const token = block[i++];
    const literals = extended(token >>> 4);
    if (literals instanceof Lz4Error) return literals;
    if (i + literals > block.length) return new Lz4Error('literals run past the end of the block');
    if (o + literals > limit) return new Lz4Error(`the output exceeds ${limit - start} bytes`);
    out.set(block.subarray(i, i + literals), o);
    i += literals;
    o += literals;
    if (i === block.length) return o; // the last sequence: literals only
    if (i + 2 > block.length) return new Lz4Error('a match offset runs past the end of the block');
    const offset = block[i] | (block[i + 1] << 8);
    i += 2;
    if (offset === 0 || offset > o - start)
      return new Lz4Error(`a match offset ${offset} points before the block's output`);
    const match = extended(token & 15);
    if (match instanceof Lz4Error) return match;
    const length = match + MIN_MATCH;
    if (o + length > limit) return new Lz4Error(`the output exceeds ${limit - start} bytes`);
    // Byte by byte when the match overlaps what it writes (offset < length: a repeat).
    if (offset >= length) out.copyWithin(o, o - offset, o - offset + length);
    else for (let k = 0; k < length; k++) out[o + k] = out[o + k - offset];
    o += length;
  }
  return new Lz4Error('the block ends with a match (the last sequence must be literals)');
}

function u32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
