// The f16 KV cache (kv_dtype 'fp16'): the greedy fixture cases, decodeStep against forward with
// past_key_values through a half cache, the memory it takes, and the option's validation. (Cached decoding against full
// recomputation runs for both dtypes in generation.test.ts; every forward fixture case also runs with it in
// fixtures.test.ts; the kernels are fuzzed in kernels.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, OptionError, Tensor } from '../src/index.js';
import { floatToHalf, halfTable } from '../src/io/half.js';
import { kernelOpts, modelDir, readCase, readReference } from './helpers/fixtures.js';

const ids = (t: Tensor) => Array.from(t.data as BigInt64Array, Number);
const fp16 = { kv_dtype: 'fp16' as const };

test('fp16 KV cache: lm_greedy reproduces the reference ids (1 and 2 threads)', async () => {
  const c = readCase('lm_greedy');
  for (const threads of [1, 2]) {
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), { threads, ...fp16, ...kernelOpts() });
    try {
      const out = await model.generate({ input_ids: [c.input_ids], max_new_tokens: c.max_new_tokens, do_sample: false });
      assert.equal(ids(out), c.expected_ids, `threads ${threads}`);
    } finally { await model.dispose(); }
  }
});

test('fp16 KV cache: cross_attention_greedy reproduces the reference ids (cross-attention K/V in halves too)', async () => {
  const c = readCase('cross_attention_greedy');
  const enc = readReference('cross_attention.safetensors')[c.encoder_from.split(':')[1].replace('[0]', '')];
  const S = enc.shape[1], E = enc.shape[2];
  const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), { threads: 1, ...fp16, ...kernelOpts() });
  try {
    const out = await model.generate({
      input_ids: [c.input_ids], max_new_tokens: c.max_new_tokens, do_sample: false,
      encoder_hidden_states: new Tensor('float32', enc.data.subarray(0, S * E), [1, S, E]), encoder_attention_mask: [c.encoder_attention_mask],
    });
    assert.equal(ids(out), c.expected_ids);
  } finally { await model.dispose(); }
});

test('fp16 KV cache: a decode step through decodeStep and through forward with past_key_values give the same bits', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 2, ...fp16, ...kernelOpts() });
  try {
    const prompt = [464, 2068, 7586, 21831, 318, 257];
    const cache = model.createCache(1, 32);
    try {
      model.prefill(cache, prompt.slice(0, -1));
      const a = model.decodeStep([{ cache, id: prompt[prompt.length - 1], pos: prompt.length - 1 }]);
      const past = (await model.forward({ input_ids: [prompt.slice(0, -1)] })).past_key_values!;
      const b = (await model.forward({ input_ids: [prompt.slice(-1)], past_key_values: past })).logits!.data as Float32Array;
      assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), 'decodeStep and forward differ');
    } finally { cache.dispose(); }
  } finally { await model.dispose(); }
});

test('fp16 KV cache: half the bytes; past_key_values in and out are the stored halves', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    assert.is(model.kv_dtype, 'fp32');
    const { n_layer: L, n_head: H, n_embd: E } = model.config, D = E / H, cap = 40;
    const c32 = model.createCache(2, cap), c16 = model.createCache(2, cap, 'fp16');
    try {
      assert.is(c32.self.bytes, 2 * L * 2 * H * cap * D * 4);
      assert.is(c16.self.bytes, c32.self.bytes / 2);
      assert.is(c16.dtype, 'fp16');
    } finally { c32.dispose(); c16.dispose(); }
    model.kv_dtype = 'fp16';
    // arbitrary f32 past (with values at the top of the half range and below its subnormals): what comes back is
    // each value rounded to the nearest half, and running on it equals running on those halves given as f32
    const P = 3, r = (i: number) => Math.sin(i * 12.9898) * 43758.5453 % 1;
    const mk = (l: number, kv: number) => Float32Array.from({ length: H * P * D }, (_, i) => (i === 5 ? 65519 : i === 6 ? -1e-9 : i === 7 ? 3e-6 : r(i + 1000 * l + 100 * kv) * 3));
    const past = Array.from({ length: L }, (_, l) => ({ key: new Tensor('float32', mk(l, 0), [1, H, P, D]), value: new Tensor('float32', mk(l, 1), [1, H, P, D]) }));
    const table = halfTable();
    const halves = past.map((p) => ({
      key: new Tensor('float32', Float32Array.from(p.key.data as Float32Array, (v) => table[floatToHalf(v)]), [1, H, P, D]),
      value: new Tensor('float32', Float32Array.from(p.value.data as Float32Array, (v) => table[floatToHalf(v)]), [1, H, P, D]),
    }));
    const out = await model.forward({ input_ids: [[464, 2068]], past_key_values: past });
    const out2 = await model.forward({ input_ids: [[464, 2068]], past_key_values: halves });
    assert.equal(Array.from(out.logits!.data as Float32Array), Array.from(out2.logits!.data as Float32Array));
    for (let l = 0; l < L; l++) {
      const k = out.past_key_values![l].key.data as Float32Array, want = halves[l].key.data as Float32Array;
      assert.equal(out.past_key_values![l].key.dims, [1, H, P + 2, D]);
      for (let bh = 0; bh < H; bh++) for (let i = 0; i < P * D; i++) {
        if (!Object.is(k[bh * (P + 2) * D + i], want[bh * P * D + i])) assert.unreachable(`layer ${l} key ${bh}/${i}: ${k[bh * (P + 2) * D + i]} != ${want[bh * P * D + i]}`);
      }
      for (const v of k) assert.ok(table[floatToHalf(v)] === v, `layer ${l}: ${v} is not a half`);
    }
    const h0 = halves[0].key.data as Float32Array;
    assert.equal([h0[5], Object.is(h0[6], -0), h0[7]], [65504, true, 50 * 2 ** -24]);
  } finally { await model.dispose(); }
});

test('kv_dtype is validated: an OptionError naming the option', async () => {
  const dir = modelDir('gpt2-tiny');
  for (const bad of ['bf16', 'float16', 16, null]) {
    try {
      await GPT2LMHeadModel.from_pretrained(dir, { threads: 1, kv_dtype: bad as any });
      assert.unreachable(`kv_dtype ${String(bad)} accepted`);
    } catch (e) {
      assert.instance(e, OptionError);
      assert.match((e as Error).message, /kv_dtype/);
    }
  }
  const model = await GPT2LMHeadModel.from_pretrained(dir, { threads: 1, kv_dtype: 'fp16' });
  try {
    assert.is(model.kv_dtype, 'fp16');
    assert.throws(() => model.createCache(1, 8, 'q8' as any), (e: unknown) => e instanceof OptionError && /kv_dtype/.test((e as Error).message));
  } finally { await model.dispose(); }
});

test.run();
