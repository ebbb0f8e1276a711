// The lab's Vite configuration: `npm run lab` serves src/web, `npm run lab:build` writes a
// static site to dist/lab (relative asset paths, so any static file server or folder works).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: './',
  // The guest kernels (ELF files): always assets, never inlined.
  assetsInclude: ['**/guest/build/**/kernel.elf'],
  build: {
    outDir: fileURLToPath(new URL('../../dist/lab', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    target: 'es2022',
  },
  worker: { format: 'es' },
  // The netperf run's one Node import, used only for pcap files the lab never writes (noFs.ts).
  resolve: { alias: { 'node:fs': fileURLToPath(new URL('./noFs.ts', import.meta.url)) } },
  server: { fs: { allow: [fileURLToPath(new URL('../..', import.meta.url))] } },
});
