import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PTE_A, PTE_D, PTE_RW, R, W } from '../../../src/hypervisor/l4/abi.ts';
import type { Space } from '../../../src/hypervisor/l4/space.ts';
import { audit, bare } from './harness.ts';

/** Three empty spaces and a frame of sigma0's. */
function setup() {
  const m = bare();
  const k = m.l4;
  const [a, b, c, d] = [0, 1, 2, 3].map(() => k.newSpace(false, false, -1)!);
  const frame = k.memory.reservedEnd + 100;
  const page = (base: number, rights = 7) => ({ base, size: 4096, rights });
  const map = (from: Space, src: number, to: Space, dst: number, rights = 7, grant = false) =>
    assert.ok(k.mdb.mapFpage(from, page(src, rights), src, to, page(dst), grant));
  map(k.sigma0Space, frame * 4096, a, 0x10000);
  return { m, k, a, b, c, d, frame, page, map };
}

function pte(m: ReturnType<typeof bare>, space: Space, va: number): number {
  const at = space.pteAddress(va >>> 12);
  return at === undefined ? 0 : m.machine.cpu.readPhysical(at, 4);
}

test('mappings derive from sigma0’s; unmap revokes them recursively, flush the caller’s own too', () => {
  const { m, k, a, b, c, frame, page, map } = setup();
  map(a, 0x10000, b, 0x20000);
  map(b, 0x20000, c, 0x30000);
  const root = k.sigma0Space.mappings.get(frame)!;
  assert.equal(root.children[0].space, a);
  assert.equal(c.mappings.get(0x30)!.parent, b.mappings.get(0x20));
  assert.equal(pte(m, c, 0x30000) >>> 12, frame);
  audit(m);
  k.mdb.unmapFpage(a, page(0x10000), false);
  assert.equal(b.mappings.size + c.mappings.size, 0);
  assert.equal(pte(m, c, 0x30000), 0);
  assert.equal(a.mappings.size, 1);
  audit(m);
  k.mdb.unmapFpage(a, page(0x10000), true);
  assert.equal(a.mappings.size, 0);
  assert.equal(k.sigma0Space.mappings.get(frame)!.children.length, 0);
  audit(m);
});

test('map ANDs rights; unmapping some rights downgrades every derived mapping and its entry', () => {
  const { m, k, a, b, c, page, map } = setup();
  map(a, 0x10000, b, 0x20000, R | W);
  map(b, 0x20000, c, 0x30000, 7);
  assert.equal(c.mappings.get(0x30)!.rights, R | W);
  assert.equal(pte(m, c, 0x30000) & PTE_RW, PTE_RW);
  k.mdb.unmapFpage(a, page(0x10000, W), false);
  assert.equal(b.mappings.get(0x20)!.rights, R);
  assert.equal(c.mappings.get(0x30)!.rights, R);
  assert.equal(pte(m, c, 0x30000) & PTE_RW, 0);
  assert.equal(a.mappings.get(0x10)!.rights, 7);
  assert.equal(m.l4.counters.pages.downgraded, 2);
  audit(m);
});

test('unmap returns the referenced and written bits of the derived mappings and resets them', () => {
  const { m, k, a, b, c, page, map } = setup();
  map(a, 0x10000, b, 0x20000);
  map(b, 0x20000, c, 0x30000);
  const at = c.pteAddress(0x30)!;
  m.machine.cpu.writePhysical(at, 4, m.machine.cpu.readPhysical(at, 4) | PTE_A | PTE_D);
  assert.equal(k.mdb.unmapFpage(a, page(0x10000, 0), false), R | W);
  assert.equal(m.machine.cpu.readPhysical(at, 4) & (PTE_A | PTE_D), 0);
  assert.equal(k.mdb.unmapFpage(a, page(0x10000, 0), false), 0);
  assert.equal(c.mappings.size, 1); // rights 0: a query, nothing revoked
  audit(m);
});

test('grant moves the mapping with its subtree; re-mapping is idempotent; a new mapping replaces', () => {
  const { m, k, a, b, c, d, frame, page, map } = setup();
  map(a, 0x10000, b, 0x20000);
  map(b, 0x20000, c, 0x30000);
  const node = b.mappings.get(0x20)!;
  map(b, 0x20000, d, 0x40000, 7, true);
  assert.equal(b.mappings.size, 0);
  assert.equal(d.mappings.get(0x40), node);
  assert.equal(c.mappings.get(0x30)!.parent, node);
  assert.equal(pte(m, b, 0x20000), 0);
  audit(m);
  // Mapping again from the same parent upgrades in place: no second child.
  map(a, 0x10000, d, 0x40000, R);
  assert.equal(a.mappings.get(0x10)!.children.length, 1);
  // A different frame onto d's page: the old mapping goes with its subtree.
  map(k.sigma0Space, (frame + 1) * 4096, d, 0x40000);
  assert.equal(d.mappings.get(0x40)!.frame, frame + 1);
  assert.equal(c.mappings.size, 0);
  audit(m);
  // Mapping a page onto one it derives from changes nothing (it would cut its own tree).
  map(a, 0x10000, b, 0x20000);
  map(b, 0x20000, a, 0x10000);
  assert.equal(a.mappings.get(0x10)!.parent!.space, k.sigma0Space);
  audit(m);
  void page;
});

test('a larger window takes the send fpage at the send base; a larger fpage sends only the window', () => {
  const { m, k, a, b, c, map } = setup();
  for (let p = 1; p < 4; p++)
    map(k.sigma0Space, (k.memory.reservedEnd + 100 + p) * 4096, a, 0x10000 + p * 4096);
  // 16 KB of a into a 64 KB window at send base 0x...8000: lands at window + 0x8000.
  assert.ok(
    k.mdb.mapFpage(
      a,
      { base: 0x10000, size: 0x4000, rights: 7 },
      0x8000,
      b,
      { base: 0x80000, size: 0x10000, rights: 0 },
      false,
    ),
  );
  assert.deepEqual([...b.mappings.keys()].sort(), [0x88, 0x89, 0x8a, 0x8b]);
  // 16 KB into a 4 KB window at send base 0x2000: only a's third page.
  assert.ok(
    k.mdb.mapFpage(
      a,
      { base: 0x10000, size: 0x4000, rights: 7 },
      0x2000,
      c,
      { base: 0x90000, size: 0x1000, rights: 0 },
      false,
    ),
  );
  assert.equal(c.mappings.get(0x90)!.frame, a.mappings.get(0x12)!.frame);
  audit(m);
});

test('deleting a space revokes what it mapped to others and frees its frames', () => {
  const { m, k, a, b, map } = setup();
  const before = k.pool.inUse;
  map(a, 0x10000, b, 0x20000);
  k.deleteSpace(a);
  assert.equal(b.mappings.size, 0);
  assert.ok(k.pool.inUse < before);
  audit(m);
});
