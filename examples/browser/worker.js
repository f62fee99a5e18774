// The Web Worker: loads the tokenizer and the model (from the browser cache after the first visit), and streams
// generated text back to the page piece by piece through a TextStreamer. In a worker the thread pool's caller
// may block in Atomics.wait (a page's main thread may not), so this is where the model should run.
// The server (serve.mjs) maps /gpt2-wasm/ to the package's dist/; with a bundler, import from 'gpt2-wasm'.
import { AutoTokenizer, GPT2LMHeadModel, TextStreamer, clearCachedFiles } from '/gpt2-wasm/index.browser.js';

let tokenizer = null;
let model = null;
const post = (m) => self.postMessage(m);
const progress_callback = (p) => post({ type: 'progress', ...p });

async function load({ model: url, threads }) {
  tokenizer = await AutoTokenizer.from_pretrained(url, { progress_callback });
  // threads: default is what the browser offers (navigator.hardwareConcurrency, 1 without cross-origin isolation)
  model = await GPT2LMHeadModel.from_pretrained(url, { progress_callback, ...(threads ? { threads } : {}) });
  post({ type: 'ready', threads: model.backend?.threads ?? 1, crossOriginIsolated: self.crossOriginIsolated === true });
}

async function generate({ prompt, max_new_tokens }) {
  const input_ids = tokenizer.encode(prompt);
  let tokens = 0;
  const streamer = new TextStreamer(tokenizer, {
    skip_prompt: true,
    callback_function: (text) => post({ type: 'text', text }),
    token_callback_function: (ids) => { tokens += ids.length; },
  });
  const t0 = performance.now();
  await model.generate({ input_ids: [input_ids], max_new_tokens, do_sample: false, streamer });
  post({ type: 'done', tokens, ms: Math.round(performance.now() - t0) });
}

self.onmessage = async ({ data: m }) => {
  try {
    if (m.type === 'load') await load(m);
    else if (m.type === 'generate') await generate(m);
    else if (m.type === 'clear') post({ type: 'cleared', entries: await clearCachedFiles() });
  } catch (e) {
    post({ type: 'error', message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
};
