// The persistent cache layer in front of urlSource (src/io/browser-cache.ts), on Node with an in-memory store:
// a second load reads nothing from the server and gives the same bytes and the same model output; progress
// events; listing and clearing; an ETag change is refused, not mixed. The Cache API itself runs in Chromium
// (test/browser-cache-chromium.test.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cachedSource, clearCachedFiles, listCachedFiles, memoryCacheStore } from '../src/io/browser-cache.js';
import { urlSource, type ProgressInfo } from '../src/io/source.js';
import { DownloadError, OptionError } from '../src/errors.js';
import { GPT2LMHeadModel } from '../src/model/gpt2.js';
import { sendBytes, startServer } from './helpers/http-server.ts';
import { fixturesDir, kernelOpts } from './helpers/fixtures.js';

const modelDir = join(fixturesDir, 'models', 'gpt2-tiny');
const file = (name: string) => new Uint8Array(readFileSync(join(modelDir, name)));

/** A server for gpt2-tiny whose weights ETag can be changed; counts requests per path. */
async function modelServer() {
  const state = { etag: '"v1"' };
  const server = await startServer((req, res, path) => {
    const name = path.replace(/^\/m\//, '');
    if (!['config.json', 'model.safetensors', 'vocab.json', 'merges.txt'].includes(name)) {
      res.writeHead(404);
      res.end();
      return;
    }
    sendBytes(req, res, file(name), { etag: name === 'model.safetensors' ? state.etag : '"c"' });
  });
  return { server, state, base: `${server.url}/m/` };
}

test('cache: second read of a whole file and of ranges comes from the store, byte for byte', async () => {
  const { server, base } = await modelServer();
  try {
    const store = memoryCacheStore();
    const read = async () => {
      const src = urlSource(base, { cache: store, cacheChunkBytes: 1 << 20 });
      const cfg = await src.readBytes('config.json');
      const w = await src.open('model.safetensors');
      const size = await w.size();
      // reads that start and end inside chunks and cross chunk boundaries
      const parts = [await w.read(0, 8), await w.read((1 << 20) - 5, 10), await w.read(size - 3000000, 3000000)];
      await w.close?.();
      return { cfg, parts, size, absent: await src.exists('generation_config.json') };
    };
    const first = await read();
    const n1 = server.requests.length;
    assert.ok(n1 > 0);
    const second = await read();
    assert.is(server.requests.length, n1, `second load sent ${server.requests.length - n1} requests: ${JSON.stringify(server.requests.slice(n1).map((r) => r.path))}`);
    const w = file('model.safetensors');
    assert.is(first.size, w.byteLength);
    assert.equal(second.parts, first.parts);
    assert.equal(second.parts[1], w.subarray((1 << 20) - 5, (1 << 20) + 5));
    assert.equal(second.parts[2], w.subarray(w.byteLength - 3000000));
    assert.equal(second.cfg, file('config.json'));
    assert.is(second.absent, false);
  } finally {
    await server.close();
  }
});

test('cache: a model loads the second time without a request and computes the same logits', async () => {
  const { server, base } = await modelServer();
  try {
    const store = memoryCacheStore();
    const load = async () => {
      const events: ProgressInfo[] = [];
      const m = await GPT2LMHeadModel.from_pretrained(urlSource(base, { cache: store, progress_callback: (p) => events.push(p) }), { threads: 1, ...kernelOpts() });
      try {
        const out = await m.forward({ input_ids: [[464, 2068, 7586, 21831]] });
        return { logits: Array.from(out.logits.data as Float32Array), events };
      } finally {
        await m.dispose();
      }
    };
    const a = await load();
    const n1 = server.requests.length;
    const b = await load();
    assert.is(server.requests.length, n1, 'no request on the second load');
    assert.equal(b.logits, a.logits);
    // progress: initiate → download → progress… → done for the weights on the first load; no download the second time
    const w1 = a.events.filter((e) => e.file === 'model.safetensors').map((e) => e.status);
    assert.is(w1[0], 'initiate');
    assert.is(w1[1], 'download');
    assert.is(w1[w1.length - 1], 'done');
    const prog = a.events.filter((e) => e.file === 'model.safetensors' && e.status === 'progress');
    assert.ok(prog.length > 1);
    for (let i = 1; i < prog.length; i++) assert.ok(prog[i].loaded! >= prog[i - 1].loaded!, 'loaded never goes back');
    assert.is(prog[prog.length - 1].total, file('model.safetensors').byteLength);
    assert.ok(!b.events.some((e) => e.status === 'download'), 'second load downloads nothing');
    assert.ok(b.events.some((e) => e.file === 'model.safetensors' && e.status === 'done'));
  } finally {
    await server.close();
  }
});

test('no cache, with progress: the same logits, every byte counted once, and the URL reads keep their read-ahead', async () => {
  const { server, base } = await modelServer();
  try {
    const events: ProgressInfo[] = [];
    const src = urlSource(base, { cache: false, progress_callback: (p) => events.push(p) });
    const f = await src.open('model.safetensors');
    assert.type(f.readInto, 'function', 'readInto passes through the progress wrapper');
    await f.close?.();
    events.length = 0;
    const m = await GPT2LMHeadModel.from_pretrained(src, { threads: 1, ...kernelOpts() });
    const local = await GPT2LMHeadModel.from_pretrained(modelDir, { threads: 1, ...kernelOpts() });
    try {
      const ids = { input_ids: [[464, 2068, 7586, 21831]] };
      assert.equal(Array.from((await m.forward(ids)).logits.data as Float32Array), Array.from((await local.forward(ids)).logits.data as Float32Array));
    } finally {
      await m.dispose();
      await local.dispose();
    }
    const w = events.filter((e) => e.file === 'model.safetensors').map((e) => e.status);
    assert.equal([w[0], w[1], w[w.length - 1]], ['initiate', 'download', 'done']);
    const prog = events.filter((e) => e.file === 'model.safetensors' && e.status === 'progress');
    for (let i = 1; i < prog.length; i++) assert.ok(prog[i].loaded! > prog[i - 1].loaded!, 'loaded only grows');
    assert.ok(prog[prog.length - 1].loaded! <= file('model.safetensors').byteLength, 'no byte counted twice');
    // 4 MiB chunks in order: about one request per chunk, not one per tensor piece
    const gets = server.requests.filter((r) => r.path.endsWith('model.safetensors') && r.method === 'GET');
    assert.ok(gets.length <= 2 * Math.ceil(file('model.safetensors').byteLength / (4 << 20)), `${gets.length} weight requests`);
  } finally {
    await server.close();
  }
});

test('cache: listCachedFiles / clearCachedFiles', async () => {
  const { server, base } = await modelServer();
  try {
    const store = memoryCacheStore();
    const src = urlSource(base, { cache: store, cacheChunkBytes: 1 << 20 }); // 13 chunks: more than the read-ahead window
    await src.readBytes('config.json');
    assert.is(await src.exists('generation_config.json'), false);
    const w = await src.open('model.safetensors');
    await w.read(0, 100);
    await w.close?.();
    const all = await listCachedFiles(store);
    const absent = all.filter((f) => f.absent);
    assert.equal(absent.map((f) => [f.url, f.size, f.cachedBytes, f.complete]), [[`${base}generation_config.json`, null, 0, false]]);
    const list = all.filter((f) => !f.absent);
    assert.equal(list.map((f) => f.url), [`${base}config.json`, `${base}model.safetensors`]);
    assert.is(list[0].complete, true);
    assert.is(list[1].size, file('model.safetensors').byteLength);
    assert.is(list[1].etag, '"v1"');
    assert.is(list[1].complete, false, 'only the first chunks were read (the read-ahead window)');
    assert.is(await clearCachedFiles(`${base}config`, store), 1);
    assert.is(await clearCachedFiles(`${base}generation_config`, store), 1);
    assert.equal((await listCachedFiles(store)).map((f) => f.url), [`${base}model.safetensors`]);
    assert.ok((await clearCachedFiles(undefined, store)) >= 2);
    assert.equal(await listCachedFiles(store), []);
  } finally {
    await server.close();
  }
});

test('cache: a file whose ETag changed on the server is not mixed with its cached chunks', async () => {
  const { server, state, base } = await modelServer();
  try {
    const store = memoryCacheStore();
    const src = urlSource(base, { cache: store, cacheChunkBytes: 1 << 20 });
    const w = await src.open('model.safetensors');
    await w.read(0, 10);
    await w.close?.();
    state.etag = '"v2"';
    const again = await src.open('model.safetensors');
    await again.read(0, 10); // cached chunk 0: no request
    const err = await again.read(5 << 20, 10).catch((e) => e);
    assert.instance(err, DownloadError);
    assert.match(err.message, /changed on the server/);
    assert.equal(await listCachedFiles(store), [], 'the stale entries were dropped');
  } finally {
    await server.close();
  }
});

test('cache: cache false reads through; a store write that fails leaves the read working', async () => {
  const { server, base } = await modelServer();
  try {
    const src = urlSource(base, { cache: false });
    await src.readBytes('config.json');
    await src.readBytes('config.json');
    assert.is(server.requests.filter((r) => r.path === '/m/config.json').length, 2);
    const full = memoryCacheStore();
    full.put = async () => { throw new Error('QuotaExceededError'); };
    const c = cachedSource(urlSource(`${base}`, { cache: false }), full);
    assert.equal(await c.readBytes('config.json'), file('config.json'));
  } finally {
    await server.close();
  }
});

test("browser_cache: 'opfs' is the browser's (none in Node: the model loads uncached); another value is an OptionError", async () => {
  const { server, base } = await modelServer();
  try {
    const m = await GPT2LMHeadModel.from_pretrained(base, { threads: 1, browser_cache: 'opfs', ...kernelOpts() });
    await m.dispose();
    assert.ok(server.requests.some((r) => r.path === '/m/model.safetensors'));
    assert.throws(() => urlSource(base, { cache: 'opfs' }), (e: unknown) => e instanceof DownloadError && /Origin Private File System/.test((e as Error).message), 'asked for directly, a missing OPFS is an error');
    for (const bad of ['idb', 1, null]) {
      try {
        await GPT2LMHeadModel.from_pretrained(base, { threads: 1, browser_cache: bad as any });
        assert.unreachable(`browser_cache ${JSON.stringify(bad)} accepted`);
      } catch (e) {
        assert.instance(e, OptionError);
        assert.match((e as Error).message, /browser_cache/);
      }
    }
  } finally {
    await server.close();
  }
});

test.run();
