import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  irqThreadId,
  L4Error,
  Label,
  RmOp,
  ROOT_ID,
  tagLabel,
} from '../../../src/hypervisor/l4/abi.ts';
import { message } from '../../../src/hypervisor/l4/api.ts';
import { api, audit, boot, code, ebx, parkedVm, Recorder, runFor, x86Thread } from './harness.ts';

const NIC_IO = 0xc000;
const NIC_MMIO = 0xe0000000;

/** A machine with the DP83820, its BARs placed, given to VM 0 (VM 1 has no device). */
function withNic() {
  const m = boot({ machine: { memoryMb: 64, network: {} } });
  const nic = m.machine.nic!;
  nic.configWrite(0x10, 4, NIC_IO);
  nic.configWrite(0x14, 4, NIC_MMIO);
  nic.configWrite(0x04, 2, 0x7); // I/O, memory, bus master
  const a = parkedVm(m, {
    devices: [
      {
        name: 'dp83820',
        ioPorts: [{ base: NIC_IO, length: 256 }],
        ioMemory: [{ machine: NIC_MMIO, length: 4096 }],
        irqs: [11],
        dma: m.machine.dma,
      },
    ],
  });
  const b = parkedVm(m);
  return { m, a, b };
}

test('the device’s ports are open in its VM’s I/O bitmap only, its registers mapped like memory', () => {
  const { m, a, b } = withNic();
  // mov $0xc000, %dx; in (%dx), %eax; inc %ebx; jmp back — then a read of the register page.
  x86Thread(m, a.vm, [0x66, 0xba, 0x00, 0xc0, 0xed, 0x43, 0xeb, 0xfa], 0x4000, 120);
  runFor(m, 1_000_000);
  assert.ok(m.machine.cpu.counters.ioReads > 100);
  assert.equal(m.machine.cpu.counters.exceptions[13], 0);
  const reader = x86Thread(m, a.vm, code.readLoop(NIC_MMIO + 0x10), 0x5000, 130);
  runFor(m, 1_000_000);
  assert.ok(ebx(m, reader) > 100);
  assert.ok(m.machine.cpu.counters.mmioReads > 100);
  // The other VM: the same instructions trap; the register page is outside its memory.
  x86Thread(m, b.vm, [0x66, 0xba, 0x00, 0xc0, 0xed, 0x43, 0xeb, 0xfa], 0x4000, 140);
  runFor(m, 1_000_000);
  assert.match(m.console(), /vm1: thread .* exception 13/);
  x86Thread(m, b.vm, code.readLoop(NIC_MMIO + 0x10), 0x5000, 150);
  runFor(m, 1_000_000);
  assert.match(m.console(), /vm1: page fault at 0xe0000010 .* outside its memory/);
  audit(m);
});

test('the device’s DMA is translated from its VM’s addresses and refused outside its memory', () => {
  const { m, a } = withNic();
  const dma = m.machine.dma;
  const buf = new Uint8Array(64);
  a.vm.write(
    0x3000,
    Uint8Array.from({ length: 64 }, (_, k) => k),
  );
  assert.equal(dma.read(0x3000, buf), true);
  assert.equal(buf[63], 63);
  assert.equal(dma.write(0x3100, buf), true);
  assert.equal(m.machine.ram[a.vm.base + 0x3100 + 5], 5);
  assert.equal(dma.read(a.vm.size - 32, buf), false); // runs past the VM's memory
  assert.equal(dma.write(a.vm.base, buf), false); // a machine address is not the VM's
  assert.deepEqual([m.l4.counters.dmaTranslated, m.l4.counters.dmaRefused], [2, 2]);
  audit(m);
});

test('the device’s interrupt line: only its VM may take it; IPC, the line masked until the reply', () => {
  const { m, a, b } = withNic();
  const other = api(m, b.vm.createThread({ program: new Recorder() }));
  assert.deepEqual(
    other.callIpc(ROOT_ID, message(RmOp.associateIrq, [11, other.self]))!.words.slice(0, 2),
    [0, L4Error.noPrivilege],
  );
  const handler = new Recorder();
  const h = api(m, a.vm.createThread({ program: handler }));
  assert.deepEqual(
    h.callIpc(ROOT_ID, message(RmOp.associateIrq, [11, h.self]))!.words.slice(0, 2),
    [1, 0],
  );
  const imr = (): number => m.machine.ports.read(0xa1, 1) & 0x08;
  assert.equal(imr(), 0);
  h.receive(irqThreadId(11));
  m.machine.pic.line(11).set(true);
  runFor(m, 100_000);
  assert.equal(handler.results.length, 1);
  assert.equal(tagLabel(handler.results[0].tag), Label.interrupt);
  assert.equal(handler.results[0].from, irqThreadId(11));
  assert.equal(imr(), 0x08); // masked while the handler works
  m.machine.pic.line(11).set(false);
  assert.equal(h.send(irqThreadId(11), message(0))!.error, 0);
  assert.equal(imr(), 0);
  assert.equal(m.l4.counters.ipc.interrupt, 1);
  audit(m);
});
