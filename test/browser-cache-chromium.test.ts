// The browser cache end to end in headless Chromium (the Cache API, the browser bundle): load gpt2-tiny from a
// local HTTP server, reload the page, and check on the server that the second load sent no request for any
// model file, and that the output is bit-identical. Then clear the cache and load with browser_cache: false:
// the weights are requested again and nothing is cached. Run twice: with the default store (the Cache API) and
// with browser_cache: 'opfs' (the Origin Private File System); each run checks, with the browser's own APIs, that
// the entries went to its store and not the other, and that clearCachedFiles() emptied both. Skipped without
// Chromium unless GPT2WASM_REQUIRE_RUNTIMES=1 (CI), as the runtime checks.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serveRepo } from './runtimes/browser-server.ts';
import { chromiumTest } from './helpers/browser.ts';
import { modelDir } from './helpers/fixtures.js';

const MODEL = '/fixtures/models/gpt2-tiny/';

const weightBytes = statSync(join(modelDir('gpt2-tiny'), 'model.safetensors')).size;

for (const store of ['cache-api', 'opfs'] as const) chromiumTest(`browser cache (${store}) in chromium: the reload reads no model file from the server, same output`, async ({ page, report }) => {
  const query = store === 'opfs' ? '&cache=opfs' : '';
  const server = await serveRepo(true, '/test/runtimes/browser-cache-page.ts');
  try {
    const modelRequests = (from: number) => server.requests.slice(from).filter((r) => r.path.startsWith(MODEL));

    const first = await report(() => page.goto(`${server.url}/?step=load${query}`));
    const got1 = modelRequests(0);
    assert.ok(got1.some((r) => r.path.endsWith('model.safetensors')), 'the first load read the weights from the server');
    assert.equal(first.ids, first.expected_ids, 'greedy ids match the fixture');

    const mark = server.requests.length;
    const second = await report(() => page.reload());
    const got2 = modelRequests(mark);
    assert.equal(got2.map((r) => `${r.method} ${r.path}`), [], 'the reload sent no request for a model file');
    assert.equal(second.ids, first.ids);
    assert.is(second.logitsHash, first.logitsHash, 'logits bit-identical');
    assert.is(second.text, first.text);

    // local_files_only: the cached model loads with no request; one never cached is a DownloadError, not requested
    const mark1 = server.requests.length;
    const offline = await report(() => page.goto(`${server.url}/?step=load${query}&offline=1`));
    assert.equal(server.requests.slice(mark1).filter((r) => r.path.startsWith('/fixtures/models/')).map((r) => `${r.method} ${r.path}`), [], 'local_files_only sent no request for a model file');
    assert.equal(offline.ids, first.ids);
    assert.match(offline.uncached, /^DownloadError DOWNLOAD: .*gpt2-trained\/config\.json is not cached here and local_files_only is set/);

    // what is cached: every file the model and tokenizer read, complete
    const cached = new Map<string, any>(second.cached.map((f: any) => [new URL(f.url).pathname, f]));
    for (const name of ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors']) {
      assert.ok(cached.get(MODEL + name)?.complete, `${name} cached completely: ${JSON.stringify(second.cached)}`);
    }
    // in the store asked for, not in the other
    if (store === 'opfs') {
      assert.equal([second.stored.cacheApi, second.stored.opfs > 0], [0, true], `entries in OPFS only: ${JSON.stringify(second.stored)}`);
      assert.ok(second.stored.opfsBytes >= weightBytes, `the weights (${weightBytes} bytes) are in OPFS: ${JSON.stringify(second.stored)}`);
    } else {
      assert.equal([second.stored.cacheApi > 0, second.stored.opfs], [true, 0], `entries in the Cache API only: ${JSON.stringify(second.stored)}`);
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
    const third = await report(() => page.goto(`${server.url}/?step=clear`));
    assert.ok(third.cleared > 0);
    assert.ok(modelRequests(mark2).some((r) => r.path.endsWith('model.safetensors')), 'weights requested after clearing');
    assert.equal(third.cached, [], 'browser_cache: false stores nothing');
    assert.equal(third.stored, { cacheApi: 0, opfs: 0, opfsBytes: 0 }, 'clearCachedFiles() emptied both stores');
    assert.equal(third.ids, first.ids);
    assert.is(third.logitsHash, first.logitsHash);
    console.log(`# browser cache (${store}): first load ${got1.length} model requests, reload ${got2.length}`);
  } finally {
    await server.close();
  }
});

test.run();
