// One place that turns what a user passes to from_pretrained (a local directory, a Hub id, an http(s) URL
// of a model folder) into a ModelSource, on whatever platform we run.
import type { PretrainedOptions } from '../model/gpt2.js';
import { resolveModel } from './hub.js';
import { urlSource, type ModelSource } from './source.js';

const isNode = typeof process !== 'undefined' && !!(process as any).versions?.node;

export async function resolveSource(idOrDir: string, opts: PretrainedOptions & { token?: string | null; endpoint?: string; tokenizer?: boolean } = {}): Promise<ModelSource> {
  if (/^https?:\/\//i.test(idOrDir)) return urlSource(idOrDir.endsWith('/') ? idOrDir : idOrDir + '/', { token: opts.token ?? undefined });
  if (!isNode && !(globalThis as any).Deno) {
    // browsers and edge runtimes: read the Hub's files over HTTP with Range requests, no cache directory
    const [repo, rev] = idOrDir.split('@');
    const endpoint = (opts.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
    return urlSource(`${endpoint}/${repo}/resolve/${encodeURIComponent(opts.revision ?? rev ?? 'main')}/`, { token: opts.token ?? undefined });
  }
  return resolveModel(idOrDir, {
    revision: opts.revision, cacheDir: opts.cache_dir, offline: opts.local_files_only || undefined, token: opts.token, endpoint: opts.endpoint,
    tokenizer: opts.tokenizer ?? false,
    onProgress: opts.progress_callback
      ? (p) => opts.progress_callback!({ status: 'download', file: p.file, loaded: p.loaded, total: p.total ?? undefined, progress: p.total ? (100 * p.loaded) / p.total : undefined })
      : undefined,
  });
}
