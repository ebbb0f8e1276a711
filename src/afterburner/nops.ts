/**
 * Multi-byte NOP encodings, so raw hardware executes few instructions in a site's padding.
 *
 * 1–9 bytes are the sequences Intel recommends (SDM Vol. 2B, NOP, Table 4-12: `0F 1F /0`
 * with growing ModRM/SIB/displacement, `66` for the odd sizes). 10 and 11 bytes add redundant
 * operand-size and CS-override prefixes, as GNU as does for code alignment. `0F 1F` exists on
 * every processor of family 6 or 0Fh (the Pentium 4 is 0Fh). These encodings assume 32-bit
 * addressing: 16-bit ModRM has no SIB byte and 16-bit displacements, so `.code16` code gets
 * the sizes whose length is the same in both modes (no SIB, at most a disp8).
 */
const NOP: readonly (readonly number[])[] = [
  [],
  [0x90],
  [0x66, 0x90],
  [0x0f, 0x1f, 0x00],
  [0x0f, 0x1f, 0x40, 0x00],
  [0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
  [0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

const NOP16: readonly (readonly number[])[] = [
  [],
  [0x90],
  [0x66, 0x90],
  [0x0f, 0x1f, 0x00],
  [0x0f, 0x1f, 0x40, 0x00],
  [0x66, 0x0f, 0x1f, 0x40, 0x00],
];

/** The longest single NOP used. */
export const MAX_NOP = NOP.length - 1;

/** Sizes of the NOP instructions that fill `n` bytes: as few as possible, nearly equal. */
export function nopSizes(n: number, max = MAX_NOP): number[] {
  const count = Math.ceil(n / max);
  const sizes: number[] = [];
  let left = n;
  for (let i = count; i > 0; i--) {
    const size = Math.ceil(left / i);
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/** The bytes of `n` bytes of NOP padding for 32-bit code, or for 16-bit code if `code16`. */
export function nopBytes(n: number, code16 = false): number[] {
  const table = code16 ? NOP16 : NOP;
  return nopSizes(n, table.length - 1).flatMap((size) => table[size]!);
}

/** A `.byte` directive that assembles to `n` bytes of NOP padding. */
export function nopDirective(n: number, code16 = false): string {
  const bytes = nopBytes(n, code16).map((b) => '0x' + b.toString(16).padStart(2, '0'));
  return '.byte ' + bytes.join(',');
}
