// gcc's options for compiling a freestanding 32-bit object through the afterburner's `as`
// wrapper with the annotation header on the include path (gcc.test.ts, server.test.ts).
import { includeDir, wrapperDir } from '../../src/afterburner/files.ts';

export const WRAPPER_CFLAGS: readonly string[] = [
  '-m32',
  '-O2',
  '-ffreestanding',
  '-fno-pie',
  `-I${includeDir()}`,
  `-B${wrapperDir()}`,
];
