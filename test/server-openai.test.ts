// The server's OpenAI extras and operations routes on the fixture model: logprobs (with echo: the prompt scored)
// against the model's own forward() log-softmax, n choices sharing one prefill, presence/frequency penalties and
// logit_bias against a step-by-step reference, /tokenize and /detokenize, /metrics counters that move as
// requests run, the API key, the drain delay and the served model name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel } from '../src/model/gpt2.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../src/tokenizer/index.js';
import { applyOpenAIPenalties, createServer, servedModelName, type GPT2Server, type ServerOptions } from '../src/server/index.js';
import { LLAMA_CPP_FIELDS, parseCompletionRequest } from '../src/server/request.js';
import { kernelOpts, modelDir } from './helpers/fixtures.js';
import { post, slowModel, spawnServe, within } from './helpers/server.js';

const DIR = modelDir('gpt2-tiny');
let model: GPT2LMHeadModel;
let tokenizer: GPT2Tokenizer;

async function withServer(opts: Partial<ServerOptions>, fn: (s: GPT2Server, url: string) => Promise<void>): Promise<void> {
  const s = createServer({ model, tokenizer, modelId: 'gpt2-tiny', maxTokens: 32, ...opts });
  const { url } = await s.listen(0, '127.0.0.1');
  try { await fn(s, url); } finally { await within(10_000, s.close({ timeoutMs: 2_000 }), 'close'); }
}

/** log softmax of each row of forward()'s logits for `ids` (f64, computed here, not by the server's code): [T][V]. */
async function forwardLogSoftmax(ids: number[]): Promise<Float64Array[]> {
  const out = await model.forward({ input_ids: [ids], use_cache: false });
  const logits = out.logits!.data as Float32Array;
  const V = model.config.vocab_size;
  return ids.map((_, t) => {
    const row = logits.subarray(t * V, (t + 1) * V);
    let mx = -Infinity;
    for (const v of row) mx = Math.max(mx, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - mx);
    return Float64Array.from(row, (v) => v - mx - Math.log(sum));
  });
}

/** Greedy decoding step by step through forward() with OpenAI's penalties and a bias, written independently. */
async function penalisedGreedy(prompt: number[], steps: number, presence: number, frequency: number, bias: Record<number, number>): Promise<number[]> {
  const seq = prompt.slice(), gen: number[] = [];
  const V = model.config.vocab_size;
  for (let s = 0; s < steps; s++) {
    const out = await model.forward({ input_ids: [seq], use_cache: false });
    const logits = (out.logits!.data as Float32Array).slice((seq.length - 1) * V, seq.length * V);
    for (let j = 0; j < V; j++) {
      const c = gen.filter((g) => g === j).length;
      logits[j] -= presence * (c > 0 ? 1 : 0) + frequency * c;
      logits[j] += bias[j] ?? 0;
    }
    let best = 0;
    for (let j = 1; j < V; j++) if (logits[j] > logits[best]) best = j;
    gen.push(best); seq.push(best);
    if (model.config.eos_token_ids.includes(best)) break;
  }
  return gen;
}

/** Values of one metric in a Prometheus text page, by their label string ('' for none). */
function metric(page: string, name: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of page.split('\n')) {
    const r = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (r) m.set(r[1] ?? '', Number(r[2]));
  }
  return m;
}
const one = (page: string, name: string, labels = '') => {
  const v = metric(page, name).get(labels);
  assert.ok(v !== undefined, `metric ${name}${labels} is on the page`);
  return v!;
};

test.before(async () => {
  model = await GPT2LMHeadModel.from_pretrained(DIR, { threads: 2, ...kernelOpts() });
  tokenizer = await AutoTokenizer.from_pretrained(DIR);
});
test.after(async () => { await model?.dispose(); });

test('logprobs with echo score the prompt and the completion as forward() does', async () => {
  await within(60_000, withServer({}, async (_s, url) => {
    const prompt = 'Hello, my name is';
    const ids = tokenizer.encode(prompt);
    const r = await post(url, { prompt, max_tokens: 4, temperature: 0, logprobs: 3, echo: true });
    assert.is(r.status, 200, r.text);
    const c = r.json.choices[0], lp = c.logprobs;
    const n = r.json.usage.completion_tokens;
    assert.is(lp.tokens.length, ids.length + n);
    // the generated ids: greedy generate(), independently of the server
    const gen = Array.from((await model.generate({ input_ids: [ids], max_new_tokens: 4, do_sample: false })).data as BigInt64Array, Number).slice(ids.length);
    const all = [...ids, ...gen];
    assert.is(all.length, ids.length + n);
    assert.equal(lp.tokens, all.map((id) => tokenizer.decode([id])));
    assert.is(c.text, prompt + tokenizer.decode(gen, { skip_special_tokens: true }));
    assert.is(lp.token_logprobs[0], null);
    assert.is(lp.top_logprobs[0], null);
    const ref = await forwardLogSoftmax(all);
    for (let t = 1; t < all.length; t++) {
      const want = ref[t - 1][all[t]];
      assert.ok(Math.abs(lp.token_logprobs[t] - want) < 1e-3, `token ${t}: logprob ${lp.token_logprobs[t]} vs forward() ${want}`);
      const sorted = Array.from(ref[t - 1]).sort((a, b) => b - a);
      const top = Object.values(lp.top_logprobs[t] as Record<string, number>).sort((a, b) => b - a);
      assert.ok(top.length >= 1 && top.length <= 3);
      assert.ok(Math.abs(top[0] - sorted[0]) < 1e-3, `token ${t}: best ${top[0]} vs ${sorted[0]}`);
      if (t >= ids.length) assert.ok(Math.abs(lp.token_logprobs[t] - sorted[0]) < 1e-3, 'greedy tokens are the most likely');
    }
    // offsets into the choice's text
    let at = 0;
    lp.tokens.forEach((tok: string, i: number) => { assert.is(lp.text_offset[i], at); at += tok.length; });
    // without echo: only the completion, offsets continuing after the prompt
    const r2 = await post(url, { prompt, max_tokens: 4, temperature: 0, logprobs: 0 });
    const lp2 = r2.json.choices[0].logprobs;
    assert.equal(lp2.token_logprobs, lp.token_logprobs.slice(ids.length));
    assert.is(lp2.text_offset[0], prompt.length);
    assert.equal(lp2.top_logprobs[0], {});
    // echo without logprobs repeats the prompt; streaming sends logprobs per token
    const r3 = await post(url, { prompt, max_tokens: 4, temperature: 0, echo: true });
    assert.is(r3.json.choices[0].text, c.text);
    assert.is(r3.json.choices[0].logprobs, null);
    const r4 = await post(url, { prompt, max_tokens: 4, temperature: 0, logprobs: 1, stream: true });
    const evs = r4.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    const streamed = evs.flatMap((e) => e.choices[0].logprobs?.token_logprobs ?? []);
    assert.equal(streamed, lp.token_logprobs.slice(ids.length));
    // max_tokens 0 with echo: the prompt alone, scored
    const r5 = await post(url, { prompt, max_tokens: 0, temperature: 0, logprobs: 1, echo: true });
    assert.is(r5.status, 200, r5.text);
    assert.is(r5.json.choices[0].text, prompt);
    assert.equal(r5.json.choices[0].logprobs.token_logprobs, lp.token_logprobs.slice(0, ids.length));
    assert.equal(r5.json.usage, { prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
  }), 'logprobs test');
});

test('streamed logprobs with a stop sequence: exactly the tokens whose text is sent, offsets into it, as the non-streamed response', async () => {
  await within(60_000, withServer({}, async (_s, url) => {
    const prompt = 'Hello, my name is';
    const ids = tokenizer.encode(prompt);
    const N = 16;
    // the free greedy continuation, independently of the server; each token's offset is where its text starts
    const gen = Array.from((await model.generate({ input_ids: [ids], max_new_tokens: N, do_sample: false })).data as BigInt64Array, Number).slice(ids.length);
    const full = tokenizer.decode(gen, { skip_special_tokens: true });
    const offsets = gen.map((_, i) => tokenizer.decode(gen.slice(0, i), { skip_special_tokens: true }).length);
    const piece = (i: number) => tokenizer.decode([gen[i]]);
    gen.forEach((_, i) => assert.is(full.slice(offsets[i], offsets[i] + piece(i).length), piece(i), `token ${i} is its own text (no character over two tokens)`));
    // a stop sequence from the middle of token k to the middle of token k+2: text is held back over two tokens,
    // then the stop cuts inside token k; tokens k+1 and k+2 are never sent, not even their logprobs
    let k = -1;
    for (let i = 1; i + 2 < gen.length && k < 0; i++) {
      if (piece(i).length < 2 || piece(i + 1).length < 1 || piece(i + 2).length < 2) continue;
      const stop = full.slice(offsets[i] + 1, offsets[i + 2] + 1);
      if (full.indexOf(stop) === offsets[i] + 1) k = i;
    }
    assert.ok(k > 0, `no token of ${JSON.stringify(full)} suits a stop sequence over three tokens`);
    const stop = full.slice(offsets[k] + 1, offsets[k + 2] + 1);
    const cut = offsets[k] + 1;
    const kept = gen.slice(0, k + 1); // tokens whose text starts before the cut
    const ref = await forwardLogSoftmax([...ids, ...gen]);
    const req = { prompt, max_tokens: N, temperature: 0, logprobs: 2, stop: [stop] };

    const whole = await post(url, req);
    assert.is(whole.status, 200, whole.text);
    const c = whole.json.choices[0], lp = c.logprobs;
    assert.is(c.text, full.slice(0, cut));
    assert.is(c.finish_reason, 'stop');
    assert.equal(lp.tokens, kept.map((id) => tokenizer.decode([id])), `the tokens of ${JSON.stringify(c.text)} (stop ${JSON.stringify(stop)})`);
    assert.equal(lp.text_offset, kept.map((_, i) => prompt.length + offsets[i]));
    kept.forEach((id, i) => assert.ok(Math.abs(lp.token_logprobs[i] - ref[ids.length + i - 1][id]) < 1e-3, `token ${i}: ${lp.token_logprobs[i]} vs forward() ${ref[ids.length + i - 1][id]}`));

    const r = await post(url, { ...req, stream: true });
    assert.is(r.status, 200, r.text);
    const evs = r.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]);
    let sent = '';
    const streamed = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as unknown[], text_offset: [] as number[] };
    for (const e of evs) {
      sent += e.text;
      const l = e.logprobs;
      if (!l) continue;
      // a chunk carries logprobs only of tokens whose text starts in what has been sent, this chunk included
      for (const o of l.text_offset) assert.ok(o < prompt.length + sent.length, `logprobs of a token at ${o} sent with the text up to ${prompt.length + sent.length}: ${JSON.stringify(e)}`);
      for (const key of Object.keys(streamed) as (keyof typeof streamed)[]) (streamed[key] as unknown[]).push(...l[key]);
    }
    assert.is(sent, c.text, 'the streamed text is the non-streamed text');
    assert.equal(streamed, lp, 'the streamed logprobs, concatenated, are the non-streamed ones');
    assert.is(evs[evs.length - 1].finish_reason, 'stop');

    // a stop sequence at the very start: no text, no logprobs
    const first = full.slice(0, offsets[1] + 1);
    for (const stream of [false, true]) {
      const r0 = await post(url, { ...req, stop: [first], stream });
      const chunks = stream ? r0.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]) : [r0.json.choices[0]];
      assert.is(chunks.map((e) => e.text).join(''), '');
      assert.equal(chunks.flatMap((e) => e.logprobs?.tokens ?? []), [], `stream ${stream}: logprobs of a token whose text was never sent`);
    }
  }), 'stop logprobs test');
});

test('n choices share one prefill; choice i equals a single request with seed + i', async () => {
  await within(60_000, withServer({}, async (s, url) => {
    const prompt = 'The quick brown fox';
    const before = s.stats();
    const r = await post(url, { prompt, max_tokens: 6, temperature: 1, seed: 7, n: 3 });
    assert.is(r.status, 200, r.text);
    const after = s.stats();
    assert.is(r.json.choices.length, 3);
    assert.equal(r.json.choices.map((c: any) => c.index), [0, 1, 2]);
    // the prompt was prefilled once for the three choices
    assert.is(after.prompt_tokens - before.prompt_tokens, tokenizer.encode(prompt).length);
    assert.is(after.generated_tokens - before.generated_tokens, r.json.usage.completion_tokens);
    for (let i = 0; i < 3; i++) {
      const single = await post(url, { prompt, max_tokens: 6, temperature: 1, seed: 7 + i });
      assert.is(r.json.choices[i].text, single.json.choices[0].text, `choice ${i}`);
      assert.is(r.json.choices[i].finish_reason, single.json.choices[0].finish_reason);
    }
    // the three choices are not all the same draw
    assert.ok(new Set(r.json.choices.map((c: any) => c.text)).size > 1, 'different seeds give different choices');
    // streaming: every chunk names its choice, each choice ends with a finish reason
    const st = await post(url, { prompt, max_tokens: 3, temperature: 1, seed: 7, n: 2, stream: true });
    const evs = st.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    for (const i of [0, 1]) {
      const mine = evs.filter((e) => e.choices[0].index === i);
      const single = await post(url, { prompt, max_tokens: 3, temperature: 1, seed: 7 + i });
      assert.is(mine.map((e) => e.choices[0].text).join(''), single.json.choices[0].text);
      assert.ok(mine[mine.length - 1].choices[0].finish_reason);
    }
    assert.is(s.stats().kv_cache_bytes, 0, 'every choice freed its cache');
  }), 'n test');
});

test('presence/frequency penalties and logit_bias follow OpenAI\'s definitions', async () => {
  await within(90_000, withServer({}, async (_s, url) => {
    const prompt = 'Once upon a time';
    const ids = tokenizer.encode(prompt);
    const plain = await post(url, { prompt: ids, max_tokens: 8, temperature: 0 });
    const first = tokenizer.encode(plain.json.choices[0].text)[0];
    const bias = { [first]: -100, 262: 3.5 };
    const want = await penalisedGreedy(ids, 8, 0.7, -1.5, bias);
    const r = await post(url, { prompt: ids, max_tokens: 8, temperature: 0, presence_penalty: 0.7, frequency_penalty: -1.5, logit_bias: bias, logprobs: 0 });
    assert.is(r.status, 200, r.text);
    assert.equal(r.json.choices[0].logprobs.tokens, want.map((id) => tokenizer.decode([id])));
    // a negative frequency penalty makes tokens repeat: the count (not only presence) is exercised
    assert.ok(new Set(want).size < want.length, `some token repeats in ${want}`);
    assert.ok(!want.includes(first), 'the -100 bias bans the greedy first token');
    // a +100 bias forces a token at every step
    const forced = await post(url, { prompt: ids, max_tokens: 5, temperature: 1, seed: 3, logit_bias: { 464: 100 } });
    assert.is(forced.json.choices[0].text, tokenizer.decode([464, 464, 464, 464, 464]));
  }), 'penalties test');
});

test('applyOpenAIPenalties: logit -= presence*[count>0] + frequency*count, then + bias', () => {
  const logits = Float32Array.from([1, 2, 3, 4, 5, 6]);
  applyOpenAIPenalties(logits, new Map([[1, 1], [2, 3]]), 0.5, 0.25, new Map([[2, 10], [5, -100]]));
  assert.equal(Array.from(logits), [1, 2 - 0.5 - 0.25, 3 - 0.5 - 0.75 + 10, 4, 5, 6 - 100]);
});

test('/tokenize and /detokenize as llama.cpp\'s server', async () => {
  await within(30_000, withServer({}, async (_s, url) => {
    const content = 'Hello, world! Ünïcode ✓';
    const t = await post(url, { content }, {}, '/tokenize');
    assert.is(t.status, 200);
    assert.equal(t.json.tokens, tokenizer.encode(content));
    const p = await post(url, { content, with_pieces: true }, {}, '/tokenize');
    assert.equal(p.json.tokens.map((x: any) => x.id), t.json.tokens);
    assert.is(p.json.tokens[0].piece, tokenizer.decode([t.json.tokens[0]]));
    const d = await post(url, { tokens: t.json.tokens }, {}, '/detokenize');
    assert.equal(d.json, { content });
    assert.is((await post(url, { content: 5 }, {}, '/tokenize')).status, 400);
    const bad = await post(url, { tokens: [1, -2] }, {}, '/detokenize');
    assert.is(bad.status, 400);
    assert.is(bad.json.error.param, 'tokens');
    assert.is((await fetch(`${url}/tokenize`)).status, 405);
  }), 'tokenize test');
});

test('/tokenize with_pieces: a token holding part of a UTF-8 character is its byte values, as llama.cpp\'s server gives it', async () => {
  await within(30_000, withServer({}, async (_s, url) => {
    const content = '\u{1F917} x'; // 🤗: four UTF-8 bytes, three GPT-2 byte-level tokens
    const ids = tokenizer.encode(content);
    const r = await post(url, { content, with_pieces: true }, {}, '/tokenize');
    assert.is(r.status, 200);
    const toks: { id: number; piece: string | number[] }[] = r.json.tokens;
    assert.equal(toks.map((x) => x.id), ids);
    const emoji = [...new TextEncoder().encode('\u{1F917}')];
    const split = toks.filter((x) => Array.isArray(x.piece));
    assert.is(split.length, 3, `three byte pieces in ${JSON.stringify(toks)}`);
    assert.equal(split.flatMap((x) => x.piece as number[]), emoji, 'the byte pieces join to the UTF-8 of the emoji');
    for (const x of split) assert.ok((x.piece as number[]).every((b) => Number.isInteger(b) && b >= 0 && b < 256));
    assert.equal(toks.slice(0, 3), split, 'the emoji comes first');
    for (const x of toks.slice(3)) assert.type(x.piece, 'string', `${x.id}: plain ASCII stays a string`);
    assert.is(toks.slice(3).map((x) => x.piece).join(''), ' x');
    const bytes = toks.flatMap((x) => (typeof x.piece === 'string' ? [...new TextEncoder().encode(x.piece)] : x.piece));
    assert.equal(bytes, [...new TextEncoder().encode(content)], 'all pieces\' bytes give the content back');
    // special tokens keep their text; whole characters are strings
    const sp = await post(url, { content: 'a<|endoftext|>\u00fc', with_pieces: true }, {}, '/tokenize');
    assert.ok(sp.json.tokens.some((x: any) => x.id === 50256 && x.piece === '<|endoftext|>'), JSON.stringify(sp.json.tokens));
    assert.ok(sp.json.tokens.every((x: any) => typeof x.piece === 'string'), JSON.stringify(sp.json.tokens));
  }), 'tokenize pieces test');
});

test('/tokenize: llama.cpp\'s add_special and parse_special; non-booleans are 400s naming the field', async () => {
  await within(30_000, withServer({}, async (_s, url) => {
    const content = 'a<|endoftext|>b';
    const dflt = await post(url, { content }, {}, '/tokenize');
    assert.equal(dflt.json.tokens, tokenizer.encode(content)); // as a prompt is tokenized
    assert.ok(dflt.json.tokens.includes(50256), 'the special token text is its id by default');
    const plain = await post(url, { content, parse_special: false }, {}, '/tokenize');
    assert.equal(plain.json.tokens, tokenizer.encode(content, { split_special_tokens: true }));
    assert.not.ok(plain.json.tokens.includes(50256), 'parse_special: false reads it as text');
    assert.equal((await post(url, { content, parse_special: true }, {}, '/tokenize')).json.tokens, dflt.json.tokens);
    // GPT-2 adds no BOS/EOS: add_special either way gives the same ids
    assert.equal((await post(url, { content, add_special: false }, {}, '/tokenize')).json.tokens, tokenizer.encode(content, { add_special_tokens: false }));
    assert.equal((await post(url, { content, add_special: true }, {}, '/tokenize')).json.tokens, dflt.json.tokens);
    for (const k of ['add_special', 'parse_special', 'with_pieces']) {
      const r = await post(url, { content, [k]: 'yes' }, {}, '/tokenize');
      assert.is(r.status, 400);
      assert.is(r.json.error.param, k);
      assert.match(r.json.error.message, new RegExp(`^${k} must be true or false, got "yes"$`));
    }
  }), 'tokenize options test');
});

test('llama.cpp server fields are 400s naming the field and what to send instead; llama.cpp routes are 404s saying so; the server still serves', async () => {
  await within(60_000, withServer({}, async (_s, url) => {
    const refused = async (body: Record<string, unknown>, field: string, hint: RegExp) => {
      const r = await post(url, { prompt: 'Hello', ...body });
      assert.is(r.status, 400, `${field}: ${r.text}`);
      assert.is(r.json.error.param, field);
      assert.is(r.json.error.code, 'llama_cpp_field');
      assert.ok(r.json.error.message.startsWith(`${field} is a llama.cpp server (llama-server) field, not accepted by this OpenAI-style API: `), r.json.error.message);
      assert.match(r.json.error.message, hint);
    };
    // the limits named are this server's (maxTokens 32, default 16)
    await refused({ n_predict: 8 }, 'n_predict', /use max_tokens \(at most 32 here, default 16; there is no -1 for unlimited\)$/);
    await refused({ repeat_penalty: 1.1 }, 'repeat_penalty', /use repetition_penalty/);
    // ignore_eos names this model's end-of-text id in the logit_bias to send
    const eos = model.config.eos_token_ids;
    assert.ok(eos.length > 0);
    await refused({ ignore_eos: true }, 'ignore_eos', new RegExp(`logit_bias \\{${eos.map((id) => `"${id}":-100`).join(',')}\\}`));
    await refused({ min_p: 0.05 }, 'min_p', /min-p sampling is not implemented here; the samplers here are presence_penalty, frequency_penalty and logit_bias, then repetition_penalty, temperature, top_k and top_p/);
    await refused({ grammar: 'root ::= "a"' }, 'grammar', /the completion is free text$/);
    await refused({ n_probs: 3 }, 'n_probs', /use logprobs \(0 to 5\)/);
    await refused({ cache_prompt: true }, 'cache_prompt', /every prompt is computed in full/);
    // several: the first is named, the others listed; null is "not given", as for OpenAI's fields
    await refused({ n_predict: 4, mirostat: 2, typical_p: 0.9 }, 'n_predict', /\(the request also has the llama\.cpp server fields mirostat, typical_p\)$/);
    assert.is((await post(url, { prompt: 'Hello', max_tokens: 2, n_predict: null })).status, 200);
    // before any other complaint: a bad OpenAI field alongside still gets the llama.cpp hint
    await refused({ n_predict: 4, temperature: -1 }, 'n_predict', /use max_tokens/);
    // logit_bias as llama.cpp's pairs
    const pairs = await post(url, { prompt: 'Hello', logit_bias: [[50256, -100]] });
    assert.is(pairs.status, 400);
    assert.match(pairs.json.error.message, /\(llama\.cpp's \[\[id, bias\]\] pairs are not accepted\)$/);
    // llama.cpp's routes
    for (const path of ['/completion', '/completions', '/v1/completion']) {
      const r = await post(url, { prompt: 'Hello', n_predict: 4 }, {}, path);
      assert.is(r.status, 404);
      assert.match(r.json.error.message, new RegExp(`^no route ${path}: llama\\.cpp's native completion endpoint is not served here; use POST /v1/completions`));
    }
    const emb = await post(url, { content: 'Hello' }, {}, '/embedding');
    assert.is(emb.status, 404);
    assert.match(emb.json.error.message, /this server computes no embeddings/);
    // and after all of them, a correct completion: greedy, equal to the model's own greedy continuation
    const ids = tokenizer.encode('Hello world');
    const r = await post(url, { prompt: 'Hello world', max_tokens: 4, temperature: 0 });
    assert.is(r.status, 200);
    const gen = Array.from((await model.generate({ input_ids: [ids], max_new_tokens: 4, do_sample: false })).data as BigInt64Array, Number).slice(ids.length);
    const want = tokenizer.decode(gen);
    assert.is(r.json.choices[0].text, want);
  }), 'llama.cpp fields test');
});

test('LLAMA_CPP_FIELDS: no hinted field is one the API accepts, and the edge handler\'s limits give hints true of it', () => {
  const limits = { vocabSize: 100, maxTokens: 8, minTokens: 0 };
  // every OpenAI field we read passes through parseCompletionRequest without a llama.cpp hint
  for (const k of ['prompt', 'max_tokens', 'temperature', 'top_p', 'top_k', 'repetition_penalty', 'seed', 'stop', 'stream', 'n', 'logprobs', 'echo', 'logit_bias', 'presence_penalty', 'frequency_penalty', 'model', 'user', 'best_of', 'suffix']) {
    assert.not.ok(Object.hasOwn(LLAMA_CPP_FIELDS, k), k);
  }
  // without the OpenAI extras (the edge handler): no hint names logit_bias, logprobs or n
  for (const [k, text] of Object.entries(LLAMA_CPP_FIELDS)) {
    const m = text({ extras: false, maxTokens: 8, defaultMaxTokens: 8, maxN: 1, eos: undefined });
    assert.not.match(m, /logit_bias|logprobs|presence_penalty|\bn \(/, `${k}: ${m}`);
  }
  assert.throws(() => parseCompletionRequest({ prompt: 'a', ignore_eos: true }, limits),
    (e: any) => e.status === 400 && e.param === 'ignore_eos' && /generation always ends at the end-of-text token here; leave the field out$/.test(e.message));
  assert.throws(() => parseCompletionRequest({ prompt: 'a', n_predict: 3 }, limits),
    (e: any) => /use max_tokens \(at most 8 here, default 8;/.test(e.message));
});

test('/metrics: counters, histograms and gauges move as requests run', async () => {
  await within(60_000, withServer({ model: slowModel(model, 40), maxConcurrency: 1 }, async (_s, url) => {
    const page = async () => { const r = await fetch(`${url}/metrics`); assert.is(r.status, 200); assert.match(r.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/); return r.text(); };
    const m0 = await page();
    assert.match(m0, /# TYPE gpt2wasm_time_to_first_token_seconds histogram/);
    assert.is(one(m0, 'gpt2wasm_generated_tokens_total'), 0);
    assert.is(one(m0, 'gpt2wasm_active_sequences'), 0);
    assert.ok(one(m0, 'gpt2wasm_wasm_memory_bytes') >= one(m0, 'gpt2wasm_weights_bytes') && one(m0, 'gpt2wasm_weights_bytes') > 0);
    // two requests, one slot: one runs, one waits
    const a = post(url, { prompt: 'Hello', max_tokens: 20, temperature: 0, logit_bias: { 50256: -100 } });
    const b = post(url, { prompt: 'World', max_tokens: 3, temperature: 0, logit_bias: { 50256: -100 } });
    let mid = '';
    for (let i = 0; i < 200; i++) {
      mid = await page();
      if (one(mid, 'gpt2wasm_active_sequences') === 1 && one(mid, 'gpt2wasm_queue_length') === 1) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.is(one(mid, 'gpt2wasm_active_sequences'), 1);
    assert.is(one(mid, 'gpt2wasm_queue_length'), 1);
    assert.ok(one(mid, 'gpt2wasm_kv_cache_reserved_bytes') > 0);
    assert.ok(one(mid, 'gpt2wasm_kv_cache_used_bytes') > 0 && one(mid, 'gpt2wasm_kv_cache_used_bytes') <= one(mid, 'gpt2wasm_kv_cache_reserved_bytes'));
    const [ra, rb] = await Promise.all([a, b]);
    assert.is(ra.status, 200); assert.is(rb.status, 200);
    await post(url, { prompt: 'x', max_tokens: 99 }); // a 400
    const m1 = await page();
    assert.is(one(m1, 'gpt2wasm_generated_tokens_total'), ra.json.usage.completion_tokens + rb.json.usage.completion_tokens);
    assert.is(one(m1, 'gpt2wasm_generated_tokens_total'), 23);
    assert.is(one(m1, 'gpt2wasm_prompt_tokens_total'), ra.json.usage.prompt_tokens + rb.json.usage.prompt_tokens);
    assert.is(one(m1, 'gpt2wasm_http_requests_total', '{route="/v1/completions",code="200"}'), 2);
    assert.is(one(m1, 'gpt2wasm_http_requests_total', '{route="/v1/completions",code="400"}'), 1);
    assert.is(one(m1, 'gpt2wasm_completions_total', '{outcome="completed"}'), 2);
    assert.is(one(m1, 'gpt2wasm_time_to_first_token_seconds_count'), 2);
    assert.is(one(m1, 'gpt2wasm_time_to_first_token_seconds_bucket', '{le="+Inf"}'), 2);
    assert.is(one(m1, 'gpt2wasm_inter_token_latency_seconds_count'), 23 - 2);
    // the 40 ms steps are in the per-token histogram: none under 10 ms
    assert.is(one(m1, 'gpt2wasm_inter_token_latency_seconds_bucket', '{le="0.01"}'), 0);
    assert.is(one(m1, 'gpt2wasm_active_sequences'), 0);
    assert.is(one(m1, 'gpt2wasm_kv_cache_reserved_bytes'), 0);
  }), 'metrics test');
});

test('--api-key: Bearer required everywhere but /health, 401 otherwise', async () => {
  await within(30_000, withServer({ apiKey: 'sekret-key' }, async (_s, url) => {
    const get = (path: string, auth?: string) => fetch(`${url}${path}`, auth ? { headers: { authorization: auth } } : {});
    const none = await get('/v1/models');
    assert.is(none.status, 401);
    assert.is(none.headers.get('www-authenticate'), 'Bearer');
    assert.is((await none.json()).error.code, 'invalid_api_key');
    assert.is((await get('/v1/models', 'Bearer wrong')).status, 401);
    assert.is((await get('/v1/models', 'Bearer sekret-key-and-more')).status, 401);
    assert.is((await get('/v1/models', 'Basic sekret-key')).status, 401);
    assert.is((await get('/v1/models', 'Bearer sekret-key')).status, 200);
    assert.is((await get('/metrics')).status, 401);
    assert.is((await get('/metrics', 'Bearer sekret-key')).status, 200);
    assert.is((await get('/health')).status, 200);
    assert.is((await post(url, { prompt: 'x', max_tokens: 1 })).status, 401);
    assert.is((await post(url, { content: 'x' }, {}, '/tokenize')).status, 401);
    const ok = await post(url, { prompt: 'x', max_tokens: 1 }, { headers: { authorization: 'Bearer sekret-key' } });
    assert.is(ok.status, 200);
  }), 'auth test');
  assert.throws(() => createServer({ model, tokenizer, apiKey: '' }), /apiKey/);
});

test('close() with a drain delay fails /health first while still serving', async () => {
  const s = createServer({ model, tokenizer, drainDelayMs: 1_000 });
  const { url } = await s.listen(0, '127.0.0.1');
  assert.is((await fetch(`${url}/health`)).status, 200);
  const closed = s.close({ timeoutMs: 2_000 });
  const h = await fetch(`${url}/health`);
  assert.is(h.status, 503);
  assert.is((await h.json()).status, 'draining');
  assert.is((await post(url, { prompt: 'x', max_tokens: 2 })).status, 200, 'still serving during the drain delay');
  await within(10_000, closed, 'close');
  await fetch(`${url}/health`).then(() => assert.unreachable('the listener is closed'), () => {});
});

test('the served model name is the Hub id or the directory name, never an absolute path', () => {
  assert.is(servedModelName(DIR), 'gpt2-tiny');
  assert.is(servedModelName(`${DIR}/`), 'gpt2-tiny');
  assert.is(servedModelName('./models/my-gpt2'), 'my-gpt2');
  assert.is(servedModelName('openai-community/gpt2'), 'openai-community/gpt2');
  assert.is(servedModelName('gpt2'), 'gpt2');
});

test('gpt2-wasm serve reads the model flags as the other commands do: --dtype takes a plan (q8,wte=fp32)', async () => {
  await within(60_000, (async () => {
    const p = await spawnServe(['--model', DIR, '--port', '0', '--threads', '1', '--dtype', 'q8,wte=fp32', '--kv-dtype', 'fp16', '--quiet']);
    try {
      const health = await (await fetch(`${p.url}/health`)).json();
      assert.is(health.dtype, 'q8', 'the plan\'s default dtype');
      const r = await post(p.url, { prompt: 'Hello', max_tokens: 3, temperature: 0 });
      assert.is(r.status, 200, r.text);
      p.child.kill('SIGTERM');
      assert.is(await within(20_000, p.exited, 'exit'), 0, p.err);
    } finally { if (p.child.exitCode === null) p.child.kill('SIGKILL'); }
  })(), 'serve --dtype test');
});

test.run();
