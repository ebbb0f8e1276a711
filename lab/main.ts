/** The lab page: controls, the xterm.js console on COM1, live counters and a uPlot chart. */
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import afterburnedUrl from '../guest/build/afterburned/kernel.elf?url';
import l4ParaUrl from '../guest/build/l4-para/kernel.elf?url';
import nativeUrl from '../guest/build/native/kernel.elf?url';
import xenParaUrl from '../guest/build/xen-para/kernel.elf?url';
import type { FromWorker, Sample, ToWorker } from './protocol.ts';

const kernels: Record<string, string> = {
  native: nativeUrl,
  afterburned: afterburnedUrl,
  'xen-para': xenParaUrl,
  'l4-para': l4ParaUrl,
};

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const term = new Terminal({ cols: 90, rows: 30, convertEol: true });
term.open($('terminal'));
const decoder = new TextDecoder();
let worker: Worker | undefined;
let dropped: { name: string; bytes: Uint8Array } | undefined;

const send = (m: ToWorker): void => worker?.postMessage(m);
const setState = (s: string): void => {
  $('state').textContent = s;
  $<HTMLButtonElement>('pause').disabled = s !== 'running';
  $<HTMLButtonElement>('resume').disabled = s !== 'paused';
  $<HTMLButtonElement>('reset').disabled = worker === undefined;
};

// The chart: guest MIPS over host time.
const xs: number[] = [];
const mips: number[] = [];
const chart = new uPlot(
  {
    width: 420,
    height: 200,
    title: 'guest MIPS',
    scales: { x: { time: false } },
    series: [{ label: 'host s' }, { label: 'MIPS', stroke: '#36c' }],
  },
  [xs, mips],
  $('chart'),
);
let previous: Sample | undefined;

function showSample(s: Sample): void {
  if (previous !== undefined && s.hostMs > previous.hostMs) {
    const m = (s.instructions - previous.instructions) / ((s.hostMs - previous.hostMs) * 1000);
    xs.push(s.hostMs / 1000);
    mips.push(m);
    chart.setData([xs, mips]);
  }
  previous = s;
  const rows: [string, string][] = [
    ['simulated time', `${s.simulatedSeconds.toFixed(3)} s`],
    ['cycles', String(s.cycles)],
    ['instructions', String(s.instructions)],
    ...s.counters.filter(([, v]) => v !== 0).map(([k, v]): [string, string] => [k, String(v)]),
  ];
  const table = $('counters');
  table.replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const a = document.createElement('td');
      a.textContent = k;
      const b = document.createElement('td');
      b.className = 'v';
      b.textContent = v;
      tr.append(a, b);
      return tr;
    }),
  );
}

function startWorker(): Worker {
  const w = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  w.onmessage = (e: MessageEvent<FromWorker>): void => {
    const m = e.data;
    if (m.type === 'ready') {
      const csp = $('csp');
      csp.textContent = m.compiledBlocks
        ? 'compiled blocks: on'
        : 'compiled blocks: off — the page forbids new Function (Content Security Policy); the CPU interprets every instruction (same results, slower)';
      csp.className = m.compiledBlocks ? 'note' : 'note warn';
    } else if (m.type === 'console') term.write(decoder.decode(m.bytes, { stream: true }));
    else if (m.type === 'sample') showSample(m.sample);
    else if (m.type === 'state')
      setState(m.detail === undefined ? m.state : `${m.state}: ${m.detail}`);
    else term.write(`\r\n[lab] ${m.message}\r\n`);
  };
  return w;
}

async function boot(): Promise<void> {
  worker?.terminate();
  worker = startWorker();
  term.reset();
  xs.length = 0;
  mips.length = 0;
  previous = undefined;
  let bytes: Uint8Array;
  let name: string;
  if (dropped !== undefined) ({ bytes, name } = dropped);
  else {
    const choice = $<HTMLSelectElement>('kernel').value;
    const response = await fetch(kernels[choice]);
    bytes = new Uint8Array(await response.arrayBuffer());
    name = `${choice}/kernel.elf`;
  }
  send({
    type: 'boot',
    kernel: bytes,
    kernelName: name,
    platform: $<HTMLSelectElement>('platform').value,
    cmdline: $<HTMLInputElement>('cmdline').value,
  });
}

term.onData((data) => send({ type: 'input', bytes: new TextEncoder().encode(data) }));
$('boot').onclick = () => void boot();
$('reset').onclick = () => void boot();
$('pause').onclick = () => send({ type: 'pause' });
$('resume').onclick = () => send({ type: 'resume' });
document.body.addEventListener('dragover', (e) => e.preventDefault());
document.body.addEventListener('drop', (e) => {
  e.preventDefault();
  const file = e.dataTransfer?.files[0];
  if (file === undefined) return;
  void file.arrayBuffer().then((b) => {
    dropped = { name: file.name, bytes: new Uint8Array(b) };
    $('dropped').textContent = file.name;
  });
});
