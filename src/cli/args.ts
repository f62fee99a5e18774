// A small argument parser: `--name value`, `--name=value`, boolean `--flag`, positionals. Unknown options
// are errors that list what is known, so a typo never silently changes behaviour.
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from '../generation/pipeline.js';
import { parseDTypeSpec } from '../model/weights.js';

export interface OptionSpec { type: 'string' | 'number' | 'int' | 'boolean'; help: string; alias?: string }

/** The options every command that loads a model takes. */
export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', alias: 'm', help: `Hub id, local directory or .gguf file (default ${DEFAULT_MODEL})` },
  revision: { type: 'string', help: 'Hub revision (branch, tag or commit)' },
  gguf_file: { type: 'string', help: 'with a Hub id or directory as the model: the .gguf file in it to load' },
  dtype: { type: 'string', help: 'weights in memory: auto | fp32 | fp16 | q8 | q4, or a plan like q4,wte=q8 (default auto)' },
  kv_dtype: { type: 'string', help: 'KV cache in memory: fp32 | fp16 (default fp32; fp16 halves it)' },
  threads: { type: 'int', alias: 't', help: 'kernel threads (default: all cores, at most 16)' },
};

/** The --help flag every command takes. */
export const HELP_OPTION: OptionSpec = { type: 'boolean', alias: 'h', help: 'show this help' };

/** from_pretrained's options from the MODEL_OPTIONS flags, as every command that loads a model reads them
 *  (for a source already resolved with modelSourceOptions: --gguf-file has picked the file there). */
export function modelLoadOptions(o: Record<string, any>) {
  return { dtype: o.dtype === undefined ? undefined : parseDTypeSpec(o.dtype), kv_dtype: o.kv_dtype, threads: o.threads, revision: o.revision };
}

/** resolveSource's options from the MODEL_OPTIONS flags: where the model is (--revision, --gguf-file). */
export function modelSourceOptions(o: Record<string, any>) {
  return { revision: o.revision, gguf_file: o.gguf_file };
}

/** `command`: the command these are the flags of (generate, serve, ...), which picks its own llama.cpp hints. */
export function parseArgs(argv: string[], specs: Record<string, OptionSpec>, command?: string): { opts: Record<string, any>; positionals: string[] } {
  const opts: Record<string, any> = {};
  const positionals: string[] = [];
  const byAlias = new Map(Object.entries(specs).filter(([, s]) => s.alias).map(([k, s]) => [s.alias!, k]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-') { positionals.push(a); continue; }
    let name: string, value: string | undefined;
    if (a.startsWith('--')) { const eq = a.indexOf('='); name = eq > 0 ? a.slice(2, eq) : a.slice(2); value = eq > 0 ? a.slice(eq + 1) : undefined; }
    else { name = byAlias.get(a.slice(1)) ?? a.slice(1); }
    const key = name.replace(/-/g, '_');
    const spec = specs[key];
    if (!spec) {
      // a llama.cpp flag: what to do here, rather than a near miss among ours
      const typed = a.startsWith('--') && a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
      const llama = llamaCppHint(typed, command);
      throw new OptionError(`unknown option ${a}${llama ? `: ${llama.text}` : didYouMean(key, Object.keys(specs))} (see --help)`);
    }
    // the flag as documented (dashes), after the alias the user typed: "-n (--max-new-tokens)"
    const flag = `--${key.replace(/_/g, '-')}`, shown = a.startsWith('--') ? flag : `${a} (${flag})`;
    if (spec.type === 'boolean') {
      if (value !== undefined && !['true', 'false'].includes(value)) throw new OptionError(`${shown} takes no value`);
      opts[key] = value !== 'false';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new OptionError(`${shown} needs a value`);
      value = argv[++i];
    }
    if (spec.type === 'string') opts[key] = value;
    else {
      // decimal only: Number() would also read '0x10', '1e2' or '0b1' as integers the user did not write
      const n = Number(value);
      const syntax = spec.type === 'int' ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
      if (!syntax.test(value) || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) throw new OptionError(`${shown} must be ${spec.type === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`);
      opts[key] = n;
    }
  }
  return { opts, positionals };
}

/** A llama.cpp flag gpt2-wasm spells otherwise or lacks: what to do here (`text`, added to the unknown-option
 *  error), and the flags of ours it names (`uses`: [command, option key]; test/cli.test.ts checks that each
 *  exists in that command, that no flag hinted for every command is one any command accepts, and that no flag
 *  hinted for one command is one that command accepts, so a hint never hides a flag). */
export interface LlamaCppHint { text: string; uses: [command: string, key: string][] }

const SAMPLERS = 'the samplers here are temperature, top-k and top-p, with a repetition penalty (generate --temperature, --top-k, --top-p, --repetition-penalty)';
/** serve samples as each request asks (POST /v1/completions): its fields, not flags. */
const REQUEST_SAMPLERS = 'serve samples as each request asks: its temperature, top_k, top_p and repetition_penalty fields';
/** llama.cpp's samplers there are none of here, by their proper names. */
const UNSUPPORTED_SAMPLERS: [name: string, flags: string[]][] = [
  ['min-p', ['--min-p']], ['locally typical', ['--typical']], ['Mirostat', ['--mirostat', '--mirostat-lr', '--mirostat-ent']],
  ['DRY', ['--dry-multiplier', '--dry-base', '--dry-allowed-length', '--dry-penalty-last-n', '--dry-sequence-breaker']],
  ['XTC', ['--xtc-probability', '--xtc-threshold']], ['dynamic temperature', ['--dynatemp-range', '--dynatemp-exp']], ['top-nσ', ['--top-nsigma', '--top-n-sigma']],
];
const hint = (text: string, ...uses: [string, string][]): LlamaCppHint => ({ text, uses });
const same = (flags: string[], h: LlamaCppHint) => Object.fromEntries(flags.map((f) => [f, h]));

/** llama-cli, llama-perplexity, llama-server and convert_hf_to_gguf.py flags, by how they are typed. A key
 *  "COMMAND FLAG" is that command's own hint for FLAG, looked up before FLAG's (llamaCppHint): serve's -s is a
 *  request's seed field, not generate --seed; generate's --keep is llama.cpp's n_keep, where convert has a --keep. */
export const LLAMA_CPP_HINTS: Record<string, LlamaCppHint> = {
  ...same(['-p', '--prompt'], hint('the prompt is generate\'s argument: gpt2-wasm generate "TEXT" (or pipe it on stdin)')),
  ...same(['-f', '--file'], hint('generate reads a prompt file on stdin (gpt2-wasm generate < FILE); perplexity takes the text file as its argument (gpt2-wasm perplexity FILE)')),
  ...same(['-c', '--ctx-size'], hint('GPT-2\'s context is fixed by the model (n_positions, shown by gpt2-wasm info); generate refuses a prompt plus -n longer than that, or with --context-overflow slide keeps generating on the last tokens; perplexity --window N sets the tokens per window (at most n_positions)', ['generate', 'context_overflow'], ['perplexity', 'window'])),
  '-s': hint('llama.cpp\'s seed is generate --seed N', ['generate', 'seed']),
  '--temp': hint('llama.cpp\'s --temp is generate --temperature T (0 is greedy, as in llama.cpp)', ['generate', 'temperature']),
  '--n-predict': hint('the number of tokens to generate is generate -n N (--max-new-tokens N); a server request\'s max_tokens is capped by serve --max-tokens', ['generate', 'max_new_tokens'], ['serve', 'max_tokens']),
  '--repeat-penalty': hint('llama.cpp\'s --repeat-penalty is generate --repetition-penalty R (transformers\' penalty, over the whole context)', ['generate', 'repetition_penalty']),
  '--repeat-last-n': hint('there is no penalty window: generate --repetition-penalty R penalizes every token of the context', ['generate', 'repetition_penalty']),
  ...same(['-r', '--reverse-prompt'], hint('llama.cpp\'s reverse prompt is generate --stop TEXT (generation stops once TEXT is generated)', ['generate', 'stop'])),
  ...Object.fromEntries(UNSUPPORTED_SAMPLERS.flatMap(([name, flags]) => flags.flatMap((f) => [
    [f, hint(`${name} sampling is not supported; ${SAMPLERS}`, ['generate', 'temperature'], ['generate', 'top_k'], ['generate', 'top_p'], ['generate', 'repetition_penalty'])],
    [`serve ${f}`, hint(`${name} sampling is not supported; ${REQUEST_SAMPLERS}`)],
  ]))),
  ...same(['-ngl', '--n-gpu-layers', '--gpu-layers'], hint('there is no GPU offload: gpt2-wasm runs on the CPU in WebAssembly (SIMD; --threads N sets the kernel threads)', ['generate', 'threads'])),
  '--no-warmup': hint('there is no warmup run to skip'),
  ...same(['-tb', '--threads-batch'], hint('one thread count serves prompt and generation: --threads N (-t N)', ['generate', 'threads'], ['serve', 'threads'])),
  ...same(['-np', '--parallel'], hint('serve decodes up to --max-concurrency N sequences together (default 8)', ['serve', 'max_concurrency'])),
  ...same(['-cb', '--cont-batching'], hint('serve always batches continuously; --max-concurrency N caps the sequences decoded together', ['serve', 'max_concurrency'])),
  ...same(['-ctk', '--cache-type-k', '-ctv', '--cache-type-v'], hint('the KV cache type is --kv-dtype fp32|fp16 (keys and values together)', ['generate', 'kv_dtype'], ['perplexity', 'kv_dtype'], ['serve', 'kv_dtype'])),
  ...same(['-hf', '--hf-repo'], hint('--model takes a Hub id (--model openai-community/gpt2), a local directory or a .gguf file', ['generate', 'model'], ['serve', 'model'])),
  ...same(['-hff', '--hf-file'], hint('llama.cpp\'s -hf REPO --hf-file FILE is --model REPO --gguf-file FILE (--gguf-file also picks a .gguf file in a local directory)', ['generate', 'model'], ['generate', 'gguf_file'], ['serve', 'gguf_file'])),
  ...same(['-a', '--alias'], hint('the name clients send as "model" is serve --model-name NAME', ['serve', 'model_name'])),
  ...same(['-i', '--interactive', '-cnv', '--conversation'], hint('there is no interactive or chat mode: generate continues one prompt; serve answers many')),
  '--outtype': hint('convert_hf_to_gguf.py\'s --outtype is convert --dtype f32|f16|q8_0|q4_0', ['convert', 'dtype']),
  '--outfile': hint('convert_hf_to_gguf.py\'s --outfile is convert --out FILE.gguf', ['convert', 'out']),
  ...same(['-to', '--timeout'], hint('llama-server\'s --timeout (seconds) is serve --request-timeout-ms MS (milliseconds, queueing included)', ['serve', 'request_timeout_ms'])),
  '--metrics': hint('serve always answers GET /metrics (Prometheus text format): there is nothing to turn on'),
  '--no-escape': hint('escapes are off unless asked for: generate -e (--escape) processes them in the prompt and --stop', ['generate', 'escape']),
  // each command's own: what the flag means there
  'generate --keep': hint('there is no n_keep (tokens kept at the start on a context shift): generate --context-overflow slide goes on generating when the context fills, on its last n_positions / 2 tokens (the prompt\'s start slides out too)', ['generate', 'context_overflow']),
  ...same(['serve -s', 'serve --seed'], hint('a request\'s seed is its "seed" field (POST /v1/completions; left out: a random seed)')),
  ...same(['serve --temp', 'serve --temperature'], hint('the temperature is a request\'s "temperature" field (0 is greedy, as in llama.cpp)')),
  ...same(['serve --top-k', 'serve --top-p', 'serve --repeat-penalty', 'serve --repetition-penalty'], hint(REQUEST_SAMPLERS)),
  ...same(['serve -n', 'serve --n-predict'], hint('llama-server\'s -n is a request\'s default n_predict: here a request gives max_tokens (default 16), at most serve --max-tokens N (default 256)', ['serve', 'max_tokens'])),
  ...same(['perplexity -s', 'perplexity --seed'], hint('perplexity does not sample: its result is the same on every run, with no seed')),
  ...same(['perplexity --temp', 'perplexity --temperature', 'perplexity --top-k', 'perplexity --top-p', 'perplexity --repeat-penalty'],
    hint('perplexity scores the text with the model\'s own distribution (log-softmax of the logits): no sampler applies')),
  'serve --keep': hint('there is no n_keep (tokens kept on a context shift): a request whose prompt plus max_tokens exceeds the context (n_positions) gets a 400'),
  '--ppl-stride': hint('there is no strided mode: perplexity scores non-overlapping windows of --window N tokens (default n_positions), every token but the first of each window', ['perplexity', 'window']),
};

/** The llama.cpp hint for a flag as typed (`-s`, `--temp`) in `command`: the command's own, else the flag's. */
export function llamaCppHint(typed: string, command?: string): LlamaCppHint | undefined {
  const own = `${command} ${typed}`;
  if (command !== undefined && Object.hasOwn(LLAMA_CPP_HINTS, own)) return LLAMA_CPP_HINTS[own];
  return Object.hasOwn(LLAMA_CPP_HINTS, typed) ? LLAMA_CPP_HINTS[typed] : undefined;
}

/** " (did you mean --max-new-tokens?)" for a flag within two edits (or a prefix) of a known one; "" otherwise. */
export function didYouMean(key: string, known: string[]): string {
  let best = '', bestD = 3;
  for (const k of known) {
    const d = k.startsWith(key) && key.length >= 3 ? 1 : editDistance(key, k);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best ? ` (did you mean --${best.replace(/_/g, '-')}?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Library phrases that name an option their own way, in flags (for a command with the option `key`): perplexity()'s
 *  window, save_gguf's keep entries, and the dtype option's values and plan objects as the flag spells them. */
const LIBRARY_PHRASES: [key: string, re: RegExp, to: string | ((...m: string[]) => string)][] = [
  ['window', /(^|: |\. )perplexity window must/g, '$1--window must'],
  ['keep', /(^|: |\. )keep\.(\S+) must be /g, '$1--keep $2: its type must be '],
  ['keep', /(^|: |\. )keep: /g, '$1--keep: '],
  // "the plan { default: 'q4', wte: 'q8' }" → "--dtype default=q4,wte=q8"; "dtype 'q4'" → "--dtype q4"
  ['dtype', /the plan \{ ([^}]*) \}/g, (_, items: string) => `--dtype ${items.split(/,\s*/).map((i) => i.replace(/^(\w+): '([^']*)'$/, '$1=$2')).join(',')}`],
  ['dtype', /(^|; |\(|with )dtype '(\w+)'/g, '$1--dtype $2'],
];

/**
 * A library message in the CLI's words: option names become the flags that set them ("context_overflow: 'slide'"
 * → "--context-overflow slide", "max_new_tokens" → "--max-new-tokens"). Only names with an underscore, or a
 * one-word name that starts a "NAME must ..." sentence, are rewritten, so ordinary words stay as they are.
 */
export function inFlagTerms(message: string, specs: Record<string, OptionSpec>): string {
  // parseArgs's own message is in the CLI's words already: its llama.cpp hint may name a request's fields (top_k)
  if (message.startsWith('unknown option ')) return message;
  let m = message;
  for (const [key, re, to] of LIBRARY_PHRASES) if (Object.hasOwn(specs, key)) m = m.replace(re, to as any);
  for (const key of Object.keys(specs)) {
    const flag = `--${key.replace(/_/g, '-')}`;
    const esc = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    m = m.replace(new RegExp(`(?<![-\\w])${esc}: '([^']*)'`, 'g'), `${flag} $1`);
    if (key.includes('_')) m = m.replace(new RegExp(`(?<![-\\w])${esc}(?!\\w)`, 'g'), flag);
    else m = m.replace(new RegExp(`(^|: |\\. )${esc} must`, 'g'), `$1${flag} must`);
  }
  return m;
}

export function helpFor(specs: Record<string, OptionSpec>): string {
  return Object.entries(specs).map(([k, s]) => {
    const flag = `--${k.replace(/_/g, '-')}${s.type === 'boolean' ? '' : ` <${s.type === 'string' ? 'value' : 'n'}>`}${s.alias ? `, -${s.alias}` : ''}`;
    return `  ${flag.padEnd(34)} ${s.help}`;
  }).join('\n');
}
