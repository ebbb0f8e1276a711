/** One `previrt` subcommand. Each lives in its own file under src/cli/commands/. */
export interface Command {
  /** The word after `previrt`. */
  name: string;
  /** One line for `previrt --help`. */
  summary: string;
  /** Full usage text for `previrt NAME --help`. */
  usage: string;
  /** Runs the command; returns the process exit status. Bad input: one line on stderr, non-zero. */
  run(argv: string[]): Promise<number>;
}
