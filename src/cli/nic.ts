/**
 * `previrt run --nic dp83820[,mac=M][,netperf=SIZE][,seed=N]` (QEMU's `-nic` habit): the
 * DP83820 at PCI 00:03.0 (IRQ 11) on a 1 Gb/s link, and on the far end of the wire a network the
 * guest can talk to: the host 10.0.2.2 answering ARP and ping (src/net/Responder.ts) and, with
 * `netperf=SIZE`, the benchmark's client machine (src/net/TcpSender.ts) streaming SIZE bytes and
 * the checksum trailer to 10.0.2.15 port 5001, as `previrt bench netperf` does.
 */
import { formatIpv4 } from '../net/headers.ts';
import { Responder, type ResponderCounters } from '../net/Responder.ts';
import {
  GUEST_IP,
  NETSERVER_PORT,
  PEER_IP,
  TcpSender,
  type SenderReport,
} from '../net/TcpSender.ts';
import { MAX_PAYLOAD } from '../net/stream.ts';
import type { Guest } from '../platforms/platform.ts';
import { parseSize } from './commands/bench.ts';

export interface NicOption {
  model: 'dp83820';
  mac?: Uint8Array;
  /** Under a hypervisor: the in-place VMM's DP83820 model on the wire, not the real NIC passed through. */
  emulated?: boolean;
  /** With a netperf client: the payload it sends, and its seed. */
  netperf?: { bytes: number; seed: number };
}

/** "dp83820,mac=00:0d:42:00:00:02,netperf=16M" → the option; a message for anything else. */
export function parseNic(text: string): NicOption | string {
  const [model, ...parts] = text.split(',');
  if (model !== 'dp83820') return `'${model}' is not a NIC previrt has (known: dp83820)`;
  const o: NicOption = { model };
  let seed = 1;
  let bytes: number | undefined;
  for (const part of parts) {
    if (part === 'emulated') {
      o.emulated = true;
      continue;
    }
    const m = /^([a-z]+)=(.*)$/.exec(part);
    if (m === null) return `'${part}' is not name=value (mac, netperf, seed) or emulated`;
    const [, name, value] = m;
    if (name === 'mac') {
      const mac = /^([0-9a-f]{2})(?::([0-9a-f]{2})){5}$/i.test(value)
        ? Uint8Array.from(value.split(':').map((h) => parseInt(h, 16)))
        : undefined;
      if (mac === undefined) return `mac '${value}' is not six hex bytes (00:0d:42:00:00:01)`;
      if ((mac[0] & 1) !== 0) return `mac '${value}' is a multicast address`;
      o.mac = mac;
    } else if (name === 'netperf') {
      bytes = parseSize(value);
      if (bytes === undefined || bytes < 1 || bytes > MAX_PAYLOAD)
        return `netperf '${value}' is not a size from 1 byte to 1G (e.g. 16M)`;
    } else if (name === 'seed') {
      seed = Number(value);
      if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff)
        return `seed '${value}' is not a whole number`;
    } else return `unknown NIC setting '${name}' (mac, netperf, seed, emulated)`;
  }
  if (bytes !== undefined) o.netperf = { bytes, seed };
  return o;
}

/** What is on the far end of the wire, for --stats. */
export interface NetworkReport {
  responder: ResponderCounters;
  netperf?: SenderReport;
}

export interface Network {
  report(): NetworkReport;
  /** One line about the netperf client's transfer, when there is one. */
  summary(): string | undefined;
}

/**
 * Puts the responder (and the netperf client) on end 1 of the guest's link. The client starts
 * when the guest sends its first frame or after a simulated second, whichever comes first.
 */
export function attachNetwork(guest: Guest, nic: NicOption): Network {
  const machine = guest.machine;
  const link = machine.link!;
  let sender: TcpSender | undefined;
  if (nic.netperf !== undefined) {
    const s = new TcpSender({
      clock: machine.clock,
      transmit: (frame) => link.send(1, frame),
      payloadBytes: nic.netperf.bytes,
      seed: nic.netperf.seed,
    });
    sender = s;
    machine.clock.at(machine.costModel.hz, () => s.start(), 'netperf.client-start');
  }
  const responder = new Responder({
    transmit: (frame) => link.send(1, frame),
    next:
      sender === undefined
        ? undefined
        : {
            receive(frame) {
              sender.start();
              sender.receive(frame);
            },
          },
  });
  link.attach(1, responder);
  return {
    report: () => ({
      responder: { ...responder.counters },
      netperf: sender?.report(),
    }),
    summary() {
      if (sender === undefined) return undefined;
      const r = sender.report();
      const to = `${formatIpv4(GUEST_IP)}:${NETSERVER_PORT}`;
      return (
        `netperf client ${formatIpv4(PEER_IP)} → ${to}: ${r.payloadBytes} bytes + trailer, ` +
        `crc32 ${r.payloadCrc.toString(16).padStart(8, '0')}, ${r.counters.bytesAcked} of ` +
        `${r.streamBytes} acknowledged, ${r.state}${r.error !== undefined ? ` (${r.error})` : ''}`
      );
    },
  };
}
