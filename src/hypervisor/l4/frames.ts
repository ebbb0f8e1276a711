/**
 * The kernel's own memory: a pool of machine frames it takes page directories, page tables,
 * UTCB pages and I/O bitmaps from (PI's kernel memory, kmem). Sigma0 never sees these frames;
 * nothing a thread maps can name them (the mapping database's nodes only come from sigma0's).
 * Running out is an error the caller reports (L4Error.noMem, or a map that stops short).
 */
import { runLengthEncode, runLengthRestore } from '../../machine/runLength.ts';
import { StateError } from '../../machine/state.ts';

/** What the pool needs from the machine: zeroing a frame it hands out. */
export interface FrameMemory {
  /** Zeroes one frame (and drops any decoded code in it). */
  clear(frame: number): void;
}

export interface FramePoolState {
  first: number;
  count: number;
  used: number[];
}

export class FramePool {
  private readonly used: Uint8Array;
  private hint = 0;
  inUse = 0;

  constructor(
    readonly first: number,
    readonly count: number,
    private readonly memory: FrameMemory,
  ) {
    this.used = new Uint8Array(count);
  }

  /** A zeroed frame, lowest free first; undefined when the pool is exhausted. */
  allocate(): number | undefined {
    for (let k = 0; k < this.count; k++) {
      const i = (this.hint + k) % this.count;
      if (this.used[i] === 0) {
        this.used[i] = 1;
        this.hint = i + 1;
        this.inUse++;
        const frame = this.first + i;
        this.memory.clear(frame);
        return frame;
      }
    }
    return undefined;
  }

  free(frame: number): void {
    const i = frame - this.first;
    if (i < 0 || i >= this.count || this.used[i] === 0) return;
    this.used[i] = 0;
    this.inUse--;
    if (i < this.hint) this.hint = i;
  }

  contains(frame: number): boolean {
    return frame >= this.first && frame < this.first + this.count;
  }

  isUsed(frame: number): boolean {
    return this.contains(frame) && this.used[frame - this.first] !== 0;
  }

  get available(): number {
    return this.count - this.inUse;
  }

  save(): FramePoolState {
    return { first: this.first, count: this.count, used: runLengthEncode(this.used) };
  }

  restore(state: FramePoolState, path: string): void {
    if (state.first !== this.first || state.count !== this.count)
      throw new StateError(
        `${path}: the snapshot's kernel memory is frames ${state.first}+${state.count}, this kernel's ${this.first}+${this.count}`,
      );
    runLengthRestore(state.used, this.used, `${path}.used`);
    this.inUse = this.used.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0);
    this.hint = 0;
  }
}
