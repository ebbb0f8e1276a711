// The lab in a real browser: builds the static site, serves dist/lab/ with a small static
// server, and drives Debian's chromium headless with playwright-core (no browser download).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = join(import.meta.dirname, '..', '..');
const SITE = join(ROOT, 'dist', 'lab');
const CHROMIUM = '/usr/bin/chromium';
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.elf': 'application/octet-stream',
};

const missing = !existsSync(CHROMIUM) && process.env.CI === undefined;
if (missing) console.log(`lab test skipped: ${CHROMIUM} is missing (scripts/setup.sh installs it)`);

test(
  'the lab boots the self-test raw in chromium',
  { skip: missing, timeout: 60_000 },
  async () => {
    execFileSync(
      'npx',
      ['vite', 'build', '--config', 'lab/vite.config.ts', '--logLevel', 'error'],
      {
        cwd: ROOT,
        stdio: 'inherit',
      },
    );
    const server = createServer((req, res) => {
      const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]));
      const file = join(SITE, path === '/' ? 'index.html' : path);
      if (!file.startsWith(SITE) || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${address.port}/`);
      await page.selectOption('#kernel', 'native');
      await page.selectOption('#platform', 'none');
      await page.fill('#cmdline', 'init=selftest');
      await page.click('#boot');
      await page.locator('#terminal', { hasText: 'selftest: PASS' }).waitFor({ timeout: 45_000 });
      await page.screenshot({ path: join(ROOT, 'docs', 'lab.png'), fullPage: true });
    } finally {
      await browser.close();
      server.close();
    }
  },
);
