// Generation: KV-cache decoding against full recomputation, sliding context,
// chunked prefill, and the sampling processors' statistics.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, GPT2WasmError, Tensor } from '../src/index.js';
import { applyTopK, applyTopP, applyTemperature, applyRepetitionPenalty, argmax, sampleFrom } from '../src/generation/logits-process.js';
import { Random } from '../src/generation/random.js';
import { compareClose, kernelOpts, modelDir, readCase, readReference } from './helpers/fixtures.js';

const ids = (t: Tensor) => Array.from(t.data as BigInt64Array, Number);

// The fixture greedy cases (lm_greedy, cross_attention_greedy) run in test/fixtures.test.ts on every kernel set.

// Both KV cache dtypes: an f16 decode step reads halves rounded from K/V that agree with the full forward's to
// f32 rounding, so it agrees as closely as with an f32 cache.
for (const kv_dtype of ['fp32', 'fp16'] as const) {
  test(`incremental decoding with the ${kv_dtype} KV cache equals full recomputation, up to capacity`, async () => {
    const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, kv_dtype, ...kernelOpts() });
    try {
      assert.is(model.kv_dtype, kv_dtype);
      const cap = model.config.n_positions;
      const prompt = [464, 2068, 7586, 21831];
      const a = await model.generate({ input_ids: [prompt], max_new_tokens: cap - prompt.length, do_sample: false });
      const b = await model.generate({ input_ids: [prompt], max_new_tokens: cap - prompt.length, do_sample: false, use_cache: false });
      assert.equal(ids(a), ids(b));
      assert.is(ids(a).length, cap);
      // step-by-step logits: a decode step on the cached prefix vs a full forward of the same tokens
      const seq = ids(a);
      for (const n of [5, 17, 64, cap]) {
        const full = await model.forward({ input_ids: [seq.slice(0, n)], logits_to_keep: 1 });
        const past = (await model.forward({ input_ids: [seq.slice(0, n - 1)] })).past_key_values!;
        const step = await model.forward({ input_ids: [[seq[n - 1]]], past_key_values: past });
        const msg = compareClose(step.logits!.data as Float32Array, full.logits!.data as Float32Array, { atol: 1e-4, rtol: 1e-4 }, `${kv_dtype} logits at ${n}`);
        if (msg) assert.unreachable(msg);
      }
    } finally { await model.dispose(); }
  });
}

test('left-padded batch generation equals each row generated alone', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 2, ...kernelOpts() });
  try {
    const rows = [[15496, 11, 616, 3290, 318], [464, 2068]];
    const T = 5, pad = 50256;
    const input_ids = rows.map((r) => [...Array(T - r.length).fill(pad), ...r]);
    const attention_mask = rows.map((r) => [...Array(T - r.length).fill(0), ...Array(r.length).fill(1)]);
    const warn = console.warn, said: string[] = [];
    console.warn = (m: string) => { said.push(m); };
    let batch: Tensor;
    try {
      batch = await model.generate({ input_ids, attention_mask, max_new_tokens: 20, do_sample: false, eos_token_id: null });
      assert.is(said.length, 0, 'left padding: no warning');
      // right padding: transformers' warning, once per model
      const right = { input_ids: rows.map((r) => [...r, ...Array(T - r.length).fill(pad)]), attention_mask: rows.map((r) => [...Array(r.length).fill(1), ...Array(T - r.length).fill(0)]) };
      await model.generate({ ...right, max_new_tokens: 1 });
      await model.generate({ ...right, max_new_tokens: 1 });
      assert.is(said.length, 1);
      assert.match(said[0], /row 1 of the batch is right-padded.*padding_side: 'left'/);
    } finally { console.warn = warn; }
    const all = ids(batch);
    // transformers.js's name for the prompt: inputs
    assert.equal(ids(await model.generate({ inputs: input_ids, attention_mask, max_new_tokens: 20, do_sample: false, eos_token_id: null })), all);
    const both = await model.generate({ inputs: input_ids, input_ids, max_new_tokens: 1 }).then(() => null, (e) => e);
    assert.ok(both instanceof GPT2WasmError && both.code === 'OPTION', `${both}`);
    for (let b = 0; b < 2; b++) {
      const alone = ids(await model.generate({ input_ids: [rows[b]], max_new_tokens: 20, do_sample: false, eos_token_id: null }));
      const row = all.slice(b * (T + 20), (b + 1) * (T + 20)).slice(T - rows[b].length);
      assert.equal(row, alone, `row ${b}`);
    }
  } finally { await model.dispose(); }
});

test('per-row EOS: a finished row is padded while the others go on; min_new_tokens holds EOS back', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const c = readCase('lm_greedy');
    const eos = c.expected_ids[c.input_ids.length + 2]; // row 0's third new token
    const other = [464, 2068, 7586, 21831];
    const free = ids(await model.generate({ input_ids: [other], max_new_tokens: 10, do_sample: false, eos_token_id: null }));
    assert.ok(!free.slice(4).includes(eos), 'pick a prompt whose row never emits the eos');
    const out = ids(await model.generate({ input_ids: [c.input_ids, other], max_new_tokens: 10, do_sample: false, eos_token_id: eos, pad_token_id: 0 }));
    const row0 = out.slice(0, 14), row1 = out.slice(14);
    assert.equal(row0.slice(0, 7), c.expected_ids.slice(0, 7));
    assert.equal(row0.slice(7), [0, 0, 0, 0, 0, 0, 0]);
    assert.equal(row1, free);
    const held = ids(await model.generate({ input_ids: [c.input_ids], max_new_tokens: 5, min_new_tokens: 5, do_sample: false, eos_token_id: eos }));
    assert.is(held.length, c.input_ids.length + 5);
    assert.not.ok(held.slice(c.input_ids.length).includes(eos));
  } finally { await model.dispose(); }
});

test('chunked prefill (chunk 1, 7, 64) equals a one-shot forward', async () => {
  const c = readCase('lm_forward'), ref = readReference(c.expected);
  for (const chunk of [1, 7, 64]) {
    const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, prefill_chunk: chunk, ...kernelOpts() });
    try {
      const out = await model.forward({ input_ids: [c.input_ids], output_attentions: true });
      const msg = compareClose(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, `logits chunk ${chunk}`)
        ?? compareClose(out.attentions![1].data as Float32Array, ref['attentions.1'].data, c.tolerance, `attentions chunk ${chunk}`);
      if (msg) assert.unreachable(msg);
    } finally { await model.dispose(); }
  }
});

test("context_overflow 'error' fails before any work; 'slide' equals running on the truncated window", async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const prompt = [7454, 2402, 257, 640];
    let err: any;
    try { await model.generate({ input_ids: [prompt], max_new_tokens: 20, cache_capacity: 16 }); } catch (e) { err = e; }
    assert.ok(err && err.code === 'INPUT' && /context too long/.test(err.message), String(err));
    const cap = 16, window = 8;
    const slid = ids(await model.generate({ input_ids: [prompt], max_new_tokens: 20, cache_capacity: cap, context_overflow: 'slide', do_sample: false, eos_token_id: null }));
    // replay: each token after the first slide must be the argmax of a fresh forward over the window it saw
    let start = 0;
    for (let n = prompt.length; n < slid.length; n++) {
      if (n - start > cap) start = n - window;
      const out = await model.forward({ input_ids: [slid.slice(start, n)], logits_to_keep: 1 });
      const l = out.logits!.data as Float32Array;
      let best = 0; for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
      assert.is(slid[n], best, `token ${n} (window starts at ${start})`);
    }
    assert.ok(slid.length === prompt.length + 20);
  } finally { await model.dispose(); }
});

test("context_overflow 'slide' on a left-padded batch: each row slides on its own tokens and equals the row generated alone", async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 2, ...kernelOpts() });
  try {
    // prompts of 10, 2 and 5 tokens: each row fills a 16-token context (and slides) at a different step
    const rows = [[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13], [40, 716], [15496, 11, 616, 3290, 318]];
    const N = 30, pad = 50256;
    const opts = { max_new_tokens: N, do_sample: false, eos_token_id: null, cache_capacity: 16, context_overflow: 'slide' as const };
    const alone: number[][] = [];
    for (const r of rows) alone.push(ids(await model.generate({ input_ids: [r], ...opts })));
    // T 10: the longest row unpadded; T 12: every row padded
    for (const T of [10, 12]) {
      const input_ids = rows.map((r) => [...Array(T - r.length).fill(pad), ...r]);
      const attention_mask = rows.map((r) => [...Array(T - r.length).fill(0), ...Array(r.length).fill(1)]);
      for (const use_cache of [true, false]) {
        const all = ids(await model.generate({ input_ids, attention_mask, ...opts, use_cache }));
        assert.is(all.length, rows.length * (T + N));
        for (let b = 0; b < rows.length; b++) {
          const row = all.slice(b * (T + N), (b + 1) * (T + N));
          assert.equal(row.slice(0, T - rows[b].length), Array(T - rows[b].length).fill(pad), `row ${b} padding (T ${T}, use_cache ${use_cache})`);
          assert.equal(row.slice(T - rows[b].length), alone[b], `row ${b} (T ${T}, use_cache ${use_cache})`);
        }
      }
    }
    // a row that finishes early (EOS) only gets padding while the others go on sliding as they would alone
    const eos = alone[1].slice(rows[1].length).find((t) => !alone[0].includes(t) && !alone[2].includes(t))!, T = 10;
    assert.ok(eos !== undefined && alone[1].indexOf(eos) < rows[1].length + 8, 'pick an eos only row 1 emits, early');
    const input_ids = rows.map((r) => [...Array(T - r.length).fill(pad), ...r]);
    const attention_mask = rows.map((r) => [...Array(T - r.length).fill(0), ...Array(r.length).fill(1)]);
    const all = ids(await model.generate({ input_ids, attention_mask, ...opts, eos_token_id: eos, pad_token_id: 0 }));
    const width = all.length / rows.length;
    for (let b = 0; b < rows.length; b++) {
      const one = ids(await model.generate({ input_ids: [rows[b]], ...opts, eos_token_id: eos }));
      const row = all.slice(b * width, (b + 1) * width).slice(T - rows[b].length);
      assert.equal(row.slice(0, one.length), one, `row ${b} with eos ${eos}`);
      assert.ok(row.slice(one.length).every((t) => t === 0), `row ${b} is padded after its eos`);
    }
    assert.ok(width - T > rows[1].length + 16, 'another row went on past a slide after row 1 finished');
  } finally { await model.dispose(); }
});

test('sampling is reproducible for a seed and differs across seeds', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const g = (seed: number) => model.generate({ input_ids: [[464, 2068]], max_new_tokens: 12, do_sample: true, top_k: 0, seed }).then(ids);
    assert.equal(await g(1), await g(1));
    assert.not.equal(await g(1), await g(2));
  } finally { await model.dispose(); }
});

test('top-k never leaves the k best; top-p keeps the smallest set reaching p; temperature sharpens', () => {
  const rng = new Random(7);
  const V = 50;
  const base = Float32Array.from({ length: V }, () => rng.next() * 6 - 3);
  const order = Array.from(base.keys()).sort((a, b) => base[b] - base[a]);
  for (let trial = 0; trial < 2000; trial++) {
    const l = Float32Array.from(base); applyTopK(l, 5);
    assert.ok(order.slice(0, 5).includes(sampleFrom(l, rng.next())));
  }
  const probs = (() => { const m = Math.max(...base); const e = Array.from(base, (v) => Math.exp(v - m)); const s = e.reduce((a, b) => a + b); return e.map((v) => v / s); })();
  for (const p of [0.1, 0.5, 0.9, 0.99]) {
    const l = Float32Array.from(base); applyTopP(l, p);
    const kept = order.filter((i) => l[i] !== -Infinity);
    const mass = kept.reduce((s, i) => s + probs[i], 0);
    assert.ok(mass >= p - 1e-9, `mass ${mass} < ${p}`);
    assert.ok(mass - probs[kept[kept.length - 1]] < p, 'not the smallest set');
    assert.equal(kept, order.slice(0, kept.length));
  }
  // empirical frequencies follow softmax(l / T): a low temperature concentrates mass on the argmax
  const freq = (t: number) => { let hits = 0; for (let i = 0; i < 4000; i++) { const l = Float32Array.from(base); applyTemperature(l, t); if (sampleFrom(l, rng.next()) === order[0]) hits++; } return hits / 4000; };
  const cold = freq(0.3), warm = freq(1), hot = freq(3);
  assert.ok(cold > warm && warm > hot, `${cold} ${warm} ${hot}`);
  assert.ok(Math.abs(warm - probs[order[0]]) < 0.03, `sampled ${warm} vs softmax ${probs[order[0]]}`);
  const l = Float32Array.from([2, -2, 1]); applyRepetitionPenalty(l, [0, 1], 2);
  assert.equal(Array.from(l), [1, -4, 1]);
});

test('argmax is the first index of the largest logit (ties, ±0, -Infinity, any length) and reports a NaN', () => {
  // the one-pass scan it replaced
  const scan = (l: Float32Array) => { let best = 0, v = -Infinity; for (let i = 0; i < l.length; i++) if (l[i] > v) { v = l[i]; best = i; } return best; };
  const rng = new Random(5);
  const pick = [0, -0, 1, -1, 2, -Infinity, 3.5, -3.5];
  for (let trial = 0; trial < 3000; trial++) {
    const n = 1 + Math.floor(rng.next() * 23);
    const l = Float32Array.from({ length: n }, () => trial % 2 ? pick[Math.floor(rng.next() * pick.length)] : rng.next() * 4 - 2);
    assert.is(argmax(l), scan(l), `[${Array.from(l, (v) => Object.is(v, -0) ? '-0' : v)}]`);
  }
  assert.is(argmax(new Float32Array(0)), 0);
  assert.is(argmax(Float32Array.from([-Infinity, -Infinity, -Infinity, -Infinity, -Infinity])), 0);
  for (const at of [0, 3, 4, 6]) {
    const l = Float32Array.from([1, 5, 2, 7, 0, 9, 3]); l[at] = NaN;
    assert.throws(() => argmax(l), (e: Error) => e.message.includes(`NaN logit (token ${at})`));
  }
});

test('decodeStep batches independent sequences and equals each decoded alone', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 2, ...kernelOpts() });
  try {
    const prompts = [[15496, 11, 616], [464, 2068, 7586, 21831, 13], [7454]];
    const argmax = (l: Float32Array) => { let b = 0; for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i; return b; };
    const caches = prompts.map(() => model.createCache(1, 64));
    const seqs = prompts.map((p) => p.slice());
    const V = model.config.vocab_size;
    let next = prompts.map((p, i) => argmax(model.prefill(caches[i], p)));
    for (let step = 0; step < 10; step++) {
      next.forEach((t, i) => seqs[i].push(t));
      const logits = model.decodeStep(next.map((id, i) => ({ cache: caches[i], id, pos: seqs[i].length - 1 })));
      next = next.map((_, i) => argmax(logits.subarray(i * V, (i + 1) * V)));
    }
    caches.forEach((c) => c.dispose());
    for (let i = 0; i < prompts.length; i++) {
      const alone = ids(await model.generate({ input_ids: [prompts[i]], max_new_tokens: 10, do_sample: false, eos_token_id: null }));
      assert.equal(seqs[i], alone, `sequence ${i}`);
    }
  } finally { await model.dispose(); }
});

test('decodeStep into a reused array gives the bits of a new array each step; too small an array is an InputError', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const V = model.config.vocab_size;
    const mk = () => { const c = model.createCache(1, 32); model.prefill(c, [464, 2068, 7586]); return c; };
    const [a, b] = [mk(), mk()];
    const out = new Float32Array(2 * V + 7).fill(NaN);
    for (let step = 0; step < 4; step++) {
      const id = 100 + step * 17;
      const fresh = model.decodeStep([{ cache: a, id, pos: a.length }]);
      const into = model.decodeStep([{ cache: b, id, pos: b.length }], out);
      assert.is(into.buffer, out.buffer);
      assert.is(into.length, V);
      assert.ok(Buffer.from(fresh.buffer, fresh.byteOffset, fresh.byteLength).equals(Buffer.from(into.buffer, into.byteOffset, into.byteLength)), `step ${step}`);
    }
    assert.throws(() => model.decodeStep([{ cache: a, id: 1, pos: a.length }], new Float32Array(V - 1)), (e: GPT2WasmError) => e.code === 'INPUT' && /logits need/.test(e.message));
    assert.is(a.length, 7, 'a refused step stores nothing');
    [a, b].forEach((c) => c.dispose());
  } finally { await model.dispose(); }
});


test('options: sampling-only values are ignored when greedy (as transformers); wrong types and ranges are named', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  const expectOption = async (p: Promise<unknown>, re: RegExp) => {
    const e = await p.then(() => null, (x) => x);
    assert.ok(e instanceof GPT2WasmError && e.code === 'OPTION', `expected an OPTION error matching ${re}, got ${e?.stack ?? e}`);
    assert.match(e.message, re);
  };
  try {
    const prompt = [464, 2068, 7586];
    const greedy = ids(await model.generate({ input_ids: [prompt], max_new_tokens: 6, do_sample: false }));
    // a generation_config.json with do_sample false and temperature 0.0 (common on the Hub) runs greedy
    assert.equal(ids(await model.generate({ input_ids: [prompt], max_new_tokens: 6, do_sample: false, temperature: 0, top_p: 0, top_k: 0 })), greedy);
    // top_p 0 keeps the single most likely token: sampling becomes greedy
    assert.equal(ids(await model.generate({ input_ids: [prompt], max_new_tokens: 6, do_sample: true, top_p: 0, seed: 3 })), greedy);
    await expectOption(model.generate({ input_ids: [prompt], do_sample: true, temperature: 0 }), /temperature must be a positive number/);
    await expectOption(model.generate({ input_ids: [prompt], do_sample: 'false' as any }), /do_sample must be true or false, got "false"/);
    await expectOption(model.generate({ input_ids: [prompt], use_cache: 'no' as any }), /use_cache must be true or false/);
    await expectOption(model.generate({ input_ids: [prompt], max_length: 10.5 }), /max_length must be a non-negative integer, got 10\.5/);
    await expectOption(model.generate({ input_ids: [prompt], max_length: '8' as any }), /max_length must be a non-negative integer, got "8"/);
    await expectOption(model.generate({ input_ids: [prompt], min_length: -3 }), /min_length must be a non-negative integer/);
    await expectOption(model.generate({ input_ids: [prompt], num_beams: 0 } as any), /num_beams must be 1 .*got 0/);
    await expectOption(model.generate({ input_ids: [prompt], signal: 5 as any }), /signal must be an AbortSignal/);
    await expectOption(model.generate({ input_ids: [prompt], streamer: {} as any }), /streamer must have put\(ids\) and end\(\)/);
    await expectOption(model.generate({ input_ids: [prompt], stop: 'x', tokenizer: 5 as any }), /tokenizer must have a decode/);
  } finally { await model.dispose(); }
});

test('streamer failures: put() errors end the generation with end() still called; an async put() that rejects is an error, not a crash', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const input_ids = [[464, 2068, 7586]];
    for (const at of [0, 2]) { // the prompt's put, a later one
      let ended = 0, puts = 0;
      const e = await model.generate({ input_ids, max_new_tokens: 5, streamer: { put() { if (puts++ === at) throw new Error(`put ${at}`); }, end() { ended++; throw new Error('end too'); } } }).then(() => null, (x) => x);
      assert.is(e?.message, `put ${at}`, 'put()\'s error is reported, not end()\'s');
      assert.is(ended, 1);
    }
    let ended = 0;
    const e = await model.generate({ input_ids, max_new_tokens: 5, streamer: { async put(x: number[][]) { if (x[0].length === 1) throw new Error('async put'); }, end() { ended++; } } as any }).then(() => null, (x) => x);
    assert.is(e?.message, 'async put');
    assert.is(ended, 1);
  } finally { await model.dispose(); }
});
test('ngramBans and badWordBans are transformers\' NoRepeatNGram and NoBadWords processors', async () => {
  const { ngramBans, badWordBans } = await import('../src/generation/generate.js');
  assert.equal(ngramBans([1, 2, 3, 1, 2], 3), [3]); // 1 2 → 3 would repeat "1 2 3"
  assert.equal(ngramBans([1, 2, 1, 2, 1], 2).sort(), [2, 2].sort()); // after 1: 2 (twice seen)
  assert.equal(ngramBans([5, 6], 1).sort(), [5, 6]); // n = 1: every id seen
  assert.equal(ngramBans([1, 2], 4), []); // too short
  assert.equal(badWordBans([7, 8, 9], [[4], [8, 9, 10], [9, 11], [7, 12]]).sort(), [4, 10, 11].sort());
});

test('generation config as transformers reads it: default 20 new tokens, min lengths, banned tokens; options override', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  const saved = { task: model.config.task_specific_params, gc: model.generation_config };
  try {
    (model.config as any).task_specific_params = undefined;
    (model as any).generation_config = null;
    const prompt = Array.from({ length: 25 }, (_, i) => 464 + i);
    // no max anywhere: 20 new tokens whatever the prompt's length (a 25-token prompt failed with 'max_length 20')
    assert.is(ids(await model.generate({ input_ids: [prompt] })).length, 45);
    const eos = model.config.eos_token_ids[0];
    // min_new_tokens / min_length from the generation config hold eos back, as the same options do
    const short = [464, 2068];
    const free = ids(await model.generate({ input_ids: [short], max_new_tokens: 6, eos_token_id: [ids(await model.generate({ input_ids: [short], max_new_tokens: 1 }))[2]] }));
    assert.is(free.length, 3, 'the first new token ends the generation when it is eos');
    (model as any).generation_config = { min_new_tokens: 4 };
    const held = ids(await model.generate({ input_ids: [short], max_new_tokens: 6, eos_token_id: [free[2]] }));
    assert.ok(held.length >= 2 + 5, `min_new_tokens 4 from the config: ${held}`);
    assert.equal(held, ids(await model.generate({ input_ids: [short], max_new_tokens: 6, eos_token_id: [free[2]], min_new_tokens: 4 })));
    (model as any).generation_config = { min_length: 6 };
    assert.equal(ids(await model.generate({ input_ids: [short], max_new_tokens: 6, eos_token_id: [free[2]] })), held);
    // no_repeat_ngram_size (config or option): no bigram twice; suppress_tokens never appear; begin_suppress_tokens not first
    (model as any).generation_config = { no_repeat_ngram_size: 2 };
    const seq = ids(await model.generate({ input_ids: [short], max_new_tokens: 40 }));
    const grams = seq.slice(1).map((t, i) => `${seq[i]} ${t}`);
    assert.is(new Set(grams).size, grams.length, `a bigram repeats: ${seq}`);
    (model as any).generation_config = null;
    const plain = ids(await model.generate({ input_ids: [short], max_new_tokens: 8 }));
    const banned = plain.slice(2, 5);
    const sup = ids(await model.generate({ input_ids: [short], max_new_tokens: 8, suppress_tokens: banned }));
    assert.ok(sup.slice(2).every((t) => !banned.includes(t)), `${sup}`);
    const begin = ids(await model.generate({ input_ids: [short], max_new_tokens: 2, begin_suppress_tokens: [plain[2]] }));
    assert.is.not(begin[2], plain[2]);
    const bad = ids(await model.generate({ input_ids: [short], max_new_tokens: 8, bad_words_ids: [[plain[3], plain[4]]] }));
    for (let i = 1; i < bad.length; i++) assert.ok(!(bad[i - 1] === plain[3] && bad[i] === plain[4]), `${bad}`);
    for (const o of [{ no_repeat_ngram_size: -1 }, { bad_words_ids: [[]] }, { suppress_tokens: [50257] }]) {
      const e = await model.generate({ input_ids: [short], ...o } as any).then(() => null, (x) => x);
      assert.ok(e instanceof GPT2WasmError && e.code === 'OPTION', JSON.stringify(o));
    }
  } finally {
    (model.config as any).task_specific_params = saved.task;
    (model as any).generation_config = saved.gc;
    await model.dispose();
  }
});

test.run();
