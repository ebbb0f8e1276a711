// The snapshot file in the browser: src/snapshot/file.ts writes and reads it with a synchronous
// Codec, and the browser's deflate (CompressionStream) is asynchronous. So each section is
// (de)compressed first, and the container code then gets a codec that hands back those results:
// the file is the one `previrt run --snapshot` writes (codec deflate-raw, as node:zlib's) and
// `previrt run --restore` reads, and the CLI's files load here.
import {
  readSnapshot,
  readSnapshotHeader,
  writeSnapshot,
  type Codec,
  type SnapshotContents,
} from '../snapshot/file.ts';

/** The CLI's codec name (src/cli/snapshotCodec.ts): raw deflate, RFC 1951. */
const CODEC = 'deflate-raw';

async function through(bytes: Uint8Array, stream: GenericTransformStream): Promise<Uint8Array> {
  const out = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

/** The snapshot file of `contents`, compressed as the CLI's. */
export async function writeSnapshotFile(contents: SnapshotContents): Promise<Uint8Array> {
  // First pass: which bytes the container compresses, in its order.
  const inputs: Uint8Array[] = [];
  writeSnapshot(contents, {
    name: CODEC,
    compress: (bytes) => {
      inputs.push(bytes);
      return bytes;
    },
    decompress: () => {
      throw new Error('not used');
    },
  });
  const outputs = await Promise.all(
    inputs.map((b) => through(b, new CompressionStream('deflate-raw'))),
  );
  let k = 0;
  return writeSnapshot(contents, {
    name: CODEC,
    compress: () => outputs[k++],
    decompress: () => {
      throw new Error('not used');
    },
  });
}

/** A snapshot file's contents, or the one line readSnapshot says is wrong with it. */
export async function readSnapshotFile(bytes: Uint8Array): Promise<SnapshotContents | string> {
  const header = readSnapshotHeader(bytes);
  if (typeof header === 'string') return header;
  const base =
    16 + new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(12, true);
  // Each compressed section that lies inside the file, by where it starts; readSnapshot checks
  // its place and CRC before it asks the codec, and says what is wrong with one that fails.
  const inflated = new Map<number, Uint8Array | undefined>();
  await Promise.all(
    header.sections.map(async (s) => {
      const start = base + s.offset;
      if (
        s.codec !== CODEC ||
        !Number.isInteger(s.offset) ||
        !Number.isInteger(s.length) ||
        s.offset < 0 ||
        start + s.length > bytes.length - 4
      )
        return;
      try {
        const raw = await through(
          bytes.subarray(start, start + s.length),
          new DecompressionStream('deflate-raw'),
        );
        inflated.set(bytes.byteOffset + start, raw);
      } catch {
        inflated.set(bytes.byteOffset + start, undefined);
      }
    }),
  );
  const codec: Codec = {
    name: CODEC,
    compress: () => {
      throw new Error('not used');
    },
    decompress: (stored) => {
      const raw = inflated.get(stored.byteOffset);
      if (raw === undefined) throw new Error('does not decompress');
      return raw;
    },
  };
  return readSnapshot(bytes, codec);
}
