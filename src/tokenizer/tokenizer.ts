// The public GPT-2 tokenizer, with the transformers.js surface: AutoTokenizer.from_pretrained, encode, decode,
// batch_decode, and calling the tokenizer itself on a string or a batch for padded ids and attention masks.
import { InputError, OptionError, TokenizerError } from '../errors.js';
import { checkKnownKeys } from '../options.js';
import { AddedTokenSplitter } from './added-tokens.js';
import { tableUnitsToBytes, tokenStringToBytes } from './byte-level.js';
import { BpeModel, OutputLimitError, UnknownTokenError } from './bpe.js';
import { resolveSource, withGGUFFile, type SourceOptions } from '../io/resolve.js';
import type { ModelSource } from '../io/source.js';
import {
  isTextFileSource, loadTokenizerData,
  type AddedTokenSpec, type NormalizerStep, type TextFileSource, type TokenizerData,
} from './load.js';

export type Side = 'left' | 'right';

export interface EncodeOptions {
  /** A second text, encoded after the first (GPT-2 has no separator: the ids of text, then those of text_pair). */
  text_pair?: string | null;
  /** Add the tokens the tokenizer puts around a sequence (none for GPT-2 unless add_bos_token). Default true. */
  add_special_tokens?: boolean;
  /** Read special tokens written in the text as plain text instead of as their ids. Default: the tokenizer's (false). */
  split_special_tokens?: boolean;
  /** The same switch, tiktoken's way round: false = split_special_tokens true. Ignored when split_special_tokens is given. */
  allowed_special?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens (<|endoftext|>, ...). Default false. */
  skip_special_tokens?: boolean;
  /** Remove spaces before punctuation and contractions (" ." → "."). Default: tokenizer_config.json, else false. */
  clean_up_tokenization_spaces?: boolean;
}

export interface TokenizerCallOptions extends Omit<EncodeOptions, 'text_pair'> {
  /** Second texts: one per text (a string for a string, an array as long as the batch). */
  text_pair?: string | string[] | null;
  /** true / 'longest': pad to the longest row; 'max_length': pad to max_length (or model_max_length). */
  padding?: boolean | 'longest' | 'max_length' | 'do_not_pad';
  /** Cut rows longer than max_length (or model_max_length); with text_pair, 'longest_first' (true) takes tokens from
   *  the longer of the two, 'only_first' from the first. Unset with max_length given and no padding: 'longest_first',
   *  with a warning (as transformers and transformers.js). */
  truncation?: boolean | 'longest_first' | 'only_first' | 'do_not_truncate';
  max_length?: number | null;
  pad_to_multiple_of?: number;
  /** Where padding goes; default the tokenizer's padding_side ('right'). Generation wants 'left'. */
  padding_side?: Side;
  truncation_side?: Side;
  /** Accepted for transformers.js compatibility; results are always plain arrays (the caller wraps them). */
  return_tensor?: boolean;
  /** Only true (the default): the attention mask is always returned. */
  return_attention_mask?: boolean;
  /** Only false (the default): GPT-2 takes no token_type_ids. */
  return_token_type_ids?: boolean;
}

const ENCODE_KEYS = new Set(['text_pair', 'add_special_tokens', 'split_special_tokens', 'allowed_special']);
const CALL_KEYS = new Set([...ENCODE_KEYS, 'padding', 'truncation', 'max_length', 'pad_to_multiple_of', 'padding_side', 'truncation_side',
  'return_tensor', 'return_attention_mask', 'return_token_type_ids']);
export const DECODE_KEYS = new Set(['skip_special_tokens', 'clean_up_tokenization_spaces']);

/** The keys of FromPretrainedOptions: any other is an error (a typo would be silently ignored). */
const TOKENIZER_LOAD_KEYS = new Set(['revision', 'cache_dir', 'local_files_only', 'progress_callback', 'token', 'endpoint', 'gguf_file', 'browser_cache',
  'cache_capacity', 'pad_token_id', 'model_max_length', 'padding_side', 'truncation_side', 'add_prefix_space', 'split_special_tokens',
  'clean_up_tokenization_spaces', 'resolve']);

export interface BatchEncoding {
  input_ids: number[][];
  attention_mask: number[][];
}

export interface TokenizerOptions {
  /** Distinct words the BPE cache keeps (default 100 000; 0 turns it off). */
  cache_capacity?: number;
  pad_token_id?: number | null;
  model_max_length?: number;
  padding_side?: Side;
  truncation_side?: Side;
  add_prefix_space?: boolean;
  split_special_tokens?: boolean;
  clean_up_tokenization_spaces?: boolean;
}

export interface FromPretrainedOptions extends TokenizerOptions, SourceOptions {
  /** Turns a string (directory, Hub id, URL) into a file source; default resolveSource, as the models use. */
  resolve?: (idOrDir: string) => TextFileSource | Promise<TextFileSource>;
}

export type TokenIds = ArrayLike<number | bigint>;
/** A Tensor of ids (e.g. what generate() returns), seen structurally so the tokenizer needs nothing of the model. */
export interface IdTensor { readonly dims: readonly number[]; readonly data: ArrayLike<number | bigint> }
const isIdTensor = (x: unknown): x is IdTensor =>
  typeof x === 'object' && x !== null && Array.isArray((x as any).dims) && typeof (x as any).data?.length === 'number';
/** The rows of an id tensor [T] or [B, T], as views. */
function tensorRows(t: IdTensor, what: string): TokenIds[] {
  const d = t.dims, data = t.data as any;
  const count = d.reduce((a: number, b: number) => a * b, 1);
  if (data?.length !== count) throw new InputError(`${what}: a tensor of dims [${d.join(', ')}] needs ${count} ids, its data has ${data?.length}`);
  if (d.length === 1) return [data];
  if (d.length !== 2) throw new InputError(`${what} takes a tensor of ids [T] or [B, T], got dims [${d.join(', ')}]`);
  const [B, T] = d;
  return Array.from({ length: B }, (_, b) => (typeof data.subarray === 'function' ? data.subarray(b * T, (b + 1) * T) : Array.prototype.slice.call(data, b * T, (b + 1) * T)));
}

const DECODER = new TextDecoder('utf-8', { ignoreBOM: true });

/** Hugging Face's clean_up_tokenization: each pattern in turn, every occurrence without its space (" ' " → "'"). */
export const CLEAN_UP_PATTERNS = [' .', ' ?', ' !', ' ,', " ' ", " n't", " 'm", " 's", " 've", " 're"];

export function cleanUpTokenization(s: string): string {
  for (const p of CLEAN_UP_PATTERNS) s = s.replaceAll(p, p === " ' " ? "'" : p.slice(1));
  return s;
}

function checkSide(x: unknown, what: string): Side | undefined {
  if (x === undefined) return undefined;
  if (x === 'left' || x === 'right') return x;
  throw new OptionError(`${what} must be "left" or "right", got ${JSON.stringify(x)}`);
}

export interface GPT2Tokenizer {
  /** Tokenize one text or a batch; see TokenizerCallOptions. */
  (text: string | string[], options?: TokenizerCallOptions): BatchEncoding;
}

export class GPT2Tokenizer {
  /** Size of the base vocabulary (vocab.json), as Hugging Face's `vocab_size`. */
  declare readonly vocab_size: number;
  /** One past the largest id, added tokens included: valid ids are 0 .. id_limit-1. */
  declare readonly id_limit: number;
  declare model_max_length: number;
  declare padding_side: Side;
  declare truncation_side: Side;
  declare readonly bos_token: string | null;
  declare readonly eos_token: string | null;
  declare readonly unk_token: string | null;
  private declare _pad_token: string | null;
  get pad_token(): string | null { return this._pad_token; }
  /** Setting it (transformers' `tokenizer.pad_token = tokenizer.eos_token`) sets pad_token_id to that token's id. */
  set pad_token(token: string | null) {
    if (token !== null && typeof token !== 'string') throw new OptionError(`pad_token must be a token string or null, got ${typeof token}`);
    const id = token === null ? null : this.convert_tokens_to_ids([token])[0];
    if (token !== null && id === null) throw new InputError(`pad_token ${JSON.stringify(token)} is not a token of this tokenizer`);
    this._pad_token = token;
    this.pad_token_id = id;
  }
  declare readonly bos_token_id: number | null;
  declare readonly eos_token_id: number | null;
  declare readonly unk_token_id: number | null;
  /** null for GPT-2 (it has none); padding then uses eos_token_id. Settable. */
  declare pad_token_id: number | null;
  declare readonly all_special_ids: readonly number[];
  declare add_prefix_space: boolean;
  declare split_special_tokens: boolean;
  declare clean_up_tokenization_spaces: boolean;
  /** Whether the implicit-truncation warning was given (once per tokenizer). */
  private declare warnedImplicitTruncation: boolean | undefined;
  /** Where the files came from. */
  declare readonly origin: string;
  /** Whether the files define a chat_template (apply_chat_template says it is not supported, rather than absent). */
  declare private readonly has_chat_template: boolean;

  declare private readonly model: BpeModel;
  declare private readonly useRegex: boolean;
  declare private readonly normalizer: NormalizerStep[];
  declare private readonly splitter: AddedTokenSplitter;
  declare private readonly specialIds: Set<number>;
  declare private readonly addedById: Map<number, string>;
  declare private readonly prefixIds: number[];
  declare private readonly suffixIds: number[];
  declare private tokenBytes: { data: Uint8Array; offsets: Int32Array; valid: Uint8Array } | null;

  constructor(data: TokenizerData, options: TokenizerOptions = {}) {
    const self = ((text: string | string[], opts?: TokenizerCallOptions) => self._call(text, opts)) as unknown as GPT2Tokenizer;
    Object.setPrototypeOf(self, new.target.prototype);
    const s = self as any;

    const vocab = data.vocab;
    const added: AddedTokenSpec[] = data.added_tokens.map((t) => ({ ...t }));
    let limit = vocab.idLimit;
    for (const t of added) limit = Math.max(limit, t.id + 1);
    // Special tokens are added tokens too; one named in the config but absent everywhere gets the next id.
    const specialNames = [data.bos_token, data.eos_token, data.unk_token, data.pad_token, ...data.additional_special_tokens];
    const idOf = (tok: string | null): number | null => {
      if (tok === null) return null;
      const a = added.find((t) => t.content === tok);
      if (a) return a.id;
      return vocab.get(tok) ?? null;
    };
    for (const name of specialNames) {
      if (name === null || name.length === 0) continue;
      const a = added.find((t) => t.content === name);
      if (a) { a.special = true; continue; }
      const id = vocab.get(name) ?? limit++;
      added.push({ id, content: name, special: true, lstrip: false, rstrip: false, single_word: false, normalized: false });
    }

    s.vocab_size = vocab.size;
    s.id_limit = limit;
    s.model_max_length = options.model_max_length ?? data.model_max_length;
    s.padding_side = checkSide(options.padding_side, 'padding_side') ?? data.padding_side;
    s.truncation_side = checkSide(options.truncation_side, 'truncation_side') ?? data.truncation_side;
    s.bos_token = data.bos_token;
    s.eos_token = data.eos_token;
    s.unk_token = data.unk_token;
    s._pad_token = data.pad_token;
    s.bos_token_id = idOf(data.bos_token);
    s.eos_token_id = idOf(data.eos_token);
    s.unk_token_id = idOf(data.unk_token);
    s.pad_token_id = options.pad_token_id !== undefined ? options.pad_token_id : idOf(data.pad_token);
    s.add_prefix_space = options.add_prefix_space ?? data.add_prefix_space;
    s.split_special_tokens = options.split_special_tokens ?? data.split_special_tokens;
    s.clean_up_tokenization_spaces = options.clean_up_tokenization_spaces ?? data.clean_up_tokenization_spaces;
    s.origin = data.origin;
    s.has_chat_template = data.has_chat_template ?? false;

    s.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    s.all_special_ids = [...s.specialIds];
    s.addedById = new Map(added.map((t) => [t.id, t.content]));
    s.splitter = new AddedTokenSplitter(added);
    s.model = new BpeModel({
      vocab,
      merges: data.merges,
      unkId: s.unk_token_id,
      cacheCapacity: options.cache_capacity,
      ignoreMerges: data.ignore_merges,
    });
    s.useRegex = data.use_regex;
    s.normalizer = data.normalizer;
    s.prefixIds = data.prefix_ids ?? (data.add_bos_token && s.bos_token_id !== null ? [s.bos_token_id] : []);
    s.suffixIds = data.suffix_ids ?? (data.add_eos_token && s.eos_token_id !== null ? [s.eos_token_id] : []);
    s.tokenBytes = null;
    return self;
  }

  /**
   * Load from a local directory path, a Hub id or a URL (through the same resolver and cache as the models), or
   * a file source (anything with readText/exists, e.g. a ModelSource).
   */
  static async from_pretrained(dirOrSource: string | TextFileSource, options: FromPretrainedOptions = {}): Promise<GPT2Tokenizer> {
    checkKnownKeys(options, TOKENIZER_LOAD_KEYS, 'tokenizer from_pretrained option');
    let source: TextFileSource;
    let origin: string;
    if (typeof dirOrSource === 'string') {
      origin = dirOrSource;
      const { revision, cache_dir, local_files_only, progress_callback, token, endpoint, browser_cache, gguf_file } = options;
      source = options.resolve
        ? await options.resolve(dirOrSource)
        : await resolveSource(dirOrSource, { revision, cache_dir, local_files_only, progress_callback, token, endpoint, browser_cache, gguf_file, tokenizer: true });
      if (!isTextFileSource(source)) throw new OptionError(`resolve("${dirOrSource}") did not return an object with readText and exists`);
    } else if (isTextFileSource(dirOrSource)) {
      // a ModelSource holding a GGUF file: the tokenizer inside it
      source = options.gguf_file !== undefined && typeof (dirOrSource as ModelSource).open === 'function' ? await withGGUFFile(dirOrSource as ModelSource, options.gguf_file) : dirOrSource;
      origin = typeof (dirOrSource as any).name === 'string' ? (dirOrSource as any).name : 'tokenizer';
    } else {
      throw new OptionError('from_pretrained expects a directory path or an object with readText(file) and exists(file)');
    }
    const data = await loadTokenizerData(source, origin);
    return new GPT2Tokenizer(data, options);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Encoding

  /**
   * Token ids of `text`. Added/special tokens written in the text (<|endoftext|>) become their ids unless
   * split_special_tokens. Text is encoded as UTF-8, so a lone surrogate (which UTF-8 cannot represent) is read as
   * U+FFFD, as TextEncoder does; such text does not round-trip.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    checkKnownKeys(options, ENCODE_KEYS, 'encode option');
    const ids = this.encodeUpTo(text, options, Infinity)!;
    if (options.text_pair == null) return ids;
    return ids.concat(this.encodeUpTo(options.text_pair, options, Infinity)!);
  }

  /**
   * Token ids of `text` as encode() gives them, or null as soon as there are known to be more than `limit`:
   * encoding stops at the first word past the limit, and a word too long to fit is not merged at all, so an
   * oversized text costs time in proportion to the limit rather than to its length (a server's length check).
   */
  encodeAtMost(text: string, limit: number, options: Omit<EncodeOptions, 'text_pair'> = {}): number[] | null {
    checkKnownKeys(options, ENCODE_KEYS, 'encode option');
    if ((options as EncodeOptions).text_pair != null) throw new OptionError('encodeAtMost takes no text_pair');
    if (!(limit >= 0)) throw new OptionError(`encodeAtMost: limit must be a non-negative number, got ${limit}`);
    return this.encodeUpTo(text, options, limit);
  }

  private encodeUpTo(text: string, options: EncodeOptions, limit: number): number[] | null {
    if (typeof text !== 'string') throw new InputError(`encode expects a string, got ${text === null ? 'null' : typeof text}`);
    const model = this.model;
    const special = options.add_special_tokens ?? true;
    const split = options.split_special_tokens ?? (options.allowed_special === undefined ? this.split_special_tokens : !options.allowed_special);
    const withSpecial = !split;
    model.beginOutput(limit);
    try {
      if (special) for (const id of this.prefixIds) model.pushId(id);
      this.splitter.split(text, withSpecial, (seg) => this.encodeOrdinary(seg), (id) => model.pushId(id));
      if (special) for (const id of this.suffixIds) model.pushId(id);
    } catch (e) {
      model.takeOutput();
      if (e instanceof OutputLimitError) return null;
      if (e instanceof UnknownTokenError) throw new TokenizerError(`${this.origin}: ${e.message} and there is no unk_token`, { cause: e });
      if (e instanceof RangeError) throw new InputError(`encode: ${e.message}`, { cause: e }); // e.g. a string too long for the engine
      throw e;
    }
    return model.takeOutput();
  }

  /** Ids of text holding no added tokens go to the model's output (normalizer, prefix space, pre-tokenize, BPE). */
  private encodeOrdinary(text: string): void {
    for (const step of this.normalizer) text = step === 'Lowercase' ? text.toLowerCase() : text.normalize(step);
    if (this.add_prefix_space && text.length > 0 && text.charCodeAt(0) !== 32) text = ' ' + text;
    if (this.useRegex) this.model.encodeText(text);
    else if (text.length > 0) this.model.encodeRange(text, 0, text.length);
  }

  /** Token strings (byte-level spelling, as in vocab.json) of `text`. */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.convert_ids_to_tokens(this.encode(text, { add_special_tokens: false, ...options }));
  }

  convert_ids_to_tokens(ids: TokenIds): string[] {
    const out: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = this.tokenString(this.checkId(ids[i]));
    return out;
  }

  convert_tokens_to_ids(tokens: string[]): (number | null)[] {
    return tokens.map((t) => {
      for (const [id, content] of this.addedById) if (content === t) return id;
      return this.model.vocab.get(t) ?? this.unk_token_id;
    });
  }

  /** token → id for the base vocabulary and the added tokens. */
  get_vocab(): Map<string, number> {
    const v = new Map(this.model.vocab);
    for (const [id, content] of this.addedById) v.set(content, id);
    return v;
  }

  /** Number of merge rules. */
  get merge_count(): number { return this.model.mergeCount; }

  /** Tokenize one text or a batch into padded/truncated ids and an attention mask (plain arrays). */
  _call(text: string | string[], options: TokenizerCallOptions = {}): BatchEncoding {
    checkKnownKeys(options, CALL_KEYS, 'tokenizer call option');
    if (options.return_attention_mask === false) throw new OptionError('return_attention_mask: false is not supported: the attention_mask is always returned');
    if (options.return_token_type_ids) throw new OptionError('return_token_type_ids: GPT-2 takes no token_type_ids (forward() refuses them)');
    const texts = Array.isArray(text) ? text : [text];
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new InputError(`tokenizer input ${Array.isArray(text) ? `[${i}] ` : ''}must be a string, got ${t === null ? 'null' : typeof t}`);
    });
    const pairIn = options.text_pair ?? null;
    let pairs: string[] | null = null;
    if (pairIn !== null) {
      if (Array.isArray(text) !== Array.isArray(pairIn) || (Array.isArray(pairIn) && pairIn.length !== texts.length)) {
        throw new InputError(`text_pair must match the texts: ${Array.isArray(text) ? `an array of ${texts.length} strings` : 'a string'}`);
      }
      pairs = Array.isArray(pairIn) ? pairIn : [pairIn];
      pairs.forEach((t, i) => {
        if (typeof t !== 'string') throw new InputError(`text_pair ${Array.isArray(pairIn) ? `[${i}] ` : ''}must be a string, got ${t === null ? 'null' : typeof t}`);
      });
    }
    const { max_length, pad_to_multiple_of } = options;
    if (max_length !== undefined && max_length !== null && !(Number.isSafeInteger(max_length) && max_length > 0)) {
      throw new OptionError(`max_length must be a positive integer, got ${max_length}`);
    }
    if (pad_to_multiple_of !== undefined && pad_to_multiple_of !== null && !(Number.isSafeInteger(pad_to_multiple_of) && pad_to_multiple_of > 0)) {
      throw new OptionError(`pad_to_multiple_of must be a positive integer, got ${pad_to_multiple_of}`);
    }
    const paddingSide = checkSide(options.padding_side, 'padding_side') ?? this.padding_side;
    const truncSide = checkSide(options.truncation_side, 'truncation_side') ?? this.truncation_side;
    const padding = options.padding ?? false;
    let truncation = options.truncation ?? false;
    if (options.truncation === undefined && max_length != null && padding === false) {
      // as transformers: a max_length without truncation or padding means truncation, said once
      if (!this.warnedImplicitTruncation) {
        this.warnedImplicitTruncation = true;
        console.warn("gpt2-wasm: max_length is given without truncation: truncating to it ('longest_first'); pass truncation: true to say so");
      }
      truncation = 'longest_first';
    }
    if (![true, false, 'longest', 'max_length', 'do_not_pad'].includes(padding as any)) throw new OptionError(`padding must be true, false, "longest" or "max_length", got ${JSON.stringify(padding)}`);
    if (![true, false, 'longest_first', 'only_first', 'do_not_truncate'].includes(truncation as any)) throw new OptionError(`truncation must be true or false, got ${JSON.stringify(truncation)}`);

    const limitOf = (what: string) => {
      const n = max_length ?? this.model_max_length;
      if (!Number.isSafeInteger(n) || n > 0x7fffffff) throw new OptionError(`${what} needs max_length (model_max_length is ${this.model_max_length})`);
      return n;
    };
    const enc: EncodeOptions = { add_special_tokens: options.add_special_tokens, split_special_tokens: options.split_special_tokens, allowed_special: options.allowed_special };
    let ids = texts.map((t) => this.encode(t, enc));
    const second = pairs?.map((t) => this.encode(t, enc)) ?? null;
    if (truncation === true || truncation === 'longest_first' || truncation === 'only_first') {
      const n = limitOf('truncation');
      const cut = (r: number[], keep: number) => (r.length <= keep ? r : truncSide === 'left' ? r.slice(r.length - keep) : r.slice(0, keep));
      for (let i = 0; i < ids.length; i++) {
        if (!second) { ids[i] = cut(ids[i], n); continue; }
        let a = ids[i].length, b = second[i].length;
        if (truncation === 'only_first') a = Math.max(0, n - b);
        // transformers' longest_first: one token at a time from the longer (the second on a tie)
        else while (a + b > n) { if (a > b) a--; else b--; }
        ids[i] = cut(ids[i], a);
        second[i] = cut(second[i], b);
      }
    }
    if (second) ids = ids.map((r, i) => r.concat(second[i]));
    let target = -1;
    if (padding === true || padding === 'longest') target = ids.reduce((m, r) => Math.max(m, r.length), 0);
    else if (padding === 'max_length') target = limitOf("padding: 'max_length'");
    if (target >= 0 && pad_to_multiple_of) target = Math.ceil(target / pad_to_multiple_of) * pad_to_multiple_of;

    const input_ids: number[][] = [], attention_mask: number[][] = [];
    const padId = this.pad_token_id ?? this.eos_token_id;
    for (const row of ids) {
      const pad = target > row.length ? target - row.length : 0;
      if (pad > 0 && padId === null) throw new InputError(`${this.origin}: cannot pad: the tokenizer has neither a pad token nor an eos token`);
      const padIds = new Array<number>(pad).fill(padId ?? 0);
      const zeros = new Array<number>(pad).fill(0);
      const ones = new Array<number>(row.length).fill(1);
      if (paddingSide === 'left') {
        input_ids.push(padIds.concat(row));
        attention_mask.push(zeros.concat(ones));
      } else {
        input_ids.push(row.concat(padIds));
        attention_mask.push(ones.concat(zeros));
      }
    }
    return { input_ids, attention_mask };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Decoding

  /** The id as a number, or InputError naming it and the vocabulary size. */
  checkId(x: number | bigint): number {
    // a string, boolean or null is not read as a number ("5", "0x10", false): a typed error naming what it is
    if (typeof x !== 'number' && typeof x !== 'bigint') throw new InputError(`token ids are numbers or bigints, got ${x === null ? 'null' : `${typeof x} ${JSON.stringify(x)}`}`);
    const n = typeof x === 'bigint' ? Number(x) : x;
    if (!Number.isInteger(n) || n < 0 || n >= this.id_limit || (!this.model.vocab.hasId(n) && !this.addedById.has(n))) {
      throw new InputError(`token id ${String(x)} is not in the vocabulary (size ${this.id_limit}: ids 0..${this.id_limit - 1})`);
    }
    return n;
  }

  /** Whether `id` is a special token (skipped by skip_special_tokens). */
  isSpecialId(id: number): boolean { return this.specialIds.has(id); }

  private tokenString(id: number): string {
    return this.addedById.get(id) ?? this.model.vocab.token(id) ?? '';
  }

  /** The UTF-8 bytes token `id` stands for (a view; do not modify). */
  tokenBytesOf(id: number | bigint): Uint8Array {
    const n = this.checkId(id);
    const t = this.tokenTable();
    return t.data.subarray(t.offsets[n], t.offsets[n + 1]);
  }

  /** Every token's bytes in one array, built on the first decode: sized in a first pass, filled in a second,
   *  straight from the vocabulary's units (no array per token: 50 000 of them would be heap garbage). */
  private tokenTable(): { data: Uint8Array; offsets: Int32Array; valid: Uint8Array } {
    if (this.tokenBytes) return this.tokenBytes;
    const L = this.id_limit, vocab = this.model.vocab, pool = vocab.pool;
    const offsets = new Int32Array(L + 1), valid = new Uint8Array(L);
    const other = new Map<number, Uint8Array>(); // added tokens and tokens outside the byte table: their bytes
    let total = 0;
    for (let id = 0; id < L; id++) {
      offsets[id] = total;
      const added = this.addedById.has(id);
      const inVocab = !added && vocab.hasId(id);
      valid[id] = added || inVocab ? 1 : 0;
      let n = inVocab ? tableUnitsToBytes(pool, vocab.start(id), vocab.end(id), null, 0) : 0;
      if (added || n < 0) {
        const b = tokenStringToBytes(this.tokenString(id));
        other.set(id, b);
        n = b.length;
      }
      total += n;
    }
    offsets[L] = total;
    const data = new Uint8Array(total);
    for (let id = 0; id < L; id++) {
      const b = other.get(id);
      if (b) data.set(b, offsets[id]);
      else if (valid[id]) tableUnitsToBytes(pool, vocab.start(id), vocab.end(id), data, offsets[id]);
    }
    this.tokenBytes = { data, offsets, valid };
    return this.tokenBytes;
  }

  /** The concatenated bytes of `ids` (special tokens left out when `skipSpecial`). */
  decodeBytes(ids: TokenIds, skipSpecial = false): Uint8Array {
    const { data, offsets, valid } = this.tokenTable();
    const n = ids.length, limit = this.id_limit, specials = this.specialIds;
    const checked = new Int32Array(n);
    let total = 0, k = 0;
    for (let i = 0; i < n; i++) {
      const v = ids[i];
      const id = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : NaN; // NaN: checkId names the type
      if (!(id >= 0 && id < limit) || (id | 0) !== id || valid[id] === 0) this.checkId(v);
      if (skipSpecial && specials.has(id)) continue;
      checked[k++] = id;
      total += offsets[id + 1] - offsets[id];
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < k; i++) {
      const id = checked[i];
      for (let j = offsets[id], e = offsets[id + 1]; j < e; j++) out[at++] = data[j];
    }
    return out;
  }

  /** Text of `ids`; invalid UTF-8 (a character cut between tokens) becomes U+FFFD, as in the reference. */
  decode(ids: TokenIds | IdTensor, options: DecodeOptions = {}): string {
    checkKnownKeys(options, DECODE_KEYS, 'decode option');
    if (isIdTensor(ids)) {
      const rows = tensorRows(ids, 'decode');
      if (rows.length !== 1) throw new InputError(`decode takes one sequence, got a batch of ${rows.length}: use batch_decode`);
      ids = rows[0];
    }
    if (ids === null || typeof ids !== 'object' || typeof (ids as any).length !== 'number') throw new InputError('decode expects an array of token ids');
    const text = DECODER.decode(this.decodeBytes(ids, options.skip_special_tokens ?? false));
    return (options.clean_up_tokenization_spaces ?? this.clean_up_tokenization_spaces) ? cleanUpTokenization(text) : text;
  }

  batch_decode(batch: ArrayLike<TokenIds> | IdTensor, options: DecodeOptions = {}): string[] {
    if (isIdTensor(batch)) batch = tensorRows(batch, 'batch_decode');
    if (batch === null || typeof batch !== 'object' || typeof (batch as any).length !== 'number') throw new InputError('batch_decode expects an array of id sequences or a tensor [B, T]');
    const out: string[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) out[i] = this.decode(batch[i], options);
    return out;
  }

  /** Forget the BPE word cache. */
  clear_cache(): void { this.model.clearCache(); }

  /** transformers.js's method, here always an OptionError: GPT-2 has no chat template, and this runtime renders none
   *  (a tokenizer_config.json that has one is named as such). Format the conversation as text and tokenize that. */
  apply_chat_template(_conversation?: unknown, _options?: unknown): never {
    const fix = 'format the conversation as plain text and call the tokenizer on it';
    if (this.has_chat_template) {
      throw new OptionError(`apply_chat_template is not supported: ${this.origin} has a chat_template, but gpt2-wasm does not render chat templates; ${fix}`);
    }
    throw new OptionError(`apply_chat_template: ${this.origin} has no chat template (GPT-2 tokenizers define none: no chat_template in tokenizer_config.json); ${fix}`);
  }
}

/** transformers.js-style entry point; every tokenizer this runtime reads is a GPT2Tokenizer. */
export class AutoTokenizer {
  static from_pretrained(dirOrSource: string | TextFileSource, options: FromPretrainedOptions = {}): Promise<GPT2Tokenizer> {
    return GPT2Tokenizer.from_pretrained(dirOrSource, options);
  }
}

