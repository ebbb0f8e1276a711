import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hypercall, HYPERCALL_VECTOR } from '../../../src/hypervisor/xen/abi.ts';
import type { XenMachine } from '../../../src/hypervisor/xen/machine.ts';
import { FrameType } from '../../../src/hypervisor/xen/frames.ts';
import { xorshift32 } from '../../random.ts';
import { freshXen, hypercall, mfnOf, scratch } from './harness.ts';

/**
 * Writes words into a scratch page's frame as the guest would through a writable mapping; the
 * fuzzer may have unmapped the page or made it a page table, and then the guest could not write
 * it either (skipped).
 */
function poke(xm: XenMachine, va: number, ...words: number[]): void {
  const mfn = mfnOf(xm, va);
  const t = xm.xen.frames.type[mfn];
  if (t === FrameType.l1 || t === FrameType.l2) return;
  const view = new DataView(xm.machine.ram.buffer);
  words.forEach((w, k) => view.setUint32(mfn * 4096 + (va & 0xfff) + k * 4, w >>> 0, true));
}

const NUMBERS = Object.values(Hypercall);

/**
 * Arguments a hostile or buggy guest might pass: small numbers, commands, random words, valid
 * buffers (filled with plausible requests), the domain's own and other frames, page-table
 * machine addresses, addresses in the hypervisor window.
 */
function argument(xm: XenMachine, next: () => number): number {
  const dom = xm.domain;
  const frame = (): number => {
    const k = next() % 4;
    if (k === 0) return dom.p2m[next() % dom.p2m.length];
    if (k === 1) return dom.baseMfn ?? 0;
    if (k === 2) return next() % (xm.machine.ram.length >>> 12);
    return next() >>> 12;
  };
  switch (next() % 10) {
    case 0:
      return next() % 8;
    case 1:
      return next();
    case 2:
    case 3:
      return scratch(xm, next() % 4) + (next() % 64) * 4;
    case 4:
      return frame();
    case 5:
      return (frame() << 12) | (next() & 0xfff);
    case 6:
      return 0xffc00000 + (next() % 0x400000);
    case 7:
      return next() % 5000;
    case 8:
      return 0x7ff0;
    default:
      return (frame() << 12) | ((next() % 1024) * 4);
  }
}

/**
 * Fills the scratch buffers: page 0 with mmu_update requests {ptr, 0, val, 0} aimed at the
 * domain's page tables and frames, page 1 with mmuext ops {cmd, frame, 0}, pages 2 and 3 with
 * words drawn like arguments (ports, pointers, trap entries).
 */
function scribble(xm: XenMachine, next: () => number): void {
  const dom = xm.domain;
  const firstTable = (xm.layout.pageTables - xm.layout.virtBase) >>> 12;
  const bootTables = dom.p2m.slice(firstTable, firstTable + xm.layout.nrPtFrames);
  const tables = [dom.baseMfn ?? 0, ...bootTables, ...dom.p2m.slice(0, 4), ...dom.p2m.slice(-24)];
  const requests: number[] = [];
  for (let k = 0; k < 64; k++) {
    const table = tables[next() % tables.length];
    const ptr = (table << 12) | ((next() % 1024) * 4) | (next() % 8 === 0 ? next() & 3 : 0);
    const target = next() % 2 === 0 ? tables[next() % tables.length] : argument(xm, next) >>> 12;
    requests.push(ptr, next() % 32 === 0 ? 1 : 0, ((target << 12) | (next() & 0x1ff)) >>> 0, 0);
  }
  poke(xm, scratch(xm, 0), ...requests);
  const ops: number[] = [];
  for (let k = 0; k < 80; k++) {
    ops.push(
      next() % 14,
      next() % 2 === 0 ? tables[next() % tables.length] : argument(xm, next),
      0,
    );
  }
  poke(xm, scratch(xm, 1), ...ops);
  for (const page of [2, 3]) {
    poke(xm, scratch(xm, page), ...Array.from({ length: 64 }, () => argument(xm, next)));
  }
}

test('seeded hypercall fuzzer: thousands of random calls, no host exception, invariants hold', () => {
  const seeds = [1, 2, 3];
  let calls = 0;
  let rebuilds = 0;
  const deep = { pins: 0, unpins: 0, baseSwitches: 0, upcalls: 0 };
  const tally = (xm: XenMachine): void => {
    for (const key of Object.keys(deep) as (keyof typeof deep)[]) deep[key] += xm.xen.counters[key];
  };
  const outcomes = new Map<number, number>();
  for (const seed of seeds) {
    const next = xorshift32(seed * 0x9e3779b9);
    let xm = freshXen(8, 32);
    for (let k = 0; k < 3000; k++) {
      if (!xm.domain.alive) {
        tally(xm);
        xm = freshXen(8, 32);
        rebuilds++;
      }
      if (xm.domain.state === 'blocked') {
        xm.domain.state = 'running';
        xm.machine.cpu.halted = false;
      }
      if (k % 20 === 0) scribble(xm, next);
      const r = next() % 16;
      // Memory management gets the most calls: it is where isolation lives.
      const mm = [Hypercall.mmu_update, Hypercall.mmuext_op, Hypercall.update_va_mapping];
      const nr = r < 6 ? mm[next() % 3] : r < 13 ? NUMBERS[next() % NUMBERS.length] : next() % 64;
      const args = Array.from({ length: 5 }, () => argument(xm, next));
      // Half the batched calls get a well-formed list, so the checks behind the parsing run.
      if ((nr === Hypercall.mmu_update || nr === Hypercall.mmuext_op) && next() % 2 === 0) {
        const size = nr === Hypercall.mmu_update ? 16 : 12;
        const page = nr === Hypercall.mmu_update ? 0 : 1;
        args[0] = scratch(xm, page) + size * (next() % 16);
        args[1] = 1 + (next() % 8);
        args[2] = next() % 2 === 0 ? 0 : scratch(xm, 2);
        args[3] = 0x7ff0;
      }
      const where = `seed ${seed}, call ${k}: ${nr}(${args.map((a) => a.toString(16)).join(', ')})`;
      let result: number;
      try {
        // Keep the guest in ring 1 at a sane stack (a random new_baseptr may leave odd tables).
        result = hypercall(xm, nr, ...args);
        // Now and then, a fault or INT n the guest did not ask for.
        if (next() % 64 === 0) {
          const vector = next() % 256;
          xm.xen.onEvent(
            next() % 2 === 0
              ? { kind: 'exception', vector: vector % 20, errorCode: next() & 0xffff }
              : { kind: 'software', vector: vector === HYPERCALL_VECTOR ? 0x80 : vector },
          );
        }
      } catch (e) {
        assert.fail(`${where}: host exception ${String(e)}`);
      }
      calls++;
      outcomes.set(result, (outcomes.get(result) ?? 0) + 1);
      if (k % 250 === 0 || k === 2999) {
        assert.deepEqual(xm.xen.frames.audit(xm.xen.domains), [], where);
      }
    }
    tally(xm);
  }
  // Deep paths ran too: tables pinned and switched to, domains rebuilt after they ended.
  assert.ok(deep.pins > 10 && deep.baseSwitches > 0, JSON.stringify(deep));
  assert.ok(rebuilds > 0);
  assert.ok(calls >= 9000);
  // The fuzzer reached both successes and several distinct error codes.
  assert.ok((outcomes.get(0) ?? 0) > 100, JSON.stringify([...outcomes]));
  for (const errno of [-1, -14, -22, -38]) assert.ok(outcomes.has(errno), `${errno} never seen`);
});
