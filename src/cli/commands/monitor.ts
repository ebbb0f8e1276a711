import type { Command } from '../command.ts';
import { EXIT_STATUS } from '../../machine/Machine.ts';
import { monitorCommand } from '../migrateNet.ts';

const usage = `usage: previrt monitor [unix:]PATH COMMAND...

Sends one command line to the monitor of a 'previrt run --monitor unix:PATH' and prints its
answer: info status, stop, cont [CYCLE], migrate [-p] tcp:HOST:PORT, quit.

exit status: 0 the command was done, 1 it answered with an error, 2 no monitor there.`;

export const monitor: Command = {
  name: 'monitor',
  summary: "send one command to a running guest's monitor (previrt run --monitor)",
  usage,
  async run(argv) {
    if (argv.length < 2) {
      console.error('previrt monitor: needs PATH and COMMAND');
      return EXIT_STATUS.usage;
    }
    const r = await monitorCommand(argv[0], argv.slice(1).join(' '));
    if (r === undefined) return 0;
    if (r === '') return 1;
    console.error(`previrt monitor: ${r}`);
    return EXIT_STATUS.usage;
  },
};
