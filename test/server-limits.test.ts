// The server under pressure and abuse (issue 12, parts 2 and 3): admission that reserves memory up front so that
// no admitted request ever fails for lack of it, protocol errors with their own statuses (400 for bad URLs, 408,
// 431, 413 the client can read), slow senders cut at the request timeout, a connection cap, keep-alive above
// balancer idle timeouts, an oversized prompt refused without tokenizing it all, and sampling that cannot meet
// NaN; plus the typed errors of the server, the scheduler and the edge handler.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { request as httpRequest } from 'node:http';
import { GPT2WasmError } from '../src/errors.js';
import { nextToken, applyRepetitionPenalty, applyTemperature } from '../src/generation/logits-process.js';
import { Random } from '../src/generation/random.js';
import { GPT2LMHeadModel } from '../src/model/gpt2.js';
import { ARENA_END } from '../src/runtime/memory.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../src/tokenizer/index.js';
import { createServer, Scheduler, QueueFullError, type GPT2Server, type ServerOptions } from '../src/server/index.js';
import * as tokenizerModule from '../src/tokenizer/index.js';
import { createFetchHandler } from '../src/edge/handler.js';
import { kernelOpts, modelDir } from './helpers/fixtures.js';

const DIR = modelDir('gpt2-tiny');
let model: GPT2LMHeadModel;
let tokenizer: GPT2Tokenizer;

async function within<T>(ms: number, p: Promise<T>, what = 'step'): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`${what} took over ${ms} ms`)), ms); })]);
  } finally { clearTimeout(t); }
}

async function withServer(opts: Partial<ServerOptions>, fn: (s: GPT2Server, url: string, port: number) => Promise<void>): Promise<void> {
  const s = createServer({ model, tokenizer, modelId: 'gpt2-tiny', ...opts });
  const { url, port } = await s.listen(0, '127.0.0.1');
  try { await fn(s, url, port); } finally { await within(10_000, s.close({ timeoutMs: 2_000 }), 'close'); }
}

const post = async (url: string, body: unknown) => {
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify(body) });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
};

/** Sends raw bytes on a new connection; resolves with everything the server sent until it closed. */
function raw(port: number, data: string, opts: { keepOpen?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => (got += d));
    sock.on('error', reject);
    sock.on('close', () => resolve(got));
    sock.write(data);
    if (!opts.keepOpen) sock.end();
  });
}

const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? NaN);

test.before(async () => {
  model = await GPT2LMHeadModel.from_pretrained(DIR, { threads: 1, ...kernelOpts() });
  tokenizer = await AutoTokenizer.from_pretrained(DIR);
});
test.after(async () => { await model?.dispose(); });

test('admission reserves memory: under a full arena, admitted requests finish as alone; the rest get 429/503 + Retry-After', async () => {
  // a model of its own: its arena is filled up to 4 GiB but for a hole of HOLE bytes, low in memory
  const m = await GPT2LMHeadModel.from_pretrained(DIR, { threads: 1, ...kernelOpts() });
  const gate = new Int32Array(new SharedArrayBuffer(4));
  // a slow step keeps every request of the flood in flight together
  const slow = Object.create(m, { decodeStep: { value: (...a: Parameters<GPT2LMHeadModel['decodeStep']>) => { Atomics.wait(gate, 0, 0, 3); return m.decodeStep(...a); } } });
  const s = createServer({ model: slow, tokenizer, modelId: 'gpt2-tiny', maxConcurrency: 8, queueSize: 2, maxTokens: 120 });
  try {
    const { url } = await s.listen(0, '127.0.0.1');
    const long = ['Hello, my name is', 'The quick brown fox', 'In 1969 the first', 'Once upon a time'].flatMap((prompt, i) => [
      { prompt, max_tokens: 56, temperature: 0 },
      { prompt, max_tokens: 48, temperature: 0.9, seed: 1000 + i },
    ]);
    const short = ['A', 'B c', 'D e f', 'G'].map((prompt) => ({ prompt, max_tokens: 4, temperature: 0 }));
    // a long prompt: its prefill runs in chunks inside the reserved workspace, so only its KV cache needs room
    const huge = { prompt: ' word'.repeat(100), max_tokens: 8, temperature: 0 };
    const reqs = [...long, huge, ...short];
    const alone = new Map<number, string>();
    for (const [i, q] of reqs.entries()) {
      const r = await post(url, q);
      assert.is(r.status, 200, r.text);
      alone.set(i, r.json.choices[0].text);
    }

    const A = m.backend.arena;
    const HOLE = 256 << 10; // room for a few KV caches at a time (about 1 KiB per token here), so admission must wait
    const hole = A.alloc('test hole', HOLE);
    const top = hole.ptr + hole.bytes;
    const ballast = A.alloc('test ballast', ARENA_END - top);
    A.release(hole);
    const before = s.stats();
    let results;
    try {
      results = await within(120_000, Promise.all(reqs.map((q) => post(url, q))), 'flood');
    } finally { A.release(ballast); }
    const after = s.stats();
    let admitted = 0;
    results.forEach((r, i) => {
      if (r.status === 200) {
        admitted++;
        assert.is(r.json.choices[0].text, alone.get(i), `request ${i} gives the same text under pressure as alone`);
      } else {
        assert.ok(r.status === 429 || r.status === 503, `request ${i}: ${r.status} ${r.text}`);
        assert.is(r.headers.get('retry-after'), '1', `request ${i} has Retry-After`);
        assert.is(r.json.error.type, r.status === 429 ? 'rate_limit_error' : 'server_error');
      }
    });
    // a request whose KV cache can never fit what is left is refused with 503 at once
    const tight = A.alloc('test hole', 16 << 10);
    const full = A.alloc('test ballast', ARENA_END - (tight.ptr + tight.bytes));
    A.release(tight);
    try {
      const r = await within(20_000, post(url, huge), 'never fits');
      assert.is(r.status, 503, 'a request that never fits is refused with 503');
      assert.is(r.headers.get('retry-after'), '1');
      assert.match(r.json.error.message, /memory/);
    } finally { A.release(full); }
    assert.ok(admitted >= long.length / 2, `most requests were admitted (${admitted})`);
    assert.ok(results.some((r) => r.status === 429), 'the flood overflowed the queue (429)');
    assert.is(after.failed - before.failed, 0, 'no admitted request failed');
    assert.ok(after.memory_waits > before.memory_waits, 'admission waited for memory at least once (the test put pressure on it)');
    assert.ok(after.decode_workspace_bytes > 0);
    assert.is(after.kv_cache_bytes, 0);
  } finally {
    await s.close({ timeoutMs: 2_000 });
    await m.dispose();
  }
});

test('a disposed cache in decodeStep is a DISPOSED error; a reserved workspace makes steps allocate nothing', () => {
  const c = model.createCache(1, 8);
  model.prefill(c, [1, 2]);
  c.dispose();
  const err = (() => { try { model.decodeStep([{ cache: c, id: 3, pos: 2 }]); } catch (e) { return e; } })() as GPT2WasmError;
  assert.instance(err, GPT2WasmError);
  assert.is(err.code, 'DISPOSED');
  // a step within the reserved workspace allocates nothing and gives the same logits as each sequence alone
  assert.ok(model.reserveWorkspace(2, 16) > 0);
  const [a, b] = [model.createCache(1, 8), model.createCache(1, 8)];
  const [a2, b2] = [model.createCache(1, 8), model.createCache(1, 8)];
  try {
    for (const x of [a, a2]) model.prefill(x, [5, 6, 7]);
    for (const x of [b, b2]) model.prefill(x, [9]);
    const used = model.backend.arena.usage().total;
    const both = model.decodeStep([{ cache: a, id: 11, pos: 3 }, { cache: b, id: 12, pos: 1 }]);
    assert.is(model.backend.arena.usage().total, used, 'nothing allocated during the step');
    const alone = [...model.decodeStep([{ cache: a2, id: 11, pos: 3 }]), ...model.decodeStep([{ cache: b2, id: 12, pos: 1 }])];
    assert.equal(Array.from(both), alone);
  } finally { for (const x of [a, b, a2, b2]) x.dispose(); }
});

test('invalid URLs get 400, not 500', async () => {
  await within(20_000, withServer({}, async (_s, url, port) => {
    const r = await fetch(`${url}/v1/models/%E0`);
    assert.is(r.status, 400);
    assert.match((await r.json()).error.message, /percent-encoding/);
    // request lines whose target is not a URL
    // and '//evil/v1/models', which resolved against a base URL would be served as /v1/models
    for (const target of ['http://[::1/x', '//', '//evil/v1/models']) {
      const got = await raw(port, `GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      assert.is(statusOf(got), 400, `${target}: ${got.slice(0, 200)}`);
    }
  }), 'url test');
});

test('protocol errors: header timeout 408, oversized headers 431', async () => {
  await within(20_000, withServer({ requestTimeoutMs: 300 }, async (s, _url, port) => {
    assert.is(s.http.headersTimeout, 300, 'headersTimeout is at most requestTimeout');
    const big = await raw(port, `GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.is(statusOf(big), 431, big.slice(0, 200));
    // with the JSON error body every other answer has
    assert.match(big, /content-type: application\/json/i);
    assert.match(JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)).error.message, /Request Header Fields Too Large/);
    // headers that never end
    const slow = await raw(port, 'GET /health HTTP/1.1\r\nhost: x\r\n', { keepOpen: true });
    assert.is(statusOf(slow), 408, slow.slice(0, 200));
  }), 'protocol test');
});

test('a trickled body is cut at the request timeout (408), before the client has sent it all', async () => {
  await within(30_000, withServer({ requestTimeoutMs: 400 }, async (_s, url) => {
    const body = JSON.stringify({ prompt: 'Hello there, this is slow', max_tokens: 2 });
    let sent = 0;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/completions`, { method: 'POST', headers: { 'content-length': String(body.length) } }, (r) => {
        let b = ''; r.setEncoding('utf8'); r.on('data', (d) => (b += d)); r.on('end', () => resolve({ status: r.statusCode!, body: b }));
      });
      req.on('error', reject);
      const drip = setInterval(() => {
        if (sent >= body.length || req.destroyed) { clearInterval(drip); return; }
        req.write(body[sent++]);
      }, 100);
      req.on('close', () => clearInterval(drip));
    });
    assert.is(res.status, 408, res.body);
    assert.ok(sent < body.length, `cut while ${body.length - sent} bytes were still to be sent`);
  }), 'trickle test');
});

test('keep-alive outlasts balancer idle timeouts and is configurable; headersTimeout is above it', async () => {
  await within(20_000, withServer({}, async (s) => {
    assert.ok(s.http.keepAliveTimeout >= 65_000, `default keepAliveTimeout ${s.http.keepAliveTimeout}`);
    assert.ok(s.http.headersTimeout > s.http.keepAliveTimeout, `headersTimeout ${s.http.headersTimeout}`);
    assert.ok(s.http.maxConnections > 0 && Number.isFinite(s.http.maxConnections), 'connections are capped by default');
  }), 'keepalive default');
  await within(20_000, withServer({ keepAliveTimeoutMs: 90_000, maxConnections: 7 }, async (s) => {
    assert.is(s.http.keepAliveTimeout, 90_000);
    assert.ok(s.http.headersTimeout > 90_000);
    assert.is(s.http.maxConnections, 7);
  }), 'keepalive option');
});

test('open connections are capped: past the cap a connection is closed without an answer', async () => {
  await within(20_000, withServer({ maxConnections: 2 }, async (s, url, port) => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const sock = connect(port, '127.0.0.1');
        await new Promise((r) => sock.on('connect', r));
        sock.on('error', () => {});
        held.push(sock);
      }
      await new Promise<void>((r) => { const t = setInterval(() => s.http.getConnections((_e, n) => { if (n >= 2) { clearInterval(t); r(); } }), 10); });
      const third = await raw(port, 'GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n').catch(() => '');
      assert.is(third, '', 'the third connection got no answer');
    } finally { for (const x of held) x.destroy(); }
    // the slots come back
    await new Promise<void>((r) => { const t = setInterval(() => s.http.getConnections((_e, n) => { if (n === 0) { clearInterval(t); r(); } }), 10); });
    assert.is((await fetch(`${url}/health`)).status, 200);
  }), 'cap test');
});

test('a chunked body over the limit: the client still sending reads the 413 (no EPIPE)', async () => {
  await within(30_000, withServer({ bodyLimit: 1024 }, async (_s, _url, port) => {
    // a client that sends its whole body before it reads the answer, as curl and most SDKs do
    // 4 MiB as fast as the socket takes it: past the point where the server answers (1 MiB), short of where it cuts
    const piece = 'x'.repeat(64 << 10);
    const out = await new Promise<{ got: string; error: string | null }>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      let got = '', error: string | null = null;
      sock.setEncoding('utf8');
      sock.on('data', (d) => (got += d));
      sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
      sock.on('close', () => resolve({ got, error }));
      const chunk = (t: string) => `${t.length.toString(16)}\r\n${t}\r\n`;
      let n = 0;
      const write = () => {
        if (sock.destroyed) return;
        if (n === 64) { sock.end('0\r\n\r\n'); return; }
        n++;
        sock.write(chunk(n === 1 ? `{"prompt": "${piece}` : piece), write);
      };
      sock.write('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n', write);
    });
    assert.is(out.error, null, `the client's writes failed: ${out.error}`);
    assert.is(statusOf(out.got), 413, out.got.slice(0, 300));
    assert.match(out.got, /over the limit of 1024 bytes/);
  }), 'chunked 413');
});

test('an oversized prompt is refused without tokenizing it all', async () => {
  // the BPE of a word costs time in proportion to its length: count the bytes merged
  const bpe = (tokenizer as any).model;
  const orig = bpe.encodeWordUncached;
  let merged = 0;
  bpe.encodeWordUncached = function (word: string, ...rest: unknown[]) { merged += word.length; return orig.call(this, word, ...rest); };
  try {
    await within(30_000, withServer({ bodyLimit: 4 << 20 }, async (_s, url) => {
      const oneWord = await post(url, { prompt: 'x'.repeat(1 << 20), max_tokens: 1 });
      assert.is(oneWord.status, 400);
      assert.is(oneWord.json.error.code, 'context_length_exceeded');
      assert.match(oneWord.json.error.message, /more than 128 tokens/);
      assert.ok(merged < 10_000, `merged ${merged} characters of a 1 MiB prompt`);
      merged = 0;
      const manyWords = await post(url, { prompt: Array.from({ length: 50_000 }, (_, i) => ` w${i}`).join(''), max_tokens: 1 });
      assert.is(manyWords.status, 400);
      assert.ok(merged < 10_000, `merged ${merged} characters of a 50 000-word prompt`);
      // POST /tokenize stops early too (at 16 × n_positions tokens), so a megabyte word does not block the streams
      merged = 0;
      const tokenize = async (content: string) => { const r = await fetch(`${url}/tokenize`, { method: 'POST', body: JSON.stringify({ content }) }); return { status: r.status, json: await r.json() }; };
      const tok = await tokenize('x'.repeat(1 << 20));
      assert.is(tok.status, 400);
      assert.is(tok.json.error.param, 'content');
      assert.match(tok.json.error.message, /more than 2048 tokens/);
      assert.ok(merged < 10_000, `/tokenize merged ${merged} characters of a 1 MiB word`);
      const fits = await tokenize('Hello world');
      assert.equal(fits.json.tokens, tokenizer.encode('Hello world'));
    }), 'prompt test');
  } finally { bpe.encodeWordUncached = orig; }
  // the early stop gives the same ids as encode() whenever the text fits
  const text = 'Hello, my name is <|endoftext|> and I like long words: antidisestablishmentarianism.';
  const ids = tokenizer.encode(text);
  assert.equal(tokenizer.encodeAtMost(text, ids.length), ids);
  assert.is(tokenizer.encodeAtMost(text, ids.length - 1), null);
});

test('a client that drops mid-body is a 400 (incomplete body), not a server error; a number JSON cannot spell is shown', async () => {
  await within(20_000, withServer({}, async (_s, url, port) => {
    await new Promise<void>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', reject);
      sock.write('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"prompt": "Hel', () => setTimeout(() => { sock.destroy(); resolve(); }, 100));
    });
    let page = '';
    for (let i = 0; i < 100 && !(page = await (await fetch(`${url}/metrics`)).text()).includes('route="/v1/completions"'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(page, /gpt2wasm_http_requests_total\{route="\/v1\/completions",code="400"\} 1/);
    assert.not.match(page, /code="500"/);
    const inf = await fetch(`${url}/v1/completions`, { method: 'POST', body: '{"prompt": "x", "max_tokens": 1e400}' });
    assert.is(inf.status, 400);
    assert.match((await inf.json()).error.message, /got Infinity/);
  }), 'abort test');
});

test('listening on a port in use is an OptionError naming the address', async () => {
  await withServer({}, async (_s, _url, port) => {
    const other = createServer({ model, tokenizer, modelId: 'gpt2-tiny' });
    try {
      await other.listen(port, '127.0.0.1');
      assert.unreachable('listen should fail');
    } catch (e) {
      assert.instance(e, GPT2WasmError);
      assert.is((e as GPT2WasmError).code, 'OPTION');
      assert.match((e as Error).message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use`));
    } finally { await other.close({ timeoutMs: 1_000 }); }
  });
});

test('extreme temperature and repetition penalty never give non-finite logits or a NaN draw', () => {
  const V = 50;
  const base = Float32Array.from({ length: V }, (_, i) => Math.sin(i * 1.7) * 8);
  const best = base.indexOf(Math.max(...base));
  // temperature 1e-45: the limit is greedy decoding; every draw must be the argmax
  for (let s = 0; s < 20; s++) {
    const l = base.slice();
    const id = nextToken(l, { do_sample: true, temperature: 1e-45, top_k: 0, top_p: 1, repetition_penalty: 1 }, [], [], () => (s + 0.5) / 20);
    assert.is(id, best, `draw ${s}`);
    assert.ok(l.every((v) => v === v && v !== Infinity), 'no NaN or +Infinity');
  }
  // repetition_penalty 1e-39 makes the seen tokens with positive logits overwhelmingly likely, and stays finite
  const pos = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter((i) => base[i] > 0 && i !== best).slice(0, 2);
  const seen = [...pos, ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter((i) => base[i] < 0).slice(0, 2)];
  assert.is(pos.length, 2);
  const top = pos.reduce((a, b) => (base[a] >= base[b] ? a : b));
  const l = base.slice();
  applyRepetitionPenalty(l, seen, 1e-39);
  assert.ok(l.every((v) => Number.isFinite(v)), 'penalised logits stay finite');
  for (let s = 0; s < 20; s++) {
    const id = nextToken(base.slice(), { do_sample: true, temperature: 1, top_k: 0, top_p: 0.9, repetition_penalty: 1e-39 }, seen, [], () => (s + 0.5) / 20);
    assert.ok(pos.includes(id), `draw ${s} picked ${id}, not a penalised seen token`);
  }
  assert.is(nextToken(base.slice(), { do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1e-39 }, seen, [], () => 0), top);
  // temperature keeps the softmax of a normal row (shift invariance)
  const t = base.slice();
  applyTemperature(t, 0.5);
  const p = (row: ArrayLike<number>) => { const mx = Math.max(...Array.from(row)); const e = Array.from(row, (v) => Math.exp(v - mx)); const z = e.reduce((a, b) => a + b); return e.map((v) => v / z); };
  const want = p(Array.from(base, (v) => v / 0.5));
  p(t).forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `prob ${i}`));
  // a NaN from the model is an error, never a token
  const nan = base.slice(); nan[5] = NaN;
  assert.throws(() => nextToken(nan.slice(), { do_sample: true, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, [], [], () => 0.5), (e: any) => e instanceof GPT2WasmError && /NaN/.test(e.message));
  assert.throws(() => nextToken(nan.slice(), { do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, [], [], () => 0.5), (e: any) => e instanceof GPT2WasmError);
});

test('seed uses all 53 bits; out-of-range seeds are refused', async () => {
  const draws = (seed: number) => { const r = new Random(seed); return Array.from({ length: 8 }, () => r.next()); };
  assert.not.equal(draws(5), draws(5 + 2 ** 32), 'seeds equal mod 2^32 differ');
  assert.not.equal(draws(2 ** 53 - 1), draws(2 ** 53 - 1 - 2 ** 32));
  assert.equal(draws(2 ** 40 + 3), draws(2 ** 40 + 3), 'a seed reproduces');
  for (const bad of [-1, 2 ** 53, 1.5]) assert.throws(() => new Random(bad), (e: any) => e instanceof GPT2WasmError && e.code === 'OPTION');
  await within(20_000, withServer({}, async (_s, url) => {
    const r = await post(url, { prompt: 'x', seed: 2 ** 53, temperature: 1 });
    assert.is(r.status, 400);
    assert.is(r.json.error.param, 'seed');
    const ok = await post(url, { prompt: 'x', seed: 2 ** 53 - 1, temperature: 1, max_tokens: 2 });
    assert.is(ok.status, 200, ok.text);
  }), 'seed test');
});

test('the queue holds queueSize waiting jobs, counting slots as sequences: a running n = 4 job fills 4 slots', () => {
  const spec = { prompt: [1], maxTokens: 50, sampling: { do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, eos: [], onToken() {}, onEnd() {} };
  const s = new Scheduler(model, { maxConcurrency: 4, queueSize: 2 });
  try {
    s.submit({ ...spec, n: 4 });
    s.submit(spec); s.submit(spec);
    assert.throws(() => s.submit(spec), (e: unknown) => e instanceof QueueFullError && /1 requests running and 2 queued|0 requests running and 3 queued/.test((e as Error).message));
  } finally { s.dispose(); }
  // jobs that fit the free slots do not wait, even before the scheduler's next tick admits them
  const t = new Scheduler(model, { maxConcurrency: 4, queueSize: 0 });
  try {
    for (let i = 0; i < 4; i++) t.submit(spec);
    assert.throws(() => t.submit(spec), (e: unknown) => e instanceof QueueFullError);
  } finally { t.dispose(); }
});

test('errors leaving the server, the scheduler and the edge handler are GPT2WasmErrors', () => {
  const typed = (fn: () => unknown, code: string) => {
    try { fn(); } catch (e) { assert.instance(e, GPT2WasmError); assert.is((e as GPT2WasmError).code, code); return; }
    assert.unreachable('did not throw');
  };
  typed(() => createServer({} as any), 'OPTION');
  typed(() => createServer({ model, tokenizer, maxTokens: 0 }), 'OPTION');
  typed(() => createServer({ model, tokenizer, keepAliveTimeoutMs: -1 }), 'OPTION');
  typed(() => createServer({ model, tokenizer, quiet: true } as any), 'OPTION'); // a typo is not a silent default
  const { TextStreamer, createStreamingDecoder } = tokenizerModule;
  typed(() => createStreamingDecoder(tokenizer).pushMany(null as any), 'INPUT');
  typed(() => new TextStreamer(tokenizer, { callback_function: () => {} }).put(null as any), 'INPUT');
  typed(() => new Scheduler(model, { maxConcurrency: 0 }), 'OPTION');
  typed(() => new Scheduler(model, { queueSize: -1 }), 'OPTION');
  typed(() => createFetchHandler({} as any), 'OPTION');
  const s = new Scheduler(model, { maxConcurrency: 1, queueSize: 0 });
  try {
    const spec = { prompt: [1], maxTokens: 1, sampling: { do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, eos: [], onToken() {}, onEnd() {} };
    typed(() => s.submit({ ...spec, prompt: [] }), 'INPUT');
    s.submit(spec);
    typed(() => s.submit(spec), 'BUSY');
    try { s.submit(spec); } catch (e) { assert.instance(e, QueueFullError); }
  } finally { s.dispose(); }
  typed(() => s.submit({ prompt: [1], maxTokens: 1, sampling: { do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, eos: [], onToken() {}, onEnd() {} }), 'DISPOSED');
});

test.run();
