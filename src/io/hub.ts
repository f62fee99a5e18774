// Hugging Face Hub resolution (Node): a local directory is used as is; otherwise `org/name@revision` is fetched
// into the standard cache layout ($HF_HOME/hub/models--org--name/{refs,snapshots}/...), so models fetched by
// Python's huggingface_hub are found too, and ours by it.
//
// Downloads stream into `<file>.incomplete`, resume with Range + If-Range after a dropped connection, and are
// renamed into place only once the byte count matches and the content validates (safetensors header and
// offsets, JSON syntax). Nothing here runs at import time; Node modules are imported lazily.
import { DownloadError, GPT2WasmError, OptionError } from '../errors.js';
import { badRelativePath, errMsg, httpFailure } from './files.js';
import { parseSafetensorsIndex, SafetensorsFile, SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE } from './safetensors.js';
import { GGUFFile } from './gguf.js';
import { dirSource, fileSource, type ByteSource, type ModelSource } from './source.js';

export interface DownloadProgress {
  /** Repo-relative file name. */
  file: string;
  loaded: number;
  /** null when the server did not say. */
  total: number | null;
  bytesPerSecond: number;
  done: boolean;
}

export interface ResolveOptions {
  /** Branch, tag or commit; overrides `@revision` in the id. Default "main". */
  revision?: string;
  /** Default $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** The hub cache root (holding models--*). Default $HF_HUB_CACHE or $HF_HOME/hub (HF_HOME: ~/.cache/huggingface). */
  cacheDir?: string;
  /** Bearer token. Default $HF_TOKEN or $HUGGING_FACE_HUB_TOKEN; null sends none. */
  token?: string | null;
  /** Use only the cache. Default: $HF_HUB_OFFLINE is 1/true/yes/on. */
  offline?: boolean;
  fetch?: typeof fetch;
  onProgress?: (p: DownloadProgress) => void;
  /** Progress bar on stderr. Default: only when stderr is a TTY. */
  progress?: boolean;
  /** Extra attempts after a transient failure (network error, 5xx, 429, stall). Default 4. */
  retries?: number;
  /** First retry delay, doubled each time (max 10 s). Default 500 ms. */
  retryDelayMs?: number;
  /** Give up on a request that sends nothing for this long. Default 30 s. */
  timeoutMs?: number;
  /** Require vocab.json and merges.txt. Default true. */
  tokenizer?: boolean;
  signal?: AbortSignal;
  /** Environment to read HF_* variables from. Default process.env. */
  env?: Record<string, string | undefined>;
}

export interface ModelId {
  /** "org/name" or "name". */
  repo: string;
  org: string | null;
  name: string;
  revision: string;
}

const SEGMENT = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;
const COMMIT = /^[0-9a-f]{40}$/;

/** Parse `name`, `org/name` or either with `@revision`; an OptionError explains what is wrong. */
export function parseModelId(id: string, revision?: string): ModelId {
  const fail = (why: string): never => {
    throw new OptionError(
      `${JSON.stringify(id)} is not a local directory nor a valid Hub model id (${why}); expected "name", "org/name" or "org/name@revision", e.g. "openai-community/gpt2"`,
    );
  };
  if (typeof id !== 'string' || id.length === 0) fail('empty');
  const at = id.indexOf('@');
  const repo = at < 0 ? id : id.slice(0, at);
  const rev = revision ?? (at < 0 ? 'main' : id.slice(at + 1));
  const parts = repo.split('/');
  if (parts.length > 2) fail('more than one "/"');
  for (const p of parts) {
    if (!SEGMENT.test(p)) fail(`${JSON.stringify(p)} must be 1-96 letters, digits, "-", "_" or ".", not starting or ending with "-" or "."`);
    if (p.includes('--') || p.includes('..')) fail(`${JSON.stringify(p)} contains "--" or ".."`);
  }
  if (!rev || rev.length > 255 || !/^[A-Za-z0-9._/-]+$/.test(rev) || badRelativePath(rev)) fail(`bad revision ${JSON.stringify(rev)}`);
  return { repo, org: parts.length === 2 ? parts[0] : null, name: parts[parts.length - 1], revision: rev };
}

function envOf(opts: ResolveOptions): Record<string, string | undefined> {
  return opts.env ?? (typeof process !== 'undefined' ? process.env : {});
}

const truthy = (v: string | undefined) => !!v && /^(1|true|yes|on)$/i.test(v.trim());

/** Where the hub cache lives, per options and the HF_* environment. */
export async function hubCacheDir(opts: ResolveOptions = {}): Promise<string> {
  if (opts.cacheDir) return opts.cacheDir;
  const env = envOf(opts);
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  const { join } = await import('node:path');
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  const { homedir } = await import('node:os');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** The cache folder of one repo: models--org--name. */
export function repoFolderName(repo: string): string {
  return `models--${repo.replace('/', '--')}`;
}

// ---------------------------------------------------------------------------------------------------------------

const transientErrors = new WeakSet<object>();
function downloadError(msg: string, transient: boolean, cause?: unknown): DownloadError {
  const e = new DownloadError(msg, cause === undefined ? undefined : { cause });
  if (transient) transientErrors.add(e);
  return e;
}
const isTransient = (e: unknown) => typeof e === 'object' && e !== null && transientErrors.has(e);

interface Ctx {
  id: ModelId;
  endpoint: string;
  token: string | null;
  fetch: typeof fetch;
  retries: number;
  retryDelayMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
  progress: ProgressSink;
}

function fileUrl(ctx: Ctx, rev: string, file: string): string {
  return `${ctx.endpoint}/${ctx.id.repo}/resolve/${encodeURIComponent(rev)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function statusError(ctx: Ctx, file: string, url: string, res: Response): DownloadError {
  const f = httpFailure(res, { repo: ctx.id.repo, revision: ctx.id.revision, tokenSent: !!ctx.token });
  const local = res.headers.get('x-error-code') === 'RepoNotFound' ? ', and no local directory of that name' : '';
  return downloadError(`${file}: ${url}: ${f.reason}${local}`, f.transient);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(downloadError('download aborted', false)); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** fetch() whose signal also fires when nothing arrives for ctx.timeoutMs; `kick()` on each received chunk. */
function timedFetch(ctx: Ctx, url: string, init: RequestInit) {
  const ac = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const kick = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { stalled = true; ac.abort(); }, ctx.timeoutMs);
  };
  const onOuterAbort = () => ac.abort();
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const done = () => { clearTimeout(timer); ctx.signal?.removeEventListener('abort', onOuterAbort); };
  kick();
  const headers: Record<string, string> = { 'user-agent': 'gpt2-wasm', ...(init.headers as Record<string, string>) };
  if (ctx.token) headers.authorization = `Bearer ${ctx.token}`;
  const promise = ctx.fetch(url, { ...init, headers, signal: ac.signal, redirect: 'follow' });
  const explain = (e: unknown, file: string, what: string): DownloadError => {
    if (ctx.signal?.aborted) return downloadError(`${file}: download aborted`, false, e);
    if (stalled) return downloadError(`${file}: ${url}: no data for ${ctx.timeoutMs} ms ${what}`, true, e);
    return downloadError(`${file}: ${url}: ${what}: ${errMsg(e)}${(e as any)?.cause ? ` (${errMsg((e as any).cause)})` : ''}`, true, e);
  };
  return { promise, kick, done, explain };
}

/**
 * Run `fn` with bounded retries on transient failures. `giveUpEarly`, asked once after the first transient failure,
 * can stop the retries (the caller has a cached copy to fall back on).
 */
async function withRetries<T>(ctx: Ctx, file: string, fn: (attempt: number) => Promise<T>, giveUpEarly?: () => Promise<boolean>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      const early = attempt === 0 && isTransient(e) && giveUpEarly ? await giveUpEarly() : false;
      if (early || !isTransient(e) || attempt >= ctx.retries || ctx.signal?.aborted) {
        if (isTransient(e) && attempt > 0 && e instanceof DownloadError) {
          e.message += ` (gave up after ${attempt + 1} attempts)`;
        }
        throw e;
      }
      const delay = Math.min(10_000, ctx.retryDelayMs * 2 ** attempt);
      await sleep(delay, ctx.signal);
    }
  }
}

/** HEAD config.json (or `file`) to learn the commit the revision points at (and whether the repo is reachable). */
async function discoverCommit(ctx: Ctx, giveUpEarly?: () => Promise<boolean>, file = 'config.json'): Promise<string | null> {
  const url = fileUrl(ctx, ctx.id.revision, file);
  return withRetries(ctx, file, async () => {
    const t = timedFetch(ctx, url, { method: 'HEAD' });
    let res: Response;
    try {
      res = await t.promise;
    } catch (e) {
      throw t.explain(e, file, 'request failed');
    } finally {
      t.done();
    }
    // A plain mirror may not answer HEAD; the files themselves will tell whether the repo is there.
    if (res.status === 405 || res.status === 501) return null;
    if (!res.ok) throw statusError(ctx, file, url, res);
    const commit = res.headers.get('x-repo-commit');
    return commit && COMMIT.test(commit) ? commit : null;
  }, giveUpEarly);
}

// ---------------------------------------------------------------------------------------------------------------
// Progress

interface ProgressSink {
  update(p: DownloadProgress): void;
}

function makeProgress(opts: ResolveOptions): ProgressSink {
  const stderr = typeof process !== 'undefined' ? process.stderr : undefined;
  const bar = opts.progress ?? !!stderr?.isTTY;
  let lastDraw = 0;
  return {
    update(p) {
      opts.onProgress?.(p);
      if (!bar || !stderr) return;
      const now = Date.now();
      if (!p.done && now - lastDraw < 100) return;
      lastDraw = now;
      const mb = (n: number) => (n / 1e6).toFixed(1);
      const pct = p.total ? Math.floor((100 * p.loaded) / p.total) : null;
      const width = 24;
      const fill = pct === null ? 0 : Math.round((pct / 100) * width);
      const line =
        `${p.file} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${pct === null ? '  ?' : String(pct).padStart(3)}% ` +
        `${mb(p.loaded)}${p.total ? '/' + mb(p.total) : ''} MB ${mb(p.bytesPerSecond)} MB/s`;
      stderr.write(`\r\x1b[K${line}${p.done ? '\n' : ''}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// One file

interface PartialMeta {
  url: string;
  etag: string | null;
  lastModified: string | null;
  total: number | null;
}

async function fileSize(path: string): Promise<number | null> {
  const fs = await import('node:fs/promises');
  try {
    return (await fs.stat(path)).size;
  } catch {
    return null;
  }
}

async function readMeta(path: string): Promise<PartialMeta | null> {
  const fs = await import('node:fs/promises');
  try {
    return JSON.parse(await fs.readFile(path, 'utf8'));
  } catch {
    return null;
  }
}

/** Check a finished download before it goes into the cache; returns a reason it is bad, or null. */
async function validateDownload(file: string, path: string): Promise<string | null> {
  // a weights file: its header must parse (sizes, offsets within the file)
  const parseHeader = file.endsWith('.safetensors') ? (s: ByteSource) => SafetensorsFile.open(s)
    : file.endsWith('.gguf') ? (s: ByteSource) => GGUFFile.open(s) : null;
  if (parseHeader) {
    let src;
    try {
      src = await fileSource(path);
      await parseHeader(src);
      return null;
    } catch (e) {
      return errMsg(e);
    } finally {
      await src?.close?.();
    }
  }
  if (file.endsWith('.json')) {
    const fs = await import('node:fs/promises');
    try {
      JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await fs.readFile(path)));
      return null;
    } catch (e) {
      return `not valid JSON: ${errMsg(e)}`;
    }
  }
  return null;
}

/**
 * Download `file` at revision `rev` to `dest`, resuming from `dest.incomplete`. Returns false when the server
 * says 404 and `optional` is set.
 */
async function downloadFile(ctx: Ctx, rev: string, file: string, dest: string, optional: boolean): Promise<boolean> {
  const fs = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  const url = fileUrl(ctx, rev, file);
  const tmp = `${dest}.incomplete`;
  const metaPath = `${dest}.incomplete.json`;
  await fs.mkdir(dirname(dest), { recursive: true });
  let restarted = false;

  const discard = async () => {
    await fs.rm(tmp, { force: true });
    await fs.rm(metaPath, { force: true });
  };

  return withRetries(ctx, file, async () => {
    for (;;) {
      let have = (await fileSize(tmp)) ?? 0;
      const meta = have > 0 ? await readMeta(metaPath) : null;
      if (meta && meta.url !== url) { await discard(); have = 0; }
      const headers: Record<string, string> = { 'accept-encoding': 'identity' };
      if (have > 0) {
        headers.range = `bytes=${have}-`;
        const validator = meta?.etag && !meta.etag.startsWith('W/') ? meta.etag : meta?.lastModified;
        if (validator) headers['if-range'] = validator;
      }
      const t = timedFetch(ctx, url, { method: 'GET', headers });
      let res: Response;
      try {
        res = await t.promise;
      } catch (e) {
        t.done();
        throw t.explain(e, file, 'request failed');
      }
      try {
        if (res.status === 416 && have > 0) {
          // Our partial file is at least as long as the server's: complete if the length matches, else start over.
          await res.body?.cancel().catch(() => {});
          const total = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
          if (!(total && Number(total[1]) === have)) { await discard(); continue; }
        } else {
          if (optional && httpFailure(res, { tokenSent: !!ctx.token }).missing) {
            await res.body?.cancel().catch(() => {});
            return false;
          }
          if (!res.ok) {
            await res.body?.cancel().catch(() => {});
            throw statusError(ctx, file, url, res);
          }
          let total: number | null;
          let append = false;
          if (res.status === 206) {
            const m = /^bytes (\d+)-(\d+)\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
            if (!m || Number(m[1]) !== have || (meta?.total != null && Number(m[3]) !== meta.total)) {
              // Not the continuation we asked for (or the file changed size): start over.
              await res.body?.cancel().catch(() => {});
              await discard();
              continue;
            }
            total = Number(m[3]);
            append = true;
          } else {
            have = 0;
            const len = res.headers.get('content-length');
            total = len !== null && /^\d+$/.test(len) && !res.headers.get('content-encoding') ? Number(len) : null;
          }
          const newMeta: PartialMeta = { url, etag: res.headers.get('etag'), lastModified: res.headers.get('last-modified'), total };
          await fs.writeFile(metaPath, JSON.stringify(newMeta));
          const fh = await fs.open(tmp, append ? 'a' : 'w');
          let loaded = have;
          const started = Date.now();
          const report = (done: boolean) => {
            const secs = Math.max(1e-3, (Date.now() - started) / 1000);
            ctx.progress.update({ file, loaded, total, bytesPerSecond: (loaded - have) / secs, done });
          };
          try {
            if (!res.body) throw downloadError(`${file}: ${url}: empty response body`, true);
            const reader = res.body.getReader();
            for (;;) {
              let chunk: ReadableStreamReadResult<Uint8Array>;
              try {
                chunk = await reader.read();
              } catch (e) {
                throw t.explain(e, file, `connection lost after ${loaded}${total ? ` of ${total}` : ''} bytes`);
              }
              if (chunk.done) break;
              t.kick();
              await fh.write(chunk.value);
              loaded += chunk.value.byteLength;
              if (total !== null && loaded > total) throw downloadError(`${file}: ${url}: server sent more than the ${total} bytes it announced`, true);
              report(false);
            }
          } finally {
            await fh.close();
          }
          if (total !== null && loaded !== total) {
            throw downloadError(`${file}: ${url}: transfer ended after ${loaded} of ${total} bytes`, true);
          }
          report(true);
        }
      } catch (e) {
        if (e instanceof GPT2WasmError) throw e;
        throw downloadError(`${file}: ${url}: ${errMsg(e)}`, true, e);
      } finally {
        t.done();
      }
      const bad = await validateDownload(file, tmp);
      if (bad) {
        await discard();
        if (!restarted) { restarted = true; continue; } // perhaps a resume stitched two versions together
        throw downloadError(`${file}: downloaded from ${url} but it is invalid: ${bad}`, false);
      }
      await fs.rename(tmp, dest);
      await fs.rm(metaPath, { force: true });
      return true;
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// A whole model

const REQUIRED_TOKENIZER = ['vocab.json', 'merges.txt'];
const OPTIONAL = ['tokenizer.json', 'generation_config.json'];

async function exists(path: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  try {
    return (await fs.stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readShardNames(indexPath: string): Promise<string[]> {
  const fs = await import('node:fs/promises');
  let json: unknown;
  try {
    json = JSON.parse(await fs.readFile(indexPath, 'utf8'));
  } catch (e) {
    throw downloadError(`${indexPath}: invalid JSON: ${errMsg(e)}`, false, e);
  }
  return [...new Set(parseSafetensorsIndex(json, indexPath).values())];
}

/** The snapshot folder that offline mode would use, or null. */
async function cachedSnapshot(repoDir: string, revision: string): Promise<string> {
  const fs = await import('node:fs/promises');
  const { join } = await import('node:path');
  if (COMMIT.test(revision)) return join(repoDir, 'snapshots', revision);
  try {
    const commit = (await fs.readFile(join(repoDir, 'refs', revision), 'utf8')).trim();
    if (COMMIT.test(commit)) return join(repoDir, 'snapshots', commit);
  } catch {}
  return join(repoDir, 'snapshots', revision);
}

/** Check that a cached snapshot has everything we need; returns the first missing file or null. */
async function missingFromSnapshot(dir: string, wantTokenizer: boolean): Promise<string | null> {
  const { join } = await import('node:path');
  if (!(await exists(join(dir, 'config.json')))) return 'config.json';
  if (!(await exists(join(dir, SAFETENSORS_FILE)))) {
    if (!(await exists(join(dir, SAFETENSORS_INDEX_FILE)))) return SAFETENSORS_FILE;
    for (const s of await readShardNames(join(dir, SAFETENSORS_INDEX_FILE))) if (!(await exists(join(dir, s)))) return s;
  }
  if (wantTokenizer) for (const f of REQUIRED_TOKENIZER) if (!(await exists(join(dir, f)))) return f;
  return null;
}

/**
 * A model directory for `idOrDir`: the directory itself if it exists, else the Hub model of that id, downloaded
 * into the cache as needed (or found there in offline mode).
 */
export async function resolveModel(idOrDir: string, opts: ResolveOptions = {}): Promise<ModelSource> {
  const fs = await import('node:fs/promises');
  const { join, resolve } = await import('node:path');
  try {
    const st = await fs.stat(idOrDir);
    if (st.isDirectory()) return dirSource(resolve(idOrDir));
    throw new OptionError(`${idOrDir} is a file; expected a model directory or a Hub model id`);
  } catch (e) {
    if (e instanceof OptionError) throw e;
  }
  const id = parseModelId(idOrDir, opts.revision);
  const env = envOf(opts);
  const offline = opts.offline ?? truthy(env.HF_HUB_OFFLINE);
  const wantTokenizer = opts.tokenizer !== false;
  const repoDir = join(await hubCacheDir(opts), repoFolderName(id.repo));
  const offlineResolve = async (why: string): Promise<ModelSource> => {
    const snap = await cachedSnapshot(repoDir, id.revision);
    const missing = await missingFromSnapshot(snap, wantTokenizer);
    if (missing) {
      throw downloadError(`${why}, and ${missing} of ${id.repo}@${id.revision} is not in the cache (${join(snap, missing)}); run once online (unset HF_HUB_OFFLINE), or pass a local model directory (CLI: --model DIR)`, false);
    }
    return dirSource(snap);
  };
  if (offline) return offlineResolve('offline mode (HF_HUB_OFFLINE=1)');

  const ctx = hubContext(id, opts);

  // As huggingface_hub: when the Hub cannot be reached (or fails) and a complete snapshot is cached, use it at
  // once rather than after the retries; with nothing cached, retry, then say how to work without the network.
  let cached: ModelSource | null = null;
  const useCache = async () => {
    cached = await offlineResolve('the Hub is unreachable').catch(() => null);
    return cached !== null;
  };
  let commit: string | null;
  try {
    commit = await discoverCommit(ctx, useCache);
  } catch (e) {
    if (cached) return cached;
    if (isTransient(e) && e instanceof DownloadError) {
      e.message += `; ${id.repo}@${id.revision} is not (completely) in the cache (${repoDir}): to work without the network, pass a local ` +
        'model directory (CLI: --model DIR), or download it once and then set HF_HUB_OFFLINE=1';
    }
    throw e;
  }
  const rev = commit ?? id.revision;
  const snap = join(repoDir, 'snapshots', rev);
  await fs.mkdir(snap, { recursive: true });
  if (commit && commit !== id.revision) {
    const refPath = join(repoDir, 'refs', id.revision);
    await fs.mkdir(join(refPath, '..'), { recursive: true });
    await fs.writeFile(refPath, commit);
  }

  const get = async (file: string, optional: boolean): Promise<boolean> => {
    const bad = badRelativePath(file);
    if (bad) throw downloadError(`${id.repo}: refusing to download ${JSON.stringify(file)}: ${bad}`, false);
    const dest = join(snap, file);
    if (await exists(dest)) return true;
    return downloadFile(ctx, rev, file, dest, optional);
  };

  await get('config.json', false);
  const haveSingle = (await exists(join(snap, SAFETENSORS_FILE))) || (!(await exists(join(snap, SAFETENSORS_INDEX_FILE))) && (await get(SAFETENSORS_FILE, true)));
  if (!haveSingle) {
    if (!(await get(SAFETENSORS_INDEX_FILE, true))) {
      throw downloadError(
        `${id.repo}@${id.revision} has neither ${SAFETENSORS_FILE} nor ${SAFETENSORS_INDEX_FILE} (HTTP 404 for both); only safetensors checkpoints are supported`,
        false,
      );
    }
    for (const shard of await readShardNames(join(snap, SAFETENSORS_INDEX_FILE))) await get(shard, false);
  }
  if (wantTokenizer) for (const f of REQUIRED_TOKENIZER) await get(f, false);
  for (const f of OPTIONAL) await get(f, true);
  return dirSource(snap);
}

function hubContext(id: ModelId, opts: ResolveOptions): Ctx {
  const env = envOf(opts);
  const fetchFn = opts.fetch ?? (globalThis as any).fetch;
  if (typeof fetchFn !== 'function') throw new DownloadError('no global fetch() in this runtime (Node >= 20 needed) and no options.fetch');
  const tokenRaw = opts.token === undefined ? env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || null : opts.token;
  return {
    id,
    endpoint: (opts.endpoint ?? env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''),
    token: tokenRaw || null,
    fetch: fetchFn,
    retries: opts.retries ?? 4,
    retryDelayMs: opts.retryDelayMs ?? 500,
    timeoutMs: opts.timeoutMs ?? 30_000,
    signal: opts.signal,
    progress: makeProgress(opts),
  };
}

/**
 * The local path of one file of a Hub repo (e.g. a .gguf), downloaded into the same cache as whole models
 * (resumable, validated, offline from the cache). The repo needs no config.json.
 */
export async function resolveHubFile(repoId: string, file: string, opts: ResolveOptions = {}): Promise<string> {
  const { join } = await import('node:path');
  const fs = await import('node:fs/promises');
  const bad = badRelativePath(file);
  if (bad) throw new OptionError(`invalid file name ${JSON.stringify(file)}: ${bad}`);
  const id = parseModelId(repoId, opts.revision);
  const repoDir = join(await hubCacheDir(opts), repoFolderName(id.repo));
  const fromCache = async (why: string): Promise<string> => {
    const path = join(await cachedSnapshot(repoDir, id.revision), file);
    if (await exists(path)) return path;
    throw downloadError(`${why}, and ${file} of ${id.repo}@${id.revision} is not in the cache (${path}); run once online, or unset HF_HUB_OFFLINE`, false);
  };
  if (opts.offline ?? truthy(envOf(opts).HF_HUB_OFFLINE)) return fromCache('offline mode (HF_HUB_OFFLINE=1)');
  const ctx = hubContext(id, opts);
  let commit: string | null;
  try {
    commit = await discoverCommit(ctx, undefined, file);
  } catch (e) {
    if (isTransient(e)) {
      try { return await fromCache('the Hub is unreachable'); } catch {}
    }
    throw e;
  }
  const rev = commit ?? id.revision;
  const snap = join(repoDir, 'snapshots', rev);
  if (commit && commit !== id.revision) {
    const refPath = join(repoDir, 'refs', id.revision);
    await fs.mkdir(join(refPath, '..'), { recursive: true });
    await fs.writeFile(refPath, commit);
  }
  const dest = join(snap, file);
  if (!(await exists(dest))) await downloadFile(ctx, rev, file, dest, false);
  return dest;
}
