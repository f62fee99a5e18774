// Preallocated key/value caches in the wasm memory: for each layer K and V as [B, H, capacity, D] of f32 or
// (kv_dtype 'fp16') IEEE half floats, plus a per-slot attention mask [B, capacity]. Self-attention appends as
// tokens are processed; cross-attention K/V are computed once per encoder input and reused on every step (an
// encoder-decoder cache). An fp16 cache halves the memory; kv_store rounds to it and the attention kernels read it.
// Whoever creates a KVCache disposes it (model.createCache() hands it to the caller; forward()'s own cache
// belongs to the model, see past-key-values.ts).
import { DisposedError, InputError, OptionError } from '../errors.js';
import { DT_F16, DT_F32 } from '../runtime/abi.js';
import type { Backend } from '../runtime/backend.js';
import type { Region } from '../runtime/memory.js';
import { floatToHalf, halfTable } from '../io/half.js';

export interface CacheShape { layers: number; heads: number; headDim: number }

/** Element type of a KV cache. */
export type KVDType = 'fp32' | 'fp16';

/** Checks a kv_dtype option (undefined: 'fp32'); `option` names it in the error. */
export function checkKVDType(v: unknown, option = 'kv_dtype'): KVDType {
  if (v === undefined) return 'fp32';
  if (v === 'fp32' || v === 'fp16') return v;
  throw new OptionError(`${option} must be 'fp32' or 'fp16', got ${JSON.stringify(v)}`);
}

/** The error of every use of a disposed model or cache. */
export const disposedError = (what: string) => new DisposedError(`${what} was disposed`);

export class KVBuffers {
  readonly k: Region[] = [];
  readonly v: Region[] = [];
  /** Bytes of one batch row of one layer's K (or V): [H, capacity, D] elements. */
  readonly rowBytes: number;
  /** The kernels' element type of these caches (kvDt of kv_store and the attention kernels). */
  readonly dt: number;
  /** Bytes per element: 4 (fp32) or 2 (fp16). */
  readonly elementBytes: number;
  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number, label: string, readonly dtype: KVDType = 'fp32') {
    this.dt = dtype === 'fp16' ? DT_F16 : DT_F32;
    this.elementBytes = dtype === 'fp16' ? 2 : 4;
    this.rowBytes = shape.heads * capacity * shape.headDim * this.elementBytes;
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
  cross: { buffers: KVBuffers; S: number; mask: Region | null; key: unknown } | null = null;
  private _disposed = false;

  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, private _capacity: number, readonly dtype: KVDType = 'fp32') {
    if (!Number.isInteger(batch) || batch < 1) throw new InputError(`cache batch must be a positive integer, got ${typeof batch === 'string' ? JSON.stringify(batch) : batch}`);
    if (!Number.isInteger(_capacity) || _capacity < 1) throw new InputError(`cache capacity must be a positive integer, got ${_capacity}`);
    this._self = new KVBuffers(backend, shape, batch, _capacity, 'kv-cache', dtype);
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
    const A = this.backend.arena, keep = this.length, B = this.batch, { heads: H, headDim: D } = this.shape;
    const self = new KVBuffers(this.backend, this.shape, B, capacity, 'kv-cache', this.dtype);
    let mask: Region;
    try { mask = A.alloc('kv-cache mask', B * capacity * 4); } catch (e) { self.dispose(); throw e; }
    const U8 = new Uint8Array(A.buffer), eb = self.elementBytes;
    const newMask = A.f32(mask.ptr, B * capacity);
    newMask.fill(1);
    for (let b = 0; b < B; b++) newMask.set(A.f32(this._mask.ptr + b * this._capacity * 4, keep), b * capacity);
    // per (layer, row, head): slots [0, keep) of D elements each, from the old stride to the new one (byte offsets)
    for (let l = 0; l < this.shape.layers; l++) {
      for (const [from, to] of [[this._self.k[l], self.k[l]], [this._self.v[l], self.v[l]]]) {
        for (let bh = 0; bh < B * H; bh++) {
          const src = from.ptr + bh * this._capacity * D * eb, dst = to.ptr + bh * capacity * D * eb;
          U8.copyWithin(dst, src, src + keep * D * eb);
        }
      }
    }
    this._self.dispose();
    A.release(this._mask);
    this._self = self; this._mask = mask; this._capacity = capacity;
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
