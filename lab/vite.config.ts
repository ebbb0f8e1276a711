import { defineConfig } from 'vite';

// The lab: a static site in dist/lab/ (relative URLs, so any static file server or folder works).
export default defineConfig({
  root: 'lab',
  base: './',
  build: { outDir: '../dist/lab', emptyOutDir: true },
  worker: { format: 'es' },
  server: { fs: { allow: ['..'] } },
});
