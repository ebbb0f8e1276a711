// The client link on its own, against a memory and clients of the test's: the registers the
// translation module reads (the clients' MACs), frames offered to the send ring and given back
// in order, frames on the deliver ring handed to their client or to every client; and what a
// module that writes nonsense gets (GUEST-CONTROLLED: counted as bad entries, never a throw).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MmioDevice } from '../../machine/device.ts';
import { ramDma } from '../../machine/testing.ts';
import { ClientLink, LINK_DEVICE, LINK_VENDOR, type LinkClient } from './clientLink.ts';

const SEND = 0x1000;
const DELIVER = 0x2000;

function setup(): {
  link: ClientLink;
  mem: DataView;
  clients: { got: [number, number][]; sent: number[] }[];
  irq: boolean[];
  up: boolean[];
} {
  const ram = new Uint8Array(0x4000);
  const mem = new DataView(ram.buffer);
  const dma = ramDma(ram);
  const clients = [0, 1].map((k) => ({ got: [] as [number, number][], sent: [] as number[], k }));
  const linkClients: LinkClient[] = clients.map((c) => ({
    mac: Uint8Array.of(2, 0, 0, 0, 0, c.k + 1),
    deliver: (address, length) => {
      c.got.push([address, length]);
      return c.k === 0 || c.got.length < 2; // client 1 takes one frame, then has no buffer
    },
    sent: (id) => c.sent.push(id),
  }));
  const irq: boolean[] = [];
  const up: boolean[] = [];
  let mmio: MmioDevice | undefined;
  const link = new ClientLink({
    dma,
    irq: { set: (level) => irq.push(level) },
    buses: {
      registerPorts: () => 'no ports',
      registerMmio: (_base, _length, device) => {
        mmio = device;
        return { remove: () => (mmio = undefined) };
      },
    },
    clients: linkClients,
    control: (u) => up.push(u),
  });
  link.configWrite(0x10, 4, 0xe0001000);
  link.configWrite(0x04, 2, 6);
  assert.ok(mmio === link);
  return { link, mem, clients, irq, up };
}

test('the client link: registers, send ring, deliver ring', () => {
  const { link, mem, clients, irq, up } = setup();
  assert.equal(link.configRead(0, 2), LINK_VENDOR);
  assert.equal(link.configRead(2, 2), LINK_DEVICE);
  assert.equal(link.mmioRead(0x04, 4), 2);
  assert.equal(link.mmioRead(0x48, 4), 0x00000002);
  assert.equal(link.mmioRead(0x4c, 4), 0x0200);
  // Down until the rings are set and CONTROL says up.
  assert.equal(link.offer(0, [{ address: 0x3000, length: 60 }], 7), false);
  link.mmioWrite(0x10, 4, SEND);
  link.mmioWrite(0x14, 4, DELIVER);
  link.mmioWrite(0x0c, 4, 1);
  link.mmioWrite(0x1c, 4, 1);
  assert.deepEqual(up, [true]);

  // Two frames offered by client 1: on the send ring, the interrupt up until ISR is read.
  assert.ok(link.offer(1, [{ address: 0x3000, length: 60 }], 7));
  assert.ok(
    link.offer(
      1,
      [
        { address: 0x3ff0, length: 16 },
        { address: 0x3100, length: 44 },
      ],
      8,
    ),
  );
  assert.equal(mem.getUint32(SEND, true), 2);
  assert.equal(mem.getUint32(SEND + 0x40 + 32 + 8, true), 0x3ff0);
  assert.equal(mem.getUint8(SEND + 0x40 + 32 + 5), 2);
  assert.equal(irq.at(-1), true);
  assert.equal(link.mmioRead(0x08, 4), 1);
  assert.equal(irq.at(-1), false);
  // The module is done with the first: only it goes back.
  mem.setUint32(SEND + 8, 1, true);
  link.mmioWrite(0x18, 4, 2);
  assert.deepEqual(clients[1].sent, [7]);
  // Each of the two clients may hold half the ring; client 1 holds one frame of its half.
  assert.equal(link.roomFor(1), 31);
  assert.equal(link.roomFor(0), 32);

  // Deliveries: to client 0, to every client (client 1 has no buffer the second time).
  const entry = (k: number, address: number, length: number, client: number): void => {
    const at = DELIVER + 0x40 + k * 16;
    mem.setUint32(at, address, true);
    mem.setUint16(at + 4, length, true);
    mem.setUint8(at + 6, client);
  };
  entry(0, 0x3200, 64, 0);
  entry(1, 0x3300, 60, 0xff);
  entry(2, 0x3400, 60, 0xff);
  mem.setUint32(DELIVER, 3, true);
  link.mmioWrite(0x18, 4, 1);
  assert.deepEqual(clients[0].got, [
    [0x3200, 64],
    [0x3300, 60],
    [0x3400, 60],
  ]);
  assert.deepEqual(clients[1].got, [
    [0x3300, 60],
    [0x3400, 60],
  ]);
  assert.deepEqual(
    [0, 1, 2].map((k) => mem.getUint8(DELIVER + 0x40 + k * 16 + 7)),
    [1, 1, 2], // delivered, delivered, not delivered (to every client: one could not take it)
  );
  assert.equal(mem.getUint32(DELIVER + 4, true), 3);
  assert.deepEqual(link.counters, {
    offered: 2,
    sent: 1,
    delivered: 2,
    notDelivered: 1,
    badEntries: 0,
  });
});

test('the client link: a module that writes nonsense gets bad entries, nothing else', () => {
  const { link, mem, clients } = setup();
  link.mmioWrite(0x10, 4, SEND);
  link.mmioWrite(0x14, 4, DELIVER);
  link.mmioWrite(0x1c, 4, 1);
  assert.ok(link.offer(0, [{ address: 0x3000, length: 60 }], 1));
  // `done` beyond what was offered: refused whole.
  mem.setUint32(SEND + 8, 5, true);
  link.mmioWrite(0x18, 4, 2);
  assert.deepEqual(clients[0].sent, []);
  // A producer far ahead: at most one ring's worth is looked at; each zero entry is bad
  // (length 0, client 0 exists), an unknown client is bad, a too-long frame is bad.
  mem.setUint32(DELIVER, 1000, true);
  mem.setUint8(DELIVER + 0x40 + 6, 9);
  mem.setUint16(DELIVER + 0x40 + 16 + 4, 9000, true);
  link.mmioWrite(0x18, 4, 1);
  assert.equal(link.counters.badEntries, 1 + 64);
  assert.deepEqual(clients[0].got, []);
  // A deliver ring outside memory: nothing read, no throw (the bad `done` counts again).
  link.mmioWrite(0x14, 4, 0xfffff000);
  link.mmioWrite(0x18, 4, 3);
  assert.equal(link.counters.badEntries, 66);
  assert.deepEqual(clients[0].got, []);
  // Byte and word reads of a register, writes of other sizes ignored.
  assert.equal(link.mmioRead(0x04, 1), 2);
  link.mmioWrite(0x1c, 2, 0);
  assert.equal(link.mmioRead(0x1c, 4), 1);
});

test('the client link: a client that floods the send ring holds its share, the others still send', () => {
  const { link, mem, clients } = setup();
  link.mmioWrite(0x10, 4, SEND);
  link.mmioWrite(0x14, 4, DELIVER);
  link.mmioWrite(0x1c, 4, 1);
  const frame = [{ address: 0x3000, length: 60 }];
  // Client 0 offers as fast as it can: half the ring (32 slots) is all it gets.
  let flooded = 0;
  while (link.offer(0, frame, flooded)) flooded++;
  assert.equal(flooded, 32);
  assert.equal(link.roomFor(0), 0);
  // Client 1's frames still find room, its half of the ring.
  for (let k = 0; k < 32; k++) assert.ok(link.offer(1, frame, 100 + k), `client 1, frame ${k}`);
  assert.equal(link.offer(1, frame, 200), false);
  // The module sends the first 40 (32 of client 0's, 8 of client 1's): each gets its room back.
  mem.setUint32(SEND + 8, 40, true);
  link.mmioWrite(0x18, 4, 2);
  assert.equal(clients[0].sent.length, 32);
  assert.equal(clients[1].sent.length, 8);
  assert.equal(link.roomFor(0), 32);
  assert.equal(link.roomFor(1), 8);
  // A snapshot keeps who holds what (derived from the ring's entries).
  const copy = setup();
  new Uint8Array(copy.mem.buffer).set(new Uint8Array(mem.buffer));
  copy.link.restore(link.save());
  assert.equal(copy.link.roomFor(0), 32);
  assert.equal(copy.link.roomFor(1), 8);
});
