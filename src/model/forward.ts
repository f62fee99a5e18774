// The GPT-2 forward pass, one readable loop in the style of llm.c: embeddings, then per layer
// ln_1 → qkv → attention over the KV cache → proj (+residual), [ln_cross_attn → cross-attention (+residual)],
// ln_2 → fc+gelu → proj (+residual); ln_f; the head only on the rows whose outputs are wanted.
// The prompt is driven through in chunks of `chunk` tokens, each attending to the cache plus itself, so
// activation memory is bounded by the chunk and not the prompt.
import { InputError } from '../errors.js';
import type { GPT2Config } from '../io/config.js';
import { ACT_NONE, DT_F16, DT_F32, DT_Q4, DT_Q8, FLAG_ACCUMULATE, Q8_BLOCK, attentionScratchBytes } from '../runtime/abi.js';
import type { Backend } from '../runtime/backend.js';
import type { Region } from '../runtime/memory.js';
import { KVBuffers, type KVCache } from './kv-cache.js';
import type { Matrix, ModelWeights } from './weights.js';

export interface EncoderInput {
  states: Float32Array; // [B, S, E]
  S: number;
  mask: Float32Array | null; // [B, S], 1 = attend
  /** Identity of the encoder input: cross K/V are recomputed only when it changes. */
  key: unknown;
}

export interface ForwardRequest {
  ids: Int32Array; // [B*T]
  B: number;
  T: number;
  /** [B, P+T] over the cached tokens and the new ones (1 = attend), or null for all ones. */
  attentionMask: Float32Array | null;
  /** [B*T], or null for P..P+T-1. */
  positionIds: Int32Array | null;
  /** [L*H], or null. */
  headMask: Float32Array | null;
  encoder: EncoderInput | null;
  outputAttentions: boolean;
  outputHiddenStates: boolean;
  wantLastHidden: boolean;
  /** Which (b, t) rows go through the head, in output order; null = no head. */
  headRows: Int32Array | null; // pairs [b0, t0, b1, t1, ...]
  head: Matrix | null;
  headBias: number;
  /** Prompt chunk size (tokens per batch row per pass). */
  chunk: number;
  /** Force the exact attention path even without attentions or a head mask (for tests). */
  eager?: boolean;
}

export interface ForwardResult {
  head: Float32Array | null; // [rows, N]
  lastHidden: Float32Array | null; // [B, T, E]
  hiddenStates: Float32Array[] | null; // L+1 of [B, T, E]
  attentions: Float32Array[] | null; // L of [B, H, T, P+T]
  crossAttentions: Float32Array[] | null; // L of [B, H, T, S]
}

type MatmulFn = (x: number, w: Matrix, bias: number, y: number, M: number, flags: number) => void;

/** y = x·wᵀ + bias through the kernel for w's storage; q8/q4 first quantise x into the (xq, xs) workspace. */
function matmulWith(backend: Backend, xq: number, xs: number): MatmulFn {
  const k = backend.k;
  return (x, w, bias, y, M, flags) => {
    if (w.dt === DT_F32) k.matmul_f32(x, w.ptr, bias, y, M, w.K, w.N, flags);
    else if (w.dt === DT_F16) k.matmul_f16(x, w.ptr, bias, y, M, w.K, w.N, flags);
    else if (w.dt === DT_Q8) { k.quantize_q8(x, xq, xs, M, w.K); k.matmul_q8(xq, xs, w.ptr, bias, y, M, w.K, w.N, flags); }
    else if (w.dt === DT_Q4) { k.quantize_q8(x, xq, xs, M, w.K); k.matmul_q4(xq, xs, w.ptr, bias, y, M, w.K, w.N, flags); }
    else throw new Error(`matmul: unknown weight format ${w.dt}`);
  };
}

/** Whether any matrix is block-quantised, so the forward needs the int8 activation workspace. */
const usesQ8 = (W: ModelWeights) => [W.wte, W.lm_head, ...W.layers.flatMap((l) => [l.qkv, l.attn_proj, l.fc, l.mlp_proj, ...(l.cross ? [l.cross.q, l.cross.kv, l.cross.proj] : [])])].some((w) => w && (w.dt === DT_Q8 || w.dt === DT_Q4));

export interface ModelState { cfg: GPT2Config; backend: Backend; weights: ModelWeights; act: number }

export function runForward(m: ModelState, cache: KVCache, req: ForwardRequest): ForwardResult {
  const { cfg, backend, weights: W } = m;
  const k = backend.k, A = backend.arena;
  const E = cfg.n_embd, H = cfg.n_head, D = E / H, I = cfg.n_inner, L = cfg.n_layer;
  const { B, T } = req;
  const P = cache.length, S_total = P + T, cap = cache.capacity;
  if (B !== cache.batch) throw new InputError(`batch size ${B} does not match the cache's batch size ${cache.batch}`);
  if (S_total > cap) throw new InputError(`context too long: ${P} cached + ${T} new tokens = ${S_total} exceeds the cache capacity ${cap}`);
  if (T < 1) throw new InputError('input_ids has no tokens');

  const C = Math.max(1, Math.min(req.chunk, T));
  const R = B * C;
  const enc = req.encoder;
  const S_enc = enc ? enc.S : 0;
  const eager = req.outputAttentions || !!req.headMask || !!req.eager;
  const q8 = usesQ8(W);
  const headN = req.head ? req.head.N : 0;
  const regions: Region[] = [];
  const ws = (name: string, bytes: number) => { const r = A.alloc(`forward ${name}`, bytes); regions.push(r); return r.ptr; };
  try {
    const x = ws('x', R * E * 4), h = ws('h', R * E * 4), qkv = ws('qkv', R * 3 * E * 4), att = ws('att', R * E * 4);
    const mlp = ws('mlp', R * I * 4);
    const qx = enc ? ws('cross q', R * E * 4) : 0;
    const idsP = ws('ids', R * 4), posP = ws('pos', R * 4);
    const maskWs = ws('mask', B * S_total * 4);
    const scratch = ws('attention scratch', backend.threads * attentionScratchBytes(Math.max(S_total, S_enc), D));
    const probs = req.outputAttentions ? ws('probs', B * H * C * Math.max(S_total, S_enc) * 4) : 0;
    const maxK = Math.max(E, I);
    const xq = q8 ? ws('q8 activations', R * maxK) : 0, xs = q8 ? ws('q8 scales', (R * maxK / Q8_BLOCK + 1) * 4) : 0;
    const gather = req.headRows ? ws('head rows', R * E * 4) : 0;
    const headOut = req.headRows ? ws('head out', R * headN * 4) : 0;
    const headMaskP = req.headMask ? ws('head mask', L * H * 4) : 0;
    if (req.headMask) A.f32(headMaskP, L * H).set(req.headMask);

    const mm = matmulWith(backend, xq, xs);

    // cross-attention K/V: once per encoder input
    if (enc && cfg.add_cross_attention && cache.cross?.key !== enc.key) buildCrossCache(m, cache, enc, mm);
    const crossMaskP = enc && cache.cross?.mask ? cache.cross.mask.ptr : 0;
    // attention mask of every slot the new tokens can see
    const maskAll = A.f32(cache.mask.ptr, B * cap);
    for (let b = 0; b < B; b++) {
      for (let j = req.attentionMask ? 0 : P; j < S_total; j++) maskAll[b * cap + j] = req.attentionMask ? (req.attentionMask[b * S_total + j] !== 0 ? 1 : 0) : 1;
    }
    let allVisible = true;
    for (let b = 0; b < B && allVisible; b++) for (let j = 0; j < S_total; j++) if (maskAll[b * cap + j] === 0) { allVisible = false; break; }
    const maskP = allVisible ? 0 : maskWs;

    const out: ForwardResult = {
      head: req.headRows ? new Float32Array((req.headRows.length / 2) * headN) : null,
      lastHidden: req.wantLastHidden ? new Float32Array(B * T * E) : null,
      hiddenStates: req.outputHiddenStates ? Array.from({ length: L + 1 }, () => new Float32Array(B * T * E)) : null,
      attentions: req.outputAttentions ? Array.from({ length: L }, () => new Float32Array(B * H * T * S_total)) : null,
      crossAttentions: req.outputAttentions && enc && cfg.add_cross_attention ? Array.from({ length: L }, () => new Float32Array(B * H * T * S_enc)) : null,
    };
    const copyRows = (src: number, dst: Float32Array, t0: number, Tc: number) => {
      const F = A.F32;
      for (let b = 0; b < B; b++) dst.set(F.subarray((src >> 2) + b * Tc * E, (src >> 2) + (b + 1) * Tc * E), (b * T + t0) * E);
    };
    const copyProbs = (dst: Float32Array, t0: number, Tc: number, S: number, Sdst: number) => {
      const F = A.F32;
      for (let bh = 0; bh < B * H; bh++) for (let tt = 0; tt < Tc; tt++) {
        const s = (probs >> 2) + (bh * Tc + tt) * S;
        dst.set(F.subarray(s, s + S), (bh * T + t0 + tt) * Sdst);
      }
    };

    for (let t0 = 0; t0 < T; t0 += C) {
      const Tc = Math.min(C, T - t0), Rc = B * Tc, S = P + t0 + Tc;
      const ids = A.i32(idsP, Rc), pos = A.i32(posP, Rc);
      for (let b = 0; b < B; b++) for (let tt = 0; tt < Tc; tt++) {
        ids[b * Tc + tt] = req.ids[b * T + t0 + tt];
        pos[b * Tc + tt] = req.positionIds ? req.positionIds[b * T + t0 + tt] : P + t0 + tt;
      }
      if (maskP) {
        const maskAll = A.f32(cache.mask.ptr, B * cap);
        const mk = A.f32(maskP, B * S);
        for (let b = 0; b < B; b++) mk.set(maskAll.subarray(b * cap, b * cap + S), b * S);
      }
      k.embed(idsP, posP, W.wte.ptr, W.wte.dt, W.wpe, x, Rc, E);
      if (out.hiddenStates) copyRows(x, out.hiddenStates[0], t0, Tc);

      for (let l = 0; l < L; l++) {
        const lw = W.layers[l];
        const scale = (cfg.scale_attn_weights ? 1 / Math.sqrt(D) : 1) / (cfg.scale_attn_by_inverse_layer_idx ? l + 1 : 1);
        const hm = headMaskP ? headMaskP + l * H * 4 : 0;
        const attention = eager ? k.attention_eager : k.attention_blockwise;
        // self-attention
        k.layernorm(x, lw.ln1_g, lw.ln1_b, h, Rc, E, cfg.layer_norm_epsilon);
        mm(h, lw.qkv, lw.qkv_b, qkv, Rc, ACT_NONE);
        k.kv_store(qkv, 3 * E, E, 2 * E, cache.self.k[l].ptr, cache.self.v[l].ptr, B, Tc, H, D, cap, P + t0);
        attention(qkv, 3 * E, cache.self.k[l].ptr, cache.self.v[l].ptr, cap, att, E, B, H, Tc, D, S, P + t0, 1, maskP, scale, hm, probs, scratch);
        if (out.attentions) copyProbs(out.attentions[l], t0, Tc, S, S_total);
        mm(att, lw.attn_proj, lw.attn_proj_b, x, Rc, FLAG_ACCUMULATE);
        // cross-attention (only when encoder states are given, as in transformers)
        if (enc && lw.cross && cache.cross) {
          const c = lw.cross;
          k.layernorm(x, c.ln_g, c.ln_b, h, Rc, E, cfg.layer_norm_epsilon);
          mm(h, c.q, c.q_b, qx, Rc, ACT_NONE);
          attention(qx, E, cache.cross.buffers.k[l].ptr, cache.cross.buffers.v[l].ptr, S_enc, att, E, B, H, Tc, D, S_enc, 0, 0, crossMaskP, scale, hm, probs, scratch);
          if (out.crossAttentions) copyProbs(out.crossAttentions[l], t0, Tc, S_enc, S_enc);
          mm(att, c.proj, c.proj_b, x, Rc, FLAG_ACCUMULATE);
        }
        // MLP
        k.layernorm(x, lw.ln2_g, lw.ln2_b, h, Rc, E, cfg.layer_norm_epsilon);
        mm(h, lw.fc, lw.fc_b, mlp, Rc, m.act);
        mm(mlp, lw.mlp_proj, lw.mlp_proj_b, x, Rc, FLAG_ACCUMULATE);
        if (out.hiddenStates && l < L - 1) copyRows(x, out.hiddenStates[l + 1], t0, Tc);
      }
      k.layernorm(x, W.lnf_g, W.lnf_b, h, Rc, E, cfg.layer_norm_epsilon);
      if (out.hiddenStates) copyRows(h, out.hiddenStates[L], t0, Tc);
      if (out.lastHidden) copyRows(h, out.lastHidden, t0, Tc);

      if (req.headRows && req.head && out.head) {
        const rows = req.headRows;
        const picked: number[] = [];
        const F = A.F32;
        for (let i = 0; i < rows.length / 2; i++) {
          const b = rows[2 * i], t = rows[2 * i + 1];
          if (t < t0 || t >= t0 + Tc) continue;
          const src = (h >> 2) + (b * Tc + t - t0) * E;
          F.copyWithin((gather >> 2) + picked.length * E, src, src + E);
          picked.push(i);
        }
        if (picked.length) {
          mm(gather, req.head, req.headBias, headOut, picked.length, ACT_NONE);
          const res = A.f32(headOut, picked.length * headN);
          picked.forEach((i, j) => out.head!.set(res.subarray(j * headN, (j + 1) * headN), i * headN));
        }
      }
    }
    cache.length = S_total;
    return out;
  } finally {
    for (const r of regions) A.release(r);
  }
}

function buildCrossCache(m: ModelState, cache: KVCache, enc: EncoderInput, mm: MatmulFn) {
  const { cfg, backend } = m;
  const A = backend.arena, E = cfg.n_embd, H = cfg.n_head, D = E / H, B = cache.batch, S = enc.S;
  cache.dropCross();
  const buffers = new KVBuffers(backend, cache.shape, B, S, 'cross-attention cache');
  let mask: Region | null = null;
  const tmp: Region[] = [];
  try {
    if (enc.mask && enc.mask.some((v) => v === 0)) {
      mask = A.alloc('cross-attention mask', B * S * 4);
      const mv = A.f32(mask.ptr, B * S);
      for (let i = 0; i < B * S; i++) mv[i] = enc.mask[i] !== 0 ? 1 : 0;
    }
    const states = A.alloc('encoder states', B * S * E * 4); tmp.push(states);
    const kv = A.alloc('encoder kv', B * S * 2 * E * 4); tmp.push(kv);
    A.f32(states.ptr, B * S * E).set(enc.states);
    for (let l = 0; l < cfg.n_layer; l++) {
      const c = m.weights.layers[l].cross!;
      mm(states.ptr, c.kv, c.kv_b, kv.ptr, B * S, ACT_NONE);
      backend.k.kv_store(kv.ptr, 2 * E, 0, E, buffers.k[l].ptr, buffers.v[l].ptr, B, S, H, D, S, 0);
    }
  } catch (e) {
    buffers.dispose(); A.release(mask); throw e;
  } finally {
    for (const r of tmp) A.release(r);
  }
  cache.cross = { buffers, S, mask, key: enc.key };
}

export interface DecodeEntry {
  /** A batch-1 cache holding this sequence so far. */
  cache: KVCache;
  /** The token to append. */
  id: number;
  /** Its position id. */
  pos: number;
}

/**
 * One decode step for several independent sequences at once (continuous batching): the matmuls run over all
 * N new tokens together, so the weights are streamed once per step for every sequence; attention runs per
 * sequence against its own cache. Returns the next-token logits [N, V].
 */
export function runDecodeStep(m: ModelState, entries: DecodeEntry[]): Float32Array {
  const { cfg, backend, weights: W } = m;
  const k = backend.k, A = backend.arena;
  const E = cfg.n_embd, H = cfg.n_head, D = E / H, I = cfg.n_inner, L = cfg.n_layer, V = cfg.vocab_size;
  const N = entries.length;
  if (N === 0) return new Float32Array(0);
  let Smax = 0;
  for (const e of entries) {
    if (e.cache.batch !== 1) throw new InputError('runDecodeStep takes batch-1 caches');
    if (e.cache.length + 1 > e.cache.capacity) throw new InputError(`context too long: a sequence of ${e.cache.length} tokens cannot grow past its cache capacity ${e.cache.capacity}`);
    if (!(e.id >= 0 && e.id < V)) throw new InputError(`token id ${e.id} is not in [0, ${V})`);
    if (!(e.pos >= 0 && e.pos < cfg.n_positions)) throw new InputError(`position ${e.pos} is outside [0, ${cfg.n_positions})`);
    Smax = Math.max(Smax, e.cache.length + 1);
  }
  const q8 = usesQ8(W);
  const regions: Region[] = [];
  const ws = (name: string, bytes: number) => { const r = A.alloc(`decode ${name}`, bytes); regions.push(r); return r.ptr; };
  try {
    const x = ws('x', N * E * 4), h = ws('h', N * E * 4), qkv = ws('qkv', N * 3 * E * 4), att = ws('att', N * E * 4), mlp = ws('mlp', N * I * 4);
    const idsP = ws('ids', N * 4), posP = ws('pos', N * 4);
    const masks = ws('masks', N * Smax * 4);
    const scratch = ws('attention scratch', backend.threads * attentionScratchBytes(Smax, D));
    const maxK = Math.max(E, I);
    const xq = q8 ? ws('q8 activations', N * maxK) : 0, xs = q8 ? ws('q8 scales', (N * maxK / Q8_BLOCK + 1) * 4) : 0;
    const logits = ws('logits', N * V * 4);
    const mm = matmulWith(backend, xq, xs);
    A.i32(idsP, N).set(entries.map((e) => e.id));
    A.i32(posP, N).set(entries.map((e) => e.pos));
    // per-sequence masks: slot j visible iff the cache marks it as a real token; the new token is visible
    const maskPtrs = entries.map((e, i) => {
      const S = e.cache.length + 1;
      const cm = A.f32(e.cache.mask.ptr, e.cache.capacity);
      cm[S - 1] = 1;
      let all = true;
      for (let j = 0; j < S; j++) if (cm[j] === 0) { all = false; break; }
      if (all) return 0;
      A.f32(masks + i * Smax * 4, S).set(cm.subarray(0, S));
      return masks + i * Smax * 4;
    });
    k.embed(idsP, posP, W.wte.ptr, W.wte.dt, W.wpe, x, N, E);
    for (let l = 0; l < L; l++) {
      const lw = W.layers[l];
      const scale = (cfg.scale_attn_weights ? 1 / Math.sqrt(D) : 1) / (cfg.scale_attn_by_inverse_layer_idx ? l + 1 : 1);
      k.layernorm(x, lw.ln1_g, lw.ln1_b, h, N, E, cfg.layer_norm_epsilon);
      mm(h, lw.qkv, lw.qkv_b, qkv, N, ACT_NONE);
      entries.forEach((e, i) => {
        const c = e.cache, P = c.length;
        k.kv_store(qkv + i * 3 * E * 4, 3 * E, E, 2 * E, c.self.k[l].ptr, c.self.v[l].ptr, 1, 1, H, D, c.capacity, P);
        k.attention_blockwise(qkv + i * 3 * E * 4, 3 * E, c.self.k[l].ptr, c.self.v[l].ptr, c.capacity, att + i * E * 4, E, 1, H, 1, D, P + 1, P, 1, maskPtrs[i], scale, 0, 0, scratch);
      });
      mm(att, lw.attn_proj, lw.attn_proj_b, x, N, FLAG_ACCUMULATE);
      k.layernorm(x, lw.ln2_g, lw.ln2_b, h, N, E, cfg.layer_norm_epsilon);
      mm(h, lw.fc, lw.fc_b, mlp, N, m.act);
      mm(mlp, lw.mlp_proj, lw.mlp_proj_b, x, N, FLAG_ACCUMULATE);
    }
    k.layernorm(x, W.lnf_g, W.lnf_b, h, N, E, cfg.layer_norm_epsilon);
    mm(h, W.lm_head!, 0, logits, N, ACT_NONE);
    for (const e of entries) e.cache.length += 1;
    return A.f32(logits, N * V).slice();
  } finally {
    for (const r of regions) A.release(r);
  }
}
