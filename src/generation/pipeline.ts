// pipeline(task, model) as in transformers.js: a model and its tokenizer behind one callable.
import { InputError, OptionError } from '../errors.js';
import { checkKnownKeys } from '../options.js';
import { loadConfig } from '../io/config.js';
import { resolveSource, withGGUFFile } from '../io/resolve.js';
import type { ModelSource } from '../io/source.js';
import { GPT2ForSequenceClassification, GPT2ForTokenClassification, GPT2LMHeadModel, type GPT2PreTrainedModel, type PretrainedOptions } from '../model/gpt2.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../tokenizer/index.js';
import { resolveGenerateOptions, stopStringEnd, TEXT_GENERATION_TASK, type GenerateOptions } from './generate.js';

export type Task = 'text-generation' | 'token-classification' | 'text-classification' | 'sentiment-analysis' | 'ner';
export const DEFAULT_MODEL = 'openai-community/gpt2';

export interface TextGenerationOutput { generated_text: string }
export interface TextGenerationCallOptions extends Omit<GenerateOptions, 'input_ids' | 'inputs' | 'attention_mask' | 'tokenizer'> {
  /** Include the prompt in generated_text (default true, as transformers). */
  return_full_text?: boolean;
  /** Passed to the tokenizer (transformers.js's pipeline option; GPT-2 adds no special tokens unless add_bos_token). */
  add_special_tokens?: boolean;
}
export interface TokenClassificationOutput { entity: string; score: number; index: number; word: string; start: number; end: number }
export interface TextClassificationOutput { label: string; score: number }

interface Base<M = GPT2PreTrainedModel> { model: M; tokenizer: GPT2Tokenizer; task: Task; dispose(): Promise<void> }
/** One prompt gives one list of outputs; a batch of prompts gives one list per prompt (as transformers.js). */
export type TextGenerationPipeline = Base<GPT2LMHeadModel> & {
  (text: string, opts?: TextGenerationCallOptions): Promise<TextGenerationOutput[]>;
  (texts: string[], opts?: TextGenerationCallOptions): Promise<TextGenerationOutput[][]>;
};
export type TokenClassificationPipeline = Base<GPT2ForTokenClassification> & {
  (text: string, opts?: { ignore_labels?: string[] }): Promise<TokenClassificationOutput[]>;
  (texts: string[], opts?: { ignore_labels?: string[] }): Promise<TokenClassificationOutput[][]>;
};
export type TextClassificationPipeline = Base<GPT2ForSequenceClassification> & {
  (text: string, opts?: { top_k?: number | null }): Promise<TextClassificationOutput[]>;
  /** A batch with top_k 1 (the default): one best label per text, a flat list (as transformers and transformers.js). */
  (texts: string[], opts?: { top_k?: 1 }): Promise<TextClassificationOutput[]>;
  (texts: string[], opts: { top_k: number | null }): Promise<TextClassificationOutput[][]>;
};

export async function pipeline(task: 'text-generation', model?: string | ModelSource, opts?: PretrainedOptions): Promise<TextGenerationPipeline>;
export async function pipeline(task: 'token-classification' | 'ner', model?: string | ModelSource, opts?: PretrainedOptions): Promise<TokenClassificationPipeline>;
export async function pipeline(task: 'text-classification' | 'sentiment-analysis', model?: string | ModelSource, opts?: PretrainedOptions): Promise<TextClassificationPipeline>;
export async function pipeline(task: Task, model: string | ModelSource = DEFAULT_MODEL, opts: PretrainedOptions = {}): Promise<any> {
  // gguf_file picks the file here, once: the tokenizer and the model then read the same GGUF source
  const source = typeof model === 'string' ? await (opts.resolve ? opts.resolve(model, opts) : resolveSource(model, { ...opts, tokenizer: true } as any)) : await withGGUFFile(model, opts.gguf_file);
  // config.json before the tokenizer's files: a folder that is no model (empty, a wrong path) is named by the
  // file every model has, as from_pretrained and `gpt2-wasm info` name it
  await loadConfig(source);
  const tokenizer = await AutoTokenizer.from_pretrained(source);
  const o = { ...opts, resolve: undefined, gguf_file: undefined };
  let fn: any;
  if (task === 'text-generation') {
    const m = await GPT2LMHeadModel.from_pretrained(source, o);
    fn = async (texts: string | string[], callOpts: TextGenerationCallOptions = {}) => {
      const list = Array.isArray(texts) ? texts : [texts];
      if (list.length === 0) throw new OptionError('text-generation needs at least one prompt');
      const { return_full_text = true, add_special_tokens, ...gen } = callOpts;
      if (typeof return_full_text !== 'boolean') throw new OptionError(`return_full_text must be true or false, got ${JSON.stringify(return_full_text)}`);
      if (add_special_tokens !== undefined && typeof add_special_tokens !== 'boolean') throw new OptionError(`add_special_tokens must be true or false, got ${JSON.stringify(add_special_tokens)}`);
      const enc = tokenizer(list, { padding: true, padding_side: 'left', add_special_tokens });
      // a prompt with no tokens: named here (generate() would only see an all-zero mask row the caller never passed)
      const empty = enc.attention_mask.findIndex((row: number[]) => !row.includes(1));
      if (empty >= 0) throw new InputError(`text-generation: prompt ${list.length > 1 ? `${empty} ` : ''}is empty (no tokens): ${JSON.stringify(list[empty])}`);
      const genOpts = { ...gen, input_ids: enc.input_ids, attention_mask: enc.attention_mask, tokenizer, [TEXT_GENERATION_TASK]: true };
      const seqs = await m.generate(genOpts);
      const T = enc.input_ids[0].length, total = seqs.dims[1];
      const data = seqs.data as BigInt64Array;
      // the end-of-text ids this call stopped on (its eos_token_id, else the generation config's, else the model's)
      const eos = new Set(resolveGenerateOptions(m, genOpts, T).eos);
      const outs = list.map((prompt, b) => {
        const row = Array.from(data.subarray(b * total + T, (b + 1) * total), Number);
        const end = row.findIndex((t) => eos.has(t));
        let text = tokenizer.decode(end < 0 ? row : row.slice(0, end + 1), { skip_special_tokens: true });
        // the text ends right after the first stop string that ends in it; one may begin in the prompt, as generate()
        // matches them (transformers' StopStringCriteria), so the prompt's last characters are searched too
        const stops = ([] as string[]).concat(gen.stop ?? gen.stop_strings ?? []);
        if (stops.length) {
          const ctx = prompt.slice(Math.max(0, prompt.length - Math.max(...stops.map((s) => s.length)) + 1));
          const cut = stopStringEnd(ctx + text, ctx.length, stops);
          if (cut >= 0) text = text.slice(0, cut - ctx.length);
        }
        return [{ generated_text: return_full_text ? prompt + text : text }];
      });
      return Array.isArray(texts) ? outs : outs[0];
    };
    fn.model = m;
  } else if (task === 'token-classification' || task === 'ner') {
    const m = await GPT2ForTokenClassification.from_pretrained(source, o);
    fn = async (texts: string | string[], callOpts: { ignore_labels?: string[] } = {}) => {
      checkKnownKeys(callOpts, TOKEN_CLASSIFICATION_KEYS, 'token-classification option');
      const list = textList(texts);
      const ignore = new Set(callOpts.ignore_labels ?? ['O']);
      const encoded = list.map((t, i) => encodeText(tokenizer, task, t, i, Array.isArray(texts)));
      const results: TokenClassificationOutput[][] = [];
      for (const ids of encoded) {
        const out = await m.forward({ input_ids: [ids] });
        const L = m.config.num_labels, logits = out.logits!.data as Float32Array;
        const res: TokenClassificationOutput[] = [];
        let offset = 0;
        ids.forEach((id, i) => {
          const word = tokenizer.decode([id]);
          const start = offset; offset += word.length;
          const p = softmax(logits.subarray(i * L, (i + 1) * L));
          const best = p.indexOf(Math.max(...p));
          const entity = m.config.id2label[best] ?? `LABEL_${best}`;
          if (!ignore.has(entity)) res.push({ entity, score: p[best], index: i, word, start, end: offset });
        });
        results.push(res);
      }
      return Array.isArray(texts) ? results : results[0];
    };
    fn.model = m;
  } else if (task === 'text-classification' || task === 'sentiment-analysis') {
    const m = await GPT2ForSequenceClassification.from_pretrained(source, o);
    fn = async (texts: string | string[], callOpts: { top_k?: number | null } = {}) => {
      checkKnownKeys(callOpts, TEXT_CLASSIFICATION_KEYS, 'text-classification option');
      const topK = callOpts.top_k;
      if (topK !== undefined && topK !== null && !(typeof topK === 'number' && Number.isInteger(topK) && topK >= 1)) {
        throw new OptionError(`top_k must be a positive integer, or null for every label, got ${JSON.stringify(topK) ?? String(topK)}`);
      }
      const list = textList(texts);
      // every text must have tokens, alone or in a batch (a padded empty row would be scored as all padding)
      const encoded = list.map((t, i) => encodeText(tokenizer, task, t, i, Array.isArray(texts)));
      const pad = m.config.pad_token_id;
      const enc = list.length > 1 && pad !== null ? tokenizer(list as string[], { padding: true, padding_side: 'right' } as any) : null;
      const results: TextClassificationOutput[][] = [];
      if (enc) {
        const out = await m.forward({ input_ids: enc.input_ids.map((r, b) => r.map((t, j) => (enc.attention_mask[b][j] ? t : pad!))), attention_mask: enc.attention_mask });
        for (let b = 0; b < list.length; b++) results.push(labelsOf(m, (out.logits!.data as Float32Array).subarray(b * m.config.num_labels, (b + 1) * m.config.num_labels), topK));
      } else {
        for (const ids of encoded) {
          const out = await m.forward({ input_ids: [ids] });
          results.push(labelsOf(m, out.logits!.data as Float32Array, topK));
        }
      }
      // a batch at top_k 1 is one flat list of best labels (transformers, transformers.js); otherwise one list per text
      if (Array.isArray(texts)) return topK === undefined || topK === 1 ? results.map((r) => r[0]) : results;
      return results[0];
    };
    fn.model = m;
  } else {
    throw new OptionError(`unsupported pipeline task '${task}' (text-generation, token-classification, text-classification)`);
  }
  fn.tokenizer = tokenizer;
  fn.task = task;
  fn.dispose = () => fn.model.dispose();
  return fn;
}

/** The texts of a call: one string, or an array of them (an empty array gives no results). */
function textList(texts: unknown): unknown[] {
  return Array.isArray(texts) ? texts : [texts];
}

/** The ids of text `i` of a call, refusing a non-string and a text without tokens (as the model refuses empty input). */
function encodeText(tokenizer: GPT2Tokenizer, task: Task, text: unknown, i: number, batch: boolean): number[] {
  const what = batch ? `${task}: text ${i}` : `${task}: the text`;
  if (typeof text !== 'string') throw new InputError(`${what} must be a string, got ${text === null ? 'null' : typeof text}`);
  const ids = tokenizer.encode(text);
  if (ids.length === 0) throw new InputError(`${what} is empty (no tokens)${batch ? `: ${JSON.stringify(text)}` : ''}`);
  return ids;
}

function softmax(l: ArrayLike<number>): number[] {
  const mx = Math.max(...Array.from(l));
  const e = Array.from(l, (v) => Math.exp(v - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const TOKEN_CLASSIFICATION_KEYS = new Set(['ignore_labels']);
const TEXT_CLASSIFICATION_KEYS = new Set(['top_k']);

function labelsOf(m: GPT2PreTrainedModel, logits: ArrayLike<number>, topK: number | null | undefined): TextClassificationOutput[] {
  // as transformers' pipeline: a sigmoid per label for multi-label models and single-label regressors, else softmax
  const sigmoid = m.config.problem_type === 'multi_label_classification' || m.config.num_labels === 1;
  const p = sigmoid ? Array.from(logits, (v) => 1 / (1 + Math.exp(-v))) : softmax(logits);
  const all = p.map((score, i) => ({ label: m.config.id2label[i] ?? `LABEL_${i}`, score })).sort((a, b) => b.score - a.score);
  return topK === null ? all : all.slice(0, topK ?? 1);
}
