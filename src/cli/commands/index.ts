import type { Command } from '../command.ts';
import { afterburnCommand } from './afterburn.ts';
import { verifyAnnotationsCommand } from './verifyAnnotations.ts';

/** Every subcommand, in the order `previrt --help` lists them. Add one line per command. */
export const commands: Command[] = [afterburnCommand, verifyAnnotationsCommand];
