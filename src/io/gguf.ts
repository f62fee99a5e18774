// GGUF reader (versions 2 and 3, little-endian) over a random-access byte source. The header — metadata
// key/values and the tensor table — is parsed through a small read-ahead window, never the whole file;
// tensor data is not read here. Every count and length is checked against the bytes left in the file before
// anything is allocated, so a corrupt or hostile file fails with a GGUFError that names the problem.
//
// Layout (docs/gguf.md in ggml): "GGUF" magic, u32 version, u64 tensor_count, u64 kv_count,
//   kv_count × { string key, u32 value_type, value }, tensor_count × { string name, u32 n_dims,
//   u64 dims[n_dims] (ne0 first), u32 ggml_type, u64 offset }, zero padding to `general.alignment`, then
//   the data section; tensor offsets are relative to its start and multiples of the alignment.
//   A string is u64 length + UTF-8 bytes; an array is u32 item type + u64 count + items (may nest).
import { GGUFError } from '../errors.js';
import { copyBytes } from './byte-range.js';
import { errMsg } from './files.js';
import { GGML_TYPES } from './ggml-dequant.js';
import type { ByteSource } from './source.js';

/** gguf_metadata_value_type */
export const GGUF_TYPE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9,
  UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export const GGUF_TYPE_NAMES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];
/** Typed arrays of the 8- to 32-bit number types, by value type (little-endian, as every engine gpt2-wasm runs on). */
const TYPED_ARRAYS: Record<number, new (b: ArrayBuffer) => ArrayLike<number>> = {
  0: Uint8Array, 1: Int8Array, 2: Uint16Array, 3: Int16Array, 4: Uint32Array, 5: Int32Array, 6: Float32Array, 12: Float64Array,
};
/** Bytes of a fixed-size value (strings and arrays: their smallest encoding, for bounds checks). */
const VALUE_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

/** The state of a string array being read (Cursor.stringsInWindow): items [0, i) are in pool[0, used). */
interface StringArrayReader { count: number; i: number; used: number; units: number; pool: Uint8Array; starts: Int32Array; at: Float64Array }

/** u64/i64 values are numbers when they are safe integers, else bigints. */
export type GGUFValue = number | bigint | boolean | string | GGUFValue[];
export interface GGUFEntry {
  type: number;
  /** The value; an array of strings is made into JavaScript strings when this is first read (see `strings`). */
  value: GGUFValue;
  /** for arrays: the item type */
  itemType?: number;
  /** An array of strings as read: all items in one string (GGUFStrings), without a string per item. */
  strings?: GGUFStrings;
}

/**
 * A GGUF array of strings held as one JavaScript string of all its items and the UTF-16 start of each, checked
 * for valid UTF-8 when the file is opened. A GPT-2 file's tokenizer has 50 257 tokens and 50 000 merges: decoding
 * each into its own string took most of the header's parse time and ~10 MB of heap, and loading the model needs
 * none of them. The tokenizer reads `text` and `starts` as they are (src/tokenizer/load.ts); at() and toArray()
 * make strings on demand.
 */
export class GGUFStrings {
  /** Item i is text.slice(starts[i], starts[i + 1]). */
  constructor(readonly text: string, readonly starts: Int32Array) {}
  get length(): number { return this.starts.length - 1; }
  at(i: number): string { return this.text.slice(this.starts[i], this.starts[i + 1]); }
  toArray(): string[] { return Array.from({ length: this.length }, (_, i) => this.at(i)); }
}

/** A metadata entry whose value is made from `strings` when first read, and kept. */
function stringsEntry(type: number, itemType: number, strings: GGUFStrings): GGUFEntry {
  const entry = { type, itemType, strings } as GGUFEntry;
  Object.defineProperty(entry, 'value', {
    enumerable: true, configurable: true,
    get() {
      const value = strings.toArray();
      Object.defineProperty(entry, 'value', { value, enumerable: true, writable: true });
      return value;
    },
  });
  return entry;
}

export interface GGUFTensorInfo {
  name: string;
  /** ggml order: ne0 (the contiguous dimension) first. */
  dims: number[];
  /** ggml type id (see GGML_TYPES). */
  type: number;
  typeName: string;
  /** Offset relative to the data section, as stored. */
  offset: number;
  /** Absolute file offset and size of the data. */
  byteOffset: number;
  byteLength: number;
  count: number;
}

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
const MAX_NAME_BYTES = 63; // GGML_MAX_NAME (64) including the NUL
const MAX_ARRAY_DEPTH = 8;
const WINDOW = 1 << 20;

/** A forward reader over a byte source through a read-ahead window. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private start = 0;
  private own = new Uint8Array(0);
  constructor(private src: ByteSource, readonly size: number, private file: string) {}

  left(): number { return this.size - this.pos; }

  /** Whether bytes [pos, pos+n) are in the window already (then no await is needed). */
  ready(n: number): boolean { return n <= this.size - this.pos && this.pos >= this.start && this.pos + n <= this.start + this.buf.byteLength; }
  /** The u64 at pos, without moving (needs ready(8)). */
  peekU64(): bigint { return this.view.getBigUint64(this.pos - this.start, true); }

  /** Make bytes [pos, pos+n) available; `what` names the field for the truncation message. */
  async need(n: number, what: string): Promise<void> {
    if (n > this.size - this.pos) {
      throw new GGUFError(`${this.file}: unexpected end of file reading ${what}: it needs ${n} bytes at offset ${this.pos}, but the file has ${this.size} bytes (truncated?)`);
    }
    if (this.pos >= this.start && this.pos + n <= this.start + this.buf.byteLength) return;
    const len = Math.min(this.size - this.pos, Math.max(n, WINDOW));
    let b: Uint8Array;
    try {
      if (this.src.readInto) {
        // one window buffer, refilled (nothing keeps a view of it across a refill)
        if (this.own.byteLength < len) this.own = new Uint8Array(len);
        b = this.own.subarray(0, len);
        await this.src.readInto(this.pos, b);
      } else b = await this.src.read(this.pos, len);
    } catch (e) {
      if ((e as any)?.code === 'DOWNLOAD') throw e;
      throw new GGUFError(`${this.file}: cannot read ${what} at offset ${this.pos}: ${errMsg(e)}`, { cause: e });
    }
    if (b.byteLength !== len) throw new GGUFError(`${this.file}: short read at offset ${this.pos} (${b.byteLength} of ${len} bytes)`);
    this.buf = b;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.start = this.pos;
  }

  private at(n: number): number { const o = this.pos - this.start; this.pos += n; return o; }
  u8(): number { return this.buf[this.at(1)]; }
  i8(): number { return this.view.getInt8(this.at(1)); }
  u16(): number { return this.view.getUint16(this.at(2), true); }
  i16(): number { return this.view.getInt16(this.at(2), true); }
  u32(): number { return this.view.getUint32(this.at(4), true); }
  i32(): number { return this.view.getInt32(this.at(4), true); }
  f32(): number { return this.view.getFloat32(this.at(4), true); }
  f64(): number { return this.view.getFloat64(this.at(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.at(8), true); }
  /** A u64 as a number (exact below 2^53; above, still larger than any byte count of a file). */
  u64n(): number { const o = this.at(8); return this.view.getUint32(o, true) + this.view.getUint32(o + 4, true) * 4294967296; }
  i64(): bigint { return this.view.getBigInt64(this.at(8), true); }
  bytes(n: number): Uint8Array { const o = this.at(n); return this.buf.subarray(o, o + n); }
  /**
   * Reads the items of a string array that lie wholly in the window into `a` (one loop, no call or view per item:
   * a vocabulary is 50k+ strings, and most of a load runs this loop before the JIT has optimized it); stops at the
   * first item that does not, or that does not fit in a.pool. Returns false at a bad item: one whose first byte
   * continues a character (no valid UTF-8 string starts so).
   */
  stringsInWindow(a: StringArrayReader): boolean {
    const b = this.buf, end = this.start + b.byteLength, view = this.view, pool = a.pool, cap = pool.byteLength;
    let pos = this.pos, i = a.i, used = a.used, units = a.units;
    for (; i < a.count && pos + 8 <= end; i++) {
      const o = pos - this.start, n = view.getUint32(o, true) + view.getUint32(o + 4, true) * 4294967296;
      if (pos + 8 + n > end || used + n > cap) break;
      a.at[i] = pos + 8;
      a.starts[i] = units;
      const first = o + 8;
      if (n > 0 && (b[first] & 0xc0) === 0x80) { this.pos = pos; a.i = i; a.used = used; a.units = units; return false; }
      // UTF-16 length: one unit per lead byte (not 10xxxxxx), two for a 4-byte sequence's
      for (let k = first; k < first + n; k++) { const x = b[k]; pool[used++] = x; if ((x & 0xc0) !== 0x80) units += x >= 0xf0 ? 2 : 1; }
      pos += 8 + n;
    }
    this.pos = pos; a.i = i; a.used = used; a.units = units;
    return true;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const toNum = (v: bigint): number | bigint => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v);
const show = (s: string) => JSON.stringify(s.length > 80 ? s.slice(0, 77) + '...' : s);

export class GGUFFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GGUFEntry>;
  /** Tensors in table order. */
  readonly tensors: ReadonlyMap<string, GGUFTensorInfo>;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  readonly size: number;
  readonly name: string;

  private constructor(name: string, version: number, size: number, metadata: Map<string, GGUFEntry>, tensors: Map<string, GGUFTensorInfo>, alignment: number, dataOffset: number) {
    this.name = name; this.version = version; this.size = size; this.metadata = metadata; this.tensors = tensors;
    this.alignment = alignment; this.dataOffset = dataOffset;
  }

  /** The value of `key`, or undefined. */
  get(key: string): GGUFValue | undefined { return this.metadata.get(key)?.value; }

  /** Parse and check the header and tensor table of `src` (the source stays open; the caller closes it). */
  static async open(src: ByteSource): Promise<GGUFFile> {
    const file = src.name;
    let size: number;
    try {
      size = await src.size();
    } catch (e) {
      if ((e as any)?.code === 'DOWNLOAD') throw e;
      throw new GGUFError(`${file}: cannot read the file size: ${errMsg(e)}`, { cause: e });
    }
    const c = new Cursor(src, size, file);
    await c.need(8, 'the GGUF magic and version');
    const magic = String.fromCharCode(...c.bytes(4));
    if (magic !== GGUF_MAGIC) throw new GGUFError(`${file}: not a GGUF file (magic ${JSON.stringify(magic)}, expected "GGUF")`);
    const version = c.u32();
    if (version === 1) throw new GGUFError(`${file}: GGUF version 1 is not supported (versions 2 and 3 are); convert the file again with a current llama.cpp`);
    if (version === 0x02000000 || version === 0x03000000) throw new GGUFError(`${file}: this is a big-endian GGUF file; only little-endian files are supported`);
    if (version !== 2 && version !== 3) throw new GGUFError(`${file}: unsupported GGUF version ${version} (versions 2 and 3 are supported)`);
    await c.need(16, 'the tensor and metadata counts');
    const nTensors = c.u64(), nKV = c.u64();
    // smallest encodings: a key/value is 8 (key length) + 4 (type) + 1; a tensor info 8 + 4 + 8 + 4 + 8
    if (nKV * 13n > BigInt(c.left())) throw new GGUFError(`${file}: metadata count ${nKV} cannot fit in the ${c.left()} bytes left in the file (corrupt header)`);
    if (nTensors * 32n > BigInt(c.left())) throw new GGUFError(`${file}: tensor count ${nTensors} cannot fit in the ${c.left()} bytes left in the file (corrupt header)`);

    const readString = async (what: string): Promise<string> => {
      await c.need(8, `the length of ${what}`);
      const n = c.u64();
      if (n > BigInt(c.left())) throw new GGUFError(`${file}: ${what} claims ${n} bytes at offset ${c.pos - 8}, more than the ${c.left()} bytes left in the file`);
      await c.need(Number(n), what);
      try {
        return utf8.decode(c.bytes(Number(n)));
      } catch {
        throw new GGUFError(`${file}: ${what} at offset ${c.pos - Number(n)} is not valid UTF-8`);
      }
    };
    // An array of strings into one pool of their bytes, decoded as one string (GGUFStrings). Vocabularies are 50k+
    // strings: the loop awaits only when the window must move, and makes no string per item.
    const readStrings = async (count: number, what: string): Promise<GGUFStrings> => {
      const a: StringArrayReader = {
        count, i: 0, used: 0, units: 0, pool: new Uint8Array(Math.min(c.left(), Math.max(1 << 16, 16 * count))),
        starts: new Int32Array(count + 1), at: new Float64Array(count),
      };
      // the first item in [0, upTo) not valid UTF-8 on its own (items [0, a.i) are in the pool), for the message
      const firstBad = (upTo: number): GGUFError | null => {
        for (let i = 0, o = 0; i < upTo; i++) {
          const n = (i + 1 < a.i ? a.at[i + 1] - 8 : a.at[i] + (a.used - o)) - a.at[i];
          try { utf8.decode(a.pool.subarray(o, o + n)); } catch { return badUtf8(what, i, a.at[i]); }
          o += n;
        }
        return null;
      };
      const startsInCharacter = () => firstBad(a.i) ?? badUtf8(what, a.i, c.pos + 8);
      while (a.i < count) {
        if (!c.stringsInWindow(a)) throw startsInCharacter();
        if (a.i === count) break;
        // the next item is past the window or the pool: its length, then its bytes
        await c.need(8, `the length of ${what}[${a.i}]`);
        const n = c.u64n();
        if (n > c.left()) throw new GGUFError(`${file}: ${what}[${a.i}] claims ${n} bytes at offset ${c.pos - 8}, more than the ${c.left()} bytes left in the file`);
        c.pos -= 8; // stringsInWindow reads it whole, length and bytes
        if (a.used + n > a.pool.byteLength) { const p = new Uint8Array(Math.max(a.used + n, 2 * a.pool.byteLength)); p.set(a.pool.subarray(0, a.used)); a.pool = p; }
        if (!c.ready(8 + n)) await c.need(8 + n, `${what}[${a.i}]`);
        if (!c.stringsInWindow(a)) throw startsInCharacter();
      }
      const { pool, starts, used, units } = a;
      starts[count] = units;
      // the items are each valid UTF-8 exactly when their concatenation is and no item starts inside a character
      let text: string;
      try {
        text = utf8.decode(pool.subarray(0, used));
      } catch {
        throw firstBad(count) ?? new GGUFError(`${file}: ${what} is not valid UTF-8`);
      }
      if (text.length !== units) throw new GGUFError(`${file}: ${what} is not valid UTF-8`);
      return new GGUFStrings(text, starts);
    };
    const badUtf8 = (what: string, i: number, offset: number) => new GGUFError(`${file}: ${what}[${i}] at offset ${offset} is not valid UTF-8`);
    const readValue = async (type: number, what: string, depth: number): Promise<GGUFEntry> => {
      switch (type) {
        case GGUF_TYPE.STRING: return { type, value: await readString(what) };
        case GGUF_TYPE.ARRAY: {
          if (depth >= MAX_ARRAY_DEPTH) throw new GGUFError(`${file}: ${what} nests arrays more than ${MAX_ARRAY_DEPTH} deep`);
          await c.need(12, `the array header of ${what}`);
          const itemType = c.u32(), n = c.u64();
          if (itemType >= VALUE_BYTES.length) throw new GGUFError(`${file}: ${what} is an array of unknown value type ${itemType}`);
          if (n * BigInt(VALUE_BYTES[itemType]) > BigInt(c.left())) {
            throw new GGUFError(`${file}: ${what} claims ${n} items of type ${GGUF_TYPE_NAMES[itemType]}, more than fit in the ${c.left()} bytes left in the file`);
          }
          const count = Number(n);
          if (itemType === GGUF_TYPE.STRING) {
            const strings = await readStrings(count, what);
            return depth === 0 ? stringsEntry(type, itemType, strings) : { type, itemType, value: strings.toArray() };
          }
          const items: GGUFValue[] = new Array(count);
          if (itemType === GGUF_TYPE.ARRAY) {
            for (let i = 0; i < count; i++) items[i] = (await readValue(itemType, `${what}[${i}]`, depth + 1)).value;
          } else {
            await c.need(count * VALUE_BYTES[itemType], what);
            const Typed = TYPED_ARRAYS[itemType];
            // 8- to 32-bit numbers through a typed array over a copy of their bytes (a GPT-2 vocabulary's token types
            // are 50k i32s: one call each costs more than the copy); bools and 64-bit values one by one
            if (Typed) return { type, itemType, value: Array.from(new Typed(copyBytes(c.bytes(count * VALUE_BYTES[itemType])).buffer)) };
            for (let i = 0; i < count; i++) items[i] = scalar(itemType, what, i);
          }
          return { type, itemType, value: items };
        }
        default:
          if (type >= VALUE_BYTES.length) throw new GGUFError(`${file}: ${what} has unknown value type ${type}`);
          await c.need(VALUE_BYTES[type], what);
          return { type, value: scalar(type, what) };
      }
    };
    /** One scalar (`what`, item `index` of it when >= 0: the label is built only for an error). */
    const scalar = (type: number, what: string, index = -1): GGUFValue => {
      switch (type) {
        case GGUF_TYPE.UINT8: return c.u8();
        case GGUF_TYPE.INT8: return c.i8();
        case GGUF_TYPE.UINT16: return c.u16();
        case GGUF_TYPE.INT16: return c.i16();
        case GGUF_TYPE.UINT32: return c.u32();
        case GGUF_TYPE.INT32: return c.i32();
        case GGUF_TYPE.FLOAT32: return c.f32();
        case GGUF_TYPE.FLOAT64: return c.f64();
        case GGUF_TYPE.UINT64: return toNum(c.u64());
        case GGUF_TYPE.INT64: return toNum(c.i64());
        case GGUF_TYPE.BOOL: {
          const b = c.u8();
          if (b > 1) throw new GGUFError(`${file}: ${index >= 0 ? `${what}[${index}]` : what} is a bool with byte value ${b} (must be 0 or 1)`);
          return b === 1;
        }
      }
      throw new GGUFError(`${file}: ${what} has unknown value type ${type}`);
    };

    const metadata = new Map<string, GGUFEntry>();
    for (let i = 0n; i < nKV; i++) {
      const key = await readString(`the key of metadata entry ${i}`);
      if (metadata.has(key)) throw new GGUFError(`${file}: metadata key ${show(key)} appears twice`);
      await c.need(4, `the value type of ${show(key)}`);
      const type = c.u32();
      if (type >= VALUE_BYTES.length) throw new GGUFError(`${file}: metadata ${show(key)} has unknown value type ${type}`);
      metadata.set(key, await readValue(type, `metadata ${show(key)}`, 0));
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get('general.alignment');
    if (al) {
      const v = al.value;
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || (v & (v - 1)) !== 0 || v > 1 << 30) {
        throw new GGUFError(`${file}: general.alignment is ${String(v)}; it must be a positive power of two`);
      }
      alignment = v;
    }

    const tensors = new Map<string, GGUFTensorInfo>();
    for (let i = 0n; i < nTensors; i++) {
      const name = await readString(`the name of tensor ${i}`);
      const where = `${file}: tensor ${show(name)}`;
      if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) throw new GGUFError(`${where}: name longer than ${MAX_NAME_BYTES} bytes`);
      if (tensors.has(name)) throw new GGUFError(`${where} appears twice in the tensor table`);
      await c.need(4, `the dimension count of tensor ${show(name)}`);
      const nDims = c.u32();
      if (nDims < 1 || nDims > MAX_DIMS) throw new GGUFError(`${where} has ${nDims} dimensions (1 to ${MAX_DIMS} are valid)`);
      await c.need(8 * nDims + 12, `the dimensions, type and offset of tensor ${show(name)}`);
      const dims: number[] = [];
      let count = 1;
      for (let d = 0; d < nDims; d++) {
        const v = c.u64();
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GGUFError(`${where} has dimension ${v}, too large`);
        dims.push(Number(v));
        count *= Number(v);
      }
      if (!Number.isSafeInteger(count)) throw new GGUFError(`${where} has shape [${dims}] with too many elements`);
      const type = c.u32();
      const t = GGML_TYPES.get(type);
      if (!t) throw new GGUFError(`${where} has unknown ggml type id ${type}`);
      if (dims[0] % t.blockSize) throw new GGUFError(`${where}: its first dimension ${dims[0]} is not a multiple of the ${t.name} block size ${t.blockSize}`);
      const offset = c.u64();
      if (offset > BigInt(size)) throw new GGUFError(`${where}: data offset ${offset} is past the end of the file (${size} bytes)`);
      if (Number(offset) % alignment) throw new GGUFError(`${where}: data offset ${offset} is not a multiple of the alignment ${alignment}`);
      const byteLength = (count / t.blockSize) * t.typeSize;
      tensors.set(name, { name, dims, type, typeName: t.name, offset: Number(offset), byteOffset: 0, byteLength, count });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const dataBytes = size - dataOffset;
    const spans = [...tensors.values()];
    for (const t of spans) {
      t.byteOffset = dataOffset + t.offset;
      if (t.byteLength > 0 && t.offset + t.byteLength > dataBytes) {
        throw new GGUFError(`${file}: tensor ${show(t.name)} data [${t.byteOffset}, ${t.byteOffset + t.byteLength}) runs past the end of the file (${size} bytes; truncated?)`);
      }
    }
    spans.sort((a, b) => a.offset - b.offset);
    let prev: GGUFTensorInfo | null = null;
    for (const t of spans) {
      if (t.byteLength === 0) continue;
      if (prev && t.offset < prev.offset + prev.byteLength) {
        throw new GGUFError(`${file}: tensors ${show(prev.name)} [${prev.offset}, ${prev.offset + prev.byteLength}) and ${show(t.name)} [${t.offset}, ${t.offset + t.byteLength}) overlap in the data section`);
      }
      prev = t;
    }
    return new GGUFFile(file, version, size, metadata, tensors, alignment, dataOffset);
  }
}

/** Metadata as plain values (key → value), e.g. for the tokenizer; an array of strings as its GGUFStrings. */
export function metadataValues(g: GGUFFile): Map<string, GGUFValue | GGUFStrings> {
  return new Map([...g.metadata].map(([k, e]) => [k, e.strings ?? e.value]));
}
