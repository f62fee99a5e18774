// Incremental decoding for generation: text comes out as tokens arrive, and a character whose UTF-8 bytes are
// spread over several tokens (emoji, CJK) is held back until it is complete, so no chunk ends in a broken
// character. The chunks concatenate to exactly tokenizer.decode(all ids) (the decoder: without clean-up of
// spaces; TextStreamer applies the clean-up when its decode options ask for it).
import { InputError } from '../errors.js';
import { checkKnownKeys } from '../options.js';
import { CLEAN_UP_PATTERNS, cleanUpTokenization, DECODE_KEYS, type DecodeOptions, type GPT2Tokenizer } from './tokenizer.js';

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
  /** Options of tokenizer.decode() for the streamed text (skip_special_tokens, clean_up_tokenization_spaces), as in
   *  transformers.js: the pieces join to tokenizer.decode(ids, decode_kwargs). */
  decode_kwargs?: DecodeOptions;
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

const STREAMER_KEYS = new Set(['skip_prompt', 'callback_function', 'token_callback_function', 'skip_special_tokens', 'decode_kwargs']);

/** The longest clean-up pattern: a space and at most this many - 1 characters. */
const CLEAN_UP_MAX = Math.max(...CLEAN_UP_PATTERNS.map((p) => p.length));

/** Where the text that later text may still change begins: every pattern starts with a space, so one that could
 *  reach past position j starts at a space among the CLEAN_UP_MAX - 1 characters before it; hold back from there, and
 *  again from the space before that, until none is left in reach. */
function cleanUpHold(raw: string): number {
  let j = raw.length;
  while (j > 0) {
    const k = raw.lastIndexOf(' ', j - 1);
    if (k < 0 || k < j - (CLEAN_UP_MAX - 1)) return j;
    let first = k;
    while (first > 0 && raw.charCodeAt(first - 1) === 32 && first - 1 >= j - (CLEAN_UP_MAX - 1)) first--;
    j = first;
  }
  return 0;
}

/**
 * transformers.js-style streamer for generate(): put() takes the prompt first, then each step's new tokens,
 * as a flat id list or a batch of one row ([[...]], numbers or bigints); end() flushes. Every piece of text goes
 * through on_finalized_text(text, stream_end), the method to override (as in transformers and transformers.js).
 */
export class TextStreamer {
  readonly tokenizer: GPT2Tokenizer;
  readonly skip_prompt: boolean;
  readonly callback_function: ((text: string) => void) | null;
  readonly decode_kwargs: DecodeOptions;
  private readonly decoder: StreamingDecoder;
  private readonly writer: { write: (s: string) => void; end: () => void } | null;
  private readonly onTokens: ((ids: number[]) => void) | null;
  private readonly cleanUp: boolean;
  /** With clean-up: the raw text since the stream began, and how much of its cleaned text is out. */
  private raw = '';
  private sent = 0;
  private nextIsPrompt = true;

  constructor(tokenizer: GPT2Tokenizer, options: TextStreamerOptions = {}) {
    checkKnownKeys(options, STREAMER_KEYS, 'TextStreamer option');
    if (options.decode_kwargs != null) checkKnownKeys(options.decode_kwargs, DECODE_KEYS, 'TextStreamer decode_kwargs key');
    this.tokenizer = tokenizer;
    this.skip_prompt = options.skip_prompt ?? false;
    this.decode_kwargs = { skip_special_tokens: options.skip_special_tokens ?? true, ...(options.decode_kwargs ?? {}) };
    this.decoder = createStreamingDecoder(tokenizer, { skip_special_tokens: this.decode_kwargs.skip_special_tokens });
    this.cleanUp = this.decode_kwargs.clean_up_tokenization_spaces ?? tokenizer.clean_up_tokenization_spaces;
    this.callback_function = options.callback_function ?? null;
    this.writer = this.callback_function ? null : defaultWriter();
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
    this.text(this.decoder.pushMany(ids), false);
  }

  end(): void {
    this.text(this.decoder.flush(), true);
    this.nextIsPrompt = true;
  }

  /** Called with each piece of finished text, and once with stream_end true at the end (its text may be ''). By
   *  default: to callback_function, or to standard output with a newline at the end. */
  on_finalized_text(text: string, stream_end: boolean): void {
    if (this.callback_function) { if (text.length > 0) this.callback_function(text); return; }
    if (text.length > 0) this.writer!.write(text);
    if (stream_end) this.writer!.end();
  }

  /** Decoded text → on_finalized_text; with clean-up, the text that cannot change any more (a tail that may be the
   *  start of a clean-up pattern waits for the next piece). */
  private text(piece: string, end: boolean): void {
    if (!this.cleanUp) {
      if (piece.length > 0 || end) this.on_finalized_text(piece, end);
      return;
    }
    this.raw += piece;
    const stable = end ? this.raw : this.raw.slice(0, cleanUpHold(this.raw));
    const clean = cleanUpTokenization(stable);
    const out = clean.slice(this.sent);
    this.sent = clean.length;
    if (end) { this.raw = ''; this.sent = 0; }
    if (out.length > 0 || end) this.on_finalized_text(out, end);
  }
}
