// OpenAI's completions extras on one row of logits: the log-probabilities of the chosen token and of the most
// likely ones (`logprobs`), and the additive presence/frequency penalties and logit_bias that change the logits
// before the sampling processors. Log-probabilities are the model's own (log-softmax of the raw logits, in f64),
// so scoring a text does not depend on the sampling options of the request.

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
