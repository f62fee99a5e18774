// Safetensors reader over a random-access byte source. The header is validated strictly (every error names the
// file and the tensor); tensor data is never read until asked for, and `chunks()` streams a tensor through one
// reused buffer so a large checkpoint is never held twice on the JS heap.
//
// Format: u64 little-endian header length N, N bytes of UTF-8 JSON
//   { "__metadata__": {str: str}?, NAME: { "dtype": D, "shape": [dims], "data_offsets": [begin, end] }, ... }
// then the data section; offsets are relative to its start (8 + N).
import { OptionError, SafetensorsError, WeightsError } from '../errors.js';
import { badRelativePath, errMsg, errorForFile, isNodeNotFound, missingFileError } from './files.js';
import { bf16ToF32, halfTable } from './half.js';
import type { ByteSource, ModelSource } from './source.js';

// ---------------------------------------------------------------------------------------------------------------
// Dtypes and conversion

export type STDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<STDtype, number>> = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
});

export const isSTDtype = (d: unknown): d is STDtype =>
  typeof d === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, d);

/**
 * Convert little-endian F32, F16 or BF16 elements in `bytes` to float32 in `out` (which must hold at least
 * bytes.length / size elements); returns the element count. Works on any byte alignment, so it can be applied
 * chunk by chunk to `chunks()` output. The one decoder of checkpoint floats (the weight loader uses it).
 */
export function convertToF32(dtype: STDtype, bytes: Uint8Array, out: Float32Array, what = 'tensor'): number {
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new WeightsError(`${what}: cannot convert dtype ${JSON.stringify(dtype)} to F32 (supported: F32, F16, BF16)`);
  }
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new WeightsError(`${what}: ${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`);
  }
  const n = bytes.byteLength / size;
  if (out.length < n) throw new WeightsError(`${what}: output holds ${out.length} floats, need ${n} for ${dtype} data`);
  if (dtype === 'F32') {
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes);
  } else if (dtype === 'F16') {
    const lut = halfTable();
    for (let i = 0, j = 0; i < n; i++, j += 2) out[i] = lut[bytes[j] | (bytes[j + 1] << 8)];
  } else if ((out.byteOffset & 3) === 0) {
    // BF16 is the high half of a binary32: write the bits
    const u = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0, j = 0; i < n; i++, j += 2) u[i] = ((bytes[j] | (bytes[j + 1] << 8)) << 16) >>> 0;
  } else {
    for (let i = 0, j = 0; i < n; i++, j += 2) out[i] = bf16ToF32(bytes[j] | (bytes[j + 1] << 8));
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// One safetensors file

export interface TensorInfo {
  name: string;
  dtype: STDtype;
  shape: number[];
  /** Absolute offset of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
  /** The file (ByteSource name) the tensor is in. */
  file: string;
}

export interface TensorChunk {
  /** Offset of `bytes` within the tensor. */
  offset: number;
  /** Valid only until the generator is resumed: the buffer may be reused for the next chunk. */
  bytes: Uint8Array;
}

/** The safetensors library refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;
export const DEFAULT_CHUNK_BYTES = 4 << 20;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const showJson = (v: unknown): string => {
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
};

/** Validate a decoded header object; returns tensors sorted by offset. */
function parseSafetensorsHeader(
  file: string,
  header: unknown,
  dataStart: number,
  dataLength: number,
): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  if (!isObj(header)) throw new SafetensorsError(`${file}: the header must be a JSON object, got ${Array.isArray(header) ? 'an array' : showJson(header)}`);
  const metadata: Record<string, string> = {};
  const tensors: (TensorInfo & { begin: number; end: number })[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObj(entry)) throw new SafetensorsError(`${file}: __metadata__ must be an object of strings, got ${showJson(entry)}`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError(`${file}: __metadata__[${JSON.stringify(k)}] must be a string, got ${showJson(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${file}: tensor ${JSON.stringify(name)}`;
    if (!isObj(entry)) throw new SafetensorsError(`${where}: entry must be an object with dtype, shape and data_offsets, got ${showJson(entry)}`);
    const { dtype, shape, data_offsets } = entry;
    if (dtype === undefined) throw new SafetensorsError(`${where}: missing "dtype"`);
    if (shape === undefined) throw new SafetensorsError(`${where}: missing "shape"`);
    if (data_offsets === undefined) throw new SafetensorsError(`${where}: missing "data_offsets"`);
    if (typeof dtype !== 'string') throw new SafetensorsError(`${where}: "dtype" must be a string, got ${showJson(dtype)}`);
    if (!isSTDtype(dtype)) {
      throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape)) throw new SafetensorsError(`${where}: "shape" must be a list of integers, got ${showJson(shape)}`);
    let count = 1;
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        throw new SafetensorsError(`${where}: shape ${showJson(shape)} has dimension ${showJson(d)}; dimensions must be non-negative integers`);
      }
      count *= d;
    }
    if (shape.includes(0)) count = 0;
    const size = DTYPE_SIZE[dtype];
    if (!Number.isSafeInteger(count * size)) throw new SafetensorsError(`${where}: shape ${showJson(shape)} is too large`);
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2) {
      throw new SafetensorsError(`${where}: "data_offsets" must be [begin, end], got ${showJson(data_offsets)}`);
    }
    const [begin, end] = data_offsets;
    for (const x of [begin, end]) {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
        throw new SafetensorsError(`${where}: data_offsets ${showJson(data_offsets)} must be non-negative integers`);
      }
    }
    if (end < begin) throw new SafetensorsError(`${where}: data_offsets end ${end} is before begin ${begin}`);
    if (end > dataLength) {
      throw new SafetensorsError(
        `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes; is the file truncated?)`,
      );
    }
    const byteLength = end - begin;
    if (byteLength !== count * size) {
      throw new SafetensorsError(
        `${where}: data_offsets span ${byteLength} bytes but ${dtype} shape ${showJson(shape)} needs ${count} x ${size} = ${count * size}`,
      );
    }
    tensors.push({ name, dtype, shape: shape.slice(), byteOffset: dataStart + begin, byteLength, file, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: (typeof tensors)[number] | null = null;
  for (const t of tensors) {
    if (t.byteLength === 0) continue;
    if (prev && t.begin < prev.end) {
      throw new SafetensorsError(
        `${file}: tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}] and ${JSON.stringify(t.name)} [${t.begin}, ${t.end}] overlap`,
      );
    }
    prev = t;
  }
  return {
    metadata,
    tensors: tensors.map(({ name, dtype, shape, byteOffset, byteLength, file }) => ({ name, dtype, shape, byteOffset, byteLength, file })),
  };
}

function chunkStep(chunkBytes: number): number {
  if (!Number.isFinite(chunkBytes) || chunkBytes <= 0) throw new OptionError(`chunkBytes must be a positive number, got ${chunkBytes}`);
  // A multiple of 8 bytes, so that every chunk holds whole elements of any dtype.
  return Math.max(8, Math.floor(chunkBytes / 8) * 8);
}

/**
 * One read buffer that the streams of a file's tensors borrow in turn (a loader streams them one after another),
 * instead of each stream allocating its own: never-touched memory is paid for in page faults when first written
 * (on a Firecracker VM ~3 ms per MiB, as much as reading the bytes), and each dropped buffer is garbage that
 * lifts the load's peak RSS until a collection. A stream that finds it lent out allocates its own.
 */
export class ReadBuffer {
  private buf: Uint8Array | null = null;
  private lent = false;
  /** A buffer of n to max bytes for one stream (a stream's buffer stays within its chunk size), or null when
   *  another stream holds it. */
  take(n: number, max: number): Uint8Array | null {
    if (this.lent) return null;
    this.lent = true;
    if (!this.buf || this.buf.byteLength < n || this.buf.byteLength > max) this.buf = new Uint8Array(n);
    return this.buf;
  }
  give(): void { this.lent = false; }
}

/**
 * Stream bytes [t.byteOffset, t.byteOffset + t.byteLength) of `src` in chunks of at most chunkBytes (a multiple
 * of 8). Sources with readInto (files; HTTP and browser-cache reads, which read ahead: read-ahead.ts) fill one
 * buffer, the shared `buffer` when it is free; others (bytes in memory) return their own.
 */
export async function* streamTensor(src: ByteSource, t: Pick<TensorInfo, 'name' | 'byteOffset' | 'byteLength'>, chunkBytes: number, buffer?: ReadBuffer): AsyncGenerator<TensorChunk> {
  const step = chunkStep(chunkBytes);
  if (t.byteLength === 0) return;
  const size = Math.min(step, t.byteLength);
  const borrowed = src.readInto ? buffer?.take(size, step) ?? null : null;
  const buf = src.readInto ? borrowed ?? new Uint8Array(size) : null;
  try {
    for (let off = 0; off < t.byteLength; off += step) {
      const n = Math.min(step, t.byteLength - off);
      let bytes: Uint8Array;
      try {
        if (buf) {
          bytes = buf.subarray(0, n);
          await src.readInto!(t.byteOffset + off, bytes);
        } else {
          bytes = await src.read(t.byteOffset + off, n);
        }
      } catch (e) {
        throw wrapRead(src.name, t.name, e);
      }
      if (bytes.byteLength !== n) throw new SafetensorsError(`${src.name}: tensor ${JSON.stringify(t.name)}: short read (${bytes.byteLength} of ${n} bytes)`);
      yield { offset: off, bytes };
      if (!buf) src.release?.(bytes); // the consumer is done with a fresh chunk: free it now, not at the next GC
    }
  } finally {
    if (borrowed) buffer!.give();
  }
}

function wrapRead(file: string, tensor: string, e: unknown): Error {
  if (e instanceof SafetensorsError || (e as any)?.code === 'DOWNLOAD') return e as Error;
  return new SafetensorsError(`${file}: reading tensor ${JSON.stringify(tensor)} failed: ${errMsg(e)}`, { cause: e });
}

function unknownTensor(file: string, name: string, names: Iterable<string>): WeightsError {
  const all = [...names];
  const hint = all.filter((n) => n.endsWith(name) || name.endsWith(n)).slice(0, 3);
  return new WeightsError(
    `${file}: no tensor named ${JSON.stringify(name)} (the file has ${all.length} tensors${hint.length ? `; similar: ${hint.join(', ')}` : ''})`,
  );
}

export class SafetensorsFile {
  /** Tensors in file order (by offset). */
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  /** Byte length of the JSON header (the u64 prefix excluded). */
  readonly headerLength: number;
  readonly size: number;
  readonly source: ByteSource;
  /** The buffer this file's streams take turns with (see ReadBuffer). */
  private readonly readBuffer = new ReadBuffer();

  private constructor(src: ByteSource, size: number, headerLength: number, tensors: TensorInfo[], metadata: Record<string, string>) {
    this.source = src;
    this.size = size;
    this.headerLength = headerLength;
    this.tensors = new Map(tensors.map((t) => [t.name, t]));
    this.metadata = metadata;
  }

  get name(): string { return this.source.name; }
  /** Absolute offset of the data section. */
  get dataOffset(): number { return 8 + this.headerLength; }

  /** Read and validate the header. Tensor data is not read. Takes ownership of `src`: closed if the header is bad. */
  static async open(src: ByteSource): Promise<SafetensorsFile> {
    const file = src.name;
    try {
      return await SafetensorsFile.parse(src);
    } catch (e) {
      await src.close?.().catch(() => {});
      if (e instanceof SafetensorsError) throw e;
      if ((e as any)?.code === 'DOWNLOAD' || (e as any)?.code === 'WEIGHTS') throw e;
      throw new SafetensorsError(`${file}: cannot read safetensors header: ${errMsg(e)}`, { cause: e });
    }
  }

  /** The header checks of open(). */
  private static async parse(src: ByteSource): Promise<SafetensorsFile> {
    const file = src.name;
    const size = await src.size();
    if (size < 8) throw new SafetensorsError(`${file}: file is ${size} bytes, too short for a safetensors header (at least 8 bytes)`);
    const prefix = await src.read(0, 8);
    const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    if (n64 > BigInt(MAX_HEADER_BYTES)) {
      throw new SafetensorsError(`${file}: header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
    }
    const n = Number(n64);
    if (8 + n > size) {
      throw new SafetensorsError(`${file}: header length ${n} runs past the end of the file (${size} bytes; truncated or not a safetensors file)`);
    }
    if (n < 2) throw new SafetensorsError(`${file}: header length ${n} is too small to hold a JSON object`);
    const headerBytes = await src.read(8, n);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
    } catch (e) {
      throw new SafetensorsError(`${file}: header is not valid UTF-8`, { cause: e });
    }
    if (text[0] !== '{') throw new SafetensorsError(`${file}: header does not start with "{" (got ${JSON.stringify(text.slice(0, 16))})`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(`${file}: header is not valid JSON: ${errMsg(e)}`, { cause: e });
    }
    const { tensors, metadata } = parseSafetensorsHeader(file, json, 8 + n, size - 8 - n);
    return new SafetensorsFile(src, size, n, tensors, metadata);
  }

  /** Info for one tensor; a WeightsError naming the file if it has no such tensor. */
  get(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw unknownTensor(this.name, name, this.tensors.keys());
    return t;
  }

  /**
   * Stream a tensor in order, in chunks of at most `chunkBytes` (rounded down to a multiple of 8 so chunks hold
   * whole elements). Each chunk's bytes may be overwritten or freed once the next one is asked for: copy them
   * before resuming.
   */
  chunks(name: string, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncGenerator<TensorChunk> {
    const t = this.get(name);
    chunkStep(chunkBytes);
    return streamTensor(this.source, t, chunkBytes, this.readBuffer);
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A model's weights: model.safetensors, or model.safetensors.index.json + shards

export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

export type ModelTensorInfo = TensorInfo & { source: SafetensorsFile };

export interface SafetensorsModel {
  /** Where the weights came from (for messages). */
  readonly name: string;
  readonly tensors: Map<string, ModelTensorInfo>;
  /** Metadata of the first file (e.g. {"format": "pt"}). */
  readonly metadata: Record<string, string>;
  readonly files: SafetensorsFile[];
  get(name: string): ModelTensorInfo;
  chunks(name: string, chunkBytes?: number): AsyncGenerator<TensorChunk>;
  close(): Promise<void>;
}

/** Parse and check model.safetensors.index.json; returns tensor name → shard file name. */
export function parseSafetensorsIndex(json: unknown, file = SAFETENSORS_INDEX_FILE): Map<string, string> {
  if (!isObj(json)) throw new SafetensorsError(`${file}: expected a JSON object with "weight_map"`);
  const wm = json.weight_map;
  if (!isObj(wm)) throw new SafetensorsError(`${file}: "weight_map" must be an object mapping tensor names to shard files, got ${showJson(wm)}`);
  const map = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string') throw new SafetensorsError(`${file}: weight_map[${JSON.stringify(tensor)}] must be a file name, got ${showJson(shard)}`);
    const bad = badRelativePath(shard);
    if (bad) throw new SafetensorsError(`${file}: weight_map[${JSON.stringify(tensor)}]: ${bad}`);
    map.set(tensor, shard);
  }
  if (map.size === 0) throw new SafetensorsError(`${file}: weight_map is empty`);
  return map;
}

/** Open a model's weights from a model source: model.safetensors, or the sharded index and its shards. */
export async function openSafetensorsModel(dir: ModelSource): Promise<SafetensorsModel> {
  if (await dir.exists(SAFETENSORS_FILE)) {
    const f = await SafetensorsFile.open(await dir.open(SAFETENSORS_FILE));
    const tensors = new Map<string, ModelTensorInfo>();
    for (const t of f.tensors.values()) tensors.set(t.name, { ...t, source: f });
    return makeModel(dir.describe(SAFETENSORS_FILE), tensors, [f]);
  }
  if (!(await dir.exists(SAFETENSORS_INDEX_FILE))) {
    const other = [];
    for (const alt of ['pytorch_model.bin', 'tf_model.h5', 'model.onnx', 'flax_model.msgpack']) if (await dir.exists(alt)) other.push(alt);
    throw new WeightsError(
      `${dir.name}: no ${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX_FILE}` +
        (other.length ? ` (found ${other.join(', ')}; only safetensors weights are supported: convert them, e.g. with transformers' save_pretrained(safe_serialization=True))` : ''),
    );
  }
  const indexPath = dir.describe(SAFETENSORS_INDEX_FILE);
  const weightMap = parseSafetensorsIndex(await dir.readJson(SAFETENSORS_INDEX_FILE), indexPath);
  const shardNames = [...new Set(weightMap.values())];
  for (const s of shardNames) {
    if (!(await dir.exists(s))) throw new WeightsError(`${indexPath}: shard ${JSON.stringify(s)} is listed in weight_map but ${dir.describe(s)} does not exist`);
  }
  const files: SafetensorsFile[] = [];
  try {
    const byShard = new Map<string, SafetensorsFile>();
    for (const s of shardNames) {
      const f = await SafetensorsFile.open(await dir.open(s));
      files.push(f);
      byShard.set(s, f);
    }
    const tensors = new Map<string, ModelTensorInfo>();
    for (const [name, shard] of weightMap) {
      const f = byShard.get(shard)!;
      const t = f.tensors.get(name);
      if (!t) throw new WeightsError(`${indexPath}: weight_map puts tensor ${JSON.stringify(name)} in ${shard}, but ${f.name} has no such tensor`);
      tensors.set(name, { ...t, source: f });
    }
    // Tensors a shard holds but the map does not list are still part of the checkpoint (as transformers loads them).
    for (const f of files) for (const t of f.tensors.values()) if (!tensors.has(t.name)) tensors.set(t.name, { ...t, source: f });
    return makeModel(indexPath, tensors, files);
  } catch (e) {
    await Promise.all(files.map((f) => f.close().catch(() => {})));
    throw e;
  }
}

function makeModel(name: string, tensors: Map<string, ModelTensorInfo>, files: SafetensorsFile[]): SafetensorsModel {
  const get = (n: string): ModelTensorInfo => {
    const t = tensors.get(n);
    if (!t) throw unknownTensor(name, n, tensors.keys());
    return t;
  };
  return {
    name,
    tensors,
    metadata: files[0]?.metadata ?? {},
    files,
    get,
    chunks: (n, chunkBytes = DEFAULT_CHUNK_BYTES) => get(n).source.chunks(n, chunkBytes),
    close: async () => {
      await Promise.all(files.map((f) => f.close()));
    },
  };
}
