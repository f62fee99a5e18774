// forward() inputs that are wrong in type or range get a typed error naming them (boolean flags, values beyond
// float32, non-integer positions, strings where numbers belong), and a fully masked encoder row is attended the
// way transformers does (uniformly), not silently dropped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoModel, AutoTokenizer, GPT2LMHeadModel, GPT2WasmError, Tensor, type GPT2PreTrainedModel } from '../src/index.js';
import { Random } from '../src/generation/random.js';
import { modelDir } from './helpers/fixtures.js';
import { expectError } from './helpers/expect-error.js';


const call = (m: GPT2PreTrainedModel, inputs: Record<string, unknown>) => m.forward(inputs as any);

test('boolean forward flags take true or false (null/undefined = default), in every model class', async () => {
  for (const dir of ['gpt2-tiny', 'gpt2-tiny-tokcls', 'gpt2-tiny-seqcls']) {
    const m = await AutoModel.from_pretrained(modelDir(dir), { threads: 1 });
    try {
      const input_ids = [[5, 6, 7]];
      await expectError(call(m, { input_ids, output_attentions: 'yes' }), 'OPTION', /output_attentions must be true or false, got "yes"/);
      await expectError(call(m, { input_ids, output_hidden_states: 1 }), 'OPTION', /output_hidden_states must be true or false, got 1/);
      await expectError(call(m, { input_ids, use_cache: 'no' }), 'OPTION', /use_cache must be true or false, got "no"/);
      await expectError(call(m, { input_ids, use_cache: 0 }), 'OPTION', /use_cache must be true or false, got 0/);
      await expectError(call(m, { input_ids, return_dict: true }), 'OPTION', /unknown forward\(\) input 'return_dict'/);
      const dflt = await call(m, { input_ids, output_attentions: null, output_hidden_states: undefined, use_cache: null });
      assert.is(dflt.attentions, undefined, `${dir}: output_attentions null is the default (off)`);
      assert.is(dflt.hidden_states, undefined, `${dir}: output_hidden_states undefined is the default (off)`);
      const on = await call(m, { input_ids, output_attentions: true, output_hidden_states: true, use_cache: false });
      assert.is(on.attentions?.length, m.config.n_layer, dir);
      assert.is(on.hidden_states?.length, m.config.n_layer + 1, dir);
      assert.is(on.past_key_values, undefined, `${dir}: use_cache false returns no past`);
    } finally { await m.dispose(); }
  }
  const lm = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    assert.ok((await lm.forward({ input_ids: [[5, 6]], use_cache: null as any })).past_key_values, 'use_cache null is the default (on) for the LM');
  } finally { await lm.dispose(); }
});

test('float inputs beyond the float32 range (1e39) are refused, naming the input and the flat index', async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny-xattn'), { threads: 1 });
  try {
    const { n_embd: E, n_head: H, n_layer: L } = m.config, D = E / H, S = 3;
    const enc = Array.from({ length: S }, (_, s) => Array.from({ length: E }, (_, e) => Math.sin(s * E + e)));
    enc[1][4] = 1e39; // finite in f64, Infinity in f32
    await expectError(m.forward({ input_ids: [[5, 6, 7]], encoder_hidden_states: [enc] }), 'INPUT',
      new RegExp(`encoder_hidden_states contains a non-finite value at flat index ${E + 4}\\b`));
    enc[1][4] = -1e39;
    await expectError(m.forward({ input_ids: [[5, 6, 7]], encoder_hidden_states: enc }), 'INPUT', /encoder_hidden_states contains a non-finite value at flat index/);
    enc[1][4] = 3e38; // within f32: accepted as far as the check goes
    enc[1][4] = 0.5;

    const P = 2, layer = () => Array.from({ length: H }, () => Array.from({ length: P }, () => Array.from({ length: D }, () => 0.1)));
    const past = Array.from({ length: L }, () => ({ key: [layer()], value: [layer()] }));
    past[1].value[0][2][1][3] = 1e39;
    await expectError(m.forward({ input_ids: [[5]], past_key_values: past, encoder_hidden_states: [enc] }), 'INPUT',
      new RegExp(`past_key_values\\[1\\]\\.value contains a non-finite value at flat index ${(2 * P + 1) * D + 3}\\b`));
    past[1].value[0][2][1][3] = 0.1;
    past[0].key[0][0][0][0] = -1e39;
    await expectError(m.forward({ input_ids: [[5]], past_key_values: past.map((p) => [p.key, p.value]), encoder_hidden_states: [enc] }), 'INPUT',
      /past_key_values\[0\]\.key contains a non-finite value at flat index 0\b/);
    past[0].key[0][0][0][0] = 0.1;
    // a float32 Tensor past with Infinity: the same message
    const t = (v: number) => { const d = new Float32Array(H * P * D).fill(0.1); d[5] = v; return new Tensor('float32', d, [1, H, P, D]); };
    const tpast = Array.from({ length: L }, (_, l) => ({ key: t(l === 2 ? Infinity : 0.1), value: t(0.1) }));
    await expectError(m.forward({ input_ids: [[5]], past_key_values: tpast, encoder_hidden_states: [enc] }), 'INPUT',
      /past_key_values\[2\]\.key contains a non-finite value at flat index 5\b/);

    const hm = Array.from({ length: L }, () => Array(H).fill(1));
    hm[2][1] = 1e39;
    await expectError(m.forward({ input_ids: [[5, 6]], head_mask: hm, encoder_hidden_states: [enc] }), 'INPUT', new RegExp(`head_mask contains a non-finite value at flat index ${2 * H + 1}\\b`));
    const ok = await m.forward({ input_ids: [[5]], past_key_values: past, encoder_hidden_states: [enc] });
    assert.ok(ok.logits.data.every(Number.isFinite));
  } finally { await m.dispose(); }
});

test('an all-zero encoder_attention_mask row attends to every encoder state uniformly (transformers: + finfo.min everywhere)', async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny-xattn'), { threads: 1 });
  try {
    const { n_embd: E, n_head: H, n_layer: L } = m.config, S = 5, T = 4, rnd = new Random(7);
    const vec = () => Array.from({ length: E }, () => rnd.next() * 2 - 1);
    const input_ids = [[11, 22, 33, 44]];
    // every encoder state the same vector: any weights summing to 1 give the same output, so transformers' uniform
    // weights over a fully masked row give what an all-ones mask (or no mask) gives; zero weights would not
    const v = vec(), same = [Array.from({ length: S }, () => v)];
    const f32 = (t: Tensor) => t.data as Float32Array;
    const want = f32((await m.forward({ input_ids, encoder_hidden_states: same, use_cache: false })).logits);
    const ones = f32((await m.forward({ input_ids, encoder_hidden_states: same, encoder_attention_mask: [Array(S).fill(1)], use_cache: false })).logits);
    const zeros = await m.forward({ input_ids, encoder_hidden_states: same, encoder_attention_mask: [Array(S).fill(0)], output_attentions: true, use_cache: false });
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(f32(zeros.logits)[i] - want[i]), Math.abs(ones[i] - want[i]));
    assert.ok(worst < 1e-4, `fully masked encoder row: logits ${worst} away from the unmasked run (uniform weights expected)`);

    // the weights: 1/S for every state, every layer, head and query (random states this time, eager path through
    // output_attentions, blockwise path through the logits)
    const states = [Array.from({ length: S }, vec), Array.from({ length: S }, vec)];
    const mask = [Array(S).fill(0), [1, 1, 0, 1, 0]];
    const ids2 = [input_ids[0], [7, 8, 9, 10]];
    const both = await m.forward({ input_ids: ids2, encoder_hidden_states: states, encoder_attention_mask: mask, output_attentions: true, use_cache: false });
    assert.is(both.cross_attentions?.length, L);
    for (const a of both.cross_attentions!) {
      assert.equal(a.dims, [2, H, T, S]);
      for (let i = 0; i < H * T * S; i++) if (Math.abs((a.data[i] as number) - 1 / S) > 1e-6) assert.unreachable(`row 0 cross-attention weight ${a.data[i]} at ${i}, want 1/${S}`);
      for (let i = 0; i < H * T; i++) {
        const w = Array.from(a.data.subarray(H * T * S + i * S, H * T * S + (i + 1) * S) as Float32Array);
        assert.is(w[2], 0); assert.is(w[4], 0); // row 1's mask still hides states 2 and 4
        assert.ok(Math.abs(w.reduce((x, y) => x + y, 0) - 1) < 1e-5);
      }
    }
    const fast = f32((await m.forward({ input_ids: ids2, encoder_hidden_states: states, encoder_attention_mask: mask, use_cache: false })).logits);
    const solo1 = f32((await m.forward({ input_ids: [ids2[1]], encoder_hidden_states: [states[1]], encoder_attention_mask: [mask[1]], use_cache: false })).logits);
    const V = m.config.vocab_size;
    for (let i = 0; i < T * V; i++) {
      if (Math.abs(fast[i] - f32(both.logits)[i]) > 1e-4) assert.unreachable(`row 0: blockwise and eager logits differ at ${i}`);
      if (Math.abs(fast[T * V + i] - solo1[i]) > 1e-4) assert.unreachable(`row 1: its logits differ from its solo run at ${i}`);
    }

    // generate takes the same path: with identical states, greedy ids under an all-zero mask equal the unmasked ones
    const g0 = await m.generate({ input_ids, encoder_hidden_states: same, encoder_attention_mask: [Array(S).fill(0)], max_new_tokens: 6 });
    const g1 = await m.generate({ input_ids, encoder_hidden_states: same, max_new_tokens: 6 });
    assert.equal(Array.from(g0.data as BigInt64Array, Number), Array.from(g1.data as BigInt64Array, Number));
  } finally { await m.dispose(); }
});

test('messages: a non-integer position or id says so, strings are shown quoted', async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    await expectError(m.forward({ input_ids: [[5, 6]], position_ids: [[0, 1.5]] }), 'INPUT', /position_ids\[0\]\[1\] = 1\.5 is not an integer/);
    await expectError(m.forward({ input_ids: [[5, 6]], position_ids: [[0, 300]] }), 'INPUT', /position_ids\[0\]\[1\] = 300 is outside \[0, 128\)/);
    await expectError(m.forward({ input_ids: [[5, 6.5]] }), 'INPUT', /input_ids\[0\]\[1\] = 6\.5 is not a token id: not an integer/);
    await expectError(m.forward({ input_ids: [['5', 6]] }), 'INPUT', /input_ids contains a non-number \("5"\)/);
    await expectError(m.forward({ input_ids: [[5, 6]], logits_to_keep: '1' as any }), 'OPTION', /logits_to_keep must be a non-negative integer, got "1"/);
    await expectError(m.forward({ input_ids: [[5, 6]], logits_to_keep: 1.5 }), 'OPTION', /logits_to_keep must be a non-negative integer, got 1\.5/);
    await expectError(() => m.createCache('2' as any), 'INPUT', /cache batch must be a positive integer, got "2"/);
    await expectError(() => m.createCache(1, '8' as any), 'INPUT', /cache capacity must be a positive integer, got "8"/);
    await expectError(GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { prefill_chunk: '4' as any }), 'OPTION', /prefill_chunk must be a positive integer, got "4"/);
    const cache = m.createCache(1, 8);
    await expectError(() => m.prefill(cache, [5, 6], 'yes' as any), 'OPTION', /prefill's allPositions must be true or false, got "yes"/);
    cache.dispose();
    const out = await m.forward({ input_ids: [[5, 6]] });
    out.past_key_values!.dispose();
    await expectError(() => out.past_key_values![0].key, 'DISPOSED', /^these past_key_values were disposed$/);
  } finally { await m.dispose(); }
});

test('apply_chat_template: a typed error (GPT-2 has no chat template; one in tokenizer_config.json is not rendered)', async () => {
  const tok = await AutoTokenizer.from_pretrained(modelDir('gpt2-tiny'));
  const chat = [{ role: 'user', content: 'Hello' }];
  await expectError(() => (tok as any).apply_chat_template(chat), 'OPTION', /apply_chat_template: .* has no chat template/);
  const dir = modelDir('gpt2-tiny');
  const files: Record<string, string> = {
    'vocab.json': readFileSync(join(dir, 'vocab.json'), 'utf8'),
    'merges.txt': readFileSync(join(dir, 'merges.txt'), 'utf8'),
    'tokenizer_config.json': JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' }),
  };
  const withTemplate = await AutoTokenizer.from_pretrained({ readText: async (f: string) => files[f], exists: async (f: string) => f in files, name: 'templated' } as any);
  await expectError(() => (withTemplate as any).apply_chat_template(chat), 'OPTION', /apply_chat_template is not supported: templated has a chat_template/);
  assert.equal(withTemplate.encode('Hello'), tok.encode('Hello'));
});

test.run();
