// Preallocated key/value caches in the wasm memory: for each layer K and V as [B, H, capacity, D] of f32 or
// (kv_dtype 'fp16') IEEE half floats, plus a per-slot attention mask [B, capacity]. Self-attention appends as
// tokens are processed; cross-attention K/V are computed once per encoder input and reused on every step (an
// encoder-decoder cache). An fp16 cache halves the memory; kv_store rounds to it and the attention kernels read it.
// Whoever creates a KVCache disposes it (model.createCache() hands it to the caller; forward()'s own cache
// belongs to the model, see past-key-values.ts).
import { DisposedError, InputError, MemoryLimitError, OptionError } from '../errors.js';
import { shown } from '../options.js';
import { DT_F16, DT_F32 } from '../runtime/abi.js';
import type { Backend } from '../runtime/backend.js';
import { mib, type Region } from '../runtime/memory.js';
import { floatToHalf, halfTable } from '../io/half.js';

export interface CacheShape { layers: number; heads: number; headDim: number }

/** Element type of a KV cache. */
export type KVDType = 'fp32' | 'fp16';

/** Checks a kv_dtype option (undefined: 'fp32'); `option` names it in the error. */
export function checkKVDType(v: unknown, option = 'kv_dtype'): KVDType {
  if (v === undefined) return 'fp32';
  if (v === 'fp32' || v === 'fp16') return v;
  throw new OptionError(`${option} must be 'fp32' or 'fp16', got ${JSON.stringify(v)}${kvDTypeHint(v)}`);
}

/** What a KV dtype our two do not include means here, when it is another spelling of one (llama.cpp's and GGUF's
 *  f16 / F16 / f32, other case) or a cache type llama.cpp has (-ctk bf16, q8_0, q4_0, ...) and this runtime has not:
 *  '' for anything else. The cache is fp32 or fp16 only (KVBuffers); quantized blocks are for the weights. */
export function kvDTypeHint(v: unknown): string {
  if (typeof v !== 'string') return '';
  const lower = v.trim().toLowerCase();
  const types = "the cache holds 'fp32' or 'fp16' ('fp16' halves it)";
  if (lower === 'fp32' || lower === 'fp16') return `; KV dtypes are lower case: '${lower}'`;
  const same: Record<string, KVDType> = { f32: 'fp32', float32: 'fp32', f16: 'fp16', float16: 'fp16', half: 'fp16' };
  if (Object.hasOwn(same, lower)) return `; ${JSON.stringify(v)} is '${same[lower]}' here`;
  if (lower === 'bf16' || lower === 'bfloat16') return `; bf16 is not a KV cache type here: ${types}`;
  if (/^(i?q[1-8]|tq[12])(_|$)/.test(lower)) return `; ${JSON.stringify(v)} is not a KV cache type here: ${types}; only the weights are quantized (q8, q4)`;
  return '';
}

/** The error of every use of a disposed model or cache (`plural` for a subject such as 'these past_key_values'). */
export const disposedError = (what: string, plural = false) => new DisposedError(`${what} ${plural ? 'were' : 'was'} disposed`);

export class KVBuffers {
  readonly k: Region[] = [];
  readonly v: Region[] = [];
  /** Bytes of one batch row of one layer's K (or V): [H, capacity, D] elements. */
  readonly rowBytes: number;
  /** The kernels' element type of these caches (kvDt of kv_store and the attention kernels). */
  readonly dt: number;
  /** Bytes per element: 4 (fp32) or 2 (fp16). */
  readonly elementBytes: number;
  /** `then`: sizes of regions the caller allocates right after these (the self cache's mask), in the fit check. */
  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number, label: string, readonly dtype: KVDType = 'fp32', then: number[] = []) {
    this.dt = dtype === 'fp16' ? DT_F16 : DT_F32;
    this.elementBytes = dtype === 'fp16' ? 2 : 4;
    this.rowBytes = shape.heads * capacity * shape.headDim * this.elementBytes;
    // all layers or none: failing at a late layer would have grown the memory for the early ones, for good
    const sizes = [...new Array<number>(2 * shape.layers).fill(batch * this.rowBytes), ...then];
    if (!backend.arena.fits(sizes)) {
      throw backend.arena.outOfMemory(`${label} (${mib(2 * shape.layers * batch * this.rowBytes)}: ${batch} x ${capacity} tokens, ${dtype} K and V of ${shape.layers} layers)`,
        "a smaller dtype ('fp16' or 'q8'; kv_dtype 'fp16')");
    }
    try {
      for (let l = 0; l < shape.layers; l++) {
        this.k.push(backend.arena.alloc(`${label} K layer ${l}`, batch * this.rowBytes));
        this.v.push(backend.arena.alloc(`${label} V layer ${l}`, batch * this.rowBytes));
      }
    } catch (e) { this.dispose(); throw e; }
  }
  get bytes(): number { return (this.k.length + this.v.length) * (this.k[0]?.bytes ?? 0); }

  /** Slots [0, n) of a K or V region of these buffers as f32 [B, H, n, D]. */
  read(region: Region, n: number): Float32Array {
    const { batch: B, capacity: cap } = this, { heads: H, headDim: D } = this.shape;
    const out = new Float32Array(B * H * n * D);
    const A = this.backend.arena;
    if (this.dtype === 'fp32') {
      const src = A.f32(region.ptr, B * H * cap * D);
      for (let bh = 0; bh < B * H; bh++) out.set(src.subarray(bh * cap * D, bh * cap * D + n * D), bh * n * D);
      return out;
    }
    const src = A.u16(region.ptr, B * H * cap * D), table = halfTable();
    for (let bh = 0; bh < B * H; bh++) for (let i = 0; i < n * D; i++) out[bh * n * D + i] = table[src[bh * cap * D + i]];
    return out;
  }

  /** Writes f32 [B, H, n, D] into slots [0, n) of a K or V region, rounded to halves for 'fp16' as kv_store does. */
  write(region: Region, data: Float32Array, n: number): void {
    const { batch: B, capacity: cap } = this, { heads: H, headDim: D } = this.shape;
    const A = this.backend.arena;
    if (this.dtype === 'fp32') {
      const dst = A.f32(region.ptr, B * H * cap * D);
      for (let bh = 0; bh < B * H; bh++) dst.set(data.subarray(bh * n * D, (bh + 1) * n * D), bh * cap * D);
      return;
    }
    const dst = A.u16(region.ptr, B * H * cap * D);
    for (let bh = 0; bh < B * H; bh++) for (let i = 0; i < n * D; i++) dst[bh * cap * D + i] = floatToHalf(data[bh * n * D + i]);
  }

  dispose(): void {
    for (const r of [...this.k, ...this.v]) this.backend.arena.release(r);
    this.k.length = 0; this.v.length = 0;
  }
}

export class KVCache {
  private _self: KVBuffers;
  private _mask: Region;
  /** Tokens stored so far (all rows advance together; padding is expressed through the mask). */
  length = 0;
  /** Cross-attention K/V of the encoder input; `blind` marks the batch rows whose encoder mask hides every state
   *  (attended uniformly, as transformers does: see crossAttentionBlock), null when there is none. */
  cross: { buffers: KVBuffers; S: number; mask: Region | null; blind: Uint8Array | null; key: unknown } | null = null;
  private _disposed = false;

  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, private _capacity: number, readonly dtype: KVDType = 'fp32') {
    if (!Number.isInteger(batch) || batch < 1) throw new InputError(`cache batch must be a positive integer, got ${shown(batch)}`);
    if (!Number.isInteger(_capacity) || _capacity < 1) throw new InputError(`cache capacity must be a positive integer, got ${shown(_capacity)}`);
    this._self = new KVBuffers(backend, shape, batch, _capacity, 'kv-cache', dtype, [batch * _capacity * 4]);
    try { this._mask = backend.arena.alloc('kv-cache mask', batch * _capacity * 4); } catch (e) { this._self.dispose(); throw e; }
    backend.arena.f32(this._mask.ptr, batch * _capacity).fill(1);
  }

  /** K and V of every layer: [B, H, capacity, D] of the cache's dtype each. */
  get self(): KVBuffers { return this._self; }
  /** 1 where a slot holds a visible token, 0 for padding, per batch row: [B, capacity] f32. */
  get mask(): Region { return this._mask; }
  get capacity(): number { return this._capacity; }
  get disposed(): boolean { return this._disposed; }
  get bytes(): number { return this._self.bytes + this._mask.bytes + (this.cross?.buffers.bytes ?? 0); }

  /** Bytes of K and V that hold the stored tokens (the rest of `bytes` is reserved for tokens to come). */
  get usedBytes(): number { return this._disposed ? 0 : this._self.bytes * this.length / this._capacity; }

  /** Makes this cache a copy of `src` (same shape, batch, capacity and dtype): K, V, mask and length. */
  copyFrom(src: KVCache): void {
    this.check(); src.check();
    if (src.backend !== this.backend) throw new InputError('copyFrom needs a cache of the same model: another model\'s cache lives in that model\'s memory');
    if (src.batch !== this.batch || src.capacity !== this._capacity || src.dtype !== this.dtype || src.shape.layers !== this.shape.layers) {
      throw new InputError(`copyFrom needs a cache of the same batch (${this.batch}), capacity (${this._capacity}) and dtype (${this.dtype})`);
    }
    const U8 = new Uint8Array(this.backend.arena.buffer);
    const pairs: [Region, Region][] = [[src._mask, this._mask]];
    for (let l = 0; l < this.shape.layers; l++) pairs.push([src._self.k[l], this._self.k[l]], [src._self.v[l], this._self.v[l]]);
    for (const [from, to] of pairs) U8.copyWithin(to.ptr, from.ptr, from.ptr + from.bytes);
    this.length = src.length;
  }

  /** Throws DISPOSED once the cache is disposed (its memory may belong to someone else by then). */
  check(): void { if (this._disposed) throw disposedError('this KV cache'); }

  /** Forget the stored tokens (the memory stays reserved for reuse). */
  reset(): void { this.check(); this.length = 0; this.backend.arena.f32(this._mask.ptr, this.batch * this._capacity).fill(1); }

  /** Moves the cache to `capacity` slots per row, keeping the first `length` slots of every row (K, V, mask). */
  grow(capacity: number): void {
    this.check();
    if (capacity <= this._capacity) return;
    let fresh: { self: KVBuffers; mask: Region };
    try {
      fresh = this.allocate(capacity);
    } catch (e) {
      if (!(e instanceof MemoryLimitError)) throw e;
      this.growThroughHost(capacity, e);
      return;
    }
    const U8 = new Uint8Array(this.backend.arena.buffer);
    const dst = this.kept(fresh.self, fresh.mask, capacity);
    for (const [src, n] of this.kept(this._self, this._mask, this._capacity)) U8.copyWithin(dst.next().value![0], src, src + n);
    this.release();
    this.adopt(fresh.self, fresh.mask, capacity);
  }

  private allocate(capacity: number): { self: KVBuffers; mask: Region } {
    const self = new KVBuffers(this.backend, this.shape, this.batch, capacity, 'kv-cache', this.dtype, [this.batch * capacity * 4]);
    try { return { self, mask: this.backend.arena.alloc('kv-cache mask', this.batch * capacity * 4) }; } catch (e) { self.dispose(); throw e; }
  }

  /** Where the kept slots (the first `length`) live in buffers (self, mask) of `capacity` slots, as [address, bytes]:
   *  per row its mask prefix, then per (layer, K/V, row, head) slots [0, length) of D elements. The same order and
   *  sizes for any capacity, so two such walks pair up. */
  private *kept(self: KVBuffers, mask: Region, capacity: number): Generator<[number, number]> {
    const keep = this.length, B = this.batch, { heads: H, headDim: D } = this.shape, eb = self.elementBytes;
    for (let b = 0; b < B; b++) yield [mask.ptr + b * capacity * 4, keep * 4];
    for (let l = 0; l < this.shape.layers; l++) {
      for (const r of [self.k[l], self.v[l]]) for (let bh = 0; bh < B * H; bh++) yield [r.ptr + bh * capacity * D * eb, keep * D * eb];
    }
  }

  private release(): void {
    this._self.dispose();
    this.backend.arena.release(this._mask);
  }

  /** Takes (self, mask) of `capacity` slots whose kept slots are filled; the mask past them reads 1. */
  private adopt(self: KVBuffers, mask: Region, capacity: number): void {
    for (let b = 0; b < this.batch; b++) this.backend.arena.f32(mask.ptr + (b * capacity + this.length) * 4, capacity - this.length).fill(1);
    this._self = self; this._mask = mask; this._capacity = capacity;
  }

  /** grow() when the old and the new cache do not fit at once (a long incremental run near the 4 GiB end): the kept
   *  slots wait in host memory while the old cache is freed and the new one allocated. If the new one alone does
   *  not fit either, the old capacity takes back the space just freed, the slots are restored, and the error says
   *  growing is what did not fit. */
  private growThroughHost(capacity: number, cause: MemoryLimitError): void {
    const A = this.backend.arena, old = this._capacity;
    const saved = [...this.kept(this._self, this._mask, old)].map(([src, n]) => A.u8(src, n).slice());
    this.release();
    const place = (cap: number) => {
      const fresh = this.allocate(cap);
      const U8 = new Uint8Array(A.buffer);
      let i = 0;
      for (const [dst] of this.kept(fresh.self, fresh.mask, cap)) U8.set(saved[i++], dst);
      this.adopt(fresh.self, fresh.mask, cap);
    };
    try {
      place(capacity);
    } catch (e) {
      const why = `growing a KV cache from ${old} to ${capacity} tokens: ${cause.message}`;
      try {
        place(old);
      } catch (e2) {
        // not even the old size fits in the space just freed (not expected: nothing else allocates in between)
        this._disposed = true;
        this.dropCross();
        throw new MemoryLimitError(`${why}; its contents could not be restored, so the cache is disposed`, { cause: e2 });
      }
      throw new MemoryLimitError(why, { cause: e });
    }
  }

  dropCross(): void {
    if (!this.cross) return;
    this.cross.buffers.dispose();
    this.backend.arena.release(this.cross.mask);
    this.cross = null;
  }

  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    this._self.dispose();
    this.backend.arena.release(this._mask);
    this.dropCross();
  }
}
