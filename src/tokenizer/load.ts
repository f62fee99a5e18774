// Reading a GPT-2 tokenizer from a model directory: vocab.json + merges.txt (preferred, as the reference
// GPT2Tokenizer), else tokenizer.json; tokenizer_config.json and special_tokens_map.json when present. Files
// come through a two-method interface (a ModelSource from src/io/source.ts has it) so this module has no platform
// imports.
import { GGUFError, GPT2WasmError, TokenizerError } from '../errors.js';
import { MergeRules, Vocab, readMergesText, readVocabJson } from './vocab.js';

/** The file access the tokenizer needs (a ModelSource has it). `describe` (optional) gives the full path or URL for messages. */
export interface TextFileSource {
  readText(file: string): Promise<string>;
  exists(file: string): Promise<boolean>;
  describe?(file: string): string;
  /** A GGUF file's metadata (key → value): the tokenizer is built from tokenizer.ggml.* instead of files. */
  ggufMetadata?(): ReadonlyMap<string, unknown>;
}

export const isTextFileSource = (x: unknown): x is TextFileSource =>
  typeof x === 'object' && x !== null && typeof (x as any).readText === 'function' && typeof (x as any).exists === 'function';

export interface AddedTokenSpec {
  id: number;
  content: string;
  special: boolean;
  /** Whitespace left of the token is absorbed into it. */
  lstrip: boolean;
  /** Whitespace right of the token is absorbed into it. */
  rstrip: boolean;
  single_word: boolean;
  normalized: boolean;
}

export type NormalizerStep = 'NFC' | 'NFD' | 'NFKC' | 'NFKD' | 'Lowercase';

/** Everything a GPT2Tokenizer is built from, after parsing and defaults. */
export interface TokenizerData {
  /** token → id (a read-only Map held in typed arrays). */
  vocab: Vocab;
  /** Merge rules in rank order. */
  merges: MergeRules;
  added_tokens: AddedTokenSpec[];
  bos_token: string | null;
  eos_token: string | null;
  unk_token: string | null;
  pad_token: string | null;
  additional_special_tokens: string[];
  model_max_length: number;
  add_bos_token: boolean;
  add_eos_token: boolean;
  /** Ids a tokenizer.json TemplateProcessing post-processor puts around a single sequence. */
  prefix_ids: number[] | null;
  suffix_ids: number[] | null;
  add_prefix_space: boolean;
  use_regex: boolean;
  ignore_merges: boolean;
  normalizer: NormalizerStep[];
  clean_up_tokenization_spaces: boolean;
  padding_side: 'left' | 'right';
  truncation_side: 'left' | 'right';
  split_special_tokens: boolean;
  /** Where it came from, for messages. */
  origin: string;
  /** Whether tokenizer_config.json (or the GGUF metadata) has a chat_template; this runtime does not render one. */
  has_chat_template?: boolean;
}

export const GPT2_DEFAULT_SPECIAL = '<|endoftext|>';
export const GPT2_DEFAULT_MAX_LENGTH = 1024;
const MAX_ID = 0xffffff;

const isObject = (x: unknown): x is Record<string, any> => typeof x === 'object' && x !== null && !Array.isArray(x);
const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));
const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);
/** A GGUF metadata value for a message: a u64/i64 past 2^53 is a bigint, which JSON.stringify refuses (a TypeError). */
const showMeta = (v: unknown): string => clip(typeof v === 'bigint' ? String(v) : JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x)) ?? String(v));

// ---------------------------------------------------------------------------------------------------------------
// Parsers for each file's content. `what` names the file (full path when known) in every message.

export function parseJsonFile(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${what}: invalid JSON: ${errText(e)}`, { cause: e });
  }
}

export function parseVocab(obj: unknown, what: string): Vocab {
  if (!isObject(obj)) throw new TokenizerError(`${what}: expected a JSON object mapping each token to its id`);
  const entries = Object.entries(obj);
  for (const [tok, id] of entries) {
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) > MAX_ID) {
      throw new TokenizerError(`${what}: token ${JSON.stringify(clip(tok))} has id ${clip(JSON.stringify(id) ?? String(id))}; ids must be integers in 0..${MAX_ID}`);
    }
  }
  if (entries.length === 0) throw new TokenizerError(`${what}: the vocabulary is empty`);
  return Vocab.from(entries as [string, number][]);
}

/**
 * vocab.json's text: read straight into the Vocab when it is the usual object of integer ids (no 50 000-property
 * object on the V8 heap), else through JSON.parse and parseVocab, which give the same vocabulary or the error.
 */
export function parseVocabText(text: string, what: string): Vocab {
  const v = readVocabJson(text, MAX_ID);
  return v && v.size > 0 ? v : parseVocab(parseJsonFile(text, what), what);
}

function splitMergeLine(line: string, what: string, where: string): [string, string] {
  const sp = line.indexOf(' ');
  if (sp > 0 && sp < line.length - 1 && line.indexOf(' ', sp + 1) < 0) return [line.slice(0, sp), line.slice(sp + 1)];
  const fields = line.split(' ').filter((f) => f.length > 0).length;
  throw new TokenizerError(`${what}: ${where} ${JSON.stringify(clip(line))} has ${fields} field${fields === 1 ? '' : 's'}; a merge is two tokens separated by one space`);
}

/** merges.txt: "#version" lines and empty lines are skipped, every other line is "left right". */
export function parseMergesText(text: string, what: string): MergeRules {
  return readMergesText(text, (line, n) => { splitMergeLine(line, what, `line ${n}`); throw new TokenizerError(`${what}: line ${n} is not a merge`); });
}

/** tokenizer.json model.merges: "left right" strings or ["left", "right"] pairs. */
export function parseMergesArray(arr: unknown, what: string): MergeRules {
  if (!Array.isArray(arr)) throw new TokenizerError(`${what}: model.merges must be an array`);
  const out: Array<[string, string]> = new Array(arr.length);
  for (let i = 0; i < arr.length; i++) {
    const m = arr[i];
    if (typeof m === 'string') out[i] = splitMergeLine(m, what, `model.merges[${i}]`);
    else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string' && m[0] && m[1]) out[i] = [m[0], m[1]];
    else throw new TokenizerError(`${what}: model.merges[${i}] is ${clip(JSON.stringify(m) ?? String(m))}; expected "left right" or ["left", "right"]`);
  }
  return MergeRules.fromPairs(out);
}

function parseAddedToken(x: unknown, what: string, idHint?: number): AddedTokenSpec {
  if (!isObject(x) || typeof x.content !== 'string' || x.content.length === 0) {
    throw new TokenizerError(`${what}: expected an added token object with a non-empty "content", got ${clip(JSON.stringify(x) ?? String(x))}`);
  }
  const id = x.id ?? idHint;
  if (!Number.isSafeInteger(id) || id < 0 || id > MAX_ID) throw new TokenizerError(`${what}: added token ${JSON.stringify(x.content)} has id ${JSON.stringify(id)}`);
  return {
    id,
    content: x.content,
    special: x.special === true,
    lstrip: x.lstrip === true,
    rstrip: x.rstrip === true,
    single_word: x.single_word === true,
    normalized: x.normalized === true,
  };
}

/** A special-token field: "text", {content: "text"} (AddedToken), null, or absent (undefined). */
function tokenField(x: unknown, what: string, key: string): string | null | undefined {
  if (x === undefined) return undefined;
  if (x === null) return null;
  if (typeof x === 'string') return x;
  if (isObject(x) && typeof x.content === 'string') return x.content;
  throw new TokenizerError(`${what}: "${key}" must be a string, an AddedToken object or null`);
}

function parseNormalizer(n: unknown, what: string): NormalizerStep[] {
  if (n === null || n === undefined) return [];
  if (!isObject(n)) throw new TokenizerError(`${what}: "normalizer" must be an object or null`);
  if (n.type === 'Sequence') {
    if (!Array.isArray(n.normalizers)) throw new TokenizerError(`${what}: Sequence normalizer without "normalizers"`);
    return n.normalizers.flatMap((m: unknown) => parseNormalizer(m, what));
  }
  if (['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase'].includes(n.type)) return [n.type];
  throw new TokenizerError(`${what}: normalizer ${JSON.stringify(n.type)} is not supported (GPT-2 byte-level BPE supports none, NFC/NFD/NFKC/NFKD, Lowercase)`);
}

/** The pre-tokenizer must be GPT-2's ByteLevel (alone or as the only step of a Sequence). */
function parsePreTokenizer(p: unknown, what: string): { add_prefix_space: boolean; use_regex: boolean } {
  const steps = isObject(p) && p.type === 'Sequence' && Array.isArray(p.pretokenizers) ? p.pretokenizers : [p];
  if (steps.length !== 1 || !isObject(steps[0]) || steps[0].type !== 'ByteLevel') {
    const kind = isObject(p) ? JSON.stringify(p.type) : String(p);
    throw new TokenizerError(`${what}: pre_tokenizer ${kind} is not supported: only GPT-2 byte-level BPE (a ByteLevel pre_tokenizer) is`);
  }
  const b = steps[0];
  return { add_prefix_space: b.add_prefix_space === true, use_regex: b.use_regex !== false };
}

/** Ids a TemplateProcessing post-processor puts before and after a single sequence; null when there is none. */
function parsePostProcessor(p: unknown, what: string): { prefix: number[]; suffix: number[] } | null {
  if (p === null || p === undefined) return null;
  if (!isObject(p)) throw new TokenizerError(`${what}: "post_processor" must be an object or null`);
  if (p.type === 'ByteLevel') return null;
  if (p.type === 'Sequence' && Array.isArray(p.processors)) {
    let found: { prefix: number[]; suffix: number[] } | null = null;
    for (const q of p.processors) found = parsePostProcessor(q, what) ?? found;
    return found;
  }
  if (p.type === 'TemplateProcessing') {
    const prefix: number[] = [], suffix: number[] = [];
    let seen = false;
    for (const piece of Array.isArray(p.single) ? p.single : []) {
      if (isObject(piece) && isObject(piece.Sequence)) { seen = true; continue; }
      const name = isObject(piece) && isObject(piece.SpecialToken) ? piece.SpecialToken.id : undefined;
      const ids = typeof name === 'string' && isObject(p.special_tokens) && isObject(p.special_tokens[name]) ? p.special_tokens[name].ids : undefined;
      if (!Array.isArray(ids) || !ids.every((i: unknown) => Number.isSafeInteger(i) && (i as number) >= 0)) {
        throw new TokenizerError(`${what}: post_processor template piece ${clip(JSON.stringify(piece))} names no special token with ids`);
      }
      (seen ? suffix : prefix).push(...ids);
    }
    return { prefix, suffix };
  }
  throw new TokenizerError(`${what}: post_processor ${JSON.stringify(p.type)} is not supported for GPT-2 byte-level BPE`);
}

const side = (x: unknown, what: string, key: string): 'left' | 'right' | undefined => {
  if (x === undefined || x === null) return undefined;
  if (x === 'left' || x === 'right') return x;
  throw new TokenizerError(`${what}: "${key}" must be "left" or "right", got ${clip(JSON.stringify(x))}`);
};

// ---------------------------------------------------------------------------------------------------------------

/** A list of strings as one text and the UTF-16 start of each item (items + 1 starts). */
interface JoinedStrings { text: string; starts: Int32Array }

/** A GGUF string array as JoinedStrings: as it comes from the GGUF reader (GGUFStrings in src/io/gguf.ts: `text`
 *  and `starts`, no string per item), or joined from a plain array of strings; null for anything else. */
function joinedStrings(v: unknown, what: string): JoinedStrings | null {
  if (typeof v === 'object' && v !== null && typeof (v as JoinedStrings).text === 'string' && (v as JoinedStrings).starts instanceof Int32Array) return v as JoinedStrings;
  if (!Array.isArray(v)) return null;
  const starts = new Int32Array(v.length + 1);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== 'string') throw new TokenizerError(`${what}[${i}] is not a string`);
    starts[i + 1] = starts[i] + v[i].length;
  }
  return { text: v.join(''), starts };
}

/** Item i is the token of id i; a token listed twice is an error naming both ids. */
function vocabFromList({ text, starts }: JoinedStrings, what: string): Vocab {
  const vocab = new Vocab();
  for (let i = 0; i + 1 < starts.length; i++) {
    for (let u = starts[i]; u < starts[i + 1]; u++) vocab.pushUnit(text.charCodeAt(u));
    const before = vocab.size;
    vocab.commit(i);
    if (vocab.size === before) {
      const t = text.slice(starts[i], starts[i + 1]);
      let first = 0;
      while (text.slice(starts[first], starts[first + 1]) !== t) first++;
      throw new TokenizerError(`${what}: token ${JSON.stringify(clip(t))} appears at ids ${first} and ${i}`);
    }
  }
  return vocab.seal();
}

/** Merge rules from "left right" items (one space, both halves non-empty), as ranges of the list's text. */
function mergesFromList({ text, starts }: JoinedStrings, what: string): MergeRules {
  const n = starts.length - 1, bounds = new Int32Array(4 * n);
  for (let r = 0; r < n; r++) {
    const s = starts[r], e = starts[r + 1], sp = text.indexOf(' ', s), next = sp < 0 ? -1 : text.indexOf(' ', sp + 1);
    if (!(sp > s && sp < e - 1 && (next < 0 || next >= e))) splitMergeLine(text.slice(s, e), what, `tokenizer.ggml.merges[${r}]`); // throws
    bounds[4 * r] = s; bounds[4 * r + 1] = sp; bounds[4 * r + 2] = sp + 1; bounds[4 * r + 3] = e;
  }
  return new MergeRules(text, bounds, n);
}

/** GGUF token types (llama.cpp's llama_token_type). */
const GGUF_TOKEN_CONTROL = 3, GGUF_TOKEN_USER_DEFINED = 4;

/**
 * A GPT-2 tokenizer from GGUF metadata (key → plain value) of a `general.architecture` "gpt2" file (another or none
 * is a GGUFError, before any tokenizer key is looked at): `tokenizer.ggml.model` "gpt2", the tokens in id
 * order, the merges as "left right" strings, token types (control tokens are special added tokens, user-defined
 * ones plain added tokens) and the bos/eos/unk/padding ids. `what` names the file in messages.
 */
export function tokenizerDataFromGGUF(meta: ReadonlyMap<string, unknown>, what: string, origin = what): TokenizerData {
  const key = (k: string) => `${what}: metadata ${k}`;
  // the model's architecture first, as the model loader checks it (gguf-model.ts ggufConfigJson): a llama file's
  // tokenizer (SentencePiece, or another BPE) would otherwise be refused for one of its keys, as if the file were
  // a gpt2 one with a bad tokenizer
  const arch = meta.get('general.architecture');
  if (arch === undefined) throw new GGUFError(`${what}: missing metadata key general.architecture`);
  if (arch !== 'gpt2') {
    const n = typeof arch === 'object' && arch !== null ? (arch as { length?: unknown }).length : undefined; // an array, or GGUFStrings
    throw new GGUFError(`${what}: general.architecture is ${typeof n === 'number' ? `an array of ${n}` : showMeta(arch)}; gpt2-wasm runs only "gpt2" models`);
  }
  const model = meta.get('tokenizer.ggml.model');
  if (model === undefined) throw new TokenizerError(`${key('tokenizer.ggml.model')} is missing: the file has no tokenizer`);
  if (model !== 'gpt2') throw new TokenizerError(`${key('tokenizer.ggml.model')} is ${showMeta(model)}; only GPT-2 byte-level BPE ("gpt2") is supported`);
  const pre = meta.get('tokenizer.ggml.pre');
  if (pre !== undefined && pre !== 'gpt-2' && pre !== 'default') {
    throw new TokenizerError(`${key('tokenizer.ggml.pre')} is ${showMeta(pre)}; only GPT-2's pre-tokenizer ("gpt-2") is supported`);
  }
  const tokenList = joinedStrings(meta.get('tokenizer.ggml.tokens'), key('tokenizer.ggml.tokens'));
  if (!tokenList || tokenList.starts.length < 2 || tokenList.starts.length > MAX_ID + 2) throw new TokenizerError(`${key('tokenizer.ggml.tokens')} must be a non-empty array of strings`);
  const vocab = vocabFromList(tokenList, key('tokenizer.ggml.tokens'));
  const tokenCount = tokenList.starts.length - 1;
  const tokenAtId = (id: number) => tokenList.text.slice(tokenList.starts[id], tokenList.starts[id + 1]);
  const mergeList = joinedStrings(meta.get('tokenizer.ggml.merges') ?? [], key('tokenizer.ggml.merges'));
  if (!mergeList) throw new TokenizerError(`${key('tokenizer.ggml.merges')} must be an array of strings`);
  const merges = mergesFromList(mergeList, what);
  const types = meta.get('tokenizer.ggml.token_type');
  if (types !== undefined && (!Array.isArray(types) || types.length !== tokenCount)) {
    throw new TokenizerError(`${key('tokenizer.ggml.token_type')} must be an array with one entry per token (${tokenCount})`);
  }
  const added: AddedTokenSpec[] = [];
  if (Array.isArray(types)) {
    types.forEach((ty, id) => {
      if (ty === GGUF_TOKEN_CONTROL || ty === GGUF_TOKEN_USER_DEFINED) {
        const special = ty === GGUF_TOKEN_CONTROL;
        added.push({ id, content: tokenAtId(id), special, lstrip: false, rstrip: false, single_word: false, normalized: !special });
      }
    });
  }
  const tokenAt = (k: string): string | null | undefined => {
    const v = meta.get(k);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= tokenCount) throw new TokenizerError(`${key(k)} is ${String(v)}, not a token id below ${tokenCount}`);
    return tokenAtId(v);
  };
  const gpt2Default = vocab.has(GPT2_DEFAULT_SPECIAL) ? GPT2_DEFAULT_SPECIAL : null;
  const flag = (k: string): boolean => {
    const v = meta.get(k);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw new TokenizerError(`${key(k)} must be true or false`);
    return v;
  };
  const ctx = meta.get('gpt2.context_length');
  return {
    vocab, merges, added_tokens: added,
    bos_token: tokenAt('tokenizer.ggml.bos_token_id') ?? gpt2Default,
    eos_token: tokenAt('tokenizer.ggml.eos_token_id') ?? gpt2Default,
    unk_token: tokenAt('tokenizer.ggml.unknown_token_id') ?? gpt2Default,
    pad_token: tokenAt('tokenizer.ggml.padding_token_id') ?? null,
    additional_special_tokens: [],
    model_max_length: typeof ctx === 'number' && ctx > 0 ? ctx : GPT2_DEFAULT_MAX_LENGTH,
    add_bos_token: flag('tokenizer.ggml.add_bos_token'),
    add_eos_token: flag('tokenizer.ggml.add_eos_token'),
    prefix_ids: null, suffix_ids: null,
    add_prefix_space: false, use_regex: true, ignore_merges: false, normalizer: [],
    clean_up_tokenization_spaces: false, padding_side: 'right', truncation_side: 'right', split_special_tokens: false,
    origin,
    has_chat_template: meta.has('tokenizer.chat_template'),
  };
}

/** Read and check every tokenizer file `source` has; throws TokenizerError naming the file at fault. */
export async function loadTokenizerData(source: TextFileSource, origin = 'tokenizer'): Promise<TokenizerData> {
  if (source.ggufMetadata) return tokenizerDataFromGGUF(source.ggufMetadata(), source.describe?.('tokenizer') ?? origin, origin);
  const where = (f: string) => (source.describe ? source.describe(f) : f);
  const exists = async (f: string) => {
    try {
      return await source.exists(f);
    } catch (e) {
      if (e instanceof GPT2WasmError) throw e;
      throw new TokenizerError(`${where(f)}: cannot check for the file: ${errText(e)}`, { cause: e });
    }
  };
  const read = async (f: string) => {
    try {
      return await source.readText(f);
    } catch (e) {
      if (e instanceof GPT2WasmError) throw e;
      throw new TokenizerError(`${where(f)}: cannot read: ${errText(e)}`, { cause: e });
    }
  };
  const [hasVocab, hasMerges, hasJson, hasConfig, hasMap] = await Promise.all(
    ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'].map(exists),
  );

  let vocab: Vocab;
  let merges: MergeRules;
  let added: AddedTokenSpec[] = [];
  let pre = { add_prefix_space: false, use_regex: true };
  let normalizer: NormalizerStep[] = [];
  let post: { prefix: number[]; suffix: number[] } | null = null;
  let ignoreMerges = false;
  let modelUnk: string | null | undefined;

  if (hasVocab && hasMerges) {
    const [vText, mText] = await Promise.all([read('vocab.json'), read('merges.txt')]);
    vocab = parseVocabText(vText, where('vocab.json'));
    merges = parseMergesText(mText, where('merges.txt'));
  } else if (hasJson) {
    const what = where('tokenizer.json');
    const tj = parseJsonFile(await read('tokenizer.json'), what);
    if (!isObject(tj) || !isObject(tj.model)) throw new TokenizerError(`${what}: expected an object with a "model" object`);
    const model = tj.model;
    if (model.type !== undefined && model.type !== 'BPE') throw new TokenizerError(`${what}: model type ${JSON.stringify(model.type)} is not supported; only BPE (GPT-2 byte-level) is`);
    if (model.continuing_subword_prefix || model.end_of_word_suffix || model.byte_fallback) {
      throw new TokenizerError(`${what}: BPE with continuing_subword_prefix, end_of_word_suffix or byte_fallback is not GPT-2 byte-level BPE and is not supported`);
    }
    vocab = parseVocab(model.vocab, `${what}: model.vocab`);
    merges = parseMergesArray(model.merges ?? [], what);
    ignoreMerges = model.ignore_merges === true;
    modelUnk = tokenField(model.unk_token, what, 'model.unk_token');
    if (tj.added_tokens !== undefined && tj.added_tokens !== null) {
      if (!Array.isArray(tj.added_tokens)) throw new TokenizerError(`${what}: "added_tokens" must be an array`);
      added = tj.added_tokens.map((t: unknown, i: number) => parseAddedToken(t, `${what}: added_tokens[${i}]`));
    }
    pre = parsePreTokenizer(tj.pre_tokenizer, what);
    normalizer = parseNormalizer(tj.normalizer, what);
    post = parsePostProcessor(tj.post_processor, what);
  } else {
    const missing = hasVocab ? 'merges.txt' : 'vocab.json';
    const other = hasVocab ? ' (vocab.json is there)' : hasMerges ? ' (merges.txt is there)' : '';
    throw new TokenizerError(`${where(missing)}: file not found${other}; a GPT-2 tokenizer needs vocab.json and merges.txt, or tokenizer.json`);
  }

  let cfg: Record<string, any> = {};
  if (hasConfig) {
    const what = where('tokenizer_config.json');
    const c = parseJsonFile(await read('tokenizer_config.json'), what);
    if (!isObject(c)) throw new TokenizerError(`${what}: expected a JSON object`);
    cfg = c;
    if (cfg.added_tokens_decoder !== undefined && cfg.added_tokens_decoder !== null) {
      if (!isObject(cfg.added_tokens_decoder)) throw new TokenizerError(`${what}: "added_tokens_decoder" must be an object`);
      const known = new Set(added.map((t) => t.content));
      for (const [k, v] of Object.entries(cfg.added_tokens_decoder)) {
        const id = Number(k);
        const t = parseAddedToken(v, `${what}: added_tokens_decoder["${k}"]`, Number.isSafeInteger(id) ? id : undefined);
        if (!known.has(t.content)) { added.push(t); known.add(t.content); }
      }
    }
  }
  let map: Record<string, any> = {};
  if (hasMap) {
    const what = where('special_tokens_map.json');
    const m = parseJsonFile(await read('special_tokens_map.json'), what);
    if (!isObject(m)) throw new TokenizerError(`${what}: expected a JSON object`);
    map = m;
  }

  const cfgWhat = where('tokenizer_config.json'), mapWhat = where('special_tokens_map.json');
  const special = (key: string, fallback: string | null): string | null => {
    const a = tokenField(cfg[key], cfgWhat, key);
    if (a !== undefined) return a;
    const b = tokenField(map[key], mapWhat, key);
    if (b !== undefined) return b;
    return fallback;
  };
  const known = (s: string) => vocab.has(s) || added.some((t) => t.content === s);
  const gpt2Default = known(GPT2_DEFAULT_SPECIAL) ? GPT2_DEFAULT_SPECIAL : null;
  const extraList = (x: unknown, what: string): string[] => {
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x)) throw new TokenizerError(`${what}: "additional_special_tokens" must be an array`);
    return x.map((t) => tokenField(t, what, 'additional_special_tokens') ?? '').filter((t) => t.length > 0);
  };

  const maxLen = cfg.model_max_length;
  if (maxLen !== undefined && maxLen !== null && !(typeof maxLen === 'number' && maxLen > 0)) {
    throw new TokenizerError(`${cfgWhat}: "model_max_length" must be a positive number, got ${clip(JSON.stringify(maxLen))}`);
  }
  const bool = (key: string, fallback: boolean): boolean => {
    const v = cfg[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new TokenizerError(`${cfgWhat}: "${key}" must be true or false`);
    return v;
  };

  return {
    vocab,
    merges,
    added_tokens: added,
    bos_token: special('bos_token', gpt2Default),
    eos_token: special('eos_token', gpt2Default),
    unk_token: special('unk_token', modelUnk !== undefined ? modelUnk : gpt2Default),
    pad_token: special('pad_token', null),
    additional_special_tokens: [...extraList(cfg.additional_special_tokens, cfgWhat), ...extraList(map.additional_special_tokens, mapWhat)],
    model_max_length: typeof maxLen === 'number' ? maxLen : GPT2_DEFAULT_MAX_LENGTH,
    add_bos_token: bool('add_bos_token', false),
    add_eos_token: bool('add_eos_token', false),
    prefix_ids: post ? post.prefix : null,
    suffix_ids: post ? post.suffix : null,
    add_prefix_space: bool('add_prefix_space', pre.add_prefix_space),
    use_regex: pre.use_regex,
    ignore_merges: ignoreMerges,
    normalizer,
    clean_up_tokenization_spaces: bool('clean_up_tokenization_spaces', false),
    padding_side: side(cfg.padding_side, cfgWhat, 'padding_side') ?? 'right',
    truncation_side: side(cfg.truncation_side, cfgWhat, 'truncation_side') ?? 'right',
    split_special_tokens: bool('split_special_tokens', false),
    origin,
    has_chat_template: cfg.chat_template !== undefined && cfg.chat_template !== null,
  };
}
