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
import { GPT2WasmError, OptionError, TokenizerError, WeightsError } from '../errors.js';
import { loadConfig, type GPT2Config } from '../io/config.js';
import { GGML_TYPES } from '../io/ggml-dequant.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_TYPE } from '../io/gguf.js';
import { hfToGgufName, openTensorReader, TIED_OUTPUT_KEY } from '../io/gguf-model.js';
import { floatToHalf } from '../io/half.js';
import { resolveSource } from '../io/resolve.js';
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
  /** Per-tensor types, by Hugging Face or GGUF name or the aliases `wte` / `lm_head`, e.g. { wte: 'q8_0' }. */
  keep?: Record<string, GGUFOutType>;
  /** general.name (default: the source's directory or file name). */
  name?: string;
  /** Called after each tensor is written. */
  onProgress?: (p: { tensor: string; type: string; done: number; total: number }) => void;
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
  throw new OptionError(`${what} must be one of ${GGUF_OUT_TYPES.join(', ')}, got ${JSON.stringify(v)}`);
}

/**
 * The type of a matrix when `keep` does not name it: `dtype`, except that q4_0 keeps the token embedding (the
 * tied LM head, the most sensitive matrix; llama.cpp's mixes keep it higher too) at q8_0. Measured on
 * fixtures/models/gpt2-trained: perplexity +1.9 % with it at Q4_0, +0.11 % at Q8_0 (README, GGUF).
 */
function defaultType(key: string, dtype: GGUFOutType): GGUFOutType {
  return dtype === 'q4_0' && key === 'wte.weight' ? 'q8_0' : dtype;
}

const ALIASES: Record<string, string> = { wte: 'wte.weight', lm_head: 'lm_head.weight', output: 'lm_head.weight', token_embd: 'wte.weight' };

/** Resolve `keep` keys (HF names, GGUF names, aliases) to canonical HF keys. */
function keepPlan(keep: Record<string, unknown>, keys: Set<string>): Map<string, GGUFOutType> {
  const out = new Map<string, GGUFOutType>();
  for (const [k, v] of Object.entries(keep)) {
    let key = ALIASES[k] ?? (k.startsWith('transformer.') ? k.slice(12) : k);
    if (key === 'lm_head.weight' && !keys.has(key)) key = 'wte.weight'; // a tied head is the embedding
    if (!keys.has(key)) {
      const viaGguf = [...keys].find((h) => hfToGgufName(h) === k);
      if (!viaGguf) throw new OptionError(`keep: no weight matrix named ${JSON.stringify(k)} (use wte, lm_head, or a tensor name such as h.0.attn.c_attn.weight / blk.0.attn_qkv.weight)`);
      key = viaGguf;
    }
    out.set(key, typeOption(v, `keep.${k}`));
  }
  return out;
}

/**
 * Write `source` (a model directory/Hub/GGUF source) as a GGUF file at `path`. Node only (writes with node:fs).
 * Matrices whose input size is not a multiple of 32 fall back to F16 for q8_0/q4_0, as llama.cpp's converter does.
 */
export async function writeGGUF(source: ModelSource, path: string, opts: SaveGGUFOptions = {}): Promise<SavedGGUF> {
  const dtype = typeOption(opts.dtype ?? 'f16', 'dtype');
  const cfg = await loadConfig(source);
  checkExpressible(cfg, source.name);
  const tok = await loadTokenizerData(source, source.name);
  const reader = await openTensorReader(source);
  try {
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
      ['general.name', { t: 'str', v: opts.name ?? (source.name.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || 'gpt2') }],
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
    const tmp = `${path}.incomplete`;
    const fh = await fs.open(tmp, 'w');
    let ok = false;
    try {
      let pos = 0;
      const write = async (b: Uint8Array) => { await fh.write(b, 0, b.byteLength, pos); pos += b.byteLength; };
      const padTo = async (at: number) => { if (at > pos) await write(new Uint8Array(at - pos)); };
      /** The tensor's rows decoded to f32 band by band and encoded as t.type. */
      const writeRows = async (t: OutTensor, info: TensorInfoLike) => {
        let row0 = 0;
        for await (const { rows, data } of rowBands(reader, info, t)) {
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
      ok = true;
      await fh.close();
      await fs.rename(tmp, path);
      return { path, bytes: pos, tensors: tensors.map((t) => ({ name: t.name, type: t.type.toUpperCase(), dims: t.dims })) };
    } finally {
      if (!ok) {
        await fh.close().catch(() => {});
        await fs.rm(tmp, { force: true }).catch(() => {});
      }
    }
  } catch (e) {
    if (e instanceof GPT2WasmError) throw e;
    throw new WeightsError(`writing ${path}: ${(e as Error)?.message ?? e}`, { cause: e });
  } finally {
    await reader.close();
  }
}

/**
 * Convert a model to a GGUF file llama.cpp can run: `src` is a local directory, Hub id, .gguf path/URL or a
 * ModelSource (as from_pretrained takes). Returns the written path, size and tensor types.
 */
export async function save_gguf(src: string | ModelSource, path: string,
  opts: SaveGGUFOptions & { revision?: string; gguf_file?: string; cache_dir?: string; local_files_only?: boolean } = {}): Promise<SavedGGUF> {
  const { revision, gguf_file, cache_dir, local_files_only, ...rest } = opts;
  const source = typeof src === 'string' ? await resolveSource(src, { revision, gguf_file, cache_dir, local_files_only, tokenizer: true }) : src;
  return writeGGUF(source, path, rest);
}
