// Which GPT-2 sizes fit in wasm32's 4 GiB memory, per dtype, from the loader's own estimate
// (estimateWeightBytes in src/model/weights.ts) plus a full-context KV cache and the forward workspaces.
import { parseGPT2Config } from '../../src/io/config.js';
import { estimateWeightBytes } from '../../src/model/weights.js';
import { MAX_MEMORY_BYTES } from '../../src/runtime/memory.js';
import { RESERVED_LOW_BYTES } from '../../src/runtime/wasm.js';
import { GPT2_SHAPES, gpt2ConfigJson } from './checkpoint.js';

export interface SizeRow {
  model: string; params: number; dtype: 'fp32' | 'fp16' | 'q8';
  weights_bytes: number;
  /** K and V for n_positions tokens, batch 1. */
  kv_cache_bytes: number;
  /** Activations of one 128-token prefill chunk, with the LM head rows. */
  workspace_bytes: number;
  total_bytes: number;
  /** The loader accepts it (weights <= 4 GiB - 64 MiB). */
  loads: boolean;
  /** Weights + full KV cache + workspace fit under 4 GiB. */
  fits_full_context: boolean;
}

export function sizeTable(models = ['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl']): SizeRow[] {
  const rows: SizeRow[] = [];
  for (const name of models) {
    const shape = GPT2_SHAPES[name];
    const cfg = parseGPT2Config(gpt2ConfigJson(shape));
    const E = cfg.n_embd, I = cfg.n_inner, L = cfg.n_layer, P = cfg.n_positions, V = cfg.vocab_size;
    const params = V * E + P * E + L * (4 * E + 3 * E * E + 3 * E + E * E + E + 2 * E * I + I + E) + 2 * E;
    for (const dtype of ['fp32', 'fp16', 'q8'] as const) {
      const weights = estimateWeightBytes(cfg, dtype);
      const kv = 2 * L * P * E * 4;
      const C = 128;
      const workspace = C * (5 * E + I) * 4 + C * Math.max(E, I) * 2 + C * V * 4 + RESERVED_LOW_BYTES;
      const total = weights + kv + workspace;
      rows.push({
        model: name, params, dtype, weights_bytes: weights, kv_cache_bytes: kv, workspace_bytes: workspace, total_bytes: total,
        loads: weights <= MAX_MEMORY_BYTES - (64 << 20), fits_full_context: total <= MAX_MEMORY_BYTES,
      });
    }
  }
  return rows;
}
