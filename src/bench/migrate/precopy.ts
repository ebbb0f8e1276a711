/**
 * Pre-copy (Clark et al., NSDI 2005; reference/migration.md "XS"): the guest's memory goes to
 * the destination in rounds while it runs on — the first round every page, each later one the
 * pages the guest wrote during the one before (the VMM's dirty log, src/vmm/dirty.ts) — until
 * Xen's stop rule says stop; then the guest stops and the rest goes with its CPU and devices.
 *
 * The migration link is simulated: every page costs its bytes on the link at its bandwidth
 * (a zero page only its header: "zero pages almost free"), and the guest runs for exactly that
 * long while a round is on the wire. The destination's copy is kept page for page as the
 * rounds deliver it, and at the stop it must be the guest's memory exactly — a page the dirty
 * log missed is a failed migration, never a silent one.
 */
import type { Guest } from '../../platforms/platform.ts';
import { DirtyLog } from '../../vmm/dirty.ts';
import type { MigrationRecord } from '../../vmm/migration.ts';

/** Each page's header on the link (its frame number and kind; XS sends a type word per page). */
const PAGE_HEADER = 8;
/** Xen's stop rule (XS): at most this many rounds, ... */
const MAX_ROUNDS = 29;
/** ... stop when fewer pages than this are left ... */
const FEW_PAGES = 50;
/** ... or when this many times the memory has been sent. */
const MAX_FACTOR = 3;
/** Pages a batch of a round: the dirty log is looked at between batches (Xen's PEEK). */
const BATCH_PAGES = 8192;

/** One round on the migration link. */
export interface Round {
  /** Pages sent, of which zero pages (header only). */
  pages: number;
  zeroPages: number;
  /** Pages left out because they were written again during the round (sent later). */
  skipped: number;
  /** Bytes on the link, and their time (ms) at its bandwidth. */
  bytes: number;
  ms: number;
  /** Machine cycles (of the link's clock: the source's) the round took. */
  cycles: number;
  /** The stop-and-copy round (the guest stopped). */
  final: boolean;
}

/** The simulated migration link: bandwidth on the simulated clock. */
export class MigrationLink {
  constructor(
    readonly bitsPerSecond: number,
    readonly hz: number,
  ) {}

  /** Link cycles for `bytes`. */
  cycles(bytes: number): number {
    return Math.ceil((bytes * 8 * this.hz) / this.bitsPerSecond);
  }
}

/** The pre-copy's state between its rounds and the stop. */
export interface PreCopy {
  rounds: Round[];
  /** The destination's copy of guest memory (as the rounds delivered it). */
  dest: Uint8Array;
  /** Pages the destination has (0: never sent). */
  sent: Uint8Array;
  log: DirtyLog | undefined;
  link: MigrationLink;
  /** The pages written during the last round (sent at the stop). */
  pendingDirty?: Uint8Array;
  /** Called with each page as it goes (a real transport's copy of the link), if given. */
  onSend?: (frame: number, page: Uint8Array) => void;
}

/** The guest runs on in short steps until its dirty log can be looked at (DirtyLog.ready). */
function untilReady(p: PreCopy, run: (cycles: number) => boolean): boolean {
  for (let k = 0; k < 100_000 && p.log !== undefined && !p.log.ready(); k++)
    if (!run(500)) return false;
  return p.log?.ready() ?? true;
}

function isZero(page: Uint8Array): boolean {
  const words = new Int32Array(page.buffer, page.byteOffset, page.byteLength >> 2);
  for (let k = 0; k < words.length; k++) if (words[k] !== 0) return false;
  return true;
}

/**
 * Sends `pages` (a list of frames) from `memory` to `p.dest`; with `run`, in batches between
 * which the guest runs for the batch's link time and pages written since are skipped. The round;
 * undefined if the guest's run ended meanwhile.
 */
function sendRound(
  p: PreCopy,
  memory: Uint8Array,
  pages: number[],
  run: ((cycles: number) => boolean) | undefined,
): Round | undefined {
  const round: Round = {
    pages: 0,
    zeroPages: 0,
    skipped: 0,
    bytes: 0,
    ms: 0,
    cycles: 0,
    final: run === undefined,
  };
  for (let k = 0; k < pages.length; k += BATCH_PAGES) {
    const batch = pages.slice(k, k + BATCH_PAGES);
    // Pages written since the round began go in the next round (Xen's to_skip).
    if (run !== undefined && k > 0 && !untilReady(p, run)) return undefined;
    const written = run !== undefined && k > 0 ? p.log?.peek() : undefined;
    let bytes = 0;
    for (const f of batch) {
      if (written !== undefined && written[f] !== 0) {
        round.skipped++;
        continue;
      }
      const page = memory.subarray(f * 4096, f * 4096 + 4096);
      const zero = isZero(page);
      bytes += PAGE_HEADER + (zero ? 0 : 4096);
      round.pages++;
      if (zero) round.zeroPages++;
      p.dest.set(page, f * 4096);
      // A zero page never sent before is already the destination's (its memory starts zeroed).
      if (p.onSend !== undefined && !(zero && p.sent[f] === 0)) p.onSend(f, page);
      p.sent[f] = 1;
    }
    const cycles = p.link.cycles(bytes);
    round.bytes += bytes;
    round.cycles += cycles;
    // The guest runs while the batch is on the wire (its pages were read as it went).
    if (run !== undefined && !run(cycles)) return undefined;
  }
  round.ms = (round.cycles / p.link.hz) * 1000;
  return round;
}

/**
 * Pre-copy rounds of `guest`'s memory while it runs (`run` runs it on for so many cycles):
 * until fewer than 50 pages are dirty, a round sent more than the one before, 29 rounds, or
 * three times the memory went. The dirty log is left running for the stop-and-copy.
 */
export function preCopy(
  guest: Guest,
  link: MigrationLink,
  run: (cycles: number) => boolean,
  onSend?: (frame: number, page: Uint8Array) => void,
): PreCopy | string {
  const m = guest.vmm?.backend.migration;
  if (m === undefined) return 'the guest has no in-place VMM to migrate';
  const pages = m.guestPages;
  const log = new DirtyLog(pages, m.dirtySource(), guest.vmm!.platform);
  const p: PreCopy = {
    rounds: [],
    dest: new Uint8Array(pages * 4096),
    sent: new Uint8Array(pages),
    log,
    link,
    onSend,
  };
  const ended = 'the guest stopped during the pre-copy (its run ended)';
  if (!untilReady(p, run)) return ended;
  log.start();
  const memory = guest.physicalMemory();
  let next: number[] = Array.from({ length: pages }, (_, f) => f);
  let total = 0;
  for (;;) {
    const r = sendRound(p, memory, next, run);
    if (r === undefined || !untilReady(p, run)) {
      log.stop();
      return ended;
    }
    p.rounds.push(r);
    total += r.pages;
    const dirty = log.take();
    next = [];
    for (let f = 0; f < pages; f++) if (dirty[f] !== 0) next.push(f);
    const before = p.rounds.length > 1 ? p.rounds[p.rounds.length - 2].pages : Infinity;
    if (
      next.length < FEW_PAGES ||
      (p.rounds.length > 1 && r.pages > before) ||
      p.rounds.length >= MAX_ROUNDS ||
      total > MAX_FACTOR * pages
    ) {
      // What the last look found goes with the stop-and-copy.
      p.pendingDirty = dirty;
      return p;
    }
  }
}

/** A stop-and-copy with nothing sent before. */
export function noPreCopy(guest: Guest, link: MigrationLink): PreCopy | string {
  const m = guest.vmm?.backend.migration;
  if (m === undefined) return 'the guest has no in-place VMM to migrate';
  return {
    rounds: [],
    dest: new Uint8Array(m.guestPages * 4096),
    sent: new Uint8Array(m.guestPages),
    log: undefined,
    link,
  };
}

/**
 * The stop-and-copy round: with the guest stopped (`record` taken), every page written since
 * the last round, every page never sent, and the page-table frames (they go in guest-physical
 * form), then the CPU and device state. The destination's copy must then be the guest's memory;
 * the round, or which pages differ.
 */
export function stopAndCopy(
  p: PreCopy,
  record: MigrationRecord,
  stateBytes: number,
): Round | string {
  const pages = record.guestPages;
  const send = new Uint8Array(pages);
  if (p.log !== undefined) {
    const dirty = p.log.take();
    p.log.stop();
    for (let f = 0; f < pages; f++) if (dirty[f] !== 0 || p.pendingDirty?.[f] === 1) send[f] = 1;
  }
  for (let f = 0; f < pages; f++) if (p.sent[f] === 0) send[f] = 1;
  const t = record.pageTables;
  for (const f of [...t.directories, ...t.tables]) send[f] = 1;
  for (const [at] of t.entries) send[at >>> 12] = 1;
  const list: number[] = [];
  for (let f = 0; f < pages; f++) if (send[f] !== 0) list.push(f);
  const round = sendRound(p, record.memory, list, undefined)!;
  const cycles = p.link.cycles(stateBytes);
  round.bytes += stateBytes;
  round.cycles += cycles;
  round.ms = (round.cycles / p.link.hz) * 1000;
  // The destination must now hold exactly the guest's memory.
  const a = new Int32Array(p.dest.buffer, 0, pages * 1024);
  const b = new Int32Array(record.memory.buffer, record.memory.byteOffset, pages * 1024);
  let missed = 0;
  let first = -1;
  for (let f = 0; f < pages; f++) {
    for (let w = f * 1024; w < f * 1024 + 1024; w++)
      if (a[w] !== b[w]) {
        missed++;
        if (first < 0) first = f;
        break;
      }
  }
  if (missed > 0)
    return `the pre-copy missed ${missed} written pages (the first: frame 0x${first.toString(16)}): the dirty log did not see them`;
  return round;
}
