// Weight placement: validates a checkpoint's tensors against the config, then streams each tensor from the
// file straight into its region of the wasm memory in the layout the kernels read (matrices as [out, in]
// rows, in the run dtype), a chunk of at most 4 MiB at a time: neither a whole tensor nor an f32 copy of a
// matrix is ever held. The values are decoded to f32 into a staging area in wasm memory (block-stream.ts), from
// which a kernel writes them in place: quantize_weights (q8/q4 blocks) or place_weights (f32/f16, conv1d weights
// transposed); both flag NaN/inf for the typed error. An F16 matrix run as fp16 is staged as its halves and moved by
// place_halves (its NaN/inf found by the scan of applyWexp); a matrix the file already
// stores in the run dtype's blocks (GGUF Q8_0 at q8, Q4_0 at q4) is copied as stored (copyBlocks).
import { MemoryLimitError, OptionError, WeightsError } from '../errors.js';
import { copyBytes } from '../io/byte-range.js';
import type { GPT2Config } from '../io/config.js';
import { DT_F16, DT_F32, DT_Q4, DT_Q8, Q8_BLOCK } from '../runtime/abi.js';
import type { Backend } from '../runtime/backend.js';
import { MAX_MEMORY_BYTES, mib, WORKING_HEADROOM_BYTES, type Region } from '../runtime/memory.js';
import { Q4_0_BYTES, Q8_0_BYTES, firstNonFiniteScale } from '../runtime/quant.js';
import { floatToHalf, fp16ToF32 } from '../io/half.js';
import { canDequantize, GGML_BF16, GGML_F16, GGML_F32, GGML_TYPES, ggmlTypeByName, type GGMLType } from '../io/ggml-dequant.js';
import { convertToF32, type STDtype } from '../io/safetensors.js';
import { NATIVE_BLOCKS, type DType, type TensorInfoLike, type TensorReader } from '../io/tensor-reader.js';
import { BlockStream, type GroupWriter } from './block-stream.js';

export type { DType, TensorInfoLike, TensorReader };
export type DTypeOption = DType | 'auto';

/** The weight matrices a precision plan names: the tied embedding / LM head (wte), an untied lm_head, and per layer
 *  the attention qkv and output projections, the MLP up and down projections and the cross-attention matrices. */
export const TENSOR_GROUPS = ['wte', 'lm_head', 'attn_qkv', 'attn_proj', 'mlp_fc', 'mlp_proj', 'cross_attn'] as const;
export type TensorGroup = typeof TENSOR_GROUPS[number];
/** A per-tensor precision plan: `default` for every matrix not named (default 'auto'), and a dtype per group. */
export type PrecisionPlan = { default?: DTypeOption } & { [G in TensorGroup]?: DType };
/** The `dtype` option: one dtype for every matrix, or a plan. */
export type DTypeSpec = DTypeOption | PrecisionPlan | `${string}=${string}`; // the last: the CLI's string form, e.g. 'q4,wte=q8'
/** What `dtype: 'q4'` means: 4-bit matrices with the tied embedding / LM head kept at q8. Measured on the trained
 *  fixture (test/perplexity.test.ts, README): q4 on every matrix costs several times the perplexity of this plan. */
export const Q4_DEFAULT_PLAN: { [G in TensorGroup]?: DType } = { wte: 'q8', lm_head: 'q8' };

const DTYPES: readonly string[] = ['fp32', 'fp16', 'q8', 'q4'];

/** A matrix as the kernels see it: N rows (outputs) of K inputs, in dtype dt (q8/q4: N rows of K/32 Q8_0/Q4_0 blocks). */
/** A weight matrix [N outputs, K inputs] of format dt at ptr. Its halves (DT_F16) or block scales (DT_Q8/DT_Q4) hold
 *  value·2^wexp (applyWexp; the kernels take wexp in their flags, abi.ts WEXP_SHIFT); 0 for DT_F32. */
export interface Matrix { ptr: number; dt: number; N: number; K: number; wexp: number }
/** f32 vector (bias, layer norm parameters). */
export type Vec = number;

export interface LayerWeights {
  ln1_g: Vec; ln1_b: Vec;
  qkv: Matrix; qkv_b: Vec; // [3E, E]
  attn_proj: Matrix; attn_proj_b: Vec; // [E, E]
  ln2_g: Vec; ln2_b: Vec;
  fc: Matrix; fc_b: Vec; // [I, E]
  mlp_proj: Matrix; mlp_proj_b: Vec; // [E, I]
  cross?: {
    ln_g: Vec; ln_b: Vec;
    q: Matrix; q_b: Vec; // [E, E]
    kv: Matrix; kv_b: Vec; // [2E, E]
    proj: Matrix; proj_b: Vec; // [E, E]
  };
}

export type HeadKind = 'lm' | 'token-classification' | 'sequence-classification' | 'none';

export interface ModelWeights {
  wte: Matrix; // [V, E]
  wpe: Vec; // [P, E] f32
  layers: LayerWeights[];
  lnf_g: Vec; lnf_b: Vec;
  lm_head: Matrix | null; // wte unless the checkpoint has an untied lm_head.weight
  classifier: { w: Matrix; b: Vec } | null; // token classification (bias) or sequence classification score (b = 0)
  /** The plan's default dtype; `plan` has the dtype of every group. */
  dtype: DType;
  plan: Record<TensorGroup, DType>;
  regions: Region[];
  bytes: number;
}

type Kind = 'conv1d' | 'linear' | 'vector' | 'table';
interface Spec { key: string; shape: number[]; kind: Kind; quantizable: boolean; group?: TensorGroup }

const IGNORED = /(^|\.)(attn|crossattention)\.(bias|masked_bias)$/;
const HEAD_TENSORS: Record<string, HeadKind> = {
  'lm_head.weight': 'lm', 'classifier.weight': 'token-classification', 'classifier.bias': 'token-classification',
  'score.weight': 'sequence-classification', 'score.bias': 'sequence-classification',
};

/** The specs of every tensor, with those of the first `layers` layers (n_layer unless the caller bounds it: see
 *  planWeights). */
function specs(cfg: GPT2Config, head: HeadKind, tensorNames: Set<string>, layers = cfg.n_layer): Spec[] {
  const E = cfg.n_embd, I = cfg.n_inner, V = cfg.vocab_size;
  const s: Spec[] = [
    { key: 'wte.weight', shape: [V, E], kind: 'table', quantizable: true, group: 'wte' },
    { key: 'wpe.weight', shape: [cfg.n_positions, E], kind: 'vector', quantizable: false },
    { key: 'ln_f.weight', shape: [E], kind: 'vector', quantizable: false },
    { key: 'ln_f.bias', shape: [E], kind: 'vector', quantizable: false },
  ];
  for (let l = 0; l < layers; l++) {
    const p = `h.${l}.`;
    s.push(
      { key: p + 'ln_1.weight', shape: [E], kind: 'vector', quantizable: false },
      { key: p + 'ln_1.bias', shape: [E], kind: 'vector', quantizable: false },
      { key: p + 'attn.c_attn.weight', shape: [E, 3 * E], kind: 'conv1d', quantizable: true, group: 'attn_qkv' },
      { key: p + 'attn.c_attn.bias', shape: [3 * E], kind: 'vector', quantizable: false },
      { key: p + 'attn.c_proj.weight', shape: [E, E], kind: 'conv1d', quantizable: true, group: 'attn_proj' },
      { key: p + 'attn.c_proj.bias', shape: [E], kind: 'vector', quantizable: false },
      { key: p + 'ln_2.weight', shape: [E], kind: 'vector', quantizable: false },
      { key: p + 'ln_2.bias', shape: [E], kind: 'vector', quantizable: false },
      { key: p + 'mlp.c_fc.weight', shape: [E, I], kind: 'conv1d', quantizable: true, group: 'mlp_fc' },
      { key: p + 'mlp.c_fc.bias', shape: [I], kind: 'vector', quantizable: false },
      { key: p + 'mlp.c_proj.weight', shape: [I, E], kind: 'conv1d', quantizable: true, group: 'mlp_proj' },
      { key: p + 'mlp.c_proj.bias', shape: [E], kind: 'vector', quantizable: false },
    );
    if (cfg.add_cross_attention) {
      s.push(
        { key: p + 'ln_cross_attn.weight', shape: [E], kind: 'vector', quantizable: false },
        { key: p + 'ln_cross_attn.bias', shape: [E], kind: 'vector', quantizable: false },
        { key: p + 'crossattention.q_attn.weight', shape: [E, E], kind: 'conv1d', quantizable: true, group: 'cross_attn' },
        { key: p + 'crossattention.q_attn.bias', shape: [E], kind: 'vector', quantizable: false },
        { key: p + 'crossattention.c_attn.weight', shape: [E, 2 * E], kind: 'conv1d', quantizable: true, group: 'cross_attn' },
        { key: p + 'crossattention.c_attn.bias', shape: [2 * E], kind: 'vector', quantizable: false },
        { key: p + 'crossattention.c_proj.weight', shape: [E, E], kind: 'conv1d', quantizable: true, group: 'cross_attn' },
        { key: p + 'crossattention.c_proj.bias', shape: [E], kind: 'vector', quantizable: false },
      );
    }
  }
  if (head === 'lm' && tensorNames.has('lm_head.weight')) s.push({ key: 'lm_head.weight', shape: [V, E], kind: 'linear', quantizable: true, group: 'lm_head' });
  if (head === 'token-classification') {
    s.push({ key: 'classifier.weight', shape: [cfg.num_labels, E], kind: 'linear', quantizable: false });
    s.push({ key: 'classifier.bias', shape: [cfg.num_labels], kind: 'vector', quantizable: false });
  }
  if (head === 'sequence-classification') {
    s.push({ key: 'score.weight', shape: [cfg.num_labels, E], kind: 'linear', quantizable: false });
    if (tensorNames.has('score.bias')) s.push({ key: 'score.bias', shape: [cfg.num_labels], kind: 'vector', quantizable: false });
  }
  return s;
}

const SRC_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** Checkpoint key → canonical key (without the `transformer.` prefix). */
const canonical = (k: string) => (k.startsWith('transformer.') ? k.slice('transformer.'.length) : k);

export interface PlannedWeights { specs: Spec[]; byKey: Map<string, TensorInfoLike>; dtype: DType; plan: Record<TensorGroup, DType>; bytes: number }

/** Checks names, shapes and dtypes before any allocation; returns what will be loaded and its size. */
export function planWeights(cfg: GPT2Config, reader: TensorReader, head: HeadKind, dtypeOpt: DTypeSpec, file = 'model.safetensors', checkFit = true): PlannedWeights {
  const byKey = new Map<string, TensorInfoLike>();
  for (const [name, info] of reader.tensors) {
    const key = canonical(name);
    if (byKey.has(key)) throw new WeightsError(`${file}: tensor ${key} appears twice (with and without the "transformer." prefix)`);
    byKey.set(key, info);
  }
  // transformers would give such a model a newly initialized (random) head; tying it to wte instead is a silent
  // different answer, so the contradiction is an error
  if (head === 'lm' && cfg.tie_word_embeddings === false && !byKey.has('lm_head.weight')) {
    throw new WeightsError(`${file}: config.json says tie_word_embeddings: false (an untied LM head), but there is no lm_head.weight; remove that setting to tie the head to wte`);
  }
  // n_layer is only checked to be below 2^31 when the config is parsed: building 12 or more specs per layer before
  // comparing them with the file could run for minutes or out of memory. A layer without a single tensor is an
  // error, so n_layer is first bounded by the layers the file has (h.0, h.1, ... in a row), naming the first
  // missing tensor, before any spec of a layer past those is built.
  const present = layersPresent(byKey.keys());
  if (cfg.n_layer > present) {
    const first = specs(cfg, head, new Set(byKey.keys()), present + 1).find((s) => !byKey.has(s.key))!.key;
    throw new WeightsError(`${file}: missing tensor ${first}: the config has n_layer=${cfg.n_layer}, but the file has no tensor of layer ` +
      `h.${present}${present ? ` (it has ${present > 1 ? `h.0 to h.${present - 1}` : 'h.0'})` : ''}`);
  }
  const wanted = specs(cfg, head, new Set(byKey.keys()));
  const wantedKeys = new Set(wanted.map((s) => s.key));
  const unknown = [...byKey.keys()].filter((k) => !wantedKeys.has(k) && !IGNORED.test(k) && !(k in HEAD_TENSORS));
  if (unknown.length) {
    throw new WeightsError(`${file}: unknown tensor${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''} ` +
      `(not part of a GPT-2 model with n_layer=${cfg.n_layer}${cfg.add_cross_attention ? ', add_cross_attention' : ''}); is config.json from the same checkpoint?`);
  }
  const missing = wanted.filter((s) => !byKey.has(s.key)).map((s) => s.key);
  if (missing.length) {
    throw new WeightsError(`${file}: missing tensor${missing.length > 1 ? 's' : ''} ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
  }
  let allF16 = true;
  for (const s of wanted) {
    const t = byKey.get(s.key)!;
    if (!(t.dtype in SRC_BYTES)) throw new WeightsError(`${file}: tensor ${s.key} has dtype ${t.dtype}; supported are F32, F16 and BF16`);
    const want = s.kind === 'conv1d' && t.rowMajorNK ? [s.shape[1], s.shape[0]] : s.shape;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new WeightsError(`${file}: tensor ${t.name === s.key ? s.key : `${t.name} (${s.key})`} has shape [${t.shape}], expected [${want}] from the config`);
    }
    if (s.quantizable && t.dtype !== 'F16') allF16 = false;
  }
  const { dtype, plan } = resolvePlan(dtypeOpt, reader.preferredDtype ?? (allF16 ? 'fp16' : 'fp32'));
  if (dtypeOpt === 'auto' || dtypeOpt === undefined) keepStoredBlocks(plan, wanted, byKey);
  let bytes = 0;
  for (const s of wanted) bytes += storedBytes(s, plan);
  if (checkFit) checkFits(bytes, dtype, cfg); // off: `gpt2-wasm info` reports what does not fit instead
  return { specs: wanted, byKey, dtype, plan, bytes };
}

/** How many layers h.0, h.1, ... in a row have at least one tensor among `keys` (canonical names). */
function layersPresent(keys: Iterable<string>): number {
  const seen = new Set<number>();
  for (const k of keys) {
    const m = /^h\.(0|[1-9][0-9]*)\./.exec(k);
    if (m) seen.add(Number(m[1]));
  }
  let n = 0;
  while (seen.has(n)) n++;
  return n;
}

/** 'auto' runs a group of matrices in the blocks the file stores all of them in, when those are a run format
 *  (GGUF Q8_0 → q8, Q4_0 → q4), so nothing stored natively is converted: e.g. a Q4_0 file whose embedding is Q4_0
 *  too keeps it at q4, where the default q4 plan would convert it to q8. */
function keepStoredBlocks(plan: Record<TensorGroup, DType>, wanted: Spec[], byKey: Map<string, TensorInfoLike>): void {
  for (const g of TENSOR_GROUPS) {
    const types = new Set(wanted.filter((s) => s.group === g).map((s) => byKey.get(s.key)!.quantized?.type));
    const [only] = types;
    if (types.size === 1 && only !== undefined && only in NATIVE_BLOCKS) plan[g] = NATIVE_BLOCKS[only];
  }
}

/** The dtype of every group from the `dtype` option; `auto` is the checkpoint's (F16 stays fp16, else fp32).
 *  A string applies to every matrix, except 'q4', which is Q4_DEFAULT_PLAN; a plan object is taken literally. */
export function resolvePlan(spec: DTypeSpec | undefined, auto: DType = 'fp32'): { dtype: DType; plan: Record<TensorGroup, DType> } {
  const one = (v: unknown, what: string, allowAuto: boolean): DType => {
    if (allowAuto && (v === 'auto' || v === undefined)) return auto;
    if (typeof v === 'string' && DTYPES.includes(v)) return v as DType;
    // a whole-model 'q4' is Q4_DEFAULT_PLAN; a plan's values are taken literally
    throw new OptionError(`${what} must be ${allowAuto ? "'auto', " : ''}'fp32', 'fp16', 'q8' or 'q4', got ${JSON.stringify(v)}${dtypeHint(v, what === 'dtype')}`);
  };
  const plan = {} as Record<TensorGroup, DType>;
  // the CLI's string form of a plan ('q4,wte=q8') is accepted by the library too
  if (typeof spec === 'string' && (spec.includes(',') || spec.includes('='))) spec = parseDTypeSpec(spec);
  if (spec === null || typeof spec !== 'object') {
    const dtype = one(spec, 'dtype', true);
    for (const g of TENSOR_GROUPS) plan[g] = dtype === 'q4' ? Q4_DEFAULT_PLAN[g] ?? 'q4' : dtype;
    return { dtype, plan };
  }
  for (const k of Object.keys(spec)) {
    if (k !== 'default' && !(TENSOR_GROUPS as readonly string[]).includes(k)) {
      throw new OptionError(`dtype plan: unknown key '${k}' (known: default, ${TENSOR_GROUPS.join(', ')})`);
    }
  }
  const dtype = one(spec.default, 'dtype plan key \'default\'', true);
  for (const g of TENSOR_GROUPS) plan[g] = spec[g] === undefined ? dtype : one(spec[g], `dtype plan key '${g}'`, false);
  return { dtype, plan };
}

/** The GGUF tensor types a GGUF file may store (gguf-model.ts reads these and refuses the rest): F32, F16, BF16 and
 *  the block types there is a dequantizer for. */
function readableGGUFTypes(): string[] {
  const name = (id: number) => GGML_TYPES.get(id)!.name;
  return [name(GGML_F32), name(GGML_F16), name(GGML_BF16), ...[...GGML_TYPES.values()].filter((t) => canDequantize(t.id)).map((t) => t.name)];
}

/** A ggml type or llama.cpp file type spelled as llama.cpp / GGUF spell it (Q4_0, q8_0, Q4_K_M, IQ4_XS, ...): the
 *  ggml type it names (a file type's mix suffix _S/_M/_L dropped), or the spelling itself when it only looks like
 *  one (IQ2_M, Q3_K_XL); null for anything else. */
function ggmlSpelling(v: string): { type: GGMLType | undefined; name: string } | null {
  const name = v.trim().toUpperCase();
  const type = ggmlTypeByName(name) ?? ggmlTypeByName(name.replace(/_(S|M|L)$/, ''));
  if (type || /^(I?Q[1-8]|TQ[12])_/.test(name) || name === 'MXFP4') return { type, name };
  return null;
}

/** What a dtype our list does not have means here, when it is another spelling of a type (llama.cpp's and GGUF's
 *  Q8_0 / Q4_0 / F16 / F32, a K-quant, IQ types): '' when it is none. `wholeModel`: the value is the whole `dtype`
 *  option (a 'q4' there keeps the embedding / LM head at q8, Q4_DEFAULT_PLAN). Every claim is the code's: q8 and q4
 *  are GGUF's Q8_0 and Q4_0 blocks (runtime/quant.ts; NATIVE_BLOCKS places such a file's blocks as stored). */
export function dtypeHint(v: unknown, wholeModel = false): string {
  if (typeof v !== 'string') return '';
  const lower = v.trim().toLowerCase();
  const runDtypes = "fp32, fp16, q8 (GGUF Q8_0 blocks) and q4 (GGUF Q4_0 blocks)";
  if (DTYPES.includes(lower)) return `; dtypes are lower case: '${lower}'`;
  const same: Record<string, string> = { f32: 'fp32', float32: 'fp32', f16: 'fp16', float16: 'fp16' };
  if (Object.hasOwn(same, lower)) return `; ${JSON.stringify(v)} is '${same[lower]}' here`;
  if (lower === 'q8_0') return `; ${JSON.stringify(v)} is 'q8' here (the same Q8_0 blocks)`;
  if (lower === 'q4_0') {
    return `; ${JSON.stringify(v)} is 'q4' here (the same Q4_0 blocks${wholeModel ? "; dtype 'q4' keeps the embedding / LM head at q8, the plan { default: 'q4' } makes them Q4_0 too" : ''})`;
  }
  if (lower === 'bf16' || lower === 'bfloat16') return `; bf16 is not a run dtype (${runDtypes}): BF16 weights load as 'fp32' (exactly) or 'fp16'`;
  const g = ggmlSpelling(v);
  if (!g) return '';
  const readable = readableGGUFTypes();
  if (g.type && readable.includes(g.type.name)) {
    // a llama.cpp quantization this runtime reads from a GGUF file, but does not run in
    return `; ${JSON.stringify(v)} is not a run dtype here (those are ${runDtypes}); a GGUF file quantized as ${g.name} does load: ` +
      `its ${g.type.name} tensors are converted on load (dtype 'auto' runs them as q8)`;
  }
  return `; ${JSON.stringify(v)} is not supported: it is not a run dtype (${runDtypes}), and a GGUF file quantized as ${g.name} cannot be read ` +
    `either (the GGUF tensor types read are ${readable.join(', ')})`;
}

/** The CLI form of a plan: 'q4' or 'default=q4,wte=q8' (a bare first item is the default). */
export function parseDTypeSpec(text: string): DTypeSpec {
  if (!text.includes(',') && !text.includes('=')) return text as DTypeOption;
  const plan: Record<string, string> = {};
  for (const [i, item] of text.split(',').entries()) {
    const eq = item.indexOf('=');
    if (eq < 0 && i === 0) { plan.default = item.trim(); continue; }
    if (eq < 0) throw new OptionError(`--dtype: expected key=dtype, got ${JSON.stringify(item)}`);
    plan[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  resolvePlan(plan as PrecisionPlan); // names a bad key or value now
  return plan as PrecisionPlan;
}

/** Whether weights of `bytes` leave the memory room for a minimal working set: the loader's own limit. */
export function weightsFit(bytes: number): boolean {
  return bytes <= MAX_MEMORY_BYTES - WORKING_HEADROOM_BYTES;
}

/** Weights plus a minimal working set must fit wasm32's 4 GiB; say which dtype would fit. */
function checkFits(bytes: number, dtype: DType, cfg: GPT2Config): void {
  if (weightsFit(bytes)) return;
  const order: DType[] = ['fp32', 'fp16', 'q8', 'q4'];
  const fits = order.filter((d) => order.indexOf(d) > order.indexOf(dtype) && weightsFit(estimateWeightBytes(cfg, d)));
  throw new MemoryLimitError(`the weights need ${mib(bytes)} as ${dtype}, more than fits in wasm32's 4096 MiB memory with room for activations; ` +
    (fits.length ? `load with dtype '${fits[0]}' (${mib(estimateWeightBytes(cfg, fits[0]))})` : 'this model is too large for wasm32 even as q4'));
}

/** The storage format of a matrix under a plan. A q8/q4 matrix whose inner dimension K is not a multiple of 32
 *  (no GPT-2 checkpoint has one) is kept in f16 instead: the documented fallback. */
function matrixDt(s: Spec, plan: Record<TensorGroup, DType>): number {
  const dtype = s.quantizable && s.group ? plan[s.group] : 'fp32';
  if (dtype === 'fp32') return DT_F32;
  const quantizable = s.shape[s.kind === 'conv1d' ? 0 : 1] % Q8_BLOCK === 0;
  if (dtype === 'q8' && quantizable) return DT_Q8;
  if (dtype === 'q4' && quantizable) return DT_Q4;
  return DT_F16;
}

function storedBytes(s: Spec, plan: Record<TensorGroup, DType>): number {
  const n = s.shape.reduce((a, b) => a * b, 1);
  if (s.kind === 'vector') return n * 4;
  const dt = matrixDt(s, plan);
  return dt === DT_F32 ? n * 4 : dt === DT_F16 ? n * 2 : (n / Q8_BLOCK) * (dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES);
}

/** Bytes of wasm memory loadWeights stages the values of its tensors in (as f32, or as halves for F16 run as fp16;
 *  stored blocks are copied as they are), 0 when there are none: up to `budget` (what the memory plan has room for during the load:
 *  the first call's workspace, which is placed only afterwards), at most a chunk, and at least one group of each
 *  (BlockStream), plus place_weights' NaN/inf flag at the end (FLAG_BYTES); only that flag when nothing is staged but
 *  a matrix has halves (applyWexp's scratch).
 *  `copied`: the matrices whose stored blocks are copied as they are (by default every one stored in its run format). */
export function stagingBytes(plan: PlannedWeights, budget: number, copied = (s: Spec) => storedAsRunBlocks(plan.byKey.get(s.key)!, matrixDt(s, plan.plan))): number {
  let need = 0;
  for (const s of plan.specs) {
    const info = plan.byKey.get(s.key)!, dt = s.kind === 'vector' ? DT_F32 : matrixDt(s, plan.plan);
    if (dt !== DT_F32) need = Math.max(need, FLAG_BYTES); // applyWexp's scratch, at the staging area's end
    if (copied(s)) continue;
    // one group of the tensor's BlockStream: halves (F16 run as fp16) or f32 values, 32 inputs a group for q8/q4
    const span = dt === DT_Q8 || dt === DT_Q4 ? Q8_BLOCK : 1, size = movesHalves(info, dt) ? 2 : 4;
    need = Math.max(need, BlockStream.groupValues(s.kind === 'conv1d' && !info.rowMajorNK, s.shape[s.kind === 'conv1d' ? 1 : 0], span) * size + FLAG_BYTES);
  }
  if (need <= FLAG_BYTES) return need;
  return Math.max(need, Math.floor(Math.min(CHUNK_VALUES * 4 + FLAG_BYTES, budget) / FLAG_BYTES) * FLAG_BYTES);
}

/** Bytes at the staging area's end for place_weights' flag (16: the floats before it stay 16-byte aligned). */
const FLAG_BYTES = 16;

/** An F16 tensor run as f16: its bits are moved as they are (staged as halves, place_halves). */
const movesHalves = (info: TensorInfoLike, dt: number) => info.dtype === 'F16' && dt === DT_F16;

/** Streams the planned tensors into the backend's memory. Their decoded values (all but F16 run as fp16 and stored
 *  blocks copied as they are) are staged in a region of stagingBytes(plan, stagingBudget) above the weights, given
 *  back at the end. */
export async function loadWeights(cfg: GPT2Config, reader: TensorReader, plan: PlannedWeights, backend: Backend,
  onProgress?: (loadedBytes: number, totalBytes: number) => void, stagingBudget = CHUNK_VALUES * 4 + FLAG_BYTES): Promise<ModelWeights> {
  const { arena } = backend;
  const regions: Region[] = [];
  const placed = new Map<string, Matrix>();
  const dtOf = (s: Spec) => (s.kind === 'vector' ? DT_F32 : matrixDt(s, plan.plan));
  const asStored = (s: Spec) => storedAsRunBlocks(plan.byKey.get(s.key)!, dtOf(s)) && reader.blockChunks !== undefined;
  // bytes read: the stored blocks of a matrix copied as stored, else the values its chunks decode to
  const total = plan.specs.reduce((t, s) => t + (asStored(s) ? plan.byKey.get(s.key)!.quantized!.byteLength : plan.byKey.get(s.key)!.byteLength), 0);
  noticeConversions(plan, (s) => !asStored(s) ? dtOf(s) : null);
  const staging = stagingBytes(plan, stagingBudget, asStored);
  let loaded = 0;
  let stage: Region | null = null;
  try {
    // file order, so a streaming source reads sequentially; every region first, the staging area last, so that
    // giving it back at the end leaves the weights where they would be without it and the memory's top at their end
    const order = plan.specs.slice().sort((a, b) => plan.byKey.get(a.key)!.byteOffset - plan.byKey.get(b.key)!.byteOffset);
    const regionOf = new Map<Spec, Region>();
    for (const s of order) {
      const region = arena.alloc(`weight ${s.key}`, storedBytes(s, plan.plan));
      regions.push(region);
      regionOf.set(s, region);
    }
    if (staging > 0) stage = arena.alloc('weight staging', staging);
    // the staging area's floats (the memory grows no more while the tensors stream: every region is placed)
    const staged = stage ? new Float32Array(arena.memory.buffer, stage.ptr, (staging - FLAG_BYTES) / 4) : null;
    const staged16 = stage ? new Uint16Array(arena.memory.buffer, stage.ptr, (staging - FLAG_BYTES) / 2) : null; // the same bytes, for halves
    const flag = stage ? stage.ptr + staging - FLAG_BYTES : 0; // the kernels' NaN/inf flag, after the floats
    for (const s of order) {
      const info = plan.byKey.get(s.key)!;
      const dt = dtOf(s);
      const N = s.kind === 'conv1d' ? s.shape[1] : s.shape[0];
      const K = s.shape.length === 1 ? 1 : s.kind === 'conv1d' ? s.shape[0] : s.shape[1];
      const count = N * K;
      const region = regionOf.get(s)!;
      if (asStored(s)) {
        await copyBlocks(reader, info, s.key, backend, region.ptr, dt, N, K, (n) => { loaded += n; onProgress?.(loaded, total); });
        // the blocks' scales were checked finite as they were copied, so the scan finds no inf or NaN half
        const wexp = applyWexp(backend, flag, region.ptr, dt, N, K);
        if (wexp < 0) throw new WeightsError(`${info.file ?? 'model.safetensors'}: tensor ${s.key} holds a block scale that is not finite`);
        placed.set(s.key, { ptr: region.ptr, dt, N, K, wexp });
        continue;
      }
      // q8/q4 blocks run along an output's inputs, which conv1d checkpoints store down a column: BlockStream stages
      // whole groups of 32 source rows in wasm memory and the quantize_weights kernel reads each output's block down
      // them (no f32 copy of the tensor). f32/f16 go through the same staging one value or source row at a time, and
      // place_weights writes (and transposes) them; an F16 matrix run as f16 is staged as its halves and place_halves
      // moves them. GGUF matrices are already [N out, K in] rows (rowMajorNK).
      const file = info.file ?? 'model.safetensors';
      const transpose = s.kind === 'conv1d' && !info.rowMajorNK;
      const quantized = dt === DT_Q8 || dt === DT_Q4;
      const halves = movesHalves(info, dt);
      const stream = halves ? new BlockStream(transpose, N, K, staged16!, halvesWriter(backend, staged16!, region.ptr, transpose, N, K), 1) : quantized
        ? new BlockStream(transpose, N, K, staged!, groupWriter(backend, staged!, flag, region.ptr, dt, transpose, N, K, file, s.key))
        : new BlockStream(transpose, N, K, staged!, placeWriter(backend, staged!, flag, region.ptr, dt, transpose, N, K, file, s.key), 1);
      const srcSize = SRC_BYTES[info.dtype];
      let elem = 0;
      let carry: Uint8Array | null = null;
      for await (const { bytes: raw } of reader.chunks(info.name, CHUNK_VALUES * srcSize)) {
        let bytes = raw;
        if (carry) { const m = new Uint8Array(carry.length + raw.length); m.set(carry); m.set(raw, carry.length); bytes = m; carry = null; }
        const whole = bytes.length - (bytes.length % srcSize);
        if (whole < bytes.length) carry = copyBytes(bytes, whole);
        const n = whole / srcSize;
        if (halves) {
          // half to half: the bits go into the staging area as they are (a NaN or inf among them: applyWexp's scan)
          const u16 = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(copyBytes(bytes, 0, whole).buffer);
          (stream as BlockStream<Uint16Array>).push(n, (dst, from) => dst.set(u16.subarray(from, from + dst.length)));
        } else {
          // the values go straight into the staging area, as f32 (place_weights flags NaN/inf itself)
          (stream as BlockStream<Float32Array>).push(n, (dst, from) => convertToF32(info.dtype as STDtype, bytes.subarray(from * srcSize, (from + dst.length) * srcSize), dst, `${file}: tensor ${s.key}`));
        }
        elem += n;
        loaded += whole;
        onProgress?.(loaded, total);
      }
      if (elem !== count) throw new WeightsError(`${file}: tensor ${s.key} ended after ${elem} of ${count} elements`);
      const nonFinite = halves ? () => movedHalvesError(backend, region.ptr, transpose, N, K, file, s.key) : undefined;
      const wexp = s.kind === 'vector' ? 0 : applyWexp(backend, flag, region.ptr, dt, N, K, nonFinite);
      // an inf half that place_weights wrote from a finite value (it flags NaN/inf ones): a weight past the f16 range
      if (wexp < 0) throw await outOfF16Range(reader, info, backend, region.ptr, transpose, N, K, file, s.key, s.group);
      placed.set(s.key, { ptr: region.ptr, dt, N, K, wexp });
    }
  } catch (e) {
    arena.release(stage);
    for (const r of regions) arena.release(r);
    throw e;
  }
  arena.release(stage);
  const m = (k: string) => placed.get(k)!;
  const v = (k: string) => placed.get(k)!.ptr;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `h.${l}.`;
    layers.push({
      ln1_g: v(p + 'ln_1.weight'), ln1_b: v(p + 'ln_1.bias'),
      qkv: m(p + 'attn.c_attn.weight'), qkv_b: v(p + 'attn.c_attn.bias'),
      attn_proj: m(p + 'attn.c_proj.weight'), attn_proj_b: v(p + 'attn.c_proj.bias'),
      ln2_g: v(p + 'ln_2.weight'), ln2_b: v(p + 'ln_2.bias'),
      fc: m(p + 'mlp.c_fc.weight'), fc_b: v(p + 'mlp.c_fc.bias'),
      mlp_proj: m(p + 'mlp.c_proj.weight'), mlp_proj_b: v(p + 'mlp.c_proj.bias'),
      cross: cfg.add_cross_attention ? {
        ln_g: v(p + 'ln_cross_attn.weight'), ln_b: v(p + 'ln_cross_attn.bias'),
        q: m(p + 'crossattention.q_attn.weight'), q_b: v(p + 'crossattention.q_attn.bias'),
        kv: m(p + 'crossattention.c_attn.weight'), kv_b: v(p + 'crossattention.c_attn.bias'),
        proj: m(p + 'crossattention.c_proj.weight'), proj_b: v(p + 'crossattention.c_proj.bias'),
      } : undefined,
    });
  }
  const wte = m('wte.weight');
  let classifier: ModelWeights['classifier'] = null;
  if (placed.has('classifier.weight')) classifier = { w: m('classifier.weight'), b: v('classifier.bias') };
  else if (placed.has('score.weight')) classifier = { w: m('score.weight'), b: placed.has('score.bias') ? v('score.bias') : 0 };
  return {
    wte, wpe: v('wpe.weight'), layers, lnf_g: v('ln_f.weight'), lnf_b: v('ln_f.bias'),
    lm_head: placed.get('lm_head.weight') ?? wte, classifier, dtype: plan.dtype, plan: plan.plan, regions,
    bytes: regions.reduce((s, r) => s + r.bytes, 0),
  };
}

/** The weight exponent offset of a placed matrix (abi.ts WEXP_SHIFT), applied to it: when one of its halves (f16
 *  elements, or block scales) is subnormal, each is multiplied by 2^e in place (halves_shift, exact) with the largest
 *  e ≤ 10 that keeps the largest finite; e = 10 leaves no half subnormal (2^-24 · 2^10 = 2^-14, the smallest normal
 *  one). A subnormal half costs the kernels' shift-only conversion a subnormal f32, which x86 multiplies take tens of
 *  cycles on: decode of the residual projections of GPT-2-shaped weights (std 0.02/√24: about 1% of the halves, or
 *  every Q8_0 scale, subnormal) ran at half speed. 0 when none is subnormal or for f32. `flag`: 8 bytes of scratch.
 *  The scan also finds an inf or NaN half (the largest magnitude ≥ 0x7c00): `nonFinite` then throws (halves moved
 *  from an F16 file, whose NaN/inf no kernel flagged earlier); without it the answer is -1: in an f16 matrix placed
 *  from f32 values (place_weights flags NaN/inf ones) such a half is a finite weight past the f16 range, which no e
 *  can bring back (e ≥ 0 only scales up; e = 0 is the value's own half), so the caller names it (outOfF16Range).
 *  The e picked for a matrix of finite halves never overflows one: it is capped by the largest. */
function applyWexp(backend: Backend, flag: number, ptr: number, dt: number, N: number, K: number, nonFinite?: () => never): number {
  if (dt === DT_F32) return 0;
  const n = dt === DT_F16 ? N * K : (N * K) / Q8_BLOCK, stride = dt === DT_F16 ? 2 : dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES;
  const out = () => new Int32Array(backend.arena.memory.buffer, flag, 2);
  out().fill(0);
  backend.k.halves_scan(ptr, n, stride, flag);
  const [largest, subnormal] = out();
  if (largest >= 0x7c00) {
    if (nonFinite) nonFinite();
    return -1;
  }
  if (!subnormal) return 0;
  const e = Math.max(0, Math.min(10, 30 - (largest >> 10))); // exponent field + e ≤ 30: the largest stays finite
  if (e > 0) backend.k.halves_shift(ptr, n, stride, e);
  return e;
}
/** Values per chunk read from the checkpoint: its f32 decoding takes 4 MiB, the chunk itself at most that. */
const CHUNK_VALUES = 1 << 20;
/** Bytes per chunk of stored blocks copied as they are. */
const BLOCK_CHUNK_BYTES = 4 << 20;

/** Whether the file stores the tensor in exactly the blocks of its run format dt (GGUF Q8_0 at q8, Q4_0 at q4). */
function storedAsRunBlocks(info: TensorInfoLike, dt: number): boolean {
  const run = info.quantized ? NATIVE_BLOCKS[info.quantized.type] : undefined;
  return (run === 'q8' && dt === DT_Q8) || (run === 'q4' && dt === DT_Q4);
}

/** Copies a matrix stored in its run format's blocks into its region as it is: N rows of K/32 blocks (GGUF
 *  matrices are [out, in] rows, the kernels' layout), a bounded chunk of whole blocks at a time. Each block's f16
 *  scale is checked as the quantizer's output is (blockWriter): a non-finite one would poison every dot product. */
async function copyBlocks(reader: TensorReader, info: TensorInfoLike, key: string, backend: Backend, ptr: number, dt: number,
  N: number, K: number, onBytes: (n: number) => void): Promise<void> {
  const file = info.file ?? 'model.safetensors', type = info.quantized!.type;
  const blockBytes = dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES;
  const rowBlocks = K / Q8_BLOCK;
  const want = N * rowBlocks * blockBytes;
  if (!info.rowMajorNK || !Number.isInteger(rowBlocks) || info.quantized!.byteLength !== want) {
    throw new WeightsError(`${file}: tensor ${key} holds ${info.quantized!.byteLength} bytes of ${type} blocks${info.rowMajorNK ? '' : ' not in [out, in] rows'}; ` +
      `[${N}, ${K}] needs ${Number.isInteger(rowBlocks) ? `${want} bytes (${N} rows of ${rowBlocks} blocks)` : 'K a multiple of 32'}`);
  }
  let at = 0;
  for await (const { offset, bytes } of reader.blockChunks!(info.name, BLOCK_CHUNK_BYTES)) {
    if (offset !== at || bytes.byteLength % blockBytes !== 0 || at + bytes.byteLength > want) {
      throw new WeightsError(`${file}: tensor ${key}: ${bytes.byteLength} bytes at offset ${offset} are not the next whole ${type} blocks (${at} of ${want} bytes read)`);
    }
    const bad = firstNonFiniteScale(bytes, blockBytes);
    if (bad >= 0) {
      const b = at / blockBytes + bad, n = Math.floor(b / rowBlocks), k0 = (b - n * rowBlocks) * Q8_BLOCK;
      throw new WeightsError(`${file}: tensor ${key} row ${n} columns ${k0}..${k0 + Q8_BLOCK - 1}: the ${type} block's f16 scale is not finite (NaN or infinite weights)`);
    }
    // a fresh view per chunk: nothing allocates in wasm memory while the tensor streams, but views are cheap
    new Uint8Array(backend.arena.memory.buffer, ptr + at, bytes.byteLength).set(bytes);
    at += bytes.byteLength;
    onBytes(bytes.byteLength);
  }
  if (at !== want) throw new WeightsError(`${file}: tensor ${key} ended after ${at} of ${want} bytes of ${type} blocks`);
}

/** Conversion notices shown (once per file, conversions and process). */
const noticed = new Set<string>();

/** One line when quantized tensors are converted on load (dequantized, then placed in the run format) rather
 *  than copied as stored: K-quants and the like at any dtype, or Q8_0 / Q4_0 under a plan that asks otherwise. */
function noticeConversions(plan: PlannedWeights, convertedTo: (s: Spec) => number | null): void {
  const counts = new Map<string, number>();
  let file = '';
  for (const s of plan.specs) {
    const info = plan.byKey.get(s.key)!, dt = convertedTo(s);
    if (!info.quantized || dt === null) continue;
    file = info.file ?? file;
    const what = `${info.quantized.type} → ${DT_NAMES[dt]}`;
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  const list = [...counts].map(([what, n]) => `${n} × ${what}`).join(', ');
  if (!counts.size || noticed.has(`${file}: ${list}`)) return;
  noticed.add(`${file}: ${list}`);
  console.warn(`gpt2-wasm: ${file}: converting quantized tensors on load: ${list} (only Q8_0 at q8 and Q4_0 at q4 are placed as stored)`);
}

const DT_NAMES: Record<number, string> = { [DT_F32]: 'fp32', [DT_F16]: 'fp16', [DT_Q8]: 'q8', [DT_Q4]: 'q4' };

/** Quantizes BlockStream's staged groups (at `staged`) into N rows of K/32 Q8_0 or Q4_0 blocks at dst with the
 *  quantize_weights kernel; a NaN or ±inf among them (the kernel's flag) is found in the staged values and named,
 *  then each written block's f16 scale is checked. */
function groupWriter(backend: Backend, values: Float32Array, flag: number, dst: number, dt: number, conv1d: boolean, N: number, K: number, file: string, key: string): GroupWriter {
  const staged = values.byteOffset;
  const blockBytes = dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES;
  const perRow = K / Q8_BLOCK, rowBytes = perRow * blockBytes;
  const per = Q8_BLOCK * (conv1d ? N : 1); // staged values per group
  // block kb of output n, called right after the kernel that wrote it, while its staged values are still there: those
  // past the f16 range (always, as the scale is |w|max/127 or /8, but checked) cannot be loaded as fp16 either
  // (its values: staged[at + j·step], j < 32)
  const tooLarge = (n: number, kb: number, at: number, step: number) => {
    let beyond = false;
    for (let j = 0; j < Q8_BLOCK; j++) if ((floatToHalf(values[at + j * step]) & 0x7c00) === 0x7c00) beyond = true;
    return new WeightsError(`${file}: tensor ${key} row ${n} columns ${kb * Q8_BLOCK}..${kb * Q8_BLOCK + Q8_BLOCK - 1}: ` +
      `values too large for a ${dt === DT_Q8 ? 'q8' : 'q4'} block's f16 scale; load it as ${beyond ? 'fp32 (they are past the f16 range too)' : 'fp16 or fp32'}`);
  };
  return (first, groups) => {
    // the region's bytes: nothing is allocated in wasm memory while a tensor streams, but views are cheap
    const u8 = new Uint8Array(backend.arena.memory.buffer);
    if (conv1d) {
      // 32·groups source rows: block first … first + groups - 1 of every output
      flaggedKernel(backend, flag, values, groups * per, first * per, file, key,
        () => backend.k.quantize_weights(staged, dst + first * blockBytes, rowBytes, dt, groups * Q8_BLOCK, N, 1, flag));
      for (let n = 0; n < N; n++) {
        const row = dst + n * rowBytes;
        for (let kb = first; kb < first + groups; kb++) if ((u8[row + kb * blockBytes + 1] & 0x7c) === 0x7c) throw tooLarge(n, kb, (kb - first) * Q8_BLOCK * N + n, N);
      }
      return;
    }
    // blocks first … first + groups - 1 of the [N, K] matrix, which are consecutive in its rows
    const at = dst + first * blockBytes;
    flaggedKernel(backend, flag, values, groups * per, first * per, file, key,
      () => backend.k.quantize_weights(staged, at, blockBytes, dt, groups, Q8_BLOCK, 0, flag));
    const bad = firstNonFiniteScale(u8.subarray(at, at + groups * blockBytes), blockBytes);
    if (bad >= 0) throw tooLarge(Math.floor((first + bad) / perRow), (first + bad) % perRow, bad * Q8_BLOCK, 1);
  };
}

export function firstNonFinite(v: Float32Array, n: number): number {
  // NaN or ±Infinity times 0 is NaN, and NaN sticks; four independent sums, as one chain of dependent additions
  // runs at the adder's latency (save_gguf passes every value it writes here: 0.62 → 0.45 ns a value; the loader
  // only after a kernel flagged one)
  let a0 = 0, a1 = 0, a2 = 0, a3 = 0, i = 0;
  for (; i + 4 <= n; i += 4) { a0 += v[i] * 0; a1 += v[i + 1] * 0; a2 += v[i + 2] * 0; a3 += v[i + 3] * 0; }
  for (; i < n; i++) a0 += v[i] * 0;
  if (a0 + a1 + a2 + a3 === 0) return -1;
  for (let i = 0; i < n; i++) if (!Number.isFinite(v[i])) return i;
  return -1;
}

/** Writes BlockStream's staged groups (at `staged`: values, or source rows of a conv1d [K, N] tensor) into the f32 or
 *  f16 matrix at dst with the place_weights kernel; a NaN or ±inf among them (the kernel's flag) is found in the
 *  staged values and named. */
function placeWriter(backend: Backend, staged: Float32Array, flag: number, dst: number, dt: number, conv1d: boolean, N: number, K: number, file: string, key: string): GroupWriter {
  const size = dt === DT_F32 ? 4 : 2, per = conv1d ? N : 1; // staged values per group
  return (first, groups) => flaggedKernel(backend, flag, staged, groups * per, first * per, file, key, () => {
    if (conv1d) backend.k.place_weights(staged.byteOffset, dst + first * size, dt, groups, N, K, 1, flag);
    else backend.k.place_weights(staged.byteOffset, dst + first * size, dt, groups, 1, 0, 0, flag);
  });
}

/** Runs a loader kernel that sets the i32 at `flag` when one of the first `count` staged values is NaN or ±inf,
 *  and then names the first such value: element elem0 + its index of the tensor. */
function flaggedKernel(backend: Backend, flag: number, staged: Float32Array, count: number, elem0: number, file: string, key: string, kernel: () => void): void {
  const flagged = new Int32Array(backend.arena.memory.buffer, flag, 1);
  flagged[0] = 0;
  kernel();
  if (flagged[0] === 0) return;
  const bad = firstNonFinite(staged, count);
  throw new WeightsError(`${file}: tensor ${key} contains ${staged[bad]} at element ${elem0 + bad} (NaN or infinite weights)`);
}

/** The error for an inf or NaN among the halves moved into [N, K] at ptr: the first in the file's order (a conv1d
 *  [K, N] tensor was transposed), named by its element there. */
function movedHalvesError(backend: Backend, ptr: number, transpose: boolean, N: number, K: number, file: string, key: string): never {
  const h = new Uint16Array(backend.arena.memory.buffer, ptr, N * K);
  for (let f = 0; f < N * K; f++) {
    const v = h[transpose ? (f % N) * K + Math.floor(f / N) : f];
    if ((v & 0x7c00) === 0x7c00) throw new WeightsError(`${file}: tensor ${key} contains ${fp16ToF32(v)} at element ${f} (NaN or infinite weights)`);
  }
  throw new WeightsError(`${file}: tensor ${key} holds a NaN or infinite half`);
}

/** The error for an f16 matrix placed at ptr (from f32 values, place_weights: finite ones, so an inf half is a
 *  weight past the f16 range, |w| ≥ 65520, which rounds to inf): the first such half in the file's order (a conv1d
 *  [K, N] tensor was transposed) is named by its row and column in the tensor's shape as the file stores it, with its
 *  value read again from the file (only here, on the way to failing; the staged values are gone). */
async function outOfF16Range(reader: TensorReader, info: TensorInfoLike, backend: Backend, ptr: number, transpose: boolean,
  N: number, K: number, file: string, key: string, group?: TensorGroup): Promise<WeightsError> {
  const h = new Uint16Array(backend.arena.memory.buffer, ptr, N * K);
  const at = (f: number) => h[transpose ? (f % N) * K + Math.floor(f / N) : f]; // element f of the file's order
  let f = 0;
  while (f < N * K - 1 && (at(f) & 0x7c00) !== 0x7c00) f++;
  const cols = info.shape.length === 2 ? info.shape[1] : N * K;
  const where = `row ${Math.floor(f / cols)}, column ${f % cols}`;
  let value: number | undefined;
  try { value = await elementOf(reader, info, f); } catch { /* named without its value */ }
  const advice = `load it as fp32${group ? ` (dtype 'fp32', or a plan with ${group}: 'fp32')` : ''}`;
  const what = value !== undefined && floatToHalf(value) === at(f) ? `weight ${value}` : 'a weight';
  return new WeightsError(`${file}: tensor ${key}: ${what} (${where}) is out of the f16 range (largest 65504); ${advice}`);
}

/** Element f (in the file's order) of a tensor, read again from the reader as the loader decodes it. */
async function elementOf(reader: TensorReader, info: TensorInfoLike, f: number): Promise<number | undefined> {
  const size = SRC_BYTES[info.dtype], at = f * size, bytes = new Uint8Array(size);
  let pos = 0, got = 0;
  for await (const { bytes: chunk } of reader.chunks(info.name, CHUNK_VALUES * size)) {
    const lo = Math.max(at + got - pos, 0), hi = Math.min(at + size - pos, chunk.length);
    if (lo < hi) { bytes.set(chunk.subarray(lo, hi), got); got += hi - lo; }
    pos += chunk.length;
    if (got === size) break;
  }
  if (got < size) return undefined;
  const out = new Float32Array(1);
  convertToF32(info.dtype as STDtype, bytes, out);
  return out[0];
}

/** Writes BlockStream's staged halves (values, or source rows of a conv1d [K, N] tensor) into the f16 matrix at dst
 *  with the place_halves kernel, as they are. */
function halvesWriter(backend: Backend, staged: Uint16Array, dst: number, conv1d: boolean, N: number, K: number): GroupWriter {
  return (first, groups) => {
    if (conv1d) backend.k.place_halves(staged.byteOffset, dst + first * 2, groups, N, K, 1);
    else backend.k.place_halves(staged.byteOffset, dst + first * 2, groups, 1, 0, 0);
  };
}

/** Bytes the weights will take for a config and dtype, without reading the file (for `info`). */
export function estimateWeightBytes(cfg: GPT2Config, dtype: DTypeSpec, head: HeadKind = 'lm', untiedLmHead = false): number {
  const names = new Set<string>(untiedLmHead ? ['lm_head.weight'] : []);
  const { plan } = resolvePlan(dtype);
  // every layer stores the same: one layer's bytes times n_layer (a loop over n_layer could run for minutes)
  const bytes = (layers: number) => specs(cfg, head, names, layers).reduce((s, sp) => s + storedBytes(sp, plan), 0);
  return bytes(0) + cfg.n_layer * (bytes(1) - bytes(0));
}
