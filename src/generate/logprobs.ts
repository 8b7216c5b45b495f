// Log-probabilities of sampled tokens: the log-softmax of the logits row the sampler saw (after
// logit_bias, penalties and the grammar mask), over the samplable ids, in float64.

export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The `top` most likely ids with their log-probabilities, most likely first. */
  top: [number, number][];
}

/** Most alternatives a request may ask for (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

export function tokenLogprob(logits: Float32Array, id: number, top: number, vocab: number): TokenLogprob {
  const n = Math.min(vocab, logits.length);
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = logits[i]!;
    if (x > max) max = x;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = logits[i]!;
    if (x !== -Infinity && x === x) sum += Math.exp(x - max);
  }
  const lse = max + Math.log(sum);
  // The `top` largest, kept sorted descending (ties: the lower id first).
  const best: [number, number][] = [];
  if (top > 0) {
    for (let i = 0; i < n; i++) {
      const x = logits[i]!;
      if (x === -Infinity || x !== x) continue;
      if (best.length === top && x <= best[top - 1]![1]) continue;
      let at = best.length;
      while (at > 0 && best[at - 1]![1] < x) at--;
      best.splice(at, 0, [i, x]);
      if (best.length > top) best.pop();
    }
  }
  return { id, logprob: logits[id]! - lse, top: best.map(([i, x]) => [i, x - lse]) };
}
