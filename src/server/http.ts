// The HTTP server (node:http, no framework): OpenAI-compatible POST /v1/completions (JSON or server-sent
// events), GET /v1/models, GET /health. Requests are validated here and handed to the continuous-batching
// Scheduler; a client that goes away or runs past the request timeout is cancelled and its cache slot freed.
// close() stops accepting connections, lets the accepted requests finish (up to a deadline), then returns.
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GPT2WasmError } from '../errors.js';
import { resolveGenerateOptions } from '../generation/generate.js';
import type { GPT2LMHeadModel } from '../model/gpt2.js';
import type { GPT2Tokenizer } from '../tokenizer/tokenizer.js';
import { HttpError, parseCompletionRequest, type CompletionParams } from './request.js';
import { QueueFullError, Scheduler, type JobEnd, type SchedulerStats } from './scheduler.js';
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
  /** A request (queue time included) is cancelled after this long (default 120 s): 504, or an error event. */
  requestTimeoutMs?: number;
  /** close() waits this long for accepted requests before cancelling them (default 30 s). */
  shutdownTimeoutMs?: number;
  /** One line per finished request (default: none). */
  log?: (line: string) => void;
}

export interface ServerStats extends SchedulerStats {
  status: 'ok' | 'shutting_down';
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

const errorBody = (e: HttpError) => ({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });

/** Maps what the scheduler or the model threw to an HTTP error. */
function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof QueueFullError) return new HttpError(429, e.message, null, 'queue_full', { 'retry-after': '1' });
  if (e instanceof GPT2WasmError) {
    if (e.code === 'INPUT' || e.code === 'OPTION') return new HttpError(400, e.message, null, e.code.toLowerCase());
    if (e.code === 'MEMORY') return new HttpError(503, `out of memory for this request's KV cache: ${e.message}`, null, 'out_of_memory', { 'retry-after': '1' });
    return new HttpError(500, e.message, null, e.code.toLowerCase());
  }
  return new HttpError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, null, 'internal');
}

/** Reads the body up to `limit` bytes; a larger body is a 413 (decided from Content-Length when it is declared). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) { reject(new HttpError(413, `request body of ${declared} bytes is over the limit of ${limit} bytes`, null, 'body_too_large')); return; }
    const chunks: Buffer[] = [];
    let size = 0, done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) { done = true; reject(new HttpError(413, `request body is over the limit of ${limit} bytes`, null, 'body_too_large')); return; }
      chunks.push(c);
    });
    req.on('end', () => { if (!done) { done = true; resolve(Buffer.concat(chunks)); } });
    req.on('error', (e) => { if (!done) { done = true; reject(e); } });
  });
}

function parseJson(buf: Buffer): Record<string, unknown> {
  let body: unknown;
  try { body = JSON.parse(buf.toString('utf8')); } catch (e) { throw new HttpError(400, `invalid JSON body: ${(e as Error).message}`, null, 'invalid_json'); }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object', null, 'invalid_json');
  return body as Record<string, unknown>;
}

const delay = (ms: number) => new Promise<void>((r) => { const t = setTimeout(r, ms); (t as any).unref?.(); });

export function createServer(options: ServerOptions): GPT2Server {
  const { model, tokenizer } = options;
  if (!model || typeof (model as any).decodeStep !== 'function') throw new TypeError('createServer needs { model: GPT2LMHeadModel }');
  if (!tokenizer) throw new TypeError('createServer needs { tokenizer }');
  const modelId = options.modelId ?? 'gpt2';
  const cfg = model.config;
  const maxTokens = Math.min(options.maxTokens ?? 256, cfg.n_positions - 1);
  const bodyLimit = options.bodyLimit ?? 1 << 20;
  const requestTimeoutMs = options.requestTimeoutMs ?? 120_000;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
  const log = options.log;
  if (!(maxTokens >= 1)) throw new RangeError(`maxTokens must be at least 1, got ${options.maxTokens}`);
  const scheduler = new Scheduler(model, { maxConcurrency: options.maxConcurrency, queueSize: options.queueSize });
  // end-of-text ids as generate() resolves them (generation_config.json, then config.json)
  const eos = resolveGenerateOptions(model, { input_ids: null, max_new_tokens: 1, do_sample: false, temperature: 1, top_k: 0, top_p: 1, repetition_penalty: 1 }, 1).eos;
  const started = Date.now();
  const createdAt = Math.floor(started / 1000);
  let closing = false;
  let closePromise: Promise<void> | null = null;

  const http = createHttpServer({ keepAliveTimeout: 5_000 });
  http.requestTimeout = requestTimeoutMs; // time to receive a whole request (slow senders)
  http.headersTimeout = Math.min(60_000, requestTimeoutMs);

  function stats(): ServerStats {
    return {
      status: closing ? 'shutting_down' : 'ok', model: modelId, uptime_s: Math.round((Date.now() - started) / 1000),
      max_concurrency: scheduler.maxConcurrency, queue_size: scheduler.queueSize, max_tokens: maxTokens, n_positions: cfg.n_positions,
      threads: model.backend.threads, dtype: model.dtype, wasm: model.backend.variant, ...scheduler.stats(),
    };
  }

  async function completions(req: IncomingMessage, res: ServerResponse, t0: number): Promise<{ status: number; tokens: number }> {
    const body = parseJson(await readBody(req, bodyLimit));
    const p: CompletionParams = parseCompletionRequest(body, { modelId, vocabSize: cfg.vocab_size, maxTokens });
    let ids: number[];
    try { ids = typeof p.prompt === 'string' ? tokenizer.encode(p.prompt) : p.prompt; } catch (e) { throw new HttpError(400, `prompt: ${(e as Error).message}`, 'prompt'); }
    if (ids.length === 0) throw new HttpError(400, 'prompt encodes to no tokens', 'prompt');
    if (ids.length + p.maxTokens > cfg.n_positions) {
      throw new HttpError(400, `the prompt has ${ids.length} tokens and max_tokens is ${p.maxTokens}: ${ids.length + p.maxTokens} in all, over the model's context of ${cfg.n_positions} tokens (n_positions); shorten the prompt or lower max_tokens`, 'max_tokens', 'context_length_exceeded');
    }
    if (closing) throw new HttpError(503, 'the server is shutting down', null, 'shutting_down', { connection: 'close' });

    const id = `cmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const text = new CompletionText(tokenizer, p.stop);
    const usage = (n: number) => ({ prompt_tokens: ids.length, completion_tokens: n, total_tokens: ids.length + n });
    const chunk = (t: string, finish: string | null) => ({ id, object: 'text_completion', created, model: modelId, choices: [{ text: t, index: 0, logprobs: null, finish_reason: finish }] });
    const sse = (data: unknown) => { if (!res.destroyed && !res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`); };
    let out = '';

    let finish!: (end: JobEnd) => void;
    const ended = new Promise<JobEnd>((resolve) => { finish = resolve; });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const handle = scheduler.submit({ // throws QueueFullError (429) before anything is sent
      prompt: ids, maxTokens: p.maxTokens, sampling: p.sampling, eos, seed: p.seed,
      onToken(tokenId) {
        const piece = text.push(tokenId);
        if (p.stream) { if (piece) sse(chunk(piece, null)); } else out += piece;
        return text.stopped;
      },
      onEnd(end) { clearTimeout(timer); finish(end); },
    });
    timer = setTimeout(() => handle.cancel('timeout'), requestTimeoutMs);
    (timer as any).unref?.();
    // 'close' before the response is complete: the client went away (or the socket broke)
    res.on('close', () => { if (!res.writableFinished) handle.cancel('disconnected'); });
    if (p.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', ...(closing ? { connection: 'close' } : {}) });
      res.flushHeaders();
    }

    const end = await ended;
    if (end.status === 'done') {
      const rest = text.finish();
      if (p.stream) {
        sse(chunk(rest, end.reason));
        if (p.includeUsage) sse({ id, object: 'text_completion', created, model: modelId, choices: [], usage: usage(end.tokens) });
        sse('[DONE]');
        res.end();
      } else {
        sendJson(res, 200, { id, object: 'text_completion', created, model: modelId, choices: [{ text: out + rest, index: 0, logprobs: null, finish_reason: end.reason }], usage: usage(end.tokens) });
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

  function models() {
    return { object: 'list', data: [{ id: modelId, object: 'model', created: createdAt, owned_by: 'gpt2-wasm' }] };
  }

  async function route(req: IncomingMessage, res: ServerResponse, t0: number): Promise<{ status: number; tokens: number }> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const allow = (methods: string) => {
      if (!methods.split(', ').includes(method) && !(method === 'HEAD' && methods.includes('GET'))) {
        throw new HttpError(405, `${method} ${path}: use ${methods}`, null, 'method_not_allowed', { allow: methods });
      }
    };
    if (path === '/health') {
      allow('GET');
      const s = stats();
      sendJson(res, closing ? 503 : 200, s);
      return { status: closing ? 503 : 200, tokens: 0 };
    }
    if (path === '/v1/models') { allow('GET'); sendJson(res, 200, models()); return { status: 200, tokens: 0 }; }
    if (path.startsWith('/v1/models/')) {
      allow('GET');
      const name = decodeURIComponent(path.slice('/v1/models/'.length));
      if (name !== modelId) throw new HttpError(404, `model '${name}' is not served here; this server serves '${modelId}'`, 'model', 'model_not_found');
      sendJson(res, 200, models().data[0]);
      return { status: 200, tokens: 0 };
    }
    if (path === '/v1/completions') { allow('POST'); return completions(req, res, t0); }
    if (path === '/v1/chat/completions') throw new HttpError(404, 'GPT-2 is not a chat model: use POST /v1/completions with a prompt', null, 'not_found');
    throw new HttpError(404, `no route ${method} ${path} (POST /v1/completions, GET /v1/models, GET /health)`, null, 'not_found');
  }

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const t0 = Date.now();
    if (closing) res.setHeader('connection', 'close');
    route(req, res, t0).then(
      (r) => log?.(`${req.method} ${req.url} ${r.status} ${Date.now() - t0}ms${r.tokens ? ` ${r.tokens} tokens` : ''}`),
      (e) => {
        const err = toHttpError(e);
        // a 413 or a failed read leaves body bytes on the socket: answer, then close the connection
        const headers = err.status === 413 || err.status === 400 && !req.complete ? { ...err.headers, connection: 'close' } : err.headers;
        sendJson(res, err.status, errorBody(err), headers);
        log?.(`${req.method} ${req.url} ${err.status} ${Date.now() - t0}ms ${err.message}`);
      },
    );
    if (closing) res.on('finish', () => setImmediate(() => http.closeIdleConnections()));
  });
  http.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  return {
    http, scheduler, modelId, stats,
    listen(port = 8080, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        const onError = (e: Error) => reject(e);
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
      closing = true;
      closePromise = (async () => {
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
        } finally { clearInterval(sweep); }
      })();
      return closePromise;
    },
  };
}
