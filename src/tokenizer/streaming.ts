// Incremental decoding for generation: text comes out as tokens arrive, and a character whose UTF-8 bytes are
// spread over several tokens (emoji, CJK) is held back until it is complete, so no chunk ends in a broken
// character. The chunks concatenate to exactly tokenizer.decode(all ids) (without clean-up of spaces).
import { InputError } from '../errors.js';
import type { GPT2Tokenizer } from './tokenizer.js';

export interface StreamingDecoderOptions {
  /** Leave out special tokens. Default false. */
  skip_special_tokens?: boolean;
}

export interface StreamingDecoder {
  /** Add one token; returns the text completed by it ('' while a character is still incomplete). */
  push(id: number | bigint): string;
  /** Add several tokens; returns the text they complete. */
  pushMany(ids: ArrayLike<number | bigint>): string;
  /** End of stream: returns held-back bytes as text (an incomplete character becomes U+FFFD) and resets. */
  flush(): string;
}

export function createStreamingDecoder(tokenizer: GPT2Tokenizer, options: StreamingDecoderOptions = {}): StreamingDecoder {
  const skip = options.skip_special_tokens ?? false;
  // A streaming TextDecoder keeps an incomplete sequence for the next call and replaces invalid bytes exactly as
  // a one-shot decode of the whole byte string does. ignoreBOM keeps a leading U+FEFF as text.
  let decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const push = (id: number | bigint): string => {
    const n = tokenizer.checkId(id);
    if (skip && tokenizer.isSpecialId(n)) return '';
    return decoder.decode(tokenizer.tokenBytesOf(n), { stream: true });
  };
  return {
    push,
    pushMany(ids) {
      if (ids == null || typeof ids.length !== 'number') throw new InputError(`pushMany takes an array of token ids, got ${ids === null ? 'null' : typeof ids}`);
      let s = '';
      for (let i = 0; i < ids.length; i++) s += push(ids[i]);
      return s;
    },
    flush() {
      const s = decoder.decode();
      decoder = new TextDecoder('utf-8', { ignoreBOM: true });
      return s;
    },
  };
}

export interface TextStreamerOptions {
  /** Do not print the first put() (the prompt). Default false. */
  skip_prompt?: boolean;
  /** Receives each piece of text. Default: standard output where there is one, else console.log per line. */
  callback_function?: ((text: string) => void) | null;
  /** Receives the raw ids of each put() after the prompt check. */
  token_callback_function?: ((ids: number[]) => void) | null;
  /** Default true, as in transformers.js. */
  skip_special_tokens?: boolean;
}

type Ids = ArrayLike<number | bigint>;

function defaultWriter(): { write: (s: string) => void; end: () => void } {
  const out = (globalThis as any).process?.stdout;
  if (out && typeof out.write === 'function') return { write: (s) => void out.write(s), end: () => void out.write('\n') };
  let line = '';
  return {
    write: (s) => {
      line += s;
      const nl = line.lastIndexOf('\n');
      if (nl >= 0) { console.log(line.slice(0, nl)); line = line.slice(nl + 1); }
    },
    end: () => { if (line) console.log(line); line = ''; },
  };
}

/**
 * transformers.js-style streamer for generate(): put() takes the prompt first, then each step's new tokens,
 * as a flat id list or a batch of one row ([[...]], numbers or bigints); end() flushes.
 */
export class TextStreamer {
  readonly tokenizer: GPT2Tokenizer;
  readonly skip_prompt: boolean;
  private readonly decoder: StreamingDecoder;
  private readonly emit: (text: string) => void;
  private readonly finish: () => void;
  private readonly onTokens: ((ids: number[]) => void) | null;
  private nextIsPrompt = true;

  constructor(tokenizer: GPT2Tokenizer, options: TextStreamerOptions = {}) {
    this.tokenizer = tokenizer;
    this.skip_prompt = options.skip_prompt ?? false;
    this.decoder = createStreamingDecoder(tokenizer, { skip_special_tokens: options.skip_special_tokens ?? true });
    if (options.callback_function) {
      const cb = options.callback_function;
      this.emit = (t) => { if (t.length > 0) cb(t); };
      this.finish = () => {};
    } else {
      const w = defaultWriter();
      this.emit = (t) => { if (t.length > 0) w.write(t); };
      this.finish = w.end;
    }
    this.onTokens = options.token_callback_function ?? null;
  }

  put(value: Ids | ArrayLike<Ids>): void {
    if (value == null || typeof value.length !== 'number') throw new InputError(`TextStreamer.put takes token ids ([id, ...] or [[id, ...]]), got ${value === null ? 'null' : typeof value}`);
    let row: Ids;
    const first = value.length > 0 ? (value as any)[0] : undefined;
    if (first !== undefined && typeof first === 'object') {
      if (value.length > 1) throw new InputError(`TextStreamer only supports a batch of one sequence, got ${value.length}`);
      row = first as Ids;
    } else {
      row = value as Ids;
    }
    if (this.nextIsPrompt) {
      this.nextIsPrompt = false;
      if (this.skip_prompt) return;
    }
    const ids = Array.from(row, (x) => (typeof x === 'bigint' ? Number(x) : x));
    this.onTokens?.(ids);
    this.emit(this.decoder.pushMany(ids));
  }

  end(): void {
    this.emit(this.decoder.flush());
    this.nextIsPrompt = true;
    this.finish();
  }
}
