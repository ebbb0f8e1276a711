import { readFileSync } from 'node:fs';
import { runMigrateBench } from '../src/bench/migrate/run.ts';
const [path, bytes, at, mem, pre] = process.argv.slice(2);
const kernel = readFileSync('guest/build/afterburned/kernel.elf');
const r = runMigrateBench({ path: path.split(','), kernel, kernelName: 'kernel.elf', payloadBytes: Number(bytes), atBytes: at.split(',').map(Number), seed: 1, memoryMb: Number(mem), preCopy: pre !== 'stop', onConsoleLine: (l) => { if (!l.startsWith('test')) console.log('  | ' + l); } });
if (typeof r === 'string') { console.log('ERR', r); process.exit(1); }
const { sender, ...rest } = r;
console.log(JSON.stringify(rest, null, 1));
