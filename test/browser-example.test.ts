// examples/browser in headless Chromium: its own server (examples/browser/serve.mjs) with the fixture model,
// the page starts its Web Worker, and generated text streams into the page. Checks the page was cross-origin
// isolated (the server's headers work), that text arrived in several pieces, and that it is the greedy
// continuation the fixture case expects. Skipped without Chromium unless GPT2WASM_REQUIRE_RUNTIMES=1.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromiumTest } from './helpers/browser.ts';
import { fixturesDir, modelDir } from './helpers/fixtures.js';
import { GPT2Tokenizer } from '../src/tokenizer/index.js';
// @ts-expect-error: a plain .mjs script without declarations
import { startExampleServer } from '../examples/browser/serve.mjs';

const TIMEOUT_MS = 90_000;

chromiumTest('examples/browser: tokens stream into the page from the worker', async ({ page, log }) => {
  const greedy = JSON.parse(readFileSync(join(fixturesDir, 'cases', 'lm_greedy.json'), 'utf8'));
  const tok = await GPT2Tokenizer.from_pretrained(modelDir('gpt2-tiny'));
  const prompt = tok.decode(greedy.input_ids);
  assert.equal(tok.encode(prompt), greedy.input_ids, 'the prompt text encodes back to the case ids');
  const expected = tok.decode(greedy.expected_ids.slice(greedy.input_ids.length));

  const server = await startExampleServer({ port: 0, model: modelDir('gpt2-tiny') });
  try {
    await page.goto(`${server.url}/?threads=2`);
    await page.waitForSelector('#run:not([disabled])', { timeout: TIMEOUT_MS });
    await page.fill('#prompt', prompt);
    await page.fill('#max', String(greedy.max_new_tokens));
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('status')!.dataset.done === '1' || !!document.getElementById('status')!.dataset.error, null, { timeout: TIMEOUT_MS });
    const state = await page.evaluate(() => ({
      status: document.getElementById('status')!.textContent,
      error: document.getElementById('status')!.dataset.error ?? null,
      output: document.getElementById('output')!.textContent,
      pieces: Number(document.getElementById('output')!.dataset.pieces ?? 0),
      isolated: (globalThis as any).crossOriginIsolated,
    }));
    assert.is(state.error, null, `${state.error}\n${log.join('\n')}`);
    assert.is(state.isolated, true, 'serve.mjs makes the page cross-origin isolated');
    assert.ok(state.pieces > 1, `text arrived in ${state.pieces} piece(s): streamed, not at the end`);
    assert.is(state.output, prompt + expected);
    assert.match(state.status ?? '', /^done: \d+ tokens/);
    assert.ok(server.requests.some((p: string) => p === '/model/model.safetensors'), 'weights read from the example server');
  } finally {
    await server.close();
  }
});

test.run();
