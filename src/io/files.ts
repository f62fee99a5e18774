// Shared helpers for naming model files in errors and for checking file names that come from untrusted JSON.
import { ConfigError, GPT2WasmError, TokenizerError, WeightsError } from '../errors.js';

const TOKENIZER_FILES = new Set(['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json']);

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
