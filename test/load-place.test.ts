// fp32 and fp16 loads (the place_weights kernel, src/model/weights.ts): every weight's bytes in wasm memory equal
// the plain placement in TypeScript — f32 copied, halves by floatToHalf (nearest even), conv1d [K, N] transposed to
// [N, K] — for a checkpoint full of awkward values (half ties, subnormal halves, f32 subnormals, overflow, -0),
// stored as F32, BF16 and F16, on 1 and 2 threads and with a staging area of a few rows. A NaN or ±inf is an error
// naming the tensor and element, and so is a matrix weight past the f16 range loaded as fp16 (its half would be ±inf;
// test/errors.test.ts names it): those fp16 loads take the checkpoint with such weights brought into the range.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WeightsError } from '../src/errors.ts';
import { loadConfig } from '../src/io/config.ts';
import { floatToHalf, fp16ToF32 } from '../src/io/half.ts';
import { openTensorReader } from '../src/io/gguf-model.ts';
import { memorySource } from '../src/io/source.ts';
import { DEFAULT_PREFILL_CHUNK, GPT2LMHeadModel } from '../src/model/gpt2.ts';
import { loadWeights, planWeights, type Matrix, type ModelWeights } from '../src/model/weights.ts';
import { Backend } from '../src/runtime/backend.ts';
import { randomCheckpoint, writeSafetensors } from './helpers/checkpoint.ts';
import { parseF32Safetensors } from './runtimes/check.ts';
import { Random } from '../src/generation/random.ts';

const SHAPE = { n_embd: 64, n_head: 2, n_layer: 2, n_positions: 16, vocab_size: 50 };
const AWKWARD = [65520, -65520, 65519.996, 65504, 70000, -1e6, 3.4e38, 2 ** -24 * 1.5, -(2 ** -24) * 2.5, 2 ** -25, 2 ** -25 * 1.0001, 1e-40, -1e-45, -0,
  2 ** -14 * (1 - 2 ** -12), 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(2 + 2 ** -10), 6e-8, 3e-5, 2048 + 1, 2048 + 3];

type Tensors = Record<string, { shape: number[]; data: Float32Array }>;

/** The random checkpoint with a fifth of every tensor's values replaced by awkward ones. */
function awkward(seed: number): { files: Record<string, string | Uint8Array>; tensors: Tensors } {
  const files = randomCheckpoint(SHAPE, seed);
  const tensors = parseF32Safetensors(files['model.safetensors'] as Uint8Array);
  const r = new Random(seed);
  for (const t of Object.values(tensors)) for (let i = 0; i < t.data.length; i++) if (r.next() < 0.2) t.data[i] = AWKWARD[Math.floor(r.next() * AWKWARD.length)];
  return { files, tensors };
}

/** Matrix weights (run as fp16 at dtype fp16; wpe, biases and layer norms stay f32). */
const MATRIX = /(^|\.)(wte|c_attn|c_proj|c_fc)\.weight$/;
/** The tensors with every matrix weight past the f16 range (its half ±inf) replaced by ±65519.996, which rounds to the
 *  largest half (an error at fp16, checked below, where the loader kept ±inf before). */
function inF16Range(tensors: Tensors): Tensors {
  const out: Tensors = {};
  for (const [name, t] of Object.entries(tensors)) {
    out[name] = !MATRIX.test(name) ? t : { shape: t.shape, data: t.data.map((x) => ((floatToHalf(x) & 0x7c00) === 0x7c00 ? Math.sign(x) * 65519.996 : x)) };
  }
  return out;
}

/** The checkpoint's files with its tensors stored as dtype (values rounded to it: BF16 truncated to its bits, F16
 *  by floatToHalf with the overflows, which would be inf in the file, clamped to the largest half). */
function stored(files: Record<string, string | Uint8Array>, tensors: Tensors, dtype: 'F32' | 'BF16' | 'F16'): { files: Record<string, string | Uint8Array>; values: Tensors } {
  const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  const values: Tensors = {};
  for (const [name, t] of Object.entries(tensors)) {
    const v = new Float32Array(t.data.length);
    let data: Uint8Array;
    if (dtype === 'F32') { v.set(t.data); data = new Uint8Array(v.slice().buffer); }
    else if (dtype === 'BF16') {
      const u32 = new Uint32Array(t.data.slice().buffer), h = new Uint16Array(u32.length);
      for (let i = 0; i < u32.length; i++) { h[i] = u32[i] >>> 16; v[i] = new Float32Array(new Uint32Array([h[i] << 16]).buffer)[0]; }
      data = new Uint8Array(h.buffer);
    } else {
      const h = Uint16Array.from(t.data, (x) => { const b = floatToHalf(x); return (b & 0x7c00) === 0x7c00 ? (b & 0x8000) | 0x7bff : b; });
      for (let i = 0; i < h.length; i++) v[i] = fp16ToF32(h[i]);
      data = new Uint8Array(h.buffer);
    }
    out[name] = { dtype, shape: t.shape, data };
    values[name] = { shape: t.shape, data: v };
  }
  return { files: { ...files, 'model.safetensors': writeSafetensors(out) }, values };
}

/** Every tensor's bytes as the loader must place them: [name, region pointer, expected bytes]. */
function expected(w: ModelWeights, values: Tensors, dtype: 'fp32' | 'fp16'): [string, number, Uint8Array][] {
  const get = (k: string) => values[k] ?? values['transformer.' + k];
  const vec = (k: string, ptr: number): [string, number, Uint8Array] => [k, ptr, new Uint8Array(get(k).data.slice().buffer)];
  // halves times 2^e, the matrix's weight exponent offset (0 here, as every matrix holds a half near the largest;
  // test/weight-exponent.test.ts covers e > 0)
  const mat = (k: string, m: Matrix, conv1d: boolean): [string, number, Uint8Array] => {
    const { shape, data } = get(k);
    const [R, C] = shape, order = conv1d ? Float32Array.from({ length: R * C }, (_, i) => data[(i % R) * C + Math.floor(i / R)]) : data;
    const half = (v: number) => floatToHalf(fp16ToF32(floatToHalf(v)) * 2 ** m.wexp);
    return [k, m.ptr, dtype === 'fp32' ? new Uint8Array(order.slice().buffer) : new Uint8Array(Uint16Array.from(order, half).buffer)];
  };
  const out = [mat('wte.weight', w.wte, false), vec('wpe.weight', w.wpe), vec('ln_f.weight', w.lnf_g), vec('ln_f.bias', w.lnf_b)];
  w.layers.forEach((l, i) => {
    const p = `h.${i}.`;
    out.push(vec(p + 'ln_1.weight', l.ln1_g), vec(p + 'ln_1.bias', l.ln1_b), mat(p + 'attn.c_attn.weight', l.qkv, true), vec(p + 'attn.c_attn.bias', l.qkv_b),
      mat(p + 'attn.c_proj.weight', l.attn_proj, true), vec(p + 'attn.c_proj.bias', l.attn_proj_b), vec(p + 'ln_2.weight', l.ln2_g), vec(p + 'ln_2.bias', l.ln2_b),
      mat(p + 'mlp.c_fc.weight', l.fc, true), vec(p + 'mlp.c_fc.bias', l.fc_b), mat(p + 'mlp.c_proj.weight', l.mlp_proj, true), vec(p + 'mlp.c_proj.bias', l.mlp_proj_b));
  });
  return out;
}

function check(w: ModelWeights, buffer: ArrayBufferLike, values: Tensors, dtype: 'fp32' | 'fp16', what: string): void {
  for (const [name, ptr, want] of expected(w, values, dtype)) {
    const got = new Uint8Array(buffer, ptr, want.length);
    let i = 0;
    while (i < want.length && got[i] === want[i]) i++;
    if (i < want.length) assert.unreachable(`${what}: ${name} byte ${i} got ${got[i]} want ${want[i]}`);
  }
}

for (const src of ['F32', 'BF16', 'F16'] as const) {
  for (const dtype of ['fp32', 'fp16'] as const) {
    test(`load place: ${src} checkpoint with awkward values at ${dtype}: every weight's bytes equal the plain placement (1 and 2 threads, small staging)`, async () => {
      const { files: f32Files, tensors: all } = awkward(src.length * 7 + dtype.length);
      let tensors = all;
      if (src !== 'F16' && dtype === 'fp16') {
        const load = GPT2LMHeadModel.from_pretrained(memorySource(stored(f32Files, all, src).files, 'awkward'), { dtype, threads: 1 });
        const err = await load.then((m) => m.dispose(), (e) => e);
        assert.ok(err instanceof WeightsError && /out of the f16 range/.test(err.message), `${src} → fp16 with weights past the f16 range: ${err}`);
        tensors = inF16Range(all);
      }
      const { files, values } = stored(f32Files, tensors, src);
      for (const threads of [1, 2]) {
        const m = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'awkward'), { dtype, threads });
        try { check(m.weights, m.backend.arena.memory.buffer, values, dtype, `${src} → ${dtype}, ${threads} thread(s)`); } finally { await m.dispose(); }
      }
      // a staging area of a few rows: the tensors pass through it in many calls, rows split between chunks of it
      const source = memorySource(files, 'awkward-small');
      const config = await loadConfig(source);
      const st = await openTensorReader(source);
      const backend = await Backend.create({ threads: 2 });
      try {
        const plan = planWeights(config, st, 'lm', dtype, st.name);
        const weights = await loadWeights(config, st, plan, backend, undefined, 3 * 4 * SHAPE.n_embd * 3 + 40);
        check(weights, backend.arena.memory.buffer, values, dtype, `${src} → ${dtype}, small staging`);
        await new GPT2LMHeadModel(config, null, backend, weights, source, DEFAULT_PREFILL_CHUNK).dispose();
      } finally { await st.close(); }
    });
  }
}

test('load place: NaN and ±inf at fp32 and fp16 are errors naming the tensor and the element (conv1d weight, table, vector)', async () => {
  const shape = SHAPE;
  for (const dtype of ['fp32', 'fp16'] as const) {
    for (const [name, at, value, shown] of [
      ['h.1.mlp.c_fc.weight', 40 * 256 + 5, NaN, 'NaN'], ['wte.weight', 3 * 64 + 40, -Infinity, '-Infinity'], ['h.0.ln_2.bias', 63, Infinity, 'Infinity'],
      ['h.0.attn.c_attn.weight', 0, NaN, 'NaN'], ['wpe.weight', 16 * 64 - 1, Infinity, 'Infinity'],
    ] as [string, number, number, string][]) {
      const files = randomCheckpoint(shape, 5);
      const st = files['model.safetensors'] as Uint8Array;
      const headerLen = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + headerLen)));
      const key = Object.keys(header).find((k) => k === name || k === 'transformer.' + name)!;
      new DataView(st.buffer, st.byteOffset + 8 + headerLen + header[key].data_offsets[0] + at * 4).setFloat32(0, value, true);
      const err = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'bad'), { dtype, threads: 2 }).then(() => null, (e) => e);
      assert.instance(err, WeightsError, `${name} at ${dtype}: ${err}`);
      assert.match(err.message, new RegExp(`tensor ${name.replace(/\./g, '\\.')} contains ${shown} at element ${at} \\(NaN or infinite weights\\)`));
    }
  }
});

test('load place: NaN and ±inf in an F16 checkpoint run as fp16 (halves moved as they are) are errors naming the tensor and the element', async () => {
  for (const [name, at, value, shown] of [
    ['h.1.mlp.c_fc.weight', 40 * 256 + 5, NaN, 'NaN'], ['wte.weight', 3 * 64 + 40, -Infinity, '-Infinity'], ['h.0.attn.c_attn.weight', 0, Infinity, 'Infinity'],
    ['h.1.attn.c_proj.weight', 64 * 64 - 1, NaN, 'NaN'],
  ] as [string, number, number, string][]) {
    const files = randomCheckpoint(SHAPE, 6);
    const tensors = parseF32Safetensors(files['model.safetensors'] as Uint8Array);
    const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
    for (const [k, t] of Object.entries(tensors)) {
      const h = Uint16Array.from(t.data, floatToHalf);
      if (k === name || k === 'transformer.' + name) h[at] = floatToHalf(value);
      out[k] = { dtype: 'F16', shape: t.shape, data: new Uint8Array(h.buffer) };
    }
    for (const threads of [1, 2]) {
      const err = await GPT2LMHeadModel.from_pretrained(memorySource({ ...files, 'model.safetensors': writeSafetensors(out) }, 'bad-f16'), { dtype: 'fp16', threads }).then(() => null, (e) => e);
      assert.instance(err, WeightsError, `${name}: ${err}`);
      assert.match(err.message, new RegExp(`tensor ${name.replace(/\./g, '\\.')} contains ${shown} at element ${at} \\(NaN or infinite weights\\)`));
    }
  }
});

test.run();
