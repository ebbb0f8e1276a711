// The lab in a real browser: builds the site (src/web) into dist/lab, serves it with a small
// static server that sends a strict Content Security Policy on request, and drives Debian's
// chromium headless through playwright-core: the self-test boots on the raw PC and passes in
// the terminal, the afterburned build passes it on xen and on l4 (hypercalls or IPCs and VMM
// calls counted), the shell answers a typed command, a 64 KB netperf fills a row with its
// checksum verdict, and under a CSP that forbids `new Function`
// the page says it fell back to the interpreter and still boots. A screenshot goes to
// docs/lab.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { chromium, type Page } from 'playwright-core';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const site = join(repo, 'dist/lab');
const browserPath = '/usr/bin/chromium';
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.elf': 'application/octet-stream',
  '.png': 'image/png',
};
/** No eval, no inline script: what the lab must survive (compiled blocks then are off). */
const STRICT_CSP =
  "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self' 'unsafe-inline'";

function serve(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = normalize(join(site, url.pathname === '/' ? 'index.html' : url.pathname));
    if (!path.startsWith(site) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    const headers: Record<string, string> = {
      'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
    };
    // Every response of a ?csp page's origin carries it (a worker takes its script's CSP).
    if ((req.headers.referer ?? req.url ?? '').includes('csp') || url.search.includes('csp')) {
      headers['content-security-policy'] = STRICT_CSP;
    }
    res.writeHead(200, headers).end(readFileSync(path));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({ server, url: `http://127.0.0.1:${port}/` });
    }),
  );
}

/** The terminal's rows as text (evaluated in the page, which has the DOM this file does not). */
async function terminalText(page: Page): Promise<string> {
  return page.evaluate<string>(
    "Array.from(document.querySelectorAll('#terminal .xterm-rows > div'))" +
      ".map((d) => d.textContent).join('\\n')",
  );
}

async function waitForTerminal(page: Page, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await terminalText(page)).includes(text)) return;
    await page.waitForTimeout(100);
  }
  assert.fail(
    `terminal never showed ${JSON.stringify(text)}; it shows:\n${await terminalText(page)}`,
  );
}

async function bootWith(page: Page, kernel: string, platform: string, cmdline: string) {
  await page.selectOption('#kernel', kernel);
  await page.selectOption('#platform', platform);
  await page.fill('#cmdline', cmdline);
  await page.click('#boot');
}

const skip =
  !existsSync(browserPath) && process.env.CI === undefined
    ? `${browserPath} is missing (scripts/setup.sh installs chromium)`
    : false;

test(
  'the lab in chromium: self-test raw, xen, l4, shell, netperf, strict CSP',
  { skip, timeout: 90_000 },
  async () => {
    assert.ok(
      existsSync(join(repo, 'guest/build/native/kernel.elf')),
      'the guest builds are missing: make -C guest',
    );
    await build({
      configFile: join(repo, 'src/web/vite.config.ts'),
      logLevel: 'warn',
    });
    const { server, url } = await serve();
    const browser = await chromium.launch({ executablePath: browserPath, headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url);

      await bootWith(page, 'native', 'none', 'init=selftest');
      await waitForTerminal(page, 'selftest: PASS', 20_000);
      await page.waitForSelector('#status[data-state="idle"]', { timeout: 10_000 });
      assert.match(
        (await page.textContent('#status')) ?? '',
        /ended: guest wrote 0 to isa-debug-exit/,
      );
      assert.equal(await page.textContent('#mode'), 'compiled blocks');
      assert.notEqual(await page.textContent('#counters'), '');

      // The afterburned build on both hypervisors, through the in-place VMM.
      for (const platform of ['xen', 'l4']) {
        await bootWith(page, 'afterburned', platform, 'init=selftest');
        await waitForTerminal(page, 'selftest: PASS', 30_000);
        await page.waitForSelector('#status[data-state="idle"]', { timeout: 10_000 });
        const counters = (await page.textContent('#counters')) ?? '';
        assert.match(counters, /hypercalls \/ IPCs[1-9]/, `${platform}: ${counters}`);
        assert.match(counters, /VMM calls[1-9]/, `${platform}: ${counters}`);
      }

      await bootWith(page, 'native', 'none', 'init=sh');
      await waitForTerminal(page, '$ ', 20_000);
      await page.click('#terminal');
      await page.keyboard.type('hello\r');
      await waitForTerminal(page, 'hello from pid', 20_000);
      await page.click('#pause');
      await page.waitForSelector('#status[data-state="paused"]', { timeout: 5_000 });
      await page.click('#resume');
      await page.waitForSelector('#status[data-state="running"]', { timeout: 5_000 });

      // A small netperf: the native row at 64 KB, its table row with the checksum verdict.
      await page.selectOption('#npBytes', '65536');
      await page.uncheck('#npRows input[value="xen-pre"]');
      await page.check('#npRows input[value="native"]');
      await page.click('#npRun');
      await page.waitForSelector('#npStatus:has-text("done: 1 row(s)")', { timeout: 30_000 });
      const row = (await page.textContent('#npTable tbody tr')) ?? '';
      assert.match(row, /^native, raw/);
      assert.match(row, /9\.64/, row);
      assert.match(row, /crc32 [0-9a-f]{8} ok/, row);
      mkdirSync(join(repo, 'docs'), { recursive: true });
      await page.screenshot({ path: join(repo, 'docs/lab.png'), fullPage: true });

      const strict = await browser.newPage();
      await strict.goto(`${url}?csp`);
      await bootWith(strict, 'native', 'none', 'init=selftest');
      await waitForTerminal(strict, 'selftest: PASS', 40_000);
      assert.match((await strict.textContent('#mode')) ?? '', /^interpreter: /);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      server.close();
    }
  },
);
