/** Splitting and inspecting AT&T operand text (no Node dependencies). */

/** Splits `text` at top-level commas (outside parentheses and quotes); null if unbalanced. */
export function splitOperands(text: string): string[] | null {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x28 /* ( */) depth++;
    else if (c === 0x29 /* ) */) {
      if (--depth < 0) return null;
    } else if (c === 0x22 /* " */) {
      i = skipString(text, i);
      if (i < 0) return null;
    } else if (c === 0x27 /* ' */) i = skipChar(text, i);
    else if (c === 0x2c /* , */ && depth === 0) {
      out.push(text.slice(from, i).trim());
      from = i + 1;
    }
  }
  if (depth !== 0) return null;
  const last = text.slice(from).trim();
  if (last !== '' || out.length > 0) out.push(last);
  if (out.some((op) => op === '')) return null;
  return out;
}

/** Index of the closing quote of the string starting at `i`, or -1 when it is not closed. */
export function skipString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c /* \ */) j++;
    else if (c === 0x22) return j;
  }
  return -1;
}

/** Index of the last character of the gas character constant (`'c`, `'\n`, `'c'`) at `i`. */
export function skipChar(text: string, i: number): number {
  let j = i + 1;
  if (text.charCodeAt(j) === 0x5c) j++;
  if (text.charCodeAt(j + 1) === 0x27) j++;
  return Math.min(j, text.length - 1);
}

function isIdent(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x5f ||
    c === 0x2e ||
    c === 0x24
  );
}

/**
 * Whether text[from, to) names a segment, control, debug or test register as a whole register
 * (`%ds`, `%cr3`, `%db7`), the operands that make mov/push/pop sensitive. A cheap filter that
 * runs on every mov, push and pop; `%ds:(%eax)` also passes and is sorted out by the caller.
 */
export function mentionsSpecialRegister(text: string, from: number, to: number): boolean {
  for (let i = text.indexOf('%', from); i >= 0 && i < to; i = text.indexOf('%', i + 1)) {
    const c1 = text.charCodeAt(i + 1) | 0x20;
    const c2 = text.charCodeAt(i + 2) | 0x20;
    const c3 = i + 3 < to ? text.charCodeAt(i + 3) : 0;
    if (c2 === 0x73 /* s */ && 'cdefgs'.includes(String.fromCharCode(c1)) && !isIdent(c3))
      return true;
    if (
      c3 >= 0x30 &&
      c3 <= 0x39 &&
      ((c1 === 0x63 && c2 === 0x72) || // cr
        (c1 === 0x64 && (c2 === 0x62 || c2 === 0x72)) || // db, dr
        (c1 === 0x74 && c2 === 0x72)) // tr
    )
      return true;
  }
  return false;
}

export { isIdent };
