// The public model classes, named as in transformers.js: from_pretrained() loads a Hugging Face checkpoint
// into a Backend's memory; forward() takes HF inputs and returns HF outputs as Tensors.
import { ConfigError, GPT2WasmError, InputError, OptionError, RuntimeError } from '../errors.js';
import { activationId, loadConfig, loadGenerationConfig, type GenerationConfig, type GPT2Config } from '../io/config.js';
import { openTensorReader } from '../io/gguf-model.js';
import { dirSource, type ModelSource } from '../io/source.js';
import { resolveSource } from '../io/resolve.js';
import { Backend, type BackendOptions } from '../runtime/backend.js';
import { generate, type GenerateOptions } from '../generation/generate.js';
import { runDecodeStep, runForward, type DecodeEntry, type ForwardResult } from './forward.js';
import { f32Tensor, toEncoder, toHeadMask, toIds, toMask, toPast, toPositions } from './inputs.js';
import { KVCache } from './kv-cache.js';
import { Tensor } from './tensor.js';
import { loadWeights, planWeights, type DType, type DTypeOption, type HeadKind, type ModelWeights } from './weights.js';

export interface PretrainedOptions extends BackendOptions {
  /** Run dtype of the weight matrices: 'auto' (the checkpoint's: F16 stays fp16, else fp32), 'fp32', 'fp16', 'q8'. */
  dtype?: DTypeOption;
  /** Hub revision (branch, tag or commit) when the id is not a local directory. */
  revision?: string;
  /** Hub cache directory (default $HF_HOME/hub). */
  cache_dir?: string;
  /** Use only files already in the cache (as HF_HUB_OFFLINE=1). */
  local_files_only?: boolean;
  /** Called while downloading and loading: { status, file?, loaded?, total?, progress? }. */
  progress_callback?: (p: ProgressInfo) => void;
  /** Prompt chunk size for the blockwise prefill (tokens per pass). */
  prefill_chunk?: number;
  /** A GGUF file in the model directory, Hub repo or URL base to load instead of safetensors (as transformers' gguf_file). */
  gguf_file?: string;
  /** Resolves a model id to a ModelSource (the Hub resolver is plugged in by the package entry). */
  resolve?: (idOrDir: string, opts: PretrainedOptions) => Promise<ModelSource>;
}

export interface ProgressInfo { status: 'download' | 'load' | 'ready'; file?: string; loaded?: number; total?: number; progress?: number }

export interface PastKeyValue { key: Tensor; value: Tensor }

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
  past_key_values?: PastKeyValue[];
}

let defaultResolver: PretrainedOptions['resolve'] | null = (id, opts) => resolveSource(id, opts);
/** Installs the resolver used for ids that are not a ModelSource (the package entry plugs in the Hub). */
export function setDefaultResolver(r: PretrainedOptions['resolve']): void { defaultResolver = r ?? null; }

export const DEFAULT_PREFILL_CHUNK = 128;

/** A model id, directory path or URL (through the resolver), or a ModelSource as it is. */
async function resolveModelSource(idOrDir: string | ModelSource, opts: PretrainedOptions): Promise<ModelSource> {
  const resolve = opts.resolve ?? defaultResolver;
  if (typeof idOrDir === 'string') return resolve ? resolve(idOrDir, opts) : dirSource(idOrDir);
  if (idOrDir && typeof (idOrDir as ModelSource).open === 'function') return idOrDir;
  throw new OptionError('from_pretrained needs a model id, a directory path or a ModelSource');
}

export class GPT2PreTrainedModel {
  static readonly head: HeadKind = 'none';
  readonly config: GPT2Config;
  readonly generation_config: GenerationConfig | null;
  readonly backend: Backend;
  readonly weights: ModelWeights;
  readonly source: ModelSource;
  readonly dtype: DType;
  prefill_chunk: number;
  protected disposed = false;
  protected act: number;

  constructor(config: GPT2Config, generation: GenerationConfig | null, backend: Backend, weights: ModelWeights, source: ModelSource, prefillChunk: number) {
    this.config = config; this.generation_config = generation; this.backend = backend; this.weights = weights; this.source = source;
    this.dtype = weights.dtype; this.prefill_chunk = prefillChunk; this.act = activationId(config);
  }

  get head(): HeadKind { return (this.constructor as typeof GPT2PreTrainedModel).head; }

  static async from_pretrained<T extends typeof GPT2PreTrainedModel>(this: T, idOrDir: string | ModelSource, opts: PretrainedOptions = {}): Promise<InstanceType<T>> {
    checkOptions(opts);
    const source = await resolveModelSource(idOrDir, opts);
    const config = await loadConfig(source);
    const generation = await loadGenerationConfig(source).catch(() => null);
    const head = this.head;
    if ((head === 'token-classification' || head === 'sequence-classification') && config.num_labels < 1) throw new ConfigError(`${source.describe('config.json')}: num_labels must be >= 1 for ${this.name}`);
    const st = await openTensorReader(source);
    let backend: Backend | null = null;
    try {
      const plan = planWeights(config, st, head, opts.dtype ?? 'auto', st.name);
      backend = await Backend.create({ ...opts, initialBytes: plan.bytes + (64 << 20) });
      const weights = await loadWeights(config, st, plan, backend, (loaded, total) =>
        opts.progress_callback?.({ status: 'load', file: st.name, loaded, total, progress: total ? (100 * loaded) / total : 100 }));
      opts.progress_callback?.({ status: 'ready' });
      return new (this as any)(config, generation, backend, weights, source, opts.prefill_chunk ?? DEFAULT_PREFILL_CHUNK);
    } catch (e) {
      backend?.dispose();
      throw e;
    } finally {
      await st.close();
    }
  }

  protected check(): void { if (this.disposed) throw new GPT2WasmError('DISPOSED', 'this model was disposed'); }

  /** A KV cache for `batch` rows of up to `capacity` tokens, in this model's memory. */
  createCache(batch = 1, capacity = this.config.n_positions): KVCache {
    this.check();
    return new KVCache(this.backend, { layers: this.config.n_layer, heads: this.config.n_head, headDim: this.config.n_embd / this.config.n_head }, batch, capacity);
  }

  /** Rows (b, t) whose head outputs forward() returns; null for no head. */
  protected headRows(_ids: Int32Array, B: number, T: number, keep: number): Int32Array | null {
    if (this.head === 'none') return null;
    const from = keep > 0 ? Math.max(0, T - keep) : 0;
    const rows = new Int32Array(B * (T - from) * 2);
    let i = 0;
    for (let b = 0; b < B; b++) for (let t = from; t < T; t++) { rows[i++] = b; rows[i++] = t; }
    return rows;
  }

  async forward(inputs: ForwardInputs): Promise<ModelOutput> {
    this.check();
    if (!inputs || typeof inputs !== 'object') throw new InputError('forward() takes an object of inputs, e.g. { input_ids }');
    const cfg = this.config;
    const { ids, B, T } = toIds(inputs.input_ids, cfg);
    const past = inputs.past_key_values != null ? toPast(inputs.past_key_values, cfg, B) : null;
    const P = past?.P ?? 0;
    const mask = inputs.attention_mask != null ? toMask(inputs.attention_mask, B, P + T, 'attention_mask') : null;
    const positions = inputs.position_ids != null ? toPositions(inputs.position_ids, B, T, cfg) : null;
    if (!positions && P + T > cfg.n_positions) throw new InputError(`context too long: ${P + T} tokens (${P} past + ${T} new) but the model has n_positions = ${cfg.n_positions}`);
    const headMask = inputs.head_mask != null ? toHeadMask(inputs.head_mask, cfg) : null;
    const encoder = toEncoder(inputs.encoder_hidden_states, inputs.encoder_attention_mask, B, cfg);
    const keep = inputs.logits_to_keep ?? 0;
    if (!Number.isInteger(keep) || keep < 0) throw new OptionError(`logits_to_keep must be a non-negative integer, got ${keep}`);

    const cache = this.createCache(B, P + T);
    try {
      if (past) this.writePast(cache, past);
      const rows = this.headRows(ids, B, T, keep);
      const headW = this.headMatrix();
      const res = runForward({ cfg, backend: this.backend, weights: this.weights, act: this.act }, cache, {
        ids, B, T, attentionMask: mask, positionIds: positions, headMask, encoder,
        outputAttentions: !!inputs.output_attentions, outputHiddenStates: !!inputs.output_hidden_states, wantLastHidden: true,
        headRows: rows, head: headW?.w ?? null, headBias: headW?.b ?? 0, chunk: this.prefill_chunk,
      });
      return this.outputs(res, cache, B, T, rows, inputs.use_cache !== false && this.head !== 'token-classification' && this.head !== 'sequence-classification');
    } finally {
      cache.dispose();
    }
  }

  protected headMatrix(): { w: ModelWeights['wte']; b: number } | null {
    if (this.head === 'lm') return { w: this.weights.lm_head!, b: 0 };
    if (this.head === 'token-classification' || this.head === 'sequence-classification') return this.weights.classifier ? { w: this.weights.classifier.w, b: this.weights.classifier.b } : null;
    return null;
  }

  protected outputs(res: ForwardResult, cache: KVCache, B: number, T: number, rows: Int32Array | null, withPast: boolean): ModelOutput {
    const cfg = this.config, E = cfg.n_embd, H = cfg.n_head, S = cache.length;
    const out: ModelOutput = { last_hidden_state: f32Tensor(res.lastHidden!, [B, T, E]) };
    if (res.head && rows) {
      const N = this.headMatrix()!.w.N;
      out.logits = this.head === 'sequence-classification' ? f32Tensor(res.head, [B, N]) : f32Tensor(res.head, [B, rows.length / 2 / B, N]);
    }
    if (res.hiddenStates) out.hidden_states = res.hiddenStates.map((h) => f32Tensor(h, [B, T, E]));
    if (res.attentions) out.attentions = res.attentions.map((a) => f32Tensor(a, [B, H, T, S]));
    if (res.crossAttentions) out.cross_attentions = res.crossAttentions.map((a) => f32Tensor(a, [B, H, T, a.length / (B * H * T)]));
    if (withPast) out.past_key_values = this.readPast(cache);
    return out;
  }

  protected writePast(cache: KVCache, past: { k: Float32Array[]; v: Float32Array[]; P: number }): void {
    const { n_head: H } = this.config, D = this.config.n_embd / H, B = cache.batch, cap = cache.capacity, P = past.P;
    const A = this.backend.arena;
    for (let l = 0; l < this.config.n_layer; l++) {
      for (const [src, region] of [[past.k[l], cache.self.k[l]], [past.v[l], cache.self.v[l]]] as const) {
        const dst = A.f32(region.ptr, B * H * cap * D);
        for (let bh = 0; bh < B * H; bh++) dst.set(src.subarray(bh * P * D, (bh + 1) * P * D), bh * cap * D);
      }
    }
    cache.length = P;
  }

  /** Copies the cache out as past_key_values: per layer { key, value } of [B, H, length, D]. */
  readPast(cache: KVCache): PastKeyValue[] {
    const { n_head: H } = this.config, D = this.config.n_embd / H, B = cache.batch, cap = cache.capacity, S = cache.length;
    const A = this.backend.arena;
    const out: PastKeyValue[] = [];
    for (let l = 0; l < this.config.n_layer; l++) {
      const get = (ptr: number) => {
        const src = A.f32(ptr, B * H * cap * D), dst = new Float32Array(B * H * S * D);
        for (let bh = 0; bh < B * H; bh++) dst.set(src.subarray(bh * cap * D, bh * cap * D + S * D), bh * S * D);
        return f32Tensor(dst, [B, H, S, D]);
      };
      out.push({ key: get(cache.self.k[l].ptr), value: get(cache.self.v[l].ptr) });
    }
    return out;
  }

  /** Bytes of wasm memory in use (weights, caches, workspaces) and committed. */
  memoryUsage(): { weights: number; inUse: number; committed: number } {
    const u = this.backend.arena.usage();
    return { weights: this.weights.bytes, inUse: u.total, committed: u.committed };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.dispose();
  }
}

function checkOptions(opts: PretrainedOptions) {
  if (opts === null || typeof opts !== 'object') throw new OptionError('from_pretrained options must be an object');
  const known = new Set(['dtype', 'threads', 'kernels', 'variant', 'wasmModule', 'initialBytes', 'revision', 'cache_dir', 'local_files_only', 'progress_callback', 'prefill_chunk', 'resolve', 'token', 'endpoint', 'device', 'gguf_file']);
  for (const k of Object.keys(opts)) if (!known.has(k)) throw new OptionError(`unknown from_pretrained option '${k}' (known: ${[...known].join(', ')})`);
  if (opts.prefill_chunk !== undefined && (!Number.isInteger(opts.prefill_chunk) || opts.prefill_chunk < 1)) throw new OptionError(`prefill_chunk must be a positive integer, got ${opts.prefill_chunk}`);
  if ((opts as any).device !== undefined && !['cpu', 'wasm'].includes((opts as any).device)) throw new OptionError(`device must be 'cpu' or 'wasm' (gpt2-wasm runs on the CPU), got ${JSON.stringify((opts as any).device)}`);
}

export class GPT2Model extends GPT2PreTrainedModel { static override readonly head: HeadKind = 'none'; }
export class GPT2LMHeadModel extends GPT2PreTrainedModel {
  static override readonly head: HeadKind = 'lm';
  /** Greedy or sampled generation with a KV cache; returns the sequences (prompt included) as int64 [B, total]. */
  async generate(options: GenerateOptions): Promise<Tensor> {
    this.check();
    return generate(this, options);
  }

  /** Low-level serving API: appends `ids` (one sequence) to a batch-1 cache; returns the last position's logits [V]. */
  prefill(cache: KVCache, ids: number[]): Float32Array {
    this.check();
    const { ids: flat, T } = toIds([ids], this.config);
    if (cache.length + T > Math.min(cache.capacity, this.config.n_positions)) throw new InputError(`context too long: ${cache.length} cached + ${T} new tokens exceed ${Math.min(cache.capacity, this.config.n_positions)}`);
    const res = runForward({ cfg: this.config, backend: this.backend, weights: this.weights, act: this.act }, cache, {
      ids: flat, B: 1, T, attentionMask: null, positionIds: null, headMask: null, encoder: null, outputAttentions: false, outputHiddenStates: false,
      wantLastHidden: false, headRows: Int32Array.of(0, T - 1), head: this.weights.lm_head, headBias: 0, chunk: this.prefill_chunk,
    });
    return res.head!;
  }

  /** Low-level serving API: one decode step for several sequences at once (continuous batching); logits [N, V]. */
  decodeStep(entries: DecodeEntry[]): Float32Array {
    this.check();
    return runDecodeStep({ cfg: this.config, backend: this.backend, weights: this.weights, act: this.act }, entries);
  }
}
export class GPT2ForTokenClassification extends GPT2PreTrainedModel { static override readonly head: HeadKind = 'token-classification'; }
export class GPT2ForSequenceClassification extends GPT2PreTrainedModel {
  static override readonly head: HeadKind = 'sequence-classification';
  protected override headRows(ids: Int32Array, B: number, T: number): Int32Array {
    const pad = this.config.pad_token_id;
    if (pad === null && B > 1) throw new InputError('GPT2ForSequenceClassification cannot pool a batch of more than one row without pad_token_id in config.json (transformers raises the same)');
    const rows = new Int32Array(2 * B);
    for (let b = 0; b < B; b++) {
      // the rightmost token that is not padding, as transformers does
      let last = T - 1;
      if (pad !== null) { last = -1; for (let t = 0; t < T; t++) if (ids[b * T + t] !== pad) last = t; if (last < 0) last = T - 1; }
      rows[2 * b] = b; rows[2 * b + 1] = last;
    }
    return rows;
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
