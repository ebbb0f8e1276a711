/** The `previrt` command: dispatches subcommands. Returns the process exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    console.log('usage: previrt <command> [options]\n\ncommands: (none yet)');
    return 0;
  }
  console.error(`previrt: unknown command '${command}' (try previrt --help)`);
  return 2;
}
