import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  acceptor,
  ANYLOCALTHREAD,
  fpage,
  ipcErrorWord,
  IpcError,
  KIP_MAGIC,
  KIP_VIRT,
  Label,
  mapItem,
  msgTag,
  NEVER,
  NILTHREAD,
  R,
  stringItem,
  Syscall,
  tagLabel,
  timePeriod,
  timeouts,
  Utcb,
  ZERO_TIME,
  Exregs,
  L4Error,
} from '../../../src/hypervisor/l4/abi.ts';
import { message } from '../../../src/hypervisor/l4/api.ts';
import {
  api,
  audit,
  bare,
  boot,
  mapVmPages,
  mrs,
  parkedVm,
  Recorder,
  setMrs,
  sys,
  utcb,
} from './harness.ts';

test('send and receive phases fail with the X.2 error words: timeout, non-existing partner', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const a = api(m, vm.createThread({ program: new Recorder() }));
  // The main thread runs (it is not receiving): a zero send timeout fails at once.
  assert.equal(a.send(main.tid, message(1))!.error, ipcErrorWord(IpcError.timeout, false));
  assert.equal(a.send(0x12345601, message(1))!.error, ipcErrorWord(IpcError.nonExisting, false));
  assert.equal(a.receive(0x12345601, ZERO_TIME)!.error, ipcErrorWord(IpcError.nonExisting, true));
  assert.equal(a.wait(ZERO_TIME)!.error, ipcErrorWord(IpcError.timeout, true));
  const r = a.wait(ZERO_TIME)!;
  assert.equal(r.tag & 0x8000, 0x8000);
  assert.equal(a.utcb.get(Utcb.errorCode), ipcErrorWord(IpcError.timeout, true));
  assert.equal(m.l4.counters.ipcErrors.timeout, 3);
  audit(m);
});

test('a finite receive timeout expires on the simulated clock', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const rec = new Recorder();
  let firedAt = 0;
  rec.onResult = () => {
    firedAt = m.machine.cpu.cycles;
  };
  const a = api(m, vm.createThread({ program: rec }));
  const start = m.machine.cpu.cycles;
  assert.equal(a.wait(timePeriod(100)), undefined); // blocked
  m.machine.run(start + 1_000_000);
  assert.equal(rec.results.length, 1);
  assert.equal(rec.results[0].error, ipcErrorWord(IpcError.timeout, true));
  // 100 µs at 2.8 GHz, then the timer interrupt and the return.
  assert.ok(firedAt >= start + 280_000 && firedAt < start + 290_000, `${firedAt - start}`);
  assert.equal(m.l4.counters.timeouts, 1);
  audit(m);
});

test('an x86 thread calls a TypeScript server: the message and the reply through the MRs', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const server = new Recorder((api) => {
    assert.equal(api.wait(), undefined);
  });
  server.onResult = (api, r) => {
    api.replyWait(r.from, message(tagLabel(r.tag) + 1, [...r.words].reverse()));
  };
  const sid = vm.createThread({ program: server });
  const before = m.l4.counters.ipc.other;
  setMrs(m, main.tid, msgTag(7, 3), [11, 22, 33]);
  const out = sys(m, Syscall.ipc, { eax: sid, edx: sid, ecx: timeouts(NEVER, NEVER) });
  assert.equal(out.eax, sid);
  assert.equal(tagLabel(out.esi), 8);
  assert.deepEqual(mrs(m, main.tid, 4), [msgTag(8, 3), 33, 22, 11]);
  assert.equal(server.results[0].from, main.tid);
  assert.deepEqual(server.results[0].words, [11, 22, 33]);
  assert.equal(utcb(m, main.tid).get(Utcb.actualSender), sid);
  assert.equal(m.l4.counters.ipc.other - before, 2);
  audit(m);
});

test('blocked senders are taken first come, first served; a closed receive picks its partner', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const [s1, s2, s3, r] = [0, 1, 2, 3].map(() => vm.createThread({ program: new Recorder() }));
  assert.equal(api(m, s1).send(r, message(1), NEVER), undefined);
  assert.equal(api(m, s2).send(r, message(2), NEVER), undefined);
  assert.equal(api(m, s3).send(r, message(3), NEVER), undefined);
  assert.equal(tagLabel(api(m, r).receive(s3)!.tag), 3);
  assert.equal(tagLabel(api(m, r).wait()!.tag), 1);
  assert.equal(tagLabel(api(m, r).ipc(NILTHREAD, ANYLOCALTHREAD, 0, undefined)!.tag), 2);
  audit(m);
});

test('ExchangeRegisters aborts a receive (canceled), reads and sets IP and SP; only in its own space', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const waiter = new Recorder();
  const w = vm.createThread({ program: waiter });
  const c = api(m, vm.createThread({ program: new Recorder() }));
  assert.equal(api(m, w).wait(), undefined);
  const r = c.exchangeRegisters({
    dest: w,
    control: Exregs.abortReceive,
    sp: 0,
    ip: 0,
    flags: 0,
    userHandle: 0,
    pager: 0,
  });
  assert.equal(r.result, w);
  assert.equal(r.control, 2); // it was receiving
  assert.equal(waiter.results[0].error, ipcErrorWord(IpcError.canceled, true));
  // The x86 main thread: its IP and SP, then a new IP it resumes at.
  const x = c.exchangeRegisters({
    dest: main.tid,
    control: Exregs.ip,
    sp: 0,
    ip: 0x1234,
    flags: 0,
    userHandle: 0,
    pager: 0,
  });
  assert.equal(x.ip, vm.mapAt + 0x1000);
  assert.equal(x.sp, 0x8000);
  assert.equal(m.machine.cpu.eip, 0x1234);
  // Another VM's thread is out of reach.
  const other = parkedVm(m);
  const y = c.exchangeRegisters({
    dest: other.main.tid,
    control: 0,
    sp: 0,
    ip: 0,
    flags: 0,
    userHandle: 0,
    pager: 0,
  });
  assert.equal(y.result, NILTHREAD);
  assert.equal(y.error, L4Error.invalidThread);
  audit(m);
});

test('an exception becomes IPC to the exception handler with 12 words; the reply sets the registers', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const handler = new Recorder((api) => void api.wait());
  handler.onResult = (api, r) => {
    const words = [...r.words];
    words[0] += 2; // past the int $0x80
    words[11] = 0x99; // EAX
    api.replyWait(r.from, message(0, words));
  };
  const h = vm.createThread({ program: handler });
  utcb(m, main.tid).set(Utcb.exceptionHandler, h);
  const cpu = m.machine.cpu;
  cpu.eip = vm.mapAt + 0x1002; // after an int $0x80 at 0x1000
  cpu.eax = 0x55;
  cpu.ebx = 0x66;
  m.l4.onEvent({ kind: 'software', vector: 0x80 });
  const w = handler.results[0].words;
  assert.equal(tagLabel(handler.results[0].tag), Label.exception);
  assert.deepEqual([w[0], w[2], w[3], w[8], w[11]], [0x1000, 13, 0x80 * 8 + 2, 0x66, 0x55]);
  assert.equal(cpu.eip, 0x1002);
  assert.equal(cpu.eax, 0x99);
  assert.equal(cpu.ebx, 0x66);
  assert.equal(m.l4.counters.ipc.exception, 1);
  audit(m);
});

test('a page fault becomes IPC to the pager: label 0xffe0 | rwx, address and IP', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const pager = new Recorder((api) => void api.wait());
  pager.onResult = (api, r) => void api.replyWait(r.from, message(0));
  const p = vm.createThread({ program: pager });
  utcb(m, main.tid).set(Utcb.pager, p);
  const cpu = m.machine.cpu;
  // A read, a write, a fetch (the fault address is the instruction's).
  for (const [code, address] of [
    [4, 0x5000],
    [6, 0x6000],
    [4, vm.mapAt + 0x1000],
  ]) {
    cpu.eip = vm.mapAt + 0x1000;
    cpu.cr2 = address;
    m.l4.onEvent({ kind: 'exception', vector: 14, errorCode: code });
  }
  assert.deepEqual(
    pager.results.map((r) => [tagLabel(r.tag), r.words[0], r.words[1]]),
    [
      [0xffe4, 0x5000, 0x1000],
      [0xffe2, 0x6000, 0x1000],
      [0xffe1, 0x1000, 0x1000],
    ],
  );
  // With no pager at all, the thread is halted with a message.
  utcb(m, main.tid).set(Utcb.pager, 0);
  m.l4.onEvent({ kind: 'exception', vector: 14, errorCode: 4 });
  assert.equal(main.halted, true);
  assert.equal(m.l4.current, undefined);
  assert.match(m.console(), /halted: page fault at 0x1000 .* and no pager/);
  audit(m);
});

test('a map item maps into the receive window with the rights ANDed; unmap takes it back', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  mapVmPages(m, vm, 0x2000, 1);
  const other = parkedVm(m);
  const rec = new Recorder();
  const r = other.vm.createThread({ program: rec });
  api(m, r).setAcceptor(fpage(0x40000, 12));
  assert.equal(api(m, r).wait(), undefined);
  setMrs(m, main.tid, msgTag(0, 0, 2), mapItem(0x2000, fpage(0x2000, 12, R)));
  const out = sys(m, Syscall.ipc, { eax: r, edx: 0, ecx: 0 });
  assert.equal(out.esi & 0x8000, 0);
  assert.equal(rec.results.length, 1);
  const space = m.l4.lookup(r, undefined)!.space!;
  const node = space.mappings.get(0x40)!;
  assert.equal(node.frame, (vm.base + 0x2000) >>> 12);
  assert.equal(node.rights, R);
  audit(m);
  // Unmap from the main thread: the receiver's mapping goes, the main thread keeps its own.
  setMrs(m, main.tid, fpage(0x2000, 12, 7));
  sys(m, Syscall.unmap, { eax: 0 });
  assert.equal(space.mappings.has(0x40), false);
  assert.equal(m.l4.lookup(main.tid, undefined)!.space!.mappings.has(2), true);
  audit(m);
});

test('string items copy between spaces; overflow and missing pages give their error words', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  mapVmPages(m, vm, 0x2000, 2); // source page and the receive buffer's page
  const rec = new Recorder();
  const r = vm.createThread({ program: rec });
  const text = new TextEncoder().encode('hello, other space');
  vm.write(0x2000, text);
  const a = api(m, r);
  const [b1, b2] = stringItem(32, 0x3000);
  a.utcb.set(Utcb.br, acceptor(0, true));
  a.utcb.set(Utcb.br + 4, b1);
  a.utcb.set(Utcb.br + 8, b2);
  const send = (length: number, from: number): number => {
    assert.equal(a.wait(), undefined);
    setMrs(m, main.tid, msgTag(0, 0, 2), stringItem(length, from));
    return sys(m, Syscall.ipc, { eax: r, edx: 0, ecx: 0 }).esi;
  };
  assert.equal(send(text.length, 0x2000) & 0x8000, 0);
  assert.deepEqual(rec.results[0].words, [text.length << 10, 0x3000]);
  assert.deepEqual(m.machine.ram.subarray(vm.base + 0x3000, vm.base + 0x3000 + text.length), text);
  // Longer than the buffer.
  assert.equal(send(40, 0x2000) & 0x8000, 0x8000);
  assert.equal(utcb(m, main.tid).get(Utcb.errorCode), ipcErrorWord(IpcError.overflow, false));
  assert.equal(rec.results[1].error, ipcErrorWord(IpcError.overflow, true));
  // The source runs into a page the sender does not have: 16 bytes went, then the error.
  vm.write(0x3ff0, text);
  send(24, 0x3ff0);
  assert.equal(
    utcb(m, main.tid).get(Utcb.errorCode),
    ipcErrorWord(IpcError.xferTimeoutInvoker, false, 16),
  );
  assert.equal(rec.results[2].error, ipcErrorWord(IpcError.xferTimeoutPartner, true, 16));
  audit(m);
});

test('between VMs: a string item copies from one VM into a receive buffer of another', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  mapVmPages(m, vm, 0x2000, 1);
  const other = parkedVm(m);
  mapVmPages(m, other.vm, 0x3000, 1);
  const rec = new Recorder();
  const r = other.vm.createThread({ program: rec });
  const text = new TextEncoder().encode('a frame for the driver VM');
  vm.write(0x2000, text);
  const a = api(m, r);
  const [b1, b2] = stringItem(64, other.vm.mapAt + 0x3000);
  a.utcb.set(Utcb.br, acceptor(0, true));
  a.utcb.set(Utcb.br + 4, b1);
  a.utcb.set(Utcb.br + 8, b2);
  assert.equal(a.wait(), undefined);
  setMrs(m, main.tid, msgTag(0, 0, 2), stringItem(text.length, vm.mapAt + 0x2000));
  assert.equal(sys(m, Syscall.ipc, { eax: r, edx: 0, ecx: 0 }).esi & 0x8000, 0);
  assert.equal(rec.results.length, 1);
  // The bytes are in the other VM's memory, not in the sender's region.
  const at = other.vm.base + 0x3000;
  assert.deepEqual(m.machine.ram.subarray(at, at + text.length), text);
  assert.notEqual(other.vm.base, vm.base);
  audit(m);
});

test('KernelInterface by int $0x3b and by lock; nop, the KIP readable (not writable) by threads', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  vm.write(0x1002, Uint8Array.of(0xf0, 0x90));
  m.machine.run(m.machine.cpu.cycles + 100_000); // the thread runs: its page is mapped
  const out = sys(m, Syscall.kernelInterface);
  assert.equal(out.eax, KIP_VIRT);
  const cpu = m.machine.cpu;
  cpu.eip = vm.mapAt + 0x1002;
  cpu.eax = 0;
  m.l4.onEvent({ kind: 'exception', vector: 6, errorCode: undefined });
  assert.equal(cpu.eax, KIP_VIRT);
  assert.equal(cpu.eip, vm.mapAt + 0x1004);
  assert.equal(cpu.readLinear(KIP_VIRT, 4), KIP_MAGIC);
  assert.throws(() => cpu.translate(KIP_VIRT, 1, true));
  const clock = sys(m, Syscall.systemClock);
  assert.equal(clock.eax, Math.floor((cpu.cycles * 1e6) / 2.8e9));
  audit(m);
});

test('pagerexregs: threads in the space of a thread’s pager may ExchangeRegisters it, only when on', () => {
  for (const on of [false, true]) {
    const m = boot({ machine: { memoryMb: 64 }, kernel: { pagerExregs: on } });
    const { main } = parkedVm(m);
    // The main thread's pager is the resource monitor; its builder thread shares its space.
    const r = m.l4.resourceMonitor.builder().exchangeRegisters({
      dest: main.tid,
      control: Exregs.ip,
      sp: 0,
      ip: 0x2345,
      flags: 0,
      userHandle: 0,
      pager: 0,
    });
    if (on) {
      assert.equal(r.result, main.tid);
      assert.equal(m.machine.cpu.eip, 0x2345);
    } else {
      assert.equal(r.result, NILTHREAD);
      assert.equal(r.error, L4Error.invalidThread);
      assert.notEqual(m.machine.cpu.eip, 0x2345);
    }
    audit(m);
  }
});
