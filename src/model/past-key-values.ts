// past_key_values as forward() returns them: a list with one { key, value } per layer of [B, H, P, D] float32
// Tensors, as in transformers, whose data stays in the model's KV cache in wasm memory and is copied out
// only when a layer is read. Passed back to forward() of the same model, the cache is extended in place, so an
// incremental decoding loop copies nothing per token.
//
// Ownership. A model has ONE such resident cache (ResidentPast); every PastKeyValues it returns is a prefix
// of it (the objects of one chain of forward() calls share it). The model:
//  - extends it in place when one of these objects comes back as past_key_values (it grows the cache, copying
//    the kept slots, when the capacity runs out); an object longer than the one extended would be overwritten,
//    so it is copied out first;
//  - takes it back for a forward() with another past (a plain array, or another model's) or none: the objects
//    still reachable are first copied out to the JS heap, so they stay readable, and the memory is reused;
//  - frees it on past.dispose() (any object of the chain) and on model.dispose(); layers not read by then throw
//    DISPOSED when read.
// forward({ use_cache: false }) leaves it alone and uses a cache of its own for the call.
import { MemoryLimitError } from '../errors.js';
import { disposedError, type KVCache } from './kv-cache.js';
import { Tensor } from './tensor.js';

export interface PastKeyValue { key: Tensor; value: Tensor }

/** One returned past: its length and where its data is (the resident cache, or the copies once copied out). */
interface View {
  owner: ResidentPast | null;
  readonly length: number;
  readonly batch: number;
  readonly layers: { key: Tensor | null; value: Tensor | null }[];
}

const viewOf = new WeakMap<PastKeyValues, View>();

/** The list of per-layer { key, value } that forward() returns; Array methods give plain arrays. */
export class PastKeyValues extends Array<PastKeyValue> {
  static get [Symbol.species](): ArrayConstructor { return Array; }

  /** Made by the model only. */
  constructor(view: View) {
    super();
    viewOf.set(this, view);
    view.layers.forEach((_, l) => {
      const layer = {} as PastKeyValue;
      Object.defineProperty(layer, 'key', { enumerable: true, get: () => read(view, l, 'key') });
      Object.defineProperty(layer, 'value', { enumerable: true, get: () => read(view, l, 'value') });
      this.push(layer);
    });
  }

  /** Whether the data is still in the model's wasm cache (false once copied out or disposed). */
  get resident(): boolean { return !!viewOf.get(this)!.owner; }

  /** Tokens held (P), as transformers' Cache.get_seq_length(). */
  get_seq_length(): number { return viewOf.get(this)!.length; }

  /** Frees the model's wasm cache behind this chain of past_key_values now (layers already read stay readable). */
  dispose(): void { viewOf.get(this)!.owner?.dispose(); }
}

function read(view: View, l: number, which: 'key' | 'value'): Tensor {
  const got = view.layers[l][which];
  if (got) return got;
  if (!view.owner) throw disposedError('these past_key_values', true);
  return (view.layers[l][which] = view.owner.copyOut(l, which, view.length));
}

/** Copies per-layer K, V [B, H, P, D] into slots 0 … P-1 of a cache and sets its length to P. */
export function writePast(cache: KVCache, past: { k: Float32Array[]; v: Float32Array[]; P: number }): void {
  for (let l = 0; l < cache.shape.layers; l++) {
    cache.self.write(cache.self.k[l], past.k[l], past.P);
    cache.self.write(cache.self.v[l], past.v[l], past.P);
  }
  cache.length = past.P;
}

/** The model's one resident cache behind the PastKeyValues it returns (see the ownership rules above). */
export class ResidentPast {
  private cache: KVCache | null = null;
  private views: WeakRef<View>[] = [];

  constructor(private readonly create: (batch: number, capacity: number) => KVCache, private readonly maxPositions: number) {}

  /** The view of `past` when its data is in this cache (forward() then extends it in place). */
  viewOf(past: unknown): { length: number; batch: number } | null {
    const v = past instanceof PastKeyValues ? viewOf.get(past) : undefined;
    return v && v.owner === this ? v : null;
  }

  /** The cache for `batch` rows of `need` tokens: holding `from` (a view of it) when given, else empty. */
  acquire(from: { length: number; batch: number } | null, batch: number, need: number): KVCache {
    if (from) {
      // slots from.length … are about to be rewritten: views reaching past them are copied out first
      for (const v of this.live()) if (v !== from && v.length > from.length) this.copyOutAll(v);
      const c = this.cache!;
      c.length = from.length;
      if (need > c.capacity) this.amortised(need, c.capacity, (cap) => c.grow(cap));
      return c;
    }
    for (const v of this.live()) this.copyOutAll(v);
    this.views = [];
    if (this.cache && this.cache.batch === batch && this.cache.capacity >= need) {
      this.cache.length = 0;
      return this.cache;
    }
    // nothing is kept: the old capacity argues for doubling only when this call outgrew it (a longer input each time);
    // a different batch that fits in it is sized by its own need (doubling there grew an 8-token cache to
    // n_positions slots per row over a few batch sizes, and wasm memory never shrinks)
    const had = this.cache && this.cache.capacity < need ? this.cache.capacity : 0;
    this.cache?.dispose();
    this.cache = null;
    this.cache = this.amortised(need, had, (cap) => this.create(batch, cap));
    return this.cache;
  }

  /** A PastKeyValues for the tokens now in the cache. */
  publish(cache: KVCache): PastKeyValues {
    const view: View = { owner: this, length: cache.length, batch: cache.batch, layers: Array.from({ length: cache.shape.layers }, () => ({ key: null, value: null })) };
    this.views = this.views.filter((r) => r.deref()?.owner === this);
    this.views.push(new WeakRef(view));
    return new PastKeyValues(view);
  }

  /** Layer l's K or V, slots 0 … P-1 of every row: a [B, H, P, D] Tensor. */
  copyOut(l: number, which: 'key' | 'value', P: number): Tensor {
    const c = this.cache!, { heads: H, headDim: D } = c.shape, B = c.batch;
    return new Tensor('float32', c.self.read((which === 'key' ? c.self.k : c.self.v)[l], P), [B, H, P, D]);
  }

  /** Frees the cache; its views keep what was read and throw DISPOSED for the rest. */
  dispose(): void {
    for (const v of this.live()) v.owner = null;
    this.views = [];
    this.cache?.dispose();
    this.cache = null;
  }

  /** Bytes of the resident cache (0 when there is none). */
  get bytes(): number { return this.cache?.bytes ?? 0; }

  private live(): View[] {
    const out: View[] = [];
    for (const r of this.views) { const v = r.deref(); if (v && v.owner === this) out.push(v); }
    return out;
  }

  private copyOutAll(v: View): void {
    v.layers.forEach((layer, l) => {
      layer.key ??= this.copyOut(l, 'key', v.length);
      layer.value ??= this.copyOut(l, 'value', v.length);
    });
    v.owner = null;
  }

  /** `make` with a capacity for `need` tokens: at least double the old one (amortised growth), up to n_positions;
   *  where that does not fit in memory, exactly `need` (a run near the 4 GiB end still gets what it asked for). */
  private amortised<T>(need: number, had: number, make: (capacity: number) => T): T {
    const roomy = Math.max(need, Math.min(this.maxPositions, Math.max(MIN_CAPACITY, 2 * had)));
    try {
      return make(roomy);
    } catch (e) {
      if (!(e instanceof MemoryLimitError) || roomy === need) throw e;
      return make(need);
    }
  }
}

/** Slots of a fresh resident cache, so short incremental loops never grow it. */
const MIN_CAPACITY = 64;
