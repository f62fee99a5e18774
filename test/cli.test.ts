// The CLI as a user runs it: the built dist/cli.js in a child process, offline, on the fixture model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { sendBytes, startServer } from './helpers/http-server.js';
import { join } from 'node:path';
import { modelDir, readCase, repoRoot } from './helpers/fixtures.js';
import { cli, run } from './helpers/cli.js';
import { AutoTokenizer, GPT2ForSequenceClassification } from '../src/index.js';
import { LLAMA_CPP_HINTS } from '../src/cli/args.js';
import { COMMAND_SPECS } from '../src/cli/main.js';
import { processEscapes } from '../src/cli/escapes.js';
import { OptionError } from '../src/errors.js';


test('generate --greedy on the fixture model matches lm_greedy', () => {
  const c = readCase('lm_greedy');
  const r = run(['generate', c.text, '--model', modelDir(c.model), '--greedy', '--max-new-tokens', String(c.max_new_tokens), '--json', '--threads', '1']);
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.ids, c.expected_ids);
  assert.ok(out.generated_text.startsWith(c.text));
});

test('generate --kv-dtype fp16 (a half KV cache) still matches lm_greedy; a bad --kv-dtype is named', () => {
  const c = readCase('lm_greedy');
  let r = run(['generate', c.text, '--model', modelDir(c.model), '--greedy', '--max-new-tokens', String(c.max_new_tokens), '--json', '--threads', '1', '--kv-dtype', 'fp16']);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).ids, c.expected_ids);
  r = run(['generate', 'hi', '--model', modelDir(c.model), '--kv-dtype', 'bf16']);
  assert.is(r.status, 2); assert.match(r.stderr, /--kv-dtype must be 'fp32' or 'fp16'/);
});

test('generate streams text to stdout and reads the prompt from stdin', () => {
  const c = readCase('lm_greedy');
  const r = run(['generate', '--model', modelDir(c.model), '--greedy', '-n', '8', '--verbose'], c.text + '\n');
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith(c.text), r.stdout);
  assert.ok(r.stdout.length > c.text.length + 8);
  assert.match(r.stderr, /decode_tokens_per_s/);
});

test('bad options and inputs exit non-zero with a message naming the problem', () => {
  let r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '--temperature', 'hot']);
  assert.is(r.status, 2); assert.match(r.stderr, /--temperature must be a number/);
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '--bogus']);
  assert.is(r.status, 2); assert.match(r.stderr, /unknown option --bogus/);
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '-n', '500']);
  assert.is(r.status, 3); assert.match(r.stderr, /context too long/);
  // the CLI's words, not the library's: flags, not option names
  assert.match(r.stderr, /--max-new-tokens/); assert.match(r.stderr, /--context-overflow slide/);
  assert.not.match(r.stderr, /max_new_tokens|context_overflow/);
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '--context-overflow', 'wrap']);
  assert.is(r.status, 2); assert.match(r.stderr, /--context-overflow must be/);
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '--max-new-token', '3']);
  assert.is(r.status, 2); assert.match(r.stderr, /unknown option --max-new-token \(did you mean --max-new-tokens\?\)/);
  r = run(['generate', '--model', modelDir('gpt2-tiny'), '--greedy'], '');
  assert.is(r.status, 3); assert.match(r.stderr, /prompt on stdin is empty/); // a bad input, not a bad option
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '-n', '500', '--json']);
  assert.is(r.status, 3);
  const err = JSON.parse(r.stdout);
  assert.is(err.error.code, 'INPUT'); assert.match(err.error.message, /context too long.*--context-overflow slide/);
  r = run(['generate', 'hi', '--model', join(repoRoot, 'no-such-dir')]);
  assert.is(r.status, 2); assert.match(r.stderr, /no-such-dir.*not a local directory/);
  r = run(['generate', 'hi', '--model', 'someone/no-such-model']); // offline, not cached
  assert.is(r.status, 5); assert.match(r.stderr, /no-such-model/);
  r = run(['frobnicate']);
  assert.is(r.status, 2); assert.match(r.stderr, /unknown command/);
  // a rejected command prints nothing on stdout (the prompt is echoed only once generation starts)
  for (const bad of [['--temperature', '-1'], ['-n', '500'], ['--top-p', '2']]) {
    r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), ...bad]);
    assert.ok(r.status === 2 || r.status === 3, `${bad}: ${r.status} ${r.stderr}`);
    assert.is(r.stdout, '', `${bad} printed ${JSON.stringify(r.stdout)}`);
  }
  // the flag as typed and as documented, never the library's option name
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '-n']);
  assert.is(r.status, 2); assert.match(r.stderr, /-n \(--max-new-tokens\) needs a value/);
  r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '--greedy', '--do-sample']);
  assert.is(r.status, 2); assert.match(r.stderr, /--greedy and --do-sample contradict/);
  for (const v of ['0x10', '1e2', '0b1', ' 5']) {
    r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), '-n', v]);
    assert.is(r.status, 2); assert.match(r.stderr, /must be an integer, got/);
  }
    r = run(['info', modelDir('gpt2-tiny'), 'extra']);
  assert.is(r.status, 2); assert.match(r.stderr, /info takes one MODEL, got 2/);
});

/** gpt2-tiny with no task_specific_params: a model whose config decodes greedily (as a GGUF file's does). */
function greedyConfigModel(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-greedy-cfg-'));
  for (const f of ['model.safetensors', 'vocab.json', 'merges.txt']) symlinkSync(join(modelDir('gpt2-tiny'), f), join(dir, f));
  const { task_specific_params: _task, ...cfg } = JSON.parse(readFileSync(join(modelDir('gpt2-tiny'), 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

test('generate: a sampling flag samples where the model config is greedy; one --seed gives one text; --temperature 0 is --greedy', () => {
  const dir = greedyConfigModel();
  try {
    const gen = (...flags: string[]) => {
      const r = run(['generate', 'Hello there', '--model', dir, '-n', '12', '--json', '-t', '1', ...flags]);
      assert.is(r.status, 0, r.stderr);
      return JSON.parse(r.stdout).ids as number[];
    };
    const greedy = gen('--greedy');
    assert.equal(gen(), greedy, 'no sampling flag: the config decides (greedy here)');
    const seeded = gen('--seed', '7');
    assert.equal(gen('--seed', '7'), seeded, 'the same seed, the same text');
    assert.not.equal(seeded, greedy, '--seed alone samples');
    assert.not.equal(gen('--top-k', '5', '--seed', '1'), greedy, '--top-k samples');
    assert.equal(gen('--temperature', '0'), greedy);
  } finally { rmSync(dir, { recursive: true, force: true }); }
  // gpt2-tiny's config samples (task_specific_params): --temperature 0 is greedy there too, as in llama.cpp
  const c = readCase('lm_greedy');
  const r = run(['generate', c.text, '--model', modelDir(c.model), '--temperature', '0', '--max-new-tokens', String(c.max_new_tokens), '--json', '-t', '1']);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).ids, c.expected_ids);
});

test('generate refuses sampling flags that contradict greedy decoding, saying what to drop', () => {
  const cases: [string[], RegExp][] = [
    [['--greedy', '--seed', '3'], /--greedy contradicts --seed, which only matters when sampling: drop --greedy to sample .*or drop --seed/],
    [['--greedy', '--temperature', '0.7', '--top-k', '5'], /--greedy contradicts --temperature and --top-k, which only matter when sampling/],
    [['--greedy', '--top-p', '0.9'], /--greedy contradicts --top-p/],
    [['--do-sample', '--temperature', '0'], /--temperature 0 means greedy decoding \(as in llama\.cpp\) and contradicts --do-sample: give a temperature above 0/],
    [['--temperature', '0', '--top-k', '40'], /--temperature 0 means greedy decoding .*where --top-k does nothing: .*or drop --top-k/],
    [['--temperature', '0', '--top-p', '0.9'], /where --top-p does nothing/],
  ];
  for (const [flags, want] of cases) {
    const r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), ...flags]);
    assert.is(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.is(r.stdout, '');
  }
});

test('generate -n -1 (llama.cpp: until the end) is refused with what to pass instead', () => {
  for (const flags of [['-n', '-1'], ['--max-new-tokens=-1'], ['-n', '-2']]) {
    const r = run(['generate', 'hi', '--model', modelDir('gpt2-tiny'), ...flags]);
    assert.is(r.status, 2, r.stderr);
    const typed = flags[0] === '-n' ? '-n' : '--max-new-tokens';
    assert.match(r.stderr, new RegExp(`^gpt2-wasm: ${typed} -[12]: there is no "until the end" count \\(llama\\.cpp's -n -1\\); give the number of tokens, e\\.g\\. ${typed} 200: generation stops earlier at the end-of-text token anyway\\n$`));
  }
});

test('llama.cpp flags we spell otherwise or lack: the unknown-option error says what to use here', () => {
  const m = ['--model', modelDir('gpt2-tiny')];
  const cases: [string[], RegExp][] = [
    [['generate', 'hi', ...m, '-p', 'Once'], /unknown option -p: the prompt is generate's argument: gpt2-wasm generate "TEXT" \(or pipe it on stdin\)/],
    [['generate', ...m, '--file', 'x.txt'], /unknown option --file: generate reads a prompt file on stdin \(gpt2-wasm generate < FILE\)/],
    [['generate', 'hi', ...m, '-c', '2048'], /unknown option -c: GPT-2's context is fixed by the model \(n_positions.*--context-overflow slide keeps generating on the last tokens/],
    [['generate', 'hi', ...m, '-s', '42'], /unknown option -s: llama\.cpp's seed is generate --seed N/],
    [['generate', 'hi', ...m, '--n-predict', '20'], /unknown option --n-predict: .*generate -n N \(--max-new-tokens N\)/],
    [['generate', 'hi', ...m, '--temp=0.5'], /unknown option --temp=0\.5: llama\.cpp's --temp is generate --temperature T \(0 is greedy/],
    [['generate', 'hi', ...m, '--repeat-penalty', '1.1'], /unknown option --repeat-penalty: .*generate --repetition-penalty R/],
    [['generate', 'hi', ...m, '-r', 'User:'], /unknown option -r: llama\.cpp's reverse prompt is generate --stop TEXT/],
    [['generate', 'hi', ...m, '--min-p', '0.05'], /unknown option --min-p: min-p sampling is not supported; the samplers here are temperature, top-k and top-p/],
    [['generate', 'hi', ...m, '--mirostat', '2'], /unknown option --mirostat: Mirostat sampling is not supported/],
    [['generate', 'hi', ...m, '-ngl', '99'], /unknown option -ngl: there is no GPU offload: gpt2-wasm runs on the CPU in WebAssembly/],
    [['serve', ...m, '-np', '4'], /unknown option -np: serve decodes up to --max-concurrency N sequences together/],
    [['serve', ...m, '--cont-batching'], /unknown option --cont-batching: serve always batches continuously; --max-concurrency N/],
    [['perplexity', 'x.txt', ...m, '--ppl-stride', '128'], /unknown option --ppl-stride: there is no strided mode: perplexity scores non-overlapping windows of --window N tokens/],
    [['convert', 'x', '--outtype', 'f16'], /unknown option --outtype: convert_hf_to_gguf\.py's --outtype is convert --dtype f32\|f16\|q8_0\|q4_0/],
    [['perplexity', 'x.txt', ...m, '-ctk', 'f16'], /unknown option -ctk: the KV cache type is --kv-dtype fp32\|fp16/],
  ];
  for (const [args, want] of cases) {
    const r = run(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.not.match(r.stderr, /did you mean/);
  }
  // a flag of ours is never taken for llama.cpp's: -p is serve's --port (the port is checked, not hinted at)
  const r = run(['serve', ...m, '-p', '70000']);
  assert.is(r.status, 2); assert.match(r.stderr, /--port must be from 0 to 65535/);
});

test('every llama.cpp hint names flags that exist, and no hinted flag is one a command accepts (a command\'s own hint: that command)', () => {
  const known = new Map<string, Set<string>>(); // every flag as typed (--key, -alias) -> the commands taking it
  for (const [cmd, specs] of Object.entries(COMMAND_SPECS)) {
    for (const [k, s] of Object.entries(specs)) {
      for (const f of [`--${k.replace(/_/g, '-')}`, ...(s.alias ? [`-${s.alias}`] : [])]) known.set(f, new Set([...(known.get(f) ?? []), cmd]));
    }
  }
  assert.ok(Object.keys(LLAMA_CPP_HINTS).length >= 30);
  // a hint is looked up only for a flag the command does not take: -p is serve's --port, and llama.cpp's prompt elsewhere
  const takenBy: Record<string, string[]> = { '-p': ['serve'] };
  const hinted = new Set(Object.keys(LLAMA_CPP_HINTS).map((k) => k.split(' ').at(-1)!));
  for (const [key, h] of Object.entries(LLAMA_CPP_HINTS)) {
    // "COMMAND FLAG": that command's own hint, which only that command must not accept
    const [cmd, flag] = key.includes(' ') ? key.split(' ') : [undefined, key];
    assert.ok(cmd === undefined || COMMAND_SPECS[cmd], `${key}: no command ${cmd}`);
    assert.match(flag, /^--?[a-z][a-z-]*$/, key);
    const takers = [...(known.get(flag) ?? [])].filter((c) => cmd === undefined || c === cmd);
    assert.equal(takers, cmd === undefined ? takenBy[flag] ?? [] : [], `${key}: ${flag} is a flag of ${takers}`);
    // a one-dash flag without an alias is read as the option of its name: none may have that name either
    if (!flag.startsWith('--')) assert.not.ok([...(known.get(`-${flag}`) ?? [])].some((c) => cmd === undefined || c === cmd), `${key}: ${flag} is read as -${flag}`);
    for (const [c, k] of h.uses) {
      assert.ok(COMMAND_SPECS[c]?.[k], `${key}: ${c} has no --${k.replace(/_/g, '-')}`);
      assert.ok(h.text.includes(`--${k.replace(/_/g, '-')}`), `${key}: the text does not name --${k.replace(/_/g, '-')}`);
    }
    // every flag the text names is one of ours, or a llama.cpp flag the table hints at
    for (const named of h.text.match(/(?<![\w-])--?[a-z][a-z-]*/g) ?? []) {
      assert.ok(known.has(named) || hinted.has(named), `${key}: its hint names ${named}, which no command takes`);
    }
  }
});

test('perplexity prints the dtypes and wasm build that ran, "1 window", and tokens/s with -v', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-ppl-cli-'));
  const file = join(dir, 'short.txt');
  writeFileSync(file, 'The quick brown fox jumps over the lazy dog. It was a sunny day.');
  try {
    let r = run(['perplexity', file, '--model', modelDir('gpt2-tiny'), '-t', '1', '--dtype', 'q4', '--kv-dtype', 'fp16', '-v']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /^perplexity \d+\.\d{4} \+\/- \d+\.\d{4} \(nll_mean \d+\.\d{6} nats over \d+ predicted of \d+ tokens, 1 window of 128; dtype q4,wte=q8, kv fp16, wasm (simd|relaxed)(-threads)?( \(relaxed Q4_0 tiles\))?, 1 thread\)\n$/);
    assert.match(r.stderr, /\[gpt2-wasm\] scored \d+ tokens in [\d.]+ s: [\d.]+ tokens\/s/);
    // one window: its running perplexity is the result
    const ppl = r.stdout.match(/^perplexity (\d+\.\d{4})/)![1];
    assert.ok(r.stderr.includes(`[gpt2-wasm] [1]${ppl}\n`), r.stderr);
    r = run(['perplexity', file, '--model', modelDir('gpt2-tiny'), '-t', '2', '--json', '--window', '8']);
    assert.is(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal([j.dtype, j.dtype_requested, j.kv_dtype, j.threads], ['fp32', 'auto', 'fp32', 2]);
    assert.match(j.wasm, /^(simd|relaxed)-threads$/);
    assert.ok(j.windows > 1 && j.tokens_per_s > 0);
    r = run(['perplexity', file, '--model', modelDir('gpt2-tiny'), '-t', '1', '--window', '8']);
    assert.match(r.stdout, new RegExp(`, ${j.windows} windows of 8; dtype fp32, kv fp32, wasm `));
    assert.not.match(r.stderr, /tokens\/s|\[1\]/, 'the timing and progress lines only with -v');
    // -v with several windows: one progress line, the last running figure the result
    r = run(['perplexity', file, '--model', modelDir('gpt2-tiny'), '-t', '1', '--window', '8', '-v']);
    const line = r.stderr.split('\n').find((l) => l.startsWith('[gpt2-wasm] [1]'))!;
    assert.match(line, new RegExp(`^\\[gpt2-wasm\\] (\\[\\d+\\]\\d+\\.\\d{4},){${j.windows - 1}}\\[${j.windows}\\]${j.ppl.toFixed(4).replace('.', '\\.')}$`));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a reader that closes stdout early ends generate quietly; a failing stdout is one line', () => {
  const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  const gen = `"${process.execPath}" "${cli}" generate "Hello there" --model "${modelDir('gpt2-tiny')}" --greedy -n 100 --threads 1`;
  const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-epipe-'));
  try {
    let r = sh(`{ ${gen} 2>"${dir}/err"; echo $? >"${dir}/code"; } | head -c 5`);
    assert.is(r.stdout, 'Hello');
    assert.is(readFileSync(join(dir, 'code'), 'utf8').trim(), '0');
    assert.is(readFileSync(join(dir, 'err'), 'utf8'), '', 'nothing on stderr after EPIPE');
  } finally { rmSync(dir, { recursive: true, force: true }); }
  if (existsSync('/dev/full')) {
    const r = sh(`${gen} > /dev/full`);
    assert.is(r.status, 1);
    assert.match(r.stderr, /^gpt2-wasm: cannot write the output: ENOSPC\n$/);
  }
});

test('info and classify', () => {
  let r = run(['info', modelDir('gpt2-tiny'), '--json', '--runtime']);
  assert.is(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.is(info.n_layer, 2); assert.ok(info.parameters > 3e6); assert.ok(info.runtime.simd);
  // every engine these tests run on has an exact relaxed dot: the relaxed Q4_0 tiles run wherever relaxed SIMD does
  assert.is(info.runtime.relaxed_q4_tiles, info.runtime.relaxed_simd);
  // the CLI turns on Node 20's flagged relaxed SIMD (src/cli/relaxed-simd.ts), whose accumulating dot is wrong and
  // i16 one right; GPT2WASM_RELAXED_SIMD=0 keeps the plain build
  assert.ok(info.runtime.relaxed_simd, 'the CLI runs a relaxed build');
  const [v8major, v8minor] = process.versions.v8.split('.').map(Number);
  if (v8major === 11 && v8minor < 4) {
    const plain = spawnSync(process.execPath, [cli, 'info', '--runtime', '--json'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, GPT2WASM_RELAXED_SIMD: '0' } });
    assert.is(plain.status, 0, plain.stderr);
    assert.equal([JSON.parse(plain.stdout).relaxed_simd, JSON.parse(plain.stdout).relaxed_q4_tiles], [false, false]);
  }
  r = run(['classify', 'hello', '--model', modelDir('gpt2-tiny-seqcls')]);
  assert.is(r.status, 4, 'seqcls fixture has no tokenizer files: a clear tokenizer error'); assert.match(r.stderr, /vocab\.json|tokenizer/);
  // what fits wasm32 memory, by the loader's check, for every dtype (a config alone is enough)
  const big = mkdtempSync(join(tmpdir(), 'info-big-'));
  try {
    const cfg = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50257, n_positions: 1024, n_embd: 2048, n_layer: 48, n_head: 16 };
    writeFileSync(join(big, 'config.json'), JSON.stringify(cfg));
    r = run(['info', big, '--json']);
    assert.is(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).weights_fit, { fp32: false, fp16: false, q8: true, q4: true });
    // --dtype and --kv-dtype size what a load with them would hold; a bad value is a bad option (exit 2)
    const planned = JSON.parse(run(['info', big, '--json', '--dtype', 'q4,wte=fp16', '--kv-dtype', 'fp16']).stdout);
    assert.equal([planned.dtype_weights_fit, planned.kv_cache_bytes_per_sequence * 2], [true, JSON.parse(r.stdout).kv_cache_bytes_per_sequence]);
    assert.ok(planned.dtype_weights_bytes > planned.weights_bytes.q4 && planned.dtype_weights_bytes < planned.weights_bytes.q8);
    assert.is(run(['info', big, '--dtype', 'bogus']).status, 2);
    assert.match(run(['info', big]).stdout, /\(fp32, fp16 do not fit wasm32 memory\)/);
    writeFileSync(join(big, 'config.json'), JSON.stringify({ ...cfg, n_embd: 6144, n_head: 48 }));
    assert.match(run(['info', big]).stdout, /\(no dtype fits wasm32 memory\)/);
  } finally { rmSync(big, { recursive: true, force: true }); }
});

test('classify --tokenizer DIR: the scores the library computes for the same ids', async () => {
  const text = 'a, b. c'; // ids below the seqcls fixture's vocab_size of 1000
  const r = run(['classify', text, '--model', modelDir('gpt2-tiny-seqcls'), '--tokenizer', modelDir('gpt2-tiny'), '--json', '--threads', '1']);
  assert.is(r.status, 0, r.stderr);
  const out: { label: string; score: number }[] = JSON.parse(r.stdout);
  // independently: tokenize, run the head, softmax the logits of the pooled row
  const tok = await AutoTokenizer.from_pretrained(modelDir('gpt2-tiny'));
  const model = await GPT2ForSequenceClassification.from_pretrained(modelDir('gpt2-tiny-seqcls'), { threads: 1 });
  try {
    const logits = Array.from((await model.forward({ input_ids: [tok.encode(text)] })).logits!.data as Float32Array);
    const max = Math.max(...logits), exps = logits.map((v) => Math.exp(v - max)), sum = exps.reduce((a, b) => a + b, 0);
    const id2label = model.config.id2label as Record<string, string>;
    const want = exps.map((e, i) => ({ label: id2label[String(i)], score: e / sum })).sort((a, b) => b.score - a.score);
    assert.is(out.length, 3);
    out.forEach((o, i) => { assert.is(o.label, want[i].label); assert.ok(Math.abs(o.score - want[i].score) < 1e-6, `${o.label}: ${o.score} vs ${want[i].score}`); });
  } finally { await model.dispose(); }
});

test('with no --model, generate resolves openai-community/gpt2 through HF_ENDPOINT into HF_HOME (the README main job)', async () => {
  const c = readCase('lm_greedy');
  const server = await startServer((req, res, path) => {
    const m = path.match(/^\/openai-community\/gpt2\/resolve\/main\/(.+)$/);
    const file = m && join(modelDir('gpt2-tiny'), m[1]);
    if (!file || !existsSync(file)) { res.writeHead(404); res.end('not found'); return; }
    sendBytes(req, res, new Uint8Array(readFileSync(file)));
  });
  const home = mkdtempSync(join(tmpdir(), 'gpt2wasm-hf-'));
  try {
    const runAsync = (env: Record<string, string>) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, 'generate', c.text, '--greedy', '-n', String(c.max_new_tokens), '--json', '-t', '1'], { env: { ...process.env, HF_HOME: home, ...env } });
      let stdout = '', stderr = '';
      child.stdout.on('data', (d) => { stdout += d; });
      child.stderr.on('data', (d) => { stderr += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    });
    const first = await runAsync({ HF_ENDPOINT: server.url, HF_HUB_OFFLINE: '0' });
    assert.is(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).ids, c.expected_ids);
    assert.ok(server.requests.some((r) => r.path.endsWith('/model.safetensors')));
    // second run offline, from the cache only
    const second = await runAsync({ HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '1' });
    assert.is(second.code, 0, second.stderr);
    assert.equal(JSON.parse(second.stdout).ids, c.expected_ids);
  } finally {
    await server.close();
    rmSync(home, { recursive: true, force: true });
  }
});

test('generate -e (--escape) processes llama.cpp\'s escapes in the prompt and --stop; an empty PROMPT argument is refused', () => {
  // the rules, as llama.cpp's string_process_escapes: \n \r \t \' \" \\ \xHH on the bytes; any other backslash stays
  assert.is(processEscapes('a\\nb\\tc\\rd\\\\e\\\'f\\"g', 'p'), 'a\nb\tc\rd\\e\'f"g');
  assert.is(processEscapes('\\x41\\x4a\\xc3\\xa9 \\q \\x4 \\xZZ end\\', 'p'), 'AJé \\q \\x4 \\xZZ end\\');
  assert.is(processEscapes('no escapes: é ✓', 'p'), 'no escapes: é ✓');
  assert.throws(() => processEscapes('\\xc3', '--stop'), (e: Error) => e instanceof OptionError && /^--stop with --escape: its \\x escapes do not form UTF-8 characters/.test(e.message));
  const model = modelDir('gpt2-trained');
  // the prompt: "\n" typed is a newline with -e, two characters without
  let r = run(['generate', 'One\\nTwo', '--model', model, '--greedy', '-n', '1', '--json', '--threads', '1', '-e']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).generated_text.startsWith('One\nTwo'), r.stdout);
  r = run(['generate', 'One\\nTwo', '--model', model, '--greedy', '-n', '1', '--json', '--threads', '1']);
  assert.ok(JSON.parse(r.stdout).generated_text.startsWith('One\\nTwo'), r.stdout);
  // --stop: the first character of the greedy continuation, written as \x escapes of its bytes
  const base = run(['generate', 'The history of', '--model', model, '--greedy', '-n', '8', '--threads', '1']);
  assert.is(base.status, 0, base.stderr);
  const cont = base.stdout.slice('The history of'.length), first = [...cont][0];
  const esc = [...new TextEncoder().encode(first)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
  r = run(['generate', 'The history of', '--model', model, '--greedy', '-n', '8', '--threads', '1', '--stop', esc, '-e']);
  assert.is(r.stdout, `The history of${first}\n`); // the text ends with the stop text, then the CLI's newline
  r = run(['generate', 'The history of', '--model', model, '--greedy', '-n', '8', '--threads', '1', '--stop', esc]);
  assert.is(r.stdout, base.stdout, 'without -e the escape is literal text, never generated');
  r = run(['generate', '', '--model', model, '-n', '1'], 'from stdin\n');
  assert.is(r.status, 3); // a bad input (exit 3), not a bad option
  assert.match(r.stderr, /the PROMPT argument is empty: give some text, or leave it out to read the prompt from stdin/);
});

test.run();
