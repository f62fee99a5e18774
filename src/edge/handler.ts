// The model behind a `fetch(request) → Response` function: the shape Cloudflare Workers and Deno Deploy take as
// `export default { fetch }`, Vercel Edge Functions as `export default handler.fetch`, and Deno.serve / Bun.serve
// as their handler. The model is loaded on the first request that needs it (weights streamed from `modelUrl`
// with HTTP Range requests, so the whole checkpoint never sits in memory twice), then reused by every request
// on the same isolate. Requests run one at a time on the shared model.
//
//   GET  /                  { ok, model, loaded, variant, threads }
//   POST /v1/forward        { input_ids: number[] | number[][], top_k? } → last-token top-k logits per row
//   POST /v1/completions    { prompt: string | number[], max_tokens?, temperature?, top_p?, top_k?, seed?, stop? }
//                           → OpenAI-style text_completion (greedy when temperature is 0 or absent)
// Requests are validated by the same code as the Node server's (src/server/request.ts), and errors have its shape.
import { OptionError } from '../errors.js';
import { checkKnownKeys } from '../options.js';
import { checkModelLocation, resolveSource } from '../io/resolve.js';
import type { ModelSource } from '../io/source.js';
import { GPT2LMHeadModel } from '../model/gpt2.js';
import { STOP_IN_NEW_TEXT } from '../generation/generate.js';
import { WASM_VARIANTS, type WasmVariant } from '../runtime/wasm.js';
import { checkThreads } from '../runtime/backend.js';
import { GPT2Tokenizer } from '../tokenizer/tokenizer.js';
import { HttpError, encodePrompt, errorBody, parseCompletionRequest, parseJsonObject, toHttpError } from '../server/request.js';
import { CompletionText } from '../server/text.js';
import { checkKVDType } from '../model/kv-cache.js';
import { resolvePlan, type DTypeSpec } from '../model/weights.js';

export interface FetchHandlerOptions {
  /** Base URL of a model directory (config.json, model.safetensors, vocab.json, merges.txt), or of a .gguf file
   *  (a complete model); needs Range support. Resolved as from_pretrained resolves a URL. */
  modelUrl?: string | URL;
  /** A .gguf file inside the modelUrl directory (from_pretrained's gguf_file). */
  gguf_file?: string;
  /** Or any ModelSource (memorySource, dirSource, urlSource with custom headers). */
  source?: ModelSource;
  /** Run dtype of the weight matrices, or a per-tensor plan ('q4,wte=q4', { default: 'q4', wte: 'fp16' }), as
   *  from_pretrained takes (default 'auto': the checkpoint's). */
  dtype?: DTypeSpec;
  /** Element type of the KV cache, 'fp32' (default) or 'fp16' (half the memory); a from_pretrained option. */
  kv_dtype?: 'fp32' | 'fp16';
  /**
   * Tokens per prefill pass (default 64, half of from_pretrained's 128): the workspace grows with it (GPT-2 124M:
   * ~34 KiB a token, so 2.2 MB less inside a 128 MB isolate); one thread prefills as fast in chunks of 64 (EDGE_PREFILL_CHUNK).
   */
  prefill_chunk?: number;
  /** Kernel threads (default 1: edge isolates have no Worker, and one request uses one CPU anyway). */
  threads?: number;
  /** 'wasm' (default) or 'reference' (TypeScript kernels; debugging only). */
  kernels?: 'wasm' | 'reference';
  /** Force a kernel build ('simd', 'relaxed', ...); give it with `wasmModule`. */
  variant?: WasmVariant;
  /**
   * The kernel build, precompiled: Cloudflare Workers and Vercel Edge refuse to compile WebAssembly from bytes
   * at run time, so there the .wasm is imported as a module (`import kernels from 'gpt2-wasm/wasm/simd.wasm'`)
   * and passed here with the matching `variant`. Needs from_pretrained's `wasmModule` option.
   */
  wasmModule?: WebAssembly.Module;
  /** For modelUrl: the fetch to read weights with, extra headers, a bearer token. */
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  token?: string;
  /** Model name reported in responses (default: the source name). */
  modelName?: string;
  /** Largest top_k a /v1/forward request may ask for (default 100). */
  maxTopK?: number;
  /** Largest max_tokens a /v1/completions request may ask for (default 256). */
  maxNewTokens?: number;
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Path prefix the routes live under, e.g. '/api' (default none). */
  basePath?: string;
  /** Most rows a /v1/forward request may batch (default 16); its rows × tokens are at most n_positions, so one
   *  request needs no more memory than one full-context sequence. */
  maxBatchRows?: number;
}

const HANDLER_KEYS = new Set(['modelUrl', 'gguf_file', 'source', 'dtype', 'kv_dtype', 'prefill_chunk', 'threads', 'kernels', 'variant', 'wasmModule',
  'fetch', 'headers', 'token', 'modelName', 'maxTopK', 'maxNewTokens', 'maxBodyBytes', 'basePath', 'maxBatchRows']);

/** The handler's options, checked when it is made: a wrong one is the deployment's error, named once, rather than
 *  a 400 blamed on every client (the model's options are only used when the first request loads it). */
function checkHandlerOptions(o: FetchHandlerOptions): void {
  checkKnownKeys(o, HANDLER_KEYS, 'createFetchHandler option');
  const posInt = (k: keyof FetchHandlerOptions, max = Number.MAX_SAFE_INTEGER) => {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max)) throw new OptionError(`createFetchHandler: ${k} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
  };
  posInt('maxTopK'); posInt('maxNewTokens'); posInt('maxBodyBytes'); posInt('maxBatchRows'); posInt('prefill_chunk');
  checkThreads(o.threads);
  if (o.basePath !== undefined && (typeof o.basePath !== 'string' || (o.basePath !== '' && !o.basePath.startsWith('/')))) {
    throw new OptionError(`createFetchHandler: basePath must be '' or start with '/', got ${JSON.stringify(o.basePath)}`);
  }
  resolvePlan(o.dtype as DTypeSpec | undefined); // throws an OptionError naming a bad dtype or plan key
  checkKVDType(o.kv_dtype);
  if (o.kernels !== undefined && o.kernels !== 'wasm' && o.kernels !== 'reference') throw new OptionError(`createFetchHandler: kernels must be 'wasm' or 'reference', got ${JSON.stringify(o.kernels)}`);
  if (o.variant !== undefined && !WASM_VARIANTS.includes(o.variant)) throw new OptionError(`createFetchHandler: variant must be one of ${WASM_VARIANTS.join(', ')}, got ${JSON.stringify(o.variant)}`);
}

export interface FetchHandler {
  fetch(request: Request): Promise<Response>;
  /** The model, loading it on first use (e.g. to warm up before the first request). */
  model(): Promise<GPT2LMHeadModel>;
  /** Frees the model; the next request loads it again. */
  dispose(): Promise<void>;
}

/**
 * The edge default of prefill_chunk. Measured with one thread, GPT-2 124M q4 + fp16 KV, a 448-token prompt: 7.2 s
 * in chunks of 32, 7.4 s of 64, 7.4 s of 128 (best of 4 each on a loaded 2-core machine): no cost that shows.
 */
export const EDGE_PREFILL_CHUNK = 64;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
const reply = (status: number, body: unknown, extra: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...extra } });

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function optInt(body: Record<string, unknown>, key: string, dflt: number, min: number, max: number): number {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (!isInt(v) || v < min || v > max) throw new HttpError(400, `${key} must be an integer from ${min} to ${max}`, key);
  return v;
}

/** Token ids: one row or a batch of equal-length rows, each id in [0, vocab). */
function idRows(v: unknown, vocab: number, maxLen: number, key: string): number[][] {
  if (!Array.isArray(v) || v.length === 0) throw new HttpError(400, `${key} must be a non-empty array of token ids (or of rows of them)`, key);
  const rows: unknown[] = Array.isArray(v[0]) ? v : [v];
  const out: number[][] = [];
  for (const row of rows) {
    if (!Array.isArray(row) || row.length === 0) throw new HttpError(400, `${key}: every row must be a non-empty array of token ids`, key);
    if (row.length > maxLen) throw new HttpError(400, `${key}: ${row.length} tokens exceed the model's context of ${maxLen}`, key);
    for (const id of row) if (!isInt(id) || id < 0 || id >= vocab) throw new HttpError(400, `${key}: ${JSON.stringify(id)} is not a token id in [0, ${vocab})`, key);
    if (out.length && row.length !== out[0].length) throw new HttpError(400, `${key}: rows of different lengths (${out[0].length} and ${row.length})`, key);
    out.push(row as number[]);
  }
  return out;
}

/** The k largest entries of `v[from, from+n)`, largest first. */
export function topK(v: ArrayLike<number>, from: number, n: number, k: number): { token_id: number; logit: number }[] {
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = v[from + i];
    if (ids.length === k && !(x > vals[k - 1])) continue;
    let j = ids.length < k ? ids.length : k - 1; // the slot to fill: a new last one, or the evicted last one
    while (j > 0 && x > vals[j - 1]) { vals[j] = vals[j - 1]; ids[j] = ids[j - 1]; j--; }
    vals[j] = x; ids[j] = i;
  }
  return ids.map((id, i) => ({ token_id: id, logit: vals[i] }));
}

async function readJsonBody(request: Request, limit: number): Promise<Record<string, unknown>> {
  // The body is parsed as JSON whatever its Content-Type: fetch() labels a string body text/plain and curl -d
  // labels it application/x-www-form-urlencoded, and refusing those would only get in the way.
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > limit) throw new HttpError(413, `request body of ${declared} bytes is over the limit of ${limit} bytes`, null, 'body_too_large');
  let bytes: Uint8Array;
  try { bytes = new Uint8Array(await request.arrayBuffer()); } catch (e) {
    // the client's stream failed (reset, aborted): its request, not the server, is at fault
    throw new HttpError(400, `the request body could not be read: ${(e as Error)?.message ?? e}`, null, 'incomplete_body');
  }
  if (bytes.byteLength > limit) throw new HttpError(413, `request body of ${bytes.byteLength} bytes is over the limit of ${limit} bytes`, null, 'body_too_large');
  return parseJsonObject(bytes);
}

export function createFetchHandler(options: FetchHandlerOptions): FetchHandler {
  const o = options ?? ({} as FetchHandlerOptions);
  if (!o.source && !o.modelUrl) throw new OptionError('createFetchHandler needs modelUrl or source');
  if (!o.source) checkModelLocation(String(o.modelUrl)); // a scheme that cannot be read: the deployment's error, at once
  checkHandlerOptions(o);
  const fetchFn = o.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  // the source is resolved on first use (a GGUF source reads its header), and again after a failure
  let sourceP: Promise<ModelSource> | null = null;
  const source = (): Promise<ModelSource> => {
    if (!sourceP) {
      sourceP = o.source ? Promise.resolve(o.source) : resolveSource(String(o.modelUrl), { gguf_file: o.gguf_file, fetch: fetchFn, headers: o.headers, token: o.token });
      sourceP.catch(() => { sourceP = null; });
    }
    return sourceP;
  };
  const modelName = o.modelName ?? o.source?.name ?? String(o.modelUrl);
  const maxTopK = o.maxTopK ?? 100;
  const maxNew = o.maxNewTokens ?? 256;
  const maxBody = o.maxBodyBytes ?? 1 << 20;
  const maxRows = o.maxBatchRows ?? 16;
  const base = (o.basePath ?? '').replace(/\/+$/, '');

  let modelP: Promise<GPT2LMHeadModel> | null = null;
  let loaded: GPT2LMHeadModel | null = null;
  let tokenizerP: Promise<GPT2Tokenizer> | null = null;
  let queue: Promise<unknown> = Promise.resolve();

  const model = (): Promise<GPT2LMHeadModel> => {
    if (!modelP) {
      const opts: Record<string, unknown> = { dtype: o.dtype, threads: o.threads ?? 1, kernels: o.kernels };
      if (o.variant !== undefined) opts.variant = o.variant;
      if (o.kv_dtype !== undefined) opts.kv_dtype = o.kv_dtype;
      opts.prefill_chunk = o.prefill_chunk ?? EDGE_PREFILL_CHUNK;
      if (o.wasmModule !== undefined) opts.wasmModule = o.wasmModule;
      modelP = source().then((s) => GPT2LMHeadModel.from_pretrained(s, opts))
        .then((m) => (loaded = m));
      modelP.catch(() => { modelP = null; }); // a failed load is retried by the next request
    }
    return modelP;
  };
  const tokenizer = (): Promise<GPT2Tokenizer> => {
    if (!tokenizerP) {
      tokenizerP = source().then((s) => GPT2Tokenizer.from_pretrained(s));
      tokenizerP.catch(() => { tokenizerP = null; });
    }
    return tokenizerP;
  };
  /** One request at a time on the model: calls are queued in arrival order. */
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  };
  /** fn on the model, in its turn: the model is fetched again there, since a dispose() queued while the request
   *  was being read (or waited for the tokenizer) has freed the one it validated against; the next is a reload of
   *  the same source (same config). */
  const withModel = <T>(fn: (m: GPT2LMHeadModel) => Promise<T>): Promise<T> => exclusive(async () => fn(await model()));

  async function forward(request: Request): Promise<Response> {
    const body = await readJsonBody(request, maxBody);
    const m = await model();
    const rows = idRows(body.input_ids, m.config.vocab_size, m.config.n_positions, 'input_ids');
    if (rows.length > maxRows) throw new HttpError(400, `input_ids: ${rows.length} rows are over this handler's limit of ${maxRows} (maxBatchRows)`, 'input_ids');
    if (rows.length * rows[0].length > m.config.n_positions) {
      throw new HttpError(400, `input_ids: ${rows.length} rows of ${rows[0].length} tokens are ${rows.length * rows[0].length} tokens, over the limit of ${m.config.n_positions} (n_positions) per request`, 'input_ids');
    }
    const k = optInt(body, 'top_k', 10, 1, Math.min(maxTopK, m.config.vocab_size));
    return withModel(async (m) => {
      const t0 = Date.now();
      const out = await m.forward({ input_ids: rows, logits_to_keep: 1, use_cache: false });
      const logits = out.logits!;
      const V = logits.dims[2];
      const data = logits.data as Float32Array;
      return reply(200, {
        object: 'forward',
        model: modelName,
        tokens: rows[0].length,
        top_k: rows.map((_, b) => topK(data, b * V, V, k)),
        timing_ms: Date.now() - t0,
      });
    });
  }

  async function completions(request: Request): Promise<Response> {
    const body = await readJsonBody(request, maxBody);
    const m = await model();
    const cfg = m.config;
    const p = parseCompletionRequest(body, { vocabSize: cfg.vocab_size, maxTokens: maxNew, minTokens: 0, defaultTemperature: 0, streaming: false });
    // the tokenizer is loaded when the request needs it: a text prompt, stop sequences (ids are decoded if it loads)
    let tok: GPT2Tokenizer | null = typeof p.prompt === 'string' || p.stop.length ? await tokenizer() : null;
    const prompt = encodePrompt(tok, p.prompt, p.maxTokens, cfg.n_positions);
    return withModel(async (m) => {
      const t0 = Date.now();
      const s = p.sampling;
      const gen: Record<string | symbol, unknown> = { input_ids: [prompt], max_new_tokens: p.maxTokens, signal: request.signal, ...s };
      if (p.seed !== undefined) gen.seed = p.seed;
      // OpenAI's stop: a sequence in the completion only (one that begins in the prompt does not end it)
      if (p.stop.length) { gen.stop = p.stop; gen.tokenizer = tok; gen[STOP_IN_NEW_TEXT] = true; }
      const seq = await m.generate(gen as any);
      // the client went away: generate() ended early, which is no natural stop (the Node server's 499 too)
      if (request.signal?.aborted) throw new HttpError(499, 'the client closed the request before the completion ended', null, 'cancelled');
      const all = Array.from(seq.data as ArrayLike<number | bigint>, Number);
      const ids = all.slice(prompt.length);
      if (!tok) tok = await tokenizer().catch(() => null);
      // the text as the Node server gives it: cut just before a stop sequence, which is not included
      let text: string | null = null, stopHit = false;
      if (tok) {
        const ct = new CompletionText(tok, p.stop);
        text = '';
        for (const id of ids) text += ct.push(id);
        text += ct.finish();
        stopHit = ct.stopped;
      }
      const stopped = stopHit || ids.length < p.maxTokens || (ids.length > 0 && cfg.eos_token_ids.includes(ids[ids.length - 1]));
      return reply(200, {
        object: 'text_completion',
        model: modelName,
        created: Math.floor(Date.now() / 1000),
        choices: [{ index: 0, text, token_ids: ids, finish_reason: stopped ? 'stop' : 'length' }],
        usage: { prompt_tokens: prompt.length, completion_tokens: ids.length, total_tokens: prompt.length + ids.length },
        timing_ms: Date.now() - t0,
      });
    });
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    let path = url.pathname;
    if (base) {
      if (path !== base && !path.startsWith(base + '/')) throw new HttpError(404, `no route ${path}`, null, 'not_found');
      path = path.slice(base.length) || '/';
    }
    const routes: Record<string, Record<string, (r: Request) => Promise<Response>>> = {
      '/': { GET: async () => reply(200, { ok: true, model: modelName, loaded: !!loaded, variant: loaded?.backend.variant ?? null, threads: loaded?.backend.threads ?? null }) },
      '/v1/forward': { POST: forward },
      '/v1/completions': { POST: completions },
    };
    const route = routes[path];
    if (!route) throw new HttpError(404, `no route ${path} (routes: ${Object.keys(routes).join(', ')})`, null, 'not_found');
    const fn = route[request.method] ?? (request.method === 'HEAD' ? route.GET : undefined);
    if (!fn) {
      const allow = Object.keys(route).join(', ');
      throw new HttpError(405, `${request.method} ${path}: use ${allow}`, null, 'method_not_allowed', { allow });
    }
    return fn(request);
  }

  return {
    async fetch(request: Request): Promise<Response> {
      try {
        return await handle(request);
      } catch (e) {
        // bad input or options → 4xx; anything else (model files, memory, runtime) → 5xx
        const err = toHttpError(e);
        return reply(err.status, errorBody(err), err.headers);
      }
    },
    model,
    async dispose() {
      const p = modelP;
      modelP = null; loaded = null; tokenizerP = null;
      if (p) await exclusive(async () => { const m = await p.catch(() => null); await m?.dispose(); });
    },
  };
}
