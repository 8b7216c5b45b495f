// The op-shaped interface between the model and its kernels. The backend never sees a layer,
// a head or a token: only matrices stored exactly as on disk and float32 activations.
import type { DType } from '../formats/tensor-source.js';

/** A weight matrix exactly as stored: row-major [rows, cols], rows = output features. */
export interface WeightMatrix {
  readonly dtype: DType;
  readonly rows: number;
  readonly cols: number;
  /** Raw little-endian elements or blocks; never widened to f32 up front. */
  readonly data: Uint8Array;
  /**
   * 'rows' (the default): row after row as stored. 'x16': sixteen rows' blocks interleaved,
   * made by a backend's prepareMatrix for its own kernels only.
   */
  readonly layout?: 'rows' | 'x16';
}

export interface RowRange {
  rowStart: number;
  rowEnd: number;
  outStride: number;
}

/**
 * How the KV cache stores keys and values: float32, or rounded to IEEE half ('f16') or bfloat16
 * ('bf16'), both with round-to-nearest-even, and widened back to float32 when attention reads
 * them (the arithmetic stays float32 either way).
 */
export type KvType = 'f32' | 'f16' | 'bf16';

export const KV_TYPES: readonly KvType[] = ['f32', 'f16', 'bf16'];

/** Bytes one stored key or value element takes. */
export function kvElementBytes(type: KvType): number {
  return type === 'f32' ? 4 : 2;
}

/**
 * Keys and values of one attention layer in blocks of `block` slots (a power of two), each
 * block head-major: [ceil(slots / block), numKvHeads, block, headDim]. One head's keys lie back
 * to back within a block (attention streams them), and the cache fills block after block (its
 * memory is touched only as it fills). ring > 0: slot = pos % ring; otherwise slot = pos.
 */
export interface KvStore {
  /** Float32Array for 'f32'; the 16-bit types' bits in a Uint16Array. */
  readonly k: Float32Array | Uint16Array;
  readonly v: Float32Array | Uint16Array;
  /** Absent: 'f32'. */
  readonly type?: KvType;
  readonly slots: number;
  readonly ring: number;
  readonly block: number;
}

/**
 * Index in k / v of the first element of `slot` for key/value head `head`: the twin of kv_index
 * in native/attention.h (test/native-kernels.test.ts checks they agree).
 */
export function kvIndex(store: KvStore, slot: number, head: number, numKvHeads: number, headDim: number): number {
  const block = store.block;
  return ((Math.floor(slot / block) * numKvHeads + head) * block + (slot % block)) * headDim;
}

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  scale: number; // query_pre_attn_scalar^-0.5
  window: number; // 0: no sliding window
}

/**
 * Bidirectional spans, chunk-relative: token t (inside an image block) also sees keys
 * spanStart[t]..spanEnd[t] (inclusive); -1 for ordinary causal tokens.
 */
export interface ImageSpans {
  spanStart: Int32Array;
  spanEnd: Int32Array;
}

/** The shape of unmasked multi-head attention (no grouped keys, no window, no cache). */
export interface FullAttentionShape {
  numHeads: number;
  headDim: number;
  scale: number;
}

export interface Backend {
  readonly name: 'js' | 'native';
  /** Optional: zeroed float storage for large long-lived buffers such as the KV cache. */
  allocateFloats?(n: number): Float32Array;
  /**
   * Optional hint: the coming pass decodes `streams` sequences together (with several, products
   * of a few activation rows, one per stream). The decoder gives it before every pass, between
   * passes; a server that will run several streams gives it once ahead. Only the caller can tell:
   * a prompt chunk also multiplies several rows, but of one stream. A backend may lay its weights
   * out here (the native one starts background copies of mapped weights for several streams, and
   * swaps finished copies in on every call), so that its products never do such bookkeeping.
   */
  prepareForStreams?(streams: number): void;
  /**
   * Optional: the decoder's pass is starting / has finished (its products done; called even when
   * it failed). The native backend holds one of its two background weight-copying threads during
   * a model's first pass, so that they compete less with it for the cores.
   */
  passStarted?(): void;
  passFinished?(): void;
  /** x[i] = gelu_tanh(x[i]) for i < n (the SigLIP MLP). */
  geluTanh(x: Float32Array, n: number): void;
  /** gate[i] = gelu_tanh(gate[i]) · up[i] for i < n. */
  geluTanhMul(gate: Float32Array, up: Float32Array, n: number): void;
  /** out = rmsNorm(x) · scale for `rows` rows of n (Gemma's scale is 1 + w); out may alias x. */
  rmsNorm(out: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void;
  /** residual += rmsNorm(x) · scale: a sandwich norm's output joining the residual stream. */
  rmsNormAdd(residual: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void;
  /**
   * Optionally rearranges a weight matrix once, at load, into the layout this backend's kernels
   * read fastest (same values; the original may then be dropped).
   */
  prepareMatrix?(w: WeightMatrix, inPlace?: boolean): WeightMatrix;
  /**
   * Optional, for backends that can serve weights straight from a memory mapping of the model
   * file (the loader then maps GGUF files: load/mapped-weights.ts). Prepares a matrix that is a
   * view of such a mapping, as prepareMatrix does a tensor read into fresh memory; the view is
   * shared with the page cache and must never be written.
   */
  prepareMappedMatrix?(w: WeightMatrix): WeightMatrix;
  /** With prepareMappedMatrix: whether Q4_0 / Q8_0 views are served too (else only F32 / F16 / BF16 ones). */
  readonly servesQuantizedViews?: boolean;
  /**
   * out[n, r] = Σ_c w[r, c] · x[n, c] for n < batch and r in [rowStart, rowEnd).
   * `out` has row stride `outStride` (defaults to w.rows); x has row stride w.cols.
   * Q8_0/Q4_0/Q5_0 weights multiply activations quantized to Q8 blocks, Q5_1 weights Q8_1 blocks
   * (Q8 blocks with s = d·Σq), Q4_K/Q5_K/Q6_K weights activations quantized to Q8_K
   * super-blocks (llama.cpp's schemes).
   */
  matMul(out: Float32Array, w: WeightMatrix, x: Float32Array, batch: number, rows?: RowRange): void;
  /**
   * outs[i] = matMul(ws[i], x) for every i: products of the same activations (q, k and v; gate
   * and up), which a backend may run as one pass.
   */
  matMulShared(outs: readonly Float32Array[], ws: readonly WeightMatrix[], x: Float32Array, batch: number): void;
  /**
   * out[t] = softmax(q[t] · keysᵀ · scale) · values for the T queries at positions start + t,
   * over keys [lo, hi]: lo = max(0, pos - window + 1) (0 without window), hi = pos, widened to
   * the token's image span. Keys before `start` come from `cache`, the rest from kChunk/vChunk.
   */
  attention(out: Float32Array, q: Float32Array, kChunk: Float32Array, vChunk: Float32Array, cache: KvStore,
            start: number, T: number, shape: AttentionShape, spans?: ImageSpans): void;
  /**
   * out[t] = softmax(q[t] · kᵀ · scale) · v over all `tokens` keys, every head on its own: every
   * token sees every token (the SigLIP tower). q, k, v and out are [tokens, numHeads * headDim].
   */
  fullAttention(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, tokens: number, shape: FullAttentionShape): void;
  /**
   * Stores a chunk's keys and values ([T, numKvHeads * headDim], positions start + t) into the
   * blocked cache (KvStore); a sliding ring keeps only its last `ring` positions.
   */
  writeKv(cache: KvStore, kChunk: Float32Array, vChunk: Float32Array, start: number, T: number, numKvHeads: number, headDim: number): void;
  /**
   * x[i] = the value x[i] has once stored as `type` and read back, for i < n. The decoder rounds
   * a chunk's keys and values before it attends over them, so the chunk's own tokens see what
   * later tokens will read from the cache: results then do not depend on how a prompt is chunked.
   */
  roundToKvType(x: Float32Array, n: number, type: KvType): void;
}
