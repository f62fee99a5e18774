// generate() and the text-generation pipeline as transformers treats their options: stop / stop_strings, stop
// strings that begin in the prompt, sampling options while decoding greedily (warned, and still checked), and a
// model's max_length that the prompt already fills.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, GPT2WasmError, pipeline, type Tensor } from '../src/index.js';
import { kernelOpts, modelDir } from './helpers/fixtures.js';
import { STOP_IN_NEW_TEXT, TEXT_GENERATION_TASK } from '../src/generation/generate.js';

const ids = (t: Tensor) => Array.from(t.data as BigInt64Array, Number);

/** Runs f with console.warn captured; returns f's result and the lines. */
async function warnings<T>(f: () => Promise<T>): Promise<{ out: T; said: string[] }> {
  const said: string[] = [], orig = console.warn;
  console.warn = (...a: unknown[]) => { said.push(a.join(' ')); };
  try { return { out: await f(), said }; } finally { console.warn = orig; }
}

async function optionError(p: Promise<unknown>, re: RegExp): Promise<void> {
  const e = await p.then(() => null, (x) => x);
  assert.ok(e instanceof GPT2WasmError && e.code === 'OPTION', `expected an OPTION error matching ${re}, got ${e?.stack ?? e}`);
  assert.match(e.message, re);
}

// gpt2-trained, greedy: 'The module provides the module' continues '.', '\n', '\n', 'The', ' module', ' provides',
// ' the', ' module', ...
const PROMPT = 'The module provides the module';

test('stop and stop_strings: either one works, both together are an OptionError naming both (generate and pipeline)', async () => {
  const dir = modelDir('gpt2-trained');
  const gen = await pipeline('text-generation', dir, { threads: 1, ...kernelOpts() });
  try {
    const tokenizer = gen.tokenizer, input_ids = [tokenizer.encode(PROMPT)];
    const T = input_ids[0].length;
    const free = ids(await gen.model.generate({ input_ids, max_new_tokens: 10 })).slice(T);
    assert.is(tokenizer.decode([free[2]]), '\n');
    const byStop = ids(await gen.model.generate({ input_ids, max_new_tokens: 10, stop: '\n', tokenizer })).slice(T);
    const byStopStrings = ids(await gen.model.generate({ input_ids, max_new_tokens: 10, stop_strings: '\n', tokenizer })).slice(T);
    assert.equal(byStop, free.slice(0, 2));
    assert.equal(byStopStrings, byStop);
    await optionError(gen.model.generate({ input_ids, max_new_tokens: 10, stop: 'zzz', stop_strings: '.', tokenizer }), /stop or stop_strings.*not both/);
    await optionError(gen(PROMPT, { max_new_tokens: 10, stop: 'zzz', stop_strings: '.' }), /stop or stop_strings.*not both/);
    const [out] = await gen(PROMPT, { max_new_tokens: 10, do_sample: false, stop_strings: '\n', return_full_text: false });
    assert.is(out.generated_text, '.\n');
  } finally { await gen.dispose(); }
});

test('stop strings as transformers\' StopStringCriteria: one may begin in the prompt and end in the new text; one wholly in the prompt does not stop', async () => {
  const dir = modelDir('gpt2-trained');
  const gen = await pipeline('text-generation', dir, { threads: 1, ...kernelOpts() });
  try {
    const tokenizer = gen.tokenizer, input_ids = [tokenizer.encode(PROMPT)];
    const T = input_ids[0].length;
    const run = async (stop: string) => ids(await gen.model.generate({ input_ids, max_new_tokens: 10, stop, tokenizer })).slice(T);
    const free = ids(await gen.model.generate({ input_ids, max_new_tokens: 10 })).slice(T);
    assert.is(tokenizer.decode(free.slice(0, 8)), '.\n\nThe module provides the module');
    // 'module' from the prompt, '.' from the first new token
    assert.equal(await run('module.'), free.slice(0, 1));
    assert.equal(await run('e module.\n'), free.slice(0, 2));
    // the prompt ends with 'the module' and contains 'provides': neither stops at once, only their next occurrence
    assert.equal(await run('the module'), free.slice(0, 8));
    assert.equal(await run('provides'), free.slice(0, 6));
    // a left-padded batch: each row's own prompt text, not its padding
    const short = tokenizer.encode('The module provides the');
    const pad = 50256;
    const batch = await gen.model.generate({
      input_ids: [input_ids[0], [pad, ...short]], attention_mask: [input_ids[0].map(() => 1), [0, ...short.map(() => 1)]],
      max_new_tokens: 10, stop: 'the module', tokenizer,
    });
    const rows = [ids(batch).slice(0, ids(batch).length / 2).slice(T), ids(batch).slice(ids(batch).length / 2).slice(T)];
    assert.equal(rows[0].slice(0, 8), free.slice(0, 8));
    assert.is(tokenizer.decode([rows[1][0]]), ' module', 'row 1: "the" from its prompt, " module" new');
    assert.ok(rows[1].slice(1).every((t) => t === pad), `row 1 stopped after one token: ${rows[1]}`);
    // the pipeline's text ends right after the stop string, wherever it began
    const text = async (prompt: string, stop: string) => (await gen(prompt, { max_new_tokens: 10, do_sample: false, return_full_text: false, stop }))[0].generated_text;
    assert.is(await text(PROMPT, 'module.'), '.');
    assert.is(await text('The module provides the', 'the module'), ' module');
    assert.is(await text(PROMPT, 'the module'), '.\n\nThe module provides the module');
    assert.is((await gen(PROMPT, { max_new_tokens: 10, do_sample: false, stop: 'module.' }))[0].generated_text, PROMPT + '.');
  } finally { await gen.dispose(); }
});

test('greedy decoding with sampling options: greedy output as transformers, with one warning per call naming the caller\'s options', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-trained'), { threads: 1, ...kernelOpts() });
  try {
    const input_ids = [[464, 11361, 10314]];
    const { out: greedy, said: none } = await warnings(async () => ids(await model.generate({ input_ids, max_new_tokens: 8 })));
    assert.equal(none, []);
    for (const seed of [1, 2, 3]) {
      const { out, said } = await warnings(async () => ids(await model.generate({ input_ids, max_new_tokens: 8, temperature: 0.9, top_k: 40, seed })));
      assert.equal(out, greedy);
      assert.is(said.length, 1, said.join('\n'));
      assert.match(said[0], new RegExp(`temperature \\(0\\.9\\), top_k \\(40\\) and seed \\(${seed}\\)`));
      assert.match(said[0], /do_sample: true/);
    }
    // transformers' defaults (temperature 1, top_k 50, top_p 1) change nothing and are not named
    const { said: defaults } = await warnings(() => model.generate({ input_ids, max_new_tokens: 2, temperature: 1, top_k: 50, top_p: 1 }));
    assert.equal(defaults, []);
    // sampling: no warning, and the seed matters
    const { out: sampled, said: quiet } = await warnings(async () => [
      ids(await model.generate({ input_ids, max_new_tokens: 8, do_sample: true, temperature: 2, seed: 1 })),
      ids(await model.generate({ input_ids, max_new_tokens: 8, do_sample: true, temperature: 2, seed: 2 })),
    ]);
    assert.equal(quiet, []);
    assert.not.equal(sampled[0], sampled[1]);
    // the model's generation config: warned once per model (transformers validates the merged config)
    const saved = model.generation_config;
    try {
      (model as any).generation_config = { ...saved, top_p: 0.8 };
      const { said } = await warnings(async () => {
        await model.generate({ input_ids, max_new_tokens: 1 });
        await model.generate({ input_ids, max_new_tokens: 1 });
      });
      assert.is(said.length, 1, said.join('\n'));
      assert.match(said[0], /generation config sets top_p \(0\.8\).*do_sample: true/);
    } finally { (model as any).generation_config = saved; }
  } finally { await model.dispose(); }
});

test('sampling options are checked when decoding greedily too (temperature 0 is greedy\'s own value)', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-trained'), { threads: 1, ...kernelOpts() });
  try {
    const input_ids = [[464, 11361, 10314]];
    const bad: [string, unknown, RegExp][] = [
      ['temperature', -1, /temperature must be a positive number, got -1/],
      ['temperature', NaN, /temperature must be a positive number, got NaN/],
      ['temperature', Infinity, /temperature must be a positive number, got Infinity/],
      ['temperature', '0.7', /temperature must be a positive number, got "0\.7"/],
      ['top_k', -1, /top_k must be a non-negative integer \(0 disables it\), got -1/],
      ['top_k', 1.5, /top_k must be a non-negative integer .*got 1\.5/],
      ['top_k', NaN, /top_k must be a non-negative integer .*got NaN/],
      ['top_p', 1.5, /top_p must be in \[0, 1\], got 1\.5/],
      ['top_p', -0.1, /top_p must be in \[0, 1\], got -0\.1/],
      ['top_p', NaN, /top_p must be in \[0, 1\], got NaN/],
      ['top_p', '0.5', /top_p must be in \[0, 1\], got "0\.5"/],
    ];
    for (const do_sample of [false, true, undefined]) {
      for (const [k, v, re] of bad) await optionError(model.generate({ input_ids, max_new_tokens: 2, do_sample, [k]: v } as any), re);
    }
    const { out, said } = await warnings(async () => [
      ids(await model.generate({ input_ids, max_new_tokens: 4, do_sample: false })),
      ids(await model.generate({ input_ids, max_new_tokens: 4, do_sample: false, temperature: 0, top_p: 0, top_k: 0 })),
    ]);
    assert.equal(out[1], out[0]);
    assert.is(said.length, 1);
    assert.match(said[0], /temperature \(0\) and top_p \(0\)/);
    await optionError(model.generate({ input_ids, max_new_tokens: 2, do_sample: true, temperature: 0 }), /temperature must be a positive number, got 0/);
  } finally { await model.dispose(); }
});

test('a model\'s max_length (task_specific_params) that the prompt fills: a warning and one new token, as transformers; the caller\'s is an error', async () => {
  const dir = modelDir('gpt2-tiny'); // task_specific_params text-generation { do_sample: true, max_length: 50 }, like openai-community/gpt2
  const gen = await pipeline('text-generation', dir, { threads: 1, ...kernelOpts() });
  try {
    const prompt = 'word '.repeat(60).trim();
    assert.is(gen.tokenizer.encode(prompt).length, 60);
    const { out, said } = await warnings(() => gen(prompt, { seed: 1 }));
    assert.is(said.length, 1, said.join('\n'));
    assert.match(said[0], /prompt has 60 tokens, but max_length is 50 \(from .*config\.json task_specific_params\['text-generation'\]\).*1 token.*max_new_tokens/);
    const one = await warnings(async () => ids(await gen.model.generate({ input_ids: [gen.tokenizer.encode(prompt)], eos_token_id: null, seed: 1, [TEXT_GENERATION_TASK]: true } as any)));
    assert.is(one.out.length, 61, 'one new token');
    const text = out[0].generated_text;
    assert.ok(text.startsWith(prompt) && text.length > prompt.length, JSON.stringify(text));
    // a shorter prompt: max_length 50 in all, no warning
    const short = gen.tokenizer.encode('word '.repeat(10).trim());
    const { out: ok, said: quiet } = await warnings(async () => ids(await gen.model.generate({ input_ids: [short], eos_token_id: null, seed: 1, [TEXT_GENERATION_TASK]: true } as any)));
    assert.is(ok.length, 50);
    assert.equal(quiet, []);
    // max_new_tokens wins over the config's max_length
    assert.ok((await gen(prompt, { max_new_tokens: 3, seed: 1 }))[0].generated_text.startsWith(prompt));
    // the caller's own max_length is an error (transformers' generate raises), suggesting max_new_tokens
    await optionError(gen(prompt, { max_length: 50 }), /max_length \(50\) is shorter than the prompt \(60 tokens\).*max_new_tokens/);
    await optionError(gen.model.generate({ input_ids: [gen.tokenizer.encode(prompt)], max_length: 50 }), /max_length \(50\) is shorter than the prompt \(60 tokens\).*max_new_tokens/);
  } finally { await gen.dispose(); }
  // generate() with the model's generation_config.json max_length: the same warning, naming that file
  const model = await GPT2LMHeadModel.from_pretrained(dir, { threads: 1, ...kernelOpts() });
  try {
    (model as any).generation_config = { max_length: 30 };
    const input_ids = [Array.from({ length: 40 }, (_, i) => 464 + i)];
    const { out, said } = await warnings(async () => ids(await model.generate({ input_ids })));
    assert.is(out.length, 41);
    assert.is(said.length, 1);
    assert.match(said[0], /max_length is 30 \(from .*generation_config\.json\)/);
  } finally { await model.dispose(); }
});

test('STOP_IN_NEW_TEXT (OpenAI stop, the edge handler): a stop sequence that begins in the prompt does not end generation; an empty prompt in a pipeline batch is named', async () => {
  const gen = await pipeline('text-generation', modelDir('gpt2-trained'), { threads: 1, ...kernelOpts() });
  try {
    const tokenizer = gen.tokenizer, input_ids = [tokenizer.encode(PROMPT)], T = input_ids[0].length;
    const free = ids(await gen.model.generate({ input_ids, max_new_tokens: 10 })).slice(T);
    const openai = async (stop: string) => ids(await gen.model.generate({ input_ids, max_new_tokens: 10, stop, tokenizer, [STOP_IN_NEW_TEXT]: true } as any)).slice(T);
    // 'module.' begins in the prompt: not a stop here; its next occurrence lies in the new text ('... the module' + ?)
    assert.equal(await openai('.\n'), free.slice(0, 2), 'a stop wholly in the new text still stops');
    assert.equal(await openai('module.'), free, 'module. began in the prompt: no stop in 10 tokens');
    await gen(['', 'Hello'], { max_new_tokens: 2 }).then(() => assert.unreachable('accepted'),
      (e) => assert.ok(e instanceof GPT2WasmError && e.code === 'INPUT' && /^text-generation: prompt 0 is empty \(no tokens\): ""$/.test(e.message), String(e)));
  } finally { await gen.dispose(); }
});

test.run();
