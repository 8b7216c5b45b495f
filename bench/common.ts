// Shared by the benchmark runners: the same prompt ids for both engines, and peak memory.

/** A fixed pseudo-random prompt of ordinary token ids (BOS first). */
export function benchPrompt(n: number): number[] {
  const ids = [2];
  let s = 12345;
  while (ids.length < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids.push(1000 + (s % 200000));
  }
  return ids;
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Log-probabilities of one logits row (float64). */
export function logProbs(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

/**
 * How far logits `b` are from `a` ([positions, V] each): over every position's top-10 ids of `a`,
 * the mean and largest change in log-probability, and at how many positions b's argmax is a's.
 */
export function topLogProbDistance(a: Float32Array, b: Float32Array, positions: number, V: number): { mean: number; max: number; sameArgmax: number } {
  let sum = 0;
  let count = 0;
  let max = 0;
  let sameArgmax = 0;
  for (let t = 0; t < positions; t++) {
    const pa = logProbs(a.subarray(t * V, (t + 1) * V));
    const pb = logProbs(b.subarray(t * V, (t + 1) * V));
    const top = [...pa.keys()].sort((i, j) => pa[j]! - pa[i]!).slice(0, 10);
    for (const id of top) {
      const d = Math.abs(pa[id]! - pb[id]!);
      sum += d;
      count++;
      max = Math.max(max, d);
    }
    let argmaxB = 0;
    for (let i = 1; i < pb.length; i++) if (pb[i]! > pb[argmaxB]!) argmaxB = i;
    if (argmaxB === top[0]) sameArgmax++;
  }
  return { mean: sum / count, max, sameArgmax };
}
