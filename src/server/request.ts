// The request side shared by the Node server (src/server/http.ts) and the edge handler (src/edge/handler.ts):
// one HttpError, one validator of an OpenAI-style POST /v1/completions body, one prompt encoder with the context
// check, and one mapping of library errors to HTTP statuses. Every rejection is an HttpError naming the field
// (OpenAI's `param`) and the accepted values, so a client can fix its request. No Node APIs here: the edge
// bundle imports this file.
import { GPT2WasmError } from '../errors.js';
import type { SamplingOptions } from '../generation/logits-process.js';
import { MAX_SEED } from '../generation/random.js';
import type { GPT2Tokenizer } from '../tokenizer/tokenizer.js';

/** A request value as the client sent it: JSON, except numbers JSON cannot spell (1e400 parses to Infinity). */
const shown = (v: unknown): string => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v));

/**
 * An answer other than 200, thrown inside a request handler and turned into a JSON error response there. It is
 * a GPT2WasmError (INPUT for a 4xx, BUSY for 429, RUNTIME for a 5xx) in case it reaches a caller of the exported
 * validator; `apiCode` is the `code` of OpenAI's error body.
 */
export class HttpError extends GPT2WasmError {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly apiCode: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(status === 429 ? 'BUSY' : status >= 500 ? 'RUNTIME' : 'INPUT', message);
    this.name = 'HttpError';
  }

  get type(): string {
    if (this.status === 429) return 'rate_limit_error';
    if (this.status === 504 || this.status === 408) return 'timeout_error';
    if (this.status >= 500) return 'server_error';
    return 'invalid_request_error';
  }
}

/** OpenAI's error body. */
export const errorBody = (e: HttpError) => ({ error: { message: e.message, type: e.type, param: e.param, code: e.apiCode } });

/** Maps what a handler, the scheduler or the model threw to an HTTP error. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof GPT2WasmError) {
    if (e.code === 'BUSY') return new HttpError(429, e.message, null, 'queue_full', { 'retry-after': '1' });
    if (e.code === 'INPUT' || e.code === 'OPTION') return new HttpError(400, e.message, null, e.code.toLowerCase());
    if (e.code === 'MEMORY') return new HttpError(503, `not enough memory to admit this request now (its KV cache or prompt workspace): ${e.message}`, null, 'out_of_memory', { 'retry-after': '1' });
    return new HttpError(500, e.message, null, e.code.toLowerCase());
  }
  return new HttpError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, null, 'internal');
}

/** A request body parsed as a JSON object (whatever its Content-Type: curl -d and fetch label JSON otherwise). */
export function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let body: unknown;
  try { body = JSON.parse(new TextDecoder().decode(bytes)); } catch (e) { throw new HttpError(400, `invalid JSON body: ${(e as Error).message}`, null, 'invalid_json'); }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object', null, 'invalid_json');
  return body as Record<string, unknown>;
}

export interface CompletionParams {
  /** The prompt as given: text, or token ids. */
  prompt: string | number[];
  maxTokens: number;
  sampling: SamplingOptions;
  seed: number | undefined;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  /** Completions of the prompt (OpenAI's n; default 1). */
  n: number;
  /** Top log-probabilities per token (OpenAI's logprobs, 0 to 5), or undefined for none. */
  logprobs: number | undefined;
  /** The prompt is repeated before the completion text (and scored, with logprobs). */
  echo: boolean;
  presencePenalty: number;
  frequencyPenalty: number;
  /** OpenAI's logit_bias: token id → bias in [-100, 100]. */
  logitBias: Map<number, number> | undefined;
}

export interface RequestLimits {
  /** The served model's name: a request naming another is refused (undefined: `model` is not checked). */
  modelId?: string;
  vocabSize: number;
  /** Largest max_tokens a request may ask for. */
  maxTokens: number;
  /** Smallest max_tokens (default 1; the edge handler allows 0, the prompt alone). */
  minTokens?: number;
  /** temperature when the request has none (default 1 as in OpenAI's API; the edge handler's is 0, greedy). */
  defaultTemperature?: number;
  /** Whether `stream: true` is served (default true). */
  streaming?: boolean;
  /** Whether n > 1, logprobs, echo, presence/frequency_penalty and logit_bias are served (default false: the edge
   *  handler refuses them; the Node server serves them). */
  openaiExtras?: boolean;
  /** Largest n (default 1). */
  maxN?: number;
  /** The model's end-of-text ids, for the hint to llama.cpp's ignore_eos (undefined: not named in the hint). */
  eos?: readonly number[];
}

const bad = (param: string, message: string) => new HttpError(400, message, param);

/** What a hint to a llama.cpp field may say: only what the request's server serves. */
interface HintContext { extras: boolean; maxTokens: number; defaultMaxTokens: number; maxN: number; eos: readonly number[] | undefined }

const SAMPLERS = (c: HintContext) => `the samplers here are ${c.extras ? 'presence_penalty, frequency_penalty and logit_bias, then ' : ''}repetition_penalty, temperature, top_k and top_p, in that order`;
const notHere = (what: string) => (c: HintContext) => `${what} is not implemented here; ${SAMPLERS(c)}`;
const PENALTIES = (c: HintContext) => `use repetition_penalty${c.extras ? ', presence_penalty or frequency_penalty' : ''}`;

/**
 * Request fields of llama.cpp's server (llama-server's POST /completion) that this API does not accept, each
 * with what to send instead. They would otherwise be ignored, and a client would believe it had been served
 * (n_predict ignored gives 16 tokens, grammar ignored gives free text); the fields both APIs share (prompt,
 * temperature, top_k, top_p, stop, stream, seed, presence/frequency_penalty, logit_bias) are not here.
 */
export const LLAMA_CPP_FIELDS: Readonly<Record<string, (c: HintContext) => string>> = {
  n_predict: (c) => `use max_tokens (at most ${c.maxTokens} here, default ${c.defaultMaxTokens}; there is no -1 for unlimited)`,
  repeat_penalty: () => 'use repetition_penalty, the same penalty (the logit of a token already seen is divided by it, or multiplied when negative), applied to all the prompt and completion tokens rather than the last repeat_last_n',
  repeat_last_n: (c) => `the penalty window is not configurable: repetition_penalty applies to all the prompt and completion tokens${c.extras ? ', presence_penalty and frequency_penalty to all the completion tokens' : ''}`,
  penalize_nl: () => 'there is no exemption for newlines: repetition_penalty penalises the newline token as any other',
  ignore_eos: (c) => !c.extras ? 'generation always ends at the end-of-text token here; leave the field out'
    : c.eos && c.eos.length === 0 ? 'this model has no end-of-text token: generation already runs to max_tokens or a stop sequence; leave the field out'
    : `to generate past the end-of-text token, bias it away with logit_bias ${c.eos ? JSON.stringify(Object.fromEntries(c.eos.map((id) => [String(id), -100]))) : '{"<end-of-text id>": -100}'} (-100 keeps it from being chosen in practice)`,
  n_probs: (c) => c.extras ? 'use logprobs (0 to 5): the most likely tokens per position with their log-probabilities, in choices[].logprobs' : 'token probabilities are not served here',
  post_sampling_probs: (c) => c.extras ? 'probabilities after sampling are not served; logprobs (0 to 5) gives the model\'s own log-probabilities, before penalties and samplers' : 'token probabilities are not served here',
  min_p: notHere('min-p sampling'),
  typical_p: notHere('locally typical sampling'),
  tfs_z: notHere('tail-free sampling'),
  dynatemp_range: notHere('dynamic temperature'),
  dynatemp_exponent: notHere('dynamic temperature'),
  mirostat: notHere('Mirostat sampling'),
  mirostat_tau: notHere('Mirostat sampling'),
  mirostat_eta: notHere('Mirostat sampling'),
  xtc_probability: notHere('XTC sampling'),
  xtc_threshold: notHere('XTC sampling'),
  dry_multiplier: (c) => `the DRY penalty is not implemented here; ${PENALTIES(c)}`,
  dry_base: (c) => `the DRY penalty is not implemented here; ${PENALTIES(c)}`,
  dry_allowed_length: (c) => `the DRY penalty is not implemented here; ${PENALTIES(c)}`,
  dry_penalty_last_n: (c) => `the DRY penalty is not implemented here; ${PENALTIES(c)}`,
  dry_sequence_breakers: (c) => `the DRY penalty is not implemented here; ${PENALTIES(c)}`,
  samplers: (c) => `the sampler order is fixed: ${SAMPLERS(c)}`,
  min_keep: notHere('min_keep'),
  grammar: () => 'constrained (grammar) decoding is not implemented here: the completion is free text',
  json_schema: () => 'constrained (JSON schema) decoding is not implemented here: the completion is free text',
  n_keep: () => 'there is no context shift here: nothing of the prompt is discarded, and a prompt whose tokens plus max_tokens exceed the context (n_positions) gets a 400',
  n_indent: () => 'n_indent is not implemented here; a stop sequence (stop) can end the completion instead',
  n_cmpl: (c) => c.extras ? `use n (completions of the prompt, at most ${c.maxN} here)` : 'one completion per request here; send several requests',
  cache_prompt: () => 'no KV cache is kept between requests here: every prompt is computed in full; leave the field out',
  n_cache_reuse: () => 'no KV cache is kept between requests here: every prompt is computed in full; leave the field out',
  id_slot: () => 'slots cannot be chosen here: requests are queued and batched together as they come',
  t_max_predict_ms: () => 'there is no per-request time limit here (the server\'s own limit applies); bound the completion with max_tokens',
  return_tokens: (c) => `there is no switch for token ids in the response${c.extras ? '; logprobs (0 to 5) lists the completion\'s tokens as text' : ''}`,
  timings_per_token: () => 'responses carry no timings here (the Node server\'s GET /metrics has latency histograms)',
  return_progress: () => 'responses carry no prompt progress here',
  response_fields: () => 'the response has OpenAI\'s fields and cannot be reshaped',
  lora: () => 'LoRA adapters are not supported here',
};

/**
 * Hugging Face generate() options a client of this library may send out of habit: ignored they would look served
 * (max_new_tokens ignored gives 16 tokens), so they are 400 `hf_field`, naming the OpenAI field to send instead.
 */
export const HF_GENERATE_FIELDS: Readonly<Record<string, (c: HintContext) => string>> = {
  max_new_tokens: (c) => `use max_tokens (at most ${c.maxTokens} here, default ${c.defaultMaxTokens})`,
  max_length: (c) => `use max_tokens, which counts the new tokens only (at most ${c.maxTokens} here, default ${c.defaultMaxTokens})`,
  do_sample: () => 'use temperature: 0 decodes greedily, any other value samples',
  num_return_sequences: (c) => c.extras ? `use n (completions of the prompt, at most ${c.maxN} here)` : 'one completion per request here; send several requests',
  stop_strings: () => 'use stop (a string or up to 4)',
  min_new_tokens: () => 'there is no minimum length here: generation may end at the end-of-text token or a stop sequence at any step',
  no_repeat_ngram_size: (c) => `n-gram bans are not implemented here; ${PENALTIES(c)}`,
};

/**
 * A 400 for the first field of the body from another API, naming it and what to send instead: llama-server's
 * fields first (the others of them are listed), then Hugging Face generate()'s options.
 */
function rejectForeignFields(body: Record<string, unknown>, limits: RequestLimits): void {
  const of = (table: Readonly<Record<string, unknown>>) => Object.keys(body).filter((k) => Object.hasOwn(table, k) && given(body[k]));
  const llama = of(LLAMA_CPP_FIELDS), hf = of(HF_GENERATE_FIELDS);
  if (!llama.length && !hf.length) return;
  const c: HintContext = {
    extras: limits.openaiExtras === true, maxTokens: limits.maxTokens, defaultMaxTokens: Math.min(16, limits.maxTokens),
    maxN: limits.maxN ?? 1, eos: limits.eos,
  };
  if (llama.length) {
    const [k, ...more] = llama;
    const also = more.length ? ` (the request also has the llama.cpp server field${more.length > 1 ? 's' : ''} ${more.join(', ')})` : '';
    throw new HttpError(400, `${k} is a llama.cpp server (llama-server) field, not accepted by this OpenAI-style API: ${LLAMA_CPP_FIELDS[k](c)}${also}`, k, 'llama_cpp_field');
  }
  const k = hf[0];
  throw new HttpError(400, `${k} is a Hugging Face generate() option, not a field of this OpenAI-style API: ${HF_GENERATE_FIELDS[k](c)}`, k, 'hf_field');
}
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const given = (v: unknown) => v !== undefined && v !== null;

function num(body: Record<string, unknown>, key: string, dflt: number, ok: (v: number) => boolean, range: string): number {
  const v = body[key];
  if (!given(v)) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(key, `${key} must be a number ${range}, got ${shown(v)}`);
  return v;
}

function int(body: Record<string, unknown>, key: string, dflt: number, min: number, max: number, hint = ''): number {
  const v = body[key];
  if (!given(v)) return dflt;
  if (!isInt(v) || v < min || v > max) throw bad(key, `${key} must be an integer from ${min} to ${max}${hint}, got ${shown(v)}`);
  return v;
}

/** Fields of the OpenAI API that are accepted only at their neutral value (all of them without `openaiExtras`). */
function rejectUnsupported(body: Record<string, unknown>, extras: boolean): void {
  const only = (key: string, ok: (v: unknown) => boolean, why: string) => { if (given(body[key]) && !ok(body[key])) throw bad(key, `${key}: ${why}`); };
  only('best_of', (v) => v === 1, 'only best_of = 1 is supported');
  only('suffix', () => false, 'suffix (insertion) is not supported by GPT-2');
  if (extras) return;
  only('n', (v) => v === 1, 'only n = 1 is supported here (one completion per request; send several requests)');
  only('echo', (v) => v === false, 'echo is not supported here (the prompt is not repeated in the completion)');
  only('logprobs', () => false, 'logprobs are not supported here; leave the field out or null');
  only('logit_bias', (v) => typeof v === 'object' && Object.keys(v as object).length === 0, 'logit_bias is not supported here');
  only('frequency_penalty', (v) => v === 0, 'frequency_penalty is not supported here; use repetition_penalty (Hugging Face\'s multiplicative penalty, e.g. 1.2)');
  only('presence_penalty', (v) => v === 0, 'presence_penalty is not supported here; use repetition_penalty (e.g. 1.2)');
}

/** OpenAI's logit_bias: an object of token ids (as strings) to biases in [-100, 100]. */
function logitBias(body: Record<string, unknown>, vocabSize: number): Map<number, number> | undefined {
  const v = body.logit_bias;
  if (!given(v)) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw bad('logit_bias', `logit_bias must be an object of token ids to biases, like {"50256": -100}${Array.isArray(v) ? ' (llama.cpp\'s [[id, bias]] pairs are not accepted)' : ''}`);
  }
  const out = new Map<number, number>();
  for (const [k, b] of Object.entries(v as Record<string, unknown>)) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || !isInt(id) || id >= vocabSize) throw bad('logit_bias', `logit_bias: ${JSON.stringify(k)} is not a token id in [0, ${vocabSize})`);
    if (typeof b !== 'number' || !Number.isFinite(b) || b < -100 || b > 100) throw bad('logit_bias', `logit_bias[${k}] must be a number from -100 to 100, got ${shown(b)}`);
    out.set(id, b);
  }
  return out.size ? out : undefined;
}

export function parseCompletionRequest(body: Record<string, unknown>, limits: RequestLimits): CompletionParams {
  // first: a llama-server client learns what its request means here before any other complaint
  rejectForeignFields(body, limits);
  if (limits.modelId !== undefined && given(body.model) && body.model !== limits.modelId) {
    throw bad('model', typeof body.model === 'string'
      ? `model '${body.model}' is not served here; this server serves '${limits.modelId}' (GET /v1/models)`
      : `model must be a string, got ${JSON.stringify(body.model)}`);
  }
  const extras = limits.openaiExtras === true;
  rejectUnsupported(body, extras);

  let prompt: string | number[];
  const p = body.prompt;
  if (typeof p === 'string') prompt = p;
  else if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') prompt = p[0];
  else if (Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === 'string')) {
    throw bad('prompt', `prompt: one prompt per request, got ${p.length}; send one request per prompt (concurrent requests are batched together)`);
  } else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) {
    for (const id of p) if (!isInt(id) || id < 0 || id >= limits.vocabSize) throw bad('prompt', `prompt: ${JSON.stringify(id)} is not a token id in [0, ${limits.vocabSize})`);
    prompt = p as number[];
  } else if (!given(p)) throw bad('prompt', 'prompt is required (a string)');
  else throw bad('prompt', 'prompt must be a string, an array of one string, or an array of token ids');
  if (prompt.length === 0) throw bad('prompt', 'prompt is empty');

  const maxTokens = int(body, 'max_tokens', Math.min(16, limits.maxTokens), limits.minTokens ?? 1, limits.maxTokens, ` (this server's limit is ${limits.maxTokens})`);
  const temperature = num(body, 'temperature', limits.defaultTemperature ?? 1, (v) => v >= 0 && v <= 2, 'from 0 to 2 (0: greedy)');
  const top_p = num(body, 'top_p', 1, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const top_k = int(body, 'top_k', 0, 0, limits.vocabSize, ' (0: off)');
  const repetition_penalty = num(body, 'repetition_penalty', 1, (v) => v > 0 && v <= 10, 'in (0, 10] (1: off)');
  const seed = given(body.seed) ? int(body, 'seed', 0, 0, MAX_SEED, ' (2^53 - 1; leave it out for a random seed, as llama.cpp\'s -1)') : undefined;

  let stop: string[] = [];
  const st = body.stop;
  if (typeof st === 'string') stop = [st];
  else if (Array.isArray(st) && st.every((s) => typeof s === 'string')) stop = st as string[];
  else if (given(st)) throw bad('stop', 'stop must be a string or an array of up to 4 strings');
  if (stop.length > 4) throw bad('stop', `stop: at most 4 stop sequences, got ${stop.length}`);
  if (stop.some((s) => s === '')) throw bad('stop', 'stop sequences must not be empty');

  if (given(body.stream) && typeof body.stream !== 'boolean') throw bad('stream', `stream must be true or false, got ${JSON.stringify(body.stream)}`);
  const stream = body.stream === true;
  if (stream && limits.streaming === false) throw bad('stream', 'stream: true is not served here; leave it out for one JSON answer');
  let includeUsage = false;
  const so = body.stream_options;
  if (given(so)) {
    if (typeof so !== 'object' || Array.isArray(so)) throw bad('stream_options', 'stream_options must be an object like {"include_usage": true}');
    const iu = (so as Record<string, unknown>).include_usage;
    if (given(iu) && typeof iu !== 'boolean') throw bad('stream_options', 'stream_options.include_usage must be true or false');
    if (!stream) throw bad('stream_options', 'stream_options needs stream: true');
    includeUsage = iu === true;
  }

  const maxN = limits.maxN ?? 1;
  const n = extras ? int(body, 'n', 1, 1, maxN, ` (this server decodes ${maxN} sequences at most)`) : 1;
  const logprobs = extras && given(body.logprobs) ? int(body, 'logprobs', 0, 0, 5, ' (the number of most likely tokens listed per position)') : undefined;
  if (extras && given(body.echo) && typeof body.echo !== 'boolean') throw bad('echo', `echo must be true or false, got ${JSON.stringify(body.echo)}`);
  const echo = extras && body.echo === true;
  if (extras && maxTokens === 0 && !echo) throw bad('max_tokens', 'max_tokens 0 needs echo: true (the prompt alone, scored with logprobs)');
  const presencePenalty = extras ? num(body, 'presence_penalty', 0, (v) => v >= -2 && v <= 2, 'from -2 to 2') : 0;
  const frequencyPenalty = extras ? num(body, 'frequency_penalty', 0, (v) => v >= -2 && v <= 2, 'from -2 to 2') : 0;
  const bias = extras ? logitBias(body, limits.vocabSize) : undefined;

  // temperature 0 means greedy; the SamplingOptions temperature must stay positive, and greedy ignores it
  const sampling: SamplingOptions = { do_sample: temperature > 0, temperature: temperature > 0 ? temperature : 1, top_k, top_p, repetition_penalty };
  return { prompt, maxTokens, sampling, seed, stop, stream, includeUsage, n, logprobs, echo, presencePenalty, frequencyPenalty, logitBias: bias };
}

/**
 * Token ids of the prompt, checked against the context: prompt + max_tokens must fit n_positions. Text is
 * tokenized with an early stop past n_positions tokens, so an oversized prompt is refused without being
 * tokenized to its end (the event loop is not blocked by a megabyte prompt).
 */
export function encodePrompt(tokenizer: GPT2Tokenizer | null, prompt: string | number[], maxTokens: number, nPositions: number): number[] {
  let ids: number[] | null;
  if (typeof prompt === 'string' && !tokenizer) throw new HttpError(500, 'a text prompt needs the tokenizer, which is not loaded', 'prompt', 'internal');
  try { ids = typeof prompt === 'string' ? tokenizer!.encodeAtMost(prompt, nPositions) : prompt; } catch (e) { throw new HttpError(400, `prompt: ${(e as Error).message}`, 'prompt'); }
  const fix = 'shorten the prompt or lower max_tokens';
  if (ids === null) throw new HttpError(400, `the prompt has more than ${nPositions} tokens, over the model's context of ${nPositions} tokens (n_positions); ${fix}`, 'prompt', 'context_length_exceeded');
  if (ids.length === 0) throw new HttpError(400, 'prompt encodes to no tokens', 'prompt');
  if (ids.length + maxTokens > nPositions) {
    throw new HttpError(400, `the prompt has ${ids.length} tokens and max_tokens is ${maxTokens}: ${ids.length + maxTokens} in all, over the model's context of ${nPositions} tokens (n_positions); ${fix}`, 'max_tokens', 'context_length_exceeded');
  }
  return ids;
}
