// Preallocated key/value caches in the wasm memory: for each layer K and V as [B, H, capacity, D] f32, plus
// a per-slot attention mask [B, capacity]. Self-attention appends as tokens are processed; cross-attention
// K/V are computed once per encoder input and reused on every step (an encoder-decoder cache).
// Whoever creates a KVCache disposes it (model.createCache() hands it to the caller; forward()'s own cache
// belongs to the model, see past-key-values.ts).
import { GPT2WasmError, InputError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';
import type { Region } from '../runtime/memory.js';

export interface CacheShape { layers: number; heads: number; headDim: number }

/** The error of every use of a disposed model or cache. */
export const disposedError = (what: string) => new GPT2WasmError('DISPOSED', `${what} was disposed`);

export class KVBuffers {
  readonly k: Region[] = [];
  readonly v: Region[] = [];
  /** Bytes of one batch row of one layer's K (or V): [H, capacity, D] f32. */
  readonly rowBytes: number;
  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number, label: string) {
    this.rowBytes = shape.heads * capacity * shape.headDim * 4;
    try {
      for (let l = 0; l < shape.layers; l++) {
        this.k.push(backend.arena.alloc(`${label} K layer ${l}`, batch * this.rowBytes));
        this.v.push(backend.arena.alloc(`${label} V layer ${l}`, batch * this.rowBytes));
      }
    } catch (e) { this.dispose(); throw e; }
  }
  get bytes(): number { return (this.k.length + this.v.length) * (this.k[0]?.bytes ?? 0); }
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

  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, private _capacity: number) {
    if (!Number.isInteger(_capacity) || _capacity < 1) throw new InputError(`cache capacity must be a positive integer, got ${_capacity}`);
    this._self = new KVBuffers(backend, shape, batch, _capacity, 'kv-cache');
    try { this._mask = backend.arena.alloc('kv-cache mask', batch * _capacity * 4); } catch (e) { this._self.dispose(); throw e; }
    backend.arena.f32(this._mask.ptr, batch * _capacity).fill(1);
  }

  /** K and V of every layer: [B, H, capacity, D] f32 each. */
  get self(): KVBuffers { return this._self; }
  /** 1 where a slot holds a visible token, 0 for padding, per batch row: [B, capacity] f32. */
  get mask(): Region { return this._mask; }
  get capacity(): number { return this._capacity; }
  get disposed(): boolean { return this._disposed; }
  get bytes(): number { return this._self.bytes + this._mask.bytes + (this.cross?.buffers.bytes ?? 0); }

  /** Throws DISPOSED once the cache is disposed (its memory may belong to someone else by then). */
  check(): void { if (this._disposed) throw disposedError('this KV cache'); }

  /** Forget the stored tokens (the memory stays reserved for reuse). */
  reset(): void { this.check(); this.length = 0; this.backend.arena.f32(this._mask.ptr, this.batch * this._capacity).fill(1); }

  /** Moves the cache to `capacity` slots per row, keeping the first `length` slots of every row (K, V, mask). */
  grow(capacity: number): void {
    this.check();
    if (capacity <= this._capacity) return;
    const A = this.backend.arena, keep = this.length, B = this.batch, { heads: H, headDim: D } = this.shape;
    const self = new KVBuffers(this.backend, this.shape, B, capacity, 'kv-cache');
    let mask: Region;
    try { mask = A.alloc('kv-cache mask', B * capacity * 4); } catch (e) { self.dispose(); throw e; }
    const F = A.F32;
    const newMask = A.f32(mask.ptr, B * capacity);
    newMask.fill(1);
    for (let b = 0; b < B; b++) newMask.set(A.f32(this._mask.ptr + b * this._capacity * 4, keep), b * capacity);
    // per (layer, row, head): slots [0, keep) of D floats each, from the old stride to the new one
    for (let l = 0; l < this.shape.layers; l++) {
      for (const [from, to] of [[this._self.k[l], self.k[l]], [this._self.v[l], self.v[l]]]) {
        for (let bh = 0; bh < B * H; bh++) {
          const src = (from.ptr >>> 2) + bh * this._capacity * D, dst = (to.ptr >>> 2) + bh * capacity * D;
          F.copyWithin(dst, src, src + keep * D);
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
