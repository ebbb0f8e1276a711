// What the lab's build puts in place of node:fs (vite.config.ts alias, tsconfig.web.json paths):
// the netperf run (src/bench/netperf/run.ts) opens a file only for a pcap capture, which the lab
// never asks for; should anything try, it fails with one clear message.
function unavailable(): never {
  throw new Error('previrt lab: no files in the browser (node:fs is not available)');
}

export function openSync(_path: string, _flags: string): number {
  return unavailable();
}

export function writeSync(_fd: number, _chunk: Uint8Array): number {
  return unavailable();
}

export function closeSync(_fd: number): void {
  unavailable();
}
