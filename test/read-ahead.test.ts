// The read-ahead over round-trip sources (src/io/read-ahead.ts): the bytes of any read, aligned chunk requests,
// the chunks ahead requested before they are needed, at most `window` chunks held, every chunk released exactly
// once and never while a read copies from it, failed chunks fetched again, and close() after the reads in flight.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readAhead } from '../src/io/read-ahead.js';
import { DownloadError, GPT2WasmError } from '../src/errors.js';
import type { ByteSource } from '../src/io/source.js';

/** A source over `data` that answers each read after a random delay and logs what it was asked; released chunks
 *  are overwritten (so a read that copied from a released chunk sees wrong bytes). */
function slowSource(data: Uint8Array, rand: () => number, opts: { failOnce?: Set<number> } = {}) {
  const log = { reads: [] as [number, number][], live: 0, maxLive: 0, released: 0, closed: false, readsAfterClose: 0, pending: 0 };
  const src: ByteSource = {
    name: 'slow',
    size: async () => data.byteLength,
    read: async (offset, length) => {
      if (log.closed) log.readsAfterClose++;
      log.reads.push([offset, length]);
      log.live++; log.pending++;
      log.maxLive = Math.max(log.maxLive, log.live);
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 3)));
      log.pending--;
      if (opts.failOnce?.delete(offset)) { log.live--; throw new DownloadError(`chunk at ${offset} failed`); }
      return data.slice(offset, offset + length);
    },
    release: (b) => { log.live--; log.released++; b.fill(0xee); },
    close: async () => { log.closed = true; },
  };
  return { src, log };
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('read-ahead: random reads, forward with jumps and pairs in flight, give the bytes of the file', async () => {
  for (let seed = 1; seed <= 30; seed++) {
    const rand = lcg(seed);
    const data = new Uint8Array(500 + Math.floor(rand() * 2000)).map((_, i) => (i * 131 + seed) & 255);
    const { src, log } = slowSource(data, rand);
    const cb = 16 + Math.floor(rand() * 100), window = 1 + Math.floor(rand() * 4);
    const r = readAhead(src, { chunkBytes: cb, window });
    let pos = 0;
    for (let k = 0; k < 60; k++) {
      const jump = rand();
      if (jump < 0.1) pos = Math.floor(rand() * data.length); // backward or forward jump
      const len = Math.min(Math.floor(rand() * 2 * cb), data.length - pos);
      if (rand() < 0.3 && pos + len < data.length) { // two reads in flight: this one and the next piece
        const len2 = Math.min(Math.floor(rand() * cb), data.length - pos - len);
        const [a, b] = await Promise.all([r.read(pos, len), r.read(pos + len, len2)]);
        assert.equal(a, data.subarray(pos, pos + len), `seed ${seed}: ${len} at ${pos}`);
        assert.equal(b, data.subarray(pos + len, pos + len + len2), `seed ${seed}: ${len2} at ${pos + len}`);
        pos += len + len2;
      } else {
        assert.equal(await r.read(pos, len), data.subarray(pos, pos + len), `seed ${seed}: ${len} at ${pos}`);
        pos += len;
      }
      if (pos >= data.length) pos = 0;
    }
    for (const [off, len] of log.reads) {
      assert.is(off % cb, 0, `seed ${seed}: chunk requests are aligned`);
      assert.is(len, Math.min(cb, data.length - off), `seed ${seed}: whole chunks, none past the end`);
    }
    // a read spans at most 3 chunks (< 2·cb bytes); two reads in flight may each hold theirs, and a jump drops
    // chunks that are still arriving (freed when they do): a loose bound here, the tight one in the next test
    assert.ok(log.maxLive <= 4 * Math.max(window, 3), `seed ${seed}: ${log.maxLive} chunks held at once (window ${window})`);
    await r.close!();
    assert.is(log.pending, 0, 'close waited for the chunks in flight');
    assert.is(log.live, 0, `seed ${seed}: every chunk released once`);
    assert.ok(log.closed);
    try { await r.read(0, 1); assert.unreachable('read after close'); } catch (e) { assert.match((e as Error).message, /read after close/); }
  }
});

test('read-ahead: sequential reads keep `window` chunks requested ahead, and no more held', async () => {
  const data = new Uint8Array(10_000).map((_, i) => i & 255);
  const { src, log } = slowSource(data, lcg(7));
  const r = readAhead(src, { chunkBytes: 1000, window: 4 });
  assert.equal(await r.read(0, 10), data.subarray(0, 10));
  assert.equal(log.reads.map(([o]) => o), [0, 1000, 2000, 3000], 'the first read requests its chunk and the three after it');
  for (let off = 10; off < data.length; off += 700) {
    const n = Math.min(700, data.length - off);
    assert.equal(await r.read(off, n), data.subarray(off, off + n));
    assert.ok(log.live <= 4, `${log.live} chunks held after the read at ${off}`);
  }
  assert.equal(log.reads.map(([o]) => o), Array.from({ length: 10 }, (_, i) => i * 1000), 'each chunk requested once, in order');
  await r.close!();
  assert.is(log.live, 0);
});

test('read-ahead: a chunk that fails fails the read waiting for it and is requested again by the next; one that fails ahead is requested again when needed', async () => {
  const data = new Uint8Array(4000).map((_, i) => (i * 7) & 255);
  const { src, log } = slowSource(data, lcg(3), { failOnce: new Set([0, 2000]) });
  const r = readAhead(src, { chunkBytes: 1000, window: 4 });
  try {
    await r.read(0, 100);
    assert.unreachable('the read over the failed chunk should fail');
  } catch (e) {
    assert.instance(e, GPT2WasmError);
    assert.match((e as Error).message, /chunk at 0 failed/);
  }
  assert.equal(await r.read(0, 100), data.subarray(0, 100));
  await new Promise((res) => setTimeout(res, 10)); // chunk 2, requested ahead, has failed by now
  assert.equal(await r.read(1900, 200), data.subarray(1900, 2100));
  assert.is(log.reads.filter(([o]) => o === 0).length, 2);
  assert.is(log.reads.filter(([o]) => o === 2000).length, 2);
  await r.close!();
  assert.is(log.live, 0);
});

test('read-ahead: reads outside the file are GPT2WasmErrors that name it; empty reads read nothing', async () => {
  const { src, log } = slowSource(new Uint8Array(100), lcg(1));
  const r = readAhead(src, { chunkBytes: 64 });
  for (const [off, len] of [[90, 11], [-1, 1], [0.5, 1], [0, -1], [0, 2 ** 40]]) { // (2^40: checked before any allocation)
    try {
      await r.read(off, len);
      assert.unreachable(`read ${len} at ${off}`);
    } catch (e) {
      assert.instance(e, GPT2WasmError);
      assert.match((e as Error).message, /^slow: /);
    }
  }
  assert.is((await r.read(100, 0)).byteLength, 0);
  assert.is(log.reads.length, 0);
  await r.close!();
});

test.run();
