// GPT-2 model and generation configs: parse the Hugging Face JSON, apply transformers' GPT2Config defaults,
// and reject anything this runtime cannot run with a ConfigError that names the file, the field and the value.
import { ConfigError } from '../errors.js';
import { rangeProblem } from '../generation/logits-process.js';
import type { ModelSource } from './source.js';

/** Activation ids understood by the kernels. */
export const ACT = { none: 0, gelu_tanh: 1, gelu_erf: 2, relu: 3 } as const;
export type ActivationId = (typeof ACT)[keyof typeof ACT];

/** activation_function values we accept, and the kernel each maps to. */
export const SUPPORTED_ACTIVATIONS: Readonly<Record<string, ActivationId>> = Object.freeze({
  gelu_new: ACT.gelu_tanh,
  gelu_pytorch_tanh: ACT.gelu_tanh,
  gelu: ACT.gelu_erf,
  relu: ACT.relu,
});

/** Field names follow transformers' GPT2Config; every default is already applied. */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** Inner MLP width; `null` in the JSON resolves to 4 * n_embd. */
  n_inner: number;
  activation_function: string;
  layer_norm_epsilon: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
  add_cross_attention: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  /** The first end-of-sequence id (a config may list several; all are in eos_token_ids). */
  eos_token_id: number | null;
  eos_token_ids: number[];
  pad_token_id: number | null;
  num_labels: number;
  id2label: Record<number, string>;
  label2id: Record<string, number>;
  architectures: string[] | null;
  problem_type: string | null;
  torch_dtype: string | null;
  task_specific_params: Record<string, unknown> | null;
}

const MAX_INT = 0x7fffffff;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v);
  try { const s = JSON.stringify(v); return s === undefined ? String(v) : s.length > 80 ? s.slice(0, 77) + '...' : s; } catch { return String(v); }
};

class Reader {
  constructor(readonly o: Obj, readonly source: string) {}
  fail(key: string, expected: string, got: unknown): never {
    throw new ConfigError(`${this.source}: "${key}" must be ${expected}, got ${show(got)}`);
  }
  has(key: string): boolean { return this.o[key] !== undefined; }
  int(key: string, dflt: number, min = 1): number {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_INT) {
      this.fail(key, min === 1 ? 'a positive integer' : `an integer >= ${min}`, v);
    }
    return v;
  }
  optInt(key: string, dflt: number | null, min = 0): number | null {
    const v = this.o[key];
    if (v === undefined || v === null) return v === null ? null : dflt;
    return this.int(key, 0, min);
  }
  num(key: string, dflt: number, check: (x: number) => boolean, expected: string): number {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) this.fail(key, expected, v);
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') this.fail(key, 'true or false', v);
    return v;
  }
  str(key: string, dflt: string): string {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'string') this.fail(key, 'a string', v);
    return v;
  }
  optStr(key: string): string | null {
    const v = this.o[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.fail(key, 'a string or null', v);
    return v;
  }
  /** An id, or a list of ids (eos_token_id may be either in newer configs). */
  ids(key: string, dflt: number[]): number[] {
    const v = this.o[key];
    if (v === undefined) return dflt;
    if (v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const x of list) {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > MAX_INT) {
        this.fail(key, 'a non-negative integer token id, a list of them, or null', v);
      }
    }
    return list as number[];
  }
}

/**
 * Validate a parsed config.json and return a GPT2Config with transformers' defaults applied.
 * `source` names the file in error messages.
 */
export function parseGPT2Config(json: unknown, source = 'config.json'): GPT2Config {
  if (!isObj(json)) throw new ConfigError(`${source}: expected a JSON object, got ${Array.isArray(json) ? 'an array' : show(json)}`);
  const r: Reader = new Reader(json, source);

  if (json.model_type !== undefined && json.model_type !== 'gpt2') {
    throw new ConfigError(`${source}: model_type is ${show(json.model_type)}, but this runtime only runs "gpt2" models`);
  }

  const vocab_size = r.int('vocab_size', 50257);
  const n_positions = r.int('n_positions', 1024);
  const n_embd = r.int('n_embd', 768);
  const n_layer = r.int('n_layer', 12);
  const n_head = r.int('n_head', 12);
  if (n_embd % n_head !== 0) {
    throw new ConfigError(`${source}: n_embd (${n_embd}) must be divisible by n_head (${n_head}); ${n_embd} / ${n_head} = ${n_embd / n_head}`);
  }
  const innerRaw = json.n_inner;
  const n_inner = innerRaw === undefined || innerRaw === null ? 4 * n_embd : r.int('n_inner', 0);
  if (n_inner > MAX_INT) throw new ConfigError(`${source}: the default n_inner (4 * n_embd = ${n_inner}) is too large`);

  const activation_function = r.str('activation_function', 'gelu_new');
  if (!Object.prototype.hasOwnProperty.call(SUPPORTED_ACTIVATIONS, activation_function)) {
    throw new ConfigError(
      `${source}: activation_function ${show(activation_function)} is not supported; supported: ${Object.keys(SUPPORTED_ACTIVATIONS).join(', ')}`,
    );
  }
  const layer_norm_epsilon = r.num('layer_norm_epsilon', 1e-5, (x) => x > 0, 'a positive number');

  const bos = r.ids('bos_token_id', [50256]);
  if (bos.length > 1) r.fail('bos_token_id', 'a single token id or null', json.bos_token_id);
  const eos_token_ids = r.ids('eos_token_id', [50256]);
  const pad_token_id = r.optInt('pad_token_id', null, 0);

  // Labels, as PretrainedConfig resolves them: id2label wins; otherwise num_labels (default 2) makes LABEL_i.
  // Those defaults are made on first read (lazyProperty): num_labels is only checked to be below 2^31, a model
  // without a classification head never reads them, and making them at parse time hung the load (3 * 10^6 labels
  // took 10 s, 10^7 minutes; 2^31 - 1 runs out of memory).
  let id2label: Record<number, string> | null = null;
  let num_labels: number;
  const rawId2label = json.id2label;
  if (rawId2label !== undefined && rawId2label !== null) {
    if (!isObj(rawId2label)) r.fail('id2label', 'an object mapping "0".."n-1" to label names', rawId2label);
    id2label = {};
    const keys = Object.keys(rawId2label);
    for (const k of keys) {
      const label = rawId2label[k];
      if (!/^(0|[1-9][0-9]*)$/.test(k) || Number(k) >= keys.length) {
        throw new ConfigError(`${source}: id2label keys must be the integers 0..${keys.length - 1}, got key ${show(k)}`);
      }
      if (typeof label !== 'string') throw new ConfigError(`${source}: id2label[${k}] must be a string, got ${show(label)}`);
      id2label[Number(k)] = label;
    }
    num_labels = keys.length;
  } else {
    num_labels = r.int('num_labels', 2);
  }
  let label2id: Record<string, number> | null = null;
  const rawLabel2id = json.label2id;
  if (rawLabel2id !== undefined && rawLabel2id !== null) {
    if (!isObj(rawLabel2id)) r.fail('label2id', 'an object mapping label names to ids', rawLabel2id);
    label2id = {};
    for (const [k, v] of Object.entries(rawLabel2id)) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw new ConfigError(`${source}: label2id[${show(k)}] must be a non-negative integer, got ${show(v)}`);
      }
      label2id[k] = v;
    }
  } else if (id2label) {
    label2id = {};
    for (const [i, l] of Object.entries(id2label)) label2id[l] = Number(i);
  }

  let architectures: string[] | null = null;
  if (json.architectures !== undefined && json.architectures !== null) {
    const a = json.architectures;
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'string')) r.fail('architectures', 'a list of strings', a);
    architectures = [...(a as string[])];
  }
  let task_specific_params: Record<string, unknown> | null = null;
  const tsp = json.task_specific_params;
  if (tsp !== undefined && tsp !== null) {
    if (!isObj(tsp)) r.fail('task_specific_params', 'an object', tsp);
    task_specific_params = tsp;
  }

  const cfg: GPT2Config = {
    model_type: 'gpt2',
    vocab_size,
    n_positions,
    n_embd,
    n_layer,
    n_head,
    n_inner,
    activation_function,
    layer_norm_epsilon,
    scale_attn_weights: r.bool('scale_attn_weights', true),
    scale_attn_by_inverse_layer_idx: r.bool('scale_attn_by_inverse_layer_idx', false),
    reorder_and_upcast_attn: r.bool('reorder_and_upcast_attn', false),
    add_cross_attention: r.bool('add_cross_attention', false),
    tie_word_embeddings: r.bool('tie_word_embeddings', true),
    bos_token_id: bos.length ? bos[0] : null,
    eos_token_id: eos_token_ids.length ? eos_token_ids[0] : null,
    eos_token_ids,
    pad_token_id,
    num_labels,
    id2label: id2label ?? {},
    label2id: label2id ?? {},
    architectures,
    problem_type: r.optStr('problem_type'),
    torch_dtype: r.optStr('torch_dtype') ?? r.optStr('dtype'),
    task_specific_params,
  };
  if (!id2label) lazyProperty(cfg, 'id2label', () => defaultLabels(num_labels));
  if (!label2id) lazyProperty(cfg, 'label2id', () => Object.fromEntries(Object.entries(defaultLabels(num_labels)).map(([i, l]) => [l, Number(i)])));
  return cfg;
}

/** transformers' default labels: LABEL_0 .. LABEL_{n-1}. */
function defaultLabels(n: number): Record<number, string> {
  const out: Record<number, string> = {};
  for (let i = 0; i < n; i++) out[i] = `LABEL_${i}`;
  return out;
}

/** obj[key] as make() computes it on first read; from then on (or once assigned) a plain data property. */
function lazyProperty<T extends object, K extends keyof T>(obj: T, key: K, make: () => T[K]): void {
  const settle = (value: T[K]) => { Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true }); return value; };
  Object.defineProperty(obj, key, { get: () => settle(make()), set: settle, enumerable: true, configurable: true });
}

/** The kernel activation id for a parsed config. */
export function activationId(cfg: Pick<GPT2Config, 'activation_function'>): ActivationId {
  if (!Object.prototype.hasOwnProperty.call(SUPPORTED_ACTIVATIONS, cfg.activation_function)) {
    throw new ConfigError(
      `activation_function ${show(cfg.activation_function)} is not supported; supported: ${Object.keys(SUPPORTED_ACTIVATIONS).join(', ')}`,
    );
  }
  return SUPPORTED_ACTIVATIONS[cfg.activation_function];
}

/** Known fields of generation_config.json; others are dropped. */
export interface GenerationConfig {
  max_length?: number;
  max_new_tokens?: number | null;
  min_length?: number;
  min_new_tokens?: number | null;
  do_sample?: boolean;
  early_stopping?: boolean | 'never';
  num_beams?: number;
  num_return_sequences?: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number | null;
  typical_p?: number;
  epsilon_cutoff?: number;
  eta_cutoff?: number;
  repetition_penalty?: number;
  length_penalty?: number;
  no_repeat_ngram_size?: number;
  bad_words_ids?: number[][] | null;
  suppress_tokens?: number[] | null;
  begin_suppress_tokens?: number[] | null;
  renormalize_logits?: boolean;
  use_cache?: boolean;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  decoder_start_token_id?: number | null;
  forced_bos_token_id?: number | null;
  forced_eos_token_id?: number | number[] | null;
  transformers_version?: string;
}

type Kind = 'int' | 'num' | 'bool' | 'str' | 'id' | 'ids' | 'idlist' | 'idlists' | 'early';
const GEN_FIELDS: Record<keyof GenerationConfig, { kind: Kind; nullable?: boolean }> = {
  max_length: { kind: 'int' },
  max_new_tokens: { kind: 'int', nullable: true },
  min_length: { kind: 'int' },
  min_new_tokens: { kind: 'int', nullable: true },
  do_sample: { kind: 'bool' },
  early_stopping: { kind: 'early' },
  num_beams: { kind: 'int' },
  num_return_sequences: { kind: 'int' },
  temperature: { kind: 'num' },
  top_k: { kind: 'int' },
  top_p: { kind: 'num' },
  min_p: { kind: 'num', nullable: true },
  typical_p: { kind: 'num' },
  epsilon_cutoff: { kind: 'num' },
  eta_cutoff: { kind: 'num' },
  repetition_penalty: { kind: 'num' },
  length_penalty: { kind: 'num' },
  no_repeat_ngram_size: { kind: 'int' },
  bad_words_ids: { kind: 'idlists', nullable: true },
  suppress_tokens: { kind: 'idlist', nullable: true },
  begin_suppress_tokens: { kind: 'idlist', nullable: true },
  renormalize_logits: { kind: 'bool' },
  use_cache: { kind: 'bool' },
  bos_token_id: { kind: 'id', nullable: true },
  eos_token_id: { kind: 'ids', nullable: true },
  pad_token_id: { kind: 'id', nullable: true },
  decoder_start_token_id: { kind: 'id', nullable: true },
  forced_bos_token_id: { kind: 'id', nullable: true },
  forced_eos_token_id: { kind: 'ids', nullable: true },
  transformers_version: { kind: 'str' },
};

const isId = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= MAX_INT;

/** Typed passthrough of generation_config.json: known fields are type-checked and copied, unknown ones dropped.
 *  `vocab_size` (config.json's) bounds the token ids of the lists generate() takes. */
export function parseGenerationConfig(json: unknown, source = 'generation_config.json', vocab_size = MAX_INT + 1): GenerationConfig {
  if (!isObj(json)) throw new ConfigError(`${source}: expected a JSON object, got ${Array.isArray(json) ? 'an array' : show(json)}`);
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(GEN_FIELDS)) {
    const v = json[key];
    if (v === undefined) continue;
    if (v === null) {
      if (!spec.nullable) throw new ConfigError(`${source}: "${key}" must not be null`);
      out[key] = null;
      continue;
    }
    let ok: boolean, expected: string;
    switch (spec.kind) {
      case 'int': ok = typeof v === 'number' && Number.isInteger(v) && v >= 0; expected = 'a non-negative integer'; break;
      case 'num': ok = typeof v === 'number' && Number.isFinite(v); expected = 'a finite number'; break;
      case 'bool': ok = typeof v === 'boolean'; expected = 'true or false'; break;
      case 'str': ok = typeof v === 'string'; expected = 'a string'; break;
      case 'early': ok = typeof v === 'boolean' || v === 'never'; expected = 'true, false or "never"'; break;
      case 'id': ok = isId(v); expected = 'a token id'; break;
      case 'ids': ok = isId(v) || (Array.isArray(v) && v.every(isId)); expected = 'a token id or a list of token ids'; break;
      case 'idlist': ok = Array.isArray(v) && v.every(isId); expected = 'a list of token ids'; break;
      case 'idlists': ok = Array.isArray(v) && v.every((l) => Array.isArray(l) && l.every(isId)); expected = 'a list of lists of token ids'; break;
    }
    if (!ok) throw new ConfigError(`${source}: "${key}" must be ${expected}, got ${show(v)}`);
    out[key] = Array.isArray(v) ? JSON.parse(JSON.stringify(v)) : v;
  }
  // generate()'s ranges for the settings it checks whether or not it samples: a value out of them is an error now,
  // naming this file, not an OptionError from every generate() that does not override it (temperature, top_k and
  // top_p count only when sampling: generate() checks them then, naming this file as their source)
  for (const key of ['repetition_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'bad_words_ids']) {
    const problem = out[key] == null ? null : rangeProblem(key, out[key], vocab_size);
    if (problem) throw new ConfigError(`${source}: ${problem}`);
  }
  return out as GenerationConfig;
}

/** Read and validate config.json from a model source. */
export async function loadConfig(source: ModelSource): Promise<GPT2Config> {
  const json = await source.readJson('config.json');
  return parseGPT2Config(json, source.describe('config.json'));
}

/** Read generation_config.json if the model has one; null when absent. `vocab_size`: as parseGenerationConfig. */
export async function loadGenerationConfig(source: ModelSource, vocab_size?: number): Promise<GenerationConfig | null> {
  if (!(await source.exists('generation_config.json'))) return null;
  const json = await source.readJson('generation_config.json');
  return parseGenerationConfig(json, source.describe('generation_config.json'), vocab_size);
}
