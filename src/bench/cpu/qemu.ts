import { spawn } from 'node:child_process';
import { MarkerWatcher } from './markers.ts';

export interface QemuResult {
  /** Host milliseconds between the BEGIN and END markers, as their bytes reach us. */
  ms: number;
  checksum: string;
}

/**
 * Runs a workload ELF built with `exitPort` (it writes isa-debug-exit after its END marker) on
 * qemu-system-i386 with TCG, its dynamic translator (no KVM: the reference is QEMU's emulation),
 * and times the part between the markers on the host clock as they arrive on QEMU's serial
 * output. The pipe adds microseconds to a measurement of hundreds of milliseconds.
 */
export function runOnQemu(elf: string, timeoutMs: number): Promise<QemuResult> {
  return new Promise((resolve, reject) => {
    const qemu = spawn(
      'qemu-system-i386',
      [
        ...['-accel', 'tcg', '-m', '64', '-display', 'none', '-monitor', 'none', '-no-reboot'],
        ...['-serial', 'stdio', '-kernel', elf],
        ...['-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let begin = 0;
    let result: QemuResult | undefined;
    let stderr = '';
    const watcher = new MarkerWatcher(
      () => {
        begin = performance.now();
      },
      (checksum) => {
        result = { ms: performance.now() - begin, checksum };
      },
    );
    const timer = setTimeout(() => {
      qemu.kill();
      reject(new Error(`qemu-system-i386 did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    qemu.stdout.on('data', (chunk: Buffer) => {
      for (const b of chunk) watcher.byte(b);
    });
    qemu.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    qemu.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`qemu-system-i386 could not start (${e.message}): bash scripts/setup.sh`));
    });
    qemu.on('close', () => {
      clearTimeout(timer);
      if (result !== undefined) resolve(result);
      else reject(new Error(`qemu-system-i386 ended before the END marker: ${stderr.trim()}`));
    });
  });
}
