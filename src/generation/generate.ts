// generate(): prefill the prompt into a preallocated KV cache, then one token per step per batch row,
// with transformers' option names and defaults (generation_config.json, then the caller's options; the
// text-generation pipeline and the CLI put the model's task_specific_params['text-generation'] in between, as
// transformers' pipeline does: its model.generate() does not read them).
import { InputError, OptionError } from '../errors.js';
import { checkBoolean, checkKnownKeys, shown } from '../options.js';
import { runBatch, runStep, setEncoder, type Segment } from '../model/forward.js';
import type { GPT2PreTrainedModel } from '../model/gpt2.js';
import { toEncoder, toIds, toMask } from '../model/inputs.js';
import type { KVCache } from '../model/kv-cache.js';
import { Tensor } from '../model/tensor.js';
import { checkSampling, nextToken, rangeProblem, type SamplingOptions } from './logits-process.js';
import { Random } from './random.js';

/** Set (to true) on the options of a text-generation task's call (the pipeline, the CLI): the model's
 *  task_specific_params['text-generation'] then sit between its generation config and the options, as in
 *  transformers, whose pipeline copies them into its generation config and whose model.generate() never reads them.
 *  A symbol: not an option a caller names (unknown-key checks see only string keys). */
export const TEXT_GENERATION_TASK: unique symbol = Symbol('gpt2-wasm text-generation task');

/** Set (to true) by callers with OpenAI's stop semantics (the edge handler): a stop sequence counts only when it lies
 *  wholly in the new text, not when it begins in the prompt as transformers' stop strings may. A symbol, as above. */
export const STOP_IN_NEW_TEXT: unique symbol = Symbol('gpt2-wasm stop in the new text only');

/** transformers.js streamer protocol: put() gets the prompt first, then each step's new ids; end() once. */
export interface Streamer { put(ids: number[][]): void; end(): void }

/** What generate() needs of a tokenizer (for stop strings). */
export interface DecodesText { decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string }

export interface GenerateOptions {
  /** The prompt ids: [T] or [B, T], arrays or a Tensor (or `inputs`, transformers.js's name). */
  input_ids?: unknown;
  /** transformers.js's name for input_ids. */
  inputs?: unknown;
  attention_mask?: unknown;
  encoder_hidden_states?: unknown;
  encoder_attention_mask?: unknown;
  max_new_tokens?: number | null;
  max_length?: number;
  min_new_tokens?: number | null;
  min_length?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  repetition_penalty?: number;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  /** Stop when the text ends with one of these (needs `tokenizer`): as transformers' StopStringCriteria, a stop string
   *  may begin in the prompt, but only a match that ends in the new text counts. `stop_strings` (transformers' name)
   *  is accepted instead, not as well. */
  stop?: string | string[];
  stop_strings?: string | string[];
  tokenizer?: DecodesText;
  seed?: number;
  streamer?: Streamer;
  /** When prompt + new tokens exceed the cache: 'error' (default, before any work) or 'slide'. */
  context_overflow?: 'error' | 'slide';
  /** KV cache capacity in tokens (default: the prompt + max_new_tokens, at most n_positions; maximum n_positions). */
  cache_capacity?: number;
  /** Stop early (e.g. a client went away); the tokens so far are returned. */
  signal?: AbortSignal;
  /** Recompute the whole sequence every step instead of using the KV cache (slow; for tests and the bench). */
  use_cache?: boolean;
  /** transformers' processors that ban tokens: no n-gram of this size occurs twice (0: off). */
  no_repeat_ngram_size?: number;
  /** Accepted as transformers spells the defaults; any other value is an error (no beam search, one sequence per row). */
  num_beams?: 1;
  num_return_sequences?: 1;
  /** Token sequences never generated: the last id of each is banned where the others precede it. */
  bad_words_ids?: number[][];
  /** Ids never generated, and ids not generated as the first new token. */
  suppress_tokens?: number[];
  begin_suppress_tokens?: number[];
}

export interface ResolvedGenerateOptions extends SamplingOptions {
  max_new_tokens: number;
  min_new_tokens: number;
  no_repeat_ngram_size: number;
  bad_words_ids: number[][];
  suppress_tokens: number[];
  begin_suppress_tokens: number[];
  eos: number[];
  pad: number;
  stop: string[];
  overflow: 'error' | 'slide';
  /** Warnings for this call (generate() prints them; the pipeline's second resolve for its eos ids does not). */
  warnings: string[];
}

const KNOWN = new Set(['input_ids', 'inputs', 'attention_mask', 'encoder_hidden_states', 'encoder_attention_mask', 'max_new_tokens', 'max_length', 'min_new_tokens',
  'min_length', 'do_sample', 'temperature', 'top_k', 'top_p', 'repetition_penalty', 'eos_token_id', 'pad_token_id', 'stop', 'stop_strings', 'tokenizer',
  'seed', 'streamer', 'context_overflow', 'cache_capacity', 'signal', 'use_cache', 'num_beams', 'num_return_sequences',
  'no_repeat_ngram_size', 'bad_words_ids', 'suppress_tokens', 'begin_suppress_tokens']);

/** generation_config.json settings transformers acts on and this runtime does not (their value when off): a model
 *  whose file sets one generates without it, with a warning once per model rather than silently. */
const UNSUPPORTED: Record<string, unknown> = {
  num_beams: 1, num_beam_groups: 1, penalty_alpha: null, typical_p: 1, min_p: null, epsilon_cutoff: 0, eta_cutoff: 0,
  diversity_penalty: 0, encoder_no_repeat_ngram_size: 0, forced_bos_token_id: null, forced_eos_token_id: null,
  exponential_decay_length_penalty: null, sequence_bias: null, guidance_scale: null, renormalize_logits: false,
  num_return_sequences: 1, constraints: null, force_words_ids: null,
};
const warned = new WeakSet<object>();

function warnUnsupported(model: GPT2PreTrainedModel, task: Record<string, unknown>, gc: Record<string, unknown>): void {
  if (warned.has(model)) return;
  warned.add(model);
  const set = Object.entries(UNSUPPORTED).filter(([k, off]) => { const v = task[k] ?? gc[k]; return v !== undefined && v !== null && v !== off; });
  if (set.length) console.warn(`gpt2-wasm: the model's generation config sets ${set.map(([k]) => `${k}: ${JSON.stringify(task[k] ?? gc[k])}`).join(', ')}, which gpt2-wasm does not implement; generate() runs without ${set.length > 1 ? 'them' : 'it'}`);
}

/** The sampling-only settings in `o` that change sampling (transformers warns for values other than its defaults:
 *  temperature 1, top_p 1, top_k 50; top_k 0 is "off" here) and a seed, as "temperature (0.9)". */
function greedyUnused(o: Record<string, unknown>): string[] {
  const neutral: Record<string, (v: unknown) => boolean> = {
    temperature: (v) => v === 1, top_k: (v) => v === 50 || v === 0, top_p: (v) => v === 1, seed: () => false,
  };
  return Object.keys(neutral).filter((k) => o[k] != null && !neutral[k](o[k])).map((k) => `${k} (${JSON.stringify(o[k])})`);
}

const list = (xs: string[]): string => xs.length > 1 ? `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}` : xs[0];

const warnedGreedyConfig = new WeakSet<object>();

/** transformers' warning for sampling-only values in the model's config (`task` over `gc`, as resolveGenerateOptions
 *  reads them) when it decodes greedily, once per model. */
function warnGreedyConfig(model: GPT2PreTrainedModel, o: GenerateOptions, task: Record<string, unknown>, gc: Record<string, unknown>): void {
  if (warnedGreedyConfig.has(model)) return;
  const fromConfig: Record<string, unknown> = {};
  for (const k of ['temperature', 'top_k', 'top_p']) if ((o as any)[k] == null && (task[k] ?? gc[k]) != null) fromConfig[k] = task[k] ?? gc[k];
  const unused = greedyUnused(fromConfig);
  if (!unused.length) return;
  warnedGreedyConfig.add(model);
  console.warn(`gpt2-wasm: the model's generation config sets ${list(unused)}, which only matter${unused.length > 1 ? '' : 's'} when sampling; do_sample is false, so generate() decodes greedily. Pass do_sample: true to sample`);
}

/** The earliest end (an index in `text`) of a stop string that ends after `from`, or -1: as transformers'
 *  StopStringCriteria, a stop string may begin before `from` (in the prompt), but it must end after it. */
export function stopStringEnd(text: string, from: number, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s, Math.max(0, from - s.length + 1));
    if (i >= 0 && (best < 0 || i + s.length < best)) best = i + s.length;
  }
  return best;
}

/** transformers' NoRepeatNGramLogitsProcessor: the ids that would complete an n-gram already in `seq`. */
export function ngramBans(seq: ArrayLike<number>, n: number): number[] {
  const L = seq.length;
  if (n <= 0 || L + 1 < n) return [];
  const out: number[] = [], from = L - (n - 1); // the n-1 last ids are the prefix of the next n-gram
  for (let i = 0; i + n <= L; i++) {
    let same = true;
    for (let j = 0; j < n - 1 && same; j++) same = seq[i + j] === seq[from + j];
    if (same) out.push(seq[i + n - 1]);
  }
  return out;
}

/** transformers' NoBadWordsLogitsProcessor: a one-id word always, a longer one's last id where the rest ends `seq`. */
export function badWordBans(seq: ArrayLike<number>, words: number[][]): number[] {
  const out: number[] = [], L = seq.length;
  for (const w of words) {
    const k = w.length - 1;
    let same = L >= k;
    for (let j = 0; j < k && same; j++) same = seq[L - k + j] === w[j];
    if (same) out.push(w[k]);
  }
  return out;
}

export function resolveGenerateOptions(model: GPT2PreTrainedModel, o: GenerateOptions, promptLength: number): ResolvedGenerateOptions {
  checkKnownKeys(o, KNOWN, 'generate option');
  const oa = o as any;
  if (oa.num_beams !== undefined && oa.num_beams !== 1) throw new OptionError(`num_beams must be 1 (beam search is not supported; use greedy or sampling), got ${oa.num_beams}`);
  if (oa.num_return_sequences !== undefined && oa.num_return_sequences !== 1) throw new OptionError(`num_return_sequences must be 1 (pass a batch instead), got ${oa.num_return_sequences}`);
  // a wrong type is an error, never coerced: do_sample "false" would sample, use_cache "no" would use the cache
  for (const k of ['do_sample', 'use_cache'] as const) checkBoolean(o[k], k, false);
  for (const k of ['max_length', 'min_length'] as const) {
    if (o[k] != null && (!Number.isInteger(o[k]) || (o[k] as number) < 0)) throw new OptionError(`${k} must be a non-negative integer, got ${shown(o[k])}`);
  }
  if (o.signal != null && typeof (o.signal as any).aborted !== 'boolean') throw new OptionError('signal must be an AbortSignal');
  if (o.streamer != null && (typeof o.streamer.put !== 'function' || typeof o.streamer.end !== 'function')) throw new OptionError('streamer must have put(ids) and end() methods');
  if (o.tokenizer != null && typeof (o.tokenizer as any).decode !== 'function') throw new OptionError('tokenizer must have a decode(ids) method (a GPT2Tokenizer)');
  const cfg = model.config;
  const task = ((o as { [TEXT_GENERATION_TASK]?: boolean })[TEXT_GENERATION_TASK] ? cfg.task_specific_params?.['text-generation'] ?? {} : {}) as Record<string, unknown>;
  const gc = (model.generation_config ?? {}) as Record<string, unknown>;
  const pick = <T>(key: string, dflt: T): T => ((o as any)[key] ?? task[key] ?? gc[key] ?? dflt) as T;
  // for an error about a value the caller did not pass: where pick() took it from
  const origin = (key: string): string => (o as any)[key] != null ? ''
    : task[key] != null ? ` (from ${model.source.describe('config.json')} task_specific_params['text-generation'])`
    : gc[key] != null ? ` (from ${model.source.describe('generation_config.json')})` : '';
  const checked = <T>(key: string, dflt: T): T => {
    const v = pick<T>(key, dflt), problem = rangeProblem(key, v, cfg.vocab_size);
    if (problem) throw new OptionError(problem + origin(key));
    return v;
  };
  const warnings: string[] = [];
  let maxNew: number;
  if (o.max_new_tokens != null) maxNew = o.max_new_tokens;
  else if (o.max_length != null) {
    // the caller's max_length counts the prompt; one shorter than the prompt is an error (transformers' generate
    // raises "Input length of input_ids is N, but `max_length` is set to M ... setting `max_new_tokens`")
    maxNew = o.max_length - promptLength;
    if (maxNew < 0) throw new OptionError(`max_length (${o.max_length}) is shorter than the prompt (${promptLength} tokens): max_length counts the prompt's tokens; pass max_new_tokens for the number of new tokens`);
  } else if ((task.max_new_tokens ?? gc.max_new_tokens) != null) maxNew = (task.max_new_tokens ?? gc.max_new_tokens) as number;
  else {
    // transformers: a max_length left at its default of 20 means 20 new tokens (within n_positions), not 20 in all
    const ml = (task.max_length ?? gc.max_length) as number | undefined;
    if (ml != null && ml !== 20) {
      maxNew = ml - promptLength;
      if (maxNew <= 0) {
        // a model's max_length (GPT-2's task_specific_params say 50) the prompt already fills: as transformers'
        // pipeline, a warning, and MaxLengthCriteria ends the generation after the one token every step produces
        maxNew = 1;
        warnings.push(`the prompt has ${promptLength} tokens, but max_length is ${ml}${origin('max_length')}, which counts the prompt; generating 1 token (as transformers does). Pass max_new_tokens to set the number of new tokens`);
      }
    } else {
      maxNew = Math.min(20, cfg.n_positions - promptLength);
      if (maxNew < 0) throw new OptionError(`the prompt (${promptLength} tokens) is longer than n_positions (${cfg.n_positions}); pass max_new_tokens (and context_overflow: 'slide') to generate past the context`);
    }
  }
  if (!Number.isInteger(maxNew) || maxNew < 0) {
    throw new OptionError(o.max_new_tokens != null ? `max_new_tokens must be a non-negative integer, got ${shown(o.max_new_tokens)}`
      : `max_new_tokens must be a non-negative integer, got ${shown(maxNew)}${origin('max_new_tokens')}`);
  }
  // as transformers: min_new_tokens and min_length (which counts the prompt) from the call or the model's
  // generation config; both may hold, the later bound wins
  const minNewTokens = pick<number>('min_new_tokens', 0);
  if (!Number.isInteger(minNewTokens) || minNewTokens < 0) throw new OptionError(`min_new_tokens must be a non-negative integer, got ${shown(minNewTokens)}`);
  const minLength = pick<number>('min_length', 0);
  if (!Number.isInteger(minLength) || minLength < 0) throw new OptionError(`min_length must be a non-negative integer, got ${shown(minLength)}`);
  const minNew = Math.max(minNewTokens, minLength - promptLength);
  const eosRaw = o.eos_token_id !== undefined ? o.eos_token_id : (gc.eos_token_id as number | number[] | null | undefined) ?? cfg.eos_token_ids;
  let eos = eosRaw == null ? [] : Array.isArray(eosRaw) ? eosRaw : [eosRaw];
  for (const e of eos) if (!Number.isInteger(e) || e < 0) throw new OptionError(`eos_token_id must be a token id, got ${shown(e)}`);
  if (o.eos_token_id != null) { for (const e of eos) if (e >= cfg.vocab_size) throw new OptionError(`eos_token_id ${e} is not a token id in [0, ${cfg.vocab_size})`); }
  else eos = eos.filter((e) => e < cfg.vocab_size); // a config's eos outside a small vocab can never be produced
  let pad = o.pad_token_id ?? (gc.pad_token_id as number | null | undefined) ?? cfg.pad_token_id ?? eos[0] ?? 0;
  if (!Number.isInteger(pad) || pad < 0 || pad >= cfg.vocab_size) {
    if (o.pad_token_id != null) throw new OptionError(`pad_token_id ${pad} is not a token id in [0, ${cfg.vocab_size})`);
    pad = 0;
  }
  if (o.stop != null && o.stop_strings != null) throw new OptionError("generate() takes stop or stop_strings (transformers' name for it), not both");
  const stopRaw = o.stop ?? o.stop_strings ?? [];
  const stop = (Array.isArray(stopRaw) ? stopRaw : [stopRaw]);
  for (const s of stop) if (typeof s !== 'string' || s === '') throw new OptionError('stop strings must be non-empty strings');
  if (stop.length && !o.tokenizer) throw new OptionError('stop strings need a tokenizer: pass { tokenizer } to generate() (the pipeline does this for you)');
  const overflow = o.context_overflow ?? 'error';
  if (overflow !== 'error' && overflow !== 'slide') throw new OptionError(`context_overflow must be 'error' or 'slide', got ${JSON.stringify(overflow)}`);
  const ngram = pick<number>('no_repeat_ngram_size', 0);
  if (!Number.isInteger(ngram) || ngram < 0) throw new OptionError(`no_repeat_ngram_size must be a non-negative integer, got ${shown(ngram)}`);
  // as transformers: a bad word that is just an eos id is dropped (it would keep the generation from ending)
  const badWords = checked<number[][]>('bad_words_ids', []).filter((w) => !(w.length === 1 && eos.includes(w[0])));
  const suppressTokens = checked<number[]>('suppress_tokens', []);
  const beginSuppress = checked<number[]>('begin_suppress_tokens', []);
  warnUnsupported(model, task, gc);
  const r: ResolvedGenerateOptions = {
    do_sample: !!pick('do_sample', false), temperature: pick('temperature', 1), top_k: pick('top_k', 50), top_p: pick('top_p', 1),
    repetition_penalty: pick('repetition_penalty', 1), max_new_tokens: maxNew, min_new_tokens: minNew, eos, pad, stop, overflow,
    no_repeat_ngram_size: ngram, bad_words_ids: badWords, suppress_tokens: suppressTokens, begin_suppress_tokens: beginSuppress,
    warnings,
  };
  // temperature, top_k and top_p only matter when sampling (as in transformers): the caller's are checked anyway (a
  // NaN or a top_p of 1.5 is a mistake whatever the mode), but temperature 0 is greedy's own value; the model's
  // config values only when sampling, so a generation_config.json with do_sample false and temperature 0.0 runs greedy
  checkSampling(r, r.do_sample, origin, (k) => (o as any)[k] != null);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new OptionError(`seed must be an integer, got ${o.seed}`);
  if (!r.do_sample) {
    warnGreedyConfig(model, o, task, gc);
    // transformers' GenerationConfig.validate: "`do_sample` is set to `False`. However, `temperature` is set to ..."
    // for values other than the defaults; gpt2-wasm names the caller's options once per call (and seed, which only
    // sampling draws on), and the model's config values once per model (generate())
    const unused = greedyUnused(o as Record<string, unknown>);
    if (unused.length) warnings.push(`do_sample is false${origin('do_sample')}, so ${list(unused)} ${unused.length > 1 ? 'have' : 'has'} no effect: this call decodes greedily (the most likely token each step). Pass do_sample: true to sample with ${unused.length > 1 ? 'them' : 'it'}`);
  }
  return r;
}

const yieldToEventLoop = (): Promise<void> => new Promise((r) => {
  const si = (globalThis as any).setImmediate;
  if (typeof si === 'function') si(r); else setTimeout(r, 0);
});

/** Positions as transformers computes them for generation: cumsum(mask) - 1, and 1 where the mask is 0. */
function positionsFromMask(mask: Float32Array, B: number, S: number, from: number, T: number): Int32Array {
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let j = 0; j < from + T; j++) {
      c += mask[b * S + j];
      if (j >= from) out[b * T + j - from] = mask[b * S + j] === 0 ? 1 : c - 1;
    }
  }
  return out;
}

const warnedRightPadding = new WeakSet<object>();

/** transformers' warning, once per model: new tokens follow the padding of a right-padded row, which is rarely what
 *  is wanted (the tokenizer pads on the right by default; generation wants padding_side 'left'). */
function warnRightPadding(model: GPT2PreTrainedModel, mask: Float32Array, B: number, T: number): void {
  if (warnedRightPadding.has(model)) return;
  for (let b = 0; b < B; b++) {
    if (mask[b * T + T - 1] === 0) {
      warnedRightPadding.add(model);
      console.warn(`gpt2-wasm: generate(): row ${b} of the batch is right-padded (its attention_mask ends in 0), so its new tokens follow the padding; for correct results pad on the left (tokenizer option padding_side: 'left')`);
      return;
    }
  }
}

export async function generate(model: GPT2PreTrainedModel, o: GenerateOptions): Promise<Tensor> {
  if (!o || typeof o !== 'object') throw new OptionError('generate() takes an options object with input_ids');
  if (model.head !== 'lm') throw new OptionError(`generate() needs a language-model head (GPT2LMHeadModel), not ${model.constructor.name}`);
  if (o.inputs !== undefined) {
    if (o.input_ids !== undefined) throw new OptionError("generate() takes input_ids or inputs (transformers.js's name for them), not both");
    const { inputs, ...rest } = o;
    o = { ...rest, input_ids: inputs };
  }
  const cfg = model.config;
  const { ids, B, T } = toIds(o.input_ids, cfg);
  const opt = resolveGenerateOptions(model, o, T);
  for (const w of opt.warnings) console.warn(`gpt2-wasm: generate(): ${w}`);
  const mask0 = o.attention_mask != null ? toMask(o.attention_mask, B, T, 'attention_mask') : new Float32Array(B * T).fill(1);
  for (let b = 0; b < B; b++) if (!mask0.subarray(b * T, (b + 1) * T).some((v) => v === 1)) throw new InputError(`attention_mask row ${b} masks every token`);
  warnRightPadding(model, mask0, B, T);
  // the cache holds this call's tokens (prompt + new, at most n_positions) unless the caller asks for more:
  // wasm memory never shrinks, so a cache sized for the whole context would stay the isolate's peak
  const capacity = o.cache_capacity ?? Math.max(2, Math.min(cfg.n_positions, T + opt.max_new_tokens));
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > cfg.n_positions) throw new OptionError(`cache_capacity must be an integer in [2, ${cfg.n_positions}] (n_positions), got ${capacity}`);
  if (opt.overflow === 'error' && T + opt.max_new_tokens > capacity) {
    throw new InputError(`context too long: the prompt has ${T} tokens and max_new_tokens is ${opt.max_new_tokens}, ${T + opt.max_new_tokens} in all, but the context holds ${capacity} (n_positions ${cfg.n_positions}); shorten the prompt, lower max_new_tokens, or pass context_overflow: 'slide'`);
  }
  const encoder = toEncoder(o.encoder_hidden_states, o.encoder_attention_mask, B, cfg);
  const rng = new Random(o.seed);
  const useCache = o.use_cache !== false;
  const window = Math.max(1, Math.floor(capacity / 2));

  // rows of the running sequence (prompt included) and their masks
  const seqs: number[][] = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, (b + 1) * T)));
  const masks: number[][] = Array.from({ length: B }, (_, b) => Array.from(mask0.subarray(b * T, (b + 1) * T)));
  // Index in seqs[b] where row b's own window begins: its first attended token (left padding is no part of the row's
  // context), moved when the row's context slides. Each row slides when ITS tokens fill the cache, as it would alone,
  // not when the padded batch does; rows are left-padded to the longest window whenever the window is re-encoded.
  const rowStart = masks.map((m) => m.indexOf(1));
  // the longest row window: the slots the cache holds once the last token of every row is stored
  const longest = (): number => { let n = 0; for (let b = 0; b < B; b++) n = Math.max(n, seqs[b].length - rowStart[b]); return n; };
  const finished = new Array<boolean>(B).fill(false);
  const generated: number[][] = Array.from({ length: B }, () => []);
  // Stop strings are matched on the end of the whole sequence, as transformers' StopStringCriteria: each row's text is
  // decoded from its last prompt tokens (enough for the longest stop string, plus a few for characters split over
  // tokens) and its new tokens, and a stop string counts when it ends in the new text (it may begin in the prompt).
  const stopTail: number[][] = [], stopFrom: number[] = [];
  if (opt.stop.length) {
    const K = (o as { [STOP_IN_NEW_TEXT]?: boolean })[STOP_IN_NEW_TEXT] ? 0 : Math.max(...opt.stop.map((s) => s.length)) + 3;
    for (let b = 0; b < B; b++) {
      const attended = seqs[b].filter((_, j) => masks[b][j] === 1);
      stopTail.push(attended.slice(Math.max(0, attended.length - K)));
      // a prompt that ends inside a character: the character is new text once a new token completes it
      stopFrom.push(o.tokenizer!.decode(stopTail[b], { skip_special_tokens: true }).replace(/\uFFFD+$/, '').length);
    }
  }
  const st = model.state, head = { w: model.weights.lm_head!, b: 0 };

  // The streamer's put() and end() are the caller's code: an exception from put() ends the generation (end() is
  // still called; if end() throws too, put()'s error is the one reported), and so does a rejected promise from an
  // async put(), at the next step, instead of an unhandled rejection.
  const stream: { error: { e: unknown } | null } = { error: null };
  const put = (ids: number[][]): void => {
    const r: unknown = o.streamer?.put(ids);
    if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).then(undefined, (e) => { stream.error ??= { e }; });
  };
  const rethrow = (): void => { if (stream.error) throw stream.error.e; };
  let cache: KVCache | null = null;
  let failed = false;
  try {
    put(seqs.map((s) => s.slice()));
    // the workspace first, then the cache above it: placed the other way round, a later call's longer cache could
    // not reuse this cache's slots once the workspace sat above them (wasm memory never shrinks)
    st.workspace(model.workspaceNeed(B, capacity));
    cache = model.createCache(B, capacity);
    setEncoder(st, cache, encoder, model.prefill_chunk);
    // attended slots of each row in its window (Σ masks[b][rowStart[b] ..]): the position of a new attended token is this - 1
    const ones = new Array<number>(B).fill(0);
    // Every row's window from an empty cache, returning the last position's logits per row. A row whose own tokens
    // outgrew the capacity slides first to its last `window` tokens; the others keep theirs, so each row sees the
    // window (and positions, from 0) it would see alone. A finished row only gets padding, so it keeps just its last
    // token and never forces a re-encode. After model.dispose() the driver throws DISPOSED here and in decode(), so a
    // generation stops at its next step.
    const fresh = (): Float32Array => {
      cache!.reset();
      for (let b = 0; b < B; b++) {
        if (finished[b]) rowStart[b] = seqs[b].length - 1;
        else if (seqs[b].length - rowStart[b] > capacity) rowStart[b] = seqs[b].length - window;
      }
      const len = longest();
      const flatIds = new Int32Array(B * len).fill(opt.pad), flatMask = new Float32Array(B * len);
      for (let b = 0; b < B; b++) {
        ones[b] = 0;
        const own = seqs[b].length - rowStart[b], at = b * len + len - own; // left padding: slots [b * len, at)
        for (let j = 0; j < own; j++) { flatIds[at + j] = seqs[b][rowStart[b] + j]; flatMask[at + j] = masks[b][rowStart[b] + j]; ones[b] += masks[b][rowStart[b] + j]; }
      }
      const last = [len - 1];
      return runBatch(st, cache!, {
        ids: flatIds, B, T: len, attentionMask: flatMask, positionIds: positionsFromMask(flatMask, B, len, 0, len),
        headTokens: Array.from({ length: B }, () => last), head, chunk: model.prefill_chunk, headInto: 'view',
      }).head;
    };
    // One decode step: the last token of every row (attended: its mask is 1) at cumsum(mask) - 1, where
    // positionsFromMask puts it, with no mask: each cache row keeps the mask values its earlier slots were stored
    // with and shows the new slot, which is what the full mask would write. Nothing is allocated per token, and the
    // logits are a view of the workspace, consumed before the next call.
    const segments: (Segment & { ids: Int32Array; positions: Int32Array })[] = Array.from({ length: B }, (_, row) => ({
      cache: cache!, row, ids: new Int32Array(1), positions: new Int32Array(1), mask: null, headTokens: [0],
    }));
    const decode = (): Float32Array => {
      for (let b = 0; b < B; b++) { segments[b].ids[0] = seqs[b][seqs[b].length - 1]; segments[b].positions[0] = ones[b] - 1; }
      return runStep(st, { segments, head, chunk: 1, headInto: 'view' });
    };
    let logits = fresh();
    const V = cfg.vocab_size;
    for (let step = 0; step < opt.max_new_tokens; step++) {
      rethrow();
      if (o.signal?.aborted) break;
      const next: number[] = [];
      for (let b = 0; b < B; b++) {
        if (finished[b]) { next.push(opt.pad); continue; }
        const row = logits.subarray(b * V, (b + 1) * V);
        let banned = generated[b].length < opt.min_new_tokens ? opt.eos : [];
        if (opt.no_repeat_ngram_size || opt.bad_words_ids.length || opt.suppress_tokens.length || opt.begin_suppress_tokens.length) {
          banned = [...banned, ...opt.suppress_tokens, ...(generated[b].length === 0 ? opt.begin_suppress_tokens : []),
            ...ngramBans(seqs[b], opt.no_repeat_ngram_size), ...badWordBans(seqs[b], opt.bad_words_ids)];
        }
        next.push(nextToken(row, opt, seqs[b], banned, () => rng.next()));
      }
      for (let b = 0; b < B; b++) {
        seqs[b].push(next[b]); masks[b].push(1); ones[b]++;
        if (finished[b]) continue;
        generated[b].push(next[b]);
        if (opt.eos.includes(next[b])) finished[b] = true;
        else if (opt.stop.length) {
          // a trailing U+FFFD may be a character whose bytes are still coming (a token that ends inside one): it
          // is text only once the next token completes or breaks the sequence, as a streaming decoder holds it back
          const text = o.tokenizer!.decode([...stopTail[b], ...generated[b]], { skip_special_tokens: true }).replace(/\uFFFD+$/, '');
          if (stopStringEnd(text, stopFrom[b], opt.stop) >= 0) finished[b] = true;
        }
      }
      put(next.map((t) => [t]));
      if (finished.every(Boolean) || step === opt.max_new_tokens - 1) break;
      await yieldToEventLoop();
      rethrow();
      // ('error' overflow was refused before any work, so only 'slide' can outgrow the cache here)
      logits = !useCache || longest() > capacity ? fresh() : decode();
    }
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    cache?.dispose();
    try { o.streamer?.end(); } catch (e) { if (!failed) throw e; }
  }
  await yieldToEventLoop(); // an async put() of the last step settles before the result is handed out
  rethrow();
  const total = seqs[0].length;
  const out = new BigInt64Array(B * total);
  for (let b = 0; b < B; b++) for (let t = 0; t < total; t++) out[b * total + t] = BigInt(seqs[b][t]);
  return new Tensor('int64', out, [B, total]);
}
