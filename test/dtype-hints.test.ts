// llama.cpp / GGUF spellings of a dtype: the OptionError for an unknown one names the value and the accepted list,
// and says what a cross-spelling means here (q4_0 → q4, q8_0 → q8, f16 → fp16, f32 → fp32; save_gguf the other
// way), or that a K-quant / IQ type is not supported and what is. Each claim is checked against the code below.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT2LMHeadModel, OptionError, save_gguf } from '../src/index.js';
import { GGML_TYPES } from '../src/io/ggml-dequant.js';
import { NATIVE_BLOCKS } from '../src/io/tensor-reader.js';
import { resolvePlan } from '../src/model/weights.js';
import { Q4_0_BYTES, Q8_0_BYTES } from '../src/runtime/quant.js';
import { modelDir } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-dtype-hints-'));
const LIST = "must be 'auto', 'fp32', 'fp16', 'q8' or 'q4', got";

async function optionError(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) {
    assert.instance(e, OptionError, String(e));
    return (e as Error).message;
  }
  throw new Error('expected an OptionError');
}
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('from_pretrained: llama.cpp spellings of our dtypes name the value, the list and ours', async () => {
  // what the hints say is the code's: q8 / q4 are GGUF Q8_0 / Q4_0 blocks (placed as stored from a GGUF file)
  assert.equal({ ...NATIVE_BLOCKS }, { Q8_0: 'q8', Q4_0: 'q4' });
  const byName = new Map([...GGML_TYPES.values()].map((t) => [t.name, t]));
  assert.is(byName.get('Q8_0')!.typeSize, Q8_0_BYTES);
  assert.is(byName.get('Q4_0')!.typeSize, Q4_0_BYTES);
  // a whole-model 'q4' keeps the embedding at q8 (what the q4_0 hint says), a plan's default does not
  assert.is(resolvePlan('q4').plan.wte, 'q8');
  assert.is(resolvePlan({ default: 'q4' }).plan.wte, 'q4');
  const dir = modelDir('gpt2-tiny');
  const cases: [string, string][] = [
    ['q4_0', `"q4_0" is 'q4' here (the same Q4_0 blocks; dtype 'q4' keeps the embedding / LM head at q8, the plan { default: 'q4' } makes them Q4_0 too)`],
    ['Q4_0', `"Q4_0" is 'q4' here (the same Q4_0 blocks;`],
    ['q8_0', `"q8_0" is 'q8' here (the same Q8_0 blocks)`],
    ['Q8_0', `"Q8_0" is 'q8' here`],
    ['f16', `"f16" is 'fp16' here`],
    ['F16', `"F16" is 'fp16' here`],
    ['f32', `"f32" is 'fp32' here`],
    ['Q8', "dtypes are lower case: 'q8'"],
    ['bf16', "bf16 is not a run dtype (fp32, fp16, q8 (GGUF Q8_0 blocks) and q4 (GGUF Q4_0 blocks)): BF16 weights load as 'fp32' (exactly) or 'fp16'"],
  ];
  for (const [v, hint] of cases) {
    const m = await optionError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, dtype: v as any }));
    assert.ok(m.startsWith(`dtype ${LIST} ${JSON.stringify(v)}; `), m);
    assert.match(m, new RegExp(esc(hint)), v);
  }
  // a plan's values are taken literally: no note on the embedding
  const m = await optionError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, dtype: { default: 'q4', attn_qkv: 'Q4_0' } as any }));
  assert.is(m, `dtype plan key 'attn_qkv' must be 'fp32', 'fp16', 'q8' or 'q4', got "Q4_0"; "Q4_0" is 'q4' here (the same Q4_0 blocks)`);
  assert.match(await optionError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, dtype: 'q8_0,wte=fp16' as any })),
    /^dtype plan key 'default' must be .*got "q8_0"; "q8_0" is 'q8' here/);
  // nothing to hint: the message as before
  assert.is(await optionError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, dtype: 'int3' as any })), `dtype ${LIST} "int3"`);
});

test('from_pretrained: K-quants and IQ types are not run dtypes; the hint says which GGUF types load and which do not', async () => {
  const dir = modelDir('gpt2-tiny');
  const readable = 'F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K';
  for (const [v, base] of [['Q4_K_M', 'Q4_K'], ['q5_k_s', 'Q5_K'], ['Q6_K', 'Q6_K'], ['Q4_1', 'Q4_1']]) {
    const m = await optionError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, dtype: v as any }));
    assert.ok(m.startsWith(`dtype ${LIST} ${JSON.stringify(v)}; ${JSON.stringify(v)} is not a run dtype here (those are fp32, fp16, q8 (GGUF Q8_0 blocks) and q4 (GGUF Q4_0 blocks)); `), m);
    assert.match(m, new RegExp(`a GGUF file quantized as ${v.toUpperCase()} does load: its ${base} tensors are converted on load \\(dtype 'auto' runs them as q8\\)$`));
  }
  for (const v of ['Q3_K_M', 'Q2_K', 'IQ4_XS', 'iq2_m', 'TQ1_0']) {
    const m = await optionError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, dtype: v as any }));
    assert.ok(m.endsWith(`; ${JSON.stringify(v)} is not supported: it is not a run dtype (fp32, fp16, q8 (GGUF Q8_0 blocks) and q4 (GGUF Q4_0 blocks)), ` +
      `and a GGUF file quantized as ${v.toUpperCase()} cannot be read either (the GGUF tensor types read are ${readable})`), m);
  }
});

test('save_gguf: our dtypes given for its GGUF types are named, and the types it does not write say so', async () => {
  const dir = modelDir('gpt2-tiny'), out = join(tmp, 'x.gguf');
  const LIST_OUT = 'must be one of f32, f16, q8_0, q4_0, got';
  const cases: [string, string][] = [
    ['q8', `dtype ${LIST_OUT} "q8"; the runtime's dtype 'q8' is 'q8_0' in a GGUF file (the same Q8_0 blocks)`],
    ['q4', `dtype ${LIST_OUT} "q4"; the runtime's dtype 'q4' is 'q4_0' in a GGUF file (the same Q4_0 blocks)`],
    ['fp16', `dtype ${LIST_OUT} "fp16"; the runtime's dtype 'fp16' is 'f16' in a GGUF file`],
    ['fp32', `dtype ${LIST_OUT} "fp32"; the runtime's dtype 'fp32' is 'f32' in a GGUF file`],
    ['bf16', `dtype ${LIST_OUT} "bf16"; BF16 is not written (the types written are F32, F16, Q8_0, Q4_0): f32 keeps BF16 weights exactly, f16 takes half the bytes (and cannot hold a weight past ±65504)`],
    ['Q4_K_M', `dtype ${LIST_OUT} "Q4_K_M"; Q4_K_M is not written by this converter (the types written are F32, F16, Q8_0, Q4_0): write f32 here, then llama.cpp's llama-quantize can make Q4_K_M from that file`],
    ['Q8_K', `dtype ${LIST_OUT} "Q8_K"; Q8_K is not written by this converter (the types written are F32, F16, Q8_0, Q4_0)`],
    ['q3', `dtype ${LIST_OUT} "q3"`],
  ];
  for (const [v, want] of cases) assert.is(await optionError(save_gguf(dir, out, { dtype: v as any })), want);
  // keep's values too
  assert.is(await optionError(save_gguf(dir, out, { dtype: 'q4_0', keep: { wte: 'q8' as any } })),
    `keep.wte ${LIST_OUT} "q8"; the runtime's dtype 'q8' is 'q8_0' in a GGUF file (the same Q8_0 blocks)`);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
