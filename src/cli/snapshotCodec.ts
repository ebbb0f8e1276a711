/**
 * The snapshot file's compression in Node (src/snapshot/file.ts takes it injected, so the
 * browser-safe core has no Node import): raw deflate (RFC 1951), as node:zlib implements it.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Codec } from '../snapshot/file.ts';

export const deflateRaw: Codec = {
  name: 'deflate-raw',
  compress: (bytes) => deflateRawSync(bytes),
  decompress: (bytes) => inflateRawSync(bytes),
};
