/**
 * Destroying a domain (Xen's domain_kill and domain_relinquish_resources, xen/common/domain.c
 * and xen/arch/x86/domain.c): what the toolstack does with a domain that crashed or shut down
 * before it builds another in its place (a driver VM restarted: src/platforms/driverVm.ts).
 * Everything the domain held goes back, in an order that keeps the frame table's invariants
 * (frames.ts) true at every step, so its audit is clean afterwards:
 *
 * 1. the grant mappings it holds of other domains' frames are unmapped as unmap_grant_ref
 *    would unmap them (grants.ts releaseMapping: the granter's active record, its GTF_reading
 *    and GTF_writing flags and the writable type reference go);
 * 2. its event channels are closed (the far end of an interdomain channel is unbound again,
 *    waiting for this domain, as after EVTCHNOP_close: hypercalls.ts closePort);
 * 3. the devices granted to it come back (Xen.ts releaseDevices): their lines masked, their
 *    DMA no longer confined to it, and the device reset by its grant's `reset`, as Xen's pciback
 *    resets a device it gets back, so nothing the old driver left in the device's rings reaches
 *    memory that is about to belong to someone else;
 * 4. its page tables are released: every pin and the base pointer dropped, so the references
 *    their entries held go as in put_page_type;
 * 5. its frames go back to the allocator, except those other domains still map through its
 *    grants: as in Xen, where such a page keeps a reference until the grantee unmaps it, those
 *    mappings stay valid (a device DMAing into one is not cut off mid-transfer), and the frame
 *    is freed with the last of them (grants.ts). New mappings and copies of its grants are
 *    refused from now on (it is not alive);
 * 6. the scheduler never picks it again (state 'destroyed').
 *
 * What remains is its id (never given to another domain: a new one gets a new id, as in Xen),
 * its counters (busy cycles, hypercalls) and why it ended. The work is charged as the
 * operations it consists of cost (cost-model.md, Xen rows): a page-table entry per grant
 * mapping removed, the table scans of releasing its page tables.
 */
import { INVALID_P2M_ENTRY } from './abi.ts';
import type { Domain } from './domain.ts';
import { closePort } from './hypercalls.ts';
import { releaseMapping } from './grants.ts';
import type { XenHypervisor } from './Xen.ts';

/** Destroys a domain that has ended and is not the run's primary; or one line why not. */
export function destroyDomain(xen: XenHypervisor, dom: Domain): string | undefined {
  if (dom.state === 'destroyed') return `domain ${dom.id} is destroyed already`;
  if (dom.alive) return `domain ${dom.id} is still running: only an ended domain is destroyed`;
  if (dom === xen.primary) return `domain ${dom.id} is the run's primary domain`;
  dom.state = 'destroyed';
  dom.timer?.cancel();
  dom.timer = undefined;

  // 1. The grant mappings it holds.
  const table = dom.grantTable;
  for (const [handle, m] of table.maps.entries()) {
    if (m === undefined) continue;
    table.maps[handle] = undefined;
    releaseMapping(xen, m);
    xen.grantCounters.unmaps++;
    xen.cpu.charge(xen.costs.xenPteUpdate);
  }
  table.maps = [];

  // 2. Its event channels.
  for (let port = 1; port < dom.channels.length; port++)
    if (dom.channels[port].kind !== 'free') closePort(xen, dom, port);

  // 3. Its devices.
  xen.releaseDevices(dom);

  // 4. Its page tables: pins and the base pointer, each the last reference to a tree of them.
  const frames = xen.frames;
  for (let mfn = 0; mfn < frames.frames; mfn++)
    if (frames.ownedBy(dom, mfn) && frames.pinned[mfn] !== 0) frames.unpin(dom, mfn);
  if (dom.baseMfn !== undefined) frames.putType(dom.baseMfn);
  dom.baseMfn = undefined;
  dom.context = undefined;

  // 5. Its frames, but for those still mapped by others through its grants. Its grant table's
  // frames go too: nothing reads its entries again (releaseMapping finds no table).
  table.frames = [];
  const kept = new Set([...table.active.values()].map((a) => a.mfn));
  for (let mfn = 0; mfn < frames.frames; mfn++) {
    if (frames.ownedBy(dom, mfn) && !kept.has(mfn)) {
      frames.free(mfn);
      xen.setM2p(mfn, INVALID_P2M_ENTRY);
    }
  }
  // SAFETY: the CPU may still hold translations into the freed frames (the domain's own, if it
  // ran last): none may survive into the frames' next owner. The CPU never runs this domain's
  // context again; the next domain to run loads its own CR3.
  xen.cpu.flushTlb(true);

  // 6. The scheduler.
  if (xen.current === dom) xen.scheduler.relinquish();
  return undefined;
}
