import type { Command } from '../command.ts';
import { afterburnCommand } from './afterburn.ts';
import { verifyAnnotationsCommand } from './verifyAnnotations.ts';
import { run } from './run.ts';
import { demo } from './demo.ts';
import { bench } from './bench.ts';
import { monitor } from './monitor.ts';

/** Every subcommand, in the order `previrt --help` lists them. Add one line per command. */
export const commands: Command[] = [
  demo,
  run,
  bench,
  afterburnCommand,
  verifyAnnotationsCommand,
  monitor,
];
