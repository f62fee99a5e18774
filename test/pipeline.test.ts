// pipeline() for the three tasks, sharded and BF16 checkpoints through from_pretrained, AutoModel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoModel, GPT2ForSequenceClassification, GPT2ForTokenClassification, GPT2LMHeadModel, GPT2Model, GPT2WasmError, memorySource, pipeline } from '../src/index.js';
import { compareClose, modelDir, readCase, readReference } from './helpers/fixtures.js';
import { TEXT_GENERATION_TASK } from '../src/generation/generate.js';
import { randomCheckpoint, writeSafetensors } from './helpers/checkpoint.js';

const tokFiles = () => ({
  'vocab.json': readFileSync(join(modelDir('gpt2-tiny'), 'vocab.json'), 'utf8'),
  'merges.txt': readFileSync(join(modelDir('gpt2-tiny'), 'merges.txt'), 'utf8'),
});

test('text-generation pipeline: greedy output equals generate() and lm_greedy', async () => {
  const c = readCase('lm_greedy');
  const gen = await pipeline('text-generation', modelDir('gpt2-tiny'), { threads: 1 });
  try {
    const [out] = await gen(c.text, { max_new_tokens: c.max_new_tokens, do_sample: false }) as any[];
    assert.is(out.generated_text, gen.tokenizer.decode(c.expected_ids));
    const only = await gen(c.text, { max_new_tokens: 5, do_sample: false, return_full_text: false }) as any[];
    assert.is(only[0].generated_text, gen.tokenizer.decode(c.expected_ids.slice(c.input_ids.length, c.input_ids.length + 5)));
    const batch = await gen([c.text, 'The quick brown fox'], { max_new_tokens: 6, do_sample: false }) as any[][];
    assert.is(batch[0][0].generated_text, gen.tokenizer.decode(c.expected_ids.slice(0, c.input_ids.length + 6)));
    const alone = await gen('The quick brown fox', { max_new_tokens: 6, do_sample: false }) as any[];
    assert.is(batch[1][0].generated_text, alone[0].generated_text);
    // stop strings end the text right after the stop string
    const full = (await gen(c.text, { max_new_tokens: 24, do_sample: false, return_full_text: false }) as any[])[0].generated_text as string;
    const stop = full.slice(8, 12);
    const cut = (await gen(c.text, { max_new_tokens: 24, do_sample: false, return_full_text: false, stop }) as any[])[0].generated_text as string;
    assert.is(cut, full.slice(0, full.indexOf(stop) + stop.length));
  } finally { await gen.dispose(); }
});

test('text-generation on the trained model: the text ends where the call\'s eos says, a stop ends it as the CLI\'s does, a split character is not a stop yet', async () => {
  const { spawnSync } = await import('node:child_process');
  const dir = modelDir('gpt2-trained');
  const gen = await pipeline('text-generation', dir, { threads: 1 });
  try {
    const prompt = 'Once upon a time';
    const ids = gen.tokenizer.encode(prompt);
    // eos_token_id: null: the text goes on past an <|endoftext|> the model writes (it was cut at the config's eos)
    const o = { max_new_tokens: 900, do_sample: false, context_overflow: 'slide' as const, repetition_penalty: 1.3, no_repeat_ngram_size: 3, eos_token_id: null };
    const row = Array.from((await gen.model.generate({ input_ids: [ids], ...o })).data as BigInt64Array, Number).slice(ids.length);
    assert.ok(row.includes(50256), 'the model writes an <|endoftext|> within 900 tokens (the case this checks)');
    const [{ generated_text }] = await gen(prompt, { ...o, return_full_text: false }) as any[];
    assert.is(generated_text, gen.tokenizer.decode(row, { skip_special_tokens: true }));

    // --stop in the CLI: its stdout and --json text end right after the stop, as the pipeline's text
    const sampled = { max_new_tokens: 40, do_sample: true, seed: 3, top_k: 40 };
    const full = (await gen(prompt, { ...sampled, return_full_text: false }) as any[])[0].generated_text as string;
    // a stop that ends inside a token, so that the token completing it carries more text
    const newIds = Array.from((await gen.model.generate({ input_ids: [ids], ...sampled })).data as BigInt64Array, Number).slice(ids.length);
    const bounds = new Set(newIds.map((_, i) => gen.tokenizer.decode(newIds.slice(0, i + 1)).length));
    let end = 5;
    while (end <= full.length && (bounds.has(end) || full.indexOf(full.slice(end - 5, end)) !== end - 5)) end++;
    assert.ok(end <= full.length, `no 5-character stop ends inside a token of ${JSON.stringify(full)}`);
    const stop = full.slice(end - 5, end);
    const cut = (await gen(prompt, { ...sampled, return_full_text: false, stop }) as any[])[0].generated_text as string;
    assert.is(cut, full.slice(0, full.indexOf(stop) + stop.length));
    const cli = (extra: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'generate', prompt, '--model', dir, '-n', '40', '--do-sample', '--seed', '3', '--top-k', '40', '--threads', '1', '--stop', stop, ...extra], { encoding: 'utf8' });
    const plain = cli([]);
    assert.is(plain.status, 0, plain.stderr);
    assert.is(plain.stdout, prompt + cut + '\n');
    assert.is(JSON.parse(cli(['--json']).stdout).generated_text, prompt + cut);

    // a token that ends inside a character ('’' is two tokens here): a stop of U+FFFD does not fire on its first half
    const halves = gen.tokenizer.encode('’');
    assert.is(halves.length, 2);
    const suppress = Array.from({ length: 50257 }, (_, i) => i).filter((i) => !halves.includes(i));
    const base = { input_ids: [ids], max_new_tokens: 4, do_sample: false, suppress_tokens: suppress, bad_words_ids: [[halves[1], halves[1]]], tokenizer: gen.tokenizer };
    const forced = Array.from((await gen.model.generate({ ...base, begin_suppress_tokens: [halves[1]] } as any)).data as BigInt64Array, Number).slice(ids.length);
    assert.is(forced[0], halves[0]);
    const stopped = Array.from((await gen.model.generate({ ...base, begin_suppress_tokens: [halves[1]], stop: '\uFFFD' } as any)).data as BigInt64Array, Number).slice(ids.length);
    assert.ok(stopped.length > 1, `stopped after ${stopped.length} token(s): ${JSON.stringify(stopped)}`);
  } finally { await gen.dispose(); }
});

test('bare GPT2Model: last_hidden_state is the reference final hidden state, no logits', async () => {
  const c = readCase('lm_forward'), ref = readReference(c.expected);
  const model = await GPT2Model.from_pretrained(modelDir(c.model), { threads: 1 });
  try {
    assert.is(model.head, 'none');
    const out = await model.forward({ input_ids: [c.input_ids] });
    assert.is(out.logits, undefined);
    const L = model.config.n_layer, E = model.config.n_embd;
    assert.equal(out.last_hidden_state.dims, [1, c.input_ids.length, E]);
    const msg = compareClose(out.last_hidden_state.data as Float32Array, ref[`hidden_states.${L}`].data, c.tolerance, 'last_hidden_state');
    if (msg) assert.unreachable(msg);
    assert.is(out.past_key_values?.length, L);
    // callable as transformers.js models: model(inputs) is forward(inputs); still an instance of its class
    const called = await model({ input_ids: [c.input_ids] });
    assert.equal(called.last_hidden_state.data, out.last_hidden_state.data);
    assert.ok(model instanceof GPT2Model && model.config.n_layer === L && model.constructor === GPT2Model);
  } finally { await model.dispose(); }
});

test('task_specific_params["text-generation"] set the text-generation pipeline\'s defaults over generation_config.json, not model.generate()\'s (as transformers); call options win', async () => {
  const c = readCase('lm_greedy');
  const dir = modelDir(c.model);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.task_specific_params = { 'text-generation': { do_sample: false, max_length: c.input_ids.length + 6 } };
  const files = {
    'config.json': JSON.stringify(config), 'model.safetensors': new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    'generation_config.json': JSON.stringify({ do_sample: true, top_k: 0, max_length: c.input_ids.length + 20 }),
  };
  const model = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'task-params'), { threads: 1 });
  try {
    const ids = async (o: object) => Array.from((await model.generate({ input_ids: [c.input_ids], ...o })).data as BigInt64Array, Number);
    const task = { [TEXT_GENERATION_TASK]: true };
    assert.equal(await ids(task), c.expected_ids.slice(0, c.input_ids.length + 6), 'greedy, 6 new tokens, from task_specific_params');
    assert.equal(await ids({ ...task, max_new_tokens: 9 }), c.expected_ids.slice(0, c.input_ids.length + 9), 'the call\'s max_new_tokens wins');
    // model.generate() alone reads generation_config.json: sampling (top_k 0), 20 new tokens
    const a = await ids({ seed: 1 }), b = await ids({ seed: 2 });
    assert.is(a.length, c.input_ids.length + 20);
    assert.not.equal(a, b, 'do_sample from generation_config.json');
  } finally { await model.dispose(); }
  // the pipeline applies them: greedy, 6 new tokens
  const gen = await pipeline('text-generation', memorySource({ ...files, ...tokFiles() }, 'task-params-pipe'), { threads: 1 });
  try {
    const [out] = await gen(gen.tokenizer.decode(c.input_ids), { return_full_text: false });
    assert.is(out.generated_text, gen.tokenizer.decode(c.expected_ids.slice(c.input_ids.length, c.input_ids.length + 6)));
    // transformers.js's add_special_tokens pipeline option is the tokenizer's (GPT-2 adds none)
    const [same] = await gen(gen.tokenizer.decode(c.input_ids), { return_full_text: false, add_special_tokens: false });
    assert.is(same.generated_text, out.generated_text);
  } finally { await gen.model.dispose(); }
});

test('token- and text-classification pipelines', async () => {
  const shape = { n_embd: 16, n_head: 2, n_layer: 1, n_positions: 64, vocab_size: 50257 };
  const tok = memorySource({ ...randomCheckpoint({ ...shape, head: 'token-classification', num_labels: 3 }, 5), ...tokFiles() }, 'tokcls');
  const ner = await pipeline('token-classification', tok, { threads: 1 });
  try {
    const text = 'Hello world from Paris';
    const all = await ner(text, { ignore_labels: [] });
    assert.is(all.length, ner.tokenizer.encode(text).length);
    assert.is(all.map((e) => e.word).join(''), text);
    const raw = await ner.model.forward({ input_ids: [ner.tokenizer.encode(text)] });
    const l = raw.logits!.data as Float32Array;
    all.forEach((e, i) => {
      const row = Array.from(l.subarray(i * 3, i * 3 + 3));
      assert.is(e.entity, ner.model.config.id2label[row.indexOf(Math.max(...row))]);
      assert.ok(e.score > 1 / 3 && e.score <= 1);
    });
    assert.ok((await ner(text)).every((e) => e.entity !== 'O'));
  } finally { await ner.dispose(); }
  const seq = memorySource({ ...randomCheckpoint({ ...shape, head: 'sequence-classification', num_labels: 3, pad_token_id: 50256 }, 6), ...tokFiles() }, 'seqcls');
  const cls = await pipeline('text-classification', seq, { threads: 1 });
  try {
    const one = await cls('a fine day', { top_k: null }) as any[];
    assert.is(one.length, 3);
    assert.ok(Math.abs(one.reduce((s: number, x: any) => s + x.score, 0) - 1) < 1e-6);
    const batch = await cls(['a fine day', 'a much longer sentence than the first'], { top_k: null }) as any[][];
    assert.equal(batch[0].map((x: any) => x.label), one.map((x: any) => x.label));
    batch[0].forEach((x: any, i: number) => assert.ok(Math.abs(x.score - one[i].score) < 1e-5, 'padding changed the pooled result'));
    // top_k 1 (the default): a batch gives one flat list of best labels, a text a list of one (transformers.js)
    const best = await cls(['a fine day', 'a much longer sentence than the first']);
    assert.equal(best.map((x) => x.label), batch.map((r) => r[0].label));
    assert.equal((await cls('a fine day')).map((x) => x.label), [one[0].label]);
    assert.is((await cls(['a fine day'], { top_k: 2 })).length, 1);
    const e = await cls('a fine day', { function_to_apply: 'none' } as any).then(() => null, (x) => x);
    assert.ok(e instanceof GPT2WasmError && e.code === 'OPTION' && /function_to_apply/.test(e.message), `${e}`);
  } finally { await cls.dispose(); }
  // a single-label regressor (num_labels 1) and a multi-label model: a sigmoid per label, as transformers' pipeline
  for (const extra of [{ num_labels: 1 }, { num_labels: 3, problem_type: 'multi_label_classification' }]) {
    const files = randomCheckpoint({ ...shape, head: 'sequence-classification', pad_token_id: 50256, ...extra } as any, 6);
    const cfg = JSON.parse(files['config.json'] as string);
    if ((extra as any).problem_type) files['config.json'] = JSON.stringify({ ...cfg, problem_type: (extra as any).problem_type });
    const c2 = await pipeline('text-classification', memorySource({ ...files, ...tokFiles() }, 'sigmoid'), { threads: 1 });
    try {
      const all = await c2('a fine day', { top_k: null });
      const raw = await c2.model.forward({ input_ids: [c2.tokenizer.encode('a fine day')] });
      const logits = Array.from(raw.logits!.data as Float32Array);
      const want = logits.map((v) => 1 / (1 + Math.exp(-v))).sort((a, b) => b - a);
      all.forEach((x, i) => assert.ok(Math.abs(x.score - want[i]) < 1e-6, `${JSON.stringify(extra)}: ${x.score} vs ${want[i]}`));
    } finally { await c2.dispose(); }
  }
});

test('classification pipelines: an empty text is refused in a batch too, top_k is null or a positive integer, token-classification takes a batch', async () => {
  const shape = { n_embd: 16, n_head: 2, n_layer: 1, n_positions: 64, vocab_size: 50257 };
  const seq = memorySource({ ...randomCheckpoint({ ...shape, head: 'sequence-classification', num_labels: 3, pad_token_id: 50256 }, 6), ...tokFiles() }, 'seqcls');
  const rejects = async (p: Promise<unknown>, code: string, msg: RegExp) => {
    const e = await p.then(() => null, (x) => x);
    assert.ok(e instanceof GPT2WasmError, `expected a ${code} error, got ${e}`);
    assert.is(e.code, code, e.message);
    assert.match(e.message, msg);
  };
  const cls = await pipeline('text-classification', seq, { threads: 1 });
  try {
    await rejects(cls(''), 'INPUT', /empty/);
    await rejects(cls(['a b c', '']), 'INPUT', /text-classification: text 1 is empty/);
    await rejects(cls(['', 'a b c']), 'INPUT', /text 0 is empty/);
    for (const top_k of [-1, 0, 1.5, 'x', NaN, Infinity]) {
      await rejects(cls('a b c', { top_k: top_k as any }), 'OPTION', /top_k must be a positive integer, or null/);
      await rejects(cls(['a b c', 'd'], { top_k: top_k as any }), 'OPTION', /top_k must be a positive integer/);
    }
    assert.match((await cls('x', { top_k: 'x' as any }).then(() => '', (e) => e.message)), /got "x"/);
    assert.is((await cls('a b c') as any[]).length, 1);
    assert.is((await cls('a b c', { top_k: undefined }) as any[]).length, 1);
    assert.is((await cls('a b c', { top_k: 2 }) as any[]).length, 2);
    assert.is((await cls('a b c', { top_k: 10 }) as any[]).length, 3);
    assert.is((await cls('a b c', { top_k: null }) as any[]).length, 3);
  } finally { await cls.dispose(); }
  const tok = memorySource({ ...randomCheckpoint({ ...shape, head: 'token-classification', num_labels: 3 }, 5), ...tokFiles() }, 'tokcls');
  const ner = await pipeline('token-classification', tok, { threads: 1 });
  try {
    const texts = ['Hello world', 'from Paris today'];
    const batch = await ner(texts, { ignore_labels: [] });
    assert.ok(Array.isArray(batch) && batch.length === 2);
    assert.equal(batch[0], await ner(texts[0], { ignore_labels: [] }));
    assert.equal(batch[1], await ner(texts[1], { ignore_labels: [] }));
    assert.equal(await ner([]), []);
    await rejects(ner(''), 'INPUT', /empty/);
    await rejects(ner(['a', '']), 'INPUT', /token-classification: text 1 is empty/);
    await rejects(ner([5] as any), 'INPUT', /text 0 must be a string, got number/);
  } finally { await ner.dispose(); }
});

test('sharded and BF16 checkpoints load to the same logits; AutoModel picks the head', async () => {
  const files = randomCheckpoint({ n_embd: 16, n_head: 4, n_layer: 2, n_positions: 32, vocab_size: 100 }, 9);
  const st = files['model.safetensors'] as Uint8Array;
  const n = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + n)));
  const entries = Object.entries<any>(header).filter(([k]) => k !== '__metadata__').map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape, data: st.slice(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]) }] as const);
  const half = Math.floor(entries.length / 2);
  const shard1 = Object.fromEntries(entries.slice(0, half)), shard2 = Object.fromEntries(entries.slice(half));
  const weight_map = Object.fromEntries(entries.map(([k], i) => [k, i < half ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
  const sharded = memorySource({ 'config.json': files['config.json'], 'model.safetensors.index.json': JSON.stringify({ metadata: {}, weight_map }),
    'model-00001-of-00002.safetensors': writeSafetensors(shard1), 'model-00002-of-00002.safetensors': writeSafetensors(shard2) }, 'sharded');
  // BF16: the top half of each f32; compare against the f32 model with weights rounded the same way
  const toBf16 = (d: Uint8Array) => { const f = new Uint32Array(d.slice().buffer), o = new Uint16Array(f.length); f.forEach((v, i) => { o[i] = v >>> 16; }); return new Uint8Array(o.buffer); };
  const truncF32 = (d: Uint8Array) => { const f = new Uint32Array(d.slice().buffer); f.forEach((v, i) => { f[i] = v & 0xffff0000; }); return new Uint8Array(f.buffer); };
  const bf16 = memorySource({ 'config.json': files['config.json'], 'model.safetensors': writeSafetensors(Object.fromEntries(entries.map(([k, v]) => [k, { ...v, dtype: 'BF16' as const, data: toBf16(v.data) }]))) }, 'bf16');
  const truncated = memorySource({ 'config.json': files['config.json'], 'model.safetensors': writeSafetensors(Object.fromEntries(entries.map(([k, v]) => [k, { ...v, data: truncF32(v.data) }]))) }, 'f32-truncated');
  const run = async (src: any) => { const m = await GPT2LMHeadModel.from_pretrained(src, { threads: 1 }); try { return (await m.forward({ input_ids: [[1, 5, 9, 42]] })).logits!.data as Float32Array; } finally { await m.dispose(); } };
  const base = await run(memorySource(files));
  assert.equal(Array.from(await run(sharded)), Array.from(base));
  const b = await run(bf16);
  assert.equal(Array.from(b), Array.from(await run(truncated)));
  const msg = compareClose(b, base, { atol: 0.05, rtol: 0.05 }, 'bf16 vs f32');
  if (msg) assert.unreachable(msg);
  const auto = await AutoModel.from_pretrained(memorySource(randomCheckpoint({ n_embd: 8, n_head: 2, n_layer: 1, n_positions: 8, vocab_size: 10, head: 'sequence-classification', num_labels: 2 })));
  assert.ok(auto instanceof GPT2ForSequenceClassification);
  await auto.dispose();
  const auto2 = await AutoModel.from_pretrained(memorySource(randomCheckpoint({ n_embd: 8, n_head: 2, n_layer: 1, n_positions: 8, vocab_size: 10, head: 'token-classification' })));
  assert.ok(auto2 instanceof GPT2ForTokenClassification);
  await auto2.dispose();
});

test.run();
