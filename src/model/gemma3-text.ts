// The Gemma 3 text decoder, top to bottom in paper order: embed · √hiddenSize → numLayers ×
// (sandwich-normed attention, sandwich-normed GeGLU) → final norm → tied output head.
// Processes a chunk of T tokens at once (prefill) or one (decode) through the same code.
// ref: transformers 4.57 models/gemma3/modeling_gemma3.py (Gemma3DecoderLayer, Gemma3TextModel)
import type { AttentionShape, Backend, ImageSpans, KvType } from '../backend/backend.js';
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

  /** How the caches this decoder creates store keys and values (default 'f32'). */
  readonly kvType: KvType;

  constructor(readonly config: Gemma3TextConfig, readonly weights: TextWeights, readonly backend: Backend,
              options: { kvType?: KvType } = {}) {
    this.kvType = options.kvType ?? 'f32';
    this.localRope = new Rope(config.headDim, config.ropeLocalBase, config.ropeLocalScalingFactor);
    this.globalRope = new Rope(config.headDim, config.ropeGlobalBase, config.ropeGlobalScalingFactor);
    this.embedScale = Math.fround(Math.sqrt(config.hiddenSize));
    this.ws = new Workspace(0, config);
  }

  /** A KV cache for this decoder holding `capacity` positions, in the backend's preferred memory. */
  createCache(capacity: number): KvCache {
    const allocate = this.backend.allocateFloats?.bind(this.backend);
    return new KvCache(this.config, capacity, { allocate, type: this.kvType });
  }

  /**
   * Appends the input to `cache` and returns logits [rows, vocabSize] for the requested
   * positions (rows = T for 'all', 1 for 'last', 0 for 'none'). Long inputs run in chunks of
   * MAX_CHUNK tokens that never split an image block.
   */
  forward(input: DecoderInput, cache: KvCache, options: DecoderOptions): Float32Array {
    const T = input.ids.length;
    if (T === 0) throw new GemmaError('INVALID_ARGUMENT', 'forward needs at least one token');
    this.checkSegment({ cache, input, logits: options.logits }, 0);
    const vocab = this.config.vocabSize;
    const logitRows = options.logits === 'all' ? T : options.logits === 'last' ? 1 : 0;
    const logits = outputBuffer(options.into, logitRows * vocab);
    for (let begin = 0; begin < T;) {
      const end = blockSafeEnd(input.imageBlocks, begin, Math.min(T, begin + MAX_CHUNK));
      const wanted = options.logits === 'all' ? 'all' : options.logits === 'last' && end === T ? 'last' : 'none';
      const into = options.logits === 'all' ? logits.subarray(begin * vocab) : logits;
      this.pass([{ cache, input, begin, end, logits: wanted }], into, options.onHiddenState);
      begin = end;
    }
    return logits;
  }

  /**
   * One pass over the weights for several sequences at once (continuous batching): each segment
   * appends its input to its own cache, a prompt chunk or the next token of a reply. Prompt chunks
   * and decode tokens share the pass, so the weights are read once for all of them. Returns the
   * requested logits rows, segment after segment ([Σ rows, vocabSize]).
   */
  step(segments: readonly Segment[], into?: Float32Array): Float32Array {
    if (segments.length === 0) throw new GemmaError('INVALID_ARGUMENT', 'a step needs at least one segment');
    if (new Set(segments.map((s) => s.cache)).size !== segments.length) {
      throw new GemmaError('INVALID_ARGUMENT', 'each segment of a step needs a cache of its own');
    }
    segments.forEach((seg, i) => {
      if (seg.input.ids.length === 0) throw new GemmaError('INVALID_ARGUMENT', `segment ${i} has no tokens`);
      this.checkSegment(seg, i);
    });
    const rows = segments.reduce((n, s) => n + (s.logits === 'all' ? s.input.ids.length : s.logits === 'last' ? 1 : 0), 0);
    const logits = outputBuffer(into, rows * this.config.vocabSize);
    this.pass(segments.map((s) => ({ ...s, begin: 0, end: s.input.ids.length })), logits);
    return logits;
  }

  /**
   * One decode step for several independent sequences at once: row b is token ids[b] of the
   * sequence in caches[b], at position caches[b].length. Returns logits [B, vocabSize].
   */
  decodeBatch(ids: readonly number[], caches: readonly KvCache[], into?: Float32Array): Float32Array {
    if (ids.length === 0 || caches.length !== ids.length) throw new GemmaError('INVALID_ARGUMENT', 'decodeBatch needs one cache per token');
    return this.step(ids.map((id, b) => ({ cache: caches[b]!, input: { ids: [id] }, logits: 'last' })), into);
  }

  /** Token ids in the vocabulary (or given an embedding) and room in the cache. */
  private checkSegment(seg: Segment, index: number): void {
    const { cache, input } = seg;
    const T = input.ids.length;
    if (cache.length + T > cache.capacity) {
      throw new GemmaError('CONTEXT_FULL',
        `${cache.length + T} tokens do not fit the context of ${cache.capacity} tokens (${cache.length} already used, ${T} new)` +
        (index > 0 ? ` in segment ${index}` : ''));
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
  }

  /**
   * Says ahead of time that steps of about `streams` sequences will follow (a server with
   * several slots), so the backend can lay its weights out for that before the first one.
   */
  expectStreams(streams: number): void {
    this.backend.prepareForStreams?.(streams);
  }

  /** Runs positions [begin, end) of every segment's input through the layers, then the head for the rows asked for. */
  private pass(pieces: readonly Piece[], logits: Float32Array, onHiddenState?: DecoderOptions['onHiddenState']): void {
    this.backend.passStarted?.();
    try {
      this.passRows(pieces, logits, onHiddenState);
    } finally {
      this.backend.passFinished?.();
    }
  }

  private passRows(pieces: readonly Piece[], logits: Float32Array, onHiddenState?: DecoderOptions['onHiddenState']): void {
    const c = this.config;
    const H = c.hiddenSize;
    const total = pieces.reduce((n, p) => n + p.end - p.begin, 0);
    if (this.ws.capacity < total) this.ws = new Workspace(total, c);
    const ws = this.ws;
    // One stream or several in this pass: the backend may lay its weights out for that.
    this.backend.prepareForStreams?.(pieces.length);

    const layout: RowSegment[] = [];
    const positions: number[] = [];
    let row = 0;
    for (const p of pieces) {
      const start = p.cache.length;
      for (let t = p.begin; t < p.end; t++, row++) {
        const x = ws.x.subarray(row * H, (row + 1) * H);
        const override = p.input.embeddings?.get(t);
        if (override) x.set(override);
        else this.embedToken(p.input.ids[t]!, x);
        positions.push(start + t - p.begin);
      }
      const T = p.end - p.begin;
      layout.push({ cache: p.cache, start, row: row - T, rows: T, spans: imageSpansOf(p.input.imageBlocks, p.begin, p.end) });
    }
    onHiddenState?.('input', ws.x, total);
    const angles = this.anglesOf(positions);
    for (let layer = 0; layer < c.numLayers; layer++) {
      this.decoderLayer(layer, total, layout, angles);
      onHiddenState?.(layer, ws.x, total);
    }
    for (const seg of layout) seg.cache.length = seg.start + seg.rows;
    this.backend.rmsNorm(ws.x, ws.x, this.weights.outputNorm, c.rmsNormEps, total, H);
    onHiddenState?.('final_norm', ws.x, total);

    // The head only for the rows asked for, in one product: straight from the residual stream when
    // they are adjacent (one segment, or all decode rows), else gathered first.
    const picked: [from: number, n: number][] = [];
    pieces.forEach((p, i) => {
      const seg = layout[i]!;
      if (p.logits === 'all') picked.push([seg.row, seg.rows]);
      else if (p.logits === 'last') picked.push([seg.row + seg.rows - 1, 1]);
    });
    if (picked.length === 0) return;
    const count = picked.reduce((n, [, k]) => n + k, 0);
    const first = picked[0]![0];
    if (picked.every(([from], i) => i === 0 || from === picked[i - 1]![0] + picked[i - 1]![1])) {
      this.outputHead(logits, ws.x.subarray(first * H, (first + count) * H), count);
      return;
    }
    let at = 0;
    for (const [from, n] of picked) {
      ws.xb.set(ws.x.subarray(from * H, (from + n) * H), at * H);
      at += n;
    }
    this.outputHead(logits, ws.xb.subarray(0, count * H), count);
  }

  /** RoPE angles of each row's position for both layer types, shared by all layers of a step. */
  private anglesOf(positions: number[]): LayerAngles {
    return { local: this.localRope.angles(positions), global: this.globalRope.angles(positions) };
  }

  private decoderLayer(layer: number, T: number, segments: readonly RowSegment[], angles: LayerAngles): void {
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
    // Each segment attends over its own cache (its new rows included); a one-row segment is the
    // next token of a reply, a longer one a prompt chunk whose image blocks see each other.
    for (const seg of segments) {
      const layerCache = seg.cache.layers[layer]!;
      const q = ws.q.subarray(seg.row * qDim, (seg.row + seg.rows) * qDim);
      const k = ws.k.subarray(seg.row * kvDim, (seg.row + seg.rows) * kvDim);
      const v = ws.v.subarray(seg.row * kvDim, (seg.row + seg.rows) * kvDim);
      // The chunk's own keys and values as the cache will hold them: a token then sees the same
      // values whether its neighbours came in its chunk or an earlier one.
      if (seg.cache.type !== 'f32') {
        be.roundToKvType(k, seg.rows * kvDim, seg.cache.type);
        be.roundToKvType(v, seg.rows * kvDim, seg.cache.type);
      }
      be.attention(ws.att.subarray(seg.row * qDim, (seg.row + seg.rows) * qDim), q, k, v, layerCache, seg.start, seg.rows, shape, seg.spans);
      be.writeKv(layerCache, k, v, seg.start, seg.rows, c.numKvHeads, c.headDim);
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

  /** logits[n] = x[n] · embedᵀ for n < count, x being final-normed rows (tied head, optional softcap). */
  private outputHead(out: Float32Array, x: Float32Array, count: number): void {
    this.backend.matMul(out, this.weights.output ?? this.weights.tokenEmbd, x, count);
    const cap = this.config.finalLogitSoftcap;
    if (cap) for (let i = 0; i < count * this.config.vocabSize; i++) out[i] = Math.tanh(out[i]! / cap) * cap;
  }
}

interface LayerAngles {
  readonly local: RopeAngles;
  readonly global: RopeAngles;
}

/** Part of a step: `input` appended to `cache`, and which of its rows need logits. */
export interface Segment {
  cache: KvCache;
  input: DecoderInput;
  logits: 'all' | 'last' | 'none';
}

/** Positions [begin, end) of a segment's input, computed in one pass. */
interface Piece extends Segment {
  begin: number;
  end: number;
}

/** Where a segment's rows sit in the pass: rows [row, row + rows) at cache positions from `start`. */
interface RowSegment {
  cache: KvCache;
  start: number;
  row: number;
  rows: number;
  spans: ImageSpans | undefined;
}

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
