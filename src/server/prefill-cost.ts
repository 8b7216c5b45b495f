// How many prompt tokens a server step may compute at a given depth. A step runs every decoding
// stream's next token together with prompt chunks, so its duration is what other users wait per
// token. A chunk's weight products cost the same at any depth, but its attention grows with the
// depth on the global layers: a fixed token budget would let a step at 32K take twice as long as
// one at the start. The budget is therefore in units of work: a chunk gets as many tokens as fit
// in the work of `budget` tokens at depth 0.
import type { Gemma3TextConfig } from '../model/config.js';

/**
 * What an attention multiply-add costs relative to one of a weight product, measured on the 4B
 * (1 thread, per CPU-second): a 512-token chunk's attention runs at ~60 GFLOP/s on AVX-512 and
 * AVX2 alike, Q4_0 prompt products at 340 (AVX-512) and 115-150 (AVX2). 4 sits between.
 */
const ATTENTION_COST = 4;

/** The fewest tokens a chunk gets however deep the prompt: a deep prompt still moves on. */
export const MIN_PREFILL_CHUNK = 32;

/** Work (in weight-product FLOPs) of `n` prompt tokens at positions depth .. depth + n - 1. */
export function prefillWork(config: Gemma3TextConfig, depth: number, n: number): number {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim } = config;
  const weightFlops = 2 * config.numLayers * (2 * h * numHeads * headDim + 2 * h * numKvHeads * headDim + 3 * h * f);
  const perKey = 4 * numHeads * headDim * ATTENTION_COST; // q·k and p·v per query head and key
  // Keys the chunk's tokens see on average: half the chunk beyond the depth, within the window on sliding layers.
  const keys = depth + (n + 1) / 2;
  let attention = 0;
  for (const type of config.layerTypes) attention += type === 'sliding' ? Math.min(keys, config.slidingWindow) : keys;
  return n * (weightFlops + perKey * attention);
}

/**
 * The prompt tokens a step computes for a sequence that has `depth` positions cached: `budget`
 * at depth 0, fewer as attention deepens (never under MIN_PREFILL_CHUNK, never over `budget`).
 */
export function prefillTokensAt(config: Gemma3TextConfig, depth: number, budget: number): number {
  const allowed = prefillWork(config, 0, budget);
  if (prefillWork(config, depth, budget) <= allowed) return budget;
  let lo = Math.min(MIN_PREFILL_CHUNK, budget), hi = budget; // work grows with n: the largest n that fits
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (prefillWork(config, depth, mid) <= allowed) lo = mid;
    else hi = mid;
  }
  return lo;
}
