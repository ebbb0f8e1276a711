import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MarkerWatcher } from './markers.ts';

/** BIOS images from Debian's seabios and vgabios packages (scripts/setup.sh installs them). */
const BIOS = '/usr/share/seabios/bios.bin';
const VGA_BIOS = '/usr/share/vgabios/vgabios.bin';

export interface V86Result {
  /** Host milliseconds between the BEGIN and END markers. */
  ms: number;
  checksum: string;
}

/** The subset of v86's emulator object the benchmark uses. */
interface V86Emulator {
  add_listener(event: 'serial0-output-byte', listener: (byte: number) => void): void;
  destroy(): Promise<void>;
}

function buffer(path: string): ArrayBuffer {
  const bytes = readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/**
 * Runs the workload ELF on the npm package v86 (multiboot boot through SeaBIOS) and times the
 * part between the markers on the host clock. `jit` false sets v86's `disable_jit`, leaving its
 * interpreter.
 */
export async function runOnV86(elf: string, jit: boolean, timeoutMs: number): Promise<V86Result> {
  const require = createRequire(import.meta.url);
  const wasm = join(dirname(require.resolve('v86')), 'v86.wasm');
  const { V86 } = (await import('v86')) as unknown as {
    V86: new (options: Record<string, unknown>) => V86Emulator;
  };
  return new Promise((resolve, reject) => {
    let begin = 0;
    const emulator = new V86({
      wasm_path: wasm,
      bios: { buffer: buffer(BIOS) },
      vga_bios: { buffer: buffer(VGA_BIOS) },
      multiboot: { buffer: buffer(elf) },
      memory_size: 64 << 20,
      autostart: true,
      disable_jit: !jit,
      disable_keyboard: true,
      disable_mouse: true,
      disable_speaker: true,
    });
    const timer = setTimeout(() => {
      void emulator.destroy();
      reject(new Error(`v86 (jit ${jit ? 'on' : 'off'}) did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    const watcher = new MarkerWatcher(
      () => {
        begin = performance.now();
      },
      (checksum) => {
        const ms = performance.now() - begin;
        clearTimeout(timer);
        void emulator.destroy().then(() => resolve({ ms, checksum }));
      },
    );
    emulator.add_listener('serial0-output-byte', (b) => watcher.byte(b));
  });
}
