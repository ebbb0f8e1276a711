/**
 * Run-length encoding of number arrays for saved state (DESIGN.md decision 11): tables with an
 * entry per machine frame (owners, page types, reference counts) are long and mostly one value,
 * so a snapshot keeps them as `[value, count, value, count, ...]`, which is plain JSON.
 */
import { StateError } from './state.ts';

export function runLengthEncode(values: ArrayLike<number>): number[] {
  const out: number[] = [];
  let k = 0;
  while (k < values.length) {
    const v = values[k];
    let n = 1;
    while (k + n < values.length && Object.is(values[k + n], v)) n++;
    out.push(v, n);
    k += n;
  }
  return out;
}

/** As runLengthDecode, but a mismatch is a StateError naming `path` (in a restore). */
export function runLengthRestore(
  encoded: unknown,
  into: { length: number; [k: number]: number },
  path: string,
): void {
  const error = Array.isArray(encoded)
    ? runLengthDecode(encoded as number[], into)
    : 'not a run-length encoding';
  if (error !== undefined) throw new StateError(`${path}: ${error}`);
}

/**
 * Fills `into` from an encoding of exactly its length. Returns a message for an encoding that
 * does not fit (a damaged or foreign snapshot), leaving `into` unspecified.
 */
export function runLengthDecode(
  encoded: readonly number[],
  into: { length: number; [k: number]: number },
): string | undefined {
  if (!Array.isArray(encoded) || encoded.length % 2 !== 0) return 'not a run-length encoding';
  let at = 0;
  for (let k = 0; k < encoded.length; k += 2) {
    const [v, n] = [encoded[k], encoded[k + 1]];
    if (typeof v !== 'number' || !Number.isInteger(n) || n <= 0 || at + n > into.length)
      return `run ${k / 2} does not fit a table of ${into.length}`;
    for (let j = 0; j < n; j++) into[at + j] = v;
    at += n;
  }
  return at === into.length ? undefined : `${at} entries for a table of ${into.length}`;
}
