// Starts the afterburner server (src/afterburner/server.ts), bundled (bundle.mjs says why).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEntry } from './bundle.mjs';

const launcher = fileURLToPath(import.meta.url);
const { module, url, execArgv } = await loadEntry('server', launcher);
const options = module.parseServeArgs(process.argv.slice(2));
if ('error' in options) {
  console.error(options.error);
  process.exitCode = 2;
} else {
  await module.serve({ ...options, self: join(dirname(launcher), 'as'), script: url, execArgv });
}
