// The web-standard globals the browser-safe core (tsconfig.core.json) may use beyond ECMAScript
// itself: each exists in browsers, in Web Workers and in Node >= 17. The core compiles without
// Node's types and without the DOM library, so anything not declared here or in ES2022 (Buffer,
// process, setTimeout, console, performance, fetch, ...) fails to compile there. Add a global
// only when the core truly needs it, with exactly the members it uses.

/** A deep copy of plain data (HTML Standard, "structured clone"): snapshots of state objects. */
declare function structuredClone<T>(value: T): T;

/** UTF-8 encoding (WHATWG Encoding Standard, TextEncoder): strings written into guest memory. */
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}

/**
 * UTF-8 decoding (WHATWG Encoding Standard, TextDecoder): the snapshot file's header and state.
 * `fatal` makes malformed input throw instead of decoding to U+FFFD.
 */
declare class TextDecoder {
  constructor(label?: 'utf-8', options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
