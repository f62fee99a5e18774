// GGUF writer: a GPT-2 checkpoint (safetensors directory, Hub id, or another GGUF) → one .gguf file that
// llama.cpp loads as architecture `gpt2`, with the metadata and tensor names its converter
// (convert_hf_to_gguf.py, GPT2Model) writes: matrices as ggml [ne0 = in, ne1 = out] (Conv1D weights
// transposed), 1-D tensors and the position table in F32, the tokenizer as tokenizer.ggml.*.
//
// Memory stays bounded: the header (metadata + tensor table, ~2 MB for GPT-2's vocabulary) is built first,
// then each tensor is produced in bands of rows of at most BAND_BYTES as f32 and encoded (F32, F16, Q8_0,
// Q4_0, with the runtime's ggml-exact quantizers) straight to the file. A Conv1D weight is [in, out] in the checkpoint, so a band of output rows is a
// band of its columns: it is gathered by streaming the tensor once per band.
//
// It lives in src/model because it writes what the weight plan (planWeights) validated, and in the model's
// tensor layout; io stays free of the model.
import { GPT2WasmError, OptionError, RuntimeError, TokenizerError, WeightsError } from '../errors.js';
import { checkKnownKeys } from '../options.js';
import { loadConfig, type GPT2Config } from '../io/config.js';
import { GGML_TYPES, ggmlTypeByName } from '../io/ggml-dequant.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_TYPE } from '../io/gguf.js';
import { hfToGgufName, isGGUFSource, openTensorReader, TIED_OUTPUT_KEY } from '../io/gguf-model.js';
import { floatToHalf } from '../io/half.js';
import { resolveSource, withGGUFFile } from '../io/resolve.js';
import { convertToF32, type STDtype } from '../io/safetensors.js';
import type { ModelSource } from '../io/source.js';
import type { TensorInfoLike, TensorReader } from '../io/tensor-reader.js';
import { QK8_0 as QK, firstNonFiniteScale, quantizeQ4_0, quantizeQ8_0 } from '../runtime/quant.js';
import { loadTokenizerData, type TokenizerData } from '../tokenizer/load.js';
import { firstNonFinite, planWeights } from './weights.js';

export type GGUFOutType = 'f32' | 'f16' | 'q8_0' | 'q4_0';
export const GGUF_OUT_TYPES: GGUFOutType[] = ['f32', 'f16', 'q8_0', 'q4_0'];
const GGML_ID: Record<GGUFOutType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 };
/** llama_ftype of a file whose matrices are mostly of the type. */
const FILE_TYPE: Record<GGUFOutType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };
/** GGML_QNT_VERSION */
export const GGUF_QUANTIZATION_VERSION = 2;
const TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5;
const BAND_BYTES = 4 << 20;

export interface SaveGGUFOptions {
  /** Type of the weight matrices (default 'f16'; with 'q4_0' the token embedding stays 'q8_0' unless `keep` says otherwise); 1-D tensors and the position table are always F32. */
  dtype?: GGUFOutType;
  /** Per-tensor types, by Hugging Face or GGUF name or the aliases `wte` / `token_embd` / `lm_head` / `output` (a tied
   *  head is the embedding), e.g. { wte: 'q8_0' }; two names of one tensor are an error. */
  keep?: Record<string, GGUFOutType>;
  /** general.name (default: a GGUF source's own general.name, else the source's directory or file name). */
  name?: string;
  /** Called after each tensor is written. */
  onProgress?: (p: { tensor: string; type: string; done: number; total: number }) => void;
  /** Stops the conversion: the promise rejects with `signal.reason` and the partial file is removed (the output
   *  path is left as it was). The CLI's convert aborts it on SIGINT and SIGTERM. */
  signal?: AbortSignal;
}

export interface SavedGGUF { path: string; bytes: number; tensors: Array<{ name: string; type: string; dims: number[] }> }

// ---------------------------------------------------------------------------------------------------------------
// Header encoding

class ByteWriter {
  private parts: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array) { this.parts.push(b); this.length += b.byteLength; }
  private num(n: number, fn: (v: DataView) => void) { const b = new Uint8Array(n); fn(new DataView(b.buffer)); this.push(b); }
  u32(v: number) { this.num(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number) { this.num(4, (d) => d.setInt32(0, v, true)); }
  u64(v: number) { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  f32(v: number) { this.num(4, (d) => d.setFloat32(0, v, true)); }
  u8(v: number) { this.push(Uint8Array.of(v)); }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.byteLength); this.push(b); }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.byteLength; }
    return out;
  }
}

type MetaValue = { t: 'u32'; v: number } | { t: 'f32'; v: number } | { t: 'bool'; v: boolean } | { t: 'str'; v: string }
  | { t: 'str[]'; v: string[] } | { t: 'i32[]'; v: number[] };

function writeKV(w: ByteWriter, key: string, m: MetaValue) {
  w.str(key);
  switch (m.t) {
    case 'u32': w.u32(GGUF_TYPE.UINT32); w.u32(m.v); break;
    case 'f32': w.u32(GGUF_TYPE.FLOAT32); w.f32(m.v); break;
    case 'bool': w.u32(GGUF_TYPE.BOOL); w.u8(m.v ? 1 : 0); break;
    case 'str': w.u32(GGUF_TYPE.STRING); w.str(m.v); break;
    case 'str[]': w.u32(GGUF_TYPE.ARRAY); w.u32(GGUF_TYPE.STRING); w.u64(m.v.length); for (const s of m.v) w.str(s); break;
    case 'i32[]': w.u32(GGUF_TYPE.ARRAY); w.u32(GGUF_TYPE.INT32); w.u64(m.v.length); for (const x of m.v) w.i32(x); break;
  }
}

/** tokenizer.ggml.* for a GPT-2 BPE tokenizer, its token list padded to the embedding's rows as llama.cpp's converter does. */
function tokenizerMetadata(tok: TokenizerData, cfg: GPT2Config, what: string): Array<[string, MetaValue]> {
  const V = cfg.vocab_size;
  const tokens: (string | undefined)[] = new Array(V);
  const types = new Array<number>(V).fill(TOKEN_NORMAL);
  const place = (t: string, id: number) => {
    if (id >= V) throw new TokenizerError(`${what}: token ${JSON.stringify(t)} has id ${id}, but the model's embedding has only ${V} rows`);
    tokens[id] = t;
  };
  for (const [t, id] of tok.vocab) place(t, id);
  for (const a of tok.added_tokens) { place(a.content, a.id); types[a.id] = a.special ? TOKEN_CONTROL : TOKEN_USER_DEFINED; }
  const idOf = (t: string | null) => (t === null ? undefined : tokens.indexOf(t));
  for (const s of [tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token]) {
    const id = idOf(s);
    if (id !== undefined && id >= 0) types[id] = TOKEN_CONTROL;
  }
  for (let i = 0; i < V; i++) if (tokens[i] === undefined) { tokens[i] = `[PAD${i}]`; types[i] = TOKEN_UNUSED; }
  const out: Array<[string, MetaValue]> = [
    ['tokenizer.ggml.model', { t: 'str', v: 'gpt2' }],
    ['tokenizer.ggml.pre', { t: 'str', v: 'gpt-2' }],
    ['tokenizer.ggml.tokens', { t: 'str[]', v: tokens as string[] }],
    ['tokenizer.ggml.token_type', { t: 'i32[]', v: types }],
    ['tokenizer.ggml.merges', { t: 'str[]', v: tok.merges.map(([a, b]) => `${a} ${b}`) }],
  ];
  const ids: Array<[string, number | null]> = [
    ['tokenizer.ggml.bos_token_id', cfg.bos_token_id], ['tokenizer.ggml.eos_token_id', cfg.eos_token_id],
    ['tokenizer.ggml.padding_token_id', cfg.pad_token_id],
  ];
  for (const [k, id] of ids) if (id !== null && id < V) out.push([k, { t: 'u32', v: id }]);
  out.push(['tokenizer.ggml.add_bos_token', { t: 'bool', v: tok.add_bos_token }]);
  return out;
}

/** Configs a `gpt2` GGUF can express (llama.cpp's GPT-2 graph: gelu tanh, scaled attention, no cross-attention). */
function checkExpressible(cfg: GPT2Config, where: string) {
  const bad = (why: string) => new OptionError(`${where}: cannot be written as a gpt2 GGUF: ${why}`);
  if (cfg.add_cross_attention) throw bad('it has cross-attention');
  if (cfg.activation_function !== 'gelu_new' && cfg.activation_function !== 'gelu_pytorch_tanh') throw bad(`activation_function ${cfg.activation_function} (llama.cpp's gpt2 uses the tanh GELU)`);
  if (!cfg.scale_attn_weights || cfg.scale_attn_by_inverse_layer_idx || cfg.reorder_and_upcast_attn) throw bad('non-default attention scaling');
}

/** Classification heads (GPT2ForSequenceClassification `score.*`, GPT2ForTokenClassification `classifier.*`):
 *  llama.cpp's gpt2 graph has only the LM head, so writing the rest would silently turn a classifier into an LM. */
function checkNoClassificationHead(reader: TensorReader, where: string) {
  const heads: Record<string, string> = {
    'score.weight': 'GPT2ForSequenceClassification', 'score.bias': 'GPT2ForSequenceClassification',
    'classifier.weight': 'GPT2ForTokenClassification', 'classifier.bias': 'GPT2ForTokenClassification',
  };
  const found = [...reader.tensors.keys()].map((k) => (k.startsWith('transformer.') ? k.slice(12) : k)).filter((k) => Object.hasOwn(heads, k));
  if (found.length) {
    throw new OptionError(`${where}: cannot be written as a gpt2 GGUF: it has a ${heads[found[0]]} head (${found.join(', ')}), ` +
      'which a gpt2 GGUF cannot hold (llama.cpp\'s gpt2 has only the LM head); converting would drop it');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor data

interface OutTensor { key: string; name: string; dims: number[]; type: GGUFOutType; N: number; K: number; transpose: boolean; bytes: number; offset: number }

/** Bytes of one Q8_0 / Q4_0 block. */
const blockBytes = (type: GGUFOutType) => GGML_TYPES.get(GGML_ID[type])!.typeSize;
const rowBytes = (type: GGUFOutType, K: number) => (type === 'f32' ? 4 * K : type === 'f16' ? 2 * K : (K / QK) * blockBytes(type));

/** Rows [n0, n0+rows) of the tensor as the runtime sees it ([N, K] f32), band by band. */
async function* rowBands(reader: TensorReader, src: { name: string; dtype: string }, t: OutTensor): AsyncGenerator<{ rows: number; data: Float32Array }> {
  const { N, K } = t;
  const band = Math.max(1, Math.min(N, Math.floor(BAND_BYTES / (4 * K))));
  let staging = new Float32Array(0);
  const decoded = async function* () {
    for await (const { bytes } of reader.chunks(src.name)) {
      const n = bytes.byteLength / (src.dtype === 'F32' ? 4 : 2);
      if (staging.length < n) staging = new Float32Array(n);
      convertToF32(src.dtype as STDtype, bytes.subarray(0, n * (src.dtype === 'F32' ? 4 : 2)), staging, `tensor ${src.name}`);
      yield staging.subarray(0, n);
    }
  };
  if (!t.transpose) {
    const buf = new Float32Array(band * K);
    let fill = 0;
    for await (const vals of decoded()) {
      let i = 0;
      while (i < vals.length) {
        const take = Math.min(vals.length - i, buf.length - fill);
        buf.set(vals.subarray(i, i + take), fill);
        fill += take; i += take;
        if (fill === buf.length) { yield { rows: band, data: buf }; fill = 0; }
      }
    }
    if (fill % K) throw new WeightsError(`${t.key}: tensor ended inside a row`);
    if (fill) yield { rows: fill / K, data: buf.subarray(0, fill) };
    return;
  }
  // source [K, N] row-major: element g is (k = g / N, n = g % N) and lands at row n, column k
  for (let n0 = 0; n0 < N; n0 += band) {
    const rows = Math.min(band, N - n0), buf = new Float32Array(rows * K);
    let k = 0, n = 0;
    for await (const vals of decoded()) {
      for (let i = 0; i < vals.length; i++) {
        if (n >= n0 && n < n0 + rows) buf[(n - n0) * K + k] = vals[i];
        if (++n === N) { n = 0; k++; }
      }
    }
    if (k !== K) throw new WeightsError(`${t.key}: tensor ended after ${k} of ${K} rows`);
    yield { rows, data: buf };
  }
}

/** Encode rows of finite f32 weights; a weight or block scale the type cannot hold (|x| > 65504 in F16, a Q8_0/Q4_0
 *  scale past the f16 range) is an error naming the tensor, as llama-quantize refuses it: an infinite value in
 *  the file would load as a wrong answer elsewhere and be refused by our own loader. */
function encodeRows(type: GGUFOutType, data: Float32Array, rows: number, K: number, row0: number, what: string): Uint8Array {
  if (type === 'f32') return new Uint8Array(data.buffer, data.byteOffset, rows * K * 4);
  if (type === 'f16') {
    const h = new Uint16Array(rows * K);
    for (let i = 0; i < h.length; i++) {
      h[i] = floatToHalf(data[i]);
      if ((h[i] & 0x7c00) === 0x7c00) throw new WeightsError(`${what}: weight ${data[i]} (row ${row0 + Math.floor(i / K)}, column ${i % K}) is out of the f16 range; write it as f32`);
    }
    return new Uint8Array(h.buffer);
  }
  const rb = rowBytes(type, K), out = new Uint8Array(rows * rb);
  const quant = type === 'q8_0' ? quantizeQ8_0 : quantizeQ4_0;
  const bb = blockBytes(type);
  for (let r = 0; r < rows; r++) {
    const blocks = out.subarray(r * rb, (r + 1) * rb);
    quant(data.subarray(r * K, (r + 1) * K), blocks);
    const b = firstNonFiniteScale(blocks, bb);
    if (b >= 0) throw new WeightsError(`${what}: the ${type.toUpperCase()} scale of row ${row0 + r} block ${b} (columns ${b * QK}..${b * QK + QK - 1}) overflows f16; write it as f32 or f16`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

function typeOption(v: unknown, what: string): GGUFOutType {
  if (typeof v === 'string' && (GGUF_OUT_TYPES as string[]).includes(v.toLowerCase())) return v.toLowerCase() as GGUFOutType;
  throw new OptionError(`${what} must be one of ${GGUF_OUT_TYPES.join(', ')}, got ${JSON.stringify(v)}${outTypeHint(v)}`);
}

/** What a type this writer does not take means, when it is another spelling of one it does (the runtime's dtypes
 *  fp32 / fp16 / q8 / q4, whose q8 and q4 are the Q8_0 and Q4_0 blocks written here) or a GGUF type it does not
 *  write (BF16, K-quants, IQ types, ...): '' for anything else. */
export function outTypeHint(v: unknown): string {
  if (typeof v !== 'string') return '';
  const lower = v.trim().toLowerCase();
  const same: Record<string, GGUFOutType> = { fp32: 'f32', float32: 'f32', fp16: 'f16', float16: 'f16', q8: 'q8_0', q4: 'q4_0' };
  if ((GGUF_OUT_TYPES as string[]).includes(lower)) return `; without the spaces: '${lower}'`;
  if (Object.hasOwn(same, lower)) {
    const t = same[lower];
    const ours = lower.startsWith('float') ? JSON.stringify(v) : `the runtime's dtype '${lower}'`;
    return `; ${ours} is '${t}' in a GGUF file${t === 'q8_0' || t === 'q4_0' ? ` (the same ${t.toUpperCase()} blocks)` : ''}`;
  }
  const written = GGUF_OUT_TYPES.map((t) => t.toUpperCase()).join(', ');
  if (lower === 'bf16' || lower === 'bfloat16') return `; BF16 is not written (the types written are ${written}): f32 keeps BF16 weights exactly, f16 takes half the bytes (and cannot hold a weight past ±65504)`;
  const name = v.trim().toUpperCase();
  // llama-quantize's own types (its Q4_K_M, Q5_K_M, Q6_K, Q4_1, Q5_x files of one written here: docs/llama-cpp.md, section 6)
  if (/^(Q4_1|Q5_[01]|Q[2-6]_K(_[SML])?|IQ[1-4]_[A-Z]+|TQ[12]_0)$/.test(name)) {
    return `; ${name} is not written by this converter (the types written are ${written}): write f32 here, then llama.cpp's llama-quantize can make ${name} from that file`;
  }
  if (ggmlTypeByName(name) || /^(I?Q[1-8]|TQ[12])_/.test(name)) return `; ${name} is not written by this converter (the types written are ${written})`;
  return '';
}

/**
 * The type of a matrix when `keep` does not name it: `dtype`, except that q4_0 keeps the token embedding (the
 * tied LM head, the most sensitive matrix; llama.cpp's mixes keep it higher too) at q8_0. Measured on
 * fixtures/models/gpt2-trained: perplexity +1.9 % with it at Q4_0, +0.11 % at Q8_0 (README, GGUF).
 */
function defaultType(key: string, dtype: GGUFOutType): GGUFOutType {
  return dtype === 'q4_0' && key === 'wte.weight' ? 'q8_0' : dtype;
}

const ALIASES: Readonly<Record<string, string>> = Object.assign(Object.create(null), {
  wte: 'wte.weight', token_embd: 'wte.weight', 'token_embd.weight': 'wte.weight',
  lm_head: 'lm_head.weight', output: 'lm_head.weight', 'output.weight': 'lm_head.weight',
});

/** Resolve `keep` keys (HF names, GGUF names, aliases) to canonical HF keys; two names of one tensor are an error. */
function keepPlan(keep: unknown, keys: Set<string>): Map<string, GGUFOutType> {
  const out = new Map<string, GGUFOutType>();
  if (keep === undefined || keep === null) return out;
  let entries: Array<[string, unknown]>;
  if (keep instanceof Map) entries = [...keep];
  else {
    const proto = typeof keep === 'object' ? Object.getPrototypeOf(keep) : undefined;
    if (typeof keep !== 'object' || Array.isArray(keep) || (proto !== Object.prototype && proto !== null)) {
      throw new OptionError(`keep must be an object of tensor name → type, e.g. { wte: 'q8_0' }, got ${Array.isArray(keep) ? 'an array' : typeof keep === 'object' ? 'an object with another prototype (a name such as __proto__ cannot be a key)' : JSON.stringify(keep)}`);
    }
    entries = Object.entries(keep);
  }
  const given = new Map<string, string>(); // canonical key → the name it was given as
  for (const [k, v] of entries) {
    if (typeof k !== 'string') throw new OptionError(`keep: tensor names must be strings, got ${String(k)}`);
    let key = Object.hasOwn(ALIASES, k) ? ALIASES[k] : k.startsWith('transformer.') ? k.slice(12) : k;
    if (key === 'lm_head.weight' && !keys.has(key)) key = 'wte.weight'; // a tied head is the embedding
    if (!keys.has(key)) {
      const viaGguf = [...keys].find((h) => hfToGgufName(h) === k);
      if (!viaGguf) throw new OptionError(`keep: no weight matrix named ${JSON.stringify(k)} (use wte, lm_head, or a tensor name such as h.0.attn.c_attn.weight / blk.0.attn_qkv.weight)`);
      key = viaGguf;
    }
    const prev = given.get(key);
    if (prev !== undefined) {
      throw new OptionError(`keep: ${JSON.stringify(prev)} and ${JSON.stringify(k)} name the same tensor (${key}${key === 'wte.weight' && !keys.has('lm_head.weight') ? ', the embedding that is also the tied LM head' : ''}); give it once`);
    }
    given.set(key, k);
    out.set(key, typeOption(v, `keep.${k}`));
  }
  return out;
}

/** `path` as a place to write a new file: a non-empty string whose parent is a directory, and which is either
 *  absent or a regular file (never a directory, symlink, FIFO or device, which a rename would replace). */
async function checkOutputPath(path: unknown): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new OptionError(`output path must be a file name, got ${JSON.stringify(path) ?? String(path)}`);
  if (/[\\/]$/.test(path)) throw new OptionError(`output path ${JSON.stringify(path)} ends with a path separator; give the path of a .gguf file to write`);
  const fs = await import('node:fs/promises');
  const { dirname, resolve } = await import('node:path');
  let st;
  try {
    st = await fs.lstat(path);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw outputError(path, 'cannot check', e);
  }
  if (st && !st.isFile()) {
    const what = st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket'
      : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
    throw new OptionError(`output path ${JSON.stringify(path)} is ${what}; give the path of a .gguf file to write (an existing regular file is replaced)`);
  }
  const dir = dirname(resolve(path));
  let d;
  try {
    d = await fs.stat(dir);
  } catch (e) {
    throw outputError(path, `cannot write into ${JSON.stringify(dir)}`, e);
  }
  if (!d.isDirectory()) throw new OptionError(`output path ${JSON.stringify(path)}: ${JSON.stringify(dir)} is not a directory`);
  try {
    await fs.access(dir, (await import('node:fs')).constants.W_OK);
  } catch (e) {
    throw outputError(path, `cannot write into ${JSON.stringify(dir)}`, e);
  }
}

const errnoOf = (e: unknown): string | undefined => (typeof (e as any)?.code === 'string' ? (e as any).code : undefined);

/** Errors of the output's own path (a directory that is missing, not writable, ...) are the caller's option;
 *  anything else while writing it (a full disk, an I/O error) is the platform's. Neither names the temporary file. */
function outputError(path: string, what: string, e: unknown): GPT2WasmError {
  if (e instanceof GPT2WasmError) return e;
  const code = errnoOf(e);
  // "ENOSPC: no space left on device, write" → "no space left on device (ENOSPC)"; Node's own path (the temp file) is dropped
  const m = /^[A-Z0-9_]+: ([^,]*)/.exec((e as Error)?.message ?? '');
  const why = code ? `${m ? m[1] : 'failed'} (${code})` : String((e as Error)?.message ?? e);
  const msg = `output path ${JSON.stringify(path)}: ${what}: ${why}`;
  const pathCodes = ['ENOENT', 'ENOTDIR', 'EACCES', 'EPERM', 'EISDIR', 'EROFS', 'ENAMETOOLONG', 'ELOOP', 'EEXIST', 'EXDEV', 'EINVAL'];
  return code && pathCodes.includes(code) ? new OptionError(msg, { cause: e }) : new RuntimeError(msg, { cause: e });
}

/** Local files a source was read from (for the output-over-source check): what `describe` names for each file it
 *  was asked for, and a GGUF source's own file. Paths that are not local files are dropped later by stat. */
function recordingSource(source: ModelSource): { source: ModelSource; files: () => string[] } {
  const used = new Set<string>();
  const record = new Set(['exists', 'readBytes', 'readText', 'readJson', 'open']);
  const proxy = new Proxy(source as object, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      if (typeof prop === 'string' && record.has(prop)) return (f: string, ...rest: unknown[]) => { used.add(f); return v.call(target, f, ...rest); };
      return v.bind(target);
    },
  }) as ModelSource;
  return {
    source: proxy,
    files: () => [...(isGGUFSource(source) ? [source.name] : []), ...[...used].map((f) => { try { return source.describe(f); } catch { return ''; } })].filter(Boolean),
  };
}

/** Refuse an output path that is one of the source's own files (e.g. DIR/model.safetensors for the source DIR),
 *  which the rename would replace with the GGUF, unless it is a .gguf (a GGUF rewritten in place). */
async function checkNotSourceFile(path: string, sourceFiles: string[]): Promise<void> {
  if (/\.gguf$/i.test(path)) return;
  const fs = await import('node:fs/promises');
  const out = await fs.stat(path).catch(() => null);
  if (!out) return;
  for (const f of sourceFiles) {
    const st = await fs.stat(f).catch(() => null);
    if (st && st.dev === out.dev && st.ino === out.ino) {
      throw new OptionError(`output path ${JSON.stringify(path)} is the source's own file ${JSON.stringify(f)}; writing the GGUF there would replace it (write to a .gguf file)`);
    }
  }
}

/**
 * Write `source` (a model directory/Hub/GGUF source) as a GGUF file at `path`. Node only (writes with node:fs).
 * Matrices whose input size is not a multiple of 32 fall back to F16 for q8_0/q4_0, as llama.cpp's converter does.
 */
export async function writeGGUF(original: ModelSource, path: string, opts: SaveGGUFOptions = {}): Promise<SavedGGUF> {
  const dtype = typeOption(opts.dtype ?? 'f16', 'dtype');
  const signal = opts.signal;
  if (signal != null && typeof (signal as any).aborted !== 'boolean') throw new OptionError('signal must be an AbortSignal');
  signal?.throwIfAborted();
  if (opts.name !== undefined && (typeof opts.name !== 'string' || opts.name === '')) throw new OptionError(`name must be a non-empty string, got ${JSON.stringify(opts.name)}`);
  await checkOutputPath(path);
  const { source, files: sourceFiles } = recordingSource(original);
  const cfg = await loadConfig(source);
  checkExpressible(cfg, source.name);
  const reader = await openTensorReader(source);
  try {
    checkNoClassificationHead(reader, source.name);
    const tok = await loadTokenizerData(source, source.name);
    // planWeights checks names, shapes and dtypes against the config ('q8' only sizes the plan; nothing is allocated)
    const plan = planWeights(cfg, reader, 'lm', 'q8', reader.name);
    const matrixKeys = new Set(plan.specs.filter((s) => s.kind !== 'vector').map((s) => s.key));
    const keep = keepPlan(opts.keep ?? {}, matrixKeys);
    const order = plan.specs.slice().sort((a, b) => plan.byKey.get(a.key)!.byteOffset - plan.byKey.get(b.key)!.byteOffset);
    const tensors: OutTensor[] = [];
    let offset = 0;
    for (const s of order) {
      const info = plan.byKey.get(s.key)!;
      const name = hfToGgufName(s.key);
      if (!name) throw new WeightsError(`${reader.name}: tensor ${s.key} has no GGUF name for architecture gpt2`);
      const N = s.kind === 'conv1d' ? s.shape[1] : s.shape[0];
      const K = s.shape.length === 1 ? s.shape[0] : s.kind === 'conv1d' ? s.shape[0] : s.shape[1];
      const rows = s.shape.length === 1 ? 1 : N;
      let type: GGUFOutType = s.kind === 'vector' ? 'f32' : keep.get(s.key) ?? defaultType(s.key, dtype);
      if ((type === 'q8_0' || type === 'q4_0') && K % QK) type = 'f16';
      const dims = s.shape.length === 1 ? [K] : [K, N];
      const bytes = rows * rowBytes(type, K);
      tensors.push({ key: s.key, name, dims, type, N: rows, K, transpose: s.kind === 'conv1d' && !info.rowMajorNK, bytes, offset });
      offset += Math.ceil(bytes / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
    }
    // A tied head is written again as output.weight, as llama.cpp's converter does for GPT-2: llama.cpp builds
    // up to at least b4748 refuse a gpt2 file without it (docs/llama-cpp.md). TIED_OUTPUT_KEY tells our reader
    // that it is the embedding's copy, so the runtime keeps one copy in memory and never reads the second.
    const tied = !matrixKeys.has('lm_head.weight');
    if (tied) {
      const e = tensors.find((t) => t.key === 'wte.weight')!;
      tensors.push({ ...e, name: 'output.weight', offset });
      offset += Math.ceil(e.bytes / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
    }

    const meta: Array<[string, MetaValue]> = [
      ['general.architecture', { t: 'str', v: 'gpt2' }],
      ['general.name', { t: 'str', v: opts.name ?? sourceGeneralName(original) ?? (source.name.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || 'gpt2') }],
      ['general.file_type', { t: 'u32', v: FILE_TYPE[dtype] }],
      ['general.quantization_version', { t: 'u32', v: GGUF_QUANTIZATION_VERSION }],
      ['general.alignment', { t: 'u32', v: GGUF_DEFAULT_ALIGNMENT }],
      ['gpt2.context_length', { t: 'u32', v: cfg.n_positions }],
      ['gpt2.embedding_length', { t: 'u32', v: cfg.n_embd }],
      ['gpt2.feed_forward_length', { t: 'u32', v: cfg.n_inner }],
      ['gpt2.block_count', { t: 'u32', v: cfg.n_layer }],
      ['gpt2.attention.head_count', { t: 'u32', v: cfg.n_head }],
      ['gpt2.attention.layer_norm_epsilon', { t: 'f32', v: cfg.layer_norm_epsilon }],
      ...tokenizerMetadata(tok, cfg, source.describe('tokenizer')),
      ...(tied ? [[TIED_OUTPUT_KEY, { t: 'bool', v: true }] as [string, MetaValue]] : []),
    ];
    const w = new ByteWriter();
    for (const c of 'GGUF') w.u8(c.charCodeAt(0));
    w.u32(3);
    w.u64(tensors.length);
    w.u64(meta.length);
    for (const [k, v] of meta) writeKV(w, k, v);
    for (const t of tensors) {
      w.str(t.name);
      w.u32(t.dims.length);
      for (const d of t.dims) w.u64(d);
      w.u32(GGML_ID[t.type]);
      w.u64(t.offset);
    }
    const header = w.bytes();
    const dataStart = Math.ceil(header.byteLength / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;

    const fs = await import('node:fs/promises');
    await checkOutputPath(path); // again: the source took a while to read
    await checkNotSourceFile(path, sourceFiles());
    // a temp file of this run alone, created exclusively (two converts to one path never share it), renamed over
    // the path when complete and removed on every failure
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.incomplete`;
    let fh: import('node:fs/promises').FileHandle;
    try {
      fh = await fs.open(tmp, 'wx');
    } catch (e) {
      throw outputError(path, 'cannot create the file', e);
    }
    let ok = false;
    // a process that exits meanwhile (process.exit(), the CLI's grace after a signal) takes the temp file with it
    const dropTemp = () => { try { fsSync.rmSync(tmp, { force: true }); } catch { /* best effort */ } };
    const fsSync = await import('node:fs');
    process.once('exit', dropTemp);
    try {
      let pos = 0;
      const write = async (b: Uint8Array) => {
        signal?.throwIfAborted();
        try {
          await fh.write(b, 0, b.byteLength, pos);
        } catch (e) {
          throw outputError(path, 'cannot write', e);
        }
        pos += b.byteLength;
      };
      const padTo = async (at: number) => { if (at > pos) await write(new Uint8Array(at - pos)); };
      /** The tensor's rows decoded to f32 band by band and encoded as t.type. */
      const writeRows = async (t: OutTensor, info: TensorInfoLike) => {
        let row0 = 0;
        for await (const { rows, data } of rowBands(reader, info, t)) {
          signal?.throwIfAborted();
          const bad = firstNonFinite(data, rows * t.K);
          if (bad >= 0) throw new WeightsError(`${reader.name}: tensor ${t.key} contains ${data[bad]} (NaN or infinite weights)`);
          await write(encodeRows(t.type, data, rows, t.K, row0, `${reader.name}: tensor ${t.key}`));
          row0 += rows;
        }
      };
      await write(header);
      let done = 0;
      for (const t of tensors) {
        await padTo(dataStart + t.offset); // zero padding to the alignment, none after the last tensor
        const info = plan.byKey.get(t.key)!;
        if (info.quantized?.type === t.type.toUpperCase() && reader.blockChunks && !t.transpose) {
          // GGUF → GGUF of the same block type: the blocks as stored (no dequantize → requantize round trip, which
          // need not give Q4_0 blocks back bit for bit), still refusing a scale that is not finite
          const bb = blockBytes(t.type);
          let block0 = 0;
          for await (const { bytes } of reader.blockChunks(info.name)) {
            const b = firstNonFiniteScale(bytes, bb);
            if (b >= 0) throw new WeightsError(`${reader.name}: tensor ${t.key} has a non-finite ${t.type.toUpperCase()} scale in block ${block0 + b}`);
            block0 += bytes.byteLength / bb;
            await write(bytes);
          }
        } else {
          await writeRows(t, info);
        }
        if (pos !== dataStart + t.offset + t.bytes) throw new WeightsError(`${reader.name}: tensor ${t.key} produced ${pos - dataStart - t.offset} bytes, expected ${t.bytes}`);
        opts.onProgress?.({ tensor: t.name, type: t.type, done: ++done, total: tensors.length });
      }
      try {
        await fh.close();
      } catch (e) {
        throw outputError(path, 'cannot write', e);
      }
      await checkOutputPath(path); // a directory or FIFO created meanwhile is not replaced either
      try {
        await fs.rename(tmp, path);
      } catch (e) {
        throw outputError(path, 'cannot rename the finished file onto it', e);
      }
      ok = true;
      return { path, bytes: pos, tensors: tensors.map((t) => ({ name: t.name, type: t.type.toUpperCase(), dims: t.dims })) };
    } finally {
      if (!ok) {
        await fh.close().catch(() => {});
        await fs.rm(tmp, { force: true }).catch(() => {});
      }
      process.off('exit', dropTemp);
    }
  } catch (e) {
    if (e instanceof GPT2WasmError || (signal?.aborted && e === signal.reason)) throw e;
    throw new WeightsError(`${source.name}: converting to ${path}: ${(e as Error)?.message ?? e}`, { cause: e });
  } finally {
    await reader.close();
  }
}

/** A GGUF source's general.name, kept when converting GGUF → GGUF without a `name`. */
function sourceGeneralName(source: ModelSource): string | undefined {
  if (!isGGUFSource(source)) return undefined;
  const v = source.gguf.get('general.name');
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Convert a model to a GGUF file llama.cpp can run: `src` is a local directory, Hub id, .gguf path/URL or a
 * ModelSource (as from_pretrained takes). Returns the written path, size and tensor types.
 */
export async function save_gguf(src: string | ModelSource, path: string,
  opts: SaveGGUFOptions & { revision?: string; gguf_file?: string; cache_dir?: string; local_files_only?: boolean } = {}): Promise<SavedGGUF> {
  if (opts === null || typeof opts !== 'object') throw new OptionError('save_gguf options must be an object');
  // a typo ({ dtpye: 'q8_0' }) would silently write the default type
  const known = new Set(['dtype', 'keep', 'name', 'onProgress', 'signal', 'revision', 'gguf_file', 'cache_dir', 'local_files_only']);
  checkKnownKeys(opts, known, 'save_gguf option');
  const { revision, gguf_file, cache_dir, local_files_only, ...rest } = opts;
  await checkOutputPath(path); // before resolving (which may download)
  const source = typeof src === 'string' ? await resolveSource(src, { revision, gguf_file, cache_dir, local_files_only, tokenizer: true }) : await withGGUFFile(src, gguf_file);
  return writeGGUF(source, path, rest);
}
