// Random GPT-2 checkpoints in the real Hugging Face layout (config.json + model.safetensors with the hub's key
// names, no "transformer." prefix, lm_head tied to wte so not stored): the one writer the tests (tiny shapes, every
// head, cross-attention; in memory) and the benchmarks (124M..1.5B shapes; streamed to a directory so the
// checkpoint never sits whole on the JS heap) share. Written independently of src/io, so it can test the reader.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Random } from '../../src/generation/random.js';

export interface CheckpointShape {
  n_embd: number; n_head: number; n_layer: number; n_positions: number; vocab_size: number;
  n_inner?: number; activation_function?: string; add_cross_attention?: boolean; scale_attn_by_inverse_layer_idx?: boolean;
  head?: 'lm' | 'token-classification' | 'sequence-classification'; num_labels?: number; pad_token_id?: number | null;
}
/** The tests' name for the same shape. */
export type TinyShape = CheckpointShape;
/** The shapes of the released GPT-2 checkpoints. */
export type GPT2Shape = CheckpointShape;

export const GPT2_SHAPES: Record<string, CheckpointShape> = {
  'gpt2': { n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, vocab_size: 50257 },
  'gpt2-medium': { n_embd: 1024, n_layer: 24, n_head: 16, n_positions: 1024, vocab_size: 50257 },
  'gpt2-large': { n_embd: 1280, n_layer: 36, n_head: 20, n_positions: 1024, vocab_size: 50257 },
  'gpt2-xl': { n_embd: 1600, n_layer: 48, n_head: 25, n_positions: 1024, vocab_size: 50257 },
};

/**
 * Value scales, each a uniform spread around a centre. `test`: large enough that tiny models give well separated
 * logits. `gpt2`: as GPT-2's initialisation (std 0.02, residual projections scaled by 1/sqrt(2 n_layer)), plus the
 * causal-mask buffers h.N.attn.bias [1, 1, P, P] the hub's gpt2 file carries.
 */
export interface Scales { weight: number; position: number; gain: number; bias: number; classifier: number; residual: boolean; causalBuffers: boolean }
export const TEST_SCALES: Scales = { weight: 0.2, position: 0.1, gain: 0.2, bias: 0.1, classifier: 1, residual: false, causalBuffers: false };
export const GPT2_SCALES: Scales = { weight: 0.02 * Math.sqrt(3), position: 0.01 * Math.sqrt(3), gain: 0.05, bias: 0.02, classifier: 0.02 * Math.sqrt(3), residual: true, causalBuffers: true };

/** How a tensor's values are made: uniform centre ± spread, or the causal 0/1 mask. */
type Init = { centre: number; spread: number } | 'causal';
interface TensorPlan { name: string; shape: number[]; init: Init }

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Every tensor of the checkpoint in file order, with its shape and values. */
function tensorPlan(s: CheckpointShape, sc: Scales): TensorPlan[] {
  const E = s.n_embd, I = s.n_inner ?? 4 * E, V = s.vocab_size, P = s.n_positions;
  const w = (spread = sc.weight): Init => ({ centre: 0, spread });
  const gain: Init = { centre: 1, spread: sc.gain }, bias: Init = { centre: 0, spread: sc.bias };
  const proj = sc.residual ? sc.weight / Math.sqrt(2 * s.n_layer) : sc.weight;
  const t: TensorPlan[] = [{ name: 'wte.weight', shape: [V, E], init: w() }, { name: 'wpe.weight', shape: [P, E], init: w(sc.position) }];
  const add = (name: string, shape: number[], init: Init) => t.push({ name, shape, init });
  for (let l = 0; l < s.n_layer; l++) {
    const p = `h.${l}.`;
    add(p + 'ln_1.weight', [E], gain); add(p + 'ln_1.bias', [E], bias);
    if (sc.causalBuffers) add(p + 'attn.bias', [1, 1, P, P], 'causal');
    add(p + 'attn.c_attn.weight', [E, 3 * E], w()); add(p + 'attn.c_attn.bias', [3 * E], bias);
    add(p + 'attn.c_proj.weight', [E, E], w(proj)); add(p + 'attn.c_proj.bias', [E], bias);
    add(p + 'ln_2.weight', [E], gain); add(p + 'ln_2.bias', [E], bias);
    add(p + 'mlp.c_fc.weight', [E, I], w()); add(p + 'mlp.c_fc.bias', [I], bias);
    add(p + 'mlp.c_proj.weight', [I, E], w(proj)); add(p + 'mlp.c_proj.bias', [E], bias);
    if (s.add_cross_attention) {
      add(p + 'ln_cross_attn.weight', [E], gain); add(p + 'ln_cross_attn.bias', [E], bias);
      add(p + 'crossattention.q_attn.weight', [E, E], w()); add(p + 'crossattention.q_attn.bias', [E], bias);
      add(p + 'crossattention.c_attn.weight', [E, 2 * E], w()); add(p + 'crossattention.c_attn.bias', [2 * E], bias);
      add(p + 'crossattention.c_proj.weight', [E, E], w(proj)); add(p + 'crossattention.c_proj.bias', [E], bias);
    }
  }
  add('ln_f.weight', [E], gain); add('ln_f.bias', [E], bias);
  const head = s.head ?? 'lm', labels = s.num_labels ?? 2;
  if (head === 'token-classification') { add('classifier.weight', [labels, E], w(sc.classifier)); add('classifier.bias', [labels], bias); }
  if (head === 'sequence-classification') add('score.weight', [labels, E], w(sc.classifier));
  return t;
}

/** config.json for the shape, with the fields transformers writes for GPT-2 (<|endoftext|> ids only in a vocabulary that has 50256). */
export function gpt2ConfigJson(s: CheckpointShape): Record<string, unknown> {
  const head = s.head ?? 'lm', labels = s.num_labels ?? 2;
  const arch = { lm: 'GPT2LMHeadModel', 'token-classification': 'GPT2ForTokenClassification', 'sequence-classification': 'GPT2ForSequenceClassification' }[head];
  const { head: _h, num_labels: _n, ...rest } = s;
  const id2label = head === 'lm' ? undefined : Object.fromEntries(Array.from({ length: labels }, (_, i) => [String(i), i === 0 ? 'O' : `L${i}`]));
  return {
    activation_function: 'gelu_new', architectures: [arch], attn_pdrop: 0.1, ...(s.vocab_size > 50256 ? { bos_token_id: 50256, eos_token_id: 50256 } : {}),
    embd_pdrop: 0.1, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2', resid_pdrop: 0.1, scale_attn_weights: true,
    ...rest, n_inner: s.n_inner ?? null, n_ctx: s.n_positions, ...(id2label ? { id2label } : {}),
  };
}

/** The safetensors header bytes (u64 length + JSON padded with spaces to 8 bytes, as the safetensors library does). */
function headerBytes(entries: { name: string; dtype: string; shape: number[]; bytes: number }[], metadata: Record<string, string> | null): { prefix: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  for (const e of entries) { header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes] }; off += e.bytes; }
  const enc = new TextEncoder();
  let json = JSON.stringify(header);
  while ((8 + enc.encode(json).length) % 8) json += ' ';
  const hb = enc.encode(json);
  const prefix = new Uint8Array(8 + hb.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(hb.length), true);
  prefix.set(hb, 8);
  return { prefix, dataBytes: off };
}

/** A safetensors file in memory from tensors given as raw little-endian bytes, in the order given. */
export function writeSafetensors(
  tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>,
  metadata: Record<string, string> | null = { format: 'pt' },
): Uint8Array {
  const list = Object.entries(tensors);
  const { prefix, dataBytes } = headerBytes(list.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, bytes: t.data.byteLength })), metadata);
  const out = new Uint8Array(prefix.length + dataBytes);
  out.set(prefix);
  let p = prefix.length;
  for (const [, t] of list) { out.set(t.data, p); p += t.data.byteLength; }
  return out;
}

/** Writes elements [start, start + out.length) of a tensor's values into `out`, drawing from `rnd` in order. */
function fill(plan: TensorPlan, start: number, out: Float32Array, rnd: Random): void {
  const init = plan.init;
  if (init === 'causal') {
    const P = plan.shape[plan.shape.length - 1];
    for (let i = 0; i < out.length; i++) { const e = start + i, row = Math.floor(e / P) % P, col = e % P; out[i] = col <= row ? 1 : 0; }
    return;
  }
  for (let i = 0; i < out.length; i++) out[i] = init.centre + (rnd.next() * 2 - 1) * init.spread;
}

/** A random checkpoint in memory: { 'config.json', 'model.safetensors' } for a memorySource. */
export function randomCheckpoint(shape: CheckpointShape, seed = 1, scales: Scales = TEST_SCALES): Record<string, string | Uint8Array> {
  const rnd = new Random(seed);
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }> = {};
  for (const t of tensorPlan(shape, scales)) {
    const a = new Float32Array(count(t.shape));
    fill(t, 0, a, rnd);
    tensors[t.name] = { dtype: 'F32', shape: t.shape, data: new Uint8Array(a.buffer) };
  }
  return { 'config.json': JSON.stringify(gpt2ConfigJson(shape)), 'model.safetensors': writeSafetensors(tensors) };
}

/**
 * Writes config.json and model.safetensors (F32, GPT-2 initialisation scales by default) into `dir`, created if
 * needed, one megafloat at a time; returns the file, its size and the parameter count (mask buffers excluded).
 */
export function writeRandomGPT2(dir: string, shape: CheckpointShape, seed = 1234, scales: Scales = GPT2_SCALES): { file: string; bytes: number; params: number } {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(gpt2ConfigJson(shape), null, 2));
  const plan = tensorPlan(shape, scales);
  const { prefix, dataBytes } = headerBytes(plan.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, bytes: count(t.shape) * 4 })), { format: 'pt' });
  const file = join(dir, 'model.safetensors');
  const fd = openSync(file, 'w');
  let params = 0;
  try {
    writeSync(fd, prefix);
    const rnd = new Random(seed);
    const buf = new Float32Array(1 << 20);
    for (const t of plan) {
      const n = count(t.shape);
      if (t.init !== 'causal') params += n;
      for (let s = 0; s < n; s += buf.length) {
        const part = buf.subarray(0, Math.min(buf.length, n - s));
        fill(t, s, part, rnd);
        writeSync(fd, new Uint8Array(part.buffer, 0, part.length * 4));
      }
    }
  } finally {
    closeSync(fd);
  }
  return { file, bytes: prefix.length + dataBytes, params };
}
