import type { Command } from '../command.ts';

/** Every subcommand, in the order `previrt --help` lists them. Add one line per command. */
export const commands: Command[] = [];
