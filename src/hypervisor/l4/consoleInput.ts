/**
 * The console's input, for the resource monitor (RmOp.consoleInput): a TypeScript thread of
 * the root task that sends what the host types to the thread a VM named, as an interrupt thread
 * sends its line's interrupts — one message at a time, a blocking send that completes when the
 * receiver next waits, label RmOp.consoleInput, MR1 the byte count (at most 240), MR2.. the bytes
 * four to a word. Input typed before anyone asked for it waits. The thread waits (for a kick
 * from the resource monitor or the host's builder) whenever it has nothing to send.
 */
import { globalId, NEVER, NILTHREAD, RmOp, ROOT_NUMBER, ZERO_TIME } from './abi.ts';
import { message, type L4Api } from './api.ts';
import { StateError } from '../../machine/state.ts';
import type { IpcResult, TsProgram } from './thread.ts';

/** The root task's third thread. */
export const CONSOLE_INPUT_ID = globalId(ROOT_NUMBER + 2, 1);
/** The most bytes one message carries: 60 words after the count. */
const CHUNK = 240;
const KICK = 0x5209;

interface ConsoleInputState {
  pending: number[];
  receiver: number;
  inFlight: number;
}

export class ConsoleInput implements TsProgram {
  private pending: number[] = [];
  private receiver = NILTHREAD;
  /** Bytes of the message being sent (0: the thread is waiting for a kick, or idle). */
  private inFlight = 0;

  /** Host input: kept, and the thread kicked (by `via`, a root thread) if it is waiting. */
  input(bytes: Iterable<number>, via: L4Api): void {
    for (const b of bytes) this.pending.push(b & 0xff);
    this.kick(via);
  }

  /** The thread the console's input goes to from now on (nil: nobody's). */
  setReceiver(tid: number, via: L4Api): void {
    this.receiver = tid;
    this.kick(via);
  }

  private kick(via: L4Api): void {
    if (this.inFlight === 0) via.send(CONSOLE_INPUT_ID, message(KICK), ZERO_TIME);
  }

  start(api: L4Api): void {
    this.next(api, api.wait());
  }

  ipcDone(api: L4Api, result: IpcResult): void {
    this.next(api, result);
  }

  /** Sends while there is input and a receiver; waits for a kick otherwise. */
  private next(api: L4Api, first: IpcResult | undefined): void {
    let r = first;
    while (r !== undefined) {
      if (this.inFlight > 0) {
        // A sent message (or a receiver gone: its input is dropped with it, not resent).
        if (r.error === 0) this.pending.splice(0, this.inFlight);
        else this.receiver = NILTHREAD;
        this.inFlight = 0;
      }
      if (this.receiver === NILTHREAD || this.pending.length === 0) {
        r = api.wait();
        continue;
      }
      const bytes = this.pending.slice(0, CHUNK);
      const words = [bytes.length];
      for (let k = 0; k < bytes.length; k += 4)
        words.push(
          (bytes[k] |
            ((bytes[k + 1] ?? 0) << 8) |
            ((bytes[k + 2] ?? 0) << 16) |
            ((bytes[k + 3] ?? 0) << 24)) >>>
            0,
        );
      this.inFlight = bytes.length;
      r = api.send(this.receiver, message(RmOp.consoleInput, words), NEVER);
    }
  }

  save(): ConsoleInputState {
    return { pending: [...this.pending], receiver: this.receiver, inFlight: this.inFlight };
  }

  restore(state: unknown, path: string): void {
    const s = state as ConsoleInputState;
    if (
      typeof s !== 'object' ||
      s === null ||
      !Array.isArray(s.pending) ||
      !s.pending.every((b) => Number.isInteger(b) && b >= 0 && b < 256) ||
      typeof s.receiver !== 'number' ||
      !Number.isInteger(s.inFlight) ||
      s.inFlight < 0 ||
      s.inFlight > CHUNK
    )
      throw new StateError(`${path}: expected the console input thread's state`);
    this.pending = [...s.pending];
    this.receiver = s.receiver;
    this.inFlight = s.inFlight;
  }
}
