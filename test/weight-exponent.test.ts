// The weight exponent offset (src/model/weights.ts applyWexp, abi.ts WEXP_SHIFT): a matrix whose halves (f16
// elements, or Q8_0/Q4_0 block scales) include subnormal ones is stored ·2^e so that none is, and the kernels take
// e in their flags. On a checkpoint of small weights (uniform ±0.0004: about 15% of the halves subnormal, and every
// block scale) this checks that the loader leaves no subnormal half, that each stored half is the value's half times
// 2^e, and that fp16 runs give the bits of fp32 runs of the same halves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, memorySource } from '../src/index.js';
import { floatToHalf, fp16ToF32 } from '../src/io/half.js';
import { DT_Q8, Q8_BLOCK } from '../src/runtime/abi.js';
import { Q4_0_BYTES, Q8_0_BYTES, quantizeQ4_0, quantizeQ8_0 } from '../src/runtime/quant.js';
import type { Matrix, ModelWeights } from '../src/model/weights.js';
import { randomCheckpoint, writeSafetensors } from './helpers/checkpoint.js';
import { parseF32Safetensors } from './runtimes/check.js';

const SHAPE = { n_embd: 64, n_head: 2, n_layer: 2, n_positions: 16, vocab_size: 96 };
const SMALL = { weight: 0.0004, position: 0.1, gain: 0.2, bias: 0.1, classifier: 1, residual: false, causalBuffers: false };

const f32Files = randomCheckpoint(SHAPE, 3, SMALL);
const tensors = parseF32Safetensors(f32Files['model.safetensors'] as Uint8Array);
/** The same values stored as F16 (every tensor). */
const f16Files = (() => {
  const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [name, t] of Object.entries(tensors)) out[name] = { dtype: 'F16', shape: t.shape, data: new Uint8Array(Uint16Array.from(t.data, floatToHalf).buffer) };
  return { ...f32Files, 'model.safetensors': writeSafetensors(out) };
})();

const matrices = (w: ModelWeights): [string, Matrix][] => [['wte', w.wte], ...w.layers.flatMap((l, i) =>
  [[`h.${i}.qkv`, l.qkv], [`h.${i}.attn_proj`, l.attn_proj], [`h.${i}.fc`, l.fc], [`h.${i}.mlp_proj`, l.mlp_proj]] as [string, Matrix][])];
/** The [N, K] matrix of a checkpoint tensor (Conv1D weights are stored [K, N]). */
function rowsOf(name: string, N: number, K: number): Float32Array {
  const t = tensors[name] ?? tensors['transformer.' + name];
  if (t.shape[0] === N && t.shape[1] === K && !/c_attn|c_proj|c_fc/.test(name)) return t.data;
  return Float32Array.from({ length: N * K }, (_, i) => t.data[(i % K) * N + Math.floor(i / K)]);
}
const KEYS: Record<string, string> = { qkv: 'attn.c_attn.weight', attn_proj: 'attn.c_proj.weight', fc: 'mlp.c_fc.weight', mlp_proj: 'mlp.c_proj.weight' };
const keyOf = (name: string) => (name === 'wte' ? 'wte.weight' : name.replace(/^(h\.\d+\.)(\w+)$/, (_, p, m) => p + KEYS[m]));
const subnormal = (h: number) => (h & 0x7c00) === 0 && (h & 0x3ff) !== 0;
const logitsOf = async (src: any, opts: any) => {
  const m = await GPT2LMHeadModel.from_pretrained(src, opts);
  try { return (await m.forward({ input_ids: [[5, 17, 90, 3, 44, 61, 8]] })).logits!.data as Float32Array; } finally { await m.dispose(); }
};

test('f16 matrices with subnormal halves are stored ·2^e, no half subnormal, each the value\'s half times 2^e (moved halves and placed floats)', async () => {
  for (const [files, what] of [[f16Files, 'F16 file'], [f32Files, 'F32 file']] as const) {
    for (const threads of [1, 2]) {
      const m = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'small'), { dtype: 'fp16', threads });
      try {
        for (const [name, w] of matrices(m.weights)) {
          const want = Uint16Array.from(rowsOf(keyOf(name), w.N, w.K), floatToHalf);
          assert.ok(want.some(subnormal), `${name}: the checkpoint has subnormal halves`);
          assert.is(w.wexp, 10, `${what}, ${name}: e`);
          const got = new Uint16Array(m.backend.arena.memory.buffer, w.ptr, w.N * w.K);
          for (let i = 0; i < got.length; i++) {
            if (subnormal(got[i]) || !Object.is(fp16ToF32(got[i]), fp16ToF32(want[i]) * 2 ** w.wexp)) {
              assert.unreachable(`${what}, ${threads} thread(s), ${name} element ${i}: stored 0x${got[i].toString(16)} for half 0x${want[i].toString(16)}, e = ${w.wexp}`);
            }
          }
        }
      } finally { await m.dispose(); }
    }
  }
});

test('fp16 with the exponent offset gives the bits of fp32 on the same halves (F16 file at fp16 and at fp32)', async () => {
  const f16 = await logitsOf(memorySource(f16Files, 'small-f16'), { threads: 1, dtype: 'fp16' });
  const f32 = await logitsOf(memorySource(f16Files, 'small-f16'), { threads: 1, dtype: 'fp32' });
  const f16t2 = await logitsOf(memorySource(f16Files, 'small-f16'), { threads: 2, dtype: 'fp16' });
  assert.ok(f16.every(Number.isFinite));
  for (let i = 0; i < f32.length; i++) if (!Object.is(f16[i], f32[i])) assert.unreachable(`logit ${i}: fp16 ${f16[i]} fp32 ${f32[i]}`);
  assert.ok(Buffer.from(f16t2.buffer).equals(Buffer.from(f16.buffer)), '2 threads differ');
});

test('q8/q4 block scales: subnormal ones shifted by 2^e, codes and scale values those of the quantizer', async () => {
  for (const dtype of ['q8', 'q4'] as const) {
    const m = await GPT2LMHeadModel.from_pretrained(memorySource(f32Files, 'small'), { dtype, threads: 2 });
    try {
      for (const [name, w] of matrices(m.weights)) {
        const bb = w.dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES, nb = (w.N * w.K) / Q8_BLOCK;
        const want = new Uint8Array(nb * bb);
        (w.dt === DT_Q8 ? quantizeQ8_0 : quantizeQ4_0)(rowsOf(keyOf(name), w.N, w.K), want);
        const got = new Uint8Array(m.backend.arena.memory.buffer, w.ptr, nb * bb);
        let sub = 0;
        for (let b = 0; b < nb; b++) {
          const o = b * bb, hw = want[o] | (want[o + 1] << 8), hg = got[o] | (got[o + 1] << 8);
          if (subnormal(hw)) sub++;
          if (subnormal(hg) || !Object.is(fp16ToF32(hg), fp16ToF32(hw) * 2 ** w.wexp)) assert.unreachable(`${dtype} ${name} block ${b}: scale 0x${hg.toString(16)} for 0x${hw.toString(16)}, e = ${w.wexp}`);
          for (let j = 2; j < bb; j++) if (got[o + j] !== want[o + j]) assert.unreachable(`${dtype} ${name} block ${b} byte ${j}`);
        }
        assert.ok(sub > 0 && w.wexp === 10, `${dtype} ${name}: ${sub} subnormal scales, e = ${w.wexp}`);
      }
    } finally { await m.dispose(); }
  }
});

test('a matrix without subnormal halves keeps e = 0 (the fixture-scale checkpoint at fp16)', async () => {
  const files = randomCheckpoint(SHAPE, 4); // uniform ±0.2: no half below 2^-14 is likely, but check
  const t = parseF32Safetensors(files['model.safetensors'] as Uint8Array);
  const m = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'plain'), { dtype: 'fp16', threads: 1 });
  try {
    for (const [name, w] of matrices(m.weights)) {
      const src = t[keyOf(name)] ?? t['transformer.' + keyOf(name)];
      const hasSub = Array.from(src.data, floatToHalf).some(subnormal);
      assert.is(w.wexp, hasSub ? 10 : 0, name);
    }
  } finally { await m.dispose(); }
});

test.run();
