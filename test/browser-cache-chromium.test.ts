// The browser cache end to end in headless Chromium (the Cache API, the browser bundle): load gpt2-tiny from a
// local HTTP server, reload the page, and check on the server that the second load sent no request for any
// model file, and that the output is bit-identical. Then clear the cache and load with browser_cache: false:
// the weights are requested again and nothing is cached. Skipped without Chromium unless
// GPT2WASM_REQUIRE_RUNTIMES=1 (CI), as the runtime checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromiumMissing, launchChromium, serveRepo } from './runtimes/browser-server.ts';
import { requireRuntimes } from './helpers/fixtures.js';

const STEP_TIMEOUT_MS = 90_000;
const MODEL = '/fixtures/models/gpt2-tiny/';

const missing = chromiumMissing();
if (missing && !requireRuntimes) {
  test.skip(`browser cache in chromium (${missing})`, () => {});
} else {
  test('browser cache in chromium: the reload reads no model file from the server, same output', async () => {
    if (missing) assert.unreachable(missing);
    const server = await serveRepo(true, '/test/runtimes/browser-cache-page.ts');
    const browser = await launchChromium();
    const log: string[] = [];
    try {
      const page = browser.context.pages()[0] ?? await browser.context.newPage();
      page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
      let finish: ((s: string) => void) | null = null;
      await page.exposeFunction('__gpt2wasmDone', (s: string) => finish?.(s));
      /** Navigate (or reload) and wait for the page's report. */
      const step = async (go: () => Promise<unknown>): Promise<any> => {
        const result = new Promise<string>((r) => { finish = r; });
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<string>((r) => { timer = setTimeout(() => r(JSON.stringify({ error: `no result within ${STEP_TIMEOUT_MS} ms` })), STEP_TIMEOUT_MS); });
        await go();
        const out = JSON.parse(await Promise.race([result, timeout]));
        clearTimeout(timer);
        if (out.error) assert.unreachable(`${out.error}\n${log.join('\n')}`);
        return out;
      };
      const modelRequests = (from: number) => server.requests.slice(from).filter((r) => r.path.startsWith(MODEL));

      const first = await step(() => page.goto(`${server.url}/?step=load`));
      const got1 = modelRequests(0);
      assert.ok(got1.some((r) => r.path.endsWith('model.safetensors')), 'the first load read the weights from the server');
      assert.equal(first.ids, first.expected_ids, 'greedy ids match the fixture');

      const mark = server.requests.length;
      const second = await step(() => page.reload());
      const got2 = modelRequests(mark);
      assert.equal(got2.map((r) => `${r.method} ${r.path}`), [], 'the reload sent no request for a model file');
      assert.equal(second.ids, first.ids);
      assert.is(second.logitsHash, first.logitsHash, 'logits bit-identical');
      assert.is(second.text, first.text);

      // what is cached: every file the model and tokenizer read, complete
      const cached = new Map<string, any>(second.cached.map((f: any) => [new URL(f.url).pathname, f]));
      for (const name of ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors']) {
        assert.ok(cached.get(MODEL + name)?.complete, `${name} cached completely: ${JSON.stringify(second.cached)}`);
      }
      // progress: the weights were downloaded the first time (initiate → download → progress… → done) but not the second
      const weightEvents = (r: any) => r.events.filter((e: any) => e.file === 'model.safetensors').map((e: any) => e.status);
      const w1 = weightEvents(first);
      assert.equal([w1[0], w1[1], w1[w1.length - 1]], ['initiate', 'download', 'done']);
      assert.ok(w1.filter((s: string) => s === 'progress').length > 0);
      assert.ok(!second.events.some((e: any) => e.status === 'download'), 'no download on the reload');
      assert.is(second.events[second.events.length - 1].status, 'ready');
      const loads = first.events.filter((e: any) => e.status === 'progress' && e.file === 'model.safetensors');
      assert.is(loads[loads.length - 1].loaded, loads[loads.length - 1].total);

      // cleared, and with browser_cache: false, the weights come from the server again and nothing is stored
      const mark2 = server.requests.length;
      const third = await step(() => page.goto(`${server.url}/?step=clear`));
      assert.ok(third.cleared > 0);
      assert.ok(modelRequests(mark2).some((r) => r.path.endsWith('model.safetensors')), 'weights requested after clearing');
      assert.equal(third.cached, [], 'browser_cache: false stores nothing');
      assert.equal(third.ids, first.ids);
      assert.is(third.logitsHash, first.logitsHash);
      console.log(`# browser cache: first load ${got1.length} model requests, reload ${got2.length}`);
    } finally {
      await browser.close();
      await server.close();
    }
  });
}

test.run();
