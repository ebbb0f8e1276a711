import type { Block } from './block.ts';
import type { Cpu } from './Cpu.ts';

/** The semantics of one decoded instruction. */
export type Handler = (cpu: Cpu, i: Instr) => void;

/**
 * One decoded instruction, cached by physical address and executed many times (the decoder
 * runs once per instruction address, not once per execution). Fields are plain numbers so the
 * interpreter's hot path stays monomorphic.
 */
export class Instr {
  exec: Handler;
  /** Bytes, prefixes included. */
  length = 0;
  /** The opcode: 0x00–0xFF, or 0x100–0x1FF for the 0F map. */
  opcode = 0;
  /** Operand size in bytes: 1, 2 or 4. */
  size = 4;
  /** Address size is 32 bits (else 16). */
  addr32 = true;
  /** Decoded with CS.D set: the cache entry is valid only in that mode. */
  codeBig = true;
  /** Segment of the memory operand: the override, else DS, or SS for EBP/ESP-based forms. */
  seg = 3;
  /** An explicit segment override prefix was present (string instructions honour it). */
  segOverride = false;
  /** 0 none, 1 REP/REPE (F3), 2 REPNE (F2). */
  rep = 0;
  lock = false;
  /** ModRM fields; `rm` is a register number when mod is 3. */
  mod = 3;
  reg = 0;
  rm = 0;
  /** Memory operand: base and index register (-1 none), scale shift, displacement. */
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  imm = 0;
  /** Second immediate (ENTER's nesting level, far pointer selector). */
  imm2 = 0;
  /**
   * PERF: a FAST_* code (ops/fast.ts) for the few forms the interpreter loop executes inline,
   * 0 for all others; `dst` and `src` are the register operands of those forms.
   */
  fast = 0;
  dst = 0;
  src = 0;
  /**
   * PERF: links to the decoded instructions that follow this one in the same code page — `next`
   * in sequence, `target` where a relative jump goes — so the interpreter loop can skip the
   * cache lookup. Set by the loop, dropped with the instruction: `dead` marks one that was
   * invalidated (its bytes were written), and a link to a dead instruction is not followed.
   */
  next: Instr | undefined = undefined;
  target: Instr | undefined = undefined;
  dead = false;
  /**
   * PERF: the compiled block that starts here (block.ts), and how often the interpreter loop
   * has started here without one (blocks are compiled for hot entry points only).
   */
  block: Block | undefined = undefined;
  heat = 0;

  constructor(exec: Handler) {
    this.exec = exec;
  }
}
