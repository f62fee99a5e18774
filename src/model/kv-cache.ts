// Preallocated key/value caches in the wasm memory: for each layer K and V as [B, H, capacity, D] of f32 or
// (kv_dtype 'fp16') IEEE half floats, plus a per-slot attention mask [B, capacity]. Self-attention appends as
// tokens are processed; cross-attention K/V are computed once per encoder input and reused on every step (an
// encoder-decoder cache). An fp16 cache halves the memory; kv_store rounds to it and the attention kernels read it.
import { InputError, OptionError } from '../errors.js';
import { DT_F16, DT_F32 } from '../runtime/abi.js';
import type { Backend } from '../runtime/backend.js';
import type { Region } from '../runtime/memory.js';
import { floatToHalf, halfTable } from './half.js';

export interface CacheShape { layers: number; heads: number; headDim: number }

/** Element type of a KV cache. */
export type KVDType = 'fp32' | 'fp16';

/** Checks a kv_dtype option (undefined: 'fp32'); `option` names it in the error. */
export function checkKVDType(v: unknown, option = 'kv_dtype'): KVDType {
  if (v === undefined) return 'fp32';
  if (v === 'fp32' || v === 'fp16') return v;
  throw new OptionError(`${option} must be 'fp32' or 'fp16', got ${JSON.stringify(v)}`);
}

export class KVBuffers {
  readonly k: Region[] = [];
  readonly v: Region[] = [];
  /** The kernels' element type of these caches (kvDt of kv_store and the attention kernels). */
  readonly dt: number;
  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number, label: string, readonly dtype: KVDType = 'fp32') {
    this.dt = dtype === 'fp16' ? DT_F16 : DT_F32;
    const bytes = batch * shape.heads * capacity * shape.headDim * (dtype === 'fp16' ? 2 : 4);
    try {
      for (let l = 0; l < shape.layers; l++) {
        this.k.push(backend.arena.alloc(`${label} K layer ${l}`, bytes));
        this.v.push(backend.arena.alloc(`${label} V layer ${l}`, bytes));
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
  readonly self: KVBuffers;
  /** 1 where a slot holds a real token, 0 for padding, per batch row: [B, capacity]. */
  readonly mask: Region;
  /** Tokens stored so far (all rows advance together; padding is expressed through the mask). */
  length = 0;
  cross: { buffers: KVBuffers; S: number; mask: Region | null; key: unknown } | null = null;
  private disposed = false;

  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number, readonly dtype: KVDType = 'fp32') {
    if (!Number.isInteger(capacity) || capacity < 1) throw new InputError(`cache capacity must be a positive integer, got ${capacity}`);
    this.self = new KVBuffers(backend, shape, batch, capacity, 'kv-cache', dtype);
    try { this.mask = backend.arena.alloc('kv-cache mask', batch * capacity * 4); } catch (e) { this.self.dispose(); throw e; }
    backend.arena.f32(this.mask.ptr, batch * capacity).fill(1);
  }

  get bytes(): number { return this.self.bytes + this.mask.bytes + (this.cross?.buffers.bytes ?? 0); }

  /** Forget the stored tokens (the memory stays reserved for reuse). */
  reset(): void { this.length = 0; this.backend.arena.f32(this.mask.ptr, this.batch * this.capacity).fill(1); }

  dropCross(): void {
    if (!this.cross) return;
    this.cross.buffers.dispose();
    this.backend.arena.release(this.cross.mask);
    this.cross = null;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.self.dispose();
    this.backend.arena.release(this.mask);
    this.dropCross();
  }
}
