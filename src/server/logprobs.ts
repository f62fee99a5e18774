// OpenAI's completions extras on one row of logits: the log-probabilities of the chosen token and of the most
// likely ones (`logprobs`), and the additive presence/frequency penalties and logit_bias that change the logits
// before the sampling processors. Log-probabilities are the model's own (log-softmax of the raw logits, in f64),
// so scoring a text does not depend on the sampling options of the request. A choice's logprobs go out with its
// text: an entry is released once its token's text has started to be sent, so a stop sequence that cuts the text
// cuts the logprobs at the same place, streamed or not.
import { createStreamingDecoder } from '../tokenizer/streaming.js';
import type { GPT2Tokenizer } from '../tokenizer/tokenizer.js';

/** A token's log-probability and the `top` most likely tokens at its position (most likely first). */
export interface TokenLogprob {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}

/** log softmax(row) in f64: [V]. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/** The log-probability of `id` in `lp` and the `k` largest entries (ties: the lower id first). */
export function topLogprobs(lp: Float64Array, id: number, k: number): TokenLogprob {
  const top: { id: number; logprob: number }[] = [];
  if (k > 0) {
    // one pass keeping the k best in a small sorted list: k is at most 5 (OpenAI's limit), V is 50257
    for (let i = 0; i < lp.length; i++) {
      const v = lp[i];
      if (top.length === k && v <= top[k - 1].logprob) continue;
      let at = top.length;
      while (at > 0 && top[at - 1].logprob < v) at--;
      top.splice(at, 0, { id: i, logprob: v });
      if (top.length > k) top.pop();
    }
  }
  return { id, logprob: lp[id], top };
}

/**
 * OpenAI's definitions, in place: logit[j] -= presence * (count[j] > 0) + frequency * count[j], over the tokens
 * this choice generated so far (not the prompt), then logit[j] += bias[j].
 */
export function applyOpenAIPenalties(logits: Float32Array, counts: Map<number, number>, presence: number, frequency: number, bias: Map<number, number> | undefined): void {
  if (presence !== 0 || frequency !== 0) for (const [j, c] of counts) logits[j] -= presence + frequency * c;
  if (bias) for (const [j, b] of bias) logits[j] += b;
}

/** A token of a choice with its log-probabilities (null: none, the prompt's first token) and where its text starts. */
export interface LogprobEntry {
  id: number;
  lp: TokenLogprob | null;
  /** Offset of the token's text in the text it belongs to (the prompt, or the completion after it). */
  offset: number;
}

/**
 * The entries of one choice's generated tokens, held until their text is sent: offsets only grow, so what is
 * released is always a prefix. A token whose text has started to go out (offset < characters sent) is released;
 * at the end, every entry left is when the text ended by itself, none when a stop sequence cut it (its tokens'
 * text was never sent). Streaming and the one-piece response release the same entries.
 */
export class HeldLogprobs {
  private held: LogprobEntry[] = [];

  add(entry: LogprobEntry): void {
    this.held.push(entry);
  }

  /** The entries whose text starts before `sent` characters (every one held, with `all`). */
  release(sent: number, all = false): LogprobEntry[] {
    let n = 0;
    while (n < this.held.length && (all || this.held[n].offset < sent)) n++;
    return this.held.splice(0, n);
  }
}

/** The prompt's entries: each token with its log-probability and its offset in the decoded prompt. */
export function promptEntries(tokenizer: GPT2Tokenizer, ids: number[], lps: (TokenLogprob | null)[]): LogprobEntry[] {
  const decoder = createStreamingDecoder(tokenizer, { skip_special_tokens: false });
  let at = 0;
  return ids.map((id, i) => {
    const offset = at;
    at += decoder.push(id).length;
    return { id, lp: lps[i], offset };
  });
}

/**
 * OpenAI's logprobs object for some entries: token strings, their log-probabilities, the top ones (by token
 * string), and each token's offset in the choice's text, `base` being where the entries' text starts in it.
 */
export function logprobsObject(tokenizer: GPT2Tokenizer, entries: LogprobEntry[], base: number) {
  const piece = (id: number) => tokenizer.decode([id], { skip_special_tokens: false });
  return {
    tokens: entries.map((e) => piece(e.id)),
    token_logprobs: entries.map((e) => (e.lp ? e.lp.logprob : null)),
    top_logprobs: entries.map((e) => (e.lp ? Object.fromEntries(e.lp.top.map((x) => [piece(x.id), x.logprob])) : null)),
    text_offset: entries.map((e) => base + e.offset),
  };
}
