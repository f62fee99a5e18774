// The CLI's hints and errors as a user coming from llama.cpp meets them: llama.cpp flags hinted per command (serve's
// -s is a request's seed, not generate --seed), the samplers there are none of named properly, library messages in
// flags (--window, --keep, --dtype), empty inputs as bad inputs (exit 3), the KV dtype's cross-spellings, and the
// help texts' claims (top-k's default, convert --keep's example) checked against what the code does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from './helpers/fixtures.js';
import { run } from './helpers/cli.js';
import { GPT2LMHeadModel, OptionError } from '../src/index.js';
import { LLAMA_CPP_HINTS, llamaCppHint, parseArgs } from '../src/cli/args.js';
import { COMMAND_SPECS } from '../src/cli/main.js';
import { checkKVDType } from '../src/model/kv-cache.js';

const tiny = ['--model', modelDir('gpt2-tiny')];
const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-cli-hints-'));
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The one stderr line of a refused command, after checking its exit status. */
function refused(args: string[], status: number, input?: string): string {
  const r = run(args, input);
  assert.is(r.status, status, `${args.join(' ')}: ${r.status} ${r.stderr}`);
  assert.is(r.stdout, '', `${args.join(' ')} printed ${JSON.stringify(r.stdout)}`);
  return r.stderr;
}

test('llama.cpp samplers there are none of here: every flag is hinted, by the sampler\'s proper name', () => {
  const named: [string, string][] = [
    ['--min-p', 'min-p'], ['--typical', 'locally typical'], ['--mirostat', 'Mirostat'], ['--mirostat-lr', 'Mirostat'], ['--mirostat-ent', 'Mirostat'],
    ['--dry-multiplier', 'DRY'], ['--dry-base', 'DRY'], ['--dry-allowed-length', 'DRY'], ['--dry-penalty-last-n', 'DRY'], ['--dry-sequence-breaker', 'DRY'],
    ['--xtc-probability', 'XTC'], ['--xtc-threshold', 'XTC'], ['--dynatemp-range', 'dynamic temperature'], ['--dynatemp-exp', 'dynamic temperature'],
    ['--top-nsigma', 'top-nσ'], ['--top-n-sigma', 'top-nσ'],
  ];
  for (const [flag, name] of named) {
    assert.is(llamaCppHint(flag, 'generate')?.text, `${name} sampling is not supported; the samplers here are temperature, top-k and top-p, with a repetition penalty (generate --temperature, --top-k, --top-p, --repetition-penalty)`, flag);
    // serve samples per request: the hint names the request's fields, not generate's flags
    const s = llamaCppHint(flag, 'serve')!.text;
    assert.ok(s.startsWith(`${name} sampling is not supported; serve samples as each request asks: its temperature, top_k, top_p`), s);
    assert.not.match(s, /generate|--/);
  }
  // as the user meets them, with a value after the flag or in it
  assert.match(refused(['generate', 'hi', ...tiny, '--dry-multiplier', '0.8'], 2), /^gpt2-wasm: unknown option --dry-multiplier: DRY sampling is not supported; the samplers here are /);
  assert.match(refused(['generate', 'hi', ...tiny, '--xtc-probability=0.5'], 2), /unknown option --xtc-probability=0\.5: XTC sampling is not supported/);
  assert.match(refused(['generate', 'hi', ...tiny, '--min-p', '0.05'], 2), /unknown option --min-p: min-p sampling is not supported/);
  assert.match(refused(['serve', ...tiny, '--top-nsigma', '1'], 2), /unknown option --top-nsigma: top-nσ sampling is not supported; serve samples as each request asks/);
});

test('llama.cpp hints know the command: serve\'s sampling and length are per request, perplexity has no seed', () => {
  const cases: [string[], RegExp][] = [
    [['generate', 'hi', ...tiny, '-s', '1'], /unknown option -s: llama\.cpp's seed is generate --seed N/],
    [['serve', ...tiny, '-s', '1'], /unknown option -s: a request's seed is its "seed" field \(POST \/v1\/completions; left out: a random seed\)/],
    [['serve', ...tiny, '--seed', '1'], /unknown option --seed: a request's seed is its "seed" field/],
    [['perplexity', 'x.txt', ...tiny, '-s', '1'], /unknown option -s: perplexity does not sample: its result is the same on every run, with no seed/],
    [['perplexity', 'x.txt', ...tiny, '--temp', '0.5'], /unknown option --temp: perplexity scores the text with the model's own distribution \(log-softmax of the logits\): no sampler applies/],
    [['perplexity', 'x.txt', ...tiny, '--top-k', '5'], /unknown option --top-k: perplexity scores the text .* no sampler applies/],
    [['serve', ...tiny, '--keep', '4'], /unknown option --keep: there is no n_keep .*prompt plus max_tokens exceeds the context \(n_positions\) gets a 400/],
    [['serve', ...tiny, '--temp', '0.5'], /unknown option --temp: the temperature is a request's "temperature" field \(0 is greedy, as in llama\.cpp\)/],
    [['serve', ...tiny, '--top-k', '40'], /unknown option --top-k: serve samples as each request asks: its temperature, top_k, top_p and repetition_penalty fields/],
    [['serve', ...tiny, '-n', '64'], /unknown option -n: llama-server's -n is a request's default n_predict: here a request gives max_tokens \(default 16\), at most serve --max-tokens N/],
    [['serve', ...tiny, '--n-predict', '64'], /unknown option --n-predict: llama-server's -n is a request's default n_predict/],
    [['generate', 'hi', ...tiny, '--n-predict', '64'], /unknown option --n-predict: the number of tokens to generate is generate -n N/],
    [['serve', ...tiny, '--timeout', '600'], /unknown option --timeout: llama-server's --timeout \(seconds\) is serve --request-timeout-ms MS/],
    [['serve', ...tiny, '-to', '600'], /unknown option -to: llama-server's --timeout/],
    [['serve', ...tiny, '--metrics'], /unknown option --metrics: serve always answers GET \/metrics/],
    [['generate', 'hi', ...tiny, '--keep', '5'], /unknown option --keep: there is no n_keep .*generate --context-overflow slide/],
    [['generate', 'hi', ...tiny, '--no-escape'], /unknown option --no-escape: escapes are off unless asked for: generate -e \(--escape\)/],
  ];
  for (const [args, want] of cases) {
    const err = refused(args, 2);
    assert.match(err, want, args.join(' '));
    assert.not.match(err, /did you mean/, args.join(' '));
  }
  // the flag a command has is its own, never a hint: convert's --keep, generate's -n and --seed
  assert.is(llamaCppHint('--keep', 'convert'), undefined);
  assert.is(parseArgs(['--keep', 'wte=q8_0'], COMMAND_SPECS.convert, 'convert').opts.keep, 'wte=q8_0');
  assert.is(parseArgs(['-n', '5', '--seed', '1'], COMMAND_SPECS.generate, 'generate').opts.max_new_tokens, 5);
  // a command's own hint is found before the flag's, and only for that command
  assert.is(llamaCppHint('-s', 'serve'), LLAMA_CPP_HINTS['serve -s']);
  assert.is(llamaCppHint('-s', 'generate'), LLAMA_CPP_HINTS['-s']);
  assert.is(llamaCppHint('-s'), LLAMA_CPP_HINTS['-s']);
  assert.is(llamaCppHint('-n', 'generate'), undefined);
  assert.not.equal(LLAMA_CPP_HINTS['serve -s'].text, LLAMA_CPP_HINTS['-s'].text);
  // every command-specific key names a command there is
  for (const k of Object.keys(LLAMA_CPP_HINTS).filter((k) => k.includes(' '))) assert.ok(COMMAND_SPECS[k.split(' ')[0]], k);
});

test('library messages name the CLI flag: --stop, --window, --keep, --temperature (0 is greedy here)', () => {
  assert.match(refused(['generate', 'hi', ...tiny, '--stop', ''], 2), /^gpt2-wasm: --stop must not be empty: give the text to stop at, or leave --stop out\n$/);
  let err = refused(['generate', 'hi', ...tiny, '--temperature', '-1'], 2);
  assert.match(err, /^gpt2-wasm: --temperature must be 0 \(greedy\) or a positive number, got -1\n$/);
  // what the message claims: 0 is accepted (greedy), as a positive temperature is
  const g = run(['generate', 'hi', ...tiny, '--temperature', '0', '-n', '2', '-t', '1', '--json']);
  const gr = run(['generate', 'hi', ...tiny, '--greedy', '-n', '2', '-t', '1', '--json']);
  assert.is(g.status, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).ids, JSON.parse(gr.stdout).ids);
  // perplexity's window: the flag, not the library's "perplexity window"
  const file = join(tmp, 'short.txt');
  writeFileSync(file, 'The quick brown fox jumps over the lazy dog.');
  err = refused(['perplexity', file, ...tiny, '-t', '1', '--window', '512'], 2);
  assert.match(err, /^gpt2-wasm: --window must be an integer in 2\.\.128 \(n_positions\), got 512\n$/);
  const j = JSON.parse(run(['perplexity', file, ...tiny, '-t', '1', '--window', '1', '--json']).stdout);
  assert.equal(j.error, { code: 'OPTION', message: '--window must be an integer in 2..128 (n_positions), got 1' });
  // convert --keep: the flag and the tensor it names
  const out = join(tmp, 'k.gguf');
  err = refused(['convert', modelDir('gpt2-tiny'), '--keep', 'wte=q5_0', '--out', out], 2);
  assert.match(err, /^gpt2-wasm: --keep wte: its type must be one of f32, f16, q8_0, q4_0, got "q5_0"; Q5_0 is not written by this converter/);
  assert.not.match(err, /keep\.wte/);
  assert.match(refused(['convert', modelDir('gpt2-tiny'), '--keep', 'nosuch=f16', '--out', out], 2), /^gpt2-wasm: --keep: no weight matrix named "nosuch"/);
  assert.match(refused(['convert', modelDir('gpt2-tiny'), '--keep', 'wte=q8_0,token_embd=f16', '--out', out], 2), /^gpt2-wasm: --keep: "wte" and "token_embd" name the same tensor/);
});

test('an empty prompt or text is a bad input (exit 3, INPUT); no text at all for classify stays a usage error', () => {
  assert.match(refused(['generate', ...tiny, '-n', '8'], 3, ''), /the prompt on stdin is empty/);
  assert.match(refused(['generate', ...tiny, '-n', '8'], 3, '\n'), /the prompt on stdin is empty/);
  assert.match(refused(['generate', '', ...tiny, '-n', '8'], 3), /the PROMPT argument is empty/);
  const r = run(['generate', '', ...tiny, '-n', '8', '--json']);
  assert.is(r.status, 3);
  assert.is(JSON.parse(r.stdout).error.code, 'INPUT');
  assert.match(refused(['classify', '', ...tiny], 3), /^gpt2-wasm: the TEXT argument is empty: give some text, or leave it out to read the text from stdin\n$/);
  assert.match(refused(['classify', ...tiny], 3, '  \n'), /^gpt2-wasm: the text on stdin is empty: pipe some text, or pass TEXT as an argument\n$/);
});

test('--dtype q4_0 on the CLI: the hint in flags (--dtype q4, --dtype default=q4), and what it says is so', () => {
  const err = refused(['info', modelDir('gpt2-tiny'), '--dtype', 'q4_0'], 2);
  assert.ok(err.includes(`"q4_0" is 'q4' here (the same Q4_0 blocks; --dtype q4 keeps the embedding / LM head at q8, --dtype default=q4 makes them Q4_0 too)`), err);
  assert.not.match(err, /\{|dtype '/);
  // the two spellings load as the hint says (perplexity prints the dtypes as loaded)
  const file = join(tmp, 'q4.txt');
  writeFileSync(file, 'The quick brown fox jumps over the lazy dog.');
  const loaded = (d: string) => JSON.parse(run(['perplexity', file, ...tiny, '-t', '1', '--dtype', d, '--json']).stdout).dtype;
  assert.is(loaded('q4'), 'q4,wte=q8');
  assert.is(loaded('default=q4'), 'q4');
  assert.is(loaded('q4,wte=q4'), 'q4');
});

test('--kv-dtype f16 and other cross-spellings: the library\'s hint, in the CLI as in from_pretrained', async () => {
  const LIST = "must be 'fp32' or 'fp16', got";
  const cases: [string, string][] = [
    ['f16', `"f16" is 'fp16' here`], ['F16', `"F16" is 'fp16' here`], ['float16', `"float16" is 'fp16' here`],
    ['f32', `"f32" is 'fp32' here`], ['F32', `"F32" is 'fp32' here`], ['FP16', "KV dtypes are lower case: 'fp16'"],
    ['bf16', "bf16 is not a KV cache type here: the cache holds 'fp32' or 'fp16' ('fp16' halves it)"],
    ['q8_0', `"q8_0" is not a KV cache type here: the cache holds 'fp32' or 'fp16' ('fp16' halves it); only the weights are quantized (q8, q4)`],
    ['Q4_0', `"Q4_0" is not a KV cache type here`], ['q8', `"q8" is not a KV cache type here`], ['iq4_nl', `"iq4_nl" is not a KV cache type here`],
  ];
  for (const [v, hint] of cases) {
    let m = '';
    try { checkKVDType(v); } catch (e) { assert.instance(e, OptionError); m = (e as Error).message; }
    assert.is(m.startsWith(`kv_dtype ${LIST} ${JSON.stringify(v)}; `), true, m);
    assert.ok(m.includes(hint), `${v}: ${m}`);
  }
  // nothing to hint: the message as before; the names it points to are the accepted ones
  assert.throws(() => checkKVDType('fp8'), (e: Error) => e.message === `kv_dtype ${LIST} "fp8"`);
  assert.is(checkKVDType('fp16'), 'fp16');
  assert.is(checkKVDType('fp32'), 'fp32');
  // from_pretrained (a library user) and the CLI (the flag) say the same
  try { await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, kv_dtype: 'f16' as any }); assert.unreachable('f16 loaded'); } catch (e) {
    assert.instance(e, OptionError);
    assert.match((e as Error).message, /^kv_dtype must be 'fp32' or 'fp16', got "f16"; "f16" is 'fp16' here$/);
  }
  assert.match(refused(['generate', 'hi', ...tiny, '--kv-dtype', 'f16'], 2), /^gpt2-wasm: --kv-dtype must be 'fp32' or 'fp16', got "f16"; "f16" is 'fp16' here\n$/);
  assert.match(refused(['info', modelDir('gpt2-tiny'), '--kv-dtype', 'q8_0'], 2), /--kv-dtype must be 'fp32' or 'fp16', got "q8_0"; "q8_0" is not a KV cache type here/);
});

test('generate --help says top-k\'s default, and it is so: no --top-k samples as --top-k 50 on a model whose config has none', () => {
  const help = run(['generate', '--help']).stdout;
  assert.match(help, /--top-k <n>\s+sample from the k most likely tokens \(samples; 0: off; default: the model's generation config, else 50 as in transformers\)/);
  const trained = ['--model', modelDir('gpt2-trained'), '-n', '12', '-t', '1', '--seed', '3', '--json'];
  const ids = (extra: string[]) => { const r = run(['generate', 'The history of', ...trained, ...extra]); assert.is(r.status, 0, r.stderr); return JSON.parse(r.stdout).ids; };
  const dflt = ids([]);
  assert.equal(dflt, ids(['--top-k', '50']));
  assert.not.equal(dflt, ids(['--top-k', '1']));
});

test('convert --help: the --keep example works on a tied GPT-2, and lm_head there is wte (one tensor)', () => {
  const help = run(['convert', '--help']).stdout;
  const line = help.split('\n').find((l) => l.includes('--keep'))!;
  assert.match(line, /on a tied model lm_head is wte, one tensor/);
  const examples = [...line.matchAll(/e\.g\. (\S+) or (\S+) /g)][0].slice(1);
  assert.is(examples.length, 2);
  for (const ex of examples) {
    const r = run(['convert', modelDir('gpt2-tiny'), '--keep', ex, '--out', join(tmp, 'ex.gguf'), '--json']);
    assert.is(r.status, 0, `${ex}: ${r.stderr}`);
    // each named tensor is written as the example says (f16 is the default: an example must change something)
    const types = JSON.parse(run(['info', join(tmp, 'ex.gguf'), '--json']).stdout).tensors as { name: string; type: string }[];
    for (const part of ex.split(',')) {
      const [name, type] = part.split('=');
      const gguf = name === 'wte' ? 'token_embd.weight' : name.replace(/^h\.(\d+)\.mlp\.c_fc\.weight$/, 'blk.$1.ffn_up.weight');
      assert.is(types.find((t) => t.name === gguf)?.type, type.toUpperCase(), `${ex}: ${gguf}`);
      assert.is.not(type, 'f16', `${ex}: f16 is convert's default`);
    }
  }
  // lm_head on a tied model: the embedding, which the file also holds as output.weight
  const r = run(['convert', modelDir('gpt2-tiny'), '--keep', 'lm_head=q8_0', '--out', join(tmp, 'lm.gguf'), '--json']);
  assert.is(r.status, 0, r.stderr);
  const t = JSON.parse(run(['info', join(tmp, 'lm.gguf'), '--json']).stdout).tensors as { name: string; type: string }[];
  assert.is(t.find((x) => x.name === 'token_embd.weight')?.type, 'Q8_0');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
