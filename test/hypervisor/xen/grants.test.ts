// Between domains (grants.ts, the event channels of hypercalls.ts): two PV domains of the hello
// guest, each making hypercalls as the guest kernel would (`int $0x82` with its registers, the
// domain the CPU runs), switched with the hypervisor's own context switch. Interdomain event
// channels (alloc_unbound, bind_interdomain, send, close) and grant tables (setup_table,
// map_grant_ref into the grant window, copy, unmap_grant_ref) with the checks and reference
// counts the XSA list warns about, the frame table's audit after each step, and DMA through the
// grant window.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DOMID_SELF,
  Errno,
  EvtchnOp,
  GNTCOPY,
  GNTMAP,
  GNTST,
  GnttabOp,
  GRANT_WINDOW_PAGES,
  GTF,
  Hypercall,
  MmuExt,
  SharedInfo,
} from '../../../src/hypervisor/xen/abi.ts';
import { domainDma } from '../../../src/hypervisor/xen/devices.ts';
import type { Domain } from '../../../src/hypervisor/xen/domain.ts';
import { FrameType } from '../../../src/hypervisor/xen/frames.ts';
import { as, freshXen, get, hypercall, put, struct, twoDomains } from './harness.ts';

type Xm = ReturnType<typeof freshXen>;

function audit(xm: Xm): void {
  assert.deepEqual(xm.xen.frames.audit(xm.xen.domains), []);
}

function pending(xm: Xm, dom: Domain, port: number): boolean {
  const word = xm.xen.readShared32(dom, SharedInfo.evtchn_pending + (port >>> 5) * 4);
  return (word & (1 << (port & 31))) !== 0;
}

test('interdomain event channels: alloc_unbound, bind_interdomain, send both ways, close', () => {
  const { xm, d0, d1, scratch } = twoDomains();
  const at0 = scratch.get(d0)!;
  const at1 = scratch.get(d1)!;
  const evtchn = (dom: Domain, cmd: number, args: Uint8Array): number =>
    as(xm, dom, () => {
      put(xm, dom, scratch.get(dom)!, args);
      return hypercall(xm, Hypercall.event_channel_op, cmd, scratch.get(dom)!);
    });
  const unbound = (self: number, remote: number): Uint8Array =>
    struct(8, (v) => {
      v.setUint16(0, self, true);
      v.setUint16(2, remote, true);
    });
  const bind = (remote: number, port: number): Uint8Array =>
    struct(12, (v) => {
      v.setUint16(0, remote, true);
      v.setUint32(4, port, true);
    });
  const port4 = (port: number): Uint8Array => struct(4, (v) => v.setUint32(0, port, true));

  // Domain 1 offers a port to domain 0; it may not allocate one for another domain.
  assert.equal(evtchn(d1, EvtchnOp.alloc_unbound, unbound(0, 0)), -Errno.EPERM);
  assert.equal(evtchn(d1, EvtchnOp.alloc_unbound, unbound(DOMID_SELF, 0)), 0);
  const p1 = get(xm, d1, at1 + 4, 4).getUint32(0, true);
  assert.ok(p1 > 0);
  // Only domain 0 may bind it, and only to an unbound port.
  assert.equal(evtchn(d1, EvtchnOp.bind_interdomain, bind(1, p1)), -Errno.EINVAL);
  assert.equal(evtchn(d0, EvtchnOp.bind_interdomain, bind(1, p1 + 1)), -Errno.EINVAL);
  assert.equal(evtchn(d0, EvtchnOp.bind_interdomain, bind(7, p1)), -Errno.ESRCH);
  assert.equal(evtchn(d0, EvtchnOp.bind_interdomain, bind(1, p1)), 0);
  const p0 = get(xm, d0, at0 + 8, 4).getUint32(0, true);
  assert.deepEqual(d0.channels[p0], { kind: 'interdomain', remote: 1, remotePort: p1 });
  assert.deepEqual(d1.channels[p1], { kind: 'interdomain', remote: 0, remotePort: p0 });

  // A send raises the other end's port; a blocked domain wakes (the scheduler runs it next).
  d1.state = 'blocked';
  assert.equal(pending(xm, d1, p1), false);
  assert.equal(evtchn(d0, EvtchnOp.send, port4(p0)), 0);
  assert.equal(pending(xm, d1, p1), true);
  assert.equal(d1.state, 'running');
  assert.equal(evtchn(d1, EvtchnOp.send, port4(p1)), 0);
  assert.equal(pending(xm, d0, p0), true);
  assert.equal(xm.xen.interdomainEvents, 2);

  // Closing one end leaves the other waiting for the same domain to bind again.
  assert.equal(evtchn(d0, EvtchnOp.close, port4(p0)), 0);
  assert.deepEqual(d1.channels[p1], { kind: 'unbound', remote: 0 });
  assert.equal(evtchn(d1, EvtchnOp.send, port4(p1)), -Errno.EINVAL);
  assert.equal(evtchn(d0, EvtchnOp.bind_interdomain, bind(1, p1)), 0);
});

test('grant tables: map into the grant window, copy, unmap, with the counts and checks', () => {
  const { xm, d0, d1, scratch, virtBase1 } = twoDomains();
  const { xen } = xm;
  const at1 = scratch.get(d1)!;
  const gnttab = (dom: Domain, cmd: number, op: Uint8Array, out?: (v: DataView) => void): number =>
    as(xm, dom, () => {
      put(xm, dom, scratch.get(dom)!, op);
      const r = hypercall(xm, Hypercall.grant_table_op, cmd, scratch.get(dom)!, 1);
      out?.(get(xm, dom, scratch.get(dom)!, op.length));
      return r;
    });
  let status = 0;
  const statusAt = (offset: number) => (v: DataView) => (status = v.getInt16(offset, true));

  // Domain 1 sets up a one-frame table; the frame list lands after the operation.
  const setup = struct(16, (v) => {
    v.setUint16(0, DOMID_SELF, true);
    v.setUint32(4, 1, true);
    v.setUint32(12, at1 + 64, true);
  });
  assert.equal(gnttab(d1, GnttabOp.setup_table, setup, statusAt(8)), 0);
  assert.equal(status, GNTST.okay);
  const tableMfn = get(xm, d1, at1 + 64, 4).getUint32(0, true);
  assert.deepEqual(d1.grantTable.frames, [tableMfn]);
  assert.ok(xen.frames.ownedBy(d1, tableMfn));

  // Entries: ref 5 grants a page of domain 1 to domain 0 writable, ref 6 read-only, ref 7 grants
  // its page directory (a page table), ref 8 a page to domain 3.
  const granted = d1.p2m[40];
  // Domain 1 maps that page read-only itself, so that only the grant can hold it writable.
  const remapped = as(xm, d1, () =>
    hypercall(xm, Hypercall.update_va_mapping, virtBase1 + 40 * 4096, (granted << 12) | 1, 0, 2),
  );
  assert.equal(remapped, 0);
  assert.equal(xen.frames.typeCount[granted], 0);
  const entry = (ref: number, flags: number, domid: number, frame: number): void => {
    const at = tableMfn * 4096 + ref * 8;
    new DataView(xen.machine.ram.buffer).setUint16(at, flags, true);
    new DataView(xen.machine.ram.buffer).setUint16(at + 2, domid, true);
    new DataView(xen.machine.ram.buffer).setUint32(at + 4, frame, true);
  };
  const flagsOf = (ref: number): number =>
    new DataView(xen.machine.ram.buffer).getUint16(tableMfn * 4096 + ref * 8, true);
  entry(5, GTF.permit_access, 0, granted);
  entry(6, GTF.permit_access | GTF.readonly, 0, d1.p2m[41]);
  entry(7, GTF.permit_access, 0, d1.baseMfn!);
  entry(8, GTF.permit_access, 3, d1.p2m[42]);

  const window = (slot: number): number => (d0.p2m.length + slot) * 4096;
  const map = (ref: number, slot: number, flags: number): Uint8Array =>
    struct(32, (v) => {
      v.setUint32(0, window(slot), true);
      v.setUint32(8, flags, true);
      v.setUint32(12, ref, true);
      v.setUint16(16, 1, true);
    });
  const rw = GNTMAP.host_map | GNTMAP.device_map;
  const tryMap = (ref: number, slot: number, flags: number): number => {
    gnttab(d0, GnttabOp.map_grant_ref, map(ref, slot, flags), statusAt(18));
    return status;
  };
  assert.equal(tryMap(7, 0, rw), GNTST.bad_page, 'a page table is never granted');
  assert.equal(tryMap(8, 0, rw), GNTST.permission_denied, 'the entry is for another domain');
  assert.equal(tryMap(6, 0, rw), GNTST.permission_denied, 'read-only: not writable');
  assert.equal(tryMap(99, 0, rw), GNTST.permission_denied, 'an unused entry');
  assert.equal(tryMap(600, 0, rw), GNTST.bad_gntref, 'beyond the table');
  assert.equal(tryMap(5, GRANT_WINDOW_PAGES, rw), GNTST.bad_virt_addr);
  assert.equal(xen.grantCounters.maps, 0);
  audit(xm);

  // The writable mapping: its handle, its bus address, the entry in use, a type reference.
  let handle = -1;
  let bus = 0;
  gnttab(d0, GnttabOp.map_grant_ref, map(5, 3, rw), (v) => {
    status = v.getInt16(18, true);
    handle = v.getUint32(20, true);
    bus = v.getUint32(24, true);
  });
  assert.equal(status, GNTST.okay);
  assert.equal(bus, window(3));
  assert.equal(d0.grantTable.windowFrame(3), granted);
  assert.equal(flagsOf(5), GTF.permit_access | GTF.reading | GTF.writing);
  assert.equal(xen.frames.type[granted], FrameType.writable);
  assert.equal(xen.frames.typeCount[granted], 1, 'the grant holds one type reference');
  audit(xm);
  assert.equal(tryMap(5, 3, rw), GNTST.bad_virt_addr, 'that window page is taken');
  assert.equal(tryMap(6, 4, rw | GNTMAP.readonly), GNTST.okay, 'a read-only mapping');
  assert.equal(flagsOf(6), GTF.permit_access | GTF.readonly | GTF.reading);
  audit(xm);

  // While domain 0 may write the frame, domain 1 cannot make it a page table (XSA lessons).
  const pin = struct(12, (v) => {
    v.setUint32(0, MmuExt.PIN_L1_TABLE, true);
    v.setUint32(4, granted, true);
  });
  const pinned = as(xm, d1, () => {
    put(xm, d1, at1, pin);
    return hypercall(xm, Hypercall.mmuext_op, at1, 1, 0, DOMID_SELF);
  });
  assert.equal(pinned, -Errno.EINVAL, 'the writable grant keeps it a writable frame');
  // Ending access in the shared entry changes nothing the hypervisor relies on.
  entry(5, 0, 0, 0);
  assert.equal(d0.grantTable.windowFrame(3), granted);

  // A device granted to domain 0 reaches the frame through the window, and only while mapped.
  const dma = domainDma(
    d0.p2m,
    (mfn) => xen.frames.ownedBy(d0, mfn) || d0.grantTable.holds(mfn),
    (slot) => d0.grantTable.windowFrame(slot),
  );
  assert.equal(dma.translate(window(3) + 100, 1400), granted * 4096 + 100);
  assert.equal(dma.allows(granted * 4096, 4096), true);
  assert.equal(dma.translate(window(5), 4), undefined);

  // Copy: domain 0's own page into domain 1's read-only grant is refused; from it, allowed.
  xen.machine.ram.set([1, 2, 3, 4, 5], d1.p2m[41] * 4096 + 10);
  const copy = (src: number, srcRef: boolean, dst: number, dstRef: boolean, len: number) =>
    struct(24, (v) => {
      v.setUint32(0, src, true);
      v.setUint16(4, srcRef ? 1 : DOMID_SELF, true);
      v.setUint16(6, 10, true);
      v.setUint32(8, dst, true);
      v.setUint16(12, dstRef ? 1 : DOMID_SELF, true);
      v.setUint16(14, 20, true);
      v.setUint16(16, len, true);
      v.setUint16(18, (srcRef ? GNTCOPY.source_gref : 0) | (dstRef ? GNTCOPY.dest_gref : 0), true);
    });
  gnttab(d0, GnttabOp.copy, copy(50, false, 6, true, 5), statusAt(20));
  assert.equal(status, GNTST.permission_denied);
  gnttab(d0, GnttabOp.copy, copy(6, true, 50, false, 5), statusAt(20));
  assert.equal(status, GNTST.okay);
  assert.deepEqual(
    [...xen.machine.ram.subarray(d0.p2m[50] * 4096 + 20, d0.p2m[50] * 4096 + 25)],
    [1, 2, 3, 4, 5],
  );
  gnttab(d0, GnttabOp.copy, copy(6, true, 50, false, 4090), statusAt(20));
  assert.equal(status, GNTST.bad_copy_arg, 'past the end of the page');
  assert.equal(xen.grantCounters.copies, 1);
  assert.equal(xen.grantCounters.copiedBytes, 5);

  // Unmap: the counts, the type reference and the entry flags go; a second unmap is refused.
  const unmap = (h: number): Uint8Array => struct(24, (v) => v.setUint32(16, h, true));
  gnttab(d0, GnttabOp.unmap_grant_ref, unmap(handle), statusAt(20));
  assert.equal(status, GNTST.okay);
  gnttab(d0, GnttabOp.unmap_grant_ref, unmap(handle), statusAt(20));
  assert.equal(status, GNTST.bad_handle);
  assert.equal(xen.frames.type[granted], FrameType.none);
  assert.equal(xen.frames.typeCount[granted], 0);
  assert.equal(d0.grantTable.windowFrame(3), undefined);
  assert.equal(dma.allows(granted * 4096, 4096), false);
  audit(xm);
  assert.equal(d1.grantTable.active.size, 1, 'the read-only one is still mapped');
  // Now domain 1 may pin that frame again.
  const again = as(xm, d1, () => {
    put(xm, d1, at1, pin);
    return hypercall(xm, Hypercall.mmuext_op, at1, 1, 0, DOMID_SELF);
  });
  assert.equal(again, 0);
  audit(xm);
  // And a mapping of a frame that is now a page table is refused.
  entry(5, GTF.permit_access, 0, granted);
  assert.equal(tryMap(5, 3, rw), GNTST.bad_page);
  audit(xm);
});
