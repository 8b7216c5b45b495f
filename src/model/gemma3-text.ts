// The Gemma 3 text decoder, top to bottom in paper order: embed · √hiddenSize → numLayers ×
// (sandwich-normed attention, sandwich-normed GeGLU) → final norm → tied output head.
// Processes a chunk of T tokens at once (prefill) or one (decode) through the same code.
// ref: transformers 4.57 models/gemma3/modeling_gemma3.py (Gemma3DecoderLayer, Gemma3TextModel)
import type { AttentionShape, Backend, ImageSpans } from '../backend/backend.js';
import { decodeRow } from '../backend/rows.js';
import { GemmaError } from '../errors.js';
import type { Gemma3TextConfig } from './config.js';
import { KvCache } from './kv-cache.js';
import { blockSafeEnd, type DecoderInput } from './prompt.js';
import { Rope, type RopeAngles } from './rope.js';
import type { TextWeights } from './weights.js';

export type { DecoderInput } from './prompt.js';

export interface DecoderOptions {
  /** Which positions get logits: every input position, only the last, or none. */
  logits: 'all' | 'last' | 'none';
  /**
   * Where to write the logits (at least rows · vocabSize floats; the result is a view of it).
   * A caller that decodes token after token passes the same buffer each step: a fresh
   * megabyte per token costs page faults.
   */
  into?: Float32Array;
  /** Observes activations [T, hiddenSize] of each chunk: 'input', each layer's output, 'final_norm'. */
  onHiddenState?: (stage: 'input' | number | 'final_norm', x: Float32Array, T: number) => void;
}

/** Largest number of tokens run through the layers at once; bounds activation memory. */
const MAX_CHUNK = 512;

export class Gemma3TextDecoder {
  private readonly localRope: Rope;
  private readonly globalRope: Rope;
  private readonly embedScale: number;
  private ws: Workspace;

  constructor(readonly config: Gemma3TextConfig, readonly weights: TextWeights, readonly backend: Backend) {
    this.localRope = new Rope(config.headDim, config.ropeLocalBase, config.ropeLocalScalingFactor);
    this.globalRope = new Rope(config.headDim, config.ropeGlobalBase, config.ropeGlobalScalingFactor);
    this.embedScale = Math.fround(Math.sqrt(config.hiddenSize));
    this.ws = new Workspace(0, config);
  }

  /** A KV cache for this decoder holding `capacity` positions, in the backend's preferred memory. */
  createCache(capacity: number): KvCache {
    const allocate = this.backend.allocateFloats?.bind(this.backend);
    return new KvCache(this.config, capacity, { allocate });
  }

  /**
   * Appends the input to `cache` and returns logits [rows, vocabSize] for the requested
   * positions (rows = T for 'all', 1 for 'last', 0 for 'none').
   */
  forward(input: DecoderInput, cache: KvCache, options: DecoderOptions): Float32Array {
    const T = input.ids.length;
    if (T === 0) throw new GemmaError('INVALID_ARGUMENT', 'forward needs at least one token');
    if (cache.length + T > cache.capacity) {
      throw new GemmaError('CONTEXT_FULL',
        `${cache.length + T} tokens do not fit the context of ${cache.capacity} tokens (${cache.length} already used, ${T} new)`);
    }
    const vocab = this.config.vocabSize;
    for (let t = 0; t < T; t++) {
      const id = input.ids[t]!;
      // A position whose embedding is given (an image soft token) never reads the embedding table,
      // so its id may lie past it (262144 in a GGUF, whose table has exactly 262144 rows).
      if (!Number.isInteger(id) || id < 0 || (id >= vocab && input.embeddings?.has(t) !== true)) {
        throw new GemmaError('INVALID_ARGUMENT', `token id ${id} at index ${t} is outside the vocabulary [0, ${vocab})`);
      }
    }
    const logitRows = options.logits === 'all' ? T : options.logits === 'last' ? 1 : 0;
    const logits = outputBuffer(options.into, logitRows * vocab);
    for (let begin = 0; begin < T;) {
      const end = blockSafeEnd(input.imageBlocks, begin, Math.min(T, begin + MAX_CHUNK));
      this.forwardChunk(input, begin, end, cache, options);
      const n = end - begin;
      if (options.logits === 'all') this.outputHead(logits.subarray(begin * vocab), 0, n);
      else if (options.logits === 'last' && end === T) this.outputHead(logits, n - 1, 1);
      begin = end;
    }
    return logits;
  }

  private forwardChunk(input: DecoderInput, begin: number, end: number, cache: KvCache, options: DecoderOptions): void {
    const c = this.config;
    const T = end - begin;
    const H = c.hiddenSize;
    if (this.ws.capacity < T) this.ws = new Workspace(T, c);
    const ws = this.ws;
    const start = cache.length;

    // Embedding: [T, H]
    for (let t = 0; t < T; t++) {
      const row = ws.x.subarray(t * H, (t + 1) * H);
      const override = input.embeddings?.get(begin + t);
      if (override) {
        row.set(override);
      } else {
        this.embedToken(input.ids[begin + t]!, row);
      }
    }
    options.onHiddenState?.('input', ws.x, T);
    const spans = imageSpansOf(input.imageBlocks, begin, end);

    const angles = this.anglesOf(Array.from({ length: T }, (_, t) => start + t));
    for (let layer = 0; layer < c.numLayers; layer++) {
      this.decoderLayer(layer, T, { kind: 'chunk', cache, start, spans }, angles);
      options.onHiddenState?.(layer, ws.x, T);
    }
    cache.length = start + T;
    this.backend.rmsNorm(ws.x, ws.x, this.weights.outputNorm, c.rmsNormEps, T, H); // [T, H]
    options.onHiddenState?.('final_norm', ws.x, T);
  }

  /**
   * One decode step for several independent sequences at once: row b is token ids[b] of the
   * sequence in caches[b], at position caches[b].length. Weights are read once for all rows
   * (continuous batching). Returns logits [B, vocabSize].
   */
  decodeBatch(ids: readonly number[], caches: readonly KvCache[], into?: Float32Array): Float32Array {
    const c = this.config;
    const B = ids.length;
    if (B === 0 || caches.length !== B) throw new GemmaError('INVALID_ARGUMENT', 'decodeBatch needs one cache per token');
    if (new Set(caches).size !== B) throw new GemmaError('INVALID_ARGUMENT', 'decodeBatch needs a distinct cache per row');
    for (let b = 0; b < B; b++) {
      const id = ids[b]!;
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new GemmaError('INVALID_ARGUMENT', `token id ${id} is outside the vocabulary`);
      if (caches[b]!.length + 1 > caches[b]!.capacity) throw new GemmaError('CONTEXT_FULL', `sequence ${b} is at its context limit of ${caches[b]!.capacity} tokens`);
    }
    if (this.ws.capacity < B) this.ws = new Workspace(B, c);
    if (B > 1) this.backend.batchedDecoding?.();
    const H = c.hiddenSize;
    for (let b = 0; b < B; b++) {
      this.embedToken(ids[b]!, this.ws.x.subarray(b * H, (b + 1) * H));
    }
    const angles = this.anglesOf(caches.map((cache) => cache.length));
    for (let layer = 0; layer < c.numLayers; layer++) this.decoderLayer(layer, B, { kind: 'batch', caches }, angles);
    for (const cache of caches) cache.length++;
    this.backend.rmsNorm(this.ws.x, this.ws.x, this.weights.outputNorm, c.rmsNormEps, B, H);
    const logits = outputBuffer(into, B * c.vocabSize);
    this.outputHead(logits, 0, B);
    return logits;
  }

  /** RoPE angles of each row's position for both layer types, shared by all layers of a step. */
  private anglesOf(positions: number[]): LayerAngles {
    return { local: this.localRope.angles(positions), global: this.globalRope.angles(positions) };
  }

  private decoderLayer(layer: number, T: number, rows: RowLayout, angles: LayerAngles): void {
    const c = this.config;
    const w = this.weights.layers[layer]!;
    const ws = this.ws;
    const be = this.backend;
    const H = c.hiddenSize;
    const eps = c.rmsNormEps;
    const isSliding = c.layerTypes[layer] === 'sliding';
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;

    // Attention block: pre-norm → q/k/v → QK-norm → RoPE → attend → o_proj → post-norm → residual
    be.rmsNorm(ws.xb, ws.x, w.attnNorm, eps, T, H); // [T, H]
    // q [T, numHeads * headDim], k and v [T, numKvHeads * headDim]
    be.matMulShared([ws.q, ws.k, ws.v], [w.attnQ, w.attnK, w.attnV], ws.xb, T);
    be.rmsNorm(ws.q, ws.q, w.attnQNorm, eps, T * c.numHeads, c.headDim);
    be.rmsNorm(ws.k, ws.k, w.attnKNorm, eps, T * c.numKvHeads, c.headDim);
    const rope = isSliding ? this.localRope : this.globalRope;
    const rowAngles = isSliding ? angles.local : angles.global;
    for (let t = 0; t < T; t++) {
      rope.apply(ws.q, t * qDim, c.numHeads, rowAngles, t);
      rope.apply(ws.k, t * kvDim, c.numKvHeads, rowAngles, t);
    }
    const shape: AttentionShape = {
      numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim,
      scale: Math.fround(c.queryPreAttnScalar ** -0.5), window: isSliding ? c.slidingWindow : 0,
    };
    if (rows.kind === 'chunk') {
      const layerCache = rows.cache.layers[layer]!;
      be.attention(ws.att, ws.q, ws.k, ws.v, layerCache, rows.start, T, shape, rows.spans); // [T, numHeads * headDim]
      be.writeKv(layerCache, ws.k, ws.v, rows.start, T, c.numKvHeads, c.headDim);
    } else {
      // Each row is the next token of its own sequence: attend over that sequence's cache.
      for (let b = 0; b < T; b++) {
        const cache = rows.caches[b]!;
        const layerCache = cache.layers[layer]!;
        const q = ws.q.subarray(b * qDim, (b + 1) * qDim);
        const k = ws.k.subarray(b * kvDim, (b + 1) * kvDim);
        const v = ws.v.subarray(b * kvDim, (b + 1) * kvDim);
        be.attention(ws.att.subarray(b * qDim, (b + 1) * qDim), q, k, v, layerCache, cache.length, 1, shape);
        be.writeKv(layerCache, k, v, cache.length, 1, c.numKvHeads, c.headDim);
      }
    }
    be.matMul(ws.xb2, w.attnOutput, ws.att, T); // [T, H]
    be.rmsNormAdd(ws.x, ws.xb2, w.postAttentionNorm, eps, T, H);

    // Feed-forward block: pre-norm → gelu_tanh(gate) · up → down → post-norm → residual
    be.rmsNorm(ws.xb, ws.x, w.ffnNorm, eps, T, H);
    be.matMulShared([ws.hb, ws.hb2], [w.ffnGate, w.ffnUp], ws.xb, T); // [T, intermediateSize] each
    be.geluTanhMul(ws.hb, ws.hb2, T * c.intermediateSize);
    be.matMul(ws.xb2, w.ffnDown, ws.hb, T); // [T, H]
    be.rmsNormAdd(ws.x, ws.xb2, w.postFfwNorm, eps, T, H);
  }

  /** row = embedding of `id` · √hiddenSize (the scale rounded to float32, as the reference computes it). */
  private embedToken(id: number, row: Float32Array): void {
    decodeRow(this.weights.tokenEmbd, id, row);
    for (let i = 0; i < row.length; i++) row[i] = Math.fround(row[i]! * this.embedScale);
  }

  /** logits[n] = finalNorm(x)[from + n] · embedᵀ for n < count (tied head, optional softcap). */
  private outputHead(out: Float32Array, from: number, count: number): void {
    const H = this.config.hiddenSize;
    const x = this.ws.x.subarray(from * H, (from + count) * H);
    this.backend.matMul(out, this.weights.output ?? this.weights.tokenEmbd, x, count);
    const cap = this.config.finalLogitSoftcap;
    if (cap) for (let i = 0; i < count * this.config.vocabSize; i++) out[i] = Math.tanh(out[i]! / cap) * cap;
  }
}

interface LayerAngles {
  readonly local: RopeAngles;
  readonly global: RopeAngles;
}

/** How the rows of a layer step relate to caches: one sequence's chunk, or one token each of many sequences. */
type RowLayout =
  | { kind: 'chunk'; cache: KvCache; start: number; spans: ImageSpans | undefined }
  | { kind: 'batch'; caches: readonly KvCache[] };

/** Activation buffers for up to `capacity` tokens (the llama2.c RunState). */
class Workspace {
  readonly x: Float32Array; // [T, hiddenSize] residual stream
  readonly xb: Float32Array; // [T, hiddenSize]
  readonly xb2: Float32Array; // [T, hiddenSize]
  readonly q: Float32Array; // [T, numHeads * headDim]
  readonly k: Float32Array; // [T, numKvHeads * headDim]
  readonly v: Float32Array; // [T, numKvHeads * headDim]
  readonly att: Float32Array; // [T, numHeads * headDim]
  readonly hb: Float32Array; // [T, intermediateSize]
  readonly hb2: Float32Array; // [T, intermediateSize]

  constructor(readonly capacity: number, c: Gemma3TextConfig) {
    const T = capacity;
    this.x = new Float32Array(T * c.hiddenSize);
    this.xb = new Float32Array(T * c.hiddenSize);
    this.xb2 = new Float32Array(T * c.hiddenSize);
    this.q = new Float32Array(T * c.numHeads * c.headDim);
    this.k = new Float32Array(T * c.numKvHeads * c.headDim);
    this.v = new Float32Array(T * c.numKvHeads * c.headDim);
    this.att = new Float32Array(T * c.numHeads * c.headDim);
    this.hb = new Float32Array(T * c.intermediateSize);
    this.hb2 = new Float32Array(T * c.intermediateSize);
  }
}

/** The first `n` floats of `into` (which must be large enough), or a new array. */
function outputBuffer(into: Float32Array | undefined, n: number): Float32Array {
  if (!into) return new Float32Array(n);
  if (into.length < n) throw new GemmaError('INVALID_ARGUMENT', `the logits buffer holds ${into.length} floats, ${n} are needed`);
  return into.subarray(0, n);
}

function imageSpansOf(blocks: DecoderInput['imageBlocks'], begin: number, end: number): ImageSpans | undefined {
  if (!blocks || blocks.length === 0) return undefined;
  const T = end - begin;
  const spanStart = new Int32Array(T).fill(-1);
  const spanEnd = new Int32Array(T).fill(-1);
  let any = false;
  for (const [s, e] of blocks) {
    if (e <= begin || s >= end) continue;
    if (s < begin || e > end) throw new GemmaError('INVALID_ARGUMENT', `image block [${s}, ${e}) crosses a chunk boundary`);
    for (let i = s; i < e; i++) {
      spanStart[i - begin] = s - begin;
      spanEnd[i - begin] = e - 1 - begin;
    }
    any = true;
  }
  return any ? { spanStart, spanEnd } : undefined;
}
