/**
 * The snapshot file (DESIGN.md decision 11): a versioned, self-describing container for a whole
 * machine's state. Layout, all integers little-endian:
 *
 *   0   8  magic "PVSNAP\r\n" (binary-safe: a text-mode copy or a truncated download shows)
 *   8   4  container version (1)
 *   12  4  header length H
 *   16  H  the header, JSON in UTF-8 (SnapshotHeader): what made it, the platform, the cycle,
 *          and one entry per section: name, encoding, codec, offset, length, raw length, CRC-32
 *   ..     the sections, back to back, as the header places them
 *   end 4  CRC-32 of every byte before it
 *
 * Sections: `state`, the components' typed state as JSON; blobs such as the kernel file; and
 * `ram`, the machine's memory as pages: a bitmap of the pages that are not all zero, then each
 * of those up to its last non-zero byte — so a zero page costs one bit and a page with a word in
 * it a few bytes — the whole compressed with the header's codec. A damaged
 * file is refused by its CRCs before anything is parsed.
 *
 * No Node API here (the lab runs it in a browser): compression is injected as a `Codec`.
 */
import { crc32 } from '../machine/ethernet/frame.ts';

export const SNAPSHOT_MAGIC = 'PVSNAP\r\n';
export const CONTAINER_VERSION = 1;
const PAGE = 4096;

/** A compressor (deflate-raw in the CLI: node:zlib; CompressionStream in a browser). */
export interface Codec {
  readonly name: string;
  compress(bytes: Uint8Array): Uint8Array;
  decompress(bytes: Uint8Array): Uint8Array;
}

export interface SectionEntry {
  name: string;
  /** json: UTF-8 JSON; bytes: as they are; pages: bitmap of non-zero pages, then those pages. */
  encoding: 'json' | 'bytes' | 'pages';
  /** The codec the section is compressed with, or 'none'. */
  codec: string;
  offset: number;
  length: number;
  /** Length before compression (pages: the memory's length). */
  rawLength: number;
  /** CRC-32 of the section's bytes as stored. */
  crc32: number;
}

export interface SnapshotHeader {
  format: 'previrt-snapshot';
  /** The state's version: which shapes the components' states have (platforms/snapshot.ts). */
  stateVersion: number;
  createdBy: string;
  platform: string;
  kernelName: string;
  /** The simulated cycle it was taken at. */
  cycle: number;
  sections: SectionEntry[];
}

/** What a snapshot holds before it is written and after it is read. */
export interface SnapshotContents {
  header: Omit<SnapshotHeader, 'sections'>;
  state: unknown;
  /** The machine's memory. */
  ram: Uint8Array;
  /** Other byte sections by name (the kernel, the modules). */
  blobs: Map<string, Uint8Array>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The memory as pages: a bitmap of the pages that are not all zero, then for each of them its
 * length up to its last non-zero byte (u16, 1–4096) and those bytes. A booted guest's free pages
 * hold little more than a free-list link at their start, so most pages cost a few bytes.
 */
function packPages(ram: Uint8Array): Uint8Array {
  const pages = Math.ceil(ram.length / PAGE);
  const bitmap = new Uint8Array(Math.ceil(pages / 8));
  const used: { page: number; length: number }[] = [];
  let size = bitmap.length;
  for (let p = 0; p < pages; p++) {
    const start = p * PAGE;
    let end = Math.min(ram.length, start + PAGE);
    while (end > start && ram[end - 1] === 0) end--;
    if (end === start) continue;
    bitmap[p >>> 3] |= 1 << (p & 7);
    used.push({ page: p, length: end - start });
    size += 2 + (end - start);
  }
  const out = new Uint8Array(size);
  out.set(bitmap);
  let at = bitmap.length;
  for (const u of used) {
    out[at] = u.length & 0xff;
    out[at + 1] = u.length >>> 8;
    out.set(ram.subarray(u.page * PAGE, u.page * PAGE + u.length), at + 2);
    at += 2 + u.length;
  }
  return out;
}

function unpackPages(packed: Uint8Array, length: number): Uint8Array | string {
  const pages = Math.ceil(length / PAGE);
  const bitmapLength = Math.ceil(pages / 8);
  if (packed.length < bitmapLength) return 'the memory section is shorter than its page map';
  const ram = new Uint8Array(length);
  let at = bitmapLength;
  for (let p = 0; p < pages; p++) {
    if ((packed[p >>> 3] & (1 << (p & 7))) === 0) continue;
    if (at + 2 > packed.length) return `the memory section ends before page ${p}`;
    const n = packed[at] | (packed[at + 1] << 8);
    const room = Math.min(PAGE, length - p * PAGE);
    if (n === 0 || n > room || at + 2 + n > packed.length)
      return `the memory section's page ${p} has a bad length (${n})`;
    ram.set(packed.subarray(at + 2, at + 2 + n), p * PAGE);
    at += 2 + n;
  }
  if (at !== packed.length) return 'the memory section has bytes beyond its pages';
  return ram;
}

/** Writes the container. */
export function writeSnapshot(contents: SnapshotContents, codec: Codec): Uint8Array {
  const bodies: { entry: Omit<SectionEntry, 'offset'>; bytes: Uint8Array }[] = [];
  const add = (
    name: string,
    encoding: SectionEntry['encoding'],
    raw: Uint8Array,
    rawLength: number,
  ): void => {
    const bytes = codec.compress(raw);
    bodies.push({
      entry: {
        name,
        encoding,
        codec: codec.name,
        length: bytes.length,
        rawLength,
        crc32: crc32(bytes),
      },
      bytes,
    });
  };
  const json = encoder.encode(JSON.stringify(contents.state));
  add('state', 'json', json, json.length);
  add('ram', 'pages', packPages(contents.ram), contents.ram.length);
  for (const [name, bytes] of contents.blobs) add(name, 'bytes', bytes, bytes.length);

  let offset = 0;
  const sections: SectionEntry[] = bodies.map((b) => {
    const e = { ...b.entry, offset };
    offset += b.entry.length;
    return e;
  });
  const header: SnapshotHeader = { ...contents.header, sections };
  const headerBytes = encoder.encode(JSON.stringify(header));
  const total = 16 + headerBytes.length + offset + 4;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(encoder.encode(SNAPSHOT_MAGIC), 0);
  view.setUint32(8, CONTAINER_VERSION, true);
  view.setUint32(12, headerBytes.length, true);
  out.set(headerBytes, 16);
  const base = 16 + headerBytes.length;
  bodies.forEach((b, k) => out.set(b.bytes, base + sections[k].offset));
  view.setUint32(total - 4, crc32(out, 0, total - 4), true);
  return out;
}

/** Reads only the header (for a platform check before the whole state is parsed); or a message. */
export function readSnapshotHeader(bytes: Uint8Array): SnapshotHeader | string {
  if (bytes.length < 20) return 'not a previrt snapshot (too short)';
  if (decoder.decode(bytes.subarray(0, 8)) !== SNAPSHOT_MAGIC)
    return 'not a previrt snapshot (bad magic)';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== CONTAINER_VERSION)
    return `snapshot container version ${version} is not supported (this previrt reads version ${CONTAINER_VERSION})`;
  const headerLength = view.getUint32(12, true);
  if (16 + headerLength + 4 > bytes.length) return 'the snapshot is truncated (its header is cut)';
  if (view.getUint32(bytes.length - 4, true) !== crc32(bytes, 0, bytes.length - 4))
    return 'the snapshot is damaged or truncated (its checksum does not match)';
  let header: SnapshotHeader;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(16, 16 + headerLength))) as SnapshotHeader;
  } catch {
    return 'the snapshot header is not valid JSON';
  }
  if (header.format !== 'previrt-snapshot' || !Array.isArray(header.sections))
    return 'the snapshot header does not describe a previrt snapshot';
  return header;
}

/** Reads the container; a one-line message for anything that is not a good snapshot. */
export function readSnapshot(bytes: Uint8Array, codec: Codec): SnapshotContents | string {
  const header = readSnapshotHeader(bytes);
  if (typeof header === 'string') return header;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const base = 16 + view.getUint32(12, true);
  const bodyEnd = bytes.length - 4;
  let state: unknown;
  let ram: Uint8Array | undefined;
  const blobs = new Map<string, Uint8Array>();
  for (const s of header.sections) {
    const start = base + s.offset;
    if (
      !Number.isInteger(s.offset) ||
      !Number.isInteger(s.length) ||
      s.offset < 0 ||
      start + s.length > bodyEnd
    )
      return `snapshot section ${s.name} lies outside the file`;
    const stored = bytes.subarray(start, start + s.length);
    if (crc32(stored) !== s.crc32) return `snapshot section ${s.name} is damaged (CRC mismatch)`;
    let raw: Uint8Array;
    if (s.codec === 'none') raw = stored;
    else if (s.codec === codec.name) {
      try {
        raw = codec.decompress(stored);
      } catch {
        return `snapshot section ${s.name} does not decompress (${s.codec})`;
      }
    } else
      return `snapshot section ${s.name} uses codec ${s.codec}, which this previrt cannot read`;
    if (s.encoding === 'json') {
      try {
        state = JSON.parse(decoder.decode(raw));
      } catch {
        return `snapshot section ${s.name} is not valid JSON`;
      }
    } else if (s.encoding === 'pages') {
      const unpacked = unpackPages(raw, s.rawLength);
      if (typeof unpacked === 'string') return unpacked;
      ram = unpacked;
    } else blobs.set(s.name, new Uint8Array(raw));
  }
  if (state === undefined || ram === undefined)
    return 'the snapshot lacks its state or memory section';
  const { sections: _sections, ...rest } = header;
  return { header: rest, state, ram, blobs };
}
