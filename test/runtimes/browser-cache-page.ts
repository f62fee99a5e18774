// The page of test/browser-cache.chromium.test.ts: loads gpt2-tiny by URL with the browser bundle
// (/dist/index.browser.js) as an application would (from_pretrained of a URL: urlSource behind the Cache API),
// runs greedy generation and a forward pass, and hands the outcome to the driver through `__gpt2wasmDone`.
//   ?step=load     load (cache on, the default), report ids, a logits checksum, progress events and listCachedFiles()
//   ?step=clear    clearCachedFiles(), then load with browser_cache: false and report the same (the list stays empty)
//   &cache=opfs    load with browser_cache: 'opfs' (the Origin Private File System) instead of the default Cache API
//   &offline=1     load with local_files_only: true, and report what loading a model never cached that way gives
// Each report also counts the entries in the Cache API cache and the OPFS directory "gpt2-wasm", read here with
// the browser's own APIs, not the library's.
export {};

const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e));

/** How many entries the Cache API cache and the OPFS directory "gpt2-wasm" hold, and how many bytes the OPFS files. */
async function storedEntries(): Promise<{ cacheApi: number; opfs: number; opfsBytes: number }> {
  const cacheApi = (await (await caches.open('gpt2-wasm')).keys()).length;
  let opfs = 0, opfsBytes = 0;
  const root = await navigator.storage.getDirectory();
  let dir: FileSystemDirectoryHandle | null = null;
  try { dir = await root.getDirectoryHandle('gpt2-wasm'); } catch { dir = null; }
  if (dir) {
    for await (const h of (dir as any).values() as AsyncIterable<FileSystemHandle>) {
      if (h.kind !== 'file') continue;
      opfs++;
      opfsBytes += (await (h as FileSystemFileHandle).getFile()).size;
    }
  }
  return { cacheApi, opfs, opfsBytes };
}

async function run(): Promise<unknown> {
  const api = await import('/dist/index.browser.js' as string);
  const params = new URLSearchParams(location.search);
  const step = params.get('step') ?? 'load';
  const base = new URL('/fixtures/models/gpt2-tiny/', location.href).href;
  const greedy = await (await fetch('/fixtures/cases/lm_greedy.json')).json();
  let cleared = 0;
  if (step === 'clear') cleared = await api.clearCachedFiles();
  const browser_cache = step === 'clear' ? false : params.get('cache') === 'opfs' ? 'opfs' : true;
  const events: { status: string; file?: string; loaded?: number; total?: number; progress?: number }[] = [];
  const progress_callback = (p: any) => events.push({ ...p });
  const local_files_only = params.get('offline') === '1';
  const tokenizer = await api.AutoTokenizer.from_pretrained(base, { progress_callback, browser_cache, local_files_only });
  const model = await api.GPT2LMHeadModel.from_pretrained(base, { threads: 1, progress_callback, browser_cache, local_files_only });
  let uncached: string | null = null;
  if (local_files_only) {
    uncached = await api.GPT2LMHeadModel.from_pretrained(new URL('/fixtures/models/gpt2-trained/', location.href).href, { local_files_only })
      .then(() => 'loaded', (e: any) => `${e?.name} ${e?.code}: ${e?.message}`);
  }
  try {
    const seq = await model.generate({ input_ids: [greedy.input_ids], max_new_tokens: greedy.max_new_tokens, do_sample: false });
    const ids = Array.from(seq.data ?? seq[0], Number);
    const out = await model.forward({ input_ids: [greedy.input_ids] });
    // the logits bit for bit, as one FNV-1a hash of their bytes
    const bytes = new Uint8Array((out.logits.data as Float32Array).slice().buffer);
    let h = 0x811c9dc5;
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    return {
      step, cleared, uncached, ids, expected_ids: greedy.expected_ids, logitsHash: h, text: tokenizer.decode(ids),
      events, cached: await api.listCachedFiles(), stored: await storedEntries(),
    };
  } finally {
    await model.dispose();
  }
}

let result: unknown;
try {
  result = await run();
} catch (e) {
  result = { error: errText(e) };
}
(globalThis as any).__gpt2wasmDone(JSON.stringify(result));
