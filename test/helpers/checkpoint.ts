// Builds random GPT-2 checkpoints in the real Hugging Face layout (config.json + model.safetensors) in memory,
// for property tests over shapes the fixtures do not cover.
import { Random } from '../../src/generation/random.js';

export interface TinyShape { head?: 'lm' | 'token-classification' | 'sequence-classification'; num_labels?: number; pad_token_id?: number | null; n_embd: number; n_head: number; n_layer: number; n_positions: number; vocab_size: number; n_inner?: number; activation_function?: string; add_cross_attention?: boolean; scale_attn_by_inverse_layer_idx?: boolean }

export function writeSafetensors(tensors: Record<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Uint8Array }>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [k, t] of Object.entries(tensors)) { header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] }; off += t.data.length; }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length;
  for (const t of Object.values(tensors)) { out.set(t.data, p); p += t.data.length; }
  return out;
}

export function randomCheckpoint(shape: TinyShape, seed = 1): Record<string, string | Uint8Array> {
  const rng = new Random(seed);
  const E = shape.n_embd, I = shape.n_inner ?? 4 * E, V = shape.vocab_size;
  const f32 = (dims: number[], scale = 0.2, offset = 0) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = offset + (rng.next() * 2 - 1) * scale;
    return { dtype: 'F32' as const, shape: dims, data: new Uint8Array(a.buffer) };
  };
  const t: Record<string, ReturnType<typeof f32>> = { 'wte.weight': f32([V, E]), 'wpe.weight': f32([shape.n_positions, E], 0.1) };
  for (let l = 0; l < shape.n_layer; l++) {
    const p = `h.${l}.`;
    Object.assign(t, {
      [p + 'ln_1.weight']: f32([E], 0.2, 1), [p + 'ln_1.bias']: f32([E], 0.1),
      [p + 'attn.c_attn.weight']: f32([E, 3 * E]), [p + 'attn.c_attn.bias']: f32([3 * E], 0.1),
      [p + 'attn.c_proj.weight']: f32([E, E]), [p + 'attn.c_proj.bias']: f32([E], 0.1),
      [p + 'ln_2.weight']: f32([E], 0.2, 1), [p + 'ln_2.bias']: f32([E], 0.1),
      [p + 'mlp.c_fc.weight']: f32([E, I]), [p + 'mlp.c_fc.bias']: f32([I], 0.1),
      [p + 'mlp.c_proj.weight']: f32([I, E]), [p + 'mlp.c_proj.bias']: f32([E], 0.1),
    });
    if (shape.add_cross_attention) Object.assign(t, {
      [p + 'ln_cross_attn.weight']: f32([E], 0.2, 1), [p + 'ln_cross_attn.bias']: f32([E], 0.1),
      [p + 'crossattention.q_attn.weight']: f32([E, E]), [p + 'crossattention.q_attn.bias']: f32([E], 0.1),
      [p + 'crossattention.c_attn.weight']: f32([E, 2 * E]), [p + 'crossattention.c_attn.bias']: f32([2 * E], 0.1),
      [p + 'crossattention.c_proj.weight']: f32([E, E]), [p + 'crossattention.c_proj.bias']: f32([E], 0.1),
    });
  }
  t['ln_f.weight'] = f32([E], 0.2, 1); t['ln_f.bias'] = f32([E], 0.1);
  const head = shape.head ?? 'lm', labels = shape.num_labels ?? 2;
  if (head === 'token-classification') { t['classifier.weight'] = f32([labels, E], 1); t['classifier.bias'] = f32([labels], 0.1); }
  if (head === 'sequence-classification') t['score.weight'] = f32([labels, E], 1);
  const arch = { lm: 'GPT2LMHeadModel', 'token-classification': 'GPT2ForTokenClassification', 'sequence-classification': 'GPT2ForSequenceClassification' }[head];
  const { head: _h, num_labels: _n, ...rest } = shape;
  const id2label = head === 'lm' ? undefined : Object.fromEntries(Array.from({ length: labels }, (_, i) => [String(i), i === 0 ? 'O' : `L${i}`]));
  const config = { model_type: 'gpt2', architectures: [arch], ...rest, n_inner: shape.n_inner ?? null, n_ctx: shape.n_positions, ...(id2label ? { id2label } : {}) };
  return { 'config.json': JSON.stringify(config), 'model.safetensors': writeSafetensors(t) };
}
