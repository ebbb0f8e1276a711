// Destroying a domain (destroy.ts, Xen's domain_kill): two PV domains of the hello guest tied
// together every way the driver VM and its client are (grants both ways, mapped; an interdomain
// event channel; a device granted to one of them with its DMA confined), then the second one
// crashes and is destroyed. What it mapped is unmapped and the granter's records follow; the
// frame the first still maps stays valid until unmapped, then is freed; its channels close, the
// device comes back reset and unconfined; every other frame is free again, and a new domain is
// built in them. The frame table's audit is clean after every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DOMID_SELF,
  Errno,
  EvtchnOp,
  GNTMAP,
  GNTST,
  GnttabOp,
  GTF,
  Hypercall,
} from '../../../src/hypervisor/xen/abi.ts';
import { buildDomain } from '../../../src/hypervisor/xen/builder.ts';
import type { Domain } from '../../../src/hypervisor/xen/domain.ts';
import { FrameType, OWNER_FREE } from '../../../src/hypervisor/xen/frames.ts';
import type { DmaMemory } from '../../../src/machine/device.ts';
import { parseElf } from '../../../src/loader/elf.ts';
import { buildPvGuest } from './build.ts';
import { as, get, hypercall, put, struct, twoDomains } from './harness.ts';

test('destroying a crashed domain gives back its grants, channels, device and frames', () => {
  const { xm, d0, d1, scratch } = twoDomains();
  const { xen } = xm;
  const audit = (): void => assert.deepEqual(xen.frames.audit(xen.domains), []);
  const at = (dom: Domain): number => scratch.get(dom)!;
  const call = (dom: Domain, nr: number, args: Uint8Array, ...rest: number[]): number =>
    as(xm, dom, () => {
      put(xm, dom, at(dom), args);
      return hypercall(xm, nr, ...rest.map((r) => (r === -1 ? at(dom) : r)));
    });
  const gnttab = (dom: Domain, cmd: number, op: Uint8Array): DataView => {
    call(dom, Hypercall.grant_table_op, op, cmd, -1, 1);
    return get(xm, dom, at(dom), op.length);
  };
  const evtchn = (dom: Domain, cmd: number, op: Uint8Array): number =>
    call(dom, Hypercall.event_channel_op, op, cmd, -1);
  const ram = new DataView(xen.machine.ram.buffer);

  // Each domain sets up a grant table and grants a page of its own, writable, to the other.
  const table = (dom: Domain): number => {
    const v = gnttab(
      dom,
      GnttabOp.setup_table,
      struct(16, (s) => {
        s.setUint16(0, DOMID_SELF, true);
        s.setUint32(4, 1, true);
        s.setUint32(12, at(dom) + 64, true);
      }),
    );
    assert.equal(v.getInt16(8, true), GNTST.okay);
    return get(xm, dom, at(dom) + 64, 4).getUint32(0, true);
  };
  const table0 = table(d0);
  const table1 = table(d1);
  const frame0 = d0.p2m[40];
  const frame1 = d1.p2m[40];
  const entry = (tableMfn: number, ref: number, domid: number, frame: number): void => {
    ram.setUint16(tableMfn * 4096 + ref * 8 + 2, domid, true);
    ram.setUint32(tableMfn * 4096 + ref * 8 + 4, frame, true);
    ram.setUint16(tableMfn * 4096 + ref * 8, GTF.permit_access, true);
  };
  entry(table0, 5, 1, frame0);
  entry(table1, 5, 0, frame1);
  const map = (dom: Domain, granter: number, slot: number): number => {
    const v = gnttab(
      dom,
      GnttabOp.map_grant_ref,
      struct(32, (s) => {
        s.setUint32(0, (dom.p2m.length + slot) * 4096, true);
        s.setUint32(8, GNTMAP.host_map | GNTMAP.device_map, true);
        s.setUint32(12, 5, true);
        s.setUint16(16, granter, true);
      }),
    );
    assert.equal(v.getInt16(18, true), GNTST.okay);
    return v.getUint32(20, true);
  };
  map(d1, 0, 0);
  const handle0 = map(d0, 1, 2);
  const typeCount0 = xen.frames.typeCount[frame0];
  assert.equal(ram.getUint16(table0 * 4096 + 5 * 8, true) & GTF.writing, GTF.writing);
  assert.equal(xen.frames.typeCount[frame1], 2, "its own writable mapping and domain 0's");

  // An interdomain channel, offered by domain 1 and bound by domain 0.
  assert.equal(
    evtchn(
      d1,
      EvtchnOp.alloc_unbound,
      struct(8, (s) => s.setUint16(0, DOMID_SELF, true)),
    ),
    0,
  );
  const port1 = get(xm, d1, at(d1) + 4, 4).getUint32(0, true);
  assert.equal(
    evtchn(
      d0,
      EvtchnOp.bind_interdomain,
      struct(12, (s) => {
        s.setUint16(0, 1, true);
        s.setUint32(4, port1, true);
      }),
    ),
    0,
  );
  const port0 = get(xm, d0, at(d0) + 8, 4).getUint32(0, true);

  // A device for domain 1: its DMA confined to domain 1, its line 11, a reset for its return.
  const bus = new Uint8Array(xen.machine.ram.length);
  const device: DmaMemory = {
    read: (address, into) => (into.set(bus.subarray(address, address + into.length)), true),
    write: (address, from) => (bus.set(from, address), true),
  };
  const own = { read: device.read, write: device.write };
  let resets = 0;
  xen.grantDevice(d1, {
    name: 'test',
    ioPorts: [],
    ioMemory: [],
    irqs: [11],
    dma: device,
    reset: () => resets++,
  });
  // Confined: domain 1's pseudo-physical addresses, nothing outside its memory.
  bus[d1.p2m[3] * 4096] = 0x5a;
  const word = new Uint8Array(4);
  assert.equal(device.read(3 * 4096, word), true);
  assert.equal(word[0], 0x5a);
  assert.equal(device.read(0x7ff00000, word), false);
  audit();

  // Domain 1 crashes; the run goes on (domain 0 is the primary), and the toolstack hears of it.
  xen.primary = d0;
  const ends: string[] = [];
  xen.onDomainEnd = (dom, end) => ends.push(`${dom.id}: ${end.kind}, ${end.message}`);
  assert.match(String(xen.destroy(d1)), /still running/);
  xen.crash(d1, 'test');
  assert.deepEqual(ends, ['1: crash, test']);
  d0.state = 'shutdown';
  assert.match(String(xen.destroy(d0)), /primary/);
  d0.state = 'running';
  const unmaps = xen.grantCounters.unmaps;
  assert.equal(xen.destroy(d1), undefined);
  assert.match(String(xen.destroy(d1)), /destroyed already/);
  assert.equal(d1.state, 'destroyed');
  assert.deepEqual(
    xen.vms().map((v) => v.state),
    ['running', 'destroyed'],
  );
  audit();

  // What it mapped of domain 0's is unmapped: the active record, the flags, the type reference.
  assert.equal(xen.grantCounters.unmaps, unmaps + 1);
  assert.equal(d0.grantTable.active.size, 0);
  assert.equal(ram.getUint16(table0 * 4096 + 5 * 8, true), GTF.permit_access);
  assert.equal(xen.frames.typeCount[frame0], typeCount0 - 1);
  // Its channel: domain 0's end waits again for it; nobody may offer a port to it any more.
  assert.deepEqual(d0.channels[port0], { kind: 'unbound', remote: 1 });
  assert.ok(d1.channels.every((c) => c.kind === 'free'));
  assert.equal(
    evtchn(
      d0,
      EvtchnOp.alloc_unbound,
      struct(8, (s) => {
        s.setUint16(0, DOMID_SELF, true);
        s.setUint16(2, 1, true);
      }),
    ),
    -Errno.ESRCH,
  );
  // Its device: reset, its line masked, its DMA no longer confined (the port's own functions).
  assert.equal(resets, 1);
  assert.deepEqual(d1.grants, []);
  assert.equal(device.read, own.read);
  assert.equal(device.write, own.write);
  assert.notEqual(xen.machine.ports.read(0xa1, 1) & (1 << 3), 0, 'IRQ 11 masked');
  // Its frames are free, but for the one domain 0 still maps: valid until domain 0 unmaps it.
  const owned = (id: number): number => xen.frames.owner.filter((o) => o === id).length;
  assert.equal(owned(1), 1);
  assert.equal(xen.frames.owner[frame1], 1);
  assert.equal(xen.frames.type[frame1], FrameType.writable);
  assert.equal(xen.frames.typeCount[frame1], 1, "domain 0's mapping; its own went with its tables");
  assert.equal(d0.grantTable.windowFrame(2), frame1);
  // ... and nobody maps or copies anything more of its grants.
  assert.equal(
    gnttab(
      d0,
      GnttabOp.map_grant_ref,
      struct(32, (s) => {
        s.setUint32(0, (d0.p2m.length + 3) * 4096, true);
        s.setUint32(8, GNTMAP.host_map, true);
        s.setUint32(12, 5, true);
        s.setUint16(16, 1, true);
      }),
    ).getInt16(18, true),
    GNTST.bad_domain,
  );
  const unmapped = gnttab(
    d0,
    GnttabOp.unmap_grant_ref,
    struct(24, (s) => s.setUint32(16, handle0, true)),
  );
  assert.equal(unmapped.getInt16(20, true), GNTST.okay);
  assert.equal(owned(1), 0);
  assert.equal(xen.frames.owner[frame1], OWNER_FREE);
  audit();

  // A new domain is built in the frames it left, with a new id.
  const image = parseElf(buildPvGuest('hello'), 'hello.elf');
  if (!('entry' in image)) throw new Error('elf');
  const built = buildDomain(xen, image, { memoryMb: 16 });
  assert.ok(typeof built !== 'string', String(built));
  assert.equal(built.domain.id, 2);
  assert.ok(built.domain.p2m.includes(frame1));
  audit();
});
