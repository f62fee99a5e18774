// The gpt2-wasm command line: generate (streamed), info, classify. Errors print one line naming the problem
// and exit with a code per error kind; --verbose adds timings and tokens/s on stderr.
import { GPT2WasmError } from '../errors.js';
import { estimateWeightBytes, parseDTypeSpec, planWeights, resolvePlan, weightsFit, type DType, type DTypeSpec, type TensorGroup } from '../model/weights.js';
import { checkKVDType, type KVDType } from '../model/kv-cache.js';
import { GPT2LMHeadModel } from '../model/gpt2.js';
import { perplexity, type PerplexityProgress } from '../generation/perplexity.js';
import { TEXT_GENERATION_TASK } from '../generation/generate.js';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { pipeline, DEFAULT_MODEL } from '../generation/pipeline.js';
import { resolveSource } from '../io/resolve.js';
import { loadConfig, type GPT2Config } from '../io/config.js';
import { Backend, defaultThreads } from '../runtime/backend.js';
import { detectFeatures } from '../runtime/wasm.js';
import { createStreamingDecoder } from '../tokenizer/index.js';
import { HELP_OPTION, helpFor, inFlagTerms, MODEL_OPTIONS, modelLoadOptions, modelSourceOptions, parseArgs, type OptionSpec } from './args.js';
import { isTokenizerFile } from '../io/files.js';
import type { ModelSource } from '../io/source.js';
import { serve, serveSpecs } from '../server/cli.js';
import { isGGUFSource, type GGUFModelSource } from '../io/gguf-model.js';
import { save_gguf } from '../model/save-gguf.js';
import { enableRelaxedSimd } from './relaxed-simd.js';
import { processEscapes } from './escapes.js';

const VERSION = '0.1.0';
const EXIT: Record<string, number> = { OPTION: 2, INPUT: 3, CONFIG: 4, SAFETENSORS: 4, GGUF: 4, WEIGHTS: 4, TOKENIZER: 4, DOWNLOAD: 5, MEMORY: 6, RUNTIME: 7, DISPOSED: 7 };

const common: Record<string, OptionSpec> = {
  ...MODEL_OPTIONS,
  verbose: { type: 'boolean', alias: 'v', help: 'timings and tokens/s on stderr' },
  json: { type: 'boolean', help: 'print one JSON object instead of text' },
  help: HELP_OPTION,
};
const genSpecs: Record<string, OptionSpec> = {
  ...common,
  max_new_tokens: { type: 'int', alias: 'n', help: 'tokens to generate, at most (default: the model\'s generation config); end-of-text stops earlier' },
  temperature: { type: 'number', help: 'sampling temperature (samples; 0: greedy, as in llama.cpp)' },
  top_k: { type: 'int', help: 'sample from the k most likely tokens (samples; 0: off; default: the model\'s generation config, else 50 as in transformers)' },
  top_p: { type: 'number', help: 'nucleus sampling mass (samples)' },
  repetition_penalty: { type: 'number', help: 'penalty for repeated tokens (1: off; greedy or sampling)' },
  seed: { type: 'int', help: 'random seed for reproducible sampling (samples)' },
  greedy: { type: 'boolean', help: 'greedy decoding (do_sample false; no sampling flag with it)' },
  do_sample: { type: 'boolean', help: 'sample (without this or a sampling flag: as the model\'s config says; gpt2 samples)' },
  stop: { type: 'string', help: 'stop when this text is generated (the output ends with it)' },
  escape: { type: 'boolean', alias: 'e', help: 'process \\n \\r \\t \\\\ \\\' \\" \\xHH in the prompt and --stop (llama.cpp\'s -e)' },
  context_overflow: { type: 'string', help: 'error | slide when the context fills (default error)' },
};
// info loads nothing: --threads does not apply; --dtype and --kv-dtype size what a load with them would hold
const { threads: _threads, ...infoCommon } = common;
const infoSpecs: Record<string, OptionSpec> = {
  ...infoCommon,
  dtype: { type: 'string', help: 'also print the weights\' size under this dtype or plan (e.g. q4,wte=q8)' },
  kv_dtype: { type: 'string', help: 'KV cache size as fp32 | fp16 (default fp32)' },
  runtime: { type: 'boolean', help: 'print the picked wasm build and platform features' },
};
const convertSpecs: Record<string, OptionSpec> = {
  out: { type: 'string', alias: 'o', help: 'the .gguf file to write' },
  dtype: { type: 'string', help: 'type of the weight matrices: f32 | f16 | q8_0 | q4_0 (default f16)' },
  keep: { type: 'string', help: 'per-tensor types, e.g. wte=q8_0 or wte=q8_0,h.0.mlp.c_fc.weight=f32 (names: wte, lm_head, h.N... or blk.N...; on a tied model lm_head is wte, one tensor)' },
  name: { type: 'string', help: 'general.name to write (default: the source name)' },
  revision: MODEL_OPTIONS.revision,
  gguf_file: { type: 'string', help: 'with a Hub id or directory as SRC: the .gguf file in it to read' },
  verbose: common.verbose,
  json: common.json,
  help: common.help,
};
const classifySpecs: Record<string, OptionSpec> = { ...common, tokenizer: { type: 'string', help: 'directory (or Hub id) to read the tokenizer from, when the model has none' } };
/** Every flag of generate/info/classify, to word library messages in flags. */
const allSpecs = { ...genSpecs, ...infoSpecs, ...classifySpecs, ...convertSpecs };

const USAGE = `gpt2-wasm ${VERSION}: GPT-2 on WebAssembly SIMD, no native code

Usage:
  gpt2-wasm generate [PROMPT] [options]   generate text (prompt from the argument or stdin), streamed
  gpt2-wasm info [MODEL] [--runtime]      architecture, parameters, dtype and memory of a model
  gpt2-wasm classify TEXT --model DIR [--tokenizer DIR]  token or sequence classification with the model's head
  gpt2-wasm convert SRC --out F.gguf [--dtype f32|f16|q8_0|q4_0]  write a GGUF file llama.cpp can run
  gpt2-wasm perplexity FILE --model DIR   perplexity of a UTF-8 text (non-overlapping n_positions windows)
  gpt2-wasm serve [--model ID|DIR|F.gguf] [--port N]  OpenAI-compatible completions server (see serve --help)
  gpt2-wasm --version

Environment: HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_OFFLINE=1 as in huggingface_hub.`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function modelOpts(o: Record<string, any>, verbose: boolean) {
  let lastPct = -1;
  return {
    ...modelLoadOptions(o),
    progress_callback: verbose ? (p: any) => {
      if (p.status !== 'load' || !p.total) return;
      const pct = Math.floor(p.progress);
      if (pct !== lastPct && pct % 25 === 0) { lastPct = pct; process.stderr.write(`[gpt2-wasm] loading weights ${pct}%\n`); }
    } : undefined,
  };
}

/** The flags that only matter when sampling. */
const SAMPLING_FLAGS = ['temperature', 'top_k', 'top_p', 'seed'] as const;

/**
 * generate's do_sample from the flags, as llama.cpp reads them: a sampling flag (--temperature, --top-k, --top-p,
 * --seed) samples, whatever the model's config says; --temperature 0 is greedy, as --greedy is; --do-sample samples;
 * none of them: undefined (the model's config decides). Flags that contradict each other are refused.
 */
export function samplingMode(o: Record<string, any>): boolean | undefined {
  const flag = (k: string) => `--${k.replace(/_/g, '-')}`;
  const list = (ks: readonly string[]) => ks.map(flag).join(ks.length > 2 ? ', ' : ' and ');
  if (o.greedy && o.do_sample) throw new GPT2WasmError('OPTION', '--greedy and --do-sample contradict each other: give one of them');
  const given = SAMPLING_FLAGS.filter((k) => o[k] !== undefined);
  if (o.greedy && given.length) {
    throw new GPT2WasmError('OPTION', `--greedy contradicts ${list(given)}, which only ${given.length > 1 ? 'matter' : 'matters'} when sampling: drop --greedy to sample (a sampling flag samples), or drop ${list(given)} for greedy decoding`);
  }
  if (o.temperature === 0) {
    const others = given.filter((k) => k !== 'temperature');
    if (o.do_sample) throw new GPT2WasmError('OPTION', '--temperature 0 means greedy decoding (as in llama.cpp) and contradicts --do-sample: give a temperature above 0 to sample, or drop --do-sample');
    if (others.length) throw new GPT2WasmError('OPTION', `--temperature 0 means greedy decoding (as in llama.cpp), where ${list(others)} ${others.length > 1 ? 'do' : 'does'} nothing: give a temperature above 0 to sample, or drop ${list(others)}`);
    return false;
  }
  if (o.greedy) return false;
  if (o.do_sample || given.length) return true;
  return undefined;
}

async function cmdGenerate(argv: string[]) {
  const { opts: o, positionals } = parseArgs(argv, genSpecs, 'generate');
  if (o.help) { console.log(`gpt2-wasm generate [PROMPT] [options]\n\n${helpFor(genSpecs)}`); return; }
  // the CLI's own rules in its words: 0 is greedy here (the library's temperature must be positive), and --stop is one text
  if (o.temperature !== undefined && !(o.temperature >= 0)) throw new GPT2WasmError('OPTION', `--temperature must be 0 (greedy) or a positive number, got ${o.temperature}`);
  if (o.stop === '') throw new GPT2WasmError('OPTION', '--stop must not be empty: give the text to stop at, or leave --stop out');
  const do_sample = samplingMode(o);
  if (o.max_new_tokens !== undefined && o.max_new_tokens < 0) {
    const typed = [...argv].reverse().find((a) => a === '-n' || a.startsWith('--max-new-tokens')) === '-n' ? '-n' : '--max-new-tokens';
    throw new GPT2WasmError('OPTION', `${typed} ${o.max_new_tokens}: there is no "until the end" count (llama.cpp's -n -1); give the number of tokens, e.g. ${typed} 200: generation stops earlier at the end-of-text token anyway`);
  }
  let prompt = positionals.join(' ');
  if (positionals.length && !prompt) throw new GPT2WasmError('INPUT', 'the PROMPT argument is empty: give some text, or leave it out to read the prompt from stdin');
  if (!prompt && !process.stdin.isTTY) {
    prompt = (await readStdin()).replace(/\n$/, '');
    if (!prompt) throw new GPT2WasmError('INPUT', 'the prompt on stdin is empty: pipe some text, or pass PROMPT as an argument');
  }
  if (!prompt) prompt = 'Hello, my name is'; // an interactive run with no prompt: the README's example
  if (o.escape) {
    prompt = processEscapes(prompt, 'the prompt');
    if (o.stop !== undefined) o.stop = processEscapes(o.stop, '--stop');
  }
  const t0 = performance.now();
  const gen = await pipeline('text-generation', o.model ?? DEFAULT_MODEL, { ...modelOpts(o, !!o.verbose), gguf_file: o.gguf_file });
  if (o.verbose) process.stderr.write(`[gpt2-wasm] wasm build ${gen.model.backend.variant}${gen.model.backend.relaxedDot ? ' (relaxed Q4_0 tiles)' : ''}, ${gen.model.backend.threads} kernel thread(s)\n`);
  const tLoad = performance.now();
  try {
    const decoder = createStreamingDecoder(gen.tokenizer, { skip_special_tokens: true });
    let first = true, tFirst = 0, nNew = 0, text = '', cut = false;
    /** Appends s to the text and prints it; with --stop the text ends right after the stop string, as the
     *  pipeline's generated_text does (generation stops on the token that completes it; the rest of that token's
     *  text is not printed). */
    const emit = (s: string) => {
      if (cut) return;
      let next = text + s;
      if (o.stop) {
        const i = next.indexOf(o.stop, Math.max(0, text.length - o.stop.length + 1));
        if (i >= 0) { next = next.slice(0, i + o.stop.length); cut = true; }
      }
      if (!o.json) process.stdout.write(next.slice(text.length));
      text = next;
    };
    const streamer = {
      put(ids: number[][]) {
        // the prompt: generate() has checked every option by now, so a rejected command prints nothing on stdout
        if (first) { first = false; if (!o.json) process.stdout.write(prompt); return; }
        if (!tFirst) tFirst = performance.now();
        nNew++;
        emit(decoder.push(ids[0][0]));
      },
      end() { emit(decoder.flush()); if (!o.json) process.stdout.write('\n'); },
    };
    const out = await gen.model.generate({
      input_ids: [gen.tokenizer.encode(prompt)], streamer, tokenizer: gen.tokenizer,
      max_new_tokens: o.max_new_tokens, temperature: o.temperature === 0 ? undefined : o.temperature, top_k: o.top_k, top_p: o.top_p,
      repetition_penalty: o.repetition_penalty, seed: o.seed, do_sample,
      stop: o.stop, context_overflow: o.context_overflow, [TEXT_GENERATION_TASK]: true,
    } as any);
    const tEnd = performance.now();
    const ids = Array.from(out.data as BigInt64Array, Number);
    const decodeTps = nNew > 1 ? (nNew - 1) / ((tEnd - tFirst) / 1000) : 0;
    const stats = { load_ms: Math.round(tLoad - t0), time_to_first_token_ms: Math.round(tFirst - tLoad), new_tokens: nNew, decode_tokens_per_s: +decodeTps.toFixed(1), threads: gen.model.backend.threads, split_calls: gen.model.backend.dispatchCounts() ?? undefined, dtype: gen.model.dtype, wasm: gen.model.backend.variant };
    if (o.json) console.log(JSON.stringify({ prompt, generated_text: prompt + text, ids, ...stats }));
    if (o.verbose) process.stderr.write(`[gpt2-wasm] ${JSON.stringify(stats)}\n`);
  } finally { await gen.dispose(); }
}

async function cmdInfo(argv: string[]) {
  const { opts: o, positionals } = parseArgs(argv, infoSpecs, 'info');
  if (o.help) { console.log(`gpt2-wasm info [MODEL] [options]\n\n${helpFor(infoSpecs)}`); return; }
  if (positionals.length > 1) throw new GPT2WasmError('OPTION', `info takes one MODEL, got ${positionals.length}: ${positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  if (positionals.length === 1 && o.model !== undefined) throw new GPT2WasmError('OPTION', 'info takes the model as MODEL or as --model, not both');
  // what a load would hold (--dtype, --kv-dtype): checked before anything is read, for a GGUF file as for a directory
  const kvDType = checkKVDType(o.kv_dtype, '--kv-dtype');
  if (o.dtype !== undefined) resolvePlan(parseDTypeSpec(o.dtype));
  const f = detectFeatures();
  // whether the relaxed Q4_0 tiles run: each instance checks its engine's relaxed dot (a one-thread backend asks)
  let relaxedQ4 = false;
  if (f.relaxedSimd) { const b = await Backend.create({ threads: 1 }); relaxedQ4 = b.relaxedDot; b.dispose(); }
  const runtime = { wasm_build: f.variant, simd: f.simd, relaxed_simd: f.relaxedSimd, relaxed_q4_tiles: relaxedQ4, threads: f.threads, default_threads: f.threads ? await defaultThreads() : 1, platform: `node ${process.versions.node}` };
  if (o.runtime && !positionals[0] && !o.model) { console.log(o.json ? JSON.stringify(runtime) : Object.entries(runtime).map(([k, v]) => `${k}: ${v}`).join('\n')); return; }
  const id = positionals[0] ?? o.model ?? DEFAULT_MODEL;
  const src = await resolveSource(id, modelSourceOptions(o));
  const runtimeInfo = o.runtime ? { json: { runtime }, lines: Object.entries(runtime).map(([k, v]) => `${k}: ${v}`) } : { json: {}, lines: [] };
  if (isGGUFSource(src)) {
    // the file's header, then what a load would hold and --runtime, as for a directory; a GGUF file that is no gpt2
    // model (no config) still shows its header, unless --dtype or --kv-dtype asked for its sizes
    const cfg = await loadConfig(src).catch((e) => { if (o.dtype !== undefined || o.kv_dtype !== undefined) throw e; return null; });
    const sizes = cfg ? loadSizes(cfg, o.dtype === undefined ? null : { dtype: o.dtype, bytes: await ggufWeightBytes(src, cfg, parseDTypeSpec(o.dtype)) }, kvDType) : { json: {}, lines: [] };
    printGGUFInfo(src, !!o.json, { ...sizes.json, ...runtimeInfo.json }, [...sizes.lines, ...runtimeInfo.lines]);
    return;
  }
  const cfg = await loadConfig(src);
  const E = cfg.n_embd, I = cfg.n_inner, L = cfg.n_layer, V = cfg.vocab_size;
  const params = V * E + cfg.n_positions * E + L * (4 * E + 3 * E * E + 3 * E + E * E + E + E * I + I + I * E + E + (cfg.add_cross_attention ? 2 * E + 4 * E * E + 4 * E : 0)) + 2 * E;
  const mem = Object.fromEntries((['fp32', 'fp16', 'q8', 'q4'] as DType[]).map((d) => [d, estimateWeightBytes(cfg, d)]));
  const sizes = loadSizes(cfg, o.dtype === undefined ? null : { dtype: o.dtype, bytes: estimateWeightBytes(cfg, parseDTypeSpec(o.dtype)) }, kvDType);
  const info = {
    model: id, architecture: cfg.architectures?.[0] ?? 'GPT2LMHeadModel', n_layer: L, n_head: cfg.n_head, n_embd: E, n_inner: I, n_positions: cfg.n_positions, vocab_size: V,
    activation: cfg.activation_function, cross_attention: cfg.add_cross_attention, parameters: params,
    weights_bytes: mem, weights_fit: Object.fromEntries(Object.entries(mem).map(([d, b]) => [d, weightsFit(b)])),
    ...sizes.json, ...runtimeInfo.json,
  };
  if (o.json) { console.log(JSON.stringify(info)); return; }
  console.log([
    `model:          ${info.model}`,
    `architecture:   ${info.architecture}${cfg.add_cross_attention ? ' (+cross-attention)' : ''}`,
    `shape:          ${L} layers, ${cfg.n_head} heads, n_embd ${E}, n_inner ${I}, context ${cfg.n_positions}, vocab ${V}`,
    `parameters:     ${(params / 1e6).toFixed(1)} M`,
    `weights memory: fp32 ${mib(mem.fp32)}, fp16 ${mib(mem.fp16)}, q8 ${mib(mem.q8)}, q4 ${mib(mem.q4)}${fitNote(mem)}`,
    ...sizes.lines,
    ...runtimeInfo.lines,
  ].join('\n'));
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** What a load with --dtype (`planned`: its weights' bytes, when given) and --kv-dtype would hold, as info prints
 *  it for a directory and a GGUF file alike: JSON fields and text lines. */
function loadSizes(cfg: GPT2Config, planned: { dtype: string; bytes: number } | null, kvDType: KVDType) {
  const kv = 2 * cfg.n_layer * cfg.n_positions * cfg.n_embd * (kvDType === 'fp16' ? 2 : 4);
  return {
    json: { ...(planned ? { dtype: planned.dtype, dtype_weights_bytes: planned.bytes, dtype_weights_fit: weightsFit(planned.bytes) } : {}), kv_dtype: kvDType, kv_cache_bytes_per_sequence: kv },
    lines: [
      ...(planned ? [`with --dtype ${planned.dtype}: ${mib(planned.bytes)}${weightsFit(planned.bytes) ? '' : ' (does not fit wasm32 memory)'}`] : []),
      `KV cache:       ${mib(kv)} per sequence at full context (${kvDType})`,
    ],
  };
}

/** The weights' bytes a load of the GGUF file with `dtype` holds, by the loader's own plan ('auto' keeps the file's
 *  Q8_0 / Q4_0 blocks; an untied output.weight counts), not fit-checked: info reports what does not fit. */
async function ggufWeightBytes(src: GGUFModelSource, cfg: GPT2Config, dtype: DTypeSpec): Promise<number> {
  const reader = await src.openTensors();
  try { return planWeights(cfg, reader, 'lm', dtype, src.name, false).bytes; } finally { await reader.close(); }
}

/** Which dtypes' weights do not fit wasm32 memory, by the loader's own check (none: ''). */
function fitNote(mem: Record<string, number>): string {
  const out = Object.keys(mem).filter((d) => !weightsFit(mem[d]));
  if (!out.length) return '';
  return out.length === Object.keys(mem).length ? ' (no dtype fits wasm32 memory)' : ` (${out.join(', ')} ${out.length > 1 ? 'do' : 'does'} not fit wasm32 memory)`;
}

async function cmdClassify(argv: string[]) {
  const { opts: o, positionals } = parseArgs(argv, classifySpecs, 'classify');
  if (o.help) { console.log(`gpt2-wasm classify TEXT --model DIR [--tokenizer DIR] [options]\n\n${helpFor(classifySpecs)}`); return; }
  // no text at all is a usage error; an empty one (argument or stdin) is a bad input, as generate's empty prompt
  let text = positionals.join(' ');
  if (positionals.length && !text) throw new GPT2WasmError('INPUT', 'the TEXT argument is empty: give some text, or leave it out to read the text from stdin');
  if (!positionals.length) {
    if (process.stdin.isTTY) throw new GPT2WasmError('OPTION', 'classify needs a text (argument or stdin)');
    text = (await readStdin()).trim();
    if (!text) throw new GPT2WasmError('INPUT', 'the text on stdin is empty: pipe some text, or pass TEXT as an argument');
  }
  if (!o.model) throw new GPT2WasmError('OPTION', 'classify needs --model (a GPT2ForTokenClassification or GPT2ForSequenceClassification checkpoint)');
  let src = await resolveSource(o.model, { ...modelSourceOptions(o), tokenizer: !o.tokenizer });
  if (o.tokenizer) src = withTokenizerFrom(src, await resolveSource(o.tokenizer, { tokenizer: true }));
  const arch = (await loadConfig(src)).architectures?.[0];
  const task = arch === 'GPT2ForTokenClassification' ? 'token-classification' : arch === 'GPT2ForSequenceClassification' ? 'text-classification' : null;
  if (!task) throw new GPT2WasmError('CONFIG', `${o.model}: architecture ${arch} has no classification head`);
  const p: any = await pipeline(task as any, src, modelOpts(o, !!o.verbose));
  try {
    const out = await p(text, task === 'text-classification' ? { top_k: null } : {});
    console.log(o.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
  } finally { await p.dispose(); }
}

/** A GGUF file's header: version, metadata (long arrays summarized) and its tensors with their types; then `more`
 *  (JSON fields) or `moreLines` (text): what a load would hold, the runtime. */
function printGGUFInfo(src: GGUFModelSource, json: boolean, more: Record<string, unknown> = {}, moreLines: string[] = []) {
  const g = src.gguf;
  const summarize = (v: unknown): unknown => (Array.isArray(v) && v.length > 8 ? `[${v.length} items: ${v.slice(0, 3).map((x) => JSON.stringify(x)).join(', ')}, ...]` : typeof v === 'bigint' ? String(v) : v);
  const metadata = Object.fromEntries([...g.metadata].map(([k, e]) => [k, summarize(e.value)]));
  const types: Record<string, number> = {};
  for (const t of g.tensors.values()) types[t.typeName] = (types[t.typeName] ?? 0) + 1;
  const tensors = [...g.tensors.values()].map((t) => ({ name: t.name, type: t.typeName, dims: t.dims, bytes: t.byteLength }));
  if (json) { console.log(JSON.stringify({ file: g.name, gguf_version: g.version, alignment: g.alignment, size: g.size, tensor_types: types, metadata, tensors, ...more })); return; }
  console.log([
    `file:           ${g.name}`,
    `format:         GGUF v${g.version}, ${g.tensors.size} tensors, alignment ${g.alignment}, ${(g.size / 2 ** 20).toFixed(1)} MiB`,
    `tensor types:   ${Object.entries(types).map(([t, n]) => `${t} x${n}`).join(', ')}`,
    'metadata:',
    ...Object.entries(metadata).map(([k, v]) => `  ${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}`),
    'tensors:',
    ...tensors.map((t) => `  ${t.name.padEnd(28)} ${t.type.padEnd(5)} [${t.dims.join(', ')}]`),
    ...moreLines,
  ].join('\n'));
}

async function cmdConvert(argv: string[]): Promise<number> {
  const { opts: o, positionals } = parseArgs(argv, convertSpecs, 'convert');
  if (o.help) { console.log(`gpt2-wasm convert SRC --out FILE.gguf [options]\n\nSRC: a model directory, Hub id or .gguf file.\n\n${helpFor(convertSpecs)}`); return 0; }
  if (positionals.length !== 1) throw new GPT2WasmError('OPTION', 'convert needs exactly one SRC (a model directory, Hub id or .gguf file)');
  if (!o.out) throw new GPT2WasmError('OPTION', 'convert needs --out FILE.gguf');
  // a null-prototype map, so that a name like __proto__ is a key (and refused as no tensor) rather than lost
  const keep: Record<string, string> = Object.create(null);
  for (const part of String(o.keep ?? '').split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new GPT2WasmError('OPTION', `--keep takes NAME=TYPE pairs, got ${JSON.stringify(part)}`);
    const name = part.slice(0, eq);
    if (Object.hasOwn(keep, name)) throw new GPT2WasmError('OPTION', `--keep names ${JSON.stringify(name)} twice: ${name}=${keep[name]} and ${part}; give it once`);
    keep[name] = part.slice(eq + 1);
  }
  const t0 = performance.now();
  // Ctrl-C or SIGTERM stop the writing between bands and remove the partial file (save_gguf's signal); a source
  // still being resolved or downloaded (resumable) is left to the exit after a grace of 10 s, as is a second signal
  const ac = new AbortController();
  const stop = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(128 + osConstants.signals[sig]);
    ac.abort(sig);
    setTimeout(() => process.exit(128 + osConstants.signals[sig]), 10_000).unref();
  };
  const onInt = () => stop('SIGINT'), onTerm = () => stop('SIGTERM');
  process.on('SIGINT', onInt); process.on('SIGTERM', onTerm);
  let res;
  try {
    res = await save_gguf(positionals[0], o.out, {
      dtype: o.dtype, keep: keep as any, name: o.name, revision: o.revision, gguf_file: o.gguf_file, signal: ac.signal,
      onProgress: o.verbose ? (p) => process.stderr.write(`[gpt2-wasm] ${p.done}/${p.total} ${p.tensor} ${p.type}\n`) : undefined,
    });
  } catch (e) {
    if (ac.signal.aborted && e === ac.signal.reason) {
      process.stderr.write(`gpt2-wasm: convert stopped by ${e}: ${o.out} was not written\n`);
      return 128 + osConstants.signals[e as NodeJS.Signals];
    }
    // the library names its `path` argument "output path": here that is --out
    if (e instanceof GPT2WasmError && e.message.startsWith('output path ')) e.message = `--out ${e.message.slice('output path '.length)}`;
    throw e;
  } finally {
    process.off('SIGINT', onInt); process.off('SIGTERM', onTerm);
  }
  const types: Record<string, number> = {};
  for (const t of res.tensors) types[t.type] = (types[t.type] ?? 0) + 1;
  const summary = { out: res.path, bytes: res.bytes, tensors: res.tensors.length, tensor_types: types, seconds: +((performance.now() - t0) / 1000).toFixed(2) };
  console.log(o.json ? JSON.stringify(summary) : `wrote ${res.path}: ${(res.bytes / 2 ** 20).toFixed(1)} MiB, ${res.tensors.length} tensors (${Object.entries(types).map(([t, n]) => `${t} x${n}`).join(', ')})`);
  return 0;
}

const pplSpecs: Record<string, OptionSpec> = {
  ...common,
  window: { type: 'int', help: 'tokens per window (default n_positions)' },
};

/** Each command's flags (by option key), for the tests that check the llama.cpp hints name real flags. */
export const COMMAND_SPECS: Record<string, Record<string, OptionSpec>> = {
  generate: genSpecs, info: infoSpecs, classify: classifySpecs, convert: convertSpecs, perplexity: pplSpecs, serve: serveSpecs,
};

async function cmdPerplexity(argv: string[]) {
  const { opts: o, positionals } = parseArgs(argv, pplSpecs, 'perplexity');
  if (o.help) { console.log(`gpt2-wasm perplexity FILE --model DIR [options]\n\n${helpFor(pplSpecs)}`); return; }
  if (positionals.length !== 1) throw new GPT2WasmError('OPTION', 'perplexity needs exactly one FILE (a UTF-8 text)');
  let bytes: Uint8Array;
  try { bytes = readFileSync(positionals[0]); } catch (e) { throw new GPT2WasmError('INPUT', `cannot read ${positionals[0]}: ${(e as Error).message}`); }
  let text: string;
  // strictly UTF-8: a replacement character scored in place of bad bytes would be a perplexity of another text
  // (a BOM is kept as text, as the file's bytes are scored)
  try { text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes); } catch {
    throw new GPT2WasmError('INPUT', `${positionals[0]} is not valid UTF-8: bad byte sequence at byte offset ${firstInvalidUtf8(bytes)}`);
  }
  const id = o.model ?? DEFAULT_MODEL;
  // the model and its tokenizer as generate loads them (pipeline: --gguf-file, config.json named first)
  const { model, tokenizer } = await pipeline('text-generation', id, { ...modelOpts(o, !!o.verbose), gguf_file: o.gguf_file });
  try {
    const t0 = performance.now();
    // -v: llama-perplexity's running figure per window on stderr ("[1]281.3,[2]279.0,..."), a line at the end
    const onProgress = o.verbose
      ? (p: PerplexityProgress) => process.stderr.write(`${p.window === 1 ? '[gpt2-wasm] ' : ''}[${p.window}]${p.ppl.toFixed(4)}${p.window === p.windows ? '\n' : ','}`)
      : undefined;
    const r = await perplexity(model, tokenizer.encode(text), { window: o.window, onProgress });
    const seconds = (performance.now() - t0) / 1000, b = model.backend;
    // what ran: the weights' dtypes as loaded (not the flag: 'auto' resolved, q4's q8 embedding), the KV cache's, the wasm build
    const out = {
      ...r, model: id, file: positionals[0], dtype: loadedDType(model), dtype_requested: o.dtype ?? 'auto', kv_dtype: model.kv_dtype,
      wasm: b.variant, relaxed_q4_tiles: b.relaxedDot, threads: b.threads, seconds: +seconds.toFixed(2), tokens_per_s: +(r.tokens / seconds).toFixed(1),
    };
    if (o.json) console.log(JSON.stringify(out));
    else console.log(`perplexity ${r.ppl.toFixed(4)}${Number.isFinite(r.ppl_std_error) ? ` +/- ${r.ppl_std_error.toFixed(4)}` : ''} (nll_mean ${r.nll_mean.toFixed(6)} nats over ${r.predicted} predicted of ${r.tokens} tokens, ${r.windows} ${r.windows === 1 ? 'window' : 'windows'} of ${r.window}; dtype ${out.dtype}, kv ${out.kv_dtype}, wasm ${out.wasm}${b.relaxedDot ? ' (relaxed Q4_0 tiles)' : ''}, ${b.threads} thread${b.threads === 1 ? '' : 's'})`);
    if (o.verbose) process.stderr.write(`[gpt2-wasm] scored ${r.tokens} tokens in ${out.seconds} s: ${out.tokens_per_s} tokens/s\n`);
  } finally { await model.dispose(); }
}

/** The weights' dtypes as loaded, in --dtype's plan form: 'fp32', or 'q4,wte=q8' where a group of matrices the
 *  model has is held otherwise than its default (a tied LM head is wte; cross-attention only where configured). */
function loadedDType(model: GPT2LMHeadModel): string {
  const w = model.weights;
  const groups: TensorGroup[] = ['wte', ...(w.lm_head && w.lm_head !== w.wte ? ['lm_head' as const] : []), 'attn_qkv', 'attn_proj', 'mlp_fc', 'mlp_proj', ...(model.config.add_cross_attention ? ['cross_attn' as const] : [])];
  return [w.dtype, ...groups.filter((g) => w.plan[g] !== w.dtype).map((g) => `${g}=${w.plan[g]}`)].join(',');
}

/** Byte offset of the first invalid UTF-8 sequence (WHATWG: overlong forms, surrogates, > U+10FFFF and truncated
 *  sequences are invalid), or -1. */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    if (c < 0x80) { i++; continue; }
    let n: number, lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c === 0xe0) lo = 0xa0; if (c === 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c === 0xf0) lo = 0x90; if (c === 0xf4) hi = 0x8f; }
    else return i;
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      if (x === undefined || x < (k === 1 ? lo : 0x80) || x > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** The model's files with the tokenizer's files (vocab.json, merges.txt, tokenizer*.json, ...) read from `tok`. */
function withTokenizerFrom(model: ModelSource, tok: ModelSource): ModelSource {
  const pick = (f: string) => (isTokenizerFile(f) ? tok : model);
  return {
    name: model.name,
    describe: (f) => pick(f).describe(f),
    exists: (f) => pick(f).exists(f),
    readBytes: (f) => pick(f).readBytes(f),
    readText: (f) => pick(f).readText(f),
    readJson: (f) => pick(f).readJson(f),
    open: (f) => pick(f).open(f),
  };
}

/** Prints an error as the command was asked to answer: one line on stderr, or a JSON object on stdout with --json. */
function report(e: GPT2WasmError | Error, argv: string[]): void {
  const message = inFlagTerms(e.message, { ...allSpecs, ...pplSpecs });
  const code = e instanceof GPT2WasmError ? e.code : 'INTERNAL';
  if (argv.includes('--json')) console.log(JSON.stringify({ error: { code, message } }));
  else process.stderr.write(e instanceof GPT2WasmError ? `gpt2-wasm: ${message}\n` : `gpt2-wasm: internal error: ${(e as Error)?.stack ?? e}\n`);
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') { console.log(USAGE); return 0; }
    if (cmd === '--version' || cmd === '-V') { console.log(VERSION); return 0; }
    if (cmd === 'generate') await cmdGenerate(rest);
    else if (cmd === 'info') await cmdInfo(rest);
    else if (cmd === 'classify') await cmdClassify(rest);
    else if (cmd === 'convert') return await cmdConvert(rest);
    else if (cmd === 'perplexity') await cmdPerplexity(rest);
    else if (cmd === 'serve') await serve(rest);
    else throw new GPT2WasmError('OPTION', `unknown command '${cmd}' (generate, info, classify, convert, perplexity, serve)`);
    return 0;
  } catch (e) {
    report(e as Error, argv);
    return e instanceof GPT2WasmError ? EXIT[e.code] ?? 1 : 1;
  }
}

/** A reader that closed stdout early (`gpt2-wasm generate ... | head`) ends the command quietly, as a pipeline
 *  expects; any other failure to write the output is one line on stderr. Either way nothing more is computed. */
function onStdoutError(e: NodeJS.ErrnoException): void {
  if (e.code !== 'EPIPE') process.stderr.write(`gpt2-wasm: cannot write the output: ${e.code ?? e.message}\n`);
  process.exit(e.code === 'EPIPE' ? 0 : 1);
}

const isMain = typeof process !== 'undefined' && process.argv[1] && /(cli\.(js|ts)|main\.ts|gpt2-wasm)$/.test(process.argv[1]);
if (isMain) {
  process.stdout.on('error', onStdoutError);
  // the program, not main(): tests call main() in their own process
  enableRelaxedSimd().then(() => main(process.argv.slice(2))).then((code) => { process.exitCode = code; });
}
