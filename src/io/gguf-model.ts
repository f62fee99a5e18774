// A GGUF file of architecture `gpt2` as a model source: its metadata stands in for config.json (mapped to
// transformers' GPT2Config field names and validated by the same parser), its tokenizer metadata serves the
// tokenizer loader, and its tensors are presented to the weight loader under the Hugging Face names.
//
// Orientation: ggml stores a matrix with ne0 = the input dimension contiguous, i.e. row-major [out, in],
// which is the runtime's layout; llama.cpp's converter transposed GPT-2's Conv1D [in, out] weights to get
// there. So GGUF matrices are flagged `rowMajorNK` and placed without the transpose safetensors needs.
//
// Quantized tensors: `chunks()` dequantizes them to f32 (the loader converts those to the run dtype), and
// `blockChunks()` hands over the stored blocks of Q8_0 / Q4_0, which are the runtime's q8 / q4 blocks byte for
// byte: the loader copies those as they are when the plan runs the matrix at that dtype.
import { GGUFError } from '../errors.js';
import { missingFileError } from './files.js';
import { canDequantize, dequantizeBlocks, GGML_BF16, GGML_F16, GGML_F32, GGML_TYPES } from './ggml-dequant.js';
import { GGUF_TYPE, GGUFFile, metadataValues, type GGUFStrings, type GGUFTensorInfo, type GGUFValue } from './gguf.js';
import { DEFAULT_CHUNK_BYTES, openSafetensorsModel, ReadBuffer, streamTensor, type TensorChunk } from './safetensors.js';
import type { ByteSource, ModelSource } from './source.js';
import { NATIVE_BLOCKS, type DType, type TensorInfoLike, type TensorReader } from './tensor-reader.js';

/** GGUF tensor name → Hugging Face GPT-2 name (without the `transformer.` prefix). */
const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'wte.weight', 'position_embd.weight': 'wpe.weight',
  'output_norm.weight': 'ln_f.weight', 'output_norm.bias': 'ln_f.bias', 'output.weight': 'lm_head.weight',
};
const BLOCK_NAMES: Record<string, string> = {
  attn_norm: 'ln_1', attn_qkv: 'attn.c_attn', attn_output: 'attn.c_proj', ffn_norm: 'ln_2', ffn_up: 'mlp.c_fc', ffn_down: 'mlp.c_proj',
};

export function ggufToHfName(name: string): string | null {
  if (name in GLOBAL_NAMES) return GLOBAL_NAMES[name];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m && m[2] in BLOCK_NAMES) return `h.${m[1]}.${BLOCK_NAMES[m[2]]}.${m[3]}`;
  return null;
}

export function hfToGgufName(name: string): string | null {
  const key = name.startsWith('transformer.') ? name.slice('transformer.'.length) : name;
  for (const [g, h] of Object.entries(GLOBAL_NAMES)) if (h === key) return g;
  const m = /^h\.(\d+)\.(.+)\.(weight|bias)$/.exec(key);
  if (m) for (const [g, h] of Object.entries(BLOCK_NAMES)) if (h === m[2]) return `blk.${m[1]}.${g}.${m[3]}`;
  return null;
}

/** Metadata key our writer sets when `output.weight` is a copy of `token_embd.weight` (a tied head written twice
 *  because llama.cpp's loader requires output.weight). Files from llama.cpp's converter have the copy without the
 *  key; their head is then loaded as untied (correct, with the embedding's memory twice). */
export const TIED_OUTPUT_KEY = 'gpt2wasm.tied_output';

/** Whether the file's output.weight is the embedding's copy, per TIED_OUTPUT_KEY, with the same type and dims. */
export function outputIsEmbeddingCopy(g: GGUFFile): boolean {
  const out = g.tensors.get('output.weight'), wte = g.tensors.get('token_embd.weight');
  return g.get(TIED_OUTPUT_KEY) === true && !!out && !!wte && out.type === wte.type && out.dims.join() === wte.dims.join();
}

/** A value read as a non-negative integer (any integer type), or a GGUFError naming the key. */
function intKey(g: GGUFFile, key: string, required: true): number;
function intKey(g: GGUFFile, key: string, required: false): number | undefined;
function intKey(g: GGUFFile, key: string, required: boolean): number | undefined {
  const e = g.metadata.get(key);
  if (!e) {
    if (required) throw new GGUFError(`${g.name}: missing metadata key ${key} (needed for a gpt2 model)`);
    return undefined;
  }
  const v = e.value;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || e.type === GGUF_TYPE.FLOAT32 || e.type === GGUF_TYPE.FLOAT64) {
    throw new GGUFError(`${g.name}: metadata ${key} must be a non-negative integer, got ${describeValue(e.type, v)}`);
  }
  // the shape keys (required) name this file's keys here, not the config fields they become (n_head, ...)
  if (required && v === 0) throw new GGUFError(`${g.name}: metadata ${key} must be a positive integer, got 0`);
  return v;
}

function describeValue(type: number, v: GGUFValue): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `${typeof v === 'string' ? JSON.stringify(v) : String(v)} (${['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'][type]})`;
}

/** The shortest decimal that rounds to the same f32 (GGUF stores f32; configs say 1e-5, not 9.99999974e-6). */
export function shortestF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** transformers-style config JSON for a gpt2 GGUF file (validated afterwards by parseGPT2Config). */
export function ggufConfigJson(g: GGUFFile): Record<string, unknown> {
  const arch = g.get('general.architecture');
  if (arch === undefined) throw new GGUFError(`${g.name}: missing metadata key general.architecture`);
  if (arch !== 'gpt2') {
    // describeValue, not JSON.stringify: a u64/i64 past 2^53 is a bigint, which JSON.stringify refuses (a TypeError)
    const e = g.metadata.get('general.architecture')!;
    throw new GGUFError(`${g.name}: general.architecture is ${describeValue(e.type, e.value)}; gpt2-wasm runs only "gpt2" models`);
  }
  const wte = g.tensors.get('token_embd.weight');
  if (!wte) throw new GGUFError(`${g.name}: no tensor token_embd.weight (a gpt2 model needs its token embedding)`);
  if (wte.dims.length !== 2) throw new GGUFError(`${g.name}: token_embd.weight has dims [${wte.dims}]; expected [n_embd, n_vocab]`);
  const eps = g.metadata.get('gpt2.attention.layer_norm_epsilon');
  if (!eps) throw new GGUFError(`${g.name}: missing metadata key gpt2.attention.layer_norm_epsilon`);
  if (typeof eps.value !== 'number' || !(eps.value > 0) || !Number.isFinite(eps.value)) {
    throw new GGUFError(`${g.name}: metadata gpt2.attention.layer_norm_epsilon must be a positive number, got ${describeValue(eps.type, eps.value)}`);
  }
  const n_embd = intKey(g, 'gpt2.embedding_length', true);
  const heads = intKey(g, 'gpt2.attention.head_count', true);
  if (n_embd % heads !== 0) throw new GGUFError(`${g.name}: metadata gpt2.embedding_length (${n_embd}) must be a multiple of gpt2.attention.head_count (${heads})`);
  const cfg: Record<string, unknown> = {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    activation_function: 'gelu_new',
    vocab_size: wte.dims[1],
    n_positions: intKey(g, 'gpt2.context_length', true),
    n_embd,
    n_layer: intKey(g, 'gpt2.block_count', true),
    n_head: heads,
    n_inner: intKey(g, 'gpt2.feed_forward_length', false) ?? null,
    layer_norm_epsilon: eps.type === GGUF_TYPE.FLOAT32 ? shortestF32(eps.value) : eps.value,
    tie_word_embeddings: !g.tensors.has('output.weight') || outputIsEmbeddingCopy(g),
    bos_token_id: intKey(g, 'tokenizer.ggml.bos_token_id', false) ?? null,
    eos_token_id: intKey(g, 'tokenizer.ggml.eos_token_id', false) ?? null,
  };
  const pad = intKey(g, 'tokenizer.ggml.padding_token_id', false);
  if (pad !== undefined) cfg.pad_token_id = pad;
  return cfg;
}

export const GGUF_CONFIG_FILE = 'config.json';

/** A tensor of the GGUF file as the weight loader sees it. */
export interface GGUFModelTensor extends TensorInfoLike { gguf: GGUFTensorInfo }

export interface GGUFTensorReader extends TensorReader {
  readonly name: string;
  readonly tensors: Map<string, GGUFModelTensor>;
  /** How many times a quantized tensor was dequantized by chunks() (the loader's raw path leaves it at 0). */
  readonly dequantized: number;
  chunks(name: string, chunkBytes?: number): AsyncGenerator<TensorChunk>;
  blockChunks(name: string, chunkBytes?: number): AsyncGenerator<TensorChunk>;
  close(): Promise<void>;
}

/**
 * A .gguf file as a ModelSource: `config.json` is synthesized from the metadata, the tokenizer comes from
 * `ggufMetadata()`, and `openTensors()` gives the weights. The file is opened for each read pass and closed
 * after it, so the source holds no file handle between loads.
 */
export class GGUFModelSource implements ModelSource {
  readonly name: string;
  readonly gguf: GGUFFile;
  private openBytes: () => Promise<ByteSource>;

  private constructor(gguf: GGUFFile, openBytes: () => Promise<ByteSource>) {
    this.gguf = gguf; this.name = gguf.name; this.openBytes = openBytes;
  }

  /** Parse the header of the file that `openBytes` opens (it is closed again before this returns). */
  static async open(openBytes: () => Promise<ByteSource>): Promise<GGUFModelSource> {
    const src = await openBytes();
    try {
      return new GGUFModelSource(await GGUFFile.open(src), openBytes);
    } finally {
      await src.close?.();
    }
  }

  describe(file: string): string { return file === GGUF_CONFIG_FILE ? `${this.name} (GGUF metadata)` : `${this.name}: ${file}`; }
  async exists(file: string): Promise<boolean> { return file === GGUF_CONFIG_FILE; }
  async readJson(file: string): Promise<unknown> {
    if (file !== GGUF_CONFIG_FILE) throw missingFileError(file, this.describe(file));
    return ggufConfigJson(this.gguf);
  }
  async readText(file: string): Promise<string> { return JSON.stringify(await this.readJson(file)); }
  async readBytes(file: string): Promise<Uint8Array> { return new TextEncoder().encode(await this.readText(file)); }
  async open(file: string): Promise<ByteSource> { throw missingFileError(file, this.describe(file)); }

  /** Metadata as plain values (arrays of strings as GGUFStrings); the tokenizer loader builds a GPT-2 tokenizer
   *  from tokenizer.ggml.*. */
  ggufMetadata(): Map<string, GGUFValue | GGUFStrings> { return metadataValues(this.gguf); }

  /** The tensors under Hugging Face names, readable until close(). */
  async openTensors(): Promise<GGUFTensorReader> {
    const g = this.gguf;
    const tensors = new Map<string, GGUFModelTensor>();
    let anyQuantized = false, allHalf = true;
    const skipOutput = outputIsEmbeddingCopy(g); // the tied head's copy: never read (the embedding serves as head)
    for (const t of g.tensors.values()) {
      if (skipOutput && t.name === 'output.weight') continue;
      const name = ggufToHfName(t.name) ?? t.name;
      // a tensor literally named with the Hugging Face name another one maps to (h.0.ln_1.bias and blk.0.attn_norm.bias)
      // would replace it here, and the model would load with whichever comes last
      const clash = tensors.get(name);
      if (clash) throw new GGUFError(`${g.name}: tensors ${clash.gguf.name} and ${t.name} both map to the Hugging Face tensor ${name}`);
      let dtype: string;
      let quantized: GGUFModelTensor['quantized'];
      if (t.type === GGML_F32) dtype = 'F32';
      else if (t.type === GGML_F16) dtype = 'F16';
      else if (t.type === GGML_BF16) dtype = 'BF16';
      // quantized: read as f32 values (chunks), or as stored blocks when they are the runtime's (blockChunks)
      else if (canDequantize(t.type)) { dtype = 'F32'; quantized = { type: t.typeName, byteLength: t.byteLength }; anyQuantized = true; }
      else {
        throw new GGUFError(`${g.name}: tensor ${t.name} has type ${t.typeName}, which gpt2-wasm cannot read ` +
          '(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)');
      }
      if (t.dims.length === 2 && t.type !== GGML_F16 && name !== 'wpe.weight') allHalf = false;
      const byteLength = quantized ? t.count * 4 : t.byteLength;
      tensors.set(name, { name, dtype, shape: t.dims.slice().reverse(), byteOffset: t.byteOffset, byteLength, file: g.name, rowMajorNK: true, quantized, gguf: t });
    }
    // Q4_0 files (matrices Q4_0, the embedding Q4_0 or Q8_0) run as q4, whose default plan keeps the embedding
    // at q8; other quantized files as q8 (the nearest runtime format; Q8_0 is placed as stored); all-F16 as fp16.
    const matrices = [...g.tensors.values()].filter((t) => t.dims.length === 2 && t.name !== 'position_embd.weight');
    const q4File = matrices.some((t) => t.typeName === 'Q4_0') && matrices.every((t) => t.typeName === 'Q4_0' || t.typeName === 'Q8_0');
    const preferredDtype: DType | undefined = anyQuantized ? (q4File ? 'q4' : 'q8') : allHalf ? 'fp16' : undefined;
    const src = await this.openBytes();
    const get = (name: string): GGUFModelTensor => {
      const t = tensors.get(name);
      if (!t) throw new GGUFError(`${g.name}: no tensor named ${JSON.stringify(name)}`);
      return t;
    };
    const buffer = new ReadBuffer(); // one read buffer for the streams of all tensors, taken in turn
    const reader = {
      name: g.name, tensors, preferredDtype, dequantized: 0,
      chunks: (name: string, chunkBytes = DEFAULT_CHUNK_BYTES) => {
        const t = get(name);
        if (!t.quantized) return streamTensor(src, t.gguf, chunkBytes, buffer);
        reader.dequantized++;
        return dequantizedChunks(src, t.gguf, chunkBytes, buffer);
      },
      blockChunks: (name: string, chunkBytes = DEFAULT_CHUNK_BYTES) => {
        const t = get(name);
        if (!t.quantized || !(t.quantized.type in NATIVE_BLOCKS)) {
          throw new GGUFError(`${g.name}: tensor ${t.gguf.name} is ${t.gguf.typeName}, not stored in the runtime's blocks (${Object.keys(NATIVE_BLOCKS).join(', ')})`);
        }
        const { typeSize } = GGML_TYPES.get(t.gguf.type)!;
        return streamTensor(src, t.gguf, blocksPerChunk(typeSize, chunkBytes) * typeSize, buffer);
      },
      close: async () => { await src.close?.(); },
    };
    return reader;
  }
}

/** Blocks per chunk when a block takes `blockBytes` (stored, or decoded to f32) and a chunk at most about
 *  chunkBytes: a multiple of 4 blocks keeps the stored chunk a multiple of 8 bytes, as streamTensor's chunking
 *  requires (4 · 34 = 136 for Q8_0, 4 · 18 = 72 for Q4_0). */
function blocksPerChunk(blockBytes: number, chunkBytes: number): number {
  return Math.max(4, Math.floor(chunkBytes / blockBytes / 4) * 4);
}

/** Stream a quantized tensor as f32 bytes, whole blocks at a time (at most about chunkBytes of output). */
async function* dequantizedChunks(src: ByteSource, t: GGUFTensorInfo, chunkBytes: number, buffer: ReadBuffer): AsyncGenerator<TensorChunk> {
  const type = GGML_TYPES.get(t.type)!;
  const blocks = blocksPerChunk(4 * type.blockSize, chunkBytes); // sized by the f32 output
  const out = new Float32Array(blocks * type.blockSize);
  let elem = 0;
  for await (const { bytes } of streamTensor(src, t, blocks * type.typeSize, buffer)) {
    const n = (bytes.byteLength / type.typeSize) * type.blockSize;
    dequantizeBlocks(t.type, bytes, out, 0);
    yield { offset: elem * 4, bytes: new Uint8Array(out.buffer, 0, n * 4) };
    elem += n;
  }
}

/** A model's tensors from whichever container the source holds: a GGUF file, or safetensors (single or sharded). */
export async function openTensorReader(source: ModelSource): Promise<TensorReader & { name: string; close(): Promise<void> }> {
  return isGGUFSource(source) ? source.openTensors() : openSafetensorsModel(source);
}

/** Duck-typed, so that a GGUF source from another copy of this module (bundles, loaders) is recognized too. */
export function isGGUFSource(x: unknown): x is GGUFModelSource {
  return typeof x === 'object' && x !== null && typeof (x as any).openTensors === 'function' && (x as any).gguf != null;
}
