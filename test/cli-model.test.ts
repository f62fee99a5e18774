// How the CLI's commands take a model: --model as a .gguf file or a directory holding GGUF files, --gguf-file NAME
// in every command that loads one, info's sizes on a GGUF file, and an empty directory named by its config.json.
// The built dist/cli.js in a child process, offline, on GGUF files converted from the fixture model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from './helpers/fixtures.js';
import { cli, cliEnv as env, run } from './helpers/cli.js';


// a llama.cpp-style folder: no config.json, two GGUF files of the fixture model
const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-cli-model-'));
const dir = join(tmp, 'd2');
mkdirSync(dir);
for (const [dtype, name] of [['q8_0', 'ours.q8_0.gguf'], ['f16', 'ours.f16.gguf']]) {
  const r = run(['convert', modelDir('gpt2-tiny'), '--dtype', dtype, '--out', join(dir, name)]);
  if (r.status !== 0) throw new Error(`convert --dtype ${dtype} failed: ${r.stderr}`);
}
const emptyDir = join(tmp, 'empty');
mkdirSync(emptyDir);
const text = join(tmp, 'text.txt');
writeFileSync(text, 'The quick brown fox jumps over the lazy dog. It was a sunny day, and the children played outside until dark.');

const greedy = ['--greedy', '-n', '12', '--threads', '1'];

test('generate -m DIR --gguf-file NAME prints what -m DIR/NAME prints (model and tokenizer of that file)', () => {
  for (const name of ['ours.f16.gguf', 'ours.q8_0.gguf']) {
    const byPath = run(['generate', 'Once upon a time', '-m', join(dir, name), ...greedy, '--json']);
    assert.is(byPath.status, 0, byPath.stderr);
    const byName = run(['generate', 'Once upon a time', '-m', dir, '--gguf-file', name, ...greedy, '--json']);
    assert.is(byName.status, 0, byName.stderr);
    const a = JSON.parse(byPath.stdout), b = JSON.parse(byName.stdout);
    assert.equal(b.ids, a.ids, name);
    assert.is(b.generated_text, a.generated_text, name);
    assert.is(b.dtype, a.dtype, name);
    // the streamed text too, with --gguf-file=NAME
    const streamed = run(['generate', 'Once upon a time', '-m', dir, `--gguf-file=${name}`, ...greedy]);
    assert.is(streamed.status, 0, streamed.stderr);
    assert.is(streamed.stdout, a.generated_text + '\n');
  }
  // the two files differ (q8_0 vs f16), so the flag does pick one
  const q8 = run(['generate', 'Once upon a time', '-m', dir, '--gguf-file', 'ours.q8_0.gguf', ...greedy, '--json']);
  assert.is(JSON.parse(q8.stdout).dtype, 'q8');
});

test('the two-GGUF directory error names --gguf-file, and both of its suggestions work as written', () => {
  const r = run(['generate', 'Hi', '-m', dir, ...greedy]);
  assert.is(r.status, 2, r.stderr);
  const m = /pass one file's path \(e\.g\. ("[^"]+")\), or the directory with --gguf-file: ("[^"]+")/.exec(r.stderr);
  assert.ok(m, r.stderr);
  const path = JSON.parse(m![1]), file = JSON.parse(m![2]);
  const byPath = run(['generate', 'Hi', '-m', path, ...greedy]);
  assert.is(byPath.status, 0, byPath.stderr);
  const byName = run(['generate', 'Hi', '-m', dir, '--gguf-file', file, ...greedy]);
  assert.is(byName.status, 0, byName.stderr);
  assert.is(byName.stdout, byPath.stdout);
  // llama.cpp's --hf-file is hinted at
  const hf = run(['generate', 'Hi', '-m', dir, '--hf-file', file]);
  assert.is(hf.status, 2);
  assert.match(hf.stderr, /unknown option --hf-file: .*--gguf-file/);
  // a name that is no .gguf file, and one not in the directory
  const bad = run(['generate', 'Hi', '-m', dir, '--gguf-file', 'ours.bin']);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /--gguf-file must be the name of a \.gguf file, got "ours\.bin"/);
  const missing = run(['generate', 'Hi', '-m', dir, '--gguf-file', 'nope.gguf']);
  assert.is(missing.status, 4);
  assert.match(missing.stderr, /nope\.gguf: file not found/);
});

test('info, perplexity and classify take --gguf-file, as the file path', () => {
  const file = join(dir, 'ours.q8_0.gguf');
  const a = run(['info', file, '--json']), b = run(['info', dir, '--gguf-file', 'ours.q8_0.gguf', '--json']);
  assert.is(a.status, 0, a.stderr); assert.is(b.status, 0, b.stderr);
  assert.equal(JSON.parse(b.stdout), JSON.parse(a.stdout));
  const c = run(['info', '--model', dir, '--gguf-file', 'ours.q8_0.gguf', '--json']);
  assert.is(c.status, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout), JSON.parse(a.stdout));
  const p = run(['perplexity', text, '-m', file, '--json', '-t', '1']), q = run(['perplexity', text, '-m', dir, '--gguf-file', 'ours.q8_0.gguf', '--json', '-t', '1']);
  assert.is(p.status, 0, p.stderr); assert.is(q.status, 0, q.stderr);
  const pj = JSON.parse(p.stdout), qj = JSON.parse(q.stdout);
  assert.is(qj.ppl, pj.ppl); assert.is(qj.tokens, pj.tokens); assert.is(qj.dtype, pj.dtype);
  // classify reads the file (a GGUF holds an LM head, so it has no classification head), not "unknown option"
  const k = run(['classify', 'hello', '-m', dir, '--gguf-file', 'ours.q8_0.gguf']);
  assert.is(k.status, 4, k.stderr);
  assert.match(k.stderr, /architecture GPT2LMHeadModel has no classification head/);
});

test('serve takes --gguf-file: it loads that file and answers as with the file path', async () => {
  const want = run(['generate', 'Hello', '-m', join(dir, 'ours.f16.gguf'), '--greedy', '-n', '6', '--json', '-t', '1']);
  assert.is(want.status, 0, want.stderr);
  const child = spawn(process.execPath, [cli, 'serve', '-m', dir, '--gguf-file', 'ours.f16.gguf', '--port', '0', '--threads', '1', '--quiet'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const poll = setInterval(() => {
        const m = /listening on (http:\/\/\S+)/.exec(stderr);
        if (m) { clearInterval(poll); resolve(m[1].replace(/\/$/, '')); }
      }, 20);
      exited.then((code) => { clearInterval(poll); reject(new Error(`serve exited with ${code} before listening:\n${stderr}`)); });
    });
    const models = await (await fetch(`${url}/v1/models`)).json() as any;
    assert.is(models.data[0].id, 'd2');
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hello', max_tokens: 6, temperature: 0 }) });
    assert.is(res.status, 200);
    const body = await res.json() as any;
    assert.is('Hello' + body.choices[0].text, JSON.parse(want.stdout).generated_text);
    child.kill('SIGTERM');
    assert.is(await exited, 0, stderr);
  } finally {
    clearTimeout(kill);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('info on a GGUF file checks --dtype and --kv-dtype as on a directory (exit 2, naming the flag)', () => {
  const file = join(dir, 'ours.q8_0.gguf');
  for (const src of [[file], [dir, '--gguf-file', 'ours.q8_0.gguf'], [modelDir('gpt2-tiny')]]) {
    let r = run(['info', ...src, '--dtype', 'q5']);
    assert.is(r.status, 2, `${src}: ${r.stderr}`);
    assert.match(r.stderr, /--dtype must be 'auto', 'fp32', 'fp16', 'q8' or 'q4', got "q5"/);
    assert.is(r.stdout, '', 'nothing printed before the error');
    r = run(['info', ...src, '--dtype', 'q4,wte=q5']);
    assert.is(r.status, 2, `${src}: ${r.stderr}`);
    assert.match(r.stderr, /wte/);
    r = run(['info', ...src, '--kv-dtype', 'bf16']);
    assert.is(r.status, 2, `${src}: ${r.stderr}`);
    assert.match(r.stderr, /--kv-dtype must be 'fp32' or 'fp16', got "bf16"/);
  }
});

test('info on a GGUF file prints the --dtype size, KV cache and --runtime lines a directory prints', () => {
  const tail = (out: string) => out.slice(out.indexOf('\nwith --dtype ') + 1).trimEnd().split('\n');
  const args = ['--dtype', 'q4', '--kv-dtype', 'fp16', '--runtime'];
  const d = run(['info', modelDir('gpt2-tiny'), ...args]);
  assert.is(d.status, 0, d.stderr);
  for (const name of ['ours.f16.gguf', 'ours.q8_0.gguf']) {
    const g = run(['info', join(dir, name), ...args]);
    assert.is(g.status, 0, g.stderr);
    assert.match(g.stdout, /^file: .*\nformat: +GGUF v3/); // the header first, as before
    assert.match(g.stdout, /\ntensors:\n/);
    // the same model at q4: the same weights size, KV cache and runtime lines as the directory's
    assert.equal(tail(g.stdout), tail(d.stdout), name);
    assert.match(g.stdout, /\nKV cache: +[\d.]+ MiB per sequence at full context \(fp16\)\nwasm_build: /);
    const j = JSON.parse(run(['info', join(dir, name), ...args, '--json']).stdout);
    const dj = JSON.parse(run(['info', modelDir('gpt2-tiny'), ...args, '--json']).stdout);
    for (const k of ['dtype', 'dtype_weights_bytes', 'dtype_weights_fit', 'kv_dtype', 'kv_cache_bytes_per_sequence', 'runtime']) assert.equal(j[k], dj[k], `${name}: ${k}`);
    assert.ok(j.tensors.length > 0 && j.metadata['general.architecture'] === 'gpt2');
  }
  // without the flags: the KV cache line at fp32 (as a directory prints it), no runtime lines
  const plain = run(['info', join(dir, 'ours.q8_0.gguf')]);
  assert.is(plain.status, 0, plain.stderr);
  assert.match(plain.stdout, /\nKV cache: +[\d.]+ MiB per sequence at full context \(fp32\)$/m);
  assert.not.match(plain.stdout, /wasm_build|with --dtype/);
  // --dtype auto on a Q8_0 file is its load: q8 blocks as stored, well below the f16 file's
  const size = (name: string) => JSON.parse(run(['info', join(dir, name), '--dtype', 'auto', '--json']).stdout).dtype_weights_bytes;
  assert.ok(size('ours.q8_0.gguf') < 0.7 * size('ours.f16.gguf'), `${size('ours.q8_0.gguf')} vs ${size('ours.f16.gguf')}`);
});

test('generate, perplexity and serve on an empty directory name its config.json, as info does', () => {
  for (const args of [['info', emptyDir], ['generate', 'Hi', '-m', emptyDir], ['perplexity', text, '-m', emptyDir], ['serve', '-m', emptyDir, '--port', '0']]) {
    const r = run(args);
    assert.is(r.status, 4, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /empty[\\/]config\.json: file not found/, args[0]);
    assert.not.match(r.stderr, /vocab\.json/, args[0]);
  }
});

test.run();
