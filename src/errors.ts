// Every failure the library reports is a GPT2WasmError with a stable `code`, so callers (and the CLI's exit
// codes) can tell a bad file from a bad option without parsing messages. Messages name the file, tensor,
// expected vs actual value, so a user can fix the input without reading our source.

export type ErrorCode =
  | 'CONFIG' // config.json missing, unparsable, or with a value we do not support
  | 'SAFETENSORS' // a weights file that is truncated, corrupt or inconsistent
  | 'GGUF' // a GGUF file that is truncated, corrupt, inconsistent, or of another architecture
  | 'WEIGHTS' // a tensor missing, unknown, or of the wrong shape/dtype for the config
  | 'INPUT' // bad forward/generate input: ids out of range, shapes that disagree, too long
  | 'OPTION' // a bad option value
  | 'MEMORY' // the model or the request does not fit in wasm32 memory
  | 'DOWNLOAD' // Hub resolution or transfer failed
  | 'TOKENIZER' // vocab/merges missing or malformed
  | 'RUNTIME' // the platform lacks a feature we need, or a worker died
  | 'DISPOSED' // use after dispose()
  | 'BUSY'; // a server's queue is full: retry later

export class GPT2WasmError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options as any);
    this.name = 'GPT2WasmError';
    this.code = code;
  }
}

export class ConfigError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('CONFIG', m, o); this.name = 'ConfigError'; } }
export class SafetensorsError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('SAFETENSORS', m, o); this.name = 'SafetensorsError'; } }
export class GGUFError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('GGUF', m, o); this.name = 'GGUFError'; } }
export class WeightsError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('WEIGHTS', m, o); this.name = 'WeightsError'; } }
export class InputError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('INPUT', m, o); this.name = 'InputError'; } }
export class OptionError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('OPTION', m, o); this.name = 'OptionError'; } }
export class MemoryLimitError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('MEMORY', m, o); this.name = 'MemoryLimitError'; } }
export class DownloadError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('DOWNLOAD', m, o); this.name = 'DownloadError'; } }
export class TokenizerError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('TOKENIZER', m, o); this.name = 'TokenizerError'; } }
export class DisposedError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('DISPOSED', m, o); this.name = 'DisposedError'; } }
export class RuntimeError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('RUNTIME', m, o); this.name = 'RuntimeError'; } }
export class BusyError extends GPT2WasmError { constructor(m: string, o?: { cause?: unknown }) { super('BUSY', m, o); this.name = 'BusyError'; } }
