// The thread pool when a worker stops working (src/runtime/pool.ts). The caller waits for other threads' chunks
// in a synchronous loop, where no worker event can reach it: a worker that dies (or hangs) holding a chunk must
// end in a typed error, not in a wait that never ends, and the pool must then refuse further ops.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2WasmError, RuntimeError } from '../src/index.js';
import { Arena } from '../src/runtime/memory.js';
import { ThreadPool } from '../src/runtime/pool.js';
import { modelDir } from './helpers/fixtures.js';

/** A wasm module with the pool's entry points: set_thread_index(i) and hang(ith, nth), which returns at once on
 *  thread 0 and never on any other thread (a worker stuck in the middle of a chunk). Assembled by hand: no
 *  assembler is a dependency of the tests. */
function hangModule(): Uint8Array {
  const str = (s: string) => [s.length, ...Buffer.from(s)];
  const section = (id: number, body: number[]) => [id, body.length, ...body];
  const I32 = 0x7f;
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [2, 0x60, 1, I32, 0, 0x60, 2, I32, I32, 0]), // types: (i32) -> (), (i32, i32) -> ()
    ...section(2, [1, ...str('env'), ...str('memory'), 0x02, 0x03, 1, 0x80, 0x80, 0x04]), // shared memory 1..65536 pages
    ...section(3, [2, 0, 1]),
    ...section(6, [1, I32, 1, 0x41, 0, 0x0b]), // global $t (mut i32) = 0
    ...section(7, [2, ...str('set_thread_index'), 0, 0, ...str('hang'), 0, 1]),
    ...section(10, [2,
      6, 0, 0x20, 0, 0x24, 0, 0x0b, // $t = index
      9, 0, 0x03, 0x40, 0x23, 0, 0x0d, 0, 0x0b, 0x0b]), // loop: br_if $t
  ]);
}

const busy = (ms: number) => { const end = performance.now() + ms; while (performance.now() < end) { /* hold the chunk */ } };

async function pool(): Promise<ThreadPool> {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
  return ThreadPool.create(new Arena(memory), hangModule(), ['set_thread_index', 'hang'], 2, false);
}

test('a worker that never finishes its chunk: a RuntimeError after stallMs, then every op refused', async () => {
  const p = await pool();
  try {
    p.stallMs = 500;
    const t0 = performance.now();
    // the caller's chunks take 50 ms each, so the worker, spinning on the next op, claims one and never returns it
    const err = (() => { try { p.run(1, () => busy(50), [], 8, -1); } catch (e) { return e; } return null; })();
    const waited = performance.now() - t0;
    assert.ok(err instanceof RuntimeError && err instanceof GPT2WasmError, String(err));
    assert.match((err as Error).message, /did not finish in 0\.5 s/);
    assert.ok(waited >= 500 && waited < 10_000, `gave up after ${waited.toFixed(0)} ms`);
    assert.throws(() => p.run(1, () => {}, [], 8, -1), (e: unknown) => e === err);
  } finally { p.dispose(); }
});

test('a process stopped while a worker holds a chunk (SIGSTOP, a debugger): the jump of the clock is not a stall', async () => {
  const p = await pool();
  const now = performance.now.bind(performance);
  const t0 = now();
  // the clock as a stopped process sees it: 60 s pass at once, 300 ms in (after the caller's seven 10 ms chunks)
  (performance as any).now = () => now() + (now() - t0 > 300 ? 60_000 : 0);
  let waited = 0, err: unknown = null;
  try {
    p.stallMs = 1000;
    try { p.run(1, () => busy(10), [], 8, -1); } catch (e) { err = e; }
    waited = now() - t0;
  } finally { delete (performance as any).now; p.dispose(); }
  // still given up on (the worker hangs for real), but after about stallMs of waiting, not at the jump
  assert.ok(err instanceof RuntimeError, String(err));
  assert.ok(waited >= 900, `gave up after ${waited.toFixed(0)} ms`);
});

test('a worker stopped from outside: the next op is a RuntimeError naming it', async () => {
  const p = await pool();
  try {
    const w = (p as any).workers[0];
    await new Promise((resolve) => { w.once('exit', resolve); w.terminate(); });
    assert.throws(() => p.run(1, () => {}, [], 8, -1), (e: unknown) => e instanceof RuntimeError && /worker 1 died: exited with code 1/.test((e as Error).message));
  } finally { p.dispose(); }
});

test('a model dropped without dispose(): its worker threads stop when the garbage collector takes it', async () => {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { GPT2LMHeadModel } = await import('../src/index.js');
  let model: any = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 3 });
  await model.generate({ input_ids: [[1, 2, 3]], max_new_tokens: 2, do_sample: false });
  const pool = model.backend.pool as ThreadPool;
  const workers = [...(pool as any).workers];
  assert.is(workers.length, 2);
  const exited = workers.map((w: any) => new Promise((resolve) => w.once('exit', resolve)));
  model = null;
  for (let i = 0; i < 20 && !(pool as any).disposed; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); }
  assert.ok((pool as any).disposed, 'the pool of a collected model is disposed');
  await Promise.all(exited);
});

test.run();
