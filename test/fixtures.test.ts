// Every forward-pass case of ../shared/fixtures, through the public API, on the wasm kernels (1 and 2
// threads, every dtype the case allows) and on the TypeScript reference kernels, each with an f32 and an f16
// KV cache (kv_dtype).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2ForSequenceClassification, GPT2ForTokenClassification, GPT2LMHeadModel, Tensor } from '../src/index.js';
import { compareClose, modelDir, readCase, readReference } from './helpers/fixtures.js';

type Cfg = { name: string; opts: Record<string, unknown>; tolScale?: number };
// f16-cache tolerance: K and V rounded to halves (relative error ≤ 2^-12) move the outputs of these random-weight
// models (attn.c_proj weights of std 0.5) by up to 2.7e-3 — lm_forward's hidden_states.1 reaches 1.13x the case
// tolerance, with the TypeScript reference kernels as with wasm, so it is the rounding and not the kernels; every
// other tensor of every case stays within 0.6x. The fp16-cache runs allow 1.5x the case tolerance.
const F16_KV_TOL_SCALE = 1.5;
const configs: Cfg[] = [
  { name: 'wasm 1 thread', opts: { threads: 1 } },
  { name: 'wasm 2 threads', opts: { threads: 2 } },
  { name: 'reference', opts: { threads: 1, kernels: 'reference' } },
  // the same cases with the K/V caches stored as halves, within the same tolerances
  { name: 'wasm 1 thread, fp16 KV cache', opts: { threads: 1, kv_dtype: 'fp16' }, tolScale: F16_KV_TOL_SCALE },
  { name: 'wasm 2 threads, fp16 KV cache', opts: { threads: 2, kv_dtype: 'fp16' }, tolScale: F16_KV_TOL_SCALE },
  { name: 'reference, fp16 KV cache', opts: { threads: 1, kernels: 'reference', kv_dtype: 'fp16' }, tolScale: F16_KV_TOL_SCALE },
].filter((c) => !process.env.FIXTURE_CONFIG || c.name.includes(process.env.FIXTURE_CONFIG));

for (const { name, opts, tolScale = 1 } of configs) {
  const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: any, what: string) => {
    const msg = compareClose(got, want, { atol: tol.atol * tolScale, rtol: tol.rtol * tolScale }, what);
    if (msg) assert.unreachable(msg);
  };

  test(`lm_forward: logits, hidden states, attentions [${name}]`, async () => {
    const c = readCase('lm_forward'), ref = readReference(c.expected);
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), opts);
    try {
      const out = await model.forward({ input_ids: [c.input_ids], output_attentions: true, output_hidden_states: true });
      assert.equal(out.logits!.dims, [1, c.input_ids.length, 50257]);
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
      assert.is(out.hidden_states!.length, 3);
      out.hidden_states!.forEach((h, i) => close(h.data as Float32Array, ref[`hidden_states.${i}`].data, c.tolerance, `hidden_states.${i}`));
      out.attentions!.forEach((a, i) => close(a.data as Float32Array, ref[`attentions.${i}`].data, c.tolerance, `attentions.${i}`));
    } finally { await model.dispose(); }
  });

  test(`lm_batch_left_padding [${name}]`, async () => {
    const c = readCase('lm_batch_left_padding'), ref = readReference(c.expected);
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), opts);
    try {
      const out = await model.forward({ input_ids: c.input_ids, attention_mask: c.attention_mask, position_ids: c.position_ids, logits_to_keep: 1 });
      assert.equal(out.logits!.dims, [2, 1, 50257]);
      close(out.logits!.data as Float32Array, ref.last_logits.data, c.tolerance, 'last_logits');
    } finally { await model.dispose(); }
  });

  test(`lm_head_mask [${name}]`, async () => {
    const c = readCase('lm_head_mask'), ref = readReference(c.expected);
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), opts);
    try {
      const out = await model.forward({ input_ids: [c.input_ids], head_mask: c.head_mask });
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
    } finally { await model.dispose(); }
  });

  test(`lm_prefix_past_key_values [${name}]`, async () => {
    const c = readCase('lm_prefix_past_key_values'), ref = readReference(c.expected);
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), opts);
    try {
      const L = model.config.n_layer;
      const past = Array.from({ length: L }, (_, l) => ({
        key: new Tensor('float32', ref[`past.${l}.key`].data, [1, ...ref[`past.${l}.key`].shape]),
        value: new Tensor('float32', ref[`past.${l}.value`].data, [1, ...ref[`past.${l}.value`].shape]),
      }));
      const P = ref['past.0.key'].shape[1];
      const out = await model.forward({ input_ids: [c.input_ids], past_key_values: past });
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
      assert.equal(out.past_key_values![0].key.dims, [1, model.config.n_head, P + c.input_ids.length, 16]);
    } finally { await model.dispose(); }
  });

  test(`lm_f16_forward [${name}]`, async () => {
    const c = readCase('lm_f16_forward'), ref = readReference(c.expected);
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), opts);
    try {
      assert.is(model.dtype, 'fp16');
      const out = await model.forward({ input_ids: [c.input_ids] });
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
    } finally { await model.dispose(); }
  });

  test(`token_classification [${name}]`, async () => {
    const c = readCase('token_classification'), ref = readReference(c.expected);
    const model = await GPT2ForTokenClassification.from_pretrained(modelDir(c.model), opts);
    try {
      const out = await model.forward({ input_ids: [c.input_ids] });
      assert.equal(out.logits!.dims, [1, c.input_ids.length, 2]);
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
    } finally { await model.dispose(); }
  });

  test(`sequence_classification [${name}]`, async () => {
    const c = readCase('sequence_classification'), ref = readReference(c.expected);
    const model = await GPT2ForSequenceClassification.from_pretrained(modelDir(c.model), opts);
    try {
      const out = await model.forward({ input_ids: c.input_ids, attention_mask: c.attention_mask });
      assert.equal(out.logits!.dims, [2, 3]);
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
    } finally { await model.dispose(); }
  });

  test(`cross_attention [${name}]`, async () => {
    const c = readCase('cross_attention'), ref = readReference(c.expected);
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(c.model), opts);
    try {
      const enc = ref.encoder_hidden_states;
      const out = await model.forward({
        input_ids: c.input_ids, encoder_hidden_states: new Tensor('float32', enc.data, enc.shape),
        encoder_attention_mask: c.encoder_attention_mask, output_attentions: true,
      });
      close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'logits');
      close(out.last_hidden_state.data as Float32Array, ref.last_hidden_state.data, c.tolerance, 'last_hidden_state');
      out.cross_attentions!.forEach((a, i) => close(a.data as Float32Array, ref[`cross_attentions.${i}`].data, c.tolerance, `cross_attentions.${i}`));
    } finally { await model.dispose(); }
  });
}

test.run();
