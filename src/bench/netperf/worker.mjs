// The entry of a netperf worker thread (parallel.ts): the worker's own TypeScript loader, then
// the worker itself (a worker thread does not inherit the main thread's loader).
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
