// The one way the tests run a page in headless Chromium: `chromiumTest` launches a fresh browser
// (test/runtimes/browser-server.ts), opens its page with console messages and page errors collected for failure
// messages, and closes it afterwards. Without Chromium the test is skipped, or fails when GPT2WASM_REQUIRE_RUNTIMES
// is set (CI), as the other runtime checks. Pages report with `__gpt2wasmDone(JSON.stringify(result))`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../runtimes/browser-server.ts';
import { requireRuntimes } from './fixtures.js';

const REPORT_TIMEOUT_MS = 90_000;

export interface ChromiumPage {
  page: Page;
  /** The page's console messages and errors, in order (for failure messages). */
  log: string[];
  /**
   * Runs `go` (a navigation or a reload) and waits for the report the page hands to `__gpt2wasmDone`, parsed.
   * A report `{ error }`, or none before the page gives up, fails the test with the page's log.
   */
  report(go: () => Promise<unknown>): Promise<any>;
}

/** A uvu test that runs `body` on a fresh headless Chromium page. */
export function chromiumTest(name: string, body: (p: ChromiumPage) => Promise<void>): void {
  const missing = chromiumMissing();
  if (missing && !requireRuntimes) {
    test.skip(`${name} (${missing})`, () => {});
    return;
  }
  test(name, async () => {
    if (missing) assert.unreachable(`${missing} (GPT2WASM_REQUIRE_RUNTIMES is set)`);
    const browser = await launchChromium();
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      const log: string[] = [];
      page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
      let finish: ((s: string) => void) | null = null;
      await page.exposeFunction('__gpt2wasmDone', (s: string) => finish?.(s));
      const report = async (go: () => Promise<unknown>): Promise<any> => {
        const result = new Promise<string>((r) => { finish = r; });
        let timer: ReturnType<typeof setTimeout> | undefined;
        // not an assertion on speed: a page that never reports would otherwise hang the run
        const gaveUp = new Promise<string>((r) => { timer = setTimeout(() => r(JSON.stringify({ error: `no report within ${REPORT_TIMEOUT_MS} ms` })), REPORT_TIMEOUT_MS); });
        try {
          await go();
          const out = JSON.parse(await Promise.race([result, gaveUp]));
          if (out?.error) assert.unreachable(`${out.error}\n${log.join('\n')}`);
          return out;
        } finally {
          clearTimeout(timer);
        }
      };
      await body({ page, log, report });
    } finally {
      await browser.close();
    }
  });
}
