// `gpt2-wasm serve`: loads one model and serves it over HTTP until SIGTERM or SIGINT, then shuts down
// gracefully (no new connections, accepted requests finish, the model is freed) and resolves.
import { existsSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { parseArgs, helpFor, HELP_OPTION, MODEL_OPTIONS, modelLoadOptions, type OptionSpec } from '../cli/args.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL, pipeline } from '../generation/pipeline.js';
import { createServer } from './http.js';

export const serveSpecs: Record<string, OptionSpec> = {
  ...MODEL_OPTIONS,
  model_name: { type: 'string', help: 'the name clients send as "model" (default: the Hub id, or the directory name of a local model)' },
  api_key: { type: 'string', help: 'require "Authorization: Bearer <key>" on every route but /health (default: $GPT2WASM_API_KEY; none when unset)' },
  drain_delay_ms: { type: 'int', help: 'on SIGTERM, fail /health this long while still serving, before the listener closes (default 0; set it above the balancer\'s health-check interval x fall count)' },
  host: { type: 'string', help: 'address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)' },
  port: { type: 'int', alias: 'p', help: 'port (default 8080; 0 picks a free port)' },
  max_concurrency: { type: 'int', help: 'sequences decoded together at most (default 8)' },
  queue_size: { type: 'int', help: 'requests waiting for a slot at most; more get 429 (default 32)' },
  max_tokens: { type: 'int', help: 'largest max_tokens a request may ask for (default 256)' },
  body_limit: { type: 'int', help: 'largest request body in bytes (default 1048576)' },
  request_timeout_ms: { type: 'int', help: 'cancel a request after this long, queueing included; a request not received in full by then gets 408 (default 120000)' },
  keep_alive_timeout_ms: { type: 'int', help: 'close an idle keep-alive connection after this long; keep it above the load balancer\'s idle timeout (default 65000)' },
  max_connections: { type: 'int', help: 'open connections at most; more are closed at once (default 1024)' },
  shutdown_timeout_ms: { type: 'int', help: 'on SIGTERM, wait this long for accepted requests (default 30000)' },
  quiet: { type: 'boolean', alias: 'q', help: 'no request log on stderr' },
  help: HELP_OPTION,
};

export const SERVE_USAGE = `gpt2-wasm serve [options]

OpenAI-compatible completions server with continuous batching:
  POST /v1/completions   GET /v1/models   POST /tokenize   POST /detokenize   GET /metrics   GET /health

${helpFor(serveSpecs)}`;

/** The name a model is served under: a Hub id as given, a local directory by its name (never its absolute path). */
export function servedModelName(id: string): string {
  const local = isAbsolute(id) || id.startsWith('.') || id.includes('\\') || existsSync(id);
  return local ? basename(resolve(id)) : id;
}

/** Runs the server until SIGTERM/SIGINT; resolves after the graceful shutdown. */
export async function serve(argv: string[]): Promise<void> {
  const { opts: o, positionals } = parseArgs(argv, serveSpecs, 'serve');
  if (o.help) { console.log(SERVE_USAGE); return; }
  if (positionals.length) throw new OptionError(`serve takes no positional arguments, got ${JSON.stringify(positionals.join(' '))} (use --model)`);
  for (const k of ['max_concurrency', 'max_tokens', 'body_limit', 'request_timeout_ms', 'max_connections'] as const) {
    if (o[k] !== undefined && o[k] < 1) throw new OptionError(`--${k.replace(/_/g, '-')} must be at least 1, got ${o[k]}`);
  }
  for (const k of ['queue_size', 'shutdown_timeout_ms', 'keep_alive_timeout_ms', 'drain_delay_ms'] as const) if (o[k] !== undefined && o[k] < 0) throw new OptionError(`--${k.replace(/_/g, '-')} must be at least 0, got ${o[k]}`);
  if (o.port !== undefined && (o.port < 0 || o.port > 65535)) throw new OptionError(`--port must be from 0 to 65535, got ${o.port}`);
  const say = (s: string) => process.stderr.write(`[gpt2-wasm] ${s}\n`);

  const id: string = o.model ?? DEFAULT_MODEL;
  const apiKey: string | undefined = o.api_key ?? (process.env.GPT2WASM_API_KEY || undefined);
  if (apiKey !== undefined && apiKey.trim() === '') throw new OptionError('--api-key must not be empty');
  const t0 = performance.now();
  // the model and its tokenizer as generate loads them (pipeline: --gguf-file, config.json named first)
  const { model, tokenizer } = await pipeline('text-generation', id, { ...modelLoadOptions(o), gguf_file: o.gguf_file });
  let server;
  try {
    server = createServer({
      model, tokenizer, modelId: o.model_name ?? servedModelName(id), apiKey, drainDelayMs: o.drain_delay_ms,
      maxConcurrency: o.max_concurrency, queueSize: o.queue_size, maxTokens: o.max_tokens, bodyLimit: o.body_limit,
      requestTimeoutMs: o.request_timeout_ms, shutdownTimeoutMs: o.shutdown_timeout_ms,
      keepAliveTimeoutMs: o.keep_alive_timeout_ms, maxConnections: o.max_connections,
      log: o.quiet ? undefined : say,
    });
    const addr = await server.listen(o.port ?? 8080, o.host ?? '127.0.0.1');
    const s = server.stats();
    say(`${s.model} loaded in ${Math.round(performance.now() - t0)} ms (${s.dtype}, ${s.threads} thread${s.threads === 1 ? "" : "s"}, ${s.wasm}); max concurrency ${s.max_concurrency}, queue ${s.queue_size}, max_tokens ${s.max_tokens}`);
    say(`listening on ${addr.url}${apiKey ? ' (API key required)' : ''}`);
  } catch (e) {
    await model.dispose();
    throw e;
  }

  const srv = server;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm); process.off('SIGINT', onInt);
      const st = srv.stats();
      say(`${signal}: shutting down (${st.active} running, ${st.queued} queued; a second signal exits at once)`);
      const again = () => { say('exiting now'); process.exit(130); };
      // after this signal's delivery: Deno hands the signal being delivered to listeners added meanwhile too, so
      // added here, the first SIGTERM was taken for the second (exit 130 at once, streams cut)
      let closed = false;
      setImmediate(() => { if (!closed) { process.once('SIGTERM', again); process.once('SIGINT', again); } });
      srv.close().finally(() => { closed = true; process.off('SIGTERM', again); process.off('SIGINT', again); resolve(); });
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  await model.dispose();
  say('stopped');
}
