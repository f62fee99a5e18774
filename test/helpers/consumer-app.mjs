// The app of the package-as-a-consumer tests (package.test.ts in Node, browser-bundle.test.ts bundled for
// Chromium): it imports 'gpt2-wasm' as a user's code does, generates the greedy continuation of a fixture case
// with the README's pipeline (the text) and with the model's generate (the ids), on 2 threads, and returns them.
// The tests copy it into a temporary consumer project whose node_modules holds the package.
import { pipeline, AutoTokenizer, GPT2LMHeadModel } from 'gpt2-wasm';

/** `model`: a model directory or URL; `c`: a fixture case ({ input_ids, max_new_tokens }). */
export async function run(model, c) {
  const tokenizer = await AutoTokenizer.from_pretrained(model);
  const prompt = tokenizer.decode(c.input_ids);
  const generator = await pipeline('text-generation', model, { threads: 2 });
  const [{ generated_text }] = await generator(prompt, { max_new_tokens: c.max_new_tokens, do_sample: false });
  await generator.dispose();
  const lm = await GPT2LMHeadModel.from_pretrained(model, { threads: 2 });
  try {
    const out = await lm.generate({ input_ids: [c.input_ids], max_new_tokens: c.max_new_tokens, do_sample: false });
    return { ids: Array.from(out.data, Number), prompt, generated_text, threads: lm.backend?.threads ?? null };
  } finally {
    await lm.dispose();
  }
}
