// Grouped-query attention of one chunk of new tokens over the cached past plus the chunk itself,
// in TypeScript (the twin of native/attention.c). Mask: causal, plus `pos - key < window` on
// sliding layers; image tokens additionally see every token of their own image (bidirectional
// block), in both layer types (transformers 4.57: (causal AND window) OR same_image).
// A cache of a 16-bit type is read one row at a time, widened to float32 first (as the native
// kernel does), so the arithmetic is the same for every type.
import { kvIndex, type AttentionShape, type FullAttentionShape, type ImageSpans, type KvStore } from './backend.js';
import { storeType, toKvBits, widenKvRow } from './kv-types.js';

/** Queries per tile: each key and value row is fetched (and widened) once for this many tokens. */
const TILE = 16;
/**
 * Keys per block of the online softmax, aligned to absolute positions (ATTN_BLOCK in
 * native/attention.c): a query's arithmetic depends on its own key range only, never on its
 * tile or on how the prompt was cut into chunks.
 */
export const ATTENTION_BLOCK = 64;

let scoresScratch = new Float64Array(0);
let accScratch = new Float64Array(0);
let stateScratch = new Float64Array(0);
let wideScratch = new Float32Array(0);

/** Bytes the attention scratch holds now: a tile by a block, whatever the prompt length (for tests). */
export function attentionScratchBytes(): number {
  return scoresScratch.byteLength + accScratch.byteLength + stateScratch.byteLength + wideScratch.byteLength;
}

/**
 * out[t] = attention of q[t] (position start + t) over keys [lo, hi] where keys before `start`
 * come from the cache and the rest from kChunk/vChunk ([T, numKvHeads * headDim]).
 *
 * Flash-attention style: per key/value head and tile of TILE queries, keys and values stream
 * block by block; each query head keeps a running max, sum and output, rescaled when the max
 * grows (online softmax). Scratch: TILE x group rows of ATTENTION_BLOCK scores and headDim
 * outputs, whatever the prompt length.
 */
export function attendChunk(out: Float32Array, q: Float32Array, kChunk: Float32Array, vChunk: Float32Array, cache: KvStore,
                          start: number, T: number, s: AttentionShape, images?: ImageSpans): void {
  const { numHeads, numKvHeads, headDim, scale, window } = s;
  const group = numHeads / numKvHeads;
  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  const B = ATTENTION_BLOCK;
  const rowsMax = TILE * group;
  if (scoresScratch.length < rowsMax * B) scoresScratch = new Float64Array(rowsMax * B);
  if (accScratch.length < rowsMax * headDim) accScratch = new Float64Array(rowsMax * headDim);
  if (stateScratch.length < 2 * rowsMax) stateScratch = new Float64Array(2 * rowsMax);
  if (wideScratch.length < 2 * B * headDim) wideScratch = new Float32Array(2 * B * headDim);
  const scores = scoresScratch;
  const acc = accScratch;
  const state = stateScratch; // [0, rowsMax): running max; [rowsMax, 2 rowsMax): running sum
  const type = storeType(cache);
  const wide = type === 'f32';
  // Where each key and value row of a block lies: buffer and offset.
  const kBufs: (Float32Array | Uint16Array)[] = new Array(B);
  const vBufs: (Float32Array | Uint16Array)[] = new Array(B);
  const kOffs = new Int32Array(B);
  const vOffs = new Int32Array(B);
  const lo = new Int32Array(TILE);
  const hi = new Int32Array(TILE);
  const locate = (kv: 0 | 1, j: number, j0: number, kvHead: number): void => {
    const bufs = kv === 0 ? kBufs : vBufs;
    const offs = kv === 0 ? kOffs : vOffs;
    if (j >= start) {
      bufs[j - j0] = kv === 0 ? kChunk : vChunk;
      offs[j - j0] = (j - start) * kvDim + kvHead * headDim;
      return;
    }
    const at = kvIndex(cache, slot(cache, j), kvHead, numKvHeads, headDim);
    if (wide) {
      bufs[j - j0] = kv === 0 ? cache.k : cache.v;
      offs[j - j0] = at;
      return;
    }
    const o = (kv * B + (j - j0)) * headDim;
    widenKvRow(wideScratch.subarray(o, o + headDim), kv === 0 ? cache.k : cache.v, at, headDim, type);
    bufs[j - j0] = wideScratch;
    offs[j - j0] = o;
  };
  for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
    for (let t0 = 0; t0 < T; t0 += TILE) {
      const nq = Math.min(TILE, T - t0);
      let tileLo = Infinity;
      let tileHi = -1;
      for (let r = 0; r < nq; r++) {
        const t = t0 + r;
        const pos = start + t;
        let l = window > 0 ? Math.max(0, pos - window + 1) : 0;
        let h = pos;
        if (images && images.spanStart[t]! >= 0) {
          l = Math.min(l, start + images.spanStart[t]!);
          h = Math.max(h, start + images.spanEnd[t]!);
        }
        lo[r] = l;
        hi[r] = h;
        tileLo = Math.min(tileLo, l);
        tileHi = Math.max(tileHi, h);
      }
      state.fill(-Infinity, 0, nq * group);
      state.fill(0, rowsMax, rowsMax + nq * group);
      acc.fill(0, 0, nq * group * headDim);
      for (let b0 = tileLo - (tileLo % B); b0 <= tileHi; b0 += B) {
        const j0 = Math.max(b0, tileLo);
        const j1 = Math.min(b0 + B - 1, tileHi);
        for (let j = j0; j <= j1; j++) {
          locate(0, j, j0, kvHead);
          locate(1, j, j0, kvHead);
        }
        for (let r = 0; r < nq; r++) {
          const from = Math.max(lo[r]!, j0);
          const to = Math.min(hi[r]!, j1);
          if (from > to) continue; // none of this query's keys: its state stays as it is
          for (let g = 0; g < group; g++) {
            const x = r * group + g;
            const qo = (t0 + r) * qDim + (kvHead * group + g) * headDim;
            const so = x * B - b0; // scores[so + j]: position j
            let blockMax = -Infinity;
            for (let j = from; j <= to; j++) {
              const kBuf = kBufs[j - j0]!;
              const ko = kOffs[j - j0]!;
              let dot = 0;
              for (let d = 0; d < headDim; d++) dot += q[qo + d]! * kBuf[ko + d]!;
              const sc = Math.fround(Math.fround(dot) * scale);
              scores[so + j] = sc;
              if (sc > blockMax) blockMax = sc;
            }
            const ao = x * headDim;
            if (blockMax > state[x]!) {
              if (state[x]! !== -Infinity) { // earlier blocks' terms, rescaled to the new max
                const c = Math.exp(state[x]! - blockMax);
                for (let d = 0; d < headDim; d++) acc[ao + d] *= c;
                state[rowsMax + x] *= c;
              }
              state[x] = blockMax;
            }
            const max = state[x]!;
            let sum = 0;
            for (let j = from; j <= to; j++) {
              const e = Math.exp(scores[so + j]! - max);
              sum += e;
              const vBuf = vBufs[j - j0]!;
              const vo = vOffs[j - j0]!;
              for (let d = 0; d < headDim; d++) acc[ao + d] += e * vBuf[vo + d]!;
            }
            state[rowsMax + x] += sum;
          }
        }
      }
      for (let r = 0; r < nq; r++) {
        for (let g = 0; g < group; g++) {
          const x = r * group + g;
          const oo = (t0 + r) * qDim + (kvHead * group + g) * headDim;
          const inv = 1 / state[rowsMax + x]!;
          for (let d = 0; d < headDim; d++) out[oo + d] = acc[x * headDim + d]! * inv;
        }
      }
    }
  }
}

/**
 * Unmasked attention of `tokens` tokens over each other, head by head (the SigLIP tower):
 * attendChunk for a chunk with no past whose tokens all lie in one image span.
 */
export function attendAll(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, tokens: number,
                          s: FullAttentionShape): void {
  const spans = { spanStart: new Int32Array(tokens).fill(0), spanEnd: new Int32Array(tokens).fill(tokens - 1) };
  const empty: KvStore = { k: new Float32Array(0), v: new Float32Array(0), slots: 0, ring: 0, block: 1 };
  attendChunk(out, q, k, v, empty, 0, tokens, { numHeads: s.numHeads, numKvHeads: s.numHeads, headDim: s.headDim, scale: s.scale, window: 0 }, spans);
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
