// The GPT-2 forward pass in the style of llm.c: one function per part (embed, attention, cross-attention, MLP,
// final norm, head) and ONE driver, runStep, used by every caller: forward() and generate() (a [B, T] batch in
// one B-row cache, through runBatch), the server's prefill (one sequence) and batched decode (one new token of
// each of N caches). A step is a list of segments, each a run of new tokens of one cache row. It is driven in
// passes of at most `chunk` tokens per segment, so activation memory is bounded by the chunk and not the prompt;
// a pass stacks the rows of all its segments, so every matmul streams its weights once for all of them, while
// attention runs per segment against that segment's own cache.
// Shapes: R = rows of the pass, E = n_embd, H = n_head, D = E / H, I = n_inner, cap = a cache's capacity.
import { InputError, MemoryLimitError } from '../errors.js';
import type { GPT2Config } from '../io/config.js';
import { ACT_NONE, FLAG_ACCUMULATE, wexpBits } from '../runtime/abi.js';
import type { Region } from '../runtime/memory.js';
import { KVBuffers, KVCache } from './kv-cache.js';
import { matmul, type ModelState } from './state.js';
import type { Matrix } from './weights.js';
import type { Workspace } from './workspace.js';

/** Scale of q·k in layer l: 1/√D (scale_attn_weights), divided by l+1 with scale_attn_by_inverse_layer_idx. */
const attentionScale = (cfg: GPT2Config, D: number, l: number) =>
  (cfg.scale_attn_weights ? 1 / Math.sqrt(D) : 1) / (cfg.scale_attn_by_inverse_layer_idx ? l + 1 : 1);

// ---------------------------------------------------------------------------------------------------------------
// A step: segments of new tokens, driven through the layers in passes.

/** A run of new tokens of one sequence: batch row `row` of `cache`, stored from slot cache.length on. */
export interface Segment {
  cache: KVCache;
  row: number;
  ids: ArrayLike<number>; // [T]
  /** [T], or null for the slot numbers P … P+T-1. */
  positions: ArrayLike<number> | null;
  /** [P+T]: which slots this row may attend to (1) or not (0); null keeps the stored slots and shows the new ones. */
  mask: ArrayLike<number> | null;
  /** Which of the T tokens go through the head, ascending; null for none. */
  headTokens: ArrayLike<number> | null;
}

export interface StepRequest {
  /** Every row of every cache in the step advances by the same number of tokens (a cache has one length). */
  segments: Segment[];
  head: { w: Matrix; b: number } | null;
  /** Tokens per segment per pass. */
  chunk: number;
  /** [L, H] multiplies each head's attention probabilities (eager attention). */
  headMask?: Float32Array | null;
  /** Use the exact (eager) attention even without probabilities or a head mask (tests). */
  eager?: boolean;
  taps?: Taps;
  /** Where the head rows go instead of a new array (a new [n, N] array per token is 200 KB of fresh memory for
   *  GPT-2's vocabulary, whose page faults and copy were a third of a decode step's host time):
   *  - an array of at least n·N floats, filled and returned as its first n·N (a decode loop reuses one);
   *  - 'view': when the step runs in one pass (a decode step), a view of the workspace's head output, no copy at
   *    all, valid until the model's next call (for callers that consume the logits at once: generate()); a new
   *    array otherwise. */
  headInto?: Float32Array | 'view';
}

/** A segment's share of a pass: rows r0 … r0+T-1 hold its tokens t0 … t0+T-1, stored at slots P … P+T-1. */
export interface PassSegment { index: number; seg: Segment; r0: number; t0: number; T: number; P: number; mask: number; crossMask: number }
export interface Pass { rows: number; segs: PassSegment[] }

/** Where forward() reads its optional outputs while the pass runs (addresses are only valid during the call). */
export interface Taps {
  /** Hidden state i of the pass's rows, [R, E]: 0 the embeddings, l+1 after layer l, L after the final norm. */
  hidden?(i: number, x: number, pass: Pass): void;
  /** Attention probabilities of one segment in layer l: [H, ps.T, S] at `probs`. */
  attention?(l: number, ps: PassSegment, probs: number, S: number): void;
  crossAttention?(l: number, ps: PassSegment, probs: number, S: number): void;
}

interface SegmentState { P: number; T: number; firstHidden: number; headBase: number; headNext: number }

/** Runs the segments through the model, appends their K/V, advances their caches; returns the head rows [n, N] in
 *  segment order, then token order (empty without a head). */
export function runStep(st: ModelState, req: StepRequest): Float32Array {
  st.check();
  const segs = req.segments;
  const states = checkStep(st, req);
  let nHead = 0, maxT = 0;
  for (let i = 0; i < segs.length; i++) { nHead += segs[i].headTokens?.length ?? 0; maxT = Math.max(maxT, states[i].T); }
  const headN = req.head ? req.head.w.N : 0;
  if (!segs.length) return new Float32Array(0);
  const C = Math.max(1, Math.min(req.chunk, maxT));
  const size = req.head ? nHead * headN : 0, into = req.headInto;
  if (into instanceof Float32Array && into.length < size) throw new InputError(`the logits need ${size} floats, the array given for them has ${into.length}`);
  // one pass writes every head row at its place in the workspace's head output (dst = j in head())
  const out = into === 'view' && maxT <= C ? null : into instanceof Float32Array ? into.subarray(0, size) : headArray(size);
  writeMasks(st, segs, states);
  const cross = !!segs[0].cache.cross;
  let rows = 0, headRows = 0, S = 0;
  segs.forEach((g, i) => {
    rows += Math.min(C, states[i].T);
    headRows += Math.min(C, g.headTokens?.length ?? 0);
    S = Math.max(S, g.cache.capacity, g.cache.cross?.S ?? 0);
  });
  const ws = st.workspace({
    rows, tokens: C, S, headRows: req.head ? headRows : 0, headN, cross,
    probs: !!(req.taps?.attention || req.taps?.crossAttention), headMask: !!req.headMask,
  });
  try {
    if (req.headMask) st.backend.arena.f32(ws.headMask, st.L * st.H).set(req.headMask);
    for (let t0 = 0; t0 < maxT; t0 += C) runPass(st, ws, req, planPass(segs, states, t0, C), states, out);
    const advanced = new Set<KVCache>();
    segs.forEach((g, i) => { if (!advanced.has(g.cache)) { advanced.add(g.cache); g.cache.length += states[i].T; } });
    if (!out) return req.head ? st.backend.arena.f32(ws.headOut, size) : new Float32Array(0);
  } finally {
    st.endCall();
  }
  return out;
}

/** A KV cache is memory of the model that made it (createCache): another model's, even of the same shape, holds
 *  addresses into that model's memory, and used here would read and overwrite this model's memory at them. */
export function checkCache(st: ModelState, c: unknown, what = 'the KV cache'): asserts c is KVCache {
  if (!(c instanceof KVCache)) throw new InputError(`${what} must be a KVCache from this model's createCache(), got ${c === null ? 'null' : typeof c === 'object' ? (c as object).constructor?.name ?? 'an object' : typeof c}`);
  c.check();
  const s = c.shape;
  if (c.backend !== st.backend || s.layers !== st.L || s.heads !== st.H || s.headDim !== st.D) {
    throw new InputError(`${what} was created by another model (${s.layers} layers, ${s.heads} heads of ${s.headDim}): a KV cache lives in the memory of the model whose createCache() made it`);
  }
}

/** The head outputs of a call as a new array: a batch too large for one (past the engine's array limit or its
 *  memory) is a MemoryLimitError naming the size, not a RangeError. */
function headArray(size: number): Float32Array {
  try { return new Float32Array(size); } catch (e) {
    throw new MemoryLimitError(`the head outputs of this call, ${size} floats (${(size * 4 / 2 ** 20).toFixed(0)} MiB), do not fit in memory: pass fewer rows or logits_to_keep`, { cause: e });
  }
}

/** Validates a step before anything is written: caches alive, whole caches advancing together, ids, positions, lengths. */
function checkStep(st: ModelState, req: StepRequest): SegmentState[] {
  const cfg = st.cfg;
  const rowsOf = new Map<KVCache, { rows: Set<number>; T: number }>();
  const cross = req.segments.length ? !!req.segments[0].cache.cross : false;
  const states: SegmentState[] = [];
  let headBase = 0;
  for (const g of req.segments) {
    const c = g.cache;
    checkCache(st, c);
    const P = c.length, T = g.ids.length;
    if (T < 1) throw new InputError('a sequence has no new tokens');
    if (!Number.isInteger(g.row) || g.row < 0 || g.row >= c.batch) throw new InputError(`batch row ${g.row} is not in the cache's ${c.batch} rows`);
    const seen = rowsOf.get(c) ?? { rows: new Set<number>(), T };
    if (seen.rows.has(g.row) || seen.T !== T) throw new InputError(`batch row ${g.row} of a cache is given twice or with ${T} new tokens where its other rows have ${seen.T}`);
    seen.rows.add(g.row); rowsOf.set(c, seen);
    if (P + T > c.capacity) throw new InputError(`context too long: ${P} cached + ${T} new tokens exceed the cache capacity ${c.capacity}`);
    if (!!c.cross !== cross) throw new InputError('a step cannot mix sequences with and without encoder states');
    if (g.positions && g.positions.length !== T) throw new InputError(`${g.positions.length} position ids for ${T} tokens`);
    if (g.mask && g.mask.length !== P + T) throw new InputError(`an attention mask of ${g.mask.length} slots for ${P} cached + ${T} new tokens`);
    for (let t = 0; t < T; t++) {
      const id = g.ids[t];
      if (!(Number.isInteger(id) && id >= 0 && id < st.V)) throw new InputError(`token id ${id} is not in [0, ${st.V})`);
      const pos = g.positions ? g.positions[t] : P + t;
      if (!(Number.isInteger(pos) && pos >= 0 && pos < cfg.n_positions)) {
        throw new InputError(g.positions ? `position ${pos} is outside [0, ${cfg.n_positions})` : `context too long: ${P} cached + ${T} new tokens exceed n_positions = ${cfg.n_positions}`);
      }
    }
    const ht = g.headTokens;
    if (ht) for (let i = 0; i < ht.length; i++) if (!(ht[i] >= 0 && ht[i] < T && (i === 0 || ht[i] > ht[i - 1]))) throw new InputError('head tokens must ascend within the new tokens');
    states.push({ P, T, firstHidden: 0, headBase, headNext: 0 });
    headBase += ht ? ht.length : 0;
  }
  for (const [c, seen] of rowsOf) if (seen.rows.size !== c.batch) throw new InputError(`every row of a cache advances together: ${seen.rows.size} of its ${c.batch} rows given`);
  return states;
}

/** Stores each segment's slot mask in its cache row and finds the first hidden slot (none: the mask can be skipped). */
function writeMasks(st: ModelState, segs: Segment[], states: SegmentState[]): void {
  segs.forEach((g, i) => {
    const c = g.cache, s = states[i], m = st.backend.arena.f32(c.mask.ptr + g.row * c.capacity * 4, s.P + s.T);
    if (g.mask) for (let j = 0; j < s.P + s.T; j++) m[j] = g.mask[j] !== 0 ? 1 : 0;
    else m.fill(1, s.P);
    const hidden = m.indexOf(0);
    s.firstHidden = hidden < 0 ? Infinity : hidden;
  });
}

/** The segments' shares of the pass starting at token t0 (segments with no tokens left sit it out). */
function planPass(segs: Segment[], states: SegmentState[], t0: number, C: number): Pass {
  const pass: Pass = { rows: 0, segs: [] };
  segs.forEach((seg, index) => {
    const s = states[index];
    if (t0 >= s.T) return;
    const T = Math.min(C, s.T - t0), P = s.P + t0, c = seg.cache;
    const mask = s.firstHidden < P + T ? c.mask.ptr + seg.row * c.capacity * 4 : 0;
    const crossMask = c.cross?.mask ? c.cross.mask.ptr + seg.row * c.cross.S * 4 : 0;
    pass.segs.push({ index, seg, r0: pass.rows, t0, T, P, mask, crossMask });
    pass.rows += T;
  });
  return pass;
}

function runPass(st: ModelState, ws: Workspace, req: StepRequest, pass: Pass, states: SegmentState[], out: Float32Array | null): void {
  const R = pass.rows, taps = req.taps;
  writeTokens(st, ws, pass);
  embed(st, ws, R);
  taps?.hidden?.(0, ws.x, pass);
  for (let l = 0; l < st.L; l++) {
    attentionBlock(st, ws, req, l, pass);
    if (st.weights.layers[l].cross && pass.segs[0].seg.cache.cross) crossAttentionBlock(st, ws, req, l, pass);
    mlpBlock(st, ws, l, R);
    if (l < st.L - 1) taps?.hidden?.(l + 1, ws.x, pass);
  }
  finalNorm(st, ws, R);
  taps?.hidden?.(st.L, ws.h, pass);
  if (req.head) head(st, ws, req.head, pass, states, out);
}

/** ids[R], pos[R] (i32) of the pass's rows. */
function writeTokens(st: ModelState, ws: Workspace, pass: Pass): void {
  const A = st.backend.arena, ids = A.i32(ws.ids, pass.rows), pos = A.i32(ws.pos, pass.rows);
  for (const ps of pass.segs) {
    const g = ps.seg;
    for (let t = 0; t < ps.T; t++) {
      ids[ps.r0 + t] = g.ids[ps.t0 + t];
      pos[ps.r0 + t] = g.positions ? g.positions[ps.t0 + t] : ps.P + t;
    }
  }
}

/** x[R,E] = wte[ids] + wpe[pos] */
function embed(st: ModelState, ws: Workspace, R: number): void {
  const W = st.weights;
  st.backend.k.embed(ws.ids, ws.pos, W.wte.ptr, W.wte.dt | wexpBits(W.wte.wexp), W.wpe, ws.x, R, st.E);
}

/** x[R,E] += proj(attention(ln_1(x))): each segment's K/V go to its cache slots P … P+T-1, then its queries attend
 *  to slots 0 … P+T-1 of its own cache row (causally, under the row's mask). */
function attentionBlock(st: ModelState, ws: Workspace, req: StepRequest, l: number, pass: Pass): void {
  const k = st.backend.k, lw = st.weights.layers[l], { E, H, D } = st, R = pass.rows;
  const attention = req.eager || req.headMask || req.taps?.attention ? k.attention_eager : k.attention_blockwise;
  const scale = attentionScale(st.cfg, D, l), hm = req.headMask ? ws.headMask + l * H * 4 : 0;
  k.layernorm(ws.x, lw.ln1_g, lw.ln1_b, ws.h, R, E, st.cfg.layer_norm_epsilon); // h = ln_1(x)         [R, E]
  matmul(st, ws, ws.h, lw.qkv, lw.qkv_b, ws.qkv, R, ACT_NONE); // qkv = h · W_attnᵀ + b        [R, 3E]
  for (const ps of pass.segs) {
    const c = ps.seg.cache, cap = c.capacity, row = ps.seg.row * c.self.rowBytes;
    const q = ws.qkv + ps.r0 * 3 * E * 4, kc = c.self.k[l].ptr + row, vc = c.self.v[l].ptr + row;
    k.kv_store(q, 3 * E, E, 2 * E, kc, vc, c.self.dt, 1, ps.T, H, D, cap, ps.P); // K, V → slots P … P+T-1 of [H, cap, D]
    const S = ps.P + ps.T;
    const probs = req.taps?.attention ? ws.probs : 0; // [H, T, S]
    attention(q, 3 * E, kc, vc, c.self.dt, cap, ws.att + ps.r0 * E * 4, E, 1, H, ps.T, D, S, ps.P, 1, ps.mask, scale, hm, probs, ws.scratch); // att [T, E]
    if (probs) req.taps!.attention!(l, ps, probs, S);
  }
  matmul(st, ws, ws.att, lw.attn_proj, lw.attn_proj_b, ws.x, R, FLAG_ACCUMULATE); // x += att · W_projᵀ + b
}

/** x[R,E] += proj(cross_attention(ln_cross_attn(x))) against each segment's encoder K/V [H, S_enc, D] (not causal). */
function crossAttentionBlock(st: ModelState, ws: Workspace, req: StepRequest, l: number, pass: Pass): void {
  const k = st.backend.k, c = st.weights.layers[l].cross!, { E, H, D } = st, R = pass.rows;
  const attention = req.eager || req.headMask || req.taps?.crossAttention ? k.attention_eager : k.attention_blockwise;
  const scale = attentionScale(st.cfg, D, l), hm = req.headMask ? ws.headMask + l * H * 4 : 0;
  k.layernorm(ws.x, c.ln_g, c.ln_b, ws.h, R, E, st.cfg.layer_norm_epsilon); // h = ln_cross_attn(x)  [R, E]
  matmul(st, ws, ws.h, c.q, c.q_b, ws.crossQ, R, ACT_NONE); // q = h · W_qᵀ + b                    [R, E]
  for (const ps of pass.segs) {
    const x = ps.seg.cache.cross!, row = ps.seg.row * x.buffers.rowBytes;
    const probs = req.taps?.crossAttention ? ws.probs : 0; // [H, T, S_enc]
    // a row whose encoder mask hides every state: transformers adds finfo.min to every score, which swamps them
    // (s + min rounds to min for any |s| < 1e31), so softmax gives each state 1/S and the output is the mean of V
    // over all of them. The kernels give a row with no visible key zeros; scores of 0 under no mask give the same
    // uniform 1/S weights as transformers (head mask and probabilities included).
    const blind = x.blind !== null && x.blind[ps.seg.row] === 1;
    attention(ws.crossQ + ps.r0 * E * 4, E, x.buffers.k[l].ptr + row, x.buffers.v[l].ptr + row, x.buffers.dt, x.S, ws.att + ps.r0 * E * 4, E,
      1, H, ps.T, D, x.S, 0, 0, blind ? 0 : ps.crossMask, blind ? 0 : scale, hm, probs, ws.scratch);
    if (probs) req.taps!.crossAttention!(l, ps, probs, x.S);
  }
  matmul(st, ws, ws.att, c.proj, c.proj_b, ws.x, R, FLAG_ACCUMULATE); // x += att · W_projᵀ + b
}

/** x[R,E] += proj(act(fc(ln_2(x)))) */
function mlpBlock(st: ModelState, ws: Workspace, l: number, R: number): void {
  const lw = st.weights.layers[l];
  st.backend.k.layernorm(ws.x, lw.ln2_g, lw.ln2_b, ws.h, R, st.E, st.cfg.layer_norm_epsilon); // h = ln_2(x)   [R, E]
  matmul(st, ws, ws.h, lw.fc, lw.fc_b, ws.mlp, R, st.act); // mlp = act(h · W_fcᵀ + b)           [R, I]
  matmul(st, ws, ws.mlp, lw.mlp_proj, lw.mlp_proj_b, ws.x, R, FLAG_ACCUMULATE); // x += mlp · W_projᵀ + b
}

/** h[R,E] = ln_f(x) */
function finalNorm(st: ModelState, ws: Workspace, R: number): void {
  st.backend.k.layernorm(ws.x, st.weights.lnf_g, st.weights.lnf_b, ws.h, R, st.E, st.cfg.layer_norm_epsilon);
}

/** out[j, N] = h[row of head token j] · Wᵀ + b for the pass's head tokens (gathered unless they are all rows in order);
 *  without `out` they stay in the workspace's head output (a one-pass step's view). */
function head(st: ModelState, ws: Workspace, hw: { w: Matrix; b: number }, pass: Pass, states: SegmentState[], out: Float32Array | null): void {
  const A = st.backend.arena, E = st.E, N = hw.w.N;
  const rows: number[] = [], dst: number[] = [];
  for (const ps of pass.segs) {
    const ht = ps.seg.headTokens, s = states[ps.index];
    if (!ht) continue;
    while (s.headNext < ht.length && ht[s.headNext] < ps.t0 + ps.T) {
      rows.push(ps.r0 + ht[s.headNext] - ps.t0);
      dst.push(s.headBase + s.headNext);
      s.headNext++;
    }
  }
  const n = rows.length;
  if (!n) return;
  let x = ws.h;
  if (n < pass.rows) {
    const F = A.F32;
    rows.forEach((r, j) => F.copyWithin((ws.gather >>> 2) + j * E, (ws.h >>> 2) + r * E, (ws.h >>> 2) + (r + 1) * E));
    x = ws.gather;
  }
  matmul(st, ws, x, hw.w, hw.b, ws.headOut, n, ACT_NONE); // [n, N]
  if (!out) return;
  const res = A.f32(ws.headOut, n * N);
  dst.forEach((d, j) => out.set(res.subarray(j * N, (j + 1) * N), d * N));
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder input: cross-attention K/V, once per encoder input.

export interface EncoderInput {
  states: Float32Array; // [B, S, E]
  S: number;
  mask: Float32Array | null; // [B, S], 1 = attend
  /** Identity of the encoder input: cross K/V are recomputed only when it changes. */
  key: unknown;
}

/** Puts the cross-attention K/V of `enc` into `cache` ([B, H, S, D] per layer, computed once per encoder input, in
 *  passes of `chunk` encoder rows); without an encoder input the cache has none. */
export function setEncoder(st: ModelState, cache: KVCache, enc: EncoderInput | null, chunk: number): void {
  st.check(); checkCache(st, cache);
  if (!enc || !st.cfg.add_cross_attention) { cache.dropCross(); return; }
  if (cache.cross?.key === enc.key) return;
  cache.dropCross();
  const A = st.backend.arena, { E, H, D } = st, B = cache.batch, S = enc.S, C = Math.max(1, Math.min(chunk, S));
  const buffers = new KVBuffers(st.backend, cache.shape, B, S, 'cross-attention cache', cache.dtype);
  let mask: Region | null = null, blind: Uint8Array | null = null;
  try {
    if (enc.mask && enc.mask.some((v) => v === 0)) {
      mask = A.alloc('cross-attention mask', B * S * 4);
      const mv = A.f32(mask.ptr, B * S);
      for (let i = 0; i < B * S; i++) mv[i] = enc.mask[i] !== 0 ? 1 : 0;
      // rows that hide every encoder state (crossAttentionBlock attends to all of them uniformly, as transformers)
      for (let b = 0; b < B; b++) if (!enc.mask.subarray(b * S, (b + 1) * S).some((v) => v !== 0)) (blind ??= new Uint8Array(B))[b] = 1;
    }
    const ws = st.workspace({ rows: C, tokens: C, S, headRows: 0, headN: 0, cross: true, probs: false, headMask: false });
    for (let b = 0; b < B; b++) for (let s0 = 0; s0 < S; s0 += C) {
      const T = Math.min(C, S - s0);
      A.f32(ws.x, T * E).set(enc.states.subarray((b * S + s0) * E, (b * S + s0 + T) * E)); // x = states [T, E]
      for (let l = 0; l < st.L; l++) {
        const c = st.weights.layers[l].cross!, row = b * buffers.rowBytes;
        matmul(st, ws, ws.x, c.kv, c.kv_b, ws.qkv, T, ACT_NONE); // kv = x · W_kvᵀ + b     [T, 2E]
        st.backend.k.kv_store(ws.qkv, 2 * E, 0, E, buffers.k[l].ptr + row, buffers.v[l].ptr + row, buffers.dt, 1, T, H, D, S, s0);
      }
    }
  } catch (e) {
    buffers.dispose(); A.release(mask); throw e;
  } finally {
    st.endCall();
  }
  cache.cross = { buffers, S, mask, blind, key: enc.key };
}

// ---------------------------------------------------------------------------------------------------------------
// A [B, T] batch in one B-row cache (forward(), generate(), prefill): one segment per row, with optional outputs.

export interface BatchRequest {
  ids: Int32Array; // [B, T]
  B: number;
  T: number;
  /** [B, P+T] over the cached tokens and the new ones (1 = attend), or null for the new ones visible. */
  attentionMask: Float32Array | null;
  /** [B, T], or null for P … P+T-1. */
  positionIds: Int32Array | null;
  /** Per row, which new tokens go through the head (ascending); null = no head. */
  headTokens: ArrayLike<number>[] | null;
  head: { w: Matrix; b: number } | null;
  chunk: number;
  /** StepRequest.headInto. */
  headInto?: Float32Array | 'view';
  headMask?: Float32Array | null; // [L, H]
  outputAttentions?: boolean;
  outputHiddenStates?: boolean;
  wantLastHidden?: boolean;
  eager?: boolean;
}

export interface BatchResult {
  head: Float32Array; // [rows, N] in (b, t) order
  lastHidden: Float32Array | null; // [B, T, E]
  hiddenStates: Float32Array[] | null; // L+1 of [B, T, E]
  attentions: Float32Array[] | null; // L of [B, H, T, P+T]
  crossAttentions: Float32Array[] | null; // L of [B, H, T, S_enc]
}

export function runBatch(st: ModelState, cache: KVCache, req: BatchRequest): BatchResult {
  const { B, T } = req, { E, H, L } = st, P = cache.length, S_total = P + T, S_enc = cache.cross?.S ?? 0;
  if (B !== cache.batch) throw new InputError(`batch size ${B} does not match the cache's batch size ${cache.batch}`);
  const res: BatchResult = {
    head: new Float32Array(0),
    lastHidden: req.wantLastHidden ? new Float32Array(B * T * E) : null,
    hiddenStates: req.outputHiddenStates ? Array.from({ length: L + 1 }, () => new Float32Array(B * T * E)) : null,
    attentions: req.outputAttentions ? Array.from({ length: L }, () => new Float32Array(B * H * T * S_total)) : null,
    crossAttentions: req.outputAttentions && cache.cross ? Array.from({ length: L }, () => new Float32Array(B * H * T * S_enc)) : null,
  };
  const F = () => st.backend.arena.F32;
  // rows of a pass → [B, T, E] at (b, t0 …)
  const copyRows = (src: number, pass: Pass, dst: Float32Array) => {
    for (const ps of pass.segs) dst.set(F().subarray((src >>> 2) + ps.r0 * E, (src >>> 2) + (ps.r0 + ps.T) * E), (ps.index * T + ps.t0) * E);
  };
  // [H, ps.T, S] → [B, H, T, Sdst] at (b, h, t0 …)
  const copyProbs = (dst: Float32Array, ps: PassSegment, probs: number, S: number, Sdst: number) => {
    for (let h = 0; h < H; h++) for (let t = 0; t < ps.T; t++) {
      const s = (probs >>> 2) + (h * ps.T + t) * S;
      dst.set(F().subarray(s, s + S), ((ps.index * H + h) * T + ps.t0 + t) * Sdst);
    }
  };
  const taps: Taps = {};
  if (res.hiddenStates || res.lastHidden) {
    taps.hidden = (i, x, pass) => {
      if (res.hiddenStates) copyRows(x, pass, res.hiddenStates[i]);
      if (i === L && res.lastHidden) copyRows(x, pass, res.lastHidden);
    };
  }
  if (res.attentions) taps.attention = (l, ps, probs, S) => copyProbs(res.attentions![l], ps, probs, S, S_total);
  if (res.crossAttentions) taps.crossAttention = (l, ps, probs, S) => copyProbs(res.crossAttentions![l], ps, probs, S, S_enc);
  const segments: Segment[] = Array.from({ length: B }, (_, b) => ({
    cache, row: b,
    ids: req.ids.subarray(b * T, (b + 1) * T),
    positions: req.positionIds ? req.positionIds.subarray(b * T, (b + 1) * T) : null,
    mask: req.attentionMask ? req.attentionMask.subarray(b * S_total, (b + 1) * S_total) : null,
    headTokens: req.headTokens ? req.headTokens[b] : null,
  }));
  res.head = runStep(st, { segments, head: req.head, chunk: req.chunk, headMask: req.headMask, eager: req.eager, taps, headInto: req.headInto });
  return res;
}
