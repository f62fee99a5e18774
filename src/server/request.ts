// Validation of an OpenAI-style POST /v1/completions body into what the scheduler needs. Every rejection is an
// HttpError naming the field (OpenAI's `param`) and the accepted values, so a client can fix its request.
import type { SamplingOptions } from '../generation/logits-process.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) { super(message); this.name = 'HttpError'; }

  get type(): string {
    if (this.status === 429) return 'rate_limit_error';
    if (this.status === 504) return 'timeout_error';
    if (this.status >= 500) return 'server_error';
    return 'invalid_request_error';
  }
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
}

export interface RequestLimits {
  modelId: string;
  vocabSize: number;
  /** Largest max_tokens a request may ask for. */
  maxTokens: number;
}

const bad = (param: string, message: string) => new HttpError(400, message, param);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const given = (v: unknown) => v !== undefined && v !== null;

function num(body: Record<string, unknown>, key: string, dflt: number, ok: (v: number) => boolean, range: string): number {
  const v = body[key];
  if (!given(v)) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(key, `${key} must be a number ${range}, got ${JSON.stringify(v)}`);
  return v;
}

function int(body: Record<string, unknown>, key: string, dflt: number, min: number, max: number, hint = ''): number {
  const v = body[key];
  if (!given(v)) return dflt;
  if (!isInt(v) || v < min || v > max) throw bad(key, `${key} must be an integer from ${min} to ${max}${hint}, got ${JSON.stringify(v)}`);
  return v;
}

/** Fields of the OpenAI API that this server accepts only at their neutral value. */
function rejectUnsupported(body: Record<string, unknown>): void {
  const only = (key: string, ok: (v: unknown) => boolean, why: string) => { if (given(body[key]) && !ok(body[key])) throw bad(key, `${key}: ${why}`); };
  only('n', (v) => v === 1, 'only n = 1 is supported (one completion per request; send several requests, they are batched together)');
  only('best_of', (v) => v === 1, 'only best_of = 1 is supported');
  only('echo', (v) => v === false, 'echo is not supported (the prompt is not repeated in the completion)');
  only('logprobs', () => false, 'logprobs are not supported; leave the field out or null');
  only('suffix', () => false, 'suffix (insertion) is not supported by GPT-2');
  only('logit_bias', (v) => typeof v === 'object' && Object.keys(v as object).length === 0, 'logit_bias is not supported');
  only('frequency_penalty', (v) => v === 0, "frequency_penalty is not supported (OpenAI's additive penalty has no GPT-2/transformers equivalent); use repetition_penalty (Hugging Face's multiplicative penalty, e.g. 1.2)");
  only('presence_penalty', (v) => v === 0, 'presence_penalty is not supported; use repetition_penalty (e.g. 1.2)');
}

export function parseCompletionRequest(body: Record<string, unknown>, limits: RequestLimits): CompletionParams {
  if (given(body.model) && body.model !== limits.modelId) {
    throw bad('model', typeof body.model === 'string'
      ? `model '${body.model}' is not served here; this server serves '${limits.modelId}' (GET /v1/models)`
      : `model must be a string, got ${JSON.stringify(body.model)}`);
  }
  rejectUnsupported(body);

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

  const maxTokens = int(body, 'max_tokens', Math.min(16, limits.maxTokens), 1, limits.maxTokens, ` (this server's limit is ${limits.maxTokens})`);
  const temperature = num(body, 'temperature', 1, (v) => v >= 0 && v <= 2, 'from 0 to 2 (0: greedy)');
  const top_p = num(body, 'top_p', 1, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const top_k = int(body, 'top_k', 0, 0, limits.vocabSize, ' (0: off)');
  const repetition_penalty = num(body, 'repetition_penalty', 1, (v) => v > 0 && v <= 10, 'in (0, 10] (1: off)');
  const seed = given(body.seed) ? int(body, 'seed', 0, -(2 ** 53 - 1), 2 ** 53 - 1) : undefined;

  let stop: string[] = [];
  const st = body.stop;
  if (typeof st === 'string') stop = [st];
  else if (Array.isArray(st) && st.every((s) => typeof s === 'string')) stop = st as string[];
  else if (given(st)) throw bad('stop', 'stop must be a string or an array of up to 4 strings');
  if (stop.length > 4) throw bad('stop', `stop: at most 4 stop sequences, got ${stop.length}`);
  if (stop.some((s) => s === '')) throw bad('stop', 'stop sequences must not be empty');

  if (given(body.stream) && typeof body.stream !== 'boolean') throw bad('stream', `stream must be true or false, got ${JSON.stringify(body.stream)}`);
  const stream = body.stream === true;
  let includeUsage = false;
  const so = body.stream_options;
  if (given(so)) {
    if (typeof so !== 'object' || Array.isArray(so)) throw bad('stream_options', 'stream_options must be an object like {"include_usage": true}');
    const iu = (so as Record<string, unknown>).include_usage;
    if (given(iu) && typeof iu !== 'boolean') throw bad('stream_options', 'stream_options.include_usage must be true or false');
    if (!stream) throw bad('stream_options', 'stream_options needs stream: true');
    includeUsage = iu === true;
  }

  // temperature 0 means greedy; the SamplingOptions temperature must stay positive, and greedy ignores it
  const sampling: SamplingOptions = { do_sample: temperature > 0, temperature: temperature > 0 ? temperature : 1, top_k, top_p, repetition_penalty };
  return { prompt, maxTokens, sampling, seed, stop, stream, includeUsage };
}
