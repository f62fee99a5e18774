// Properties the fixtures cannot show: thread count never changes a bit of the output, the blockwise and eager
// attention paths agree, the wasm kernels match the reference on random model shapes, and q8/fp16 stay close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, memorySource } from '../src/index.js';
import { Random } from '../src/generation/random.js';
import { floatToHalf, fp16ToF32 } from '../src/io/half.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareClose, modelDir, readCase } from './helpers/fixtures.js';
import { randomCheckpoint } from './helpers/checkpoint.js';

const logitsOf = async (dir: any, opts: any, inputs: any) => {
  const m = await GPT2LMHeadModel.from_pretrained(dir, opts);
  try { return (await m.forward(inputs)).logits!.data as Float32Array; } finally { await m.dispose(); }
};

test('1, 2 and 3 threads give bit-identical logits (prefill and decode)', async () => {
  const c = readCase('lm_batch_left_padding');
  const inputs = { input_ids: c.input_ids, attention_mask: c.attention_mask, position_ids: c.position_ids };
  const base = await logitsOf(modelDir('gpt2-tiny'), { threads: 1 }, inputs);
  for (const threads of [2, 3]) {
    const other = await logitsOf(modelDir('gpt2-tiny'), { threads }, inputs);
    assert.ok(Buffer.from(base.buffer).equals(Buffer.from(other.buffer)), `threads ${threads} differ`);
  }
  for (const dtype of ['fp16', 'q8'] as const) {
    const a = await logitsOf(modelDir('gpt2-tiny'), { threads: 1, dtype }, { input_ids: [[464, 2068, 7586]] });
    const b = await logitsOf(modelDir('gpt2-tiny'), { threads: 2, dtype }, { input_ids: [[464, 2068, 7586]] });
    assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${dtype}: threads differ`);
  }
});

test('blockwise attention equals the eager path (attentions requested) on padded batches', async () => {
  const c = readCase('lm_batch_left_padding');
  const inputs = { input_ids: c.input_ids, attention_mask: c.attention_mask, position_ids: c.position_ids };
  const blockwise = await logitsOf(modelDir('gpt2-tiny'), { threads: 2 }, inputs);
  const eager = await logitsOf(modelDir('gpt2-tiny'), { threads: 2 }, { ...inputs, output_attentions: true });
  const msg = compareClose(blockwise, eager, { atol: 1e-5, rtol: 1e-5 }, 'blockwise vs eager');
  if (msg) assert.unreachable(msg);
});

test('fuzzed model shapes: wasm kernels match the reference kernels end to end', async () => {
  const rng = new Random(11);
  const acts = ['gelu_new', 'gelu', 'relu', 'gelu_pytorch_tanh'];
  for (let trial = 0; trial < 6; trial++) {
    const n_head = 1 + Math.floor(rng.next() * 4);
    const D = [1, 3, 5, 8, 13, 16][Math.floor(rng.next() * 6)];
    const shape = {
      n_embd: n_head * D, n_head, n_layer: 1 + Math.floor(rng.next() * 3), n_positions: 40, vocab_size: 50 + Math.floor(rng.next() * 100),
      n_inner: 4 + Math.floor(rng.next() * 70), activation_function: acts[trial % 4], add_cross_attention: trial % 3 === 2,
      scale_attn_by_inverse_layer_idx: trial % 2 === 1,
    };
    const src = memorySource(randomCheckpoint(shape, trial + 1), `random-${trial}`);
    const B = 1 + Math.floor(rng.next() * 3), T = 1 + Math.floor(rng.next() * 20);
    const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rng.next() * shape.vocab_size)));
    const mask = ids.map((row, b) => row.map((_, t) => (t < b ? 0 : 1))); // left padding of b tokens
    const inputs: any = { input_ids: ids, attention_mask: mask, output_hidden_states: true };
    if (shape.add_cross_attention) {
      const S = 1 + Math.floor(rng.next() * 9);
      inputs.encoder_hidden_states = Array.from({ length: B }, () => Array.from({ length: S }, () => Array.from({ length: shape.n_embd }, () => rng.next() - 0.5)));
      inputs.encoder_attention_mask = Array.from({ length: B }, () => Array.from({ length: S }, (_, s) => (s === 0 || rng.next() > 0.3 ? 1 : 0)));
    }
    const threads = 1 + (trial % 2);
    const got = await logitsOf(src, { threads }, inputs);
    const want = await logitsOf(src, { threads: 1, kernels: 'reference' }, inputs);
    const msg = compareClose(got, want, { atol: 1e-4, rtol: 1e-4 }, `trial ${trial} ${JSON.stringify({ ...shape, B, T })}`);
    if (msg) assert.unreachable(msg);
    for (const v of got) if (!Number.isFinite(v)) assert.unreachable(`trial ${trial}: non-finite logit`);
  }
});

test('fp16 and q8 weights stay close to fp32 on the fixture model', async () => {
  const inputs = { input_ids: [readCase('lm_f16_forward').input_ids] };
  const f32 = await logitsOf(modelDir('gpt2-tiny'), { threads: 1, dtype: 'fp32' }, inputs);
  const V = 50257, T = f32.length / V;
  let scale = 0; for (const v of f32) scale = Math.max(scale, Math.abs(v));
  // bounds relative to the logit range: f16 rounds weights to 11 bits; q8 also quantises activations per block
  for (const [dtype, rel] of [['fp16', 1e-3], ['q8', 3e-2]] as const) {
    const tol = rel * scale;
    const got = await logitsOf(modelDir('gpt2-tiny'), { threads: 1, dtype }, inputs);
    let maxErr = 0;
    for (let i = 0; i < f32.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - f32[i]));
    assert.ok(maxErr < tol, `${dtype}: max logit error ${maxErr} >= ${tol} (${rel} of max |logit| ${scale})`);
  }
  assert.ok(T > 1 && scale > 0);
});

test('fp16 is exactly fp32 on weights rounded to half: the fp16 run equals an fp32 run of a pre-rounded checkpoint', async () => {
  // Round every matrix fp16 stores as half (embeddings and projections; vectors stay f32) to the nearest half,
  // keep it as F32, and run that in fp32: only the summation order may differ from the fp16 run, so the bound
  // is ~100x tighter than fp16's distance from fp32 above, and a wrong conversion or row would show.
  const dir = modelDir('gpt2-tiny');
  const raw = new Uint8Array(readFileSync(join(dir, 'model.safetensors')));
  const n = Number(new DataView(raw.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(raw.subarray(8, 8 + n)));
  const rounded = raw.slice();
  let matrices = 0;
  for (const [name, t] of Object.entries<any>(header)) {
    if (name === '__metadata__' || !/(wte|c_attn|c_proj|c_fc|q_attn|lm_head)\.weight$/.test(name)) continue;
    assert.is(t.dtype, 'F32', name);
    const [a, b] = t.data_offsets;
    const view = new DataView(rounded.buffer, 8 + n + a, b - a);
    for (let o = 0; o < b - a; o += 4) view.setFloat32(o, fp16ToF32(floatToHalf(view.getFloat32(o, true))), true);
    matrices++;
  }
  assert.ok(matrices >= 5, `rounded only ${matrices} matrices`);
  const files = { 'config.json': readFileSync(join(dir, 'config.json'), 'utf8'), 'model.safetensors': rounded };
  const inputs = { input_ids: [readCase('lm_f16_forward').input_ids] };
  const f16 = await logitsOf(dir, { threads: 1, dtype: 'fp16' }, inputs);
  const f32OfRounded = await logitsOf(memorySource(files, 'rounded'), { threads: 1, dtype: 'fp32' }, inputs);
  const f32 = await logitsOf(dir, { threads: 1, dtype: 'fp32' }, inputs);
  let scale = 0, dist = 0;
  for (let i = 0; i < f32.length; i++) { scale = Math.max(scale, Math.abs(f32[i])); dist = Math.max(dist, Math.abs(f16[i] - f32[i])); }
  const msg = compareClose(f16, f32OfRounded, { atol: 1e-5 * scale, rtol: 0 }, 'fp16 vs fp32 of half-rounded weights');
  if (msg) assert.unreachable(msg);
  assert.ok(dist > 1e-5 * scale, `the rounding must matter for this check to mean anything (fp16 vs fp32 differ by ${dist})`);
});

test.run();
