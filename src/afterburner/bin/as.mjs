// Starts the `as` wrapper (src/afterburner/wrapper.ts), bundled (bundle.mjs says why).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEntry } from './bundle.mjs';

const launcher = fileURLToPath(import.meta.url);
const { module } = await loadEntry('wrapper', launcher);
process.exitCode = module.runAs(process.argv.slice(2), join(dirname(launcher), 'as'));
