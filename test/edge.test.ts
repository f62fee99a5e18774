// src/edge/handler.ts on Node: routes, validation, lazy single load, and the modelUrl path (Range reads from a
// local HTTP server). The same handler under Deno.serve is checked by test/runtimes/edge-deno.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createFetchHandler, topK } from '../src/edge/handler.js';
import { dirSource, type ModelSource } from '../src/io/source.js';
import { save_gguf } from '../src/model/save-gguf.js';
import { sendBytes, startServer } from './helpers/http-server.js';
import { compareClose, modelDir, readCase, readReference, testKernels as kernels } from './helpers/fixtures.js';

const fwd = readCase('lm_forward');
const greedy = readCase('lm_greedy');
const ref = readReference(fwd.expected);
const V = ref.logits.shape[1];
const lastRow = ref.logits.data.subarray((fwd.input_ids.length - 1) * V, fwd.input_ids.length * V);

const post = (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  new Request(`http://edge.test${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** dirSource that counts config.json reads (one per model load) and can fail the first N loads. */
function countingSource(failFirst = 0): ModelSource & { loads: number } {
  const inner = dirSource(modelDir('gpt2-tiny'));
  const s: any = Object.create(inner);
  s.loads = 0;
  s.readJson = async (file: string) => {
    if (file === 'config.json' && s.loads++ < failFirst) throw new Error('simulated outage');
    return inner.readJson(file);
  };
  return s;
}

test('topK: largest first, ties keep the lower id, k larger than n', () => {
  assert.equal(topK([1, 5, 3, 5, -1], 0, 5, 3).map((t) => t.token_id), [1, 3, 2]);
  assert.equal(topK([2, 1], 0, 2, 5).map((t) => t.token_id), [0, 1]);
  assert.equal(topK([9, 9, 0, 7], 2, 2, 1), [{ token_id: 1, logit: 7 }]);
});

test('POST /v1/forward: last-token top-k matches the lm_forward reference; model loads once', async () => {
  const source = countingSource();
  const h = createFetchHandler({ source, kernels, modelName: 'gpt2-tiny' });
  try {
    let res = await h.fetch(new Request('http://edge.test/'));
    assert.is(res.status, 200);
    assert.is((await res.json()).loaded, false, 'lazy: nothing loaded before the first model request');
    const [a, b] = await Promise.all([post('/v1/forward', { input_ids: fwd.input_ids, top_k: 5 }), post('/v1/forward', { input_ids: [fwd.input_ids, fwd.input_ids] })].map((r) => h.fetch(r)));
    assert.is(a.status, 200, await a.clone().text());
    const ja = await a.json();
    const want = topK(lastRow, 0, V, 5);
    assert.equal(ja.top_k[0].map((t: any) => t.token_id), want.map((t) => t.token_id));
    const msg = compareClose(ja.top_k[0].map((t: any) => t.logit), want.map((t) => t.logit), fwd.tolerance, 'top-k logits');
    if (msg) assert.unreachable(msg);
    assert.is(ja.model, 'gpt2-tiny');
    assert.is(ja.tokens, fwd.input_ids.length);
    const jb = await b.json();
    assert.is(jb.top_k.length, 2);
    assert.is(jb.top_k[1].length, 10, 'default top_k');
    assert.equal(jb.top_k[0], jb.top_k[1]);
    assert.is(source.loads, 1, 'two concurrent first requests share one load');
    res = await h.fetch(new Request('http://edge.test/'));
    const health = await res.json();
    assert.is(health.loaded, true);
    assert.is(health.threads, 1);
  } finally { await h.dispose(); }
});

test('POST /v1/completions: greedy from a text prompt and from ids reproduces lm_greedy', async () => {
  const h = createFetchHandler({ source: dirSource(modelDir('gpt2-tiny')), kernels });
  try {
    const want = greedy.expected_ids.slice(greedy.input_ids.length);
    let res = await h.fetch(post('/v1/completions', { prompt: greedy.text, max_tokens: greedy.max_new_tokens }));
    assert.is(res.status, 200, await res.clone().text());
    let j = await res.json();
    assert.is(j.object, 'text_completion');
    assert.equal(j.choices[0].token_ids, want);
    assert.is(j.choices[0].finish_reason, 'length');
    assert.type(j.choices[0].text, 'string');
    assert.equal(j.usage, { prompt_tokens: greedy.input_ids.length, completion_tokens: want.length, total_tokens: greedy.expected_ids.length });
    res = await h.fetch(post('/v1/completions', { prompt: greedy.input_ids, max_tokens: 3 }));
    j = await res.json();
    assert.equal(j.choices[0].token_ids, want.slice(0, 3));
    res = await h.fetch(post('/v1/completions', { prompt: greedy.input_ids, max_tokens: 0 }));
    assert.equal((await res.json()).choices[0].token_ids, []);
  } finally { await h.dispose(); }
});

test('bad requests get 4xx JSON errors naming the problem', async () => {
  const h = createFetchHandler({ source: dirSource(modelDir('gpt2-tiny')), kernels, maxBodyBytes: 4096 });
  try {
    const cases: [Request, number, RegExp][] = [
      [post('/v1/forward', '{not json'), 400, /invalid JSON/],
      [post('/v1/forward', [1, 2]), 400, /JSON object/],
      [post('/v1/forward', {}), 400, /input_ids must be a non-empty array/],
      [post('/v1/forward', { input_ids: [1, 50257] }), 400, /50257 is not a token id in \[0, 50257\)/],
      [post('/v1/forward', { input_ids: [1, 2.5] }), 400, /2\.5 is not a token id/],
      [post('/v1/forward', { input_ids: [[1, 2], [3]] }), 400, /rows of different lengths/],
      [post('/v1/forward', { input_ids: Array(129).fill(1) }), 400, /129 tokens exceed the model's context of 128/],
      [post('/v1/forward', { input_ids: [1], top_k: 0 }), 400, /top_k must be an integer from 1 to 100/],
      [post('/v1/forward', { input_ids: Array(3000).fill(1) }), 413, /over the limit of 4096 bytes/],
      [post('/v1/completions', { prompt: [1], max_tokens: 1000 }), 400, /max_tokens must be an integer from 0 to 256/],
      [post('/v1/completions', { prompt: Array(120).fill(1), max_tokens: 20 }), 400, /140 in all, over the model's context of 128/],
      // the same validator as the Node server's (src/server/request.ts)
      [post('/v1/completions', { prompt: [1], n: 2 }), 400, /only n = 1 is supported/],
      [post('/v1/completions', { prompt: [1], seed: -1 }), 400, /seed must be an integer from 0 to 9007199254740991/],
      [post('/v1/completions', { prompt: [1], stream: true }), 400, /stream: true is not served here/],
      [post('/v1/completions', { prompt: 'x'.repeat(3000) }), 400, /more than 128 tokens/],
      [post('/v1/completions', { prompt: [1], temperature: -1 }), 400, /temperature/],
      [post('/v1/completions', { prompt: [1], stop: [1] }), 400, /stop must be/],
      [post('/v1/completions', { prompt: [1], temperature: 1e-45, repetition_penalty: 1e-39 }), 200, /./],
      // one request holds at most one full context: rows × tokens ≤ n_positions, rows ≤ maxBatchRows (a 200000-row
      // batch was a RangeError and a 3000 × 64 one took 3 GB)
      [post('/v1/forward', { input_ids: Array.from({ length: 17 }, () => [1]) }), 400, /17 rows are over this handler's limit of 16 \(maxBatchRows\)/],
      [post('/v1/forward', { input_ids: Array.from({ length: 3 }, () => Array(50).fill(1)) }), 400, /150 tokens, over the limit of 128 \(n_positions\)/],
      [new Request('http://edge.test/v1/forward'), 405, /GET \/v1\/forward: use POST/],
      [new Request('http://edge.test/nope'), 404, /no route \/nope/],
    ];
    for (const [req, status, re] of cases) {
      const res = await h.fetch(req);
      const body = await res.json();
      assert.is(res.status, status, `${req.method} ${req.url}: ${JSON.stringify(body)}`);
      if (status === 200) { assert.is(body.object, 'text_completion'); continue; }
      assert.match(body.error.message, re);
      assert.is(body.error.type, status >= 500 ? 'server_error' : 'invalid_request_error');
    }
    const res = await h.fetch(new Request('http://edge.test/v1/completions'));
    assert.is(res.headers.get('allow'), 'POST');
  } finally { await h.dispose(); }
});

test('the body is read as JSON whatever its Content-Type (fetch and curl defaults)', async () => {
  const h = createFetchHandler({ source: dirSource(modelDir('gpt2-tiny')), kernels });
  try {
    const variants: Record<string, string>[] = [{}, { 'content-type': 'text/plain;charset=UTF-8' }, { 'content-type': 'application/x-www-form-urlencoded' }];
    for (const headers of variants) {
      const res = await h.fetch(post('/v1/forward', { input_ids: [1, 2], top_k: 1 }, headers));
      assert.is(res.status, 200, JSON.stringify(headers));
    }
  } finally { await h.dispose(); }
});

test('a failed load is reported as 500 and retried by the next request', async () => {
  const source = countingSource(1);
  const h = createFetchHandler({ source, kernels });
  try {
    let res = await h.fetch(post('/v1/forward', { input_ids: [1, 2] }));
    assert.is(res.status, 500);
    assert.match((await res.json()).error.message, /simulated outage/);
    res = await h.fetch(post('/v1/forward', { input_ids: [1, 2] }));
    assert.is(res.status, 200);
    assert.is(source.loads, 2);
  } finally { await h.dispose(); }
});

test('dispose() while an accepted request waits (here for the tokenizer): the request runs on a reloaded model', async () => {
  const inner = dirSource(modelDir('gpt2-tiny'));
  const source: any = Object.create(inner);
  let hit!: () => void, release!: () => void;
  const atGate = new Promise<void>((r) => { hit = r; }), gate = new Promise<void>((r) => { release = r; });
  for (const k of ['readText', 'readBytes', 'readJson'] as const) {
    if (typeof (inner as any)[k] !== 'function') continue;
    source[k] = async (file: string) => {
      if (file === 'vocab.json') { hit(); await gate; }
      return (inner as any)[k](file);
    };
  }
  const h = createFetchHandler({ source, kernels });
  try {
    const first = await h.model();
    const pending = h.fetch(post('/v1/completions', { prompt: greedy.text, max_tokens: greedy.max_new_tokens }));
    await atGate; // the request holds the loaded model and waits for the tokenizer
    await h.dispose();
    release();
    const res = await pending;
    const body = await res.json();
    assert.is(res.status, 200, JSON.stringify(body));
    assert.equal(body.choices[0].token_ids, greedy.expected_ids.slice(greedy.input_ids.length));
    assert.ok(await h.model() !== first, 'a new model was loaded');
  } finally { await h.dispose(); }
});

test('basePath mounts the routes under a prefix', async () => {
  const h = createFetchHandler({ source: dirSource(modelDir('gpt2-tiny')), kernels, basePath: '/api/' });
  try {
    assert.is((await h.fetch(new Request('http://edge.test/api'))).status, 200);
    assert.is((await h.fetch(new Request('http://edge.test/v1/forward', { method: 'POST' }))).status, 404);
    assert.is((await h.fetch(post('/api/v1/forward', { input_ids: [1] }))).status, 200);
  } finally { await h.dispose(); }
});

test('modelUrl: weights are read from a URL with Range requests', async () => {
  const dir = modelDir('gpt2-tiny');
  const server = await startServer((req, res, path) => {
    const name = path.replace(/^\/gpt2-tiny\//, '');
    if (!['config.json', 'model.safetensors', 'vocab.json', 'merges.txt'].includes(name)) { res.writeHead(404); res.end(); return; }
    sendBytes(req, res, readFileSync(join(dir, name)));
  });
  const h = createFetchHandler({ modelUrl: `${server.url}/gpt2-tiny/`, kernels });
  try {
    const res = await h.fetch(post('/v1/forward', { input_ids: fwd.input_ids, top_k: 3 }));
    assert.is(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).top_k[0].map((t: any) => t.token_id), topK(lastRow, 0, V, 3).map((t) => t.token_id));
    const weightReads = server.requests.filter((r) => r.path.endsWith('model.safetensors') && r.method === 'GET');
    assert.ok(weightReads.length > 0 && weightReads.every((r) => typeof r.headers.range === 'string'), 'every weights GET is a Range request');
  } finally {
    await h.dispose();
    await server.close();
  }
});

test('modelUrl: a .gguf URL, or a directory URL with gguf_file, is a whole model (weights by ranges, tokenizer from metadata)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-edge-gguf-'));
  const file = join(tmp, 'tiny.gguf');
  await save_gguf(modelDir('gpt2-tiny'), file, { dtype: 'f32' });
  const bytes = readFileSync(file);
  const server = await startServer((req, res, path) => {
    if (path !== '/models/tiny.gguf') { res.writeHead(404); res.end(); return; }
    sendBytes(req, res, bytes);
  });
  try {
    for (const o of [{ modelUrl: `${server.url}/models/tiny.gguf` }, { modelUrl: `${server.url}/models/`, gguf_file: 'tiny.gguf' }]) {
      const before = server.requests.length;
      const h = createFetchHandler({ ...o, kernels });
      try {
        let res = await h.fetch(post('/v1/forward', { input_ids: fwd.input_ids, top_k: 3 }));
        assert.is(res.status, 200, await res.clone().text());
        assert.equal((await res.json()).top_k[0].map((t: any) => t.token_id), topK(lastRow, 0, V, 3).map((t) => t.token_id));
        res = await h.fetch(post('/v1/completions', { prompt: greedy.text, max_tokens: greedy.max_new_tokens }));
        assert.is(res.status, 200, await res.clone().text());
        assert.equal((await res.json()).choices[0].token_ids, greedy.expected_ids.slice(greedy.input_ids.length), 'greedy text completion from the GGUF tokenizer');
        const gets = server.requests.slice(before).filter((r) => r.method === 'GET');
        assert.ok(gets.length > 0 && gets.every((r) => typeof r.headers.range === 'string'), 'every GET of the GGUF is a Range request');
      } finally { await h.dispose(); }
    }
  } finally {
    await server.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('createFetchHandler needs a model, and checks its options when made (not blamed on every client later)', () => {
  assert.throws(() => createFetchHandler({} as any), /modelUrl or source/);
  const source = dirSource(modelDir('gpt2-tiny'));
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ dtype: 'int3' }, /dtype must be 'auto', 'fp32', 'fp16', 'q8' or 'q4', got "int3"/],
    [{ threads: 0 }, /threads must be an integer from 1 to 256, got 0/],
    [{ kv_dtype: 'fp8' }, /kv_dtype/],
    [{ prefill_chunk: -1 }, /prefill_chunk must be an integer from 1/],
    [{ maxNewTokens: -5 }, /maxNewTokens must be an integer from 1/],
    [{ maxNewTokens: 'x' }, /maxNewTokens must be an integer from 1/],
    [{ maxBodyBytes: -1 }, /maxBodyBytes/],
    [{ maxTopK: 0 }, /maxTopK/],
    [{ basePath: 'api' }, /basePath must be '' or start with '\/', got "api"/],
    [{ variant: 'avx' }, /variant must be one of/],
    [{ bogus: 1 }, /unknown createFetchHandler option 'bogus'/],
  ];
  for (const [o, re] of bad) {
    try { createFetchHandler({ source, ...o } as any); assert.unreachable(JSON.stringify(o)); } catch (e: any) {
      assert.is(e.code, 'OPTION', `${JSON.stringify(o)}: ${e.message}`);
      assert.match(e.message, re);
    }
  }
});

test('stop sequences: the text ends just before the stop, which is not included, and finish_reason is stop (as the Node server)', async () => {
  const h = createFetchHandler({ source: dirSource(modelDir('gpt2-trained')), kernels });
  try {
    const ask = async (body: unknown) => (await h.fetch(post('/v1/completions', body))).json();
    const full = await ask({ prompt: 'The', max_tokens: 12 });
    const text: string = full.choices[0].text;
    assert.ok(text.length > 6, text);
    // a stop taken from the middle of the greedy text
    const stop = text.slice(3, 6);
    const cut = await ask({ prompt: 'The', max_tokens: 12, stop });
    assert.is(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
    assert.is(cut.choices[0].finish_reason, 'stop');
    // a stop completed by the last allowed token is still a stop
    const atEnd = await ask({ prompt: 'The', max_tokens: 12, stop: text.slice(-2) });
    assert.not.ok(atEnd.choices[0].text.includes(text.slice(-2)), atEnd.choices[0].text);
    assert.is(atEnd.choices[0].finish_reason, 'stop');
  } finally { await h.dispose(); }
});

test('modelUrl schemes: ftp: (any unreadable scheme) is refused when the handler is made; a file: URL reads that directory; HF generate() names are 400 hf_field', async () => {
  for (const url of ['ftp://host/models/gpt2/', 's3://bucket/gpt2/']) {
    assert.throws(() => createFetchHandler({ modelUrl: url, kernels }), (e: any) => e.code === 'OPTION' && /: (ftp|s3): URLs are not read; give an http\(s\) URL, a file: URL or a local path, or a Hub model id$/.test(e.message));
  }
  const h = createFetchHandler({ modelUrl: pathToFileURL(modelDir('gpt2-tiny')).href + '/', kernels });
  try {
    let res = await h.fetch(post('/v1/completions', { prompt: greedy.input_ids, max_tokens: 3 }));
    assert.is(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).choices[0].token_ids, greedy.expected_ids.slice(greedy.input_ids.length, greedy.input_ids.length + 3));
    for (const [k, v, re] of [['max_new_tokens', 4, /use max_tokens \(at most \d+ here, default 16\)$/], ['max_length', 9, /counts the new tokens only/],
      ['do_sample', true, /use temperature: 0 decodes greedily/], ['stop_strings', ['.'], /use stop/]] as [string, unknown, RegExp][]) {
      res = await h.fetch(post('/v1/completions', { prompt: 'Hello', [k]: v }));
      assert.is(res.status, 400, k);
      const e = (await res.json()).error;
      assert.equal([e.param, e.code], [k, 'hf_field']);
      assert.ok(e.message.startsWith(`${k} is a Hugging Face generate() option, not a field of this OpenAI-style API: `), e.message);
      assert.match(e.message, re);
    }
  } finally { await h.dispose(); }
});

test('a request whose client goes away mid-completion answers 499 cancelled, not 200 with finish_reason stop', async () => {
  const h = createFetchHandler({ source: dirSource(modelDir('gpt2-trained')), kernels });
  try {
    const mk = (signal?: AbortSignal) => new Request('http://edge.test/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: 'Hello', max_tokens: 200 }), signal });
    let res = await h.fetch(mk());
    assert.is((await res.json()).choices[0].finish_reason, 'length', 'uninterrupted: 200 tokens');
    const ac = new AbortController();
    const p = h.fetch(mk(ac.signal));
    setTimeout(() => ac.abort(), 0);
    res = await p;
    assert.is(res.status, 499);
    assert.is((await res.json()).error.code, 'cancelled');
  } finally { await h.dispose(); }
});

test.run();
