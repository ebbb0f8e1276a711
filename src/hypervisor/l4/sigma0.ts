/**
 * Sigma0 (PI user/serv/sigma0): the root of all mappings. It owns physical memory — the RAM the
 * kernel does not keep, and device memory beyond RAM — and maps it, frame for frame at its own
 * physical address, to whoever asks first; asking again for what one has is fine (idempotent),
 * asking for what another has gets a nil map item. It serves privileged threads only (the root
 * task's: everyone else's memory comes through it), so a VM cannot help itself to memory nobody
 * gave it. Requests: label 0xffa0, MR1 the fpage wanted
 * (rights in its rwx bits, none meaning all), MR2 attributes (ignored); page faults of
 * privileged threads (label 0xffe0) are answered with the faulting page 1:1, as Pistachio's
 * sigma0 does for the root task. Replies are one map item (or a nil one), send timeout zero.
 */
import { StateError } from '../../machine/state.ts';
import { decodeFpage, fpage, Label, mapItem, NILPAGE, RWX, tagLabel, USER_LIMIT } from './abi.ts';
import type { L4Api } from './api.ts';
import { message } from './api.ts';
import type { KipMemory } from './kip.ts';
import type { IpcResult, TsProgram } from './thread.ts';

export interface Sigma0State {
  /** [frame, owner's thread ID] runs: [first frame, count, owner]. */
  owners: [number, number, number][];
}

export class Sigma0 implements TsProgram {
  /** Frame → the thread it was given to. */
  private readonly owner = new Map<number, number>();

  constructor(
    private readonly memory: KipMemory,
    /** True if the thread may ask (it is in a privileged space). */
    private readonly mayAsk: (tid: number) => boolean,
  ) {}

  start(api: L4Api): void {
    this.serve(api, api.wait());
  }

  ipcDone(api: L4Api, result: IpcResult): void {
    this.serve(api, result);
  }

  private serve(api: L4Api, first: IpcResult | undefined): void {
    let r = first;
    while (r !== undefined) {
      if (r.error !== 0) {
        r = api.wait();
        continue;
      }
      const reply = this.handle(api, r);
      r = reply === undefined ? api.wait() : api.replyWait(r.from, reply);
    }
  }

  private handle(api: L4Api, r: IpcResult): ReturnType<typeof message> | undefined {
    const label = tagLabel(r.tag);
    let wanted: { base: number; size: number; rights: number; raw: number } | undefined;
    if (label === Label.sigma0Request) {
      // GUEST-CONTROLLED: any fpage word.
      const raw = r.words[0] ?? NILPAGE;
      wanted = { ...decodeFpage(raw), raw };
    } else if ((label & 0xfff0) === Label.pageFault) {
      const page = ((r.words[0] ?? 0) & ~0xfff) >>> 0;
      wanted = { base: page, size: 4096, rights: RWX, raw: fpage(page, 12, RWX) };
    } else {
      return undefined;
    }
    void api;
    if (!this.mayAsk(r.from) || !this.grant(r.from, wanted.base, wanted.size))
      return message(0, [], mapItem(0, NILPAGE));
    const rights = wanted.rights === 0 ? RWX : wanted.rights;
    return message(0, [], mapItem(wanted.base, (wanted.raw & ~7) | rights));
  }

  /** Gives the frames of [base, base+size) to `to` if they are all free or its already. */
  private grant(to: number, base: number, size: number): boolean {
    if (size === 0 || base + size > USER_LIMIT) return false;
    const first = base / 4096;
    const count = size / 4096;
    if (first < this.memory.reservedEnd) return false;
    for (let f = first; f < first + count; f++) {
      const o = this.owner.get(f);
      if (o !== undefined && o !== to) return false;
    }
    for (let f = first; f < first + count; f++) this.owner.set(f, to);
    return true;
  }

  save(): Sigma0State {
    const frames = [...this.owner.keys()].sort((a, b) => a - b);
    const owners: [number, number, number][] = [];
    for (const f of frames) {
      const o = this.owner.get(f)!;
      const last = owners[owners.length - 1];
      if (last !== undefined && last[0] + last[1] === f && last[2] === o) last[1]++;
      else owners.push([f, 1, o]);
    }
    return { owners };
  }

  restore(state: unknown, path: string): void {
    const s = state as Sigma0State;
    if (typeof s !== 'object' || s === null || !Array.isArray(s.owners))
      throw new StateError(`${path}: expected sigma0's state`);
    this.owner.clear();
    for (const run of s.owners) {
      if (!Array.isArray(run) || run.length !== 3 || !run.every((v) => Number.isInteger(v)))
        throw new StateError(`${path}.owners: expected [frame, count, owner] runs`);
      for (let f = run[0]; f < run[0] + run[1]; f++) this.owner.set(f, run[2]);
    }
  }
}
