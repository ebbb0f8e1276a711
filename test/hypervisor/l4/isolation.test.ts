import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  COMPLETE_ADDRESS_SPACE,
  decodeFpage,
  fpage,
  KIP_VIRT,
  L4Error,
  Label,
  mapItem,
  RmOp,
  ROOT_ID,
  SIGMA0_ID,
} from '../../../src/hypervisor/l4/abi.ts';
import { message } from '../../../src/hypervisor/l4/api.ts';
import {
  api,
  audit,
  bare,
  code,
  ebx,
  mapVmPages,
  parkedVm,
  Recorder,
  runFor,
  x86Thread,
} from './harness.ts';

const MS = 2_800_000;

test('a VM cannot map memory it was not given: not from sigma0, not by mapping what it lacks', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const other = parkedVm(m);
  const t = api(m, vm.createThread({ program: new Recorder() }));
  t.setAcceptor(COMPLETE_ADDRESS_SPACE);
  const space = m.l4.lookup(t.self, undefined)!.space!;
  const before = space.mappings.size;
  // Sigma0 serves the root task only.
  const free = m.l4.memory.ramEnd * 4096 - 0x100000;
  const r = t.callIpc(SIGMA0_ID, message(Label.sigma0Request, [fpage(free, 12, 7), 0]))!;
  assert.equal(r.error, 0);
  assert.equal(decodeFpage(r.words[1]).size, 0);
  // Mapping the other VM's machine addresses (which it has no mapping of) maps nothing.
  const rec = new Recorder();
  const r2 = api(m, vm.createThread({ program: rec }));
  r2.setAcceptor(COMPLETE_ADDRESS_SPACE);
  r2.wait();
  assert.equal(
    t.send(r2.self, message(0, [], mapItem(other.vm.base, fpage(other.vm.base, 20, 7))))!.error,
    0,
  );
  assert.equal(rec.results.length, 1);
  // Nor the kernel's area: the KIP and UTCBs are never in the mapping database.
  r2.wait();
  t.send(r2.self, message(0, [], mapItem(KIP_VIRT, fpage(KIP_VIRT, 22, 7))));
  assert.equal(space.mappings.size, before);
  // The resource monitor maps the VM's own memory on request, and nothing beyond it.
  const inside = t.callIpc(ROOT_ID, message(RmOp.requestPages, [fpage(0x10000, 12, 7)]))!;
  assert.equal(decodeFpage(inside.words[1]).size, 4096);
  assert.equal(space.mappings.get(0x10)!.frame, (vm.base + 0x10000) >>> 12);
  const beyond = t.callIpc(ROOT_ID, message(RmOp.requestPages, [fpage(vm.size, 12, 7)]))!;
  assert.equal(decodeFpage(beyond.words[1]).size, 0);
  assert.equal(space.mappings.has(vm.size >>> 12), false);
  // The privileged calls: not directly, and through the monitor only for its own threads.
  assert.equal(
    t.threadControl(other.main.tid, other.main.tid, ROOT_ID, ROOT_ID, 0xffffffff),
    L4Error.noPrivilege,
  );
  assert.equal(t.spaceControl(t.self, 0, 0, 0), L4Error.noPrivilege);
  const proxy = t.callIpc(
    ROOT_ID,
    message(RmOp.threadControl, [
      other.vm.threadId(7),
      other.main.tid,
      ROOT_ID,
      ROOT_ID,
      0xffffffff,
    ]),
  )!;
  assert.deepEqual(proxy.words.slice(0, 2), [0, L4Error.noPrivilege]);
  audit(m);
});

test('a page unmapped is unreachable from every space it was mapped on to, at once', () => {
  const m = bare();
  const vms = [parkedVm(m), parkedVm(m), parkedVm(m)];
  mapVmPages(m, vms[0].vm, 0x20000, 1);
  vms[0].vm.write(0x20000, Uint8Array.of(0x78, 0x56, 0x34, 0x12));
  const t = vms.map((v) => api(m, v.vm.createThread({ program: new Recorder() })));
  // VM 0 maps its page to VM 1 at 0x800000, VM 1 maps it on to VM 2 at 0x900000.
  t[1].setAcceptor(fpage(0x800000, 12));
  t[1].wait();
  t[0].send(t[1].self, message(0, [], mapItem(0x20000, fpage(0x20000, 12, 7))));
  t[2].setAcceptor(fpage(0x900000, 12));
  t[2].wait();
  t[1].send(t[2].self, message(0, [], mapItem(0x800000, fpage(0x800000, 12, 7))));
  audit(m);
  const reader = x86Thread(m, vms[2].vm, code.readLoop(0x900000), 0x4000, 120);
  runFor(m, MS);
  assert.equal(m.machine.cpu.eax, 0x12345678);
  const rounds = ebx(m, reader);
  assert.ok(rounds > 1000);
  // VM 0 takes it back: VM 1's mapping goes, and VM 2's derived from it.
  t[0].unmap([fpage(0x20000, 12, 7)]);
  for (const v of vms.slice(1))
    assert.equal(m.l4.lookup(v.main.tid, undefined)!.space!.mappings.has(0x800), false);
  assert.equal(m.l4.lookup(vms[2].main.tid, undefined)!.space!.mappings.has(0x900), false);
  runFor(m, MS);
  assert.ok(ebx(m, reader) - rounds <= 1);
  assert.match(m.console(), /page fault at 0x900000 .* outside its memory/);
  audit(m);
});

test('unmapping a page of the running space drops its TLB entry: the next access faults', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  mapVmPages(m, vm, 0x20000, 1);
  const flusher = api(m, vm.createThread({ program: new Recorder() }));
  x86Thread(m, vm, code.readLoop(0x20000), 0x4000, 120);
  runFor(m, MS);
  const faults = m.l4.counters.ipc.pageFault;
  // A thread of the same space flushes the page: no address-space switch flushes the TLB.
  const switches = m.l4.counters.spaceSwitches;
  flusher.unmap([fpage(0x20000, 12, 7)], true);
  assert.equal(m.l4.counters.spaceSwitches, switches);
  runFor(m, MS);
  // The reader faulted, and its pager (the resource monitor) mapped its own memory back.
  assert.equal(m.l4.counters.ipc.pageFault - faults, 1);
  audit(m);
});

test('a VM cannot take an interrupt line or I/O port it was not given', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const t = api(m, vm.createThread({ program: new Recorder() }));
  const r = t.callIpc(ROOT_ID, message(RmOp.associateIrq, [11, t.self]))!;
  assert.deepEqual(r.words.slice(0, 2), [0, L4Error.noPrivilege]);
  assert.equal(
    t.threadControl((11 << 14) | 1, (11 << 14) | 1, 0, t.self, 0xffffffff),
    L4Error.noPrivilege,
  );
  // in $0x60, %al: #GP in ring 3 without the port in the I/O bitmap, an exception message to
  // the exception handler (the resource monitor, which reports it).
  x86Thread(m, vm, [0xe4, 0x60, 0xeb, 0xfc], 0x4000, 120);
  runFor(m, MS);
  assert.match(m.console(), /exception 13 \(error code 0x0\) at eip 0x4000/);
  assert.equal(m.machine.cpu.counters.ioReads, 0);
  audit(m);
});

test('console input: offered only when enabled, to a thread of the asking VM, in order, one message at a time', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const other = parkedVm(m);
  const rec = new Recorder();
  const t = api(m, vm.createThread({ program: rec }));
  const ask = (tid: number) => t.callIpc(ROOT_ID, message(RmOp.consoleInput, [tid]))!.words;
  // Not offered: refused, and input is dropped.
  m.l4.resourceMonitor.consoleInput([0x41]);
  assert.deepEqual(ask(t.self), [0, L4Error.invalidParam]);
  m.l4.resourceMonitor.enableConsoleInput();
  // Another VM's thread is not this VM's to name.
  assert.deepEqual(ask(other.vm.mainThread), [0, L4Error.noPrivilege]);
  // Typed ahead: waits until the receiver waits, then comes in messages of at most 240 bytes.
  const typed = Array.from({ length: 300 }, (_, k) => 0x20 + (k % 90));
  m.l4.resourceMonitor.consoleInput(typed);
  assert.deepEqual(ask(t.self), [1, 0]);
  const got: number[] = [];
  for (const size of [240, 60]) {
    const r = t.wait()!;
    assert.equal(r.error, 0);
    assert.equal(r.tag >>> 16, RmOp.consoleInput);
    assert.equal(r.words[0], size);
    for (let k = 0; k < size; k++) got.push((r.words[1 + (k >> 2)] >>> ((k & 3) * 8)) & 0xff);
  }
  assert.deepEqual(got, typed);
  // Nothing more until more is typed.
  assert.equal(t.wait(0x0400)?.error, 3);
  m.l4.resourceMonitor.consoleInput([0x7a]);
  const r = t.wait()!;
  assert.deepEqual(r.words, [1, 0x7a]);
  audit(m);
});

test("an ended VM's TypeScript threads get an error from the resource monitor, never a call left blocked", () => {
  const m = bare();
  const first = parkedVm(m);
  const other = parkedVm(m);
  const rm = m.l4.resourceMonitor;
  rm.primary = first.vm;
  const helper = api(m, other.vm.createThread({ program: new Recorder() }));
  const console = (): ReturnType<typeof helper.callIpc> =>
    helper.callIpc(ROOT_ID, message(RmOp.console, [1, 0x41]));
  assert.deepEqual(console()?.words.slice(0, 1), [1]);
  // The VM exits (not the primary: the run goes on); its VMM's helper asks again, twice.
  assert.deepEqual(helper.callIpc(ROOT_ID, message(RmOp.exit, [3]))?.words.slice(0, 1), [1]);
  assert.equal(other.vm.state, 'shutdown');
  for (let k = 0; k < 2; k++) {
    const r = console();
    assert.ok(r !== undefined, 'the call returned');
    assert.deepEqual(r.words.slice(0, 2), [0, L4Error.noPrivilege]);
  }
  audit(m);
});
