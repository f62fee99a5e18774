// Logits processors and warpers with transformers' semantics and order: repetition penalty and minimum
// length first (they change greedy decoding too), then — when sampling — temperature, top-k, top-p.
// Each works in place on one row of logits; -Infinity marks a token that may not be chosen. No option value can
// make a logit +Infinity or NaN (that would turn the softmax into NaN), and a NaN from the model is an error.
import { GPT2WasmError, OptionError } from '../errors.js';
import { shown } from '../options.js';

/** Largest finite float32: a penalised logit is clamped to ±this rather than overflowing to ±Infinity. */
const F32_MAX = 3.4028234663852886e38;

export interface SamplingOptions {
  do_sample: boolean;
  temperature: number;
  top_k: number;
  top_p: number;
  repetition_penalty: number;
}

/** `origin(key)` says where a value came from when it was not the caller's option (" (from .../generation_config.json)").
 *  `sampling` false (greedy): temperature, top_k and top_p are checked only when `always(key)` says so (the caller's
 *  own values: a wrong one is an error even when it would not be used), and temperature 0 is then allowed (greedy is
 *  the limit t -> 0; transformers builds its temperature warper, which refuses 0, only when sampling). */
export function checkSampling(o: SamplingOptions, sampling = true, origin: (key: string) => string = () => '', always: (key: string) => boolean = () => false): void {
  for (const k of ['temperature', 'top_k', 'top_p', 'repetition_penalty'] as const) {
    if (!sampling && k !== 'repetition_penalty' && (!always(k) || (k === 'temperature' && o[k] === 0))) continue;
    const problem = rangeProblem(k, o[k], Infinity);
    if (problem) throw new OptionError(problem + origin(k));
  }
}

const isIdListIn = (v: unknown, V: number): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0 && x < V);

/**
 * What is wrong with a value of a generation setting ("top_p must be in [0, 1], got 2"), or null when it is in
 * range; V is the vocabulary size. The one rule for generate()'s options (an OptionError) and for
 * generation_config.json, which io/config.ts checks with it when the model loads (a ConfigError naming the file,
 * rather than an OptionError from every generate()).
 */
export function rangeProblem(key: string, v: unknown, V: number): string | null {
  const x = v as number;
  switch (key) {
    case 'temperature':
    case 'repetition_penalty':
      return typeof x === 'number' && x > 0 && Number.isFinite(x) ? null : `${key} must be a positive number, got ${shown(v)}`;
    case 'top_k':
      return typeof x === 'number' && Number.isInteger(x) && x >= 0 ? null : `top_k must be a non-negative integer (0 disables it), got ${shown(v)}`;
    case 'top_p': // transformers takes [0, 1]; 0 keeps the single most likely token
      return typeof x === 'number' && x >= 0 && x <= 1 ? null : `top_p must be in [0, 1], got ${shown(v)}`;
    case 'suppress_tokens':
    case 'begin_suppress_tokens':
      return isIdListIn(v, V) ? null : `${key} must be an array of token ids in [0, ${V}), got ${JSON.stringify(v)}`;
    case 'bad_words_ids': {
      if (!Array.isArray(v) || !v.every((w) => Array.isArray(w) && w.length > 0)) return `bad_words_ids must be an array of non-empty arrays of token ids, got ${JSON.stringify(v)}`;
      const i = v.findIndex((w) => !isIdListIn(w, V));
      return i < 0 ? null : `bad_words_ids[${i}] must be an array of token ids in [0, ${V}), got ${JSON.stringify(v[i])}`;
    }
    default:
      return null;
  }
}

/** transformers' RepetitionPenaltyLogitsProcessor: every id already in the sequence is made less likely. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const s = logits[id];
    const v = s < 0 ? s * penalty : s / penalty;
    logits[id] = v > F32_MAX ? F32_MAX : v < -F32_MAX ? -F32_MAX : v;
  }
}

export function suppress(logits: Float32Array, ids: Iterable<number>): void {
  for (const id of ids) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
}

/**
 * Divides by t, as (logit - max) / t: the softmax is the same, and a tiny t cannot overflow to +Infinity. The
 * best token stays at 0 and the others go towards -Infinity (probability 0), which is the limit t → 0.
 */
export function applyTemperature(logits: Float32Array, t: number): void {
  if (t === 1) return;
  const mx = maxOf(logits);
  if (mx === -Infinity) return;
  for (let i = 0; i < logits.length; i++) logits[i] = (logits[i] - mx) / t;
}

/** The largest logit; a NaN (from broken weights) is an error rather than a silently wrong token. */
function maxOf(logits: Float32Array): number {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > mx) mx = v;
    else if (v !== v) throw new GPT2WasmError('RUNTIME', `the model produced a NaN logit (token ${i}): the weights or the input are broken`);
  }
  return mx;
}

/** Keeps the k highest logits (ties at the k-th value are kept, as transformers does). */
export function applyTopK(logits: Float32Array, k: number): void {
  if (k <= 0 || k >= logits.length) return;
  const sorted = Float32Array.from(logits).sort();
  const kth = sorted[sorted.length - k];
  for (let i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = -Infinity;
}

/** Keeps the smallest set of most likely tokens whose probability mass reaches p (at least one). */
export function applyTopP(logits: Float32Array, p: number): void {
  if (p >= 1) return;
  const idx: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) idx.push(i);
  idx.sort((a, b) => logits[b] - logits[a]);
  const probs = softmaxOf(logits, idx);
  let mass = 0, keep = 0;
  while (keep < idx.length) { mass += probs[keep]; keep++; if (mass >= p) break; }
  for (let j = keep; j < idx.length; j++) logits[idx[j]] = -Infinity;
}

function softmaxOf(logits: Float32Array, idx: number[]): Float64Array {
  const out = new Float64Array(idx.length);
  let mx = -Infinity;
  for (const i of idx) if (logits[i] > mx) mx = logits[i];
  let sum = 0;
  idx.forEach((i, j) => { out[j] = Math.exp(logits[i] - mx); sum += out[j]; });
  for (let j = 0; j < out.length; j++) out[j] /= sum;
  return out;
}

/** The first index of the largest logit (0 when all are -Infinity). Two passes: the maximum in four independent
 *  lanes (Math.max keeps a NaN, which maxOf then reports), then the first logit equal to it; the branchy one-pass
 *  scan took 2.5x as long (50257 logits, 55-60 against 23 us; greedy decoding runs it once per token). */
export function argmax(logits: Float32Array): number {
  const n = logits.length, n4 = n & ~3;
  let m0 = -Infinity, m1 = -Infinity, m2 = -Infinity, m3 = -Infinity, i = 0;
  for (; i < n4; i += 4) {
    m0 = Math.max(m0, logits[i]); m1 = Math.max(m1, logits[i + 1]); m2 = Math.max(m2, logits[i + 2]); m3 = Math.max(m3, logits[i + 3]);
  }
  for (; i < n; i++) m0 = Math.max(m0, logits[i]);
  const m = Math.max(m0, m1, m2, m3);
  if (m !== m) maxOf(logits); // throws, naming the first NaN
  for (let j = 0; j < n; j++) if (logits[j] === m) return j; // ±0 compare equal: the first zero, as a strict > scan keeps
  return 0;
}

/** Draws from softmax(logits) with a uniform u in [0, 1). */
export function sampleFrom(logits: Float32Array, u: number): number {
  const mx = maxOf(logits);
  if (mx === Infinity) throw new GPT2WasmError('RUNTIME', 'a logit is +Infinity: the softmax is undefined');
  if (mx === -Infinity) throw new OptionError('every token was filtered out; relax top_k/top_p or the suppressed tokens');
  let sum = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) sum += Math.exp(logits[i] - mx);
  let target = u * sum, last = -1;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] === -Infinity) continue;
    last = i;
    target -= Math.exp(logits[i] - mx);
    if (target < 0) return i;
  }
  return last;
}

/** One next token from one row of logits (modified in place). */
export function nextToken(logits: Float32Array, o: SamplingOptions, seen: number[], banned: number[], u: () => number): number {
  applyRepetitionPenalty(logits, seen, o.repetition_penalty);
  if (banned.length) suppress(logits, banned);
  if (!o.do_sample) return argmax(logits);
  applyTemperature(logits, o.temperature);
  applyTopK(logits, o.top_k);
  applyTopP(logits, o.top_p);
  return sampleFrom(logits, u());
}
