// Grouped-query attention of one chunk of new tokens over the cached past plus the chunk itself,
// in TypeScript (the twin of native/attention.c). Mask: causal, plus `pos - key < window` on
// sliding layers; image tokens additionally see every token of their own image (bidirectional
// block), in both layer types (transformers 4.57: (causal AND window) OR same_image).
// A cache of a 16-bit type is read one row at a time, widened to float32 first (as the native
// kernel does), so the arithmetic is the same for every type.
import { kvIndex, type AttentionShape, type FullAttentionShape, type ImageSpans, type KvStore } from './backend.js';
import { storeType, toKvBits, widenKvRow } from './kv-types.js';

let scoresScratch = new Float64Array(0);
let accScratch = new Float64Array(0);
let rowScratch = new Float32Array(0);

/**
 * out[t] = attention of q[t] (position start + t) over keys [lo, hi] where keys before `start`
 * come from the cache and the rest from kChunk/vChunk ([T, numKvHeads * headDim]).
 */
export function attendChunk(out: Float32Array, q: Float32Array, kChunk: Float32Array, vChunk: Float32Array, cache: KvStore,
                          start: number, T: number, s: AttentionShape, images?: ImageSpans): void {
  const { numHeads, numKvHeads, headDim, scale, window } = s;
  const group = numHeads / numKvHeads;
  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  if (scoresScratch.length < start + T) scoresScratch = new Float64Array(start + T);
  const scores = scoresScratch;
  const type = storeType(cache);
  const wide = type === 'f32';
  if (rowScratch.length < headDim) rowScratch = new Float32Array(headDim);
  const row = rowScratch;
  for (let t = 0; t < T; t++) {
    const pos = start + t;
    let lo = window > 0 ? Math.max(0, pos - window + 1) : 0;
    let hi = pos;
    if (images && images.spanStart[t]! >= 0) {
      lo = Math.min(lo, start + images.spanStart[t]!);
      hi = Math.max(hi, start + images.spanEnd[t]!);
    }
    for (let h = 0; h < numHeads; h++) {
      const qo = t * qDim + h * headDim;
      const kvHead = Math.floor(h / group);
      const kvo = kvHead * headDim;
      let max = -Infinity;
      for (let j = lo; j <= hi; j++) {
        const past = j < start;
        let kBuf = past ? cache.k : kChunk;
        let ko = past ? kvIndex(cache, slot(cache, j), kvHead, numKvHeads, headDim) : (j - start) * kvDim + kvo;
        if (past && !wide) {
          widenKvRow(row, kBuf, ko, headDim, type);
          kBuf = row;
          ko = 0;
        }
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d]! * kBuf[ko + d]!;
        const sc = Math.fround(Math.fround(dot) * scale);
        scores[j] = sc;
        if (sc > max) max = sc;
      }
      let sum = 0;
      for (let j = lo; j <= hi; j++) {
        const e = Math.exp(scores[j]! - max);
        scores[j] = e;
        sum += e;
      }
      const acc = accScratch.length >= headDim ? accScratch : (accScratch = new Float64Array(headDim));
      acc.fill(0, 0, headDim);
      for (let j = lo; j <= hi; j++) {
        const p = scores[j]! / sum;
        const past = j < start;
        let vBuf = past ? cache.v : vChunk;
        let vo = past ? kvIndex(cache, slot(cache, j), kvHead, numKvHeads, headDim) : (j - start) * kvDim + kvo;
        if (past && !wide) {
          widenKvRow(row, vBuf, vo, headDim, type);
          vBuf = row;
          vo = 0;
        }
        for (let d = 0; d < headDim; d++) acc[d] += p * vBuf[vo + d]!;
      }
      for (let d = 0; d < headDim; d++) out[qo + d] = acc[d]!;
    }
  }
}

/**
 * Unmasked attention of `tokens` tokens over each other, head by head (the SigLIP tower): the
 * arithmetic of attendChunk for a chunk with no past whose tokens all see the whole chunk.
 */
export function attendAll(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, tokens: number,
                          s: FullAttentionShape): void {
  const { numHeads, headDim, scale } = s;
  const dim = numHeads * headDim;
  if (scoresScratch.length < tokens) scoresScratch = new Float64Array(tokens);
  const scores = scoresScratch;
  const acc = accScratch.length >= headDim ? accScratch : (accScratch = new Float64Array(headDim));
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < numHeads; h++) {
      const qo = t * dim + h * headDim;
      let max = -Infinity;
      for (let j = 0; j < tokens; j++) {
        const ko = j * dim + h * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d]! * k[ko + d]!;
        const sc = Math.fround(Math.fround(dot) * scale);
        scores[j] = sc;
        if (sc > max) max = sc;
      }
      let sum = 0;
      for (let j = 0; j < tokens; j++) {
        const e = Math.exp(scores[j]! - max);
        scores[j] = e;
        sum += e;
      }
      acc.fill(0, 0, headDim);
      for (let j = 0; j < tokens; j++) {
        const p = scores[j]! / sum;
        const vo = j * dim + h * headDim;
        for (let d = 0; d < headDim; d++) acc[d] += p * v[vo + d]!;
      }
      for (let d = 0; d < headDim; d++) out[qo + d] = acc[d]!;
    }
  }
}

/**
 * Stores the chunk's keys and values ([T, numKvHeads * headDim]) into the blocked cache, rounded
 * to its type; a sliding ring keeps only its last `ring` positions.
 */
export function writeKv(cache: KvStore, kChunk: Float32Array, vChunk: Float32Array, start: number, T: number,
                        numKvHeads: number, headDim: number): void {
  const first = cache.ring > 0 ? Math.max(0, T - cache.ring) : 0;
  const kvDim = numKvHeads * headDim;
  const type = storeType(cache);
  if (type !== 'f32') {
    for (let t = first; t < T; t++) {
      const s = slot(cache, start + t);
      for (let h = 0; h < numKvHeads; h++) {
        const from = t * kvDim + h * headDim;
        const o = kvIndex(cache, s, h, numKvHeads, headDim);
        for (let d = 0; d < headDim; d++) {
          cache.k[o + d] = toKvBits(kChunk[from + d]!, type);
          cache.v[o + d] = toKvBits(vChunk[from + d]!, type);
        }
      }
    }
    return;
  }
  for (let t = first; t < T; t++) {
    const s = slot(cache, start + t);
    for (let h = 0; h < numKvHeads; h++) {
      // A plain loop: a subarray view per head costs more than copying its few hundred floats.
      const from = t * kvDim + h * headDim;
      const o = kvIndex(cache, s, h, numKvHeads, headDim);
      for (let d = 0; d < headDim; d++) {
        cache.k[o + d] = kChunk[from + d]!;
        cache.v[o + d] = vChunk[from + d]!;
      }
    }
  }
}

function slot(cache: KvStore, pos: number): number {
  return cache.ring > 0 ? pos % cache.ring : pos;
}
