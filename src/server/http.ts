// The HTTP server (node:http, no framework): OpenAI-compatible POST /v1/completions (JSON or server-sent
// events; n, logprobs, echo, penalties and logit_bias included), GET /v1/models, POST /tokenize and /detokenize
// (as llama.cpp's server), GET /metrics (Prometheus), GET /health. Requests are validated here and handed to the
// continuous-batching Scheduler; a client that goes away or runs past the request timeout is cancelled and its
// cache slots freed. With an API key every route but /health needs `Authorization: Bearer <key>`.
// close() fails /health for drainDelayMs while still serving (so a balancer routes around this replica first),
// then stops accepting connections, lets the accepted requests finish (up to a deadline), and returns.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OptionError } from '../errors.js';
import { checkKnownKeys } from '../options.js';
import { resolveGenerateOptions } from '../generation/generate.js';
import type { GPT2LMHeadModel } from '../model/gpt2.js';
import type { GPT2Tokenizer } from '../tokenizer/tokenizer.js';
import { HttpError, encodePrompt, errorBody, parseCompletionRequest, parseJsonObject, toHttpError, type CompletionParams } from './request.js';
import { HeldLogprobs, logprobsObject, promptEntries, type LogprobEntry } from './logprobs.js';
import { Histogram, MetricsPage } from './metrics.js';
import { Scheduler, type JobEnd, type SchedulerStats } from './scheduler.js';
import { CompletionText } from './text.js';

export interface ServerOptions {
  model: GPT2LMHeadModel;
  tokenizer: GPT2Tokenizer;
  /** The name clients pass as `model` and see in responses (default 'gpt2'). */
  modelId?: string;
  /** Sequences decoded together at most (default 8). */
  maxConcurrency?: number;
  /** Requests waiting for a slot at most; more get 429 (default 32). */
  queueSize?: number;
  /** Largest max_tokens per request (default 256, and never above n_positions - 1). */
  maxTokens?: number;
  /** Largest request body in bytes (default 1 MiB); larger gets 413. */
  bodyLimit?: number;
  /**
   * A request (queue time included) is cancelled after this long (default 120 s): 504, or an error event. A
   * request whose headers and body have not all arrived by then is answered 408 and its connection closed.
   */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long (default 65 s: above the 60 s idle timeout of
   *  common load balancers, so the balancer never reuses a socket the server is closing). */
  keepAliveTimeoutMs?: number;
  /** Open connections at most (default 1024); more are closed at once. */
  maxConnections?: number;
  /** close() waits this long for accepted requests before cancelling them (default 30 s). */
  shutdownTimeoutMs?: number;
  /** With a key, every route but /health answers 401 unless the request has `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** close() first fails /health for this long while still serving requests (default 0), so that a load
   *  balancer's health check takes this replica out before it stops accepting connections. */
  drainDelayMs?: number;
  /** One line per finished request (default: none). */
  log?: (line: string) => void;
}

export interface ServerStats extends SchedulerStats {
  status: 'ok' | 'draining' | 'shutting_down';
  model: string;
  uptime_s: number;
  max_concurrency: number;
  queue_size: number;
  max_tokens: number;
  n_positions: number;
  threads: number;
  dtype: string;
  wasm: string;
}

export interface GPT2Server {
  readonly http: Server;
  readonly scheduler: Scheduler;
  readonly modelId: string;
  /** Starts listening (default port 8080 on 127.0.0.1; port 0 picks a free one). */
  listen(port?: number, host?: string): Promise<{ host: string; port: number; url: string }>;
  /** Graceful shutdown: refuse new work, finish accepted requests (up to timeoutMs), close every connection. */
  close(opts?: { timeoutMs?: number }): Promise<void>;
  stats(): ServerStats;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/**
 * Reads the body up to `limit` bytes by `deadline` (ms since the epoch; a slow sender gets 408 at `timeoutMs`).
 * A larger body is a 413 that the client must be able to read while it is still sending (closing a socket with
 * unread bytes resets it, and the client sees EPIPE instead of the answer): the body is read on and dropped, the
 * 413 is answered once it has all arrived or is past `respondAt` bytes, and the connection is cut only past
 * `dropAt` bytes or at the deadline.
 */
function readBody(req: IncomingMessage, limit: number, deadline: number, timeoutMs: number): Promise<Buffer> {
  const respondAt = Math.max(4 * limit, 1 << 20), dropAt = Math.max(64 * limit, 64 << 20);
  const tooLarge = (what: string) => new HttpError(413, `request body ${what} is over the limit of ${limit} bytes`, null, 'body_too_large');
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    const chunks: Buffer[] = [];
    let size = 0, done = false;
    const finish = (e: Error | null) => {
      if (done) return;
      done = true;
      if (e) reject(e); else resolve(Buffer.concat(chunks));
    };
    // the deadline holds while the body is read, and also while an oversized one is drained after its 413
    const timer = setTimeout(() => {
      if (done) req.socket?.destroy();
      else finish(new HttpError(408, `the request body did not arrive within the server's limit of ${timeoutMs} ms`, null, 'request_timeout'));
    }, Math.max(0, deadline - Date.now()));
    const stop = () => clearTimeout(timer);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) { chunks.push(c); return; }
      chunks.length = 0; // read on and drop
      if (size > respondAt) finish(tooLarge(`of over ${respondAt} bytes`));
      if (size > dropAt) { stop(); req.socket?.destroy(); }
    });
    req.on('end', () => { stop(); finish(size > limit ? tooLarge(`of ${size} bytes`) : null); });
    // a client that drops the connection mid-body ('aborted', ECONNRESET) is the client's failure, as in 'close'
    req.on('error', (e) => { stop(); finish(new HttpError(400, `the connection failed before the request body was complete (${e.message})`, null, 'incomplete_body')); });
    req.on('close', () => { stop(); finish(new HttpError(400, 'the connection closed before the request body was complete', null, 'incomplete_body')); });
    if (Number.isFinite(declared) && declared > respondAt) finish(tooLarge(`of ${declared} bytes`));
  });
}

const delay = (ms: number) => new Promise<void>((r) => { const t = setTimeout(r, ms); (t as any).unref?.(); });

const SERVER_OPTIONS = new Set(['model', 'tokenizer', 'modelId', 'maxConcurrency', 'queueSize', 'maxTokens', 'bodyLimit', 'requestTimeoutMs',
  'keepAliveTimeoutMs', 'maxConnections', 'shutdownTimeoutMs', 'apiKey', 'drainDelayMs', 'log']);

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A /tokenize piece as llama.cpp's server gives it: the token's text when its bytes are valid UTF-8 on their own,
 * else the array of its byte values. A GPT-2 byte-level token can hold part of a character (🤗 is three tokens):
 * as text each such part would be U+FFFD and the pieces could not be put back together; as bytes they can.
 * Special tokens (<|endoftext|>) are their text.
 */
function tokenPiece(tokenizer: GPT2Tokenizer, id: number): string | number[] {
  const bytes = tokenizer.tokenBytesOf(id);
  try { return STRICT_UTF8.decode(bytes); } catch { return Array.from(bytes); }
}

export function createServer(options: ServerOptions): GPT2Server {
  if (options === null || typeof options !== 'object') throw new OptionError('createServer needs an options object ({ model, tokenizer, ... })');
  // a typo ({ quiet: true }, { max_concurrency: 2 }) would run with the default silently
  checkKnownKeys(options, SERVER_OPTIONS, 'createServer option');
  const { model, tokenizer } = options;
  if (!model || typeof (model as any).decodeStep !== 'function') throw new OptionError('createServer needs { model: GPT2LMHeadModel }');
  if (!tokenizer || typeof (tokenizer as any).encodeAtMost !== 'function') throw new OptionError('createServer needs { tokenizer: GPT2Tokenizer }');
  const modelId = options.modelId ?? 'gpt2';
  const cfg = model.config;
  const tokenizeLimit = 16 * cfg.n_positions;
  const maxTokens = Math.min(options.maxTokens ?? 256, cfg.n_positions - 1);
  const bodyLimit = options.bodyLimit ?? 1 << 20;
  const requestTimeoutMs = options.requestTimeoutMs ?? 120_000;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 65_000;
  const maxConnections = options.maxConnections ?? 1024;
  const log = options.log;
  const drainDelayMs = options.drainDelayMs ?? 0;
  if (options.apiKey !== undefined && (typeof options.apiKey !== 'string' || options.apiKey === '')) throw new OptionError('apiKey must be a non-empty string');
  const keyDigest = options.apiKey !== undefined ? createHash('sha256').update(options.apiKey).digest() : null;
  if (!(maxTokens >= 1)) throw new OptionError(`maxTokens must be at least 1, got ${options.maxTokens}`);
  for (const [k, v, min] of [['bodyLimit', bodyLimit, 1], ['requestTimeoutMs', requestTimeoutMs, 1], ['shutdownTimeoutMs', shutdownTimeoutMs, 0], ['keepAliveTimeoutMs', keepAliveTimeoutMs, 0], ['maxConnections', maxConnections, 1], ['drainDelayMs', drainDelayMs, 0]] as const) {
    if (!Number.isSafeInteger(v) || v < min) throw new OptionError(`${k} must be an integer of at least ${min}, got ${v}`);
  }
  const scheduler = new Scheduler(model, { maxConcurrency: options.maxConcurrency, queueSize: options.queueSize });
  // what /metrics reports beyond the scheduler's counts: answers by route and status, and the latencies clients see
  const answered = new Map<string, number>();
  const ttft = new Histogram(), perToken = new Histogram(), duration = new Histogram();
  // end-of-text ids as generate() resolves them (generation_config.json, then config.json)
  const eos = resolveGenerateOptions(model, { input_ids: null, max_new_tokens: 1, do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, 1).eos;
  const started = Date.now();
  const createdAt = Math.floor(started / 1000);
  let closing = false;
  /** close() was called: /health fails (503) while requests are still served for drainDelayMs. */
  let draining = false;
  let closePromise: Promise<void> | null = null;

  // Slow senders: Node answers 408 when the headers (headersTimeout) or the whole request (requestTimeout) have
  // not arrived in time, checked every connectionsCheckingInterval; readBody() also enforces the deadline itself.
  // headersTimeout is above keepAliveTimeout (as Node advises for reused sockets) unless requestTimeout is lower.
  const http = createHttpServer({
    keepAliveTimeout: keepAliveTimeoutMs,
    requestTimeout: requestTimeoutMs,
    headersTimeout: Math.min(keepAliveTimeoutMs + 1_000, requestTimeoutMs),
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeoutMs / 4))),
  });
  http.maxConnections = maxConnections;

  function stats(): ServerStats {
    return {
      status: closing ? 'shutting_down' : draining ? 'draining' : 'ok', model: modelId, uptime_s: Math.round((Date.now() - started) / 1000),
      max_concurrency: scheduler.maxConcurrency, queue_size: scheduler.queueSize, max_tokens: maxTokens, n_positions: cfg.n_positions,
      threads: model.backend.threads, dtype: model.dtype, wasm: model.backend.variant, ...scheduler.stats(),
    };
  }

  async function completions(req: IncomingMessage, res: ServerResponse, t0: number): Promise<{ status: number; tokens: number }> {
    const body = parseJsonObject(await readBody(req, bodyLimit, t0 + requestTimeoutMs, requestTimeoutMs));
    const p: CompletionParams = parseCompletionRequest(body, { modelId, vocabSize: cfg.vocab_size, maxTokens, openaiExtras: true, maxN: scheduler.maxConcurrency, minTokens: 0, eos });
    const ids = encodePrompt(tokenizer, p.prompt, p.maxTokens, cfg.n_positions);
    if (closing) throw new HttpError(503, 'the server is shutting down', null, 'shutting_down', { connection: 'close' });

    const id = `cmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const promptText = typeof p.prompt === 'string' ? p.prompt : tokenizer.decode(ids, { skip_special_tokens: false });
    const wantLp = p.logprobs !== undefined;
    // per choice: its text (stop sequences cut it), the text so far, its tokens' log-probabilities (held until
    // their text is sent) and those sent so far
    const choices = Array.from({ length: p.n }, () => ({ text: new CompletionText(tokenizer, p.stop), out: '', held: new HeldLogprobs(), sent: [] as LogprobEntry[], last: 0 }));
    let promptLp: LogprobEntry[] = [];
    const usage = (n: number) => ({ prompt_tokens: ids.length, completion_tokens: n, total_tokens: ids.length + n });
    const chunk = (index: number, t: string, finish: string | null, logprobs: unknown = null) => ({ id, object: 'text_completion', created, model: modelId, choices: [{ text: t, index, logprobs, finish_reason: finish }] });
    const sse = (data: unknown) => { if (!res.destroyed && !res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`); };
    let firstToken = true;

    let finish!: (end: JobEnd) => void;
    const ended = new Promise<JobEnd>((resolve) => { finish = resolve; });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const handle = scheduler.submit({ // throws QueueFullError (429) before anything is sent
      prompt: ids, maxTokens: p.maxTokens, sampling: p.sampling, eos, seed: p.seed, n: p.n,
      presencePenalty: p.presencePenalty, frequencyPenalty: p.frequencyPenalty, logitBias: p.logitBias,
      logprobs: p.logprobs, echoLogprobs: p.echo,
      onPrompt(lps) {
        promptLp = promptEntries(tokenizer, ids, lps);
        if (p.stream) for (let c = 0; c < p.n; c++) sse(chunk(c, promptText, null, logprobsObject(tokenizer, promptLp, 0)));
      },
      onToken(tokenId, c, lp) {
        const now = performance.now(), ch = choices[c];
        if (firstToken) { ttft.observe((Date.now() - t0) / 1000); firstToken = false; } else if (ch.last) perToken.observe((now - ch.last) / 1000);
        ch.last = now;
        if (wantLp) ch.held.add({ id: tokenId, lp, offset: ch.text.decodedLength });
        const piece = ch.text.push(tokenId);
        ch.out += piece;
        const lps = wantLp ? ch.held.release(ch.text.sentLength) : [];
        if (!p.stream) ch.sent.push(...lps);
        else if (piece || lps.length) sse(chunk(c, piece, null, wantLp ? logprobsObject(tokenizer, lps, promptText.length) : null));
        return ch.text.stopped;
      },
      onEnd(end) { clearTimeout(timer); finish(end); },
    });
    timer = setTimeout(() => handle.cancel('timeout'), Math.max(0, t0 + requestTimeoutMs - Date.now()));
    (timer as any).unref?.();
    // 'close' before the response is complete: the client went away (or the socket broke)
    res.on('close', () => { if (!res.writableFinished) handle.cancel('disconnected'); });
    if (p.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', ...(closing ? { connection: 'close' } : {}) });
      res.flushHeaders();
      // echo without logprobs: the prompt is the first text of each choice (with logprobs, onPrompt sent it)
      if (p.echo && !wantLp) for (let c = 0; c < p.n; c++) sse(chunk(c, promptText, null));
    }

    const end = await ended;
    if (end.status === 'done') {
      duration.observe((Date.now() - t0) / 1000);
      if (p.stream) {
        choices.forEach((ch, c) => {
          const rest = ch.text.finish();
          sse(chunk(c, rest, end.reasons[c], wantLp ? logprobsObject(tokenizer, ch.held.release(ch.text.sentLength, !ch.text.stopped), promptText.length) : null));
        });
        if (p.includeUsage) sse({ id, object: 'text_completion', created, model: modelId, choices: [], usage: usage(end.tokens) });
        sse('[DONE]');
        res.end();
      } else {
        const out = choices.map((ch, c) => {
          const text = ch.out + ch.text.finish();
          const head = p.echo ? promptText : '';
          let logprobs = null;
          if (wantLp) {
            // the prompt's entries (echoed), then the completion's that went out with its text (a stop sequence cuts both)
            ch.sent.push(...ch.held.release(ch.text.sentLength, !ch.text.stopped));
            const echoed = p.echo ? logprobsObject(tokenizer, promptLp, 0) : null;
            const gen = logprobsObject(tokenizer, ch.sent, promptText.length);
            const part = <K extends keyof typeof gen>(k: K) => [...(echoed ? echoed[k] : []), ...gen[k]];
            logprobs = { tokens: part('tokens'), token_logprobs: part('token_logprobs'), top_logprobs: part('top_logprobs'), text_offset: part('text_offset') };
          }
          return { text: head + text, index: c, logprobs, finish_reason: end.reasons[c] };
        });
        sendJson(res, 200, { id, object: 'text_completion', created, model: modelId, choices: out, usage: usage(end.tokens) });
      }
      return { status: 200, tokens: end.tokens };
    }
    const err = end.status === 'error' ? toHttpError(end.error)
      : end.reason === 'timeout' ? new HttpError(504, `the request took longer than the server's limit of ${requestTimeoutMs} ms`, null, 'timeout')
      : end.reason === 'shutdown' ? new HttpError(503, 'the server shut down before the request finished', null, 'shutting_down')
      : new HttpError(499, 'the client closed the connection', null, 'cancelled');
    if (p.stream) { sse(errorBody(err)); res.end(); }
    else sendJson(res, err.status, errorBody(err), err.headers);
    return { status: err.status, tokens: end.tokens };
  }

  /**
   * llama.cpp's POST /tokenize: { content, with_pieces?, add_special?, parse_special? } → { tokens } (ids, or
   * { id, piece } with pieces: see tokenPiece). Without add_special / parse_special the content is tokenized as a prompt is:
   * the tokenizer's own BOS/EOS (none for GPT-2) are added, and special-token text ("<|endoftext|>") becomes
   * its id unless the tokenizer was configured with split_special_tokens. parse_special: false reads that text
   * as plain text; add_special: false adds no BOS/EOS.
   */
  async function tokenize(req: IncomingMessage, res: ServerResponse, t0: number) {
    const body = parseJsonObject(await readBody(req, bodyLimit, t0 + requestTimeoutMs, requestTimeoutMs));
    if (typeof body.content !== 'string') throw new HttpError(400, 'content must be a string (the text to tokenize)', 'content');
    for (const k of ['with_pieces', 'add_special', 'parse_special']) {
      if (body[k] !== undefined && typeof body[k] !== 'boolean') throw new HttpError(400, `${k} must be true or false, got ${JSON.stringify(body[k])}`, k);
    }
    const opts: { add_special_tokens?: boolean; split_special_tokens?: boolean } = {};
    if (typeof body.add_special === 'boolean') opts.add_special_tokens = body.add_special;
    if (typeof body.parse_special === 'boolean') opts.split_special_tokens = !body.parse_special;
    // with an early stop, as prompts: a huge content gets its 400 at once instead of blocking the other streams
    const ids = tokenizer.encodeAtMost(body.content, tokenizeLimit, opts);
    if (ids === null) throw new HttpError(400, `content has more than ${tokenizeLimit} tokens, the most /tokenize answers (16 × n_positions); send it in parts`, 'content');
    sendJson(res, 200, { tokens: body.with_pieces ? ids.map((i) => ({ id: i, piece: tokenPiece(tokenizer, i) })) : ids });
    return { status: 200, tokens: 0 };
  }

  /** llama.cpp's POST /detokenize: { tokens } → { content }. */
  async function detokenize(req: IncomingMessage, res: ServerResponse, t0: number) {
    const body = parseJsonObject(await readBody(req, bodyLimit, t0 + requestTimeoutMs, requestTimeoutMs));
    const t = body.tokens;
    if (!Array.isArray(t) || !t.every((x) => Number.isSafeInteger(x) && x >= 0 && x < cfg.vocab_size)) {
      throw new HttpError(400, `tokens must be an array of token ids in [0, ${cfg.vocab_size})`, 'tokens');
    }
    sendJson(res, 200, { content: tokenizer.decode(t as number[], { skip_special_tokens: false }) });
    return { status: 200, tokens: 0 };
  }

  function metrics(res: ServerResponse) {
    const s = scheduler.stats(), mem = model.memoryUsage();
    const page = new MetricsPage()
      .counter('gpt2wasm_http_requests_total', 'HTTP requests answered, by route and status code.', [...answered].map(([k, v]) => { const [route, code] = k.split(' '); return [{ route, code }, v]; }))
      .counter('gpt2wasm_completions_total', 'Completion requests that left the scheduler, by outcome (rejected: the queue was full; refused: did not fit in memory).',
        (['completed', 'cancelled', 'failed', 'refused', 'rejected'] as const).map((o) => [{ outcome: o }, s[o]]))
      .counter('gpt2wasm_prompt_tokens_total', 'Prompt tokens prefilled.', s.prompt_tokens)
      .counter('gpt2wasm_generated_tokens_total', 'Tokens generated (all choices).', s.generated_tokens)
      .counter('gpt2wasm_decode_steps_total', 'Batched decode steps run.', s.decode_steps)
      .histogram('gpt2wasm_time_to_first_token_seconds', 'From the request\'s arrival to its first generated token (queueing and prefill included).', ttft)
      .histogram('gpt2wasm_inter_token_latency_seconds', 'Between consecutive tokens of one choice.', perToken)
      .histogram('gpt2wasm_request_duration_seconds', 'From arrival to the end of a completed completion request.', duration)
      .gauge('gpt2wasm_queue_length', 'Completion requests waiting for a slot.', s.queued)
      .gauge('gpt2wasm_active_requests', 'Completion requests running.', s.active)
      .gauge('gpt2wasm_active_sequences', 'Sequences decoding (a request of n choices runs n).', s.active_sequences)
      .gauge('gpt2wasm_max_concurrency', 'Sequences decoded together at most.', scheduler.maxConcurrency)
      .gauge('gpt2wasm_kv_cache_used_bytes', 'KV cache bytes holding tokens of running sequences.', s.kv_cache_used_bytes)
      .gauge('gpt2wasm_kv_cache_reserved_bytes', 'KV cache bytes reserved by running sequences (prompt + max_tokens each).', s.kv_cache_bytes)
      .gauge('gpt2wasm_workspace_reserved_bytes', 'Bytes reserved once for batched decode steps.', s.decode_workspace_bytes)
      .gauge('gpt2wasm_weights_bytes', 'Bytes of the model weights in wasm memory.', mem.weights)
      .gauge('gpt2wasm_wasm_memory_in_use_bytes', 'Bytes of wasm memory allocated (weights, caches, workspaces).', mem.inUse)
      .gauge('gpt2wasm_wasm_memory_bytes', 'Size of the wasm memory (committed pages).', mem.committed)
      .gauge('gpt2wasm_draining', '1 while the server drains before shutdown.', draining || closing ? 1 : 0);
    const text = page.text();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
    return { status: 200, tokens: 0 };
  }

  /** 401 unless the request carries the API key as a bearer token; the digests are compared in constant time. */
  function authorize(req: IncomingMessage): void {
    if (!keyDigest) return;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = createHash('sha256').update(m ? m[1].trim() : '').digest();
    if (!m || !timingSafeEqual(given, keyDigest)) {
      throw new HttpError(401, m ? 'invalid API key' : 'missing API key: send the header `Authorization: Bearer <key>`', null, 'invalid_api_key', { 'www-authenticate': 'Bearer' });
    }
  }

  function models() {
    return { object: 'list', data: [{ id: modelId, object: 'model', created: createdAt, owned_by: 'gpt2-wasm' }] };
  }

  async function route(req: IncomingMessage, res: ServerResponse, t0: number): Promise<{ status: number; tokens: number }> {
    let path: string;
    // the path as sent (not resolved against a base URL, where '//host/v1/models' would become '/v1/models'), as
    // routeOf reads it for /metrics
    const raw = (req.url ?? '/').split('?')[0];
    if (!raw.startsWith('/') || raw.startsWith('//')) throw new HttpError(400, `invalid request URL ${JSON.stringify(req.url)}: the path must start with a single /`, null, 'invalid_url');
    path = raw.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const allow = (methods: string) => {
      if (!methods.split(', ').includes(method) && !(method === 'HEAD' && methods.includes('GET'))) {
        throw new HttpError(405, `${method} ${path}: use ${methods}`, null, 'method_not_allowed', { allow: methods });
      }
    };
    if (path === '/health') {
      allow('GET');
      const s = stats(), status = closing || draining ? 503 : 200;
      sendJson(res, status, s);
      return { status, tokens: 0 };
    }
    authorize(req);
    if (path === '/metrics') { allow('GET'); return metrics(res); }
    if (path === '/tokenize') { allow('POST'); return tokenize(req, res, t0); }
    if (path === '/detokenize') { allow('POST'); return detokenize(req, res, t0); }
    if (path === '/v1/models') { allow('GET'); sendJson(res, 200, models()); return { status: 200, tokens: 0 }; }
    if (path.startsWith('/v1/models/')) {
      allow('GET');
      let name: string;
      try { name = decodeURIComponent(path.slice('/v1/models/'.length)); } catch { throw new HttpError(400, `invalid percent-encoding in ${JSON.stringify(path)}`, null, 'invalid_url'); }
      if (name !== modelId) throw new HttpError(404, `model '${name}' is not served here; this server serves '${modelId}'`, 'model', 'model_not_found');
      sendJson(res, 200, models().data[0]);
      return { status: 200, tokens: 0 };
    }
    if (path === '/v1/completions') { allow('POST'); return completions(req, res, t0); }
    if (path === '/v1/chat/completions') throw new HttpError(404, 'GPT-2 is not a chat model: use POST /v1/completions with a prompt', null, 'not_found');
    // llama.cpp's server routes, for a client written for it
    if (path === '/completion' || path === '/completions' || path === '/v1/completion') {
      throw new HttpError(404, `no route ${path}: llama.cpp's native completion endpoint is not served here; use POST /v1/completions (OpenAI's format: max_tokens for n_predict, the text in choices[0].text)`, null, 'not_found');
    }
    if (path === '/embedding' || path === '/embeddings' || path === '/v1/embedding' || path === '/v1/embeddings') {
      throw new HttpError(404, `no route ${path}: this server computes no embeddings (text completion only: POST /v1/completions)`, null, 'not_found');
    }
    throw new HttpError(404, `no route ${method} ${path} (POST /v1/completions, GET /v1/models, POST /tokenize, POST /detokenize, GET /metrics, GET /health)`, null, 'not_found');
  }

  /** The route label of a request for /metrics: a known path, or 'other' (unbounded paths would be unbounded series). */
  const KNOWN = new Set(['/v1/completions', '/v1/models', '/tokenize', '/detokenize', '/metrics', '/health']);
  const routeOf = (url: string | undefined) => { const p = (url ?? '/').split('?')[0].replace(/\/+$/, ''); return KNOWN.has(p) ? p : p.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other'; };
  const count = (req: IncomingMessage, status: number) => { const k = `${routeOf(req.url)} ${status}`; answered.set(k, (answered.get(k) ?? 0) + 1); };

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const t0 = Date.now();
    if (closing) res.setHeader('connection', 'close');
    route(req, res, t0).then(
      (r) => { count(req, r.status); log?.(`${req.method} ${req.url} ${r.status} ${Date.now() - t0}ms${r.tokens ? ` ${r.tokens} tokens` : ''}`); },
      (e) => {
        const err = toHttpError(e);
        count(req, err.status);
        // a request not read to its end leaves body bytes on the socket: answer, then close the connection; but an
        // oversized body is still being read and dropped (readBody), so that the client sees its 413
        const headers = !req.complete && err.status !== 413 ? { ...err.headers, connection: 'close' } : err.headers;
        sendJson(res, err.status, errorBody(err), headers);
        log?.(`${req.method} ${req.url} ${err.status} ${Date.now() - t0}ms ${err.message}`);
      },
    );
    if (closing) res.on('finish', () => setImmediate(() => http.closeIdleConnections()));
  });
  // Protocol errors, before a request exists: a header or request timeout is 408, oversized headers 431.
  http.on('clientError', (e: NodeJS.ErrnoException, socket) => {
    const [status, reason] = e.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout']
      : e.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large']
      : [400, 'Bad Request'];
    // the error body every other answer has (OpenAI's shape), so a client's parser does not meet an empty 400
    const body = JSON.stringify(errorBody(new HttpError(status, `${reason}: ${e.code ?? e.message}`, null, status === 400 ? 'invalid_request' : status === 408 ? 'request_timeout' : 'headers_too_large')));
    if (socket.writable && !(socket as any)._httpMessage?.headersSent) socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    else socket.destroy();
  });

  return {
    http, scheduler, modelId, stats,
    listen(port = 8080, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        // a port in use or a host that is not this machine's is the caller's option, not an internal failure
        const onError = (e: NodeJS.ErrnoException) => {
          const why = e.code === 'EADDRINUSE' ? 'the port is in use' : e.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
            : e.code === 'ENOTFOUND' || e.code === 'EADDRNOTAVAIL' || e.code === 'EAI_AGAIN' ? 'the host is not an address of this machine' : null;
          reject(why ? new OptionError(`cannot listen on ${host}:${port}: ${why} (${e.code}); choose another port or host`, { cause: e }) : e);
        };
        http.once('error', onError);
        http.listen(port, host, () => {
          http.off('error', onError);
          const a = http.address() as AddressInfo;
          const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
          resolve({ host: a.address, port: a.port, url: `http://${h}:${a.port}` });
        });
      });
    },
    close(opts = {}) {
      if (closePromise) return closePromise;
      draining = true;
      closePromise = (async () => {
        // still serving, but failing /health: the balancer stops sending here before the listener closes
        if (drainDelayMs > 0) await delay(drainDelayMs);
        closing = true;
        const closed = new Promise<void>((r) => { if (http.listening) http.close(() => r()); else r(); });
        http.closeIdleConnections();
        // responses that end from now on close their connection; idle keep-alive sockets are closed as they appear
        const sweep = setInterval(() => http.closeIdleConnections(), 100);
        try {
          const drained = await Promise.race([scheduler.drain().then(() => true), delay(opts.timeoutMs ?? shutdownTimeoutMs).then(() => false)]);
          if (!drained) scheduler.cancelAll('shutdown');
          await Promise.race([closed, delay(2_000)]);
          http.closeAllConnections();
          await closed;
        } finally { clearInterval(sweep); scheduler.dispose(); }
      })();
      return closePromise;
    },
  };
}
