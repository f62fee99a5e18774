// Writes a randomly initialised GPT-2 checkpoint in the real Hugging Face layout to a directory:
// config.json + model.safetensors (F32, the hub's key names without the "transformer." prefix, the causal-mask
// buffers h.N.attn.bias [1,1,P,P] included as in the hub's gpt2 file, lm_head tied to wte so not stored).
// Streams tensor by tensor so a 124M (or 355M) checkpoint never sits whole on the JS heap.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { rng } from './timing.js';

export interface GPT2Shape { n_embd: number; n_layer: number; n_head: number; n_positions: number; vocab_size: number }
export const GPT2_SHAPES: Record<string, GPT2Shape> = {
  'gpt2': { n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, vocab_size: 50257 },
  'gpt2-medium': { n_embd: 1024, n_layer: 24, n_head: 16, n_positions: 1024, vocab_size: 50257 },
  'gpt2-large': { n_embd: 1280, n_layer: 36, n_head: 20, n_positions: 1024, vocab_size: 50257 },
  'gpt2-xl': { n_embd: 1600, n_layer: 48, n_head: 25, n_positions: 1024, vocab_size: 50257 },
};

export function gpt2ConfigJson(s: GPT2Shape): Record<string, unknown> {
  return {
    activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256, eos_token_id: 50256,
    embd_pdrop: 0.1, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2', n_ctx: s.n_positions,
    n_embd: s.n_embd, n_head: s.n_head, n_inner: null, n_layer: s.n_layer, n_positions: s.n_positions, resid_pdrop: 0.1,
    scale_attn_weights: true, summary_activation: null, summary_first_dropout: 0.1, summary_proj_to_labels: true,
    summary_type: 'cls_index', summary_use_proj: true, vocab_size: s.vocab_size,
  };
}

type Init = { kind: 'normal'; std: number } | { kind: 'const'; value: number; jitter?: number } | { kind: 'causal' };
interface TensorPlan { name: string; shape: number[]; init: Init }

function plan(s: GPT2Shape): TensorPlan[] {
  const E = s.n_embd, I = 4 * E, P = s.n_positions;
  const w = (std = 0.02): Init => ({ kind: 'normal', std });
  const t: TensorPlan[] = [
    { name: 'wte.weight', shape: [s.vocab_size, E], init: w() },
    { name: 'wpe.weight', shape: [P, E], init: w(0.01) },
  ];
  // GPT-2 scales the residual projections by 1/sqrt(2 * n_layer) at initialisation
  const proj = 0.02 / Math.sqrt(2 * s.n_layer);
  for (let l = 0; l < s.n_layer; l++) {
    const p = `h.${l}.`;
    t.push(
      { name: p + 'ln_1.weight', shape: [E], init: { kind: 'const', value: 1, jitter: 0.05 } },
      { name: p + 'ln_1.bias', shape: [E], init: { kind: 'const', value: 0, jitter: 0.02 } },
      { name: p + 'attn.bias', shape: [1, 1, P, P], init: { kind: 'causal' } },
      { name: p + 'attn.c_attn.weight', shape: [E, 3 * E], init: w() },
      { name: p + 'attn.c_attn.bias', shape: [3 * E], init: { kind: 'const', value: 0, jitter: 0.02 } },
      { name: p + 'attn.c_proj.weight', shape: [E, E], init: w(proj) },
      { name: p + 'attn.c_proj.bias', shape: [E], init: { kind: 'const', value: 0, jitter: 0.02 } },
      { name: p + 'ln_2.weight', shape: [E], init: { kind: 'const', value: 1, jitter: 0.05 } },
      { name: p + 'ln_2.bias', shape: [E], init: { kind: 'const', value: 0, jitter: 0.02 } },
      { name: p + 'mlp.c_fc.weight', shape: [E, I], init: w() },
      { name: p + 'mlp.c_fc.bias', shape: [I], init: { kind: 'const', value: 0, jitter: 0.02 } },
      { name: p + 'mlp.c_proj.weight', shape: [I, E], init: w(proj) },
      { name: p + 'mlp.c_proj.bias', shape: [E], init: { kind: 'const', value: 0, jitter: 0.02 } },
    );
  }
  t.push({ name: 'ln_f.weight', shape: [E], init: { kind: 'const', value: 1, jitter: 0.05 } }, { name: 'ln_f.bias', shape: [E], init: { kind: 'const', value: 0, jitter: 0.02 } });
  return t;
}

/** Writes config.json and model.safetensors into `dir` (created if needed); returns the safetensors size in bytes. */
export function writeRandomGPT2(dir: string, shape: GPT2Shape, seed = 1234): { file: string; bytes: number; params: number } {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(gpt2ConfigJson(shape), null, 2));
  const tensors = plan(shape);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0, params = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + n * 4] };
    off += n * 4;
    if (t.init.kind !== 'causal') params += n;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const file = join(dir, 'model.safetensors');
  const fd = openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    writeSync(fd, len);
    writeSync(fd, hb);
    const r = rng(seed);
    const CH = 1 << 20; // floats per write
    const buf = new Float32Array(CH);
    const bytes = new Uint8Array(buf.buffer);
    for (const t of tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const P = t.shape[t.shape.length - 1];
      for (let s = 0; s < n; s += CH) {
        const m = Math.min(CH, n - s);
        const init = t.init;
        if (init.kind === 'normal') {
          // sum of three uniforms: cheap, bell-shaped, unit variance after scaling by std
          const k = init.std;
          for (let i = 0; i < m; i++) buf[i] = (r() + r() + r() - 1.5) * 2 * k;
        } else if (init.kind === 'const') {
          const j = init.jitter ?? 0;
          for (let i = 0; i < m; i++) buf[i] = init.value + (r() * 2 - 1) * j;
        } else {
          for (let i = 0; i < m; i++) { const e = s + i, row = Math.floor(e / P) % P, col = e % P; buf[i] = col <= row ? 1 : 0; }
        }
        writeSync(fd, bytes, 0, m * 4);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { file, bytes: 8 + hb.length + off, params };
}
