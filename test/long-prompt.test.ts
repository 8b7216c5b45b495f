// Long prompts: attention in tiles with an online softmax (native/attention.c and its twin
// src/backend/js-attention.ts). Checked against the textbook two-pass softmax written out here
// (the arithmetic both kernels used before tiling), across many key blocks and query tiles, with
// the sliding window, image spans and every KV type; a prompt cut into chunks anywhere gives the
// same bits as one call (what a prompt cache needs); the scratch does not grow with the prompt;
// and a prompt of thousands of tokens through the decoder's normal chunking keeps its logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KV_TYPES, kvIndex, type AttentionShape, type Backend, type ImageSpans, type KvStore, type KvType } from '../src/backend/backend.js';
import { attentionScratchBytes } from '../src/backend/js-attention.js';
import { JsBackend } from '../src/backend/js-backend.js';
import { fromKvBits, toKvBits } from '../src/backend/kv-types.js';
import { NativeBackend, loadNativeBinding } from '../src/backend/native-backend.js';
import { openCheckpoint } from '../src/formats/safetensors.js';
import { Rng } from '../src/generate/rng.js';
import { loadConfig } from '../src/model/config.js';
import { KvCache } from '../src/model/kv-cache.js';
import { loadTextDecoder } from '../src/model/text-model.js';
import { fixturePath, maxAbsDiff } from './helpers.js';

const binding = loadNativeBinding();
const skip = binding instanceof Error ? `native addon not built: ${binding.message.split('\n')[0]}` : false;
const js = new JsBackend();
const native = binding instanceof Error ? null : new NativeBackend(binding, 2);

function randn(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(Math.max(rng.nextFloat(), 1e-12))) * Math.cos(2 * Math.PI * rng.nextFloat());
  return out;
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

/**
 * The two-pass softmax over keys [lo, hi] of each query, scores rounded to float32 and the rest
 * in float64: the arithmetic both kernels used before tiling, the reference here.
 */
const reference: Backend['attention'] = (out, q, kChunk, vChunk, cache, start, T, s, images) => {
  const group = s.numHeads / s.numKvHeads;
  const hd = s.headDim;
  const kvDim = s.numKvHeads * hd;
  const type = cache.type ?? 'f32';
  const widen = (buf: Float32Array | Uint16Array): Float32Array => (type === 'f32' ? buf as Float32Array : Float32Array.from(buf, (b) => fromKvBits(b, type)));
  const cacheK = widen(cache.k);
  const cacheV = widen(cache.v);
  const scores = new Float64Array(start + T);
  const acc = new Float64Array(hd);
  for (let t = 0; t < T; t++) {
    const pos = start + t;
    let lo = s.window > 0 ? Math.max(0, pos - s.window + 1) : 0;
    let hi = pos;
    if (images && images.spanStart[t]! >= 0) {
      lo = Math.min(lo, start + images.spanStart[t]!);
      hi = Math.max(hi, start + images.spanEnd[t]!);
    }
    for (let h = 0; h < s.numHeads; h++) {
      const kvHead = Math.floor(h / group);
      const at = (j: number): number => (j >= start ? (j - start) * kvDim + kvHead * hd
        : kvIndex(cache, cache.ring > 0 ? j % cache.ring : j, kvHead, s.numKvHeads, hd));
      const qo = t * s.numHeads * hd + h * hd;
      let max = -Infinity;
      for (let j = lo; j <= hi; j++) {
        const k = j >= start ? kChunk : cacheK;
        const o = at(j);
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[qo + d]! * k[o + d]!;
        scores[j] = Math.fround(Math.fround(dot) * s.scale);
        max = Math.max(max, scores[j]!);
      }
      let sum = 0;
      for (let j = lo; j <= hi; j++) sum += (scores[j] = Math.exp(scores[j]! - max));
      acc.fill(0);
      for (let j = lo; j <= hi; j++) {
        const v = j >= start ? vChunk : cacheV;
        const o = at(j);
        const p = scores[j]! / sum;
        for (let d = 0; d < hd; d++) acc[d] += p * v[o + d]!;
      }
      for (let d = 0; d < hd; d++) out[qo + d] = acc[d]!;
    }
  }
};

const config = loadConfig(fixturePath('tiny-text')).text;
/** A prompt of `n` ids (ordinary tokens, no specials): a pseudo-random text. */
function longPrompt(n: number): number[] {
  const rng = new Rng(5);
  return Array.from({ length: n }, () => 1000 + Math.floor(rng.nextFloat() * 100000));
}

/** The last position's logits and every position's final-norm rows after `ids`, through the decoder's chunking. */
function prefill(be: Backend, ids: number[]): { logits: Float32Array; rows: Float32Array } {
  const source = openCheckpoint(fixturePath('tiny-text'));
  try {
    const decoder = loadTextDecoder(source, config, be);
    const H = config.hiddenSize;
    const rows = new Float32Array(ids.length * H);
    let at = 0;
    const cache = new KvCache(config, ids.length);
    const logits = decoder.forward({ ids }, cache, {
      logits: 'last',
      onHiddenState: (stage, x, T) => {
        if (stage !== 'final_norm') return;
        rows.set(x.subarray(0, T * H), at * H);
        at += T;
      },
    });
    assert.equal(at, ids.length, 'every chunk reported its rows');
    return { logits: logits.slice(), rows };
  } finally {
    source.close();
  }
}

/** `be` with its attention replaced by the two-pass reference: everything else computed as `be` does. */
function withReferenceAttention(be: Backend): Backend {
  const wrapped = Object.create(be) as Backend;
  wrapped.attention = reference;
  return wrapped;
}

interface LongCase {
  shape: AttentionShape;
  cache: KvStore;
  start: number;
  T: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  spans: ImageSpans | undefined;
}

/** `start` cached positions (a ring of 192 on a sliding layer) and a chunk of T: many blocks of 64 keys. */
function longCase(window: number, withSpans: boolean, type: KvType, headDim: number, start = 150, T = 100): LongCase {
  const rng = new Rng(17);
  const shape = { numHeads: 4, numKvHeads: 2, headDim, scale: 0.15, window };
  const kvDim = 2 * headDim;
  const ring = window ? 192 : 0;
  const slots = ring || start + T + 5;
  const block = 16;
  const allocated = Math.ceil(slots / block) * block * kvDim;
  const stored = (x: Float32Array): Float32Array | Uint16Array => (type === 'f32' ? x : Uint16Array.from(x, (e) => toKvBits(e, type)));
  const cache = { k: stored(randn(rng, allocated)), v: stored(randn(rng, allocated)), slots, ring, block, type };
  // Keys as the decoder hands them over: already rounded to the cache's type.
  const rounded = (x: Float32Array): Float32Array => (type === 'f32' ? x : x.map((e) => fromKvBits(toKvBits(e, type), type)));
  const q = randn(rng, T * 4 * headDim).map((x) => x * 2); // peaked softmaxes: the running max moves
  const k = rounded(randn(rng, T * kvDim));
  const v = rounded(randn(rng, T * kvDim));
  // An image block [20, 90) of the chunk: it crosses tiles and key blocks, and reaches past the window.
  const spans = withSpans
    ? { spanStart: Int32Array.from({ length: T }, (_, t) => (t >= 20 && t < 90 ? 20 : -1)), spanEnd: Int32Array.from({ length: T }, (_, t) => (t >= 20 && t < 90 ? 89 : -1)) }
    : undefined;
  return { shape, cache, start, T, q, k, v, spans };
}

function run(attention: Backend['attention'], c: LongCase): Float32Array {
  const out = new Float32Array(c.T * c.shape.numHeads * c.shape.headDim);
  attention(out, c.q, c.k, c.v, c.cache, c.start, c.T, c.shape, c.spans);
  return out;
}

const cases = [{ window: 0, spans: false }, { window: 40, spans: false }, { window: 40, spans: true }, { window: 0, spans: true }];

test('the TypeScript attention scratch is a tile by a block, the same for a 200- and a 1,100-token prompt', () => {
  prefill(js, longPrompt(200));
  const short = attentionScratchBytes();
  prefill(js, longPrompt(1100));
  assert.equal(attentionScratchBytes(), short, 'scratch grows with the prompt');
  // Run alone: a tile of 16 queries x group 2 by a block of 64 keys (float64 scores), their
  // outputs and running max and sum, a block of widened key and value rows: 41,472 bytes. After
  // other tests (head sizes up to 72) it is larger, never near a T x keys score matrix (1100² x 8
  // bytes = 9.7 MB).
  const tileBytes = 16 * 2 * 64 * 8 + 16 * 2 * config.headDim * 8 + 2 * 16 * 2 * 8 + 2 * 64 * config.headDim * 4;
  assert.ok(short >= tileBytes && short < 256 * 1024, `scratch ${short} bytes`);
});

test('tiled attention equals the two-pass softmax over many key blocks and query tiles (window, image span, every KV type)', () => {
  const backends: Backend[] = native ? [js, native] : [js];
  for (const opts of cases) {
    for (const type of KV_TYPES) {
      for (const headDim of [24, 64]) { // 64: the AVX-512 path
        const c = longCase(opts.window, opts.spans, type, headDim);
        const expected = run(reference, c);
        for (const be of backends) {
          const err = relErr(run(be.attention.bind(be), c), expected);
          // Measured: TypeScript 0 (float64 throughout; an ulp of the float32 output allowed),
          // native 2.3e-7 .. 9.4e-7 (float32 exps and sums).
          assert.ok(err < (be === js ? 2e-7 : 1e-5), `${be.name} window ${opts.window} spans ${opts.spans} ${type} head ${headDim}: ${err}`);
        }
      }
    }
  }
});

test('tiled attention native equals TypeScript across many blocks and tiles', { skip }, () => {
  for (const opts of cases) {
    for (const type of KV_TYPES) {
      for (const headDim of [64, 256]) { // 256: Gemma 3's head size
        const c = longCase(opts.window, opts.spans, type, headDim);
        const err = relErr(run(native!.attention.bind(native!), c), run(js.attention.bind(js), c));
        assert.ok(err < 1e-5, `window ${opts.window} spans ${opts.spans} ${type} head ${headDim}: ${err}`);
      }
    }
  }
});

test('a chunk computed in one call or cut in two gives the same bits (each query independent of its tile)', () => {
  const backends: Backend[] = native ? [js, native] : [js];
  for (const be of backends) {
    for (const type of KV_TYPES) {
      for (const window of [0, 40]) {
        // A cache with room for the whole chunk: the first part is written before the second runs.
        const whole = longCase(window, false, type, 64);
        const expected = run(be.attention.bind(be), whole);
        const cut = 37; // neither a tile nor a block boundary
        const cache = { ...whole.cache, k: whole.cache.k.slice(), v: whole.cache.v.slice() };
        const dim = whole.shape.numHeads * whole.shape.headDim;
        const kvDim = whole.shape.numKvHeads * whole.shape.headDim;
        const first = new Float32Array(cut * dim);
        be.attention(first, whole.q.subarray(0, cut * dim), whole.k.subarray(0, cut * kvDim), whole.v.subarray(0, cut * kvDim), cache,
          whole.start, cut, whole.shape);
        be.writeKv(cache, whole.k.subarray(0, cut * kvDim), whole.v.subarray(0, cut * kvDim), whole.start, cut, 2, whole.shape.headDim);
        const second = new Float32Array((whole.T - cut) * dim);
        be.attention(second, whole.q.subarray(cut * dim), whole.k.subarray(cut * kvDim), whole.v.subarray(cut * kvDim), cache,
          whole.start + cut, whole.T - cut, whole.shape);
        assert.deepEqual(first, expected.subarray(0, cut * dim), `${be.name} ${type} window ${window}: first part`);
        assert.deepEqual(second, expected.subarray(cut * dim), `${be.name} ${type} window ${window}: second part`);
      }
    }
  }
});

test('a 1,600-token prompt through the decoder (chunks of 512) keeps its logits', () => {
  const ids = longPrompt(1600);
  const backends: Backend[] = native ? [js, native] : [js];
  for (const be of backends) {
    const ours = prefill(be, ids);
    const before = prefill(withReferenceAttention(be), ids);
    const rowErr = maxAbsDiff(ours.rows, before.rows);
    const logitErr = maxAbsDiff(ours.logits, before.logits);
    // Measured: js 0 and 0 (float64 either way), native 1.8e-5 on the rows, 4.4e-6 on the logits.
    assert.ok(rowErr < (be === js ? 1e-6 : 1e-4), `${be.name}: final-norm rows differ by ${rowErr}`);
    assert.ok(logitErr < (be === js ? 1e-6 : 5e-5), `${be.name}: last logits differ by ${logitErr}`);
  }
});

test('native attention scratch per thread is the same for a 600- and a 2,600-token prompt (tiny fixture)', { skip }, () => {
  const peak = (n: number): number => {
    binding instanceof Error || binding.attentionScratchPeak(true);
    prefill(native!, longPrompt(n));
    return binding instanceof Error ? NaN : binding.attentionScratchPeak(false);
  };
  const short = peak(600);
  const long = peak(2600);
  assert.equal(long, short, 'scratch grows with the prompt');
  // A tile of 16 queries x group 2: 64 scores and 32 outputs each, plus two blocks of 64 rows.
  assert.ok(long > 0 && long < 64 * 1024, `scratch ${long} bytes per thread`);
});
