// Preallocated key/value caches in the wasm memory: for each layer K and V as [B, H, capacity, D] f32, plus
// a per-slot attention mask [B, capacity]. Self-attention appends as tokens are processed; cross-attention
// K/V are computed once per encoder input and reused on every step (an encoder-decoder cache).
import { InputError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';
import type { Region } from '../runtime/memory.js';

export interface CacheShape { layers: number; heads: number; headDim: number }

export class KVBuffers {
  readonly k: Region[] = [];
  readonly v: Region[] = [];
  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number, label: string) {
    const bytes = batch * shape.heads * capacity * shape.headDim * 4;
    try {
      for (let l = 0; l < shape.layers; l++) {
        this.k.push(backend.arena.alloc(`${label} K layer ${l}`, bytes));
        this.v.push(backend.arena.alloc(`${label} V layer ${l}`, bytes));
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
  readonly self: KVBuffers;
  /** 1 where a slot holds a real token, 0 for padding, per batch row: [B, capacity]. */
  readonly mask: Region;
  /** Tokens stored so far (all rows advance together; padding is expressed through the mask). */
  length = 0;
  cross: { buffers: KVBuffers; S: number; mask: Region | null; key: unknown } | null = null;
  /** Set by dispose(): the model refuses a disposed cache with DISPOSED. */
  disposed = false;

  constructor(readonly backend: Backend, readonly shape: CacheShape, readonly batch: number, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new InputError(`cache capacity must be a positive integer, got ${capacity}`);
    this.self = new KVBuffers(backend, shape, batch, capacity, 'kv-cache');
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
