// The client's clock across a move (network.ts): its pending events go to the new host's clock
// at the same client times, in their order; a time the move skipped comes at once; a cancelled
// event stays cancelled. The switch sends a frame for the guest to the port its MAC was seen on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimClock } from '../../machine/clock.ts';
import { EthernetLink } from '../../machine/ethernet/link.ts';
import { LearningSwitch, RelayClock } from './network.ts';

describe('the client across a move', () => {
  it("keeps its events' client times and order on the new host's clock", () => {
    const aNow = 1000;
    let bNow = 50;
    const a = new SimClock(1e9, () => aNow);
    const b = new SimClock(1e9, () => bNow);
    const relay = new RelayClock(a);
    const fired: string[] = [];
    relay.at(1500, () => fired.push('x@' + relay.now()));
    relay.at(1200, () => fired.push('y@' + relay.now()));
    const gone = relay.at(1300, () => fired.push('cancelled'));
    relay.at(1200, () => fired.push('z@' + relay.now()));
    gone.cancel();
    // The move: client time 1250 is host B's 50 now (y and z were due during the move).
    relay.move(b, 1250);
    assert.equal(relay.now(), 1250);
    a.fireDue(10_000);
    assert.deepEqual(fired, []);
    b.fireDue(50);
    assert.deepEqual(fired, ['y@1250', 'z@1250']);
    bNow = 300;
    b.fireDue(300);
    assert.deepEqual(fired, ['y@1250', 'z@1250', 'x@1500']);
  });

  it('sends a frame for the guest to the port its MAC was last seen on', () => {
    const clock = new SimClock(1e9, () => 0);
    const relay = new RelayClock(clock);
    const got: Uint8Array[] = [];
    const sw = new LearningSwitch(relay, { receive: (f) => got.push(f) });
    const links = [new EthernetLink(clock), new EthernetLink(clock)];
    const seen: number[][] = [[], []];
    links.forEach((l, k) => l.attach(0, { receive: (f) => seen[k].push(f[0]) }));
    links.forEach((l) => sw.addPort(l));
    const guest = [2, 0, 0, 0, 0, 1];
    const frame = (dst: number[], src: number[]): Uint8Array =>
      Uint8Array.from([...dst, ...src, 8, 0, ...new Array(50).fill(0)]);
    // Unknown: to every port that runs (port 0); the stopped one loses it.
    sw.fromClient(frame(guest, [2, 0, 0, 0, 0, 9]));
    assert.equal(sw.counters.toStoppedHost, 1);
    // The guest's frame from port 1 (its announcement) teaches the switch its new port.
    links[1].send(0, frame([255, 255, 255, 255, 255, 255], guest));
    clock.fireDue(1e9);
    assert.equal(got.length, 1);
    assert.equal(sw.portOf(Uint8Array.from(guest)), 1);
    sw.live = 1;
    sw.fromClient(frame(guest, [2, 0, 0, 0, 0, 9]));
    clock.fireDue(2e9);
    assert.equal(seen[1].length, 1);
    assert.equal(sw.counters.toPort[1], 2);
  });
});
