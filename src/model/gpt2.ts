// The public model classes, named as in transformers.js: from_pretrained() loads a Hugging Face checkpoint
// into a Backend's memory; forward() takes HF inputs and returns HF outputs as Tensors.
import { ConfigError, InputError, OptionError, RuntimeError, WeightsError } from '../errors.js';
import { checkBoolean, checkKnownKeys, shown } from '../options.js';
import { loadConfig, loadGenerationConfig, type GenerationConfig, type GPT2Config } from '../io/config.js';
import { openTensorReader } from '../io/gguf-model.js';
import { dirSource, type ModelSource } from '../io/source.js';
import { resolveSource, withGGUFFile, type SourceOptions } from '../io/resolve.js';
import { Backend, checkThreads, type BackendOptions } from '../runtime/backend.js';
import { RESERVED_LOW_BYTES } from '../runtime/wasm.js';
import { generate, type GenerateOptions } from '../generation/generate.js';
import { checkCache, runBatch, runStep, setEncoder, type BatchResult } from './forward.js';
import { ModelState } from './state.js';
import { planWorkspace, unionNeed, type WorkspaceNeed, type WorkspaceShape } from './workspace.js';
import { f32Tensor, toEncoder, toHeadMask, toIds, toMask, toPast, toPositions } from './inputs.js';
import { KVCache, checkKVDType, type KVDType } from './kv-cache.js';
import { PastKeyValues, ResidentPast, writePast, type PastKeyValue } from './past-key-values.js';
import { Tensor } from './tensor.js';
import { loadWeights, planWeights, stagingBytes, type DType, type DTypeSpec, type HeadKind, type ModelWeights, type PlannedWeights } from './weights.js';

export interface PretrainedOptions extends BackendOptions, SourceOptions {
  /** Run dtype of the weight matrices: 'auto' (the checkpoint's: F16 stays fp16, else fp32), 'fp32', 'fp16', 'q8', 'q4'
   *  (4-bit with the embedding / LM head at q8), or a per-tensor plan such as { default: 'q4', wte: 'q8' }. */
  dtype?: DTypeSpec;
  /** Prompt chunk size for the blockwise prefill (tokens per pass). */
  prefill_chunk?: number;
  /** transformers.js's option: 'cpu' or 'wasm' (both mean this runtime's wasm kernels); anything else is an error. */
  device?: 'cpu' | 'wasm';
  /** Element type of the KV caches this model creates: 'fp32' (default) or 'fp16' (half the memory). */
  kv_dtype?: KVDType;
  /** Resolves a model id to a ModelSource (default: resolveSource, the Hub cache on Node, HTTP elsewhere). */
  resolve?: (idOrDir: string, opts: PretrainedOptions) => Promise<ModelSource>;
}

export type { PastKeyValue };

export interface DecodeEntry {
  /** A batch-1 cache holding this sequence so far. */
  cache: KVCache;
  /** The token to append. */
  id: number;
  /** Its position id. */
  pos: number;
}

export interface ForwardInputs {
  input_ids: unknown;
  attention_mask?: unknown;
  position_ids?: unknown;
  past_key_values?: unknown;
  head_mask?: unknown;
  encoder_hidden_states?: unknown;
  encoder_attention_mask?: unknown;
  output_attentions?: boolean;
  output_hidden_states?: boolean;
  use_cache?: boolean;
  /** Keep logits only for the last N positions (0 = all), as transformers' logits_to_keep. */
  logits_to_keep?: number;
}

export interface ModelOutput {
  logits?: Tensor;
  last_hidden_state: Tensor;
  hidden_states?: Tensor[];
  attentions?: Tensor[];
  cross_attentions?: Tensor[];
  /** Lives in the model's wasm memory until read; pass it back to extend it in place (see past-key-values.ts). */
  past_key_values?: PastKeyValues;
}

export const DEFAULT_PREFILL_CHUNK = 128;

/** forward()'s inputs: any other key (a typo such as output_attention, or transformers' token_type_ids,
 *  inputs_embeds or labels, which this runtime does not take) is an error, never silently ignored. */
const FORWARD_KEYS = new Set(['input_ids', 'attention_mask', 'position_ids', 'past_key_values', 'head_mask', 'encoder_hidden_states',
  'encoder_attention_mask', 'output_attentions', 'output_hidden_states', 'use_cache', 'logits_to_keep']);

/** A model id, directory path or URL (through the resolver), or a ModelSource as it is. */
async function resolveModelSource(idOrDir: string | ModelSource, opts: PretrainedOptions): Promise<ModelSource> {
  if (typeof idOrDir === 'string') return (opts.resolve ?? resolveSource)(idOrDir, opts);
  if (idOrDir && typeof (idOrDir as ModelSource).open === 'function') return withGGUFFile(idOrDir, opts.gguf_file);
  throw new OptionError('from_pretrained needs a model id, a directory path or a ModelSource');
}

/** Whether every value is finite: one pass, v - v is NaN for ±Infinity and NaN. */
function allFinite(a: Float32Array): boolean {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] - a[i];
  return s === 0;
}

export interface GPT2PreTrainedModel {
  /** model(inputs) is model.forward(inputs), as transformers.js models are called. */
  (inputs: ForwardInputs): Promise<ModelOutput>;
}

export class GPT2PreTrainedModel {
  static readonly head: HeadKind = 'none';
  declare readonly config: GPT2Config;
  declare readonly generation_config: GenerationConfig | null;
  declare readonly backend: Backend;
  declare readonly weights: ModelWeights;
  declare readonly source: ModelSource;
  declare readonly dtype: DType;
  declare prefill_chunk: number;
  /** Element type of the KV caches createCache() makes by default (the kv_dtype option). */
  declare kv_dtype: KVDType;
  /** What the forward driver needs of this model (config, kernels and memory, weights, activation, workspace). */
  declare readonly state: ModelState;
  /** The KV cache behind the past_key_values that forward() returns. */
  private declare readonly past: ResidentPast;

  constructor(config: GPT2Config, generation: GenerationConfig | null, backend: Backend, weights: ModelWeights, source: ModelSource, prefillChunk: number) {
    // callable as transformers.js models are: model(inputs) is model.forward(inputs); the instance is that function
    // (the tokenizer does the same), so no field here has an initializer: it would land on the discarded `this`
    const self = ((inputs: ForwardInputs) => self.forward(inputs)) as unknown as GPT2PreTrainedModel;
    Object.setPrototypeOf(self, new.target.prototype);
    for (const k of ['name', 'length']) delete (self as any)[k]; // a function's own name and length: not a model's
    Object.assign(self, {
      config, generation_config: generation, backend, weights, source, dtype: weights.dtype, prefill_chunk: prefillChunk, kv_dtype: 'fp32',
      state: new ModelState(config, backend, weights),
      past: new ResidentPast((batch, capacity) => self.createCache(batch, capacity), config.n_positions),
    });
    return self;
  }

  get head(): HeadKind { return (this.constructor as typeof GPT2PreTrainedModel).head; }

  static async from_pretrained<T extends typeof GPT2PreTrainedModel>(this: T, idOrDir: string | ModelSource, opts: PretrainedOptions = {}): Promise<InstanceType<T>> {
    checkOptions(opts);
    const source = await resolveModelSource(idOrDir, opts);
    const config = await loadConfig(source);
    const generation = await loadGenerationConfig(source, config.vocab_size); // null when absent; a malformed file is an error naming it
    const head = this.head;
    if ((head === 'token-classification' || head === 'sequence-classification') && config.num_labels < 1) throw new ConfigError(`${source.describe('config.json')}: num_labels must be >= 1 for ${this.name}`);
    const st = await openTensorReader(source);
    let backend: Backend | null = null;
    try {
      const plan = planWeights(config, st, head, opts.dtype ?? 'auto', st.name);
      // the peak of a load is the weights plus the first call's workspace (the KV cache is sized per call)
      // (the floats of matrices quantized on load are staged within the workspace's room: it is placed afterwards)
      const workspace = planWorkspace(workspaceShape(config, plan, opts.threads ?? 1), callNeed(config, head, opts.prefill_chunk ?? DEFAULT_PREFILL_CHUNK, 1, config.n_positions)).bytes;
      const initialBytes = RESERVED_LOW_BYTES + plan.bytes + Math.max(workspace, stagingBytes(plan, workspace));
      backend = await Backend.create({ ...opts, initialBytes: Math.max(opts.initialBytes ?? 0, initialBytes) });
      const weights = await loadWeights(config, st, plan, backend, (loaded, total) =>
        opts.progress_callback?.({ status: 'load', file: st.name, loaded, total, progress: total ? (100 * loaded) / total : 100 }), workspace);
      await st.close(); // every file is read: its 'done' comes before 'ready' (closing again below is harmless)
      opts.progress_callback?.({ status: 'ready' });
      const model = new (this as any)(config, generation, backend, weights, source, opts.prefill_chunk ?? DEFAULT_PREFILL_CHUNK);
      model.kv_dtype = checkKVDType(opts.kv_dtype);
      return model;
    } catch (e) {
      backend?.dispose();
      throw e;
    } finally {
      await st.close();
    }
  }

  get disposed(): boolean { return this.state.disposed; }
  protected check(): void { this.state.check(); }

  /** A KV cache for `batch` rows of up to `capacity` tokens of kv_dtype elements, in this model's memory. */
  createCache(batch = 1, capacity = this.config.n_positions, kv_dtype: KVDType = this.kv_dtype): KVCache {
    this.check();
    return new KVCache(this.backend, { layers: this.config.n_layer, heads: this.config.n_head, headDim: this.config.n_embd / this.config.n_head }, batch, capacity, checkKVDType(kv_dtype));
  }


  /** Per batch row, the new tokens whose head outputs forward() returns; null for no head. */
  protected headTokens(_ids: Int32Array, B: number, T: number, keep: number): ArrayLike<number>[] | null {
    if (this.head === 'none') return null;
    const from = keep > 0 ? Math.max(0, T - keep) : 0;
    const tokens = Int32Array.from({ length: T - from }, (_, i) => from + i);
    return Array.from({ length: B }, () => tokens);
  }

  async forward(inputs: ForwardInputs): Promise<ModelOutput> {
    this.check();
    if (!inputs || typeof inputs !== 'object') throw new InputError('forward() takes an object of inputs, e.g. { input_ids }');
    checkKnownKeys(inputs, FORWARD_KEYS, 'forward() input');
    const cfg = this.config;
    // boolean flags are true or false (undefined/null: the default), never a truthy string: use_cache: 'no' would be on
    const outputAttentions = checkBoolean(inputs.output_attentions, 'output_attentions', false);
    const outputHiddenStates = checkBoolean(inputs.output_hidden_states, 'output_hidden_states', false);
    const wantCache = checkBoolean(inputs.use_cache, 'use_cache', true);
    const { ids, B, T } = toIds(inputs.input_ids, cfg);
    const useCache = wantCache && this.head !== 'token-classification' && this.head !== 'sequence-classification';
    // a past of this model's resident cache is extended in place; any other (or any past without use_cache) is copied in
    const resident = useCache ? this.past.viewOf(inputs.past_key_values) : null;
    if (resident && resident.batch !== B) throw new InputError(`past_key_values holds ${resident.batch} batch rows, input_ids ${B}`);
    const plain = inputs.past_key_values != null && !resident ? toPast(inputs.past_key_values, cfg, B) : null;
    const P = resident?.length ?? plain?.P ?? 0;
    // without a mask every slot is visible (the resident cache may hold an older call's padding)
    const mask = inputs.attention_mask != null ? toMask(inputs.attention_mask, B, P + T, 'attention_mask') : new Float32Array(B * (P + T)).fill(1);
    const positions = inputs.position_ids != null ? toPositions(inputs.position_ids, B, T, cfg) : null;
    if (!positions && P + T > cfg.n_positions) throw new InputError(`context too long: ${P + T} tokens (${P} past + ${T} new) but the model has n_positions = ${cfg.n_positions}`);
    const headMask = inputs.head_mask != null ? toHeadMask(inputs.head_mask, cfg) : null;
    const encoder = toEncoder(inputs.encoder_hidden_states, inputs.encoder_attention_mask, B, cfg);
    const keep = inputs.logits_to_keep ?? 0;
    if (!Number.isInteger(keep) || keep < 0) throw new OptionError(`logits_to_keep must be a non-negative integer, got ${shown(keep)}`);

    const cache = useCache ? this.past.acquire(resident, B, P + T) : this.createCache(B, P + T);
    try {
      if (plain) writePast(cache, plain);
      setEncoder(this.state, cache, encoder, this.prefill_chunk);
      const headTokens = this.headTokens(ids, B, T, keep);
      const res = runBatch(this.state, cache, {
        ids, B, T, attentionMask: mask, positionIds: positions, headMask, headTokens, head: headTokens ? this.headMatrix() : null,
        chunk: this.prefill_chunk, outputAttentions, outputHiddenStates, wantLastHidden: true,
      });
      const out = this.outputs(res, B, T, P + T, headTokens);
      // the weights are finite (checked on load) and so are the inputs; finite values large enough to overflow f32
      // on the way (head_mask 1e38, huge encoder states or past K/V, a checkpoint with weights near 3e38) would
      // otherwise come back as ±Infinity or NaN: an error naming what the caller gave, else the weights
      const bad = !allFinite(out.last_hidden_state.data as Float32Array) ? 'hidden states' : out.logits && !allFinite(out.logits.data as Float32Array) ? 'logits' : null;
      if (bad) {
        const given = (['head_mask', 'encoder_hidden_states', 'past_key_values'] as const).filter((k) => inputs[k] != null);
        const what = `the forward pass overflowed f32 (its ${bad} hold ±Infinity or NaN)`;
        if (given.length) throw new InputError(`${what}: some values of ${given.join(', ')} are too large, or the weights of ${this.source.name} are`);
        throw new WeightsError(`${what}: the weights of ${this.source.name} hold values too large for f32 arithmetic (finite, but extreme)`);
      }
      if (useCache) out.past_key_values = this.past.publish(cache);
      return out;
    } finally {
      if (!useCache) cache.dispose();
    }
  }

  protected headMatrix(): { w: ModelWeights['wte']; b: number } | null {
    if (this.head === 'lm') return { w: this.weights.lm_head!, b: 0 };
    if (this.head === 'token-classification' || this.head === 'sequence-classification') return this.weights.classifier ? { w: this.weights.classifier.w, b: this.weights.classifier.b } : null;
    return null;
  }

  protected outputs(res: BatchResult, B: number, T: number, S: number, headTokens: ArrayLike<number>[] | null): ModelOutput {
    const cfg = this.config, E = cfg.n_embd, H = cfg.n_head;
    const out: ModelOutput = { last_hidden_state: f32Tensor(res.lastHidden!, [B, T, E]) };
    const hw = this.headMatrix();
    if (headTokens && hw) {
      out.logits = this.head === 'sequence-classification' ? f32Tensor(res.head, [B, hw.w.N]) : f32Tensor(res.head, [B, headTokens[0].length, hw.w.N]);
    }
    if (res.hiddenStates) out.hidden_states = res.hiddenStates.map((h) => f32Tensor(h, [B, T, E]));
    if (res.attentions) out.attentions = res.attentions.map((a) => f32Tensor(a, [B, H, T, S]));
    if (res.crossAttentions) out.cross_attentions = res.crossAttentions.map((a) => f32Tensor(a, [B, H, T, a.length / (B * H * T)]));
    return out;
  }

  /** The workspace need of decode steps of up to `batch` sequences and prefills (one chunk) into caches of up to `capacity` slots. */
  workspaceNeed(batch: number, capacity: number): WorkspaceNeed {
    return callNeed(this.config, this.head, this.prefill_chunk, batch, capacity, this.headMatrix()?.w.N ?? 0);
  }

  /** Bytes of the workspace for workspaceNeed(batch, capacity), without allocating (for planning memory ahead). */
  workspaceBytes(batch: number, capacity: number): number { return planWorkspace(this.state.shape, this.workspaceNeed(batch, capacity)).bytes; }

  /** Places that workspace now and keeps it, so such calls never allocate; returns the bytes held. */
  reserveWorkspace(batch: number, capacity: number): number { this.check(); return this.state.reserve(this.workspaceNeed(batch, capacity)); }

  /** Gives the model's workspace and the cache behind returned past_key_values back to the arena (layers of those
   *  past_key_values not read yet then throw DISPOSED), so the memory can serve other regions; the next call
   *  places them again. wasm memory itself never shrinks. */
  releaseMemory(): void {
    this.check();
    this.past.dispose();
    this.state.releaseWorkspace();
  }

  /** Bytes of wasm memory in use (weights, caches, workspaces) and committed. */
  memoryUsage(): { weights: number; inUse: number; committed: number } {
    const u = this.backend.arena.usage();
    return { weights: this.weights.bytes, inUse: u.total, committed: u.committed };
  }

  /** Frees everything: the workspace, the cache behind returned past_key_values, the thread pool. A generate()
   *  running meanwhile stops at its next step with DISPOSED. Caches from createCache() stay the caller's. A model
   *  dropped without dispose() has its worker threads stopped when the garbage collector takes it (and no cache of
   *  it is left); dispose() does it at once. */
  async dispose(): Promise<void> {
    if (this.state.disposed) return;
    this.past.dispose();
    this.state.dispose();
    this.backend.dispose();
  }
}

/** Outputs per row of a head: the vocabulary for the LM head, the labels for a classifier, none without a head. */
const headOutputs = (cfg: GPT2Config, head: HeadKind) => head === 'lm' ? cfg.vocab_size : head === 'none' ? 0 : cfg.num_labels;

/** The workspace need of decode steps of up to `batch` sequences and prefills (chunks of `chunk` tokens) into caches of up to `capacity` slots. */
function callNeed(cfg: GPT2Config, head: HeadKind, chunk: number, batch: number, capacity: number, headN = headOutputs(cfg, head)): WorkspaceNeed {
  const base = { S: capacity, headN, cross: false, probs: false, headMask: false };
  return unionNeed({ ...base, rows: batch, tokens: 1, headRows: headN ? batch : 0 }, { ...base, rows: chunk, tokens: chunk, headRows: headN ? 1 : 0 });
}

/** The workspace shape of a model about to be loaded with `plan` (ModelState's, known before the weights are). */
function workspaceShape(cfg: GPT2Config, plan: PlannedWeights, threads: number): WorkspaceShape {
  return { E: cfg.n_embd, H: cfg.n_head, I: cfg.n_inner, L: cfg.n_layer, threads, q8: Object.values(plan.plan).some((d) => d === 'q8' || d === 'q4') };
}

function checkOptions(opts: PretrainedOptions) {
  const known = new Set(['dtype', 'threads', 'kernels', 'variant', 'wasmModule', 'initialBytes', 'revision', 'cache_dir', 'local_files_only', 'progress_callback', 'prefill_chunk', 'resolve', 'token', 'endpoint', 'device', 'kv_dtype', 'gguf_file', 'browser_cache', 'dispatch']);
  checkKnownKeys(opts, known, 'from_pretrained option');
  if (opts.prefill_chunk !== undefined && (!Number.isInteger(opts.prefill_chunk) || opts.prefill_chunk < 1)) throw new OptionError(`prefill_chunk must be a positive integer, got ${shown(opts.prefill_chunk)}`);
  // checked here too (Backend.create does as well): the memory plan uses them before the backend exists
  checkThreads(opts.threads);
  if (opts.initialBytes !== undefined && (typeof opts.initialBytes !== 'number' || !Number.isInteger(opts.initialBytes) || opts.initialBytes < 0)) {
    throw new OptionError(`initialBytes must be a non-negative integer, got ${shown(opts.initialBytes)}`);
  }
  checkKVDType(opts.kv_dtype);
  if (opts.device !== undefined && !['cpu', 'wasm'].includes(opts.device)) throw new OptionError(`device must be 'cpu' or 'wasm' (gpt2-wasm runs on the CPU), got ${JSON.stringify(opts.device)}`);
}

export class GPT2Model extends GPT2PreTrainedModel { static override readonly head: HeadKind = 'none'; }
export class GPT2LMHeadModel extends GPT2PreTrainedModel {
  static override readonly head: HeadKind = 'lm';
  /** Greedy or sampled generation with a KV cache; returns the sequences (prompt included) as int64 [B, total]. */
  async generate(options: GenerateOptions): Promise<Tensor> {
    this.check();
    return generate(this, options);
  }

  /** Low-level serving API: appends `ids` (one sequence) to a batch-1 cache; returns the last position's logits [V],
   *  or with `allPositions` every position's [T, V] (to score the prompt). */
  prefill(cache: KVCache, ids: number[], allPositions = false): Float32Array {
    this.check();
    checkCache(this.state, cache, 'prefill\'s cache');
    const { ids: flat, T } = toIds([ids], this.config);
    const head = checkBoolean(allPositions, 'prefill\'s allPositions', false) ? Int32Array.from({ length: T }, (_, t) => t) : [T - 1];
    return runBatch(this.state, cache, {
      ids: flat, B: 1, T, attentionMask: null, positionIds: null, headTokens: [head], head: this.headMatrix(), chunk: this.prefill_chunk,
    }).head;
  }

  /** Low-level serving API: one decode step for several sequences at once (continuous batching); logits [N, V],
   *  a new array, or written into `out` (at least N·V floats; returned as its first N·V) — a decode loop that
   *  reuses one array allocates nothing per step. */
  decodeStep(entries: DecodeEntry[], out?: Float32Array): Float32Array {
    this.check();
    if (!Array.isArray(entries)) throw new InputError('decodeStep takes an array of { cache, id, pos } entries');
    for (const e of entries) {
      if (e === null || typeof e !== 'object') throw new InputError(`decodeStep takes { cache, id, pos } entries, got ${e === null ? 'null' : typeof e}`);
      checkCache(this.state, e.cache, 'a decodeStep entry\'s cache');
      if (e.cache.batch !== 1) throw new InputError('decodeStep takes batch-1 caches');
    }
    if (out !== undefined && !(out instanceof Float32Array)) throw new InputError('decodeStep writes its logits into a Float32Array');
    return runStep(this.state, {
      segments: entries.map((e) => ({ cache: e.cache, row: 0, ids: [e.id], positions: [e.pos], mask: null, headTokens: [0] })),
      head: this.headMatrix(), chunk: 1, headInto: out,
    });
  }
}
export class GPT2ForTokenClassification extends GPT2PreTrainedModel { static override readonly head: HeadKind = 'token-classification'; }
export class GPT2ForSequenceClassification extends GPT2PreTrainedModel {
  static override readonly head: HeadKind = 'sequence-classification';
  protected override headTokens(ids: Int32Array, B: number, T: number): ArrayLike<number>[] {
    const pad = this.config.pad_token_id;
    if (pad === null && B > 1) throw new InputError('GPT2ForSequenceClassification cannot pool a batch of more than one row without pad_token_id in config.json (transformers raises the same)');
    return Array.from({ length: B }, (_, b) => {
      // the rightmost token that is not padding, as transformers does
      let last = T - 1;
      if (pad !== null) { last = -1; for (let t = 0; t < T; t++) if (ids[b * T + t] !== pad) last = t; if (last < 0) last = T - 1; }
      return [last];
    });
  }
}

/** Picks the class from config.architectures, as AutoModel... in transformers.js. */
export class AutoModel {
  static async from_pretrained(idOrDir: string | ModelSource, opts: PretrainedOptions = {}): Promise<GPT2PreTrainedModel> {
    const source = await resolveModelSource(idOrDir, opts);
    const cfg = await loadConfig(source);
    const arch = cfg.architectures?.[0] ?? 'GPT2LMHeadModel';
    const cls = ({ GPT2Model, GPT2LMHeadModel, GPT2ForTokenClassification, GPT2ForSequenceClassification } as Record<string, typeof GPT2PreTrainedModel>)[arch];
    if (!cls) throw new ConfigError(`${source.describe('config.json')}: architecture ${arch} is not supported (GPT2Model, GPT2LMHeadModel, GPT2ForTokenClassification, GPT2ForSequenceClassification)`);
    return cls.from_pretrained(source, opts);
  }
}
export class AutoModelForCausalLM {
  static from_pretrained(idOrDir: string | ModelSource, opts: PretrainedOptions = {}) { return GPT2LMHeadModel.from_pretrained(idOrDir, opts); }
}
export { RuntimeError };

/** Models with a head always return logits: their forward() says so in its type. */
export type ModelOutputWithLogits = ModelOutput & { logits: Tensor };
export interface GPT2LMHeadModel { forward(inputs: ForwardInputs): Promise<ModelOutputWithLogits> }
export interface GPT2ForTokenClassification { forward(inputs: ForwardInputs): Promise<ModelOutputWithLogits> }
export interface GPT2ForSequenceClassification { forward(inputs: ForwardInputs): Promise<ModelOutputWithLogits> }
