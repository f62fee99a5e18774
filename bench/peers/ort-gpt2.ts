// Whole-model peer: the same random GPT-2 checkpoint as an ONNX graph (built in process with
// bench/util/onnx.ts — no export, no download) run by onnxruntime-web on wasm, the engine transformers.js uses.
// The graph is what an optimum "decoder with past" export computes: embeddings, per layer LayerNormalization →
// MatMul+Add (c_attn) → Split → heads → Concat(past, new) K/V (returned as present_*) → scaled scores + additive
// mask → Softmax → MatMul → c_proj (+residual) → LayerNormalization → MatMul → FastGelu(+bias) → MatMul
// (+residual); ln_f; the tied LM head on the last position only. q8 swaps every MatMul for
// DynamicQuantizeMatMul (int8 weights, one scale per output column), as transformers.js q8 exports do.
// Like transformers.js on wasm, K/V go in and out of session.run as tensors every step.
//   node --import tsx bench/peers/ort-gpt2.ts --dir DIR --threads 1|2 --dtype f32|q8 [--quick]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { argValue } from '../util/child.js';
import { ONNX_FLOAT, ONNX_INT64, ONNX_INT8, encodeOnnxModel, type OnnxNode, type OnnxTensor, type OnnxValue } from '../util/onnx.js';
import { quietRow } from '../util/quiet.js';
import { protocol, rng, round } from '../util/timing.js';

/** F32 tensors of a safetensors file (views into one buffer). */
function readF32Safetensors(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = buf.byteOffset + 8 + n;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${name}: ${t.dtype} (this peer reads F32 checkpoints)`);
    const [a, b] = t.data_offsets;
    const data = (base + a) % 4 === 0 ? new Float32Array(buf.buffer, base + a, (b - a) / 4) : new Float32Array(buf.buffer.slice(base + a, base + b));
    out.set(name.replace(/^transformer\./, ''), { shape: t.shape, data });
  }
  return out;
}

const bytesOf = (a: Float32Array | Int8Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Symmetric int8 per output column of a [K, N] matrix. */
function quantizeColumns(w: Float32Array, K: number, N: number): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(N), q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let c = 0; c < N; c++) scales[c] = Math.max(scales[c], Math.abs(w[k * N + c]));
  for (let c = 0; c < N; c++) scales[c] = scales[c] / 127 || 1;
  for (let k = 0; k < K; k++) for (let c = 0; c < N; c++) q[k * N + c] = Math.round(w[k * N + c] / scales[c]);
  return { q, scales };
}

export interface GPT2Dims { E: number; H: number; D: number; L: number; V: number; P: number }

export function buildGPT2Onnx(dir: string, dtype: 'f32' | 'q8'): { model: Uint8Array; dims: GPT2Dims } {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const E = cfg.n_embd, H = cfg.n_head, D = E / H, L = cfg.n_layer, V = cfg.vocab_size, P = cfg.n_positions;
  const t = readF32Safetensors(join(dir, 'model.safetensors'));
  const get = (k: string) => { const x = t.get(k); if (!x) throw new Error(`missing ${k}`); return x.data; };
  const nodes: OnnxNode[] = [], inits: OnnxTensor[] = [];
  const f32 = (name: string, dims: number[], data: Float32Array) => { inits.push({ name, type: ONNX_FLOAT, dims, raw: bytesOf(data) }); return name; };
  const i64 = (name: string, vals: number[]) => { inits.push({ name, type: ONNX_INT64, dims: [vals.length], raw: bytesOf(BigInt64Array.from(vals.map(BigInt))) }); return name; };
  let n = 0;
  const op = (type: string, inputs: string[], attrs?: OnnxNode['attrs'], domain?: string, outputs = [`t${n++}`]) => { nodes.push({ op: type, inputs, outputs, attrs, domain }); return outputs[0]; };
  /** x·W (+ b) for a conv1d weight [K, N] (already the ONNX MatMul layout). */
  const linear = (x: string, key: string, K: number, N: number, bias?: string) => {
    const w = get(key);
    let y: string;
    if (dtype === 'f32') y = op('MatMul', [x, f32(key, [K, N], w)]);
    else {
      const { q, scales } = quantizeColumns(w, K, N);
      inits.push({ name: key + '.q', type: ONNX_INT8, dims: [K, N], raw: bytesOf(q) });
      y = op('DynamicQuantizeMatMul', [x, key + '.q', f32(key + '.s', [N], scales)], undefined, 'com.microsoft');
    }
    return bias ? op('Add', [y, f32(bias, [N], get(bias))]) : y;
  };
  const ln = (x: string, p: string) => op('LayerNormalization', [x, f32(p + '.weight', [E], get(p + '.weight')), f32(p + '.bias', [E], get(p + '.bias'))], { axis: { i: -1 }, epsilon: { f: cfg.layer_norm_epsilon ?? 1e-5 } });
  const heads = i64('shape_heads', [1, -1, H, D]), flat = i64('shape_flat', [1, -1, E]), split = i64('split_qkv', [E, E, E]);
  inits.push({ name: 'scale', type: ONNX_FLOAT, dims: [], raw: bytesOf(Float32Array.of(1 / Math.sqrt(D))) });
  const inputs: OnnxValue[] = [
    { name: 'input_ids', type: ONNX_INT64, dims: [1, 'T'] }, { name: 'position_ids', type: ONNX_INT64, dims: [1, 'T'] },
    { name: 'mask', type: ONNX_FLOAT, dims: [1, 1, 'T', 'S'] },
  ];
  const outputs: OnnxValue[] = [{ name: 'logits', type: ONNX_FLOAT, dims: [1, 1, V] }];
  const wte = f32('wte.weight', [V, E], get('wte.weight'));
  let x = op('Add', [op('Gather', ['wte.weight', 'input_ids']), op('Gather', [f32('wpe.weight', [P, E], get('wpe.weight')), 'position_ids'])]);
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    inputs.push({ name: `past_key.${l}`, type: ONNX_FLOAT, dims: [1, H, 'P', D] }, { name: `past_value.${l}`, type: ONNX_FLOAT, dims: [1, H, 'P', D] });
    outputs.push({ name: `present_key.${l}`, type: ONNX_FLOAT, dims: [1, H, 'S', D] }, { name: `present_value.${l}`, type: ONNX_FLOAT, dims: [1, H, 'S', D] });
    const qkv = linear(ln(x, p + 'ln_1'), p + 'attn.c_attn.weight', E, 3 * E, p + 'attn.c_attn.bias');
    const [q, k, v] = [`q${l}`, `k${l}`, `v${l}`];
    nodes.push({ op: 'Split', inputs: [qkv, split], outputs: [q, k, v], attrs: { axis: { i: 2 } } });
    const toHeads = (s: string) => op('Transpose', [op('Reshape', [s, heads])], { perm: { ints: [0, 2, 1, 3] } });
    const K = op('Concat', [`past_key.${l}`, toHeads(k)], { axis: { i: 2 } }, undefined, [`present_key.${l}`]);
    const Vv = op('Concat', [`past_value.${l}`, toHeads(v)], { axis: { i: 2 } }, undefined, [`present_value.${l}`]);
    const scores = op('Add', [op('Mul', [op('MatMul', [toHeads(q), op('Transpose', [K], { perm: { ints: [0, 1, 3, 2] } })]), 'scale']), 'mask']);
    const att = op('MatMul', [op('Softmax', [scores], { axis: { i: -1 } }), Vv]);
    const merged = op('Reshape', [op('Transpose', [att], { perm: { ints: [0, 2, 1, 3] } }), flat]);
    x = op('Add', [x, linear(merged, p + 'attn.c_proj.weight', E, E, p + 'attn.c_proj.bias')]);
    const fc = linear(ln(x, p + 'ln_2'), p + 'mlp.c_fc.weight', E, 4 * E);
    const g = op('FastGelu', [fc, f32(p + 'mlp.c_fc.bias', [4 * E], get(p + 'mlp.c_fc.bias'))], undefined, 'com.microsoft');
    x = op('Add', [x, linear(g, p + 'mlp.c_proj.weight', 4 * E, E, p + 'mlp.c_proj.bias')]);
  }
  const last = op('Slice', [ln(x, 'ln_f'), i64('last_start', [-1]), i64('last_end', [2 ** 53]), i64('last_axis', [1])]);
  if (dtype === 'f32') {
    // tied head: Gemm with transB reads wte [V, E] as is
    op('Reshape', [op('Gemm', [op('Reshape', [last, i64('shape_row', [1, E])]), wte], { transB: { i: 1 } }), i64('shape_logits', [1, 1, V])], undefined, undefined, ['logits']);
  } else {
    const w = get('wte.weight'), wt = new Float32Array(E * V);
    for (let v = 0; v < V; v++) for (let e = 0; e < E; e++) wt[e * V + v] = w[v * E + e];
    const { q, scales } = quantizeColumns(wt, E, V);
    inits.push({ name: 'lm_head.q', type: ONNX_INT8, dims: [E, V], raw: bytesOf(q) });
    op('DynamicQuantizeMatMul', [last, 'lm_head.q', f32('lm_head.s', [V], scales)], undefined, 'com.microsoft', ['logits']);
  }
  return { model: encodeOnnxModel({ nodes, initializers: inits, inputs, outputs, opsets: { 'com.microsoft': 1 } }), dims: { E, H, D, L, V, P } };
}

export interface OrtModelRow {
  impl: string; dtype: 'f32' | 'q8'; threads: number; build_ms: number; session_ms: number;
  prefill_128_tok_s: number; decode_128_tok_s: number; decode_1024_tok_s: number | null;
}

/** Keeps the higher of each throughput of two processes of one configuration (as mergeBest does for ours). */
export function mergeBestOrt(a: OrtModelRow, b: OrtModelRow): OrtModelRow {
  return {
    ...a, prefill_128_tok_s: Math.max(a.prefill_128_tok_s, b.prefill_128_tok_s), decode_128_tok_s: Math.max(a.decode_128_tok_s, b.decode_128_tok_s),
    decode_1024_tok_s: Math.max(a.decode_1024_tok_s ?? 0, b.decode_1024_tok_s ?? 0) || null,
  };
}

export async function ortGPT2(dir: string, threads: number, dtype: 'f32' | 'q8', quick: boolean): Promise<OrtModelRow> {
  const ort: any = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const b0 = performance.now();
  const { model, dims } = buildGPT2Onnx(dir, dtype);
  const build_ms = performance.now() - b0;
  const s0 = performance.now();
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const session_ms = performance.now() - s0;
  const { H, D, L, V, P } = dims;
  const r = rng(7);
  const ids = Array.from({ length: P }, () => Math.floor(r() * V));
  const feeds = (start: number, tokens: number[], past: any[] | null, pastLen: number) => {
    const T = tokens.length, S = pastLen + T;
    const mask = new Float32Array(T * S);
    for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) mask[i * S + j] = j <= pastLen + i ? 0 : -1e9;
    const f: Record<string, any> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [1, T]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map((_, i) => BigInt(start + i))), [1, T]),
      mask: new ort.Tensor('float32', mask, [1, 1, T, S]),
    };
    for (let l = 0; l < L; l++) {
      f[`past_key.${l}`] = past ? past[2 * l] : new ort.Tensor('float32', new Float32Array(0), [1, H, 0, D]);
      f[`past_value.${l}`] = past ? past[2 * l + 1] : new ort.Tensor('float32', new Float32Array(0), [1, H, 0, D]);
    }
    return f;
  };
  const presents = (out: any) => Array.from({ length: 2 * L }, (_, i) => out[`${i % 2 ? 'present_value' : 'present_key'}.${i >> 1}`]);
  // the protocol of ours (bench/util/timing.ts): same warm-up, runs and decode steps
  const proto = protocol(quick);
  const reps = proto.runs, steps = proto.decodeSteps;
  let warm = presents(await session.run(feeds(0, ids.slice(0, proto.warmupPrefill), null, 0)));
  for (let s = 0; s < proto.warmupSteps; s++) warm = presents(await session.run(feeds(proto.warmupPrefill + s, [ids[proto.warmupPrefill + s]], warm, proto.warmupPrefill + s)));
  let prefill = 0;
  await quietRow();
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await session.run(feeds(0, ids.slice(0, 128), null, 0));
    prefill = Math.max(prefill, 128 / ((performance.now() - t) / 1000));
  }
  const decode = async (start: number, synthetic: boolean) => {
    await quietRow();
    let best = 0;
    for (let i = 0; i < reps; i++) {
      let past: any[];
      if (synthetic) {
        const rr = rng(11 + i);
        past = Array.from({ length: 2 * L }, () => new ort.Tensor('float32', Float32Array.from({ length: H * start * D }, () => (rr() * 2 - 1) * 0.5), [1, H, start, D]));
      } else past = presents(await session.run(feeds(0, ids.slice(0, start), null, 0)));
      const t = performance.now();
      for (let s = 0; s < steps; s++) {
        const out = await session.run(feeds(start + s, [ids[(start + s) % P]], past, start + s));
        past = presents(out);
      }
      best = Math.max(best, steps / ((performance.now() - t) / 1000));
    }
    return round(best, 1);
  };
  const decode_128_tok_s = await decode(128, false);
  const decode_1024_tok_s = quick ? null : await decode(P - steps, true); // as ours: not in quick runs
  await session.release();
  return { impl: `onnxruntime-web ${ort.env.versions?.web ?? ''}`.trim(), dtype, threads, build_ms: round(build_ms, 0), session_ms: round(session_ms, 0), prefill_128_tok_s: round(prefill, 1), decode_128_tok_s, decode_1024_tok_s };
}

/** Runs the f32 graph and our fp32 model on the same 8-token prompt plus one cached decode step and compares
 *  the logits: evidence that the peer graph computes the same GPT-2 (K/V cache path included). */
export async function checkAgainstOurs(dir: string): Promise<{ max_abs_diff_prefill: number; max_abs_diff_decode: number; same_argmax: boolean }> {
  const ort: any = await import('onnxruntime-web');
  const { GPT2LMHeadModel } = await import('../../src/index.js');
  const ids = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290];
  const ours = await GPT2LMHeadModel.from_pretrained(dir, { dtype: 'fp32', threads: 1 });
  const cache = ours.createCache(1, 16);
  const a = ours.prefill(cache, ids.slice(0, 8));
  const a2 = ours.decodeStep([{ cache, id: ids[8], pos: 8 }]);
  await ours.dispose();
  const { model, dims } = buildGPT2Onnx(dir, 'f32');
  const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  const tensor = (type: string, data: any, shape: number[]) => new ort.Tensor(type, data, shape);
  const mask = new Float32Array(64);
  for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) mask[i * 8 + j] = j <= i ? 0 : -1e9;
  const f1: Record<string, any> = {
    input_ids: tensor('int64', BigInt64Array.from(ids.slice(0, 8).map(BigInt)), [1, 8]),
    position_ids: tensor('int64', BigInt64Array.from(Array.from({ length: 8 }, (_, i) => BigInt(i))), [1, 8]),
    mask: tensor('float32', mask, [1, 1, 8, 8]),
  };
  for (let l = 0; l < dims.L; l++) for (const kv of ['key', 'value']) f1[`past_${kv}.${l}`] = tensor('float32', new Float32Array(0), [1, dims.H, 0, dims.D]);
  const o1 = await s.run(f1);
  const f2: Record<string, any> = { input_ids: tensor('int64', BigInt64Array.of(BigInt(ids[8])), [1, 1]), position_ids: tensor('int64', BigInt64Array.of(8n), [1, 1]), mask: tensor('float32', new Float32Array(9), [1, 1, 1, 9]) };
  for (let l = 0; l < dims.L; l++) for (const kv of ['key', 'value']) f2[`past_${kv}.${l}`] = o1[`present_${kv}.${l}`];
  const o2 = await s.run(f2);
  await s.release();
  const diff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
  const argmax = (x: Float32Array) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);
  const b = o1.logits.data as Float32Array, c = o2.logits.data as Float32Array;
  return { max_abs_diff_prefill: diff(a, b), max_abs_diff_decode: diff(a2, c), same_argmax: argmax(a) === argmax(b) && argmax(a2) === argmax(c) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  if (argv.includes('--check')) {
    checkAgainstOurs(argValue(argv, 'dir')!)
      .then((r) => { console.log(JSON.stringify(r)); process.exit(0); })
      .catch((e) => { console.error(e); process.exit(1); });
  } else ortGPT2(argValue(argv, 'dir')!, Number(argValue(argv, 'threads') ?? 1), (argValue(argv, 'dtype') ?? 'f32') as 'f32' | 'q8', argv.includes('--quick'))
    .then((r) => { console.log(JSON.stringify(r)); process.exit(0); })
    .catch((e) => { console.error(e); process.exit(1); });
}
