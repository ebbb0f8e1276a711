// The benchmark's client machine on a test guest's link (end 1): it starts when the guest's NIC
// first sends, as `bench netperf` does.
import { TcpSender } from '../../src/net/TcpSender.ts';
import type { Guest } from '../../src/platforms/platform.ts';

export function attachSender(guest: Guest, payloadBytes = 1 << 20, seed = 9): () => TcpSender {
  const m = guest.machine;
  const sender = new TcpSender({
    clock: m.clock,
    transmit: (frame) => m.link!.send(1, frame),
    payloadBytes,
    seed,
  });
  m.link!.attach(1, {
    receive(frame) {
      sender.start();
      sender.receive(frame);
    },
  });
  return () => sender;
}
