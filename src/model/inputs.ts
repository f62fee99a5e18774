// Normalises user inputs (Tensors or nested arrays, HF names) into the flat typed arrays the forward pass
// takes, checking every shape, range and length against the config with an error that names the input.
import { InputError } from '../errors.js';
import type { GPT2Config } from '../io/config.js';
import type { EncoderInput } from './forward.js';
import { flatten, Tensor } from './tensor.js';

export function toIds(input: unknown, cfg: GPT2Config, what = 'input_ids'): { ids: Int32Array; B: number; T: number } {
  if (input === undefined || input === null) throw new InputError(`${what} is required`);
  const { dims, data } = flatten(input, what);
  let B: number, T: number;
  if (dims.length === 1) { B = 1; T = dims[0]; } else if (dims.length === 2) { [B, T] = dims; } else throw new InputError(`${what} must be [batch, seq] or [seq], got dims [${dims}]`);
  if (B < 1 || T < 1) throw new InputError(`${what} is empty (dims [${dims}])`);
  const ids = new Int32Array(B * T);
  for (let i = 0; i < ids.length; i++) {
    const v = data[i];
    if (!Number.isInteger(v) || v < 0 || v >= cfg.vocab_size) {
      const at = `${what}[${Math.floor(i / T)}][${i % T}] = ${v}`;
      if (!Number.isInteger(v)) throw new InputError(`${at} is not a token id: not an integer (token ids are integers in [0, ${cfg.vocab_size}), vocab_size from config.json)`);
      throw new InputError(`${at} is not a token id in [0, ${cfg.vocab_size}) (vocab_size from config.json)`);
    }
    ids[i] = v;
  }
  return { ids, B, T };
}

export function toMask(input: unknown, B: number, len: number, what: string): Float32Array {
  const { dims, data } = flatten(input, what);
  const d2 = dims.length === 1 ? [1, dims[0]] : dims;
  if (d2.length !== 2 || d2[0] !== B || d2[1] !== len) throw new InputError(`${what} has dims [${dims}], expected [${B}, ${len}]`);
  const out = new Float32Array(B * len);
  for (let i = 0; i < out.length; i++) {
    if (data[i] !== 0 && data[i] !== 1) throw new InputError(`${what} must hold 0s and 1s, found ${data[i]}`);
    out[i] = data[i];
  }
  return out;
}

export function toPositions(input: unknown, B: number, T: number, cfg: GPT2Config): Int32Array {
  const { dims, data } = flatten(input, 'position_ids');
  const d2 = dims.length === 1 ? [1, dims[0]] : dims;
  if (d2.length !== 2 || d2[1] !== T || (d2[0] !== B && d2[0] !== 1)) throw new InputError(`position_ids has dims [${dims}], expected [${B}, ${T}]`);
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
    const v = data[(d2[0] === 1 ? 0 : b) * T + t];
    if (!Number.isInteger(v)) throw new InputError(`position_ids[${b}][${t}] = ${v} is not an integer (positions are integers in [0, ${cfg.n_positions}))`);
    if (v < 0 || v >= cfg.n_positions) throw new InputError(`position_ids[${b}][${t}] = ${v} is outside [0, ${cfg.n_positions}) (n_positions)`);
    out[b * T + t] = v;
  }
  return out;
}

export function toHeadMask(input: unknown, cfg: GPT2Config): Float32Array {
  const { dims, data } = flatten(input, 'head_mask');
  const L = cfg.n_layer, H = cfg.n_head;
  const out = new Float32Array(L * H);
  if (dims.length === 1 && dims[0] === H) { for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) out[l * H + h] = data[h]; }
  else if (dims.length === 2 && dims[0] === L && dims[1] === H) out.set(data);
  else throw new InputError(`head_mask has dims [${dims}], expected [${H}] or [${L}, ${H}] (n_layer, n_head)`);
  // checked after the conversion to f32: a value finite in f64 but beyond f32's range (1e39) is Infinity there
  checkFiniteF32(out, 'head_mask');
  return out;
}

/** Refuses a float input holding ±Infinity or NaN once in f32, where the forward pass computes: a value finite in
 *  f64 but beyond f32's range (|v| > 3.4028234663852886e38, e.g. 1e39) is Infinity there, and would otherwise go
 *  through attention as a silent wrong answer (weights of 0, finite logits). */
function checkFiniteF32(a: Float32Array, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new InputError(`${what} contains a non-finite value at flat index ${i}${Number.isNaN(a[i]) ? '' : ' (beyond the float32 range ±3.4028235e38)'}`);
  }
}

export function toFloat3(input: unknown, what: string, B: number, lastDim: number): { data: Float32Array; S: number } {
  const { dims, data } = flatten(input, what);
  const d3 = dims.length === 2 ? [1, ...dims] : dims;
  if (d3.length !== 3 || d3[0] !== B || d3[2] !== lastDim) throw new InputError(`${what} has dims [${dims}], expected [${B}, S, ${lastDim}]`);
  const f32 = Float32Array.from(data);
  checkFiniteF32(f32, what);
  return { data: f32, S: d3[1] };
}

/** past_key_values as a list per layer of {key, value} or [key, value], each [B, H, P, D]. */
export function toPast(input: unknown, cfg: GPT2Config, B: number): { k: Float32Array[]; v: Float32Array[]; P: number } {
  if (!Array.isArray(input)) throw new InputError('past_key_values must be an array with one {key, value} per layer');
  const L = cfg.n_layer, H = cfg.n_head, D = cfg.n_embd / cfg.n_head;
  if (input.length !== L) throw new InputError(`past_key_values has ${input.length} layers, expected ${L} (n_layer)`);
  const k: Float32Array[] = [], v: Float32Array[] = [];
  let P = -1;
  input.forEach((layer: any, l: number) => {
    const key = Array.isArray(layer) ? layer[0] : layer?.key, value = Array.isArray(layer) ? layer[1] : layer?.value;
    for (const [name, t, dst] of [['key', key, k], ['value', value, v]] as const) {
      // float32 Tensors are taken as they are; anything else goes through flatten's checks
      const { dims, data } = t instanceof Tensor && t.type === 'float32' ? { dims: t.dims, data: t.data as Float32Array } : flatten(t, `past_key_values[${l}].${name}`);
      const d4 = dims.length === 3 ? [1, ...dims] : dims;
      if (d4.length !== 4 || d4[0] !== B || d4[1] !== H || d4[3] !== D) throw new InputError(`past_key_values[${l}].${name} has dims [${dims}], expected [${B}, ${H}, P, ${D}]`);
      if (P >= 0 && d4[2] !== P) throw new InputError(`past_key_values[${l}].${name} has ${d4[2]} positions, others have ${P}`);
      P = d4[2];
      const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
      checkFiniteF32(f32, `past_key_values[${l}].${name}`);
      (dst as Float32Array[]).push(f32);
    }
  });
  return { k, v, P };
}

/** encoder_hidden_states [B, S, E] and encoder_attention_mask [B, S] → the forward pass's encoder input (null when absent). */
export function toEncoder(states: unknown, mask: unknown, B: number, cfg: GPT2Config): EncoderInput | null {
  if (states == null) {
    if (mask != null) throw new InputError('encoder_attention_mask given without encoder_hidden_states');
    return null;
  }
  if (!cfg.add_cross_attention) throw new InputError('encoder_hidden_states given, but this model has no cross-attention (add_cross_attention is false in config.json)');
  const e = toFloat3(states, 'encoder_hidden_states', B, cfg.n_embd);
  return { states: e.data, S: e.S, mask: mask != null ? toMask(mask, B, e.S, 'encoder_attention_mask') : null, key: {} };
}

export const f32Tensor = (data: Float32Array, dims: number[]) => new Tensor('float32', data, dims);
