/**
 * Typed, versioned state for snapshots and migration (DESIGN.md decision 11): the one encoding
 * for bytes, and the checks every `restore` makes before it changes anything, so that a corrupted
 * or foreign state gives one clear message naming the field (a `StateError`), never a host crash.
 *
 * Encoding rules, the same in every component's state:
 * - the state is plain JSON data: numbers, booleans, strings, arrays, objects, and `null` for
 *   "none" (never `undefined`, which JSON drops);
 * - bytes (a Uint8Array: RAM pages, frames, FIFO contents, configuration spaces) are base64
 *   strings (RFC 4648 section 4, standard alphabet, with padding): `encodeBytes`/`decodeBytes`;
 * - wider words (a register file of u32, EEPROM words of u16) are arrays of numbers;
 * - a pending clock event is a `TimerState` ({cycle, seq}) beside what the event will do.
 */
import type { TimerState } from './device.ts';

/** A state that cannot be restored: the message names the field and what is wrong with it. */
export class StateError extends Error {
  override readonly name = 'StateError';
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let k = 0; k < 64; k++) t[ALPHABET.charCodeAt(k)] = k;
  return t;
})();
const CODES = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));

/** Bytes as base64 (the encoding of every byte array in a state). */
export function encodeBytes(bytes: Uint8Array): string {
  const n = bytes.length;
  const out = new Uint8Array(Math.ceil(n / 3) * 4);
  let o = 0;
  let k = 0;
  for (; k + 2 < n; k += 3) {
    const v = (bytes[k] << 16) | (bytes[k + 1] << 8) | bytes[k + 2];
    out[o++] = CODES[v >>> 18];
    out[o++] = CODES[(v >>> 12) & 63];
    out[o++] = CODES[(v >>> 6) & 63];
    out[o++] = CODES[v & 63];
  }
  if (k < n) {
    const two = k + 1 < n;
    const v = (bytes[k] << 16) | (two ? bytes[k + 1] << 8 : 0);
    out[o] = CODES[v >>> 18];
    out[o + 1] = CODES[(v >>> 12) & 63];
    out[o + 2] = two ? CODES[(v >>> 6) & 63] : 0x3d;
    out[o + 3] = 0x3d;
  }
  let text = '';
  // In slices: String.fromCharCode takes its arguments on the stack.
  for (let s = 0; s < out.length; s += 0x8000)
    text += String.fromCharCode(...out.subarray(s, s + 0x8000));
  return text;
}

/**
 * Base64 back to bytes. `path` names the field for the error; `length`, when given, is the only
 * length the field may have.
 */
export function decodeBytes(text: unknown, path: string, length?: number): Uint8Array {
  if (typeof text !== 'string')
    throw new StateError(`${path}: expected base64 bytes, got ${kind(text)}`);
  if (text.length % 4 !== 0) throw new StateError(`${path}: not base64 (length ${text.length})`);
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const n = (text.length / 4) * 3 - pad;
  if (length !== undefined && n !== length)
    throw new StateError(`${path}: expected ${length} bytes, got ${n}`);
  const out = new Uint8Array(n);
  let o = 0;
  for (let k = 0; k < text.length; k += 4) {
    let v = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(k + j);
      const last = k + 4 === text.length;
      if (c === 0x3d && last && j >= 4 - pad) {
        v <<= 6;
        continue;
      }
      const d = c < 128 ? DECODE[c] : -1;
      if (d < 0) throw new StateError(`${path}: not base64 (character ${k + j})`);
      v = (v << 6) | d;
    }
    out[o++] = v >>> 16;
    if (o < n) out[o++] = (v >>> 8) & 0xff;
    if (o < n) out[o++] = v & 0xff;
  }
  return out;
}

/** How a value that does not fit is named in a message ("a string", "nothing (missing)"). */
export function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return v === undefined ? 'nothing (missing)' : `a ${typeof v}`;
}

/** Checks one value of a state; throws a StateError naming `path` when it does not fit. */
export type Check = (value: unknown, path: string) => void;

export const num: Check = (v, path) => {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new StateError(`${path}: expected a number, got ${kind(v)}`);
};

export const bool: Check = (v, path) => {
  if (typeof v !== 'boolean')
    throw new StateError(`${path}: expected true or false, got ${kind(v)}`);
};

export const str: Check = (v, path) => {
  if (typeof v !== 'string') throw new StateError(`${path}: expected a string, got ${kind(v)}`);
};

/** Base64 bytes (decoded, and their length checked, where the state is applied). */
export const bytes: Check = (v, path) => {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0)
    throw new StateError(`${path}: expected base64 bytes, got ${kind(v)}`);
};

export function nullable(check: Check): Check {
  return (v, path) => {
    if (v !== null) check(v, path);
  };
}

/** One of the given values exactly (a `kind` tag). */
export function oneOf(...values: readonly (string | number)[]): Check {
  return (v, path) => {
    if (!values.includes(v as string | number))
      throw new StateError(
        `${path}: expected one of ${values.join(', ')}, got ${JSON.stringify(v)}`,
      );
  };
}

export function arrayOf(check: Check, length?: number): Check {
  return (v, path) => {
    if (!Array.isArray(v)) throw new StateError(`${path}: expected an array, got ${kind(v)}`);
    if (length !== undefined && v.length !== length)
      throw new StateError(`${path}: expected ${length} entries, got ${v.length}`);
    v.forEach((e, k) => check(e, `${path}[${k}]`));
  };
}

/** An object with (at least) these fields; the compiler makes the list name every field of T. */
export function shape<T>(fields: { [K in keyof T]-?: Check }): Check {
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new StateError(`${path}: expected an object, got ${kind(v)}`);
    const o = v as Record<string, unknown>;
    for (const [name, check] of Object.entries(fields) as [string, Check][])
      check(o[name], path === '' ? name : `${path}.${name}`);
  };
}

/**
 * The check of a component's versioned state: an object whose `version` is the one this code
 * reads (checked first, so a state from another version says so rather than naming a field),
 * then every other field. `path` names the state in messages; '' for the root of a snapshot,
 * whose fields are then named from there ("devices.pit").
 */
export function checkState<T extends { version: number }>(
  what: string,
  version: T['version'],
  fields: { [K in Exclude<keyof T, 'version'>]-?: Check },
): Check {
  const rest = shape<Omit<T, 'version'>>(fields as { [K in keyof Omit<T, 'version'>]-?: Check });
  return (v, path) => {
    // At the root of a state (path ''), the message starts with what it is.
    const at = path === '' ? '' : `${path}: `;
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new StateError(`${at}expected the ${what} state (an object), got ${kind(v)}`);
    const got = (v as { version?: unknown }).version;
    if (got !== version)
      throw new StateError(
        `${at}${what} state version ${JSON.stringify(got ?? null)} is not supported (expected ${version})`,
      );
    rest(v, path);
  };
}

/** A pending clock event's place in the order (device.ts). */
export const timer: Check = shape<TimerState>({ cycle: num, seq: num });
