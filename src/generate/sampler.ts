// Next-token selection from a logits row, with Hugging Face `generate` semantics.
//
// Order of operations (transformers `GenerationMixin._get_logits_processor`): the repetition
// penalty is a processor and applies to greedy and sampled decoding alike; with sampling on, the
// warpers follow in this order: temperature, top-k, top-p, min-p. Then one multinomial draw.
//
//   repetition penalty  RepetitionPenaltyLogitsProcessor: for each distinct id in the context,
//                       s = s < 0 ? s * p : s / p.
//   temperature         TemperatureLogitsWarper: s / T (T = 0 here means greedy, do_sample=False).
//   top-k               TopKLogitsWarper: remove s < (k-th largest s); ties with the k-th value
//                       survive, so more than k ids can remain.
//   top-p               TopPLogitsWarper: sort ascending, cumulative softmax, remove where
//                       cum <= 1 - top_p, never the last (largest). Equivalently, walking the
//                       ids by decreasing probability, an id survives iff the probability mass
//                       strictly before it is < top_p (which always keeps the first one). Ties
//                       are ordered as a stable ascending sort orders them (lower id earlier in
//                       ascending order, so at a tied boundary the higher ids survive).
//   min-p               MinPLogitsWarper: remove p < min_p * p_max (p after temperature and the
//                       earlier filters; the ratio is exp(s - s_max), independent of the
//                       normalisation). The top id always survives.
//
// Processed logits are float32 (as HF's tensors); probabilities and all sums are float64. Only ids
// < allowedVocab take part at all (ids above are untrained rows / the image placeholder).
import { GemmaError, invalidArgument } from '../errors.js';
import { expNeg, sortAscending } from './sample-math.js';
import { Rng } from './rng.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** 0 or undefined = off. */
  topK?: number;
  /** 1 = off; in (0, 1]. */
  topP?: number;
  /** 0 = off; in [0, 1]. */
  minP?: number;
  /** 1 = off; > 0. HF semantics over the context (prompt + generated ids). */
  repetitionPenalty?: number;
  /** Integer seed for a reproducible stream; omitted = seeded from crypto randomness. */
  seed?: number;
}

/** Ids that are real tokens: Gemma 3's ids >= 262144 are untrained embedding rows or the image placeholder, never sampled. */
export const SAMPLABLE_VOCAB = 262144;

/** Options are validated field by field; `null` is treated like `undefined` (not set). */
export function validateSamplingOptions(o: SamplingOptions): void {
  if (o === null || typeof o !== 'object') throw invalidArgument('sampling options', 'an object', o);
  const { temperature, topK, topP, minP, repetitionPenalty, seed } = o;
  if (temperature != null && !(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0)) {
    throw invalidArgument('temperature', 'a finite number >= 0 (0 = greedy)', temperature);
  }
  if (topK != null && !(typeof topK === 'number' && Number.isInteger(topK) && topK >= 0)) {
    throw invalidArgument('topK', 'an integer >= 0 (0 = off)', topK);
  }
  if (topP != null && !(typeof topP === 'number' && topP > 0 && topP <= 1)) {
    throw invalidArgument('topP', 'a number in (0, 1] (1 = off)', topP);
  }
  if (minP != null && !(typeof minP === 'number' && minP >= 0 && minP <= 1)) {
    throw invalidArgument('minP', 'a number in [0, 1] (0 = off)', minP);
  }
  if (
    repetitionPenalty != null &&
    !(typeof repetitionPenalty === 'number' && Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)
  ) {
    throw invalidArgument('repetitionPenalty', 'a finite number > 0 (1 = off)', repetitionPenalty);
  }
  if (seed != null && !(typeof seed === 'number' && Number.isSafeInteger(seed))) {
    throw invalidArgument('seed', 'a safe integer', seed);
  }
}

/** Top-p pre-filter histogram: buckets of width 1/SCALE in (max - logit), last bucket open-ended. */
const HIST_BUCKETS = 4096;
const HIST_SCALE = 64; // covers logit gaps 0..64 (relative probability down to e^-64)
const HIST_LAST = HIST_BUCKETS - 1;
/** Keys pack a 32-bit order-preserving value code and the id into one exact float64 integer. */
const MAX_ID_BITS = 21;

export class Sampler {
  /** The effective options (defaults filled in). */
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly allowedVocab: number;

  private readonly greedy: boolean;
  private readonly rng: Rng | null;
  private readonly idMod: number;
  // Scratch, allocated once: processed logits (float32) with a bit view for sort keys, candidate
  // ids, sort keys / weights, the top-k heap and the top-p histogram.
  private readonly xs: Float32Array;
  private readonly xbits: Uint32Array;
  private readonly ids: Int32Array;
  private readonly keys: Float64Array;
  private readonly heap: Float32Array;
  private readonly heapIds: Int32Array;
  private readonly hist: Float64Array;
  // Per-call state shared between the stages.
  private max = 0;
  private finite = 0;
  private nucleusMass = 0;

  constructor(options: SamplingOptions, allowedVocab: number) {
    validateSamplingOptions(options);
    if (!(Number.isInteger(allowedVocab) && allowedVocab >= 1 && allowedVocab <= 2 ** MAX_ID_BITS)) {
      throw invalidArgument('allowedVocab', `an integer in [1, ${2 ** MAX_ID_BITS}]`, allowedVocab);
    }
    this.allowedVocab = allowedVocab;
    this.temperature = options.temperature ?? 1;
    this.topK = Math.min(options.topK ?? 0, allowedVocab);
    this.topP = options.topP ?? 1;
    this.minP = options.minP ?? 0;
    this.repetitionPenalty = options.repetitionPenalty ?? 1;
    this.greedy = this.temperature === 0;
    this.rng = this.greedy ? null : new Rng(options.seed ?? undefined);
    let bits = 1;
    while (2 ** bits < allowedVocab) bits++;
    this.idMod = 2 ** bits;

    const needXs = !this.greedy || this.repetitionPenalty !== 1;
    this.xs = new Float32Array(needXs ? allowedVocab : 0);
    this.xbits = new Uint32Array(this.xs.buffer);
    const needLists = !this.greedy;
    this.ids = new Int32Array(needLists ? allowedVocab : 0);
    this.keys = new Float64Array(needLists ? allowedVocab : 0);
    this.heap = new Float32Array(!this.greedy && this.topK > 0 ? this.topK : 0);
    this.heapIds = new Int32Array(this.heap.length);
    this.hist = new Float64Array(!this.greedy && this.topP < 1 && this.topK === 0 ? HIST_BUCKETS : 0);
  }

  /**
   * Picks the next id from a logits row (length >= allowedVocab). `context` = ids seen so far
   * (prompt + generated), used by the repetition penalty. Never modifies `logits`; allocation-free.
   * NaN logits are treated as -Infinity. Throws INVALID_ARGUMENT when no id < allowedVocab has a
   * finite logit. If some logits are +Infinity, the lowest such id is returned.
   */
  sample(logits: Float32Array, context?: readonly number[]): number {
    this.checkLogits(logits);
    if (this.greedy) return this.argmax(logits, context);
    this.prepare(logits, context);
    const inf = this.special();
    if (inf >= 0) return inf;
    const n = this.filter();
    return this.draw(n, this.rng!.nextFloat());
  }

  /**
   * The ids that could be sampled from this row after all filters, ascending (for tests and
   * diagnostics; allocates). Greedy: the argmax. Consumes no randomness.
   */
  candidates(logits: Float32Array, context?: readonly number[]): number[] {
    this.checkLogits(logits);
    if (this.greedy) return [this.argmax(logits, context)];
    this.prepare(logits, context);
    const inf = this.special();
    if (inf >= 0) return [inf];
    const n = this.filter();
    const out: number[] = [];
    if (n < 0) {
      for (let i = 0; i < this.allowedVocab; i++) if (this.xs[i]! !== -Infinity) out.push(i);
    } else {
      for (let j = 0; j < n; j++) out.push(this.ids[j]!);
      out.sort((a, b) => a - b);
    }
    return out;
  }

  private checkLogits(logits: Float32Array): void {
    if (!(logits instanceof Float32Array) || logits.length < this.allowedVocab) {
      throw invalidArgument('logits', `a Float32Array of length >= ${this.allowedVocab}`, logits?.length ?? logits);
    }
  }

  private penalized(l: number): number {
    const p = this.repetitionPenalty;
    return Math.fround(l < 0 ? l * p : l / p);
  }

  /** Greedy: argmax over ids < allowedVocab of the (penalised) logits; lowest id on ties. */
  private argmax(logits: Float32Array, context: readonly number[] | undefined): number {
    const V = this.allowedVocab;
    let src: Float32Array = logits;
    if (this.repetitionPenalty !== 1 && context !== undefined && context.length > 0) {
      src = this.xs;
      for (let i = 0; i < V; i++) src[i] = logits[i]!;
      this.applyPenalty(logits, context, 1);
    }
    let best = -1;
    let bestV = -Infinity;
    for (let i = 0; i < V; i++) {
      const v = src[i]!;
      if (v > bestV) {
        bestV = v;
        best = i;
      }
    }
    if (best < 0) {
      // Every logit is -Infinity or NaN.
      throw new GemmaError('INVALID_ARGUMENT', `logits has no finite value among ids < ${V}`);
    }
    if (bestV === Infinity && src !== logits && !hasPositiveInfinity(logits, V)) {
      // A tiny penalty pushed finite logits past float32: compare them unrounded instead.
      this.prepareOverflowed(logits, context, 1);
      return this.xs.indexOf(0);
    }
    return best;
  }

  /**
   * The limit of penalty and temperature when they overflow float32 (say temperature 1e-300 or
   * repetitionPenalty 1e-300): the processed logits in float64, shifted so that the largest is 0,
   * then rounded. The order of the logits is kept, so the result tends to greedy among the
   * favoured ids instead of the lowest id whose value overflowed to +Infinity.
   */
  private prepareOverflowed(logits: Float32Array, context: readonly number[] | undefined, T: number): void {
    const V = this.allowedVocab;
    const xs = this.xs;
    const seen = new Uint8Array(this.repetitionPenalty !== 1 && context ? V : 0);
    if (seen.length) for (const id of context!) if (id >= 0 && id < V && id === Math.floor(id)) seen[id] = 1;
    const p = this.repetitionPenalty;
    const value = (i: number): number => {
      let l = logits[i]!;
      if (l !== l) return -Infinity;
      if (seen.length && seen[i]) l = l < 0 ? l * p : l / p;
      return l / T;
    };
    let m = -Infinity;
    for (let i = 0; i < V; i++) m = Math.max(m, value(i));
    let masked = 0;
    for (let i = 0; i < V; i++) {
      const x = Math.fround(value(i) - m);
      xs[i] = x;
      if (x === -Infinity) masked++;
    }
    this.max = 0;
    this.finite = V - masked;
  }

  private applyPenalty(logits: Float32Array, context: readonly number[], temperature: number): void {
    const V = this.allowedVocab;
    const xs = this.xs;
    // Writing f(logits[id]) (not f(xs[id])) makes repeated ids idempotent: each distinct id is
    // penalised once, as HF's gather/scatter does.
    for (let j = 0; j < context.length; j++) {
      const id = context[j]!;
      if (!(id >= 0 && id < V) || id !== Math.floor(id)) continue;
      const l = logits[id]!;
      if (l !== l) continue;
      const pl = this.penalized(l);
      xs[id] = temperature === 1 ? pl : Math.fround(pl / temperature);
    }
  }

  /** xs = penalty(logits) / T (float32), NaN -> -Infinity; records the max and the finite count. */
  private prepare(logits: Float32Array, context: readonly number[] | undefined): void {
    const V = this.allowedVocab;
    const xs = this.xs;
    const T = this.temperature;
    let m = -Infinity;
    let masked = 0;
    if (T === 1) {
      for (let i = 0; i < V; i++) {
        let x = logits[i]!;
        if (x !== x) x = -Infinity;
        xs[i] = x;
        if (x > m) m = x;
        else if (x === -Infinity) masked++;
      }
    } else {
      for (let i = 0; i < V; i++) {
        let x = Math.fround(logits[i]! / T);
        if (x !== x) x = -Infinity;
        xs[i] = x;
        if (x > m) m = x;
        else if (x === -Infinity) masked++;
      }
    }
    if (this.repetitionPenalty !== 1 && context !== undefined && context.length > 0) {
      this.applyPenalty(logits, context, T);
      m = -Infinity;
      masked = 0;
      for (let i = 0; i < V; i++) {
        const x = xs[i]!;
        if (x > m) m = x;
        else if (x === -Infinity) masked++;
      }
    }
    this.max = m;
    this.finite = V - masked;
    if (m === Infinity && !hasPositiveInfinity(logits, V)) this.prepareOverflowed(logits, context, T);
  }

  /** Handles the degenerate rows: none finite (throws), +Infinity present (lowest such id). */
  private special(): number {
    const m = this.max;
    if (m === -Infinity) {
      throw new GemmaError('INVALID_ARGUMENT', `logits has no finite value among ids < ${this.allowedVocab}`);
    }
    if (m === Infinity) return this.xs.indexOf(Infinity);
    return -1;
  }

  /** Applies top-k, top-p, min-p. Returns the survivor count in ids[0..n), or -1 = every finite id. */
  private filter(): number {
    let n = -1;
    if (this.topK > 0 && this.topK < this.finite) n = this.applyTopK();
    if (this.topP < 1) n = n < 0 ? this.applyTopPAll() : this.applyTopPList(n);
    if (this.minP > 0) n = this.applyMinP(n);
    return n;
  }

  /**
   * Partial selection: one pass keeps the k largest in a min-heap of (value, id); its root is the
   * k-th largest value. HF keeps every id >= that value, so if a dropped value ties with it, a
   * second pass collects all of them; otherwise the heap's ids are the survivors.
   */
  private applyTopK(): number {
    const V = this.allowedVocab;
    const xs = this.xs;
    const heap = this.heap;
    const hid = this.heapIds;
    const k = this.topK;
    let size = 0;
    let dropped = -Infinity; // the largest value that left or never entered the heap
    for (let i = 0; i < V; i++) {
      const x = xs[i]!;
      if (size < k) {
        let c = size++;
        while (c > 0) {
          const p = (c - 1) >> 1;
          const pv = heap[p]!;
          if (pv <= x) break;
          heap[c] = pv;
          hid[c] = hid[p]!;
          c = p;
        }
        heap[c] = x;
        hid[c] = i;
      } else if (x > heap[0]!) {
        if (heap[0]! > dropped) dropped = heap[0]!;
        let c = 0;
        for (;;) {
          let l = 2 * c + 1;
          if (l >= k) break;
          const r = l + 1;
          if (r < k && heap[r]! < heap[l]!) l = r;
          if (heap[l]! >= x) break;
          heap[c] = heap[l]!;
          hid[c] = hid[l]!;
          c = l;
        }
        heap[c] = x;
        hid[c] = i;
      } else if (x > dropped) {
        dropped = x;
      }
    }
    const thr = heap[0]!;
    const ids = this.ids;
    if (dropped < thr) {
      for (let j = 0; j < k; j++) ids[j] = hid[j]!;
      return k;
    }
    let n = 0;
    for (let i = 0; i < V; i++) {
      const x = xs[i]!;
      if (x >= thr && x !== -Infinity) ids[n++] = i;
    }
    return n;
  }

  /** Sort key: ascending by value (float32 order), ties by ascending id. */
  private key(id: number): number {
    const x = this.xs[id]!;
    let code: number;
    if (x === 0) code = 0x80000000; // +0 and -0 are equal values
    else {
      const b = this.xbits[id]!;
      code = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    }
    return code * this.idMod + id;
  }

  /**
   * Sorts ids[0..n) and keeps the nucleus, writing it to ids[0..) in decreasing-probability order.
   * Z = the softmax denominator (relative to this.max) over the current support. Returns the kept
   * count; this.nucleusMass = the mass of the kept ids (to detect a too-small candidate set).
   */
  private nucleus(n: number, Z: number): number {
    const ids = this.ids;
    const keys = this.keys;
    for (let j = 0; j < n; j++) keys[j] = this.key(ids[j]!);
    sortAscending(keys, n);
    const xs = this.xs;
    const m = this.max;
    const topP = this.topP;
    const mod = this.idMod;
    let prefix = 0;
    let out = 0;
    for (let j = n - 1; j >= 0; j--) {
      if (prefix >= topP) break;
      const id = keys[j]! % mod;
      ids[out++] = id;
      prefix += expNeg(m - xs[id]!) / Z;
    }
    this.nucleusMass = prefix;
    return out;
  }

  /** Top-p after top-k: the candidates are few, sort them all. */
  private applyTopPList(n: number): number {
    const ids = this.ids;
    const xs = this.xs;
    const m = this.max;
    let Z = 0;
    for (let j = 0; j < n; j++) Z += expNeg(m - xs[ids[j]!]!);
    return this.nucleus(n, Z);
  }

  /**
   * Top-p over the whole vocabulary without a full sort. One pass histograms the probability mass
   * by (max - x); the nucleus lies within the highest buckets whose mass reaches top_p (every id
   * outside them has a strictly smaller value than every id inside, so it is preceded by >= top_p
   * mass). Only those candidates are sorted. The walk over the sorted candidates is the same
   * arithmetic, in the same order, as over a full sort; if it ran out of candidates before the
   * mass reached top_p (rounding at the edge), it is redone over every id.
   */
  private applyTopPAll(): number {
    const V = this.allowedVocab;
    const xs = this.xs;
    const m = this.max;
    const hist = this.hist;
    hist.fill(0);
    let Z = 0;
    for (let i = 0; i < V; i++) {
      const x = xs[i]!;
      if (x === -Infinity) continue;
      const d = m - x;
      const e = expNeg(d);
      Z += e;
      const b = d * HIST_SCALE;
      hist[b < HIST_LAST ? b | 0 : HIST_LAST]! += e;
    }
    const target = this.topP * Z;
    let cut = HIST_LAST;
    let cum = 0;
    for (let b = 0; b < HIST_BUCKETS; b++) {
      cum += hist[b]!;
      if (cum >= target) {
        cut = b;
        break;
      }
    }
    if (cut < HIST_LAST) cut++; // one bucket of margin against rounding
    const ids = this.ids;
    let n = 0;
    for (let i = 0; i < V; i++) {
      const x = xs[i]!;
      if (x === -Infinity) continue;
      const b = (m - x) * HIST_SCALE;
      if ((b < HIST_LAST ? b | 0 : HIST_LAST) <= cut) ids[n++] = i;
    }
    const kept = this.nucleus(n, Z);
    if (kept === n && this.nucleusMass < this.topP && n < this.finite) {
      n = 0;
      for (let i = 0; i < V; i++) if (xs[i]! !== -Infinity) ids[n++] = i;
      return this.nucleus(n, Z);
    }
    return kept;
  }

  /** Min-p: keep exp(x - max) >= minP (the max itself always survives). */
  private applyMinP(n: number): number {
    const xs = this.xs;
    const m = this.max;
    const minP = this.minP;
    const ids = this.ids;
    // expNeg(m - x) >= minP needs m - x <= -ln(minP) up to rounding; skip exp well above that.
    const ceil = -Math.log(minP) + 1e-6;
    if (n < 0) {
      const V = this.allowedVocab;
      n = 0;
      for (let i = 0; i < V; i++) {
        const d = m - xs[i]!;
        if (d <= ceil && expNeg(d) >= minP) ids[n++] = i;
      }
      return n;
    }
    let out = 0;
    for (let j = 0; j < n; j++) {
      const id = ids[j]!;
      const d = m - xs[id]!;
      if (d <= ceil && expNeg(d) >= minP) ids[out++] = id;
    }
    return out;
  }

  /** One multinomial draw, weights exp(x - max), over ids[0..n) or (n = -1) every id. */
  private draw(n: number, u: number): number {
    const xs = this.xs;
    const m = this.max;
    const w = this.keys;
    let total = 0;
    if (n < 0) {
      const V = this.allowedVocab;
      for (let i = 0; i < V; i++) {
        const e = expNeg(m - xs[i]!);
        w[i] = e;
        total += e;
      }
      const r = u * total;
      let cum = 0;
      let last = -1;
      for (let i = 0; i < V; i++) {
        const e = w[i]!;
        if (e > 0) {
          cum += e;
          last = i;
          if (cum > r) return i;
        }
      }
      return last;
    }
    const ids = this.ids;
    for (let j = 0; j < n; j++) {
      const e = expNeg(m - xs[ids[j]!]!);
      w[j] = e;
      total += e;
    }
    const r = u * total;
    let cum = 0;
    let last = -1;
    for (let j = 0; j < n; j++) {
      const e = w[j]!;
      if (e > 0) {
        cum += e;
        last = j;
        if (cum > r) return ids[j]!;
      }
    }
    return ids[last]!;
  }
}

function hasPositiveInfinity(logits: Float32Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (logits[i] === Infinity) return true;
  return false;
}
