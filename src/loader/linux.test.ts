import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { kernelPath, make } from '../../test/guest/guest.ts';
import { assemble } from '../../test/x86/assemble.ts';
import { createMachine, Machine } from '../machine/Machine.ts';
import { LoadError, parseElf } from './elf.ts';
import {
  BOOT_CS,
  BOOT_DS,
  bootLinux,
  isLinuxKernel,
  linuxPayload,
  placeLinux,
  placeVmlinux,
} from './linux.ts';

/**
 * A bzImage as `make bzImage` lays one out (Documentation/x86/boot.rst): `setupSects` sectors of
 * setup after the boot sector, the setup header at 0x1f1, then the protected-mode code.
 */
function bzImage(
  code: Uint8Array,
  o: {
    version?: number;
    loadFlags?: number;
    xloadflags?: number;
    initSize?: number;
    code32Start?: number;
  } = {},
): Uint8Array {
  const setupSects = 4;
  const image = new Uint8Array((setupSects + 1) * 512 + code.length);
  const v = new DataView(image.buffer);
  image[0x1f1] = setupSects;
  v.setUint16(0x1fe, 0xaa55, true);
  image[0x200] = 0xeb; // jmp over the header
  image[0x201] = 0x6a; // the header ends at 0x202 + 0x6a = 0x26c
  v.setUint32(0x202, 0x53726448, true); // "HdrS"
  v.setUint16(0x206, o.version ?? 0x020f, true);
  image[0x211] = o.loadFlags ?? 0x01; // LOADED_HIGH
  v.setUint32(0x214, o.code32Start ?? 0x100000, true); // code32_start
  v.setUint32(0x22c, 0x7fffffff, true); // initrd_addr_max
  v.setUint32(0x230, 0x1000000, true); // kernel_alignment
  v.setUint16(0x236, o.xloadflags ?? 0, true);
  v.setUint32(0x238, 2047, true); // cmdline_size
  v.setUint32(0x258, 0x1000000, true); // pref_address
  v.setUint32(0x260, o.initSize ?? 0x400000, true);
  image.set(code, (setupSects + 1) * 512);
  return image;
}

function machine(mb = 64): Machine {
  const m = createMachine({ memoryMb: mb });
  assert.ok(m instanceof Machine);
  return m;
}

test('a bzImage is recognised by its setup header; a multiboot ELF is not', () => {
  assert.ok(isLinuxKernel(bzImage(new Uint8Array(16))));
  const elf = new Uint8Array(4096);
  elf.set([0x7f, 0x45, 0x4c, 0x46]);
  assert.ok(!isLinuxKernel(elf));
  assert.ok(!isLinuxKernel(new Uint8Array(100)));
});

test('boot parameters as the 32-bit protocol asks: header copied, e820, command line, initrd at the top, loader type', () => {
  const m = machine(64);
  const code = Uint8Array.from([0xf4, 1, 2, 3]);
  const initrd = [
    { name: 'a.cpio', bytes: new Uint8Array(5000).fill(0xa1), string: 'a.cpio' },
    { name: 'b.cpio', bytes: new Uint8Array(3).fill(0xb2), string: 'b.cpio' },
  ];
  const start = placeLinux(m.ram, {
    kernel: bzImage(code),
    kernelName: 'bzImage',
    cmdline: 'console=ttyS0 hello',
    initrd,
  });
  assert.ok(!(start instanceof LoadError), String(start));
  assert.equal(start.entry, 0x100000);
  assert.deepEqual([...m.ram.subarray(0x100000, 0x100004)], [...code]);
  const bp = new DataView(m.ram.buffer, start.bootParams, 0x1000);
  assert.equal(bp.getUint32(0x202, true), 0x53726448, 'the setup header copied');
  assert.equal(bp.getUint8(0x210), 0xff, 'type_of_loader: undefined');
  const cmdline = bp.getUint32(0x228, true);
  assert.equal(cmdline, 0x20000, "QEMU's cmdline_addr");
  assert.equal(
    new TextDecoder().decode(m.ram.subarray(cmdline, cmdline + 19)),
    'console=ttyS0 hello',
  );
  assert.equal(m.ram[cmdline + 19], 0);
  // The initrd: both files, the second on a 4-byte boundary, as high as memory allows.
  const image = bp.getUint32(0x218, true);
  const size = bp.getUint32(0x21c, true);
  assert.equal(size, 5000 + 3 + 0);
  assert.equal(image % 4096, 0);
  assert.ok(image + size <= 64 << 20 && image + size > (64 << 20) - 4096 - 5004);
  assert.equal(m.ram[image], 0xa1);
  assert.equal(m.ram[image + 5000], 0xb2);
  // e820: low memory, the EBDA and BIOS reserved, everything from 1 MB usable.
  assert.equal(bp.getUint8(0x1e8), 4);
  const e820 = [...Array(4).keys()].map((k) => [
    bp.getUint32(0x2d0 + k * 20, true),
    bp.getUint32(0x2d0 + k * 20 + 8, true),
    bp.getUint32(0x2d0 + k * 20 + 16, true),
  ]);
  assert.deepEqual(e820, [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x400, 2],
    [0xf0000, 0x10000, 2],
    [0x100000, (64 << 20) - 0x100000, 1],
  ]);
  assert.equal(bp.getUint32(0x1e0, true), 63 * 1024, 'alt_mem_k');
});

test('the CPU starts as the protocol says, and a kernel finds its boot parameters and command line', () => {
  // A "kernel" that checks the entry state and prints its command line on COM1, then exits
  // through isa-debug-exit with what it found: 0x11 when every check passed.
  const code = assemble(
    `
    movl $0x90000, %esp       /* the protocol gives no stack */
    movl $1, %eax
    movw %cs, %bx
    cmpw $0x10, %bx
    jne bad
    movw %ds, %bx
    cmpw $0x18, %bx
    jne bad
    movw %ss, %bx
    cmpw $0x18, %bx
    jne bad
    testl %ebp, %ebp
    jnz bad
    testl %edi, %edi
    jnz bad
    pushfl
    popl %ebx
    testl $0x200, %ebx        /* IF clear */
    jnz bad
    movl %cr0, %ebx
    testl $0x80000000, %ebx   /* paging off */
    jnz bad
    movl 0x228(%esi), %ecx    /* cmd_line_ptr */
1:  movb (%ecx), %al
    testb %al, %al
    jz 2f
    movw $0x3f8, %dx
    outb %al, %dx
    incl %ecx
    jmp 1b
2:  movl $0x11, %eax
bad:
    movw $0xf4, %dx
    outl %eax, %dx
    hlt`,
    0x100000,
  );
  let out = '';
  const m2 = createMachine({ memoryMb: 64, serialOut: (b) => (out += String.fromCharCode(b)) });
  assert.ok(m2 instanceof Machine);
  assert.equal(
    bootLinux(m2, { kernel: bzImage(code), kernelName: 'k', cmdline: 'root=none', initrd: [] }),
    undefined,
  );
  assert.equal(m2.cpu.segs[1].selector, BOOT_CS);
  assert.equal(m2.cpu.eax, 0);
  assert.deepEqual(m2.run(1e8), { kind: 'exit', value: 0x11 });
  assert.equal(out, 'root=none');
});

test('images previrt cannot boot are refused with one line naming the file', () => {
  const m = machine(64);
  const place = (image: Uint8Array, extra: Partial<Parameters<typeof placeLinux>[1]> = {}) => {
    const r = placeLinux(m.ram, {
      kernel: image,
      kernelName: 'k.img',
      cmdline: '',
      initrd: [],
      ...extra,
    });
    return r instanceof LoadError ? r.message : 'booted';
  };
  const code = new Uint8Array(1024);
  assert.equal(place(bzImage(code)), 'booted');
  assert.match(
    place(bzImage(code, { version: 0x0201 })),
    /^k\.img: Linux boot protocol 2\.01 is too old/,
  );
  assert.match(place(bzImage(code, { loadFlags: 0 })), /^k\.img: a zImage/);
  assert.match(place(bzImage(code, { xloadflags: 1 })), /^k\.img: a 64-bit \(x86-64\) kernel/);
  assert.match(
    place(bzImage(code, { code32Start: 0x90000 })),
    /code32_start 0x90000 lies below 1 MB/,
  );
  const at2 = placeLinux(m.ram, {
    kernel: bzImage(Uint8Array.of(0xf4), { code32Start: 0x200000 }),
    kernelName: 'k',
    cmdline: '',
    initrd: [],
  });
  assert.ok(!(at2 instanceof LoadError));
  assert.equal(at2.entry, 0x200000, 'loaded and entered where code32_start says');
  assert.equal(m.ram[0x200000], 0xf4);
  assert.match(place(bzImage(code).subarray(0, 0x400)), /^k\.img: (truncated|not a Linux)/);
  assert.match(place(new Uint8Array(4096)), /^k\.img: not a Linux kernel image/);
  assert.match(place(bzImage(code), { cmdline: 'x'.repeat(3000) }), /command line has 3000 bytes/);
  assert.match(
    place(bzImage(code, { initSize: 0x8000000 })),
    /^k\.img: the kernel needs 144 MB of memory to boot, the machine has 64 MB/,
  );
  const big = { name: 'big.cpio', bytes: new Uint8Array(50 << 20), string: 'big.cpio' };
  assert.match(place(bzImage(code), { initrd: [big] }), /^big\.cpio: the initrd .* does not fit/);
  assert.equal(BOOT_DS, 0x18);
});

/** `bytes` as `make bzImage` packs vmlinux.bin: lz4 -l, then the size, as the payload. */
function withPayload(elf: Uint8Array, o: { version?: number } = {}): Uint8Array {
  const frame = execFileSync('lz4', ['-l', '-9', '-c'], { input: elf, maxBuffer: 64 << 20 });
  const payload = new Uint8Array(frame.length + 4);
  payload.set(frame);
  new DataView(payload.buffer).setUint32(frame.length, elf.length, true);
  const image = bzImage(payload, o);
  const v = new DataView(image.buffer);
  v.setUint32(0x248, 0, true); // payload_offset, from the protected-mode code
  v.setUint32(0x24c, payload.length, true); // payload_length
  return image;
}

test('the kernel inside a bzImage: the LZ4 payload taken out, placed at its physical addresses, entered at its ELF entry', () => {
  const built = make('afterburned');
  assert.ok(built.ok, built.output);
  const elf = new Uint8Array(readFileSync(kernelPath('afterburned')));
  const image = withPayload(elf);
  const out = linuxPayload(image, 'bzImage');
  assert.ok(out instanceof Uint8Array, out instanceof LoadError ? out.message : '');
  assert.deepEqual(out, elf);
  const parsed = parseElf(out, 'bzImage');
  assert.ok(!(parsed instanceof LoadError));
  const m = machine(64);
  const start = placeVmlinux(m.ram, {
    kernel: out,
    kernelName: 'bzImage',
    cmdline: 'init=selftest',
    initrd: [],
    bzImage: image,
    image: parsed,
  });
  assert.ok(!(start instanceof LoadError), String(start));
  assert.equal(start.entry, parsed.entry);
  for (const s of parsed.segments) {
    assert.deepEqual(m.ram.subarray(s.paddr, s.paddr + s.data.length), s.data);
    assert.ok(m.ram.subarray(s.paddr + s.data.length, s.paddr + s.memsz).every((b) => b === 0));
  }
  const bp = new DataView(m.ram.buffer, start.bootParams, 0x1000);
  assert.equal(bp.getUint32(0x202, true), 0x53726448, 'the setup header copied');
  assert.equal(bp.getUint32(0x228, true), 0x20000, 'the command line');

  // What cannot be taken out: one line each.
  const fail = (bytes: Uint8Array): string => {
    const r = linuxPayload(bytes, 'k.img');
    assert.ok(r instanceof LoadError);
    return r.message;
  };
  assert.match(fail(withPayload(elf, { version: 0x0207 })), /boot protocol 2\.07 has no payload/);
  const gzip = withPayload(elf);
  gzip.set([0x1f, 0x8b, 0x08, 0x00], 5 * 512);
  assert.match(fail(gzip), /not LZ4-compressed \(magic 1f 8b 08 00\)/);
  const long = withPayload(elf);
  new DataView(long.buffer).setUint32(0x24c, long.length, true);
  assert.match(fail(long), /the payload \(\d+ bytes at 0xa00\) lies outside the file/);
  assert.match(fail(withPayload(elf).subarray(0, 5 * 512 + 1000)), /lies outside the file/);
  const cut = withPayload(elf);
  new DataView(cut.buffer).setUint32(0x24c, 1000, true);
  assert.match(fail(cut), /^k\.img: the payload: /);
});
