// One place that turns what a user passes to from_pretrained (a local directory, a Hub id, an http(s) URL
// of a model folder, a .gguf path or URL, or any of those with `gguf_file`) into a ModelSource, on whatever
// platform we run. Models and tokenizers both load through it.
import { DownloadError, OptionError } from '../errors.js';
import { opfsAvailable } from './browser-cache.js';
import { GGUFModelSource } from './gguf-model.js';
import { resolveHubFile, resolveModel } from './hub.js';
import { fileSource, urlSource, type ModelSource, type ProgressInfo, type UrlSourceOptions } from './source.js';

export type { ProgressInfo } from './source.js';

/** Where to find a model's files: the options from_pretrained shares between models and tokenizers. */
export interface SourceOptions {
  /** Hub revision (branch, tag or commit) when the id is not a local directory. */
  revision?: string;
  /** Hub cache directory (default $HF_HOME/hub). */
  cache_dir?: string;
  /** Use only files already in the cache (as HF_HUB_OFFLINE=1). */
  local_files_only?: boolean;
  /** Called while downloading and loading: { status, file?, loaded?, total?, progress? }. */
  progress_callback?: (p: ProgressInfo) => void;
  /** Hub token (default $HF_TOKEN); null sends none. */
  token?: string | null;
  /** Hub endpoint (default $HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** A GGUF file inside the directory, URL base or Hub repo (the option name transformers uses). */
  gguf_file?: string;
  /**
   * Files read over HTTP (browsers, URLs): keep them in the browser's Cache API so the next page load reads
   * nothing from the network (default true where there is a Cache API in a browser; false turns it off;
   * 'opfs' keeps them in the Origin Private File System instead, better for large weights).
   * List and clear it with listCachedFiles() / clearCachedFiles().
   */
  browser_cache?: boolean | 'opfs';
}

const isNode = typeof process !== 'undefined' && !!(process as any).versions?.node;

/** Internal extras: the tokenizer's files, and (edge handler) the fetch and headers of HTTP sources. */
type ResolveOpts = SourceOptions & { tokenizer?: boolean } & Pick<UrlSourceOptions, 'fetch' | 'headers'>;

/** Options of an HTTP source from the resolve options: token, browser cache, progress, fetch and headers. */
function httpOptions(opts: ResolveOpts): UrlSourceOptions {
  const c = opts.browser_cache;
  if (c !== undefined && c !== true && c !== false && c !== 'opfs') throw new OptionError(`browser_cache must be true, false or 'opfs', got ${JSON.stringify(c)}`);
  // 'opfs' where there is one (browsers); elsewhere the default, as browser_cache: true (no browser cache in Node)
  const cache = c === false ? false : c === 'opfs' && opfsAvailable() ? 'opfs' as const : undefined;
  // local_files_only over HTTP: what the browser cache holds, and no request (the cache serves cached files
  // without one; any other read fails, naming the file)
  const fetch = opts.local_files_only ? offlineFetch : opts.fetch;
  return { token: opts.token ?? undefined, cache, progress_callback: opts.progress_callback, fetch, headers: opts.headers };
}

const offlineFetch = ((input: RequestInfo | URL) => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  return Promise.reject(new DownloadError(`${url} is not cached here and local_files_only is set (only files in the browser cache load)`));
}) as typeof fetch;

/** The where-to-find options' types, before any request: a wrong type would otherwise surface as a TypeError in
 *  the middle of a download, or (a revision object) as a request for revision "[object Object]". */
function checkSourceOptions(idOrDir: unknown, opts: ResolveOpts): void {
  if (typeof idOrDir !== 'string' || idOrDir.trim() === '') throw new OptionError(`a model id, directory path or URL must be a non-empty string, got ${JSON.stringify(idOrDir)}`);
  const str = (k: 'revision' | 'cache_dir' | 'endpoint') => {
    const v = opts[k];
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw new OptionError(`${k} must be a non-empty string, got ${JSON.stringify(v) ?? typeof v}`);
  };
  str('revision'); str('cache_dir'); str('endpoint');
  if (opts.endpoint !== undefined && !/^https?:\/\/[^/]/i.test(opts.endpoint)) throw new OptionError(`endpoint must be an http(s) URL, got ${JSON.stringify(opts.endpoint)}`);
  if (opts.token !== undefined && opts.token !== null && typeof opts.token !== 'string') throw new OptionError(`token must be a string or null, got ${typeof opts.token}`);
  if (opts.local_files_only !== undefined && typeof opts.local_files_only !== 'boolean') throw new OptionError(`local_files_only must be true or false, got ${JSON.stringify(opts.local_files_only)}`);
  if (opts.progress_callback !== undefined && typeof opts.progress_callback !== 'function') throw new OptionError(`progress_callback must be a function, got ${typeof opts.progress_callback}`);
}

/**
 * A model location's scheme, checked before anything is read (createFetchHandler checks its modelUrl with this when
 * it is created, so a deployment's mistake is named once rather than on every request): http(s) URLs, file: URLs
 * where there is a file system (Node, Deno), paths and Hub ids; any other scheme (ftp:, s3:) is an OptionError.
 */
export function checkModelLocation(idOrDir: string): void {
  const fs = isNode || !!(globalThis as any).Deno;
  if (/^file:/i.test(idOrDir) && !fs) throw new OptionError(`${idOrDir}: file: URLs cannot be read in this runtime; serve the files over http(s), or pass a ModelSource (memorySource)`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(idOrDir)?.[1];
  if (scheme && !/^(https?|file)$/i.test(scheme)) {
    throw new OptionError(`${idOrDir}: ${scheme}: URLs are not read; give an http(s) URL${fs ? ', a file: URL or a local path' : ''}, or a Hub model id`);
  }
}

export async function resolveSource(idOrDir: string, opts: ResolveOpts = {}): Promise<ModelSource> {
  checkSourceOptions(idOrDir, opts);
  checkModelLocation(idOrDir);
  // a file: URL where there is a file system: its path
  if (/^file:/i.test(idOrDir)) {
    const { fileURLToPath } = await import('node:url');
    try { idOrDir = fileURLToPath(idOrDir); } catch (e) { throw new OptionError(`${idOrDir}: not a file: URL of a local path (${(e as Error).message})`); }
  }
  if (opts.gguf_file !== undefined || /\.gguf$/i.test(idOrDir.replace(/[?#].*$/, ''))) return resolveGGUF(idOrDir, opts);
  if (/^https?:\/\//i.test(idOrDir)) return urlSource(idOrDir.endsWith('/') ? idOrDir : idOrDir + '/', httpOptions(opts));
  if (!isNode && !(globalThis as any).Deno) {
    // browsers and edge runtimes: read the Hub's files over HTTP with Range requests, no cache directory
    return urlSource(hubBase(idOrDir, opts), httpOptions(opts));
  }
  const gguf = await lonelyGGUF(idOrDir);
  if (gguf !== null) return GGUFModelSource.open(() => fileSource(gguf));
  return resolveModel(idOrDir, hubOptions(opts));
}

/**
 * A local directory without config.json that holds one .gguf file (a llama.cpp-style model folder): that file's
 * path, to load as if it had been given. Several .gguf files there are an OptionError listing them (which one is
 * meant is the caller's choice). null for anything else (no such directory, config.json present, no .gguf file),
 * which resolves as before.
 */
async function lonelyGGUF(dir: string): Promise<string | null> {
  const fs = await import('node:fs/promises');
  const { join, resolve } = await import('node:path');
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) return null;
  if (await fs.stat(join(dir, 'config.json')).then(() => true, () => false)) return null;
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => /\.gguf$/i.test(f)).sort();
  const files: string[] = [];
  for (const f of names) if ((await fs.stat(join(dir, f)).catch(() => null))?.isFile()) files.push(f);
  if (files.length === 1) return resolve(dir, files[0]);
  if (files.length > 1) {
    const shown = files.length > 10 ? `${files.slice(0, 10).join(', ')} and ${files.length - 10} more` : files.join(', ');
    throw new OptionError(`${dir} has no config.json and ${files.length} GGUF files (${shown}); pass one file's path ` +
      `(e.g. ${JSON.stringify(join(dir, files[0]))}), or the directory with gguf_file: ${JSON.stringify(files[0])}`);
  }
  return null;
}

/** `source`, or with `gguf_file` the GGUF file of that name inside it (a ModelSource holding a user's file). */
export async function withGGUFFile(source: ModelSource, gguf_file: unknown): Promise<ModelSource> {
  if (gguf_file === undefined) return source;
  const file = checkGGUFFile(gguf_file);
  return GGUFModelSource.open(() => source.open(file));
}

/** The gguf_file option: the name of a .gguf file. */
function checkGGUFFile(file: unknown): string {
  if (typeof file !== 'string' || !/\.gguf$/i.test(file)) throw new OptionError(`gguf_file must be the name of a .gguf file, got ${JSON.stringify(file)}`);
  return file;
}

function hubBase(id: string, opts: ResolveOpts): string {
  const [repo, rev] = id.split('@');
  const endpoint = (opts.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(opts.revision ?? rev ?? 'main')}/`;
}

function hubOptions(opts: ResolveOpts) {
  return {
    revision: opts.revision, cacheDir: opts.cache_dir, offline: opts.local_files_only || undefined, token: opts.token, endpoint: opts.endpoint,
    tokenizer: opts.tokenizer ?? false,
    onProgress: opts.progress_callback ? hubProgress(opts.progress_callback) : undefined,
  };
}

/** The Hub cache's download updates as transformers.js's progress_callback statuses, as the browser path gives them:
 *  per downloaded file `initiate` and `download` once, `progress` with loaded / total / progress on every update,
 *  `done` at the end (a file already cached sends none: nothing is downloaded). */
function hubProgress(cb: (p: ProgressInfo) => void) {
  const started = new Set<string>();
  return (p: { file: string; loaded: number; total: number | null; done: boolean }) => {
    if (!started.has(p.file)) {
      started.add(p.file);
      cb({ status: 'initiate', file: p.file });
      cb({ status: 'download', file: p.file });
    }
    cb({ status: 'progress', file: p.file, loaded: p.loaded, total: p.total ?? undefined, progress: p.total ? (100 * p.loaded) / p.total : undefined });
    if (p.done) cb({ status: 'done', file: p.file });
  };
}

/** A GGUF file: `x.gguf` (path or URL), or `gguf_file` inside a directory, URL base or Hub repo. */
async function resolveGGUF(idOrDir: string, opts: ResolveOpts): Promise<ModelSource> {
  const file = opts.gguf_file === undefined ? undefined : checkGGUFFile(opts.gguf_file);
  const http = httpOptions(opts);
  if (/^https?:\/\//i.test(idOrDir)) {
    if (file !== undefined) return GGUFModelSource.open(() => urlSource(idOrDir.endsWith('/') ? idOrDir : idOrDir + '/', http).open(file));
    const u = new URL(idOrDir);
    const name = decodeURIComponent(u.pathname.split('/').pop()!);
    return GGUFModelSource.open(() => urlSource(new URL('.', u).href, http).open(name));
  }
  if (!isNode && !(globalThis as any).Deno) {
    if (file === undefined) throw new OptionError(`${idOrDir}: a .gguf path needs a file system; pass a URL, or a Hub id with gguf_file`);
    return GGUFModelSource.open(() => urlSource(hubBase(idOrDir, opts), http).open(file));
  }
  const fs = await import('node:fs/promises');
  const { join, resolve } = await import('node:path');
  const stat = await fs.stat(idOrDir).catch(() => null);
  let path: string;
  if (file === undefined) path = resolve(idOrDir);
  else if (stat?.isDirectory()) path = join(resolve(idOrDir), file);
  else if (stat) throw new OptionError(`${idOrDir} is a file; with gguf_file, pass the directory or Hub repo that holds ${file}`);
  else path = await resolveHubFile(idOrDir, file, hubOptions(opts));
  return GGUFModelSource.open(() => fileSource(path));
}
