// GPT-2 behind an HTTP API on Deno Deploy (or any `deno serve` host):
//   deno serve -A --port 8000 main.ts
//   curl -s localhost:8000/v1/completions -H 'content-type: application/json' \
//        -d '{"prompt": "Hello, my dog is", "max_tokens": 8}'
// The weights are streamed from GPT2_MODEL_URL (any static host with HTTP Range support; the Hugging Face
// Hub's resolve/ URLs work) on the first request and kept in memory for the isolate's lifetime.
// One thread: Deno Deploy isolates get one CPU and no Worker support can be assumed.
import { createFetchHandler } from 'gpt2-wasm';

declare const Deno: { env: { get(name: string): string | undefined } };

const modelUrl = Deno.env.get('GPT2_MODEL_URL') ?? 'https://huggingface.co/openai-community/gpt2/resolve/main/';

export default createFetchHandler({
  modelUrl,
  // fp16 halves resident memory against fp32 at a small accuracy cost; 'q8' quarters it.
  dtype: (Deno.env.get('GPT2_DTYPE') as 'auto' | 'fp32' | 'fp16' | 'q8' | undefined) ?? 'fp16',
  threads: 1,
  token: Deno.env.get('HF_TOKEN'),
});
