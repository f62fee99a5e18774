// The HTTP server on 127.0.0.1 with the fixture model: OpenAI-shaped completions (JSON and SSE) equal to
// model.generate, continuous batching that does not change results, limits (429, 400, 413, timeouts),
// disconnects that free their slot, and graceful shutdown (in-process close() and SIGTERM on `serve`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpRequest } from 'node:http';
import { GPT2LMHeadModel } from '../src/model/gpt2.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../src/tokenizer/index.js';
import { createServer, CompletionText, type GPT2Server, type ServerOptions } from '../src/server/index.js';
import { kernelOpts, modelDir } from './helpers/fixtures.js';
import { post, slowModel as slowOf, spawnServe, until, within } from './helpers/server.js';

const DIR = modelDir('gpt2-tiny');
let model: GPT2LMHeadModel;
let tokenizer: GPT2Tokenizer;

/** The fixture model, slowed down by `ms` per decode step. */
const slowModel = (ms: number) => slowOf(model, ms);

async function withServer(opts: Partial<ServerOptions>, fn: (s: GPT2Server, url: string) => Promise<void>): Promise<void> {
  const s = createServer({ model, tokenizer, modelId: 'gpt2-tiny', ...opts });
  const { url } = await s.listen(0, '127.0.0.1');
  try { await fn(s, url); } finally { await within(10_000, s.close({ timeoutMs: 2_000 }), 'close'); }
}

/** The data payloads of an SSE body, parsed (the final '[DONE]' stays a string). */
function events(body: string): any[] {
  assert.ok(body.endsWith('\n\n'), 'SSE events end with a blank line');
  return body.split('\n\n').filter(Boolean).map((e) => {
    assert.ok(e.startsWith('data: '), `event ${JSON.stringify(e)}`);
    const d = e.slice(6);
    return d === '[DONE]' ? d : JSON.parse(d);
  });
}

/** What model.generate gives for the same request, as completion text and token count. */
async function reference(prompt: string, maxTokens: number, sample?: { temperature: number; seed: number }) {
  const ids = tokenizer.encode(prompt);
  const out = await model.generate({
    input_ids: [ids], max_new_tokens: maxTokens, do_sample: !!sample, temperature: sample?.temperature ?? 1, top_k: 0, top_p: 1, repetition_penalty: 1, seed: sample?.seed,
  });
  const gen = Array.from(out.data as BigInt64Array, Number).slice(ids.length);
  return { text: tokenizer.decode(gen, { skip_special_tokens: true, clean_up_tokenization_spaces: false }), tokens: gen.length, promptTokens: ids.length };
}

const PROMPTS = ['Hello, my name is', 'The quick brown fox', 'In 1969 the first', 'Once upon a time, in a land far away,'];

test.before(async () => {
  model = await GPT2LMHeadModel.from_pretrained(DIR, { threads: 2, ...kernelOpts() });
  tokenizer = await AutoTokenizer.from_pretrained(DIR);
});
test.after(async () => { await model?.dispose(); });

test('completion text releases nothing of a stop sequence and cuts before it', () => {
  // ids of ' hello world' pieces from the real GPT-2 vocabulary
  const ids = tokenizer.encode(' hello world, and good night');
  const all = tokenizer.decode(ids);
  const t = new CompletionText(tokenizer, [', and']);
  let out = '';
  for (const id of ids) { out += t.push(id); if (t.stopped) break; }
  out += t.finish();
  assert.is(out, all.slice(0, all.indexOf(', and')));
  assert.ok(t.stopped);
  const plain = new CompletionText(tokenizer, ['zzz']);
  let p = '';
  for (const id of ids) p += plain.push(id);
  assert.is(p + plain.finish(), all);
  assert.not.ok(plain.stopped);
});

test('greedy completions (JSON and SSE) equal model.generate', async () => {
  await within(60_000, withServer({}, async (_s, url) => {
    for (const [i, prompt] of PROMPTS.entries()) {
      const n = 6 + 4 * i;
      const want = await reference(prompt, n);
      const r = await post(url, { model: 'gpt2-tiny', prompt: i === 1 ? [prompt] : prompt, max_tokens: n, temperature: 0 });
      assert.is(r.status, 200, r.text);
      assert.match(r.headers.get('content-type')!, /application\/json/);
      const j = r.json;
      assert.match(j.id, /^cmpl-/);
      assert.is(j.object, 'text_completion');
      assert.is(j.model, 'gpt2-tiny');
      assert.type(j.created, 'number');
      assert.equal(j.choices, [{ text: want.text, index: 0, logprobs: null, finish_reason: want.tokens < n ? 'stop' : 'length' }]);
      assert.equal(j.usage, { prompt_tokens: want.promptTokens, completion_tokens: want.tokens, total_tokens: want.promptTokens + want.tokens });

      const s = await post(url, { prompt, max_tokens: n, temperature: 0, stream: true, stream_options: { include_usage: true } });
      assert.is(s.status, 200);
      assert.match(s.headers.get('content-type')!, /text\/event-stream/);
      const ev = events(s.text);
      assert.is(ev.pop(), '[DONE]');
      const usage = ev.pop();
      assert.equal(usage.choices, []);
      assert.equal(usage.usage, j.usage);
      assert.ok(ev.length >= 2, 'one event per token');
      for (const e of ev) { assert.is(e.object, 'text_completion'); assert.is(e.choices[0].index, 0); assert.is(e.id, ev[0].id); }
      assert.ok(ev.slice(0, -1).every((e) => e.choices[0].finish_reason === null));
      assert.is(ev[ev.length - 1].choices[0].finish_reason, j.choices[0].finish_reason);
      assert.is(ev.map((e) => e.choices[0].text).join(''), want.text);
    }
  }), 'greedy test');
});

test('seeded sampling equals model.generate with the same seed; stop sequences end the text', async () => {
  await within(60_000, withServer({}, async (_s, url) => {
    const want = await reference(PROMPTS[0], 24, { temperature: 0.9, seed: 1234 });
    const r = await post(url, { prompt: PROMPTS[0], max_tokens: 24, temperature: 0.9, seed: 1234 });
    assert.is(r.json.choices[0].text, want.text);
    // a stop sequence taken from the middle of the greedy text
    const greedy = await reference(PROMPTS[2], 30);
    const words = greedy.text.split(' ');
    const stop = ' ' + words[Math.min(4, words.length - 1)];
    const cut = greedy.text.indexOf(stop);
    assert.ok(cut >= 0);
    const a = await post(url, { prompt: PROMPTS[2], max_tokens: 30, temperature: 0, stop: [stop, 'NEVER-THERE'] });
    assert.equal([a.json.choices[0].text, a.json.choices[0].finish_reason], [greedy.text.slice(0, cut), 'stop']);
    assert.ok(a.json.usage.completion_tokens < 30);
    const b = await post(url, { prompt: PROMPTS[2], max_tokens: 30, temperature: 0, stop, stream: true });
    const ev = events(b.text);
    assert.is(ev.pop(), '[DONE]');
    assert.is(ev.map((e) => e.choices[0].text).join(''), greedy.text.slice(0, cut));
    assert.is(ev[ev.length - 1].choices[0].finish_reason, 'stop');
  }), 'sampling test');
});

test('4 concurrent clients are batched and each gets what it gets alone', async () => {
  await within(60_000, withServer({ maxConcurrency: 4 }, async (s, url) => {
    // greedy and seeded sampling, JSON and SSE, different lengths (so sequences leave the batch at different steps)
    const reqs = PROMPTS.map((prompt, i) => ({ prompt, max_tokens: 20 + 7 * i, stream: i % 2 === 1, ...(i === 3 ? { temperature: 0.8, seed: 99 } : { temperature: 0 }) }));
    const text = (r: Awaited<ReturnType<typeof post>>) => (r.json ? r.json.choices[0].text : events(r.text).slice(0, -1).map((e) => e.choices[0].text).join(''));
    const alone: string[] = [];
    for (const q of reqs) alone.push(text(await post(url, q)));
    const before = s.stats();
    const together = await Promise.all(reqs.map((q) => post(url, q)));
    const after = s.stats();
    together.forEach((r, i) => { assert.is(r.status, 200); assert.is(text(r), alone[i], `client ${i}`); });
    for (const [i, q] of reqs.entries() as Iterable<[number, any]>) assert.is(alone[i], (await reference(q.prompt, q.max_tokens, q.seed ? { temperature: q.temperature, seed: q.seed } : undefined)).text);
    const steps = after.decode_steps - before.decode_steps;
    const rows = reqs.reduce((n, q) => n + q.max_tokens - 1, 0);
    assert.ok(steps < rows, `batched: ${rows} sequence-steps in ${steps} decode steps`);
    assert.is(after.active, 0);
    assert.is(after.kv_cache_bytes, 0);
  }), 'concurrency test');
});

test('a full queue answers 429 with a JSON error; the accepted requests still finish', async () => {
  await within(30_000, withServer({ model: slowModel(15), maxConcurrency: 1, queueSize: 1 }, async (s, url) => {
    const first = post(url, { prompt: 'a', max_tokens: 40, temperature: 0 });
    await until(() => s.stats().active === 1, 5_000, 'first request running');
    const second = post(url, { prompt: 'b', max_tokens: 5, temperature: 0 });
    await until(() => s.stats().queued === 1, 5_000, 'second request queued');
    const third = await post(url, { prompt: 'c', max_tokens: 5, temperature: 0, stream: true });
    assert.is(third.status, 429);
    assert.is(third.json.error.type, 'rate_limit_error');
    assert.match(third.json.error.message, /queue is full/);
    assert.is(third.headers.get('retry-after'), '1');
    const [a, b] = await Promise.all([first, second]);
    assert.equal([a.status, a.json.usage.completion_tokens, b.status, b.json.usage.completion_tokens], [200, 40, 200, 5]);
    assert.is(s.stats().rejected, 1);
  }), '429 test');
});

test('bad requests get 400 (naming the field), 404 and 405', async () => {
  await within(30_000, withServer({ maxTokens: 64 }, async (_s, url) => {
    const cases: [unknown, string | null, RegExp][] = [
      ['{"prompt": "x",', null, /invalid JSON/],
      ['[1, 2]', null, /JSON object/],
      [{}, 'prompt', /required/],
      [{ prompt: 42 }, 'prompt', /string/],
      [{ prompt: '' }, 'prompt', /empty/],
      [{ prompt: ['a', 'b'] }, 'prompt', /one prompt per request/],
      [{ prompt: [1, 99999999] }, 'prompt', /token id/],
      [{ prompt: 'x', model: 'gpt-4' }, 'model', /'gpt-4' is not served here.*gpt2-tiny/],
      [{ prompt: 'x', max_tokens: 0 }, 'max_tokens', /needs echo/],
      [{ prompt: 'x', max_tokens: -1 }, 'max_tokens', /from 0 to 64/],
      [{ prompt: 'x', max_tokens: '5' }, 'max_tokens', /integer/],
      [{ prompt: 'x', max_tokens: 65 }, 'max_tokens', /limit is 64/],
      [{ prompt: ' word'.repeat(100), max_tokens: 64 }, 'max_tokens', /prompt has 100 tokens and max_tokens is 64: 164 in all, over the model's context of 128/],
      [{ prompt: 'x', temperature: -1 }, 'temperature', /from 0 to 2/],
      [{ prompt: 'x', temperature: 'hot' }, 'temperature', /number/],
      [{ prompt: 'x', top_p: 0 }, 'top_p', /\(0, 1\]/],
      [{ prompt: 'x', top_k: 1.5 }, 'top_k', /integer/],
      [{ prompt: 'x', seed: 'abc' }, 'seed', /integer/],
      [{ prompt: 'x', n: 99 }, 'n', /from 1 to 8/],
      [{ prompt: 'x', best_of: 2 }, 'best_of', /best_of = 1/],
      [{ prompt: 'x', stop: 7 }, 'stop', /string/],
      [{ prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4/],
      [{ prompt: 'x', stream: 'yes' }, 'stream', /true or false/],
      [{ prompt: 'x', logprobs: 6 }, 'logprobs', /from 0 to 5/],
      [{ prompt: 'x', echo: 'yes' }, 'echo', /true or false/],
      [{ prompt: 'x', frequency_penalty: 2.5 }, 'frequency_penalty', /from -2 to 2/],
      [{ prompt: 'x', presence_penalty: 'a' }, 'presence_penalty', /from -2 to 2/],
      [{ prompt: 'x', logit_bias: { abc: 1 } }, 'logit_bias', /not a token id/],
      [{ prompt: 'x', logit_bias: { 5: 101 } }, 'logit_bias', /from -100 to 100/],
      [{ prompt: 'x', repetition_penalty: 0 }, 'repetition_penalty', /\(0, 10\]/],
    ];
    for (const [body, param, msg] of cases) {
      const r = await post(url, body);
      assert.is(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.text}`);
      assert.is(r.json.error.type, 'invalid_request_error');
      assert.is(r.json.error.param, param, JSON.stringify(body));
      assert.match(r.json.error.message, msg);
    }
    const nf = await fetch(`${url}/v2/nothing`);
    assert.is(nf.status, 404);
    assert.match((await nf.json()).error.message, /no route/);
    const na = await fetch(`${url}/v1/completions`);
    assert.is(na.status, 405);
    assert.is(na.headers.get('allow'), 'POST');
    await na.text();
    // the server still answers after all that
    assert.is((await post(url, { prompt: 'x', max_tokens: 2 })).status, 200);
  }), '400 test');
});

test('bodies over the limit get 413', async () => {
  await within(30_000, withServer({ bodyLimit: 256 }, async (_s, url) => {
    const big = JSON.stringify({ prompt: 'x'.repeat(1000), max_tokens: 1 });
    const r = await post(url, big);
    assert.is(r.status, 413);
    assert.match(r.json.error.message, /over the limit of 256 bytes/);
    // streamed without a Content-Length (chunked): cut while reading
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d)); res.on('end', () => resolve({ status: res.statusCode!, body: b }));
      });
      req.on('error', reject);
      req.write(big.slice(0, 200)); setTimeout(() => req.end(big.slice(200)), 20);
    });
    assert.is(chunked.status, 413);
    assert.match(JSON.parse(chunked.body).error.message, /over the limit/);
    assert.is((await post(url, { prompt: 'x', max_tokens: 1 })).status, 200);
  }), '413 test');
});

test('a client that disconnects is cancelled and its cache slot freed', async () => {
  await within(30_000, withServer({ model: slowModel(10), maxConcurrency: 2 }, async (s, url) => {
    const arenaBefore = model.backend.arena.usage().total;
    // streaming: hang up after two events
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/completions`, { method: 'POST' }, (res) => {
        let n = 0;
        res.on('data', () => { if (++n === 2) { req.destroy(); resolve(); } });
      });
      req.on('error', () => { /* destroyed on purpose */ });
      req.end(JSON.stringify({ prompt: 'Hello', max_tokens: 100, temperature: 0, stream: true }));
      setTimeout(() => reject(new Error('no events')), 5_000);
    });
    // non-streaming: abort while it runs
    const ac = new AbortController();
    const pending = post(url, { prompt: 'Hello', max_tokens: 100, temperature: 0 }, { signal: ac.signal }).catch((e) => e);
    await until(() => s.stats().active >= 1 && s.stats().submitted === 2, 5_000, 'second request running');
    ac.abort();
    assert.is((await pending).name, 'AbortError');
    await until(() => s.stats().active === 0 && s.stats().queued === 0, 5_000, 'active count back to 0');
    const st = s.stats();
    assert.is(st.cancelled, 2);
    assert.is(st.kv_cache_bytes, 0);
    assert.ok(st.generated_tokens < 150, `generation stopped early (${st.generated_tokens} tokens)`);
    assert.is(model.backend.arena.usage().total, arenaBefore);
  }), 'disconnect test');
});

test('a request over the time limit is cancelled: 504, or an error event when streaming', async () => {
  await within(30_000, withServer({ model: slowModel(10), requestTimeoutMs: 150 }, async (s, url) => {
    const r = await post(url, { prompt: 'Hello', max_tokens: 100, temperature: 0 });
    assert.is(r.status, 504);
    assert.is(r.json.error.type, 'timeout_error');
    const st = await post(url, { prompt: 'Hello', max_tokens: 100, temperature: 0, stream: true });
    assert.is(st.status, 200);
    const ev = events(st.text);
    assert.match(ev[ev.length - 1].error.message, /150 ms/);
    assert.not.ok(ev.includes('[DONE]'));
    assert.is(s.stats().active, 0);
  }), 'timeout test');
});

test('health and models', async () => {
  await within(30_000, withServer({ maxConcurrency: 3, queueSize: 5 }, async (_s, url) => {
    const h = await (await fetch(`${url}/health`)).json();
    assert.is(h.status, 'ok');
    assert.is(h.model, 'gpt2-tiny');
    assert.equal([h.active, h.queued, h.max_concurrency, h.queue_size, h.n_positions], [0, 0, 3, 5, 128]);
    const m = await (await fetch(`${url}/v1/models`)).json();
    assert.is(m.object, 'list');
    assert.equal(m.data.map((d: any) => [d.id, d.object]), [['gpt2-tiny', 'model']]);
    assert.is((await (await fetch(`${url}/v1/models/gpt2-tiny`)).json()).id, 'gpt2-tiny');
    assert.is((await fetch(`${url}/v1/models/other`)).status, 404);
  }), 'health test');
});

test('close() refuses new connections and finishes the requests in flight', async () => {
  await within(30_000, (async () => {
    const s = createServer({ model: slowModel(15), tokenizer, modelId: 'gpt2-tiny', maxConcurrency: 1, queueSize: 2 });
    const { url } = await s.listen(0, '127.0.0.1');
    let closed = false;
    try {
      const first: string[] = [];
      const streaming = new Promise<string>((resolve, reject) => {
        const req = httpRequest(`${url}/v1/completions`, { method: 'POST' }, (res) => {
          let b = ''; res.setEncoding('utf8'); res.on('data', (d) => { b += d; first.push(d); }); res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ prompt: 'Hello', max_tokens: 30, temperature: 0, stream: true }));
      });
      const queued = post(url, { prompt: 'Bye', max_tokens: 5, temperature: 0 });
      await until(() => first.length > 0 && s.stats().queued === 1, 5_000, 'one running, one queued');
      const closing = s.close({ timeoutMs: 10_000 }).then(() => { closed = true; });
      await new Promise((r) => setTimeout(r, 20));
      const refused = await fetch(`${url}/health`).then(() => 'answered', (e) => String(e.cause?.code ?? e));
      assert.is(refused, 'ECONNREFUSED');
      assert.not.ok(closed, 'close() waits for the requests in flight');
      const ev = events(await streaming);
      assert.is(ev.pop(), '[DONE]');
      assert.is(ev[ev.length - 1].choices[0].finish_reason, 'length');
      const q = await queued;
      assert.equal([q.status, q.json.usage.completion_tokens], [200, 5]);
      await closing;
      assert.is(s.stats().active, 0);
      assert.is(s.stats().status, 'shutting_down');
    } finally { if (!closed) await s.close({ timeoutMs: 1_000 }); }
  })(), 'shutdown test');
});

test('gpt2-wasm serve: SIGTERM lets the request in flight finish, then exits 0', async () => {
  await within(60_000, (async () => {
    const p = await spawnServe(['--model', DIR, '--port', '0', '--threads', '1', '--model-name', 'tiny', '--max-tokens', '120']);
    try {
      const bad = await post(p.url, { prompt: 'x', model: 'gpt2' });
      assert.is(bad.status, 400);
      const inflight = post(p.url, { model: 'tiny', prompt: 'Hello there', max_tokens: 120, temperature: 0, stream: true });
      await new Promise((r) => setTimeout(r, 30));
      p.child.kill('SIGTERM');
      const r = await inflight;
      assert.is(r.status, 200);
      const ev = events(r.text);
      assert.is(ev.pop(), '[DONE]');
      assert.is(ev[ev.length - 1].choices[0].finish_reason, 'length');
      assert.is(await within(20_000, p.exited, 'exit'), 0, p.err);
      assert.match(p.err, /SIGTERM: shutting down/);
      assert.match(p.err, /stopped/);
    } finally { if (p.child.exitCode === null) p.child.kill('SIGKILL'); }
  })(), 'serve test');
});

test.run();
