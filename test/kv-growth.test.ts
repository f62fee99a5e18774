// A KV cache that grows near the end of wasm memory (src/model/kv-cache.ts grow, past-key-values.ts): growing
// needs the old and the new cache at once, so where only the new one fits, the kept slots wait in host memory;
// an incremental past_key_values run falls back from the doubled capacity to exactly what it needs. The memory's
// end is brought down to a small model with the arena's limit (in use: GPT-2 large/XL near 4 GiB, where a
// 300-token forward made an 8-token batch fail, and one-token steps stopped at 128 of ~387 tokens that fit).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, MemoryLimitError } from '../src/index.js';
import { modelDir } from './helpers/fixtures.js';
import { ResidentPast } from '../src/model/past-key-values.js';

const IDS = Array.from({ length: 90 }, (_, i) => (i * 7919 + 13) % 50257);

const arenaOf = (m: GPT2LMHeadModel) => (m.backend as any).arena as { limit: number; usage(): { total: number } } & { top: number };

/** Logits of decoding IDS[60..89] one by one after a 60-token prefill, in a cache of `capacity` slots. */
async function reference(m: GPT2LMHeadModel): Promise<number[][]> {
  const c = m.createCache(1, IDS.length);
  try {
    m.prefill(c, IDS.slice(0, 60));
    const out: number[][] = [];
    for (let p = 60; p < IDS.length; p++) out.push(Array.from(m.decodeStep([{ cache: c, id: IDS[p], pos: p }])));
    return out;
  } finally { c.dispose(); }
}

test('grow(): where old + new do not fit but new alone does, through host memory, same logits; where not even new fits, a MemoryLimitError and the cache intact', async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    const want = await reference(m);
    const A = arenaOf(m);
    const c = m.createCache(1, 64);
    try {
      m.prefill(c, IDS.slice(0, 60));
      const small = c.bytes;
      // the cache is the arena's last region: 128 slots fit once its 64 are freed, not beside them
      A.limit = A.top + small;
      assert.throws(() => c.grow(IDS.length + 200), (e: unknown) => e instanceof MemoryLimitError && /growing a KV cache from 64 to 290 tokens/.test((e as Error).message));
      assert.is(c.capacity, 64);
      assert.equal(Array.from(m.decodeStep([{ cache: c, id: IDS[60], pos: 60 }])), want[0], 'the cache kept its tokens');
      c.length = 60;
      c.grow(128);
      assert.is(c.capacity, 128);
      A.limit = Infinity;
      for (let p = 60; p < IDS.length; p++) assert.equal(Array.from(m.decodeStep([{ cache: c, id: IDS[p], pos: p }])), want[p - 60], `position ${p}`);
    } finally { c.dispose(); A.limit = Infinity; }
  } finally { await m.dispose(); }
});

test('incremental past_key_values: where the doubled capacity does not fit, exactly the tokens needed', () => {
  // the resident cache's sizing alone, on caches that refuse more than `room` slots
  const room = 70;
  const made: number[] = [];
  const fake = (capacity: number) => {
    if (capacity > room) throw new MemoryLimitError(`out of WebAssembly memory allocating ${capacity} slots`);
    made.push(capacity);
    return { batch: 1, capacity, length: 0, dispose() {}, grow(c: number) { if (c > room) throw new MemoryLimitError(`growing to ${c}`); made.push(c); this.capacity = c; } } as any;
  };
  const past = new ResidentPast((_b, c) => fake(c), 1024);
  const c = past.acquire(null, 1, 60);
  assert.equal(made, [64], 'a fresh cache: at least 64 slots');
  c.length = 64;
  past.acquire({ length: 64, batch: 1 }, 1, 65);
  assert.equal(made, [64, 65], 'growth: 128 refused, then exactly 65');
  assert.throws(() => past.acquire({ length: 65, batch: 1 }, 1, 71), (e: unknown) => e instanceof MemoryLimitError && /growing to 71/.test((e as Error).message));
  // a new cache for another batch after a long one: sized by its own need (64 slots at least), not 2 x 65
  past.acquire(null, 4, 60);
  assert.equal(made.at(-1), 64);
  // a longer one than the old capacity: double it (amortised), and where that is refused, exactly the need
  past.acquire(null, 2, 69);
  assert.equal(made.at(-1), 69);
});

test('forward() with a changing batch size: the resident cache is sized by each call\'s need, not doubled from the last one', async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    const past = (m as any).past as { cache: { capacity: number; batch: number } | null };
    const caps: number[] = [];
    for (const B of [1, 2, 3, 4, 8, 16, 1]) {
      await m.forward({ input_ids: Array.from({ length: B }, (_, b) => IDS.slice(b, b + 8)) });
      caps.push(past.cache!.capacity);
    }
    assert.equal(caps, caps.map(() => 64), `capacities ${caps}`);
    // a longer input each time still grows by doubling (amortised), capped at n_positions
    await m.forward({ input_ids: [IDS.slice(0, 70)] });
    assert.is(past.cache!.capacity, Math.min(128, m.config.n_positions));
  } finally { await m.dispose(); }
});

test('a KV cache that does not fit fails before allocating any layer (memory grown for the first layers would stay)', async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    const A = arenaOf(m) as any;
    const cap = 128, bytes = 2 * m.config.n_layer * m.config.n_embd * cap * 4;
    A.limit = A.top + bytes / 2; // half the layers would fit
    const before = { top: A.top, total: A.usage().total, committed: A.usage().committed };
    assert.throws(() => m.createCache(1, cap), (e: unknown) => e instanceof MemoryLimitError && /allocating .*K and V of \d+ layers/.test((e as Error).message));
    assert.equal({ top: A.top, total: A.usage().total, committed: A.usage().committed }, before);
    // every layer fits but not the mask allocated after them: refused before the layers, too (nothing allocated)
    A.limit = A.top + bytes + 16;
    const allocated: string[] = [];
    const alloc = A.alloc;
    A.alloc = function (name: string, n: number) { allocated.push(name); return alloc.call(this, name, n); };
    try {
      assert.throws(() => m.createCache(1, cap), (e: unknown) => e instanceof MemoryLimitError && /allocating kv-cache/.test((e as Error).message));
    } finally { A.alloc = alloc; }
    assert.equal(allocated, []);
    assert.equal({ top: A.top, total: A.usage().total, committed: A.usage().committed }, before);
    A.limit = Infinity;
    m.createCache(1, cap).dispose();
  } finally { await m.dispose(); }
});

test.run();
