// One place that turns what a user passes to from_pretrained (a local directory, a Hub id, an http(s) URL
// of a model folder) into a ModelSource, on whatever platform we run. Models and tokenizers both load through it.
import { resolveModel } from './hub.js';
import { urlSource, type ModelSource, type ProgressInfo } from './source.js';

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
  /**
   * Files read over HTTP (browsers, URLs): keep them in the browser's Cache API so the next page load reads
   * nothing from the network (default true where there is a Cache API in a browser; false turns it off).
   * List and clear it with listCachedFiles() / clearCachedFiles().
   */
  browser_cache?: boolean;
}

const isNode = typeof process !== 'undefined' && !!(process as any).versions?.node;

export async function resolveSource(idOrDir: string, opts: SourceOptions & { tokenizer?: boolean } = {}): Promise<ModelSource> {
  const http = { token: opts.token ?? undefined, cache: opts.browser_cache === false ? false : undefined, progress_callback: opts.progress_callback };
  if (/^https?:\/\//i.test(idOrDir)) return urlSource(idOrDir.endsWith('/') ? idOrDir : idOrDir + '/', http);
  if (!isNode && !(globalThis as any).Deno) {
    // browsers and edge runtimes: read the Hub's files over HTTP with Range requests, no cache directory
    const [repo, rev] = idOrDir.split('@');
    const endpoint = (opts.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
    return urlSource(`${endpoint}/${repo}/resolve/${encodeURIComponent(opts.revision ?? rev ?? 'main')}/`, http);
  }
  return resolveModel(idOrDir, {
    revision: opts.revision, cacheDir: opts.cache_dir, offline: opts.local_files_only || undefined, token: opts.token, endpoint: opts.endpoint,
    tokenizer: opts.tokenizer ?? false,
    onProgress: opts.progress_callback
      ? (p) => opts.progress_callback!({ status: 'download', file: p.file, loaded: p.loaded, total: p.total ?? undefined, progress: p.total ? (100 * p.loaded) / p.total : undefined })
      : undefined,
  });
}
