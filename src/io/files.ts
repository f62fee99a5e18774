// Shared helpers for naming model files in errors and for checking file names that come from untrusted JSON.
import { ConfigError, GPT2WasmError, TokenizerError, WeightsError } from '../errors.js';

const TOKENIZER_FILES = new Set(['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json']);

/** Whether `file` (a name inside a model directory) belongs to the tokenizer. */
export const isTokenizerFile = (file: string): boolean => TOKENIZER_FILES.has(file);

/** The error class for a problem with a whole model file, chosen by what the file is for. */
export function errorForFile(file: string, message: string, cause?: unknown): GPT2WasmError {
  const base = file.split(/[\\/]/).pop() ?? file;
  const o = cause === undefined ? undefined : { cause };
  if (TOKENIZER_FILES.has(base)) return new TokenizerError(message, o);
  if (base.endsWith('.safetensors') || base.endsWith('.safetensors.index.json') || base.endsWith('.bin') || base.endsWith('.gguf')) return new WeightsError(message, o);
  return new ConfigError(message, o);
}

/** The error for a file a model directory does not have. */
export function missingFileError(file: string, where: string, cause?: unknown): GPT2WasmError {
  return errorForFile(file, `${where}: file not found`, cause);
}

/**
 * Check that `file` is a plain relative path inside a model directory ("model-00001-of-00002.safetensors",
 * "sub/x.json"): no absolute paths, no "..", no backslashes, no empty segments. Returns an error message or null.
 */
export function badRelativePath(file: string): string | null {
  if (typeof file !== 'string' || file.length === 0) return 'the file name is empty';
  if (file.length > 1024) return 'the file name is longer than 1024 characters';
  if (file.includes('\\')) return `"${file}" contains a backslash`;
  if (file.startsWith('/') || /^[A-Za-z]:/.test(file)) return `"${file}" is an absolute path`;
  if (/[\u0000-\u001f]/.test(file)) return `"${file}" contains a control character`;
  for (const seg of file.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') return `"${file}" has an empty, "." or ".." path segment`;
  }
  return null;
}

export const isNodeNotFound = (e: unknown): boolean =>
  typeof e === 'object' && e !== null && ((e as any).code === 'ENOENT' || (e as any).code === 'ENOTDIR');

export const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** What a failed HTTP response means for a model file. */
export interface HttpFailure {
  /** The file (or the whole repo) is not there: a missing-file error, not a download failure. */
  missing: boolean;
  /** Worth retrying (5xx, 408, 429). */
  transient: boolean;
  /** "HTTP 404: no such file in org/name@main" and the like, for messages. */
  reason: string;
}

/**
 * The one mapping from an HTTP status (and the Hub's X-Error-Code header) to what it means, shared by the URL
 * source (browsers, edge runtimes) and the Hub downloader (Node). `repo` names the model when it is known.
 */
export function httpFailure(res: Response, ctx: { repo?: string; revision?: string; tokenSent: boolean }): HttpFailure {
  const code = res.headers.get('x-error-code') ?? '';
  const head = `HTTP ${res.status}`;
  const what = ctx.repo ? `${ctx.repo}${ctx.revision ? '@' + ctx.revision : ''}` : 'this model';
  const tokenNote = ctx.tokenSent ? 'a token was sent but refused: check HF_TOKEN' : 'no token was sent: set HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), or pass a token';
  if (code === 'RepoNotFound') return { missing: false, transient: false, reason: `${head}: no such model${ctx.repo ? ` "${ctx.repo}"` : ''} (if it is private or gated, ${tokenNote})` };
  if (code === 'RevisionNotFound') return { missing: false, transient: false, reason: `${head}: ${ctx.repo ? `model ${ctx.repo}` : 'the model'} has no revision${ctx.revision ? ` "${ctx.revision}"` : ' of that name'}` };
  if (code === 'EntryNotFound') return { missing: true, transient: false, reason: `${head}: no such file in ${what}` };
  if (res.status === 404 || res.status === 410) return { missing: true, transient: false, reason: ctx.repo ? `${head}: no such model/file (${what})` : head };
  if (res.status === 401 || res.status === 403) {
    return { missing: false, transient: false, reason: `${head}: access denied to ${ctx.repo ?? 'this model'}; it may be private or gated: accept its terms on the Hub, and ${tokenNote}` };
  }
  const transient = res.status >= 500 || res.status === 429 || res.status === 408;
  return { missing: false, transient, reason: `${head}${res.statusText ? ' ' + res.statusText : ''}${res.status >= 500 ? ' (server error)' : ''}` };
}
