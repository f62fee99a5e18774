// Perplexity of a token sequence under a causal LM, windowed as the fixtures' reference (and llama-perplexity's
// non-overlapping mode): the ids are cut into windows ids[0:P], ids[P:2P], ... (P = n_positions unless given; the
// last may be shorter); each window is its own forward pass from position 0 with no past and no mask; in a window
// of length L the tokens at offsets 1..L-1 are scored with the log-softmax (f64) of the logits one offset before.
import { InputError, OptionError } from '../errors.js';
import type { GPT2LMHeadModel } from '../model/gpt2.js';

export interface PerplexityOptions {
  /** Tokens per window (default and maximum: the model's n_positions). */
  window?: number;
  /** Called after each window with the running figures (llama-perplexity's "[1]x,[2]y" progress). */
  onProgress?: (p: PerplexityProgress) => void;
}

export interface PerplexityProgress {
  /** Windows scored so far, of `windows`. */
  window: number;
  windows: number;
  /** exp of the mean NLL of the tokens scored so far. */
  ppl: number;
  predicted: number;
}

export interface PerplexityResult {
  /** exp(nll_mean). */
  ppl: number;
  /** Mean negative log-likelihood of the predicted tokens, in nats. */
  nll_mean: number;
  /** Tokens in the input. */
  tokens: number;
  /** Tokens scored: every token except the first of each window. */
  predicted: number;
  window: number;
  windows: number;
  /**
   * Standard error of `ppl`, as llama-perplexity's "PPL = x +/- e": the standard error of the mean of the per-token
   * NLLs, sqrt((mean(nll²) − nll_mean²) / (predicted − 1)), times ppl (d exp(m) = exp(m) dm). It treats the tokens as
   * independent samples, which they are not (neighbouring tokens are correlated), so it is a rough guide to how
   * much two perplexities of the same text may differ by chance, not a confidence interval. NaN with one token.
   */
  ppl_std_error: number;
}

export async function perplexity(model: GPT2LMHeadModel, ids: ArrayLike<number>, opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  const P = opts?.window ?? model.config.n_positions;
  if (!Number.isInteger(P) || P < 2 || P > model.config.n_positions) {
    const shown = typeof P === 'number' ? String(P) : JSON.stringify(P) ?? String(P);
    throw new OptionError(`perplexity window must be an integer in 2..${model.config.n_positions} (n_positions), got ${shown}`);
  }
  if (ids === null || typeof ids !== 'object' || !Number.isInteger((ids as ArrayLike<number>).length)) {
    throw new InputError(`perplexity needs an array of token ids, got ${ids === null ? 'null' : typeof ids === 'string' ? 'a string (encode it with the tokenizer first)' : typeof ids}`);
  }
  const N = ids.length;
  if (N < 2) throw new InputError(`perplexity needs at least 2 tokens, got ${N}`);
  const onProgress = opts?.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new OptionError(`perplexity onProgress must be a function, got ${typeof onProgress}`);
  const windowCount = Math.ceil(N / P);
  let nllSum = 0, nll2Sum = 0, predicted = 0, windows = 0;
  for (let w0 = 0; w0 < N; w0 += P) {
    const win = Array.from({ length: Math.min(P, N - w0) }, (_, i) => ids[w0 + i]);
    windows++;
    if (win.length < 2) continue;
    const out = await model.forward({ input_ids: [win], use_cache: false });
    const logits = out.logits!.data as Float32Array; // [1, L, V]
    const V = logits.length / win.length;
    for (let t = 0; t + 1 < win.length; t++) {
      const nll = tokenNll(logits, t * V, V, win[t + 1]);
      nllSum += nll; nll2Sum += nll * nll;
    }
    predicted += win.length - 1;
    onProgress?.({ window: windows, windows: windowCount, ppl: Math.exp(nllSum / predicted), predicted });
  }
  const nll_mean = nllSum / predicted, ppl = Math.exp(nll_mean);
  const variance = nll2Sum / predicted - nll_mean * nll_mean; // of the per-token NLLs (can round below 0 when all are equal)
  const ppl_std_error = predicted > 1 ? ppl * Math.sqrt(Math.max(0, variance) / (predicted - 1)) : NaN;
  return { ppl, nll_mean, tokens: N, predicted, window: P, windows, ppl_std_error };
}

/** -log softmax(row)[target] in f64 for the logits row at `o` of length V. */
function tokenNll(logits: Float32Array, o: number, V: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (logits[o + v] > max) max = logits[o + v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v] - max);
  return max + Math.log(sum) - logits[o + target];
}
