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

/** Why a resolve is offline and how to go online, for its messages: the caller's option (local_files_only) or the
 *  environment. */
const offlineReason = (option: boolean | undefined) => option
  ? { why: 'local_files_only is set', online: 'run once online (without local_files_only)' }
  : { why: 'offline mode (HF_HUB_OFFLINE=1)', online: 'run once online (unset HF_HUB_OFFLINE)' };

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
/** How long the server asked us to wait (Retry-After on 429/503), per error. */
const retryAfterMs = new WeakMap<object, number>();
function downloadError(msg: string, transient: boolean, cause?: unknown): DownloadError {
  const e = new DownloadError(msg, cause === undefined ? undefined : { cause });
  if (transient) transientErrors.add(e);
  return e;
}
const isTransient = (e: unknown) => typeof e === 'object' && e !== null && transientErrors.has(e);

/** Longest wait a Retry-After header can impose. */
const MAX_RETRY_AFTER_MS = 30_000;
/** More redirects than this is a loop: a permanent error. */
const MAX_REDIRECTS = 20;

/** What the Hub says about one file at the pinned revision (HEAD, or the headers of the GET). */
interface RemoteInfo {
  /** Byte size: X-Linked-Size (LFS files), else the Content-Length of an uncompressed 200; null when unknown. */
  size: number | null;
  /** sha256 of the content, from an LFS file's X-Linked-ETag; null when unknown. */
  sha256: string | null;
  /** A small (non-LFS) file's git blob id (SHA-1 of "blob <size>\0" + content): the Hub's ETag for it; null when
   *  unknown or when the server is not seen to be a Hub (no X-Repo-Commit: a mirror's 40-hex ETag may mean
   *  anything). */
  gitSha1: string | null;
}

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
  /** HEAD results already known, per repo-relative file name. */
  heads: Map<string, RemoteInfo>;
}

function fileUrl(ctx: Ctx, rev: string, file: string): string {
  return `${ctx.endpoint}/${ctx.id.repo}/resolve/${encodeURIComponent(rev)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function statusError(ctx: Ctx, file: string, url: string, res: Response): DownloadError {
  const f = httpFailure(res, { repo: ctx.id.repo, revision: ctx.id.revision, tokenSent: !!ctx.token });
  const local = res.headers.get('x-error-code') === 'RepoNotFound' ? ', and no local directory of that name' : '';
  const e = downloadError(`${file}: ${url}: ${f.reason}${local}`, f.transient);
  const ra = res.headers.get('retry-after')?.trim();
  if (f.transient && ra) {
    const secs = /^\d+$/.test(ra) ? Number(ra) : (Date.parse(ra) - Date.now()) / 1000;
    if (Number.isFinite(secs) && secs > 0) retryAfterMs.set(e, Math.min(MAX_RETRY_AFTER_MS, secs * 1000));
  }
  return e;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) { reject(downloadError('download aborted', false)); return; }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(downloadError('download aborted', false)); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const REDIRECT = new Set([301, 302, 303, 307, 308]);

/** The sha256 an X-Linked-ETag names (LFS files), or null. */
function sha256Of(etag: string | null): string | null {
  const m = /^"?([0-9a-fA-F]{64})"?$/.exec(etag?.trim() ?? '');
  return m ? m[1].toLowerCase() : null;
}

/**
 * fetch() whose signal also fires when nothing arrives for ctx.timeoutMs; `kick()` on each received chunk.
 * Redirects are followed here (at most MAX_REDIRECTS), so that the Hub's X-Linked-* headers on the redirect to the
 * CDN are seen (`linked`), and the token goes only to the endpoint's own origin.
 */
function timedFetch(ctx: Ctx, file: string, url: string, init: RequestInit) {
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
  /** Drop the connection (error paths). */
  const abort = () => { done(); ac.abort(); };
  kick();
  const linked = { size: null as number | null, etag: null as string | null, commit: null as string | null };
  const note = (res: Response) => {
    const size = res.headers.get('x-linked-size');
    if (linked.size === null && size && /^\d+$/.test(size.trim())) linked.size = Number(size);
    linked.etag ??= res.headers.get('x-linked-etag');
    linked.commit ??= res.headers.get('x-repo-commit');
  };
  const origin = new URL(url).origin;
  const promise = (async () => {
    let cur = url;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'user-agent': 'gpt2-wasm', ...(init.headers as Record<string, string>) };
      if (ctx.token && new URL(cur).origin === origin) headers.authorization = `Bearer ${ctx.token}`;
      const res = await ctx.fetch(cur, { ...init, headers, signal: ac.signal, redirect: 'manual' });
      // A fetch() that hides redirects (as browsers do): let it follow them itself.
      if (res.type === 'opaqueredirect') return ctx.fetch(cur, { ...init, headers, signal: ac.signal, redirect: 'follow' });
      note(res);
      const loc = res.headers.get('location');
      if (!REDIRECT.has(res.status) || !loc) return res;
      await res.body?.cancel().catch(() => {});
      const next = new URL(loc, cur).href;
      if (hops >= MAX_REDIRECTS) {
        throw downloadError(`${file}: ${url}: more than ${MAX_REDIRECTS} redirects (a redirect loop; the last to ${next})`, false);
      }
      cur = next;
    }
  })();
  const explain = (e: unknown, what: string): DownloadError => {
    if (ctx.signal?.aborted) return downloadError(`${file}: download aborted`, false, e);
    if (e instanceof DownloadError) return e;
    if (stalled) return downloadError(`${file}: ${url}: no data for ${ctx.timeoutMs} ms ${what}`, true, e);
    return downloadError(`${file}: ${url}: ${what}: ${errMsg(e)}${(e as any)?.cause ? ` (${errMsg((e as any).cause)})` : ''}`, true, e);
  };
  return { promise, kick, done, abort, explain, linked };
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
      const delay = Math.max(Math.min(10_000, ctx.retryDelayMs * 2 ** attempt), retryAfterMs.get(e as object) ?? 0);
      await sleep(delay, ctx.signal);
    }
  }
}

/** What a HEAD (or GET) response and its redirects say about the file. */
function remoteInfo(res: Response, linked: { size: number | null; etag: string | null }): RemoteInfo {
  const len = res.headers.get('content-length');
  const plain = res.status === 200 && len !== null && /^\d+$/.test(len.trim()) && !res.headers.get('content-encoding');
  const sha256 = sha256Of(linked.etag);
  const own = /^"([0-9a-f]{40})"$/.exec(res.headers.get('etag')?.trim() ?? '');
  const hub = res.headers.get('x-repo-commit') !== null;
  return { size: linked.size ?? (plain ? Number(len) : null), sha256, gitSha1: !linked.etag && hub && own ? own[1] : null };
}

const UNKNOWN: RemoteInfo = { size: null, sha256: null, gitSha1: null };

/** HEAD config.json (or `file`) to learn the commit the revision points at (and whether the repo is reachable). */
async function discoverCommit(ctx: Ctx, giveUpEarly?: () => Promise<boolean>, file = 'config.json'): Promise<string | null> {
  const url = fileUrl(ctx, ctx.id.revision, file);
  return withRetries(ctx, file, async () => {
    const { res, linked } = await head(ctx, file, url);
    // A plain mirror may not answer HEAD; the files themselves will tell whether the repo is there.
    if (res.status === 405 || res.status === 501) return null;
    if (!res.ok) throw statusError(ctx, file, url, res);
    const commit = linked.commit;
    if (commit && COMMIT.test(commit)) {
      ctx.heads.set(file, remoteInfo(res, linked));
      return commit;
    }
    return null;
  }, giveUpEarly);
}

/** One HEAD request for `file` (redirects followed, the linked headers collected); its body, if any, cancelled. */
async function head(ctx: Ctx, file: string, url: string): Promise<{ res: Response; linked: ReturnType<typeof timedFetch>['linked'] }> {
  const t = timedFetch(ctx, file, url, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
  let res: Response;
  try {
    res = await t.promise;
  } catch (e) {
    throw t.explain(e, 'request failed');
  } finally {
    t.done();
  }
  await res.body?.cancel().catch(() => {});
  return { res, linked: t.linked };
}

/** HEAD one file at `rev`: what to expect of it, or 'missing' (only when `optional`; else a 404 throws). */
async function headFile(ctx: Ctx, rev: string, file: string, optional: boolean): Promise<RemoteInfo | 'missing'> {
  const known = ctx.heads.get(file);
  if (known) return known;
  const url = fileUrl(ctx, rev, file);
  const { res, linked } = await head(ctx, file, url);
  if (res.status === 405 || res.status === 501) return UNKNOWN;
  if (!res.ok) {
    if (optional && httpFailure(res, { tokenSent: !!ctx.token }).missing) return 'missing';
    throw statusError(ctx, file, url, res);
  }
  const info = remoteInfo(res, linked);
  ctx.heads.set(file, info);
  return info;
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

/** The size of the regular file at `path` (following symlinks), or null when there is none. */
async function fileSize(path: string): Promise<number | null> {
  const fs = await import('node:fs/promises');
  try {
    const st = await fs.stat(path);
    return st.isFile() ? st.size : null;
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

/** The hex digest of a file's bytes after `prefix`. */
async function hashFile(path: string, algorithm: 'sha256' | 'sha1', prefix = ''): Promise<string> {
  const { createHash } = await import('node:crypto');
  const { createReadStream } = await import('node:fs');
  const h = createHash(algorithm).update(prefix);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Uint8Array);
  return h.digest('hex');
}
const sha256File = (path: string) => hashFile(path, 'sha256');
/** git's object id of a file of `size` bytes as a blob. */
const gitBlobSha1File = (path: string, size: number) => hashFile(path, 'sha1', `blob ${size}\0`);

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

// Several processes (or several resolves in one process) may fetch the same file into one cache: `<file>.lock`,
// created exclusively and holding host, pid and a random token, lets one of them download (into the resumable
// `<file>.incomplete`) and rename it into place while the others wait. The holder touches the lock every
// LOCK_REFRESH_MS; a lock whose process is gone (same host) or that was not touched for LOCK_STALE_MS is broken.
const LOCK_REFRESH_MS = 5_000;
const LOCK_STALE_MS = 60_000;
const LOCK_POLL_MS = 100;
/** Waiting this long for another holder's lock prints one line naming it (a wait of up to LOCK_STALE_MS, or as long
 *  as a live download, would otherwise look like a hang). */
const LOCK_WARN_MS = 3_000;

const randomHex = () => Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException)?.code === 'EPERM';
  }
}

/** Remove the lock at `path` if its holder is gone; false when it is live (or already gone). */
async function breakStaleLock(path: string): Promise<void> {
  const fs = await import('node:fs/promises');
  const { hostname } = await import('node:os');
  let content: string;
  let age: number;
  try {
    age = Date.now() - (await fs.stat(path)).mtimeMs;
    content = await fs.readFile(path, 'utf8');
  } catch {
    return;
  }
  const [host, pidText] = content.split(' ');
  const pid = Number(pidText);
  const dead = host === hostname() && Number.isInteger(pid) && pid > 0 && !pidAlive(pid);
  if (!dead && age < LOCK_STALE_MS) return;
  // Move it aside atomically; if what was moved is not the lock judged stale (someone took it meanwhile), put it back.
  const aside = `${path}.${process.pid}.${randomHex()}.stale`;
  try {
    await fs.rename(path, aside);
  } catch {
    return;
  }
  try {
    if ((await fs.readFile(aside, 'utf8')) !== content) await fs.link(aside, path).catch(() => {});
  } catch {}
  await fs.rm(aside, { force: true }).catch(() => {});
}

/** Take `<dest>.lock`, waiting while another live holder has it. */
async function takeLock(ctx: Ctx, file: string, path: string): Promise<{ release: () => Promise<void> }> {
  const fs = await import('node:fs/promises');
  const { hostname } = await import('node:os');
  const token = `${hostname()} ${process.pid} ${randomHex()}`;
  const t0 = Date.now();
  let warned = false;
  for (;;) {
    try {
      await fs.writeFile(path, token, { flag: 'wx' });
      const timer = setInterval(() => {
        const now = new Date();
        fs.utimes(path, now, now).catch(() => {});
      }, LOCK_REFRESH_MS);
      (timer as any).unref?.();
      const release = async () => {
        clearInterval(timer);
        try {
          if ((await fs.readFile(path, 'utf8')) === token) await fs.rm(path, { force: true });
        } catch {}
      };
      return { release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException)?.code !== 'EEXIST') throw downloadError(`${file}: cannot create the lock file ${path}: ${errMsg(e)}`, false, e);
    }
    await breakStaleLock(path);
    if (!warned && Date.now() - t0 >= LOCK_WARN_MS) {
      warned = true;
      const holder = (await fs.readFile(path, 'utf8').catch(() => '')).split(' ');
      console.warn(`gpt2-wasm: waiting for ${path}: another download of ${file} holds it (host ${holder[0] || '?'}, pid ${holder[1] || '?'}); ` +
        `the wait ends when it finishes, when that process is gone (same host), or ${LOCK_STALE_MS / 1000} s after the lock was last updated`);
    }
    await sleep(LOCK_POLL_MS, ctx.signal);
  }
}

/**
 * Download `file` at revision `rev` to `dest` (replacing it), resuming from `dest.incomplete`. `info` is what the
 * HEAD said: the result must have that size and sha256 when they are known. Returns false when the server says
 * 404 and `optional` is set.
 */
async function downloadFile(ctx: Ctx, rev: string, file: string, dest: string, optional: boolean, info: RemoteInfo = UNKNOWN): Promise<boolean> {
  const fs = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  const url = fileUrl(ctx, rev, file);
  const tmp = `${dest}.incomplete`;
  const metaPath = `${dest}.incomplete.json`;
  try {
    await fs.mkdir(dirname(dest), { recursive: true });
  } catch (e) {
    throw downloadError(`${file}: cannot create the cache folder ${dirname(dest)}: ${errMsg(e)}`, false, e);
  }
  const lock = await takeLock(ctx, file, `${dest}.lock`);
  try {
    // Another process (or resolve) may have fetched the file since the caller looked: while we waited for the lock,
    // or before we asked for it (then the lock was free and we did not wait). The caller found no copy of that size.
    const size = await fileSize(dest);
    if (size !== null && (info.size === null || size === info.size)) return true;
    return await fetchLocked();
  } catch (e) {
    if (e instanceof GPT2WasmError) throw e;
    throw downloadError(`${file}: downloading to ${dest}: ${errMsg(e)}`, false, e);
  } finally {
    await lock.release();
  }

  async function discard() {
    await fs.rm(tmp, { force: true });
    await fs.rm(metaPath, { force: true });
  }

  function fetchLocked(): Promise<boolean> {
    let restarted = false;
    return withRetries(ctx, file, async () => {
      for (;;) {
        let have = (await fileSize(tmp)) ?? 0;
        const meta = have > 0 ? await readMeta(metaPath) : null;
        if (meta && meta.url !== url) { await discard(); have = 0; }
        if (info.size !== null && have > info.size) { await discard(); have = 0; }
        const headers: Record<string, string> = { 'accept-encoding': 'identity' };
        if (have > 0) {
          headers.range = `bytes=${have}-`;
          const validator = meta?.etag && !meta.etag.startsWith('W/') ? meta.etag : meta?.lastModified;
          if (validator) headers['if-range'] = validator;
        }
        const t = timedFetch(ctx, file, url, { method: 'GET', headers });
        let res: Response;
        try {
          res = await t.promise;
        } catch (e) {
          t.done();
          throw t.explain(e, 'request failed');
        }
        let expected = info;
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
            if (!res.ok) throw statusError(ctx, file, url, res);
            // The GET's redirect may say more than the HEAD did.
            const got = remoteInfo(res, t.linked);
            expected = { size: info.size ?? t.linked.size, sha256: info.sha256 ?? got.sha256, gitSha1: info.gitSha1 ?? got.gitSha1 };
            let total: number | null;
            let append = false;
            if (res.status === 206) {
              const m = /^bytes (\d+)-(\d+)\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
              if (!m || Number(m[1]) !== have || (meta?.total != null && Number(m[3]) !== meta.total) || (expected.size !== null && Number(m[3]) !== expected.size)) {
                // Not the continuation we asked for (or the file changed size): start over, as a failed attempt.
                await discard();
                throw downloadError(`${file}: ${url}: asked for bytes ${have}- but the server sent ${JSON.stringify(res.headers.get('content-range'))}${expected.size !== null ? ` of a ${expected.size}-byte file` : ''}; starting over`, true);
              }
              total = Number(m[3]);
              append = true;
            } else {
              have = 0;
              total = remoteInfo(res, { size: null, etag: null }).size; // this response's own Content-Length
              if (total !== null && expected.size !== null && total !== expected.size) {
                throw downloadError(`${file}: ${url}: the server announced ${total} bytes but the file has ${expected.size}`, true);
              }
              total ??= expected.size;
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
            let complete = false;
            const reader = res.body?.getReader();
            try {
              if (!reader) throw downloadError(`${file}: ${url}: empty response body`, true);
              for (;;) {
                let chunk: ReadableStreamReadResult<Uint8Array>;
                try {
                  chunk = await reader.read();
                } catch (e) {
                  throw t.explain(e, `connection lost after ${loaded}${total ? ` of ${total}` : ''} bytes`);
                }
                if (chunk.done) break;
                t.kick();
                await fh.write(chunk.value);
                loaded += chunk.value.byteLength;
                if (total !== null && loaded > total) throw downloadError(`${file}: ${url}: server sent more than the ${total} bytes it announced`, true);
                report(false);
              }
              complete = true;
            } finally {
              if (!complete) await reader?.cancel().catch(() => {});
              await fh.close();
            }
            if (total !== null && loaded !== total) {
              throw downloadError(`${file}: ${url}: transfer ended after ${loaded} of ${total} bytes`, true);
            }
            report(true);
          }
        } catch (e) {
          t.abort();
          await res.body?.cancel().catch(() => {});
          if (e instanceof GPT2WasmError) throw e;
          throw downloadError(`${file}: ${url}: ${errMsg(e)}`, true, e);
        } finally {
          t.done();
        }
        // Integrity: the size and the hash the Hub announced (an LFS file's sha256, a small file's git blob id),
        // then the format's own checks.
        const size = (await fileSize(tmp)) ?? 0;
        if (expected.size !== null && size !== expected.size) {
          await discard();
          throw downloadError(`${file}: downloaded from ${url} but its size is wrong: expected ${expected.size} bytes, got ${size}`, true);
        }
        const hash = expected.sha256 ? { what: 'sha256', want: expected.sha256, of: () => sha256File(tmp) }
          : expected.gitSha1 ? { what: 'git blob SHA-1', want: expected.gitSha1, of: () => gitBlobSha1File(tmp, size) } : null;
        if (hash) {
          const got = await hash.of();
          if (got !== hash.want) {
            await discard();
            throw downloadError(`${file}: downloaded from ${url} but its ${hash.what} is wrong: expected ${hash.want}, got ${got}`, true);
          }
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
}

/**
 * Make sure `file` is in the snapshot folder `snap`: a cached copy is kept unless the Hub (reachable) says its size
 * differs; else it is downloaded. Returns false when `optional` and the file is absent. An `extra` file (one the
 * model loads without) that cannot be fetched (server failing, timeouts) is also treated as absent, with a warning.
 */
async function ensureFile(ctx: Ctx, rev: string, snap: string, file: string, optional: boolean, extra = false): Promise<boolean> {
  const { join } = await import('node:path');
  const bad = badRelativePath(file);
  if (bad) throw downloadError(`${ctx.id.repo}: refusing to download ${JSON.stringify(file)}: ${bad}`, false);
  const dest = join(snap, file);
  const cachedSize = await fileSize(dest);
  let info: RemoteInfo | 'missing';
  try {
    // With a cached copy (or an optional file) to fall back on, no retries: the cache is used at once.
    info = await withRetries(ctx, file, () => headFile(ctx, rev, file, optional), async () => cachedSize !== null || extra);
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    if (cachedSize !== null) return true;
    if (extra && isTransient(e)) return skipOptional(file, e);
    throw e;
  }
  if (info === 'missing') return cachedSize !== null;
  if (cachedSize !== null && (info.size === null || info.size === cachedSize)) return true;
  try {
    return await downloadFile(ctx, rev, file, dest, optional, info);
  } catch (e) {
    if (extra && isTransient(e) && !ctx.signal?.aborted) return skipOptional(file, e);
    throw e;
  }
}

function skipOptional(file: string, e: unknown): false {
  console.warn(`gpt2-wasm: ${file} (optional) could not be fetched and is ignored: ${errMsg(e)}`);
  return false;
}

/** Where the cache root came from, for messages. */
function cacheOrigin(opts: ResolveOptions): string {
  const env = envOf(opts);
  if (opts.cacheDir) return 'options.cacheDir';
  if (env.HF_HUB_CACHE) return `HF_HUB_CACHE=${env.HF_HUB_CACHE}`;
  if (env.HF_HOME) return `HF_HOME=${env.HF_HOME}`;
  return 'the default; HF_HOME is not set';
}

/** Create the snapshot folder and the ref of the revision; a typed error naming the cache when that fails. */
async function prepareSnapshot(opts: ResolveOptions, id: ModelId, repoDir: string, snap: string, commit: string | null): Promise<void> {
  const fs = await import('node:fs/promises');
  const { join, dirname } = await import('node:path');
  let path = snap;
  try {
    await fs.mkdir(snap, { recursive: true });
    if (commit && commit !== id.revision) {
      path = join(repoDir, 'refs', id.revision);
      await fs.mkdir(dirname(path), { recursive: true });
      // Written aside and renamed, so a concurrent reader never sees it half-written.
      const tmp = `${path}.${process.pid}.${randomHex()}.tmp`;
      try {
        await fs.writeFile(tmp, commit);
        await fs.rename(tmp, path);
      } finally {
        await fs.rm(tmp, { force: true }).catch(() => {});
      }
    }
  } catch (e) {
    throw downloadError(
      `cannot write to the Hub cache: ${path}: ${errMsg(e)} (cache ${await hubCacheDir(opts)}, from ${cacheOrigin(opts)}); ` +
        'set HF_HOME (or HF_HUB_CACHE) to a writable directory, or pass a local model directory (CLI: --model DIR)',
      false,
      e,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A whole model

const REQUIRED_TOKENIZER = ['vocab.json', 'merges.txt'];
const OPTIONAL = ['tokenizer.json', 'generation_config.json'];

async function exists(path: string): Promise<boolean> {
  return (await fileSize(path)) !== null;
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
  const offlineResolve = async ({ why, online }: { why: string; online: string }): Promise<ModelSource> => {
    const snap = await cachedSnapshot(repoDir, id.revision);
    const missing = await missingFromSnapshot(snap, wantTokenizer);
    if (missing) {
      throw downloadError(`${why}, and ${missing} of ${id.repo}@${id.revision} is not in the cache (${join(snap, missing)}); ${online}, or pass a local model directory (CLI: --model DIR)`, false);
    }
    return dirSource(snap);
  };
  if (offline) return offlineResolve(offlineReason(opts.offline));

  const ctx = hubContext(id, opts);

  // As huggingface_hub: when the Hub cannot be reached (or fails) and a complete snapshot is cached, use it at
  // once rather than after the retries; with nothing cached, retry, then say how to work without the network.
  let cached: ModelSource | null = null;
  const useCache = async () => {
    cached = await offlineResolve({ ...offlineReason(undefined), why: 'the Hub is unreachable' }).catch(() => null);
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
  await prepareSnapshot(opts, id, repoDir, snap, commit);

  const get = (file: string, optional: boolean, extra = false) => ensureFile(ctx, rev, snap, file, optional, extra);

  await get('config.json', false);
  const haveSingle = (await exists(join(snap, SAFETENSORS_FILE))) || (!(await exists(join(snap, SAFETENSORS_INDEX_FILE))) && (await get(SAFETENSORS_FILE, true)));
  if (haveSingle) {
    await get(SAFETENSORS_FILE, false);
  } else {
    if (!(await get(SAFETENSORS_INDEX_FILE, true))) {
      throw downloadError(
        `${id.repo}@${id.revision} has neither ${SAFETENSORS_FILE} nor ${SAFETENSORS_INDEX_FILE} (HTTP 404 for both); only safetensors checkpoints are supported`,
        false,
      );
    }
    for (const shard of await readShardNames(join(snap, SAFETENSORS_INDEX_FILE))) await get(shard, false);
  }
  if (wantTokenizer) for (const f of REQUIRED_TOKENIZER) await get(f, false);
  for (const f of OPTIONAL) await get(f, true, true);
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
    heads: new Map(),
  };
}

/**
 * The local path of one file of a Hub repo (e.g. a .gguf), downloaded into the same cache as whole models
 * (resumable, validated, offline from the cache). The repo needs no config.json.
 */
export async function resolveHubFile(repoId: string, file: string, opts: ResolveOptions = {}): Promise<string> {
  const { join } = await import('node:path');
  const bad = badRelativePath(file);
  if (bad) throw new OptionError(`invalid file name ${JSON.stringify(file)}: ${bad}`);
  const id = parseModelId(repoId, opts.revision);
  const repoDir = join(await hubCacheDir(opts), repoFolderName(id.repo));
  const fromCache = async ({ why, online }: { why: string; online: string }): Promise<string> => {
    const path = join(await cachedSnapshot(repoDir, id.revision), file);
    if (await exists(path)) return path;
    throw downloadError(`${why}, and ${file} of ${id.repo}@${id.revision} is not in the cache (${path}); ${online}`, false);
  };
  if (opts.offline ?? truthy(envOf(opts).HF_HUB_OFFLINE)) return fromCache(offlineReason(opts.offline));
  const ctx = hubContext(id, opts);
  let commit: string | null;
  try {
    commit = await discoverCommit(ctx, undefined, file);
  } catch (e) {
    if (isTransient(e)) {
      try { return await fromCache({ ...offlineReason(undefined), why: 'the Hub is unreachable' }); } catch {}
    }
    throw e;
  }
  const rev = commit ?? id.revision;
  const snap = join(repoDir, 'snapshots', rev);
  await prepareSnapshot(opts, id, repoDir, snap, commit);
  await ensureFile(ctx, rev, snap, file, false);
  return join(snap, file);
}
