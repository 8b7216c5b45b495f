// Native kernels against their TypeScript twins, every weight type, odd sizes (columns not a
// multiple of the SIMD width, rows not a multiple of the tile), batch 1 and batched.
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import assert from 'node:assert/strict';
import { KV_TYPES, kvIndex, type Backend, type KvType } from '../src/backend/backend.js';
import { fromKvBits, toKvBits } from '../src/backend/kv-types.js';
import { quantizeQ8 } from '../src/backend/q8-activations.js';
import { geluTanhMul } from '../src/backend/js-ops.js';
import { quantizeRowQ4_K, quantizeRowQ6_K } from '../src/formats/quant.js';
import { Q8K_BLOCK_BYTES, quantizeQ8K } from '../src/backend/q8k-activations.js';
import { Rng } from '../src/generate/rng.js';
import { extremeKquantInput } from './helpers.js';
import { SHAPES, binding, js, makeMatrix, native, productsWithAvx2, randn, relErr, skip } from './native-test-kit.js';
for (const dtype of ['f32', 'bf16', 'f16', 'q8_0', 'q4_0'] as const) {
  test(`matMul ${dtype}: native equals TypeScript on odd sizes`, { skip }, () => {
    const rng = new Rng(42);
    for (const [batch, rows, colsRaw] of SHAPES) {
      const cols = dtype.startsWith('q') ? colsRaw : colsRaw + 3; // float types also get non-multiple-of-16 columns
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      const x = randn(rng, batch * cols);
      const a = new Float32Array(batch * rows);
      const b = new Float32Array(batch * rows);
      js.matMul(a, w, x, batch);
      native!.matMul(b, w, x, batch);
      const err = relErr(b, a);
      assert.ok(err < 1e-5, `${dtype} batch ${batch} rows ${rows} cols ${cols}: relative error ${err}`);
    }
  });
}

// K-quants (Q4_K, Q6_K) as stored, activations in Q8_K: rows that fill no tile, 1 to 97 super-blocks
// (the AVX-512 decode path takes four at a time, and rows over 96 with activations as stored),
// batches 1 to 13 (prompts: tiles of eight activation rows and a remainder; 13 × 10 super-blocks
// and more are quantized by the pool).
const KQUANT_SHAPES: [number, number, number][] = [
  [1, 13, 256], [2, 8, 512], [5, 7, 768], [3, 17, 2560], [9, 1, 256], [1, 35, 2560], [13, 11, 2560], [1, 9, 10240], [1, 3, 24832], [64, 3, 512],
];

/** Native K-quant products equal the TypeScript twin bit for bit, whole and over row ranges. */
function checkKquantTwin(dtype: 'q4_k' | 'q6_k', seed: number): void {
  const rng = new Rng(seed);
  for (const [batch, rows, cols] of KQUANT_SHAPES) {
    const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
    const x = randn(rng, batch * cols);
    if (batch === 5) x.fill(0, 0, 256); // an all-zero super-block: d = 0
    const a = new Float32Array(batch * rows);
    const b = new Float32Array(batch * rows);
    js.matMul(a, w, x, batch);
    native!.matMul(b, w, x, batch);
    const err = relErr(b, a);
    assert.ok(err < 1e-5, `${dtype} batch ${batch} rows ${rows} cols ${cols}: relative error ${err}`);
    assert.deepEqual(b, a, `${dtype} batch ${batch} rows ${rows} cols ${cols}: not bit for bit`);
    // A row range at a stride, as the decoder's split products use.
    const c = new Float32Array(batch * rows).fill(7);
    const range = { rowStart: Math.floor(rows / 3), rowEnd: rows, outStride: rows };
    native!.matMul(c, w, x, batch, range);
    for (let n = 0; n < batch; n++) {
      for (let r = range.rowStart; r < rows; r++) assert.equal(c[n * rows + r - range.rowStart], a[n * rows + r]);
    }
  }
}

for (const dtype of ['q4_k', 'q6_k'] as const) {
  test(`matMul ${dtype}: native equals TypeScript on odd sizes (the same integer sums: bit for bit)`, { skip }, () => {
    checkKquantTwin(dtype, dtype === 'q4_k' ? 44 : 66);
  });
}

// The AVX-512 VNNI K-quant kernels (native/kernels-kquant-avx512.c) run only where the addon
// chose them: elsewhere (no AVX-512 VNNI, or GEMMA3_NATIVE_KERNELS forcing a lower class) these
// tests skip, visibly, with the reason.
const kquantAvx512Skip = skip || (native!.info.kquantKernels === 'avx512' ? false
  : `the AVX-512 VNNI K-quant kernels are not chosen here ('${native!.info.kquantKernels}' K-quant kernels, ` +
    `${process.env.GEMMA3_NATIVE_KERNELS ? `GEMMA3_NATIVE_KERNELS=${process.env.GEMMA3_NATIVE_KERNELS}` : 'this CPU lacks AVX-512 VNNI'})`);
if (kquantAvx512Skip && !skip) console.warn(`SKIPPED: ${kquantAvx512Skip}`);

for (const dtype of ['q4_k', 'q6_k'] as const) {
  test(`matMul ${dtype} with the AVX-512 VNNI kernel equals TypeScript bit for bit (odd sizes, row ranges, batch 1 and prompts)`, { skip: kquantAvx512Skip }, () => {
    checkKquantTwin(dtype, dtype === 'q4_k' ? 45 : 67);
  });
}

test('the AVX-512 VNNI K-quant kernels give the AVX2 ones\' results bit for bit (a child process with AVX2 forced)', { skip: kquantAvx512Skip, timeout: 60_000 }, async () => {
  const rng = new Rng(78);
  const cases: { dtype: 'q4_k' | 'q6_k'; rows: number; cols: number; batch: number; w: Uint8Array; x: Float32Array }[] = [];
  for (const dtype of ['q4_k', 'q6_k'] as const) {
    for (const [batch, rows, cols] of [[1, 37, 2560], [1, 5, 24832], [3, 9, 768], [8, 6, 512], [19, 5, 1280]] as const) {
      cases.push({ dtype, rows, cols, batch, w: makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1)).data, x: randn(rng, batch * cols) });
    }
  }
  const outs = await productsWithAvx2(cases, 'kquant');
  for (const [i, c] of cases.entries()) {
    const out = new Float32Array(c.batch * c.rows);
    native!.matMul(out, { dtype: c.dtype, rows: c.rows, cols: c.cols, data: c.w }, c.x, c.batch);
    assert.deepEqual(outs[i], out, `${c.dtype} batch ${c.batch} ${c.rows}x${c.cols}`);
  }
});

test('activation quantization to Q8_K is bit-identical in C and TypeScript (scales over 14 decades, zero and subnormal blocks)', { skip }, () => {
  const rng = new Rng(8);
  const cols = 512, rows = 16;
  const x = randn(rng, rows * cols, 3);
  for (let r = 0; r < rows; r++) x.subarray(r * cols, (r + 1) * cols).forEach((v, i, a) => (a[i] = v * 10 ** (r % 15 - 7)));
  x.fill(0, 256, 512);
  for (let i = 512; i < 768; i++) x[i] = (i % 7 - 3) * 1e-42;
  const c = binding instanceof Error ? new Uint8Array(0) : binding.quantizeQ8K(x, cols);
  const t = quantizeQ8K(x, rows, cols);
  const view = new DataView(c.buffer, c.byteOffset, c.byteLength);
  assert.equal(c.length, (rows * cols / 256) * Q8K_BLOCK_BYTES);
  for (let b = 0; b < (rows * cols) / 256; b++) {
    const o = b * Q8K_BLOCK_BYTES;
    assert.equal(view.getFloat32(o, true), t.d[b], `block ${b} d`);
    assert.deepEqual(new Int8Array(c.buffer, c.byteOffset + o + 4, 256), t.qs.subarray(b * 256, b * 256 + 256), `block ${b} qs`);
    for (let g = 0; g < 16; g++) assert.equal(view.getInt16(o + 260 + 2 * g, true), t.bsums[b * 16 + g], `block ${b} bsum ${g}`);
  }
});

test('the addon\'s K-quant quantizers write the bytes of the TypeScript ones (ggml\'s quantize_row_q4_K_ref / _q6_K_ref)', { skip }, () => {
  const x = extremeKquantInput();
  if (binding instanceof Error) return;
  const addon = binding;
  assert.deepEqual(addon.quantizeKQuant(x, 7), quantizeRowQ4_K(x), 'q4_k');
  assert.deepEqual(addon.quantizeKQuant(x, 8), quantizeRowQ6_K(x), 'q6_k');
  assert.throws(() => addon.quantizeKQuant(x.subarray(0, 100), 7), RangeError);
});

// One activation row (decode) streams the weights with its own tile shapes and prefetches;
// it must give exactly what a batch gives for the same row. Rows of 16 KiB and more go four at a
// time, 13 and 203 rows leave partial tiles, and 3 threads split the chunks unevenly.
test('matMul with one or two activation rows equals the batched product of those rows, and a 70-row prompt each row alone, bit for bit (float types)', { skip }, (t) => {
  const rng = new Rng(5);
  const packedPrompts = native?.info.kernels === 'avx2-packed';
  if (packedPrompts) t.diagnostic('70-row prompts not compared: GEMMA3_NATIVE_KERNELS=avx2-packed rounds prompts of 16+ rows differently by design');
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    for (const [rows, cols] of [[13, 8192 + 35], [203, 2560 + 7], [8, 4099], [29, 21]]) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      const x = randn(rng, cols);
      const batched = new Float32Array(3 * rows);
      native!.matMul(batched, w, new Float32Array([...x, ...x, ...x]), 3);
      // Two rows (a decode of two streams) take their own tile width.
      const pair = new Float32Array(2 * rows);
      native!.matMul(pair, w, new Float32Array([...x, ...x]), 2);
      assert.deepEqual(pair, batched.subarray(0, 2 * rows), `${dtype} ${rows}x${cols}: batch 2`);
      // A prompt of 70 distinct rows (across the 64-row activation block): each row as if alone.
      // Not with the opt-in packed AVX2 prompt panels, whose rounding differs by design.
      if (!packedPrompts) {
        const prompt = randn(rng, 70 * cols);
        prompt.set(x, 0);
        const many = new Float32Array(70 * rows);
        native!.matMul(many, w, prompt, 70);
        assert.deepEqual(many.subarray(0, rows), batched.subarray(0, rows), `${dtype} ${rows}x${cols}: batch 70, row 0`);
        for (const n of [5, 63, 64, 69]) {
          const alone = new Float32Array(rows);
          native!.matMul(alone, w, prompt.subarray(n * cols, (n + 1) * cols), 1);
          assert.deepEqual(many.subarray(n * rows, (n + 1) * rows), alone, `${dtype} ${rows}x${cols}: batch 70, row ${n}`);
        }
      }
      for (const threads of [2, 3, 1]) {
        (binding as { setThreads(n: number): void }).setThreads(threads);
        const one = new Float32Array(rows);
        native!.matMul(one, w, x, 1);
        assert.deepEqual(one, batched.subarray(0, rows), `${dtype} ${rows}x${cols}, ${threads} threads`);
        const ref = new Float32Array(rows);
        js.matMul(ref, w, x, 1);
        assert.ok(relErr(one, ref) < 1e-5, `${dtype} ${rows}x${cols}: relative error ${relErr(one, ref)}`);
      }
      (binding as { setThreads(n: number): void }).setThreads(2);
    }
  }
});

test('products sharing their activations (q, k, v) equal separate TypeScript products, every layout and mix', { skip }, () => {
  const rng = new Rng(31);
  const cols = 96;
  for (const dtypes of [['q4_0', 'q8_0', 'q4_0'], ['bf16', 'f32'], ['q8_0', 'bf16'], ['f16'], ['q4_k', 'q6_k', 'q4_k'], ['q4_k', 'q8_0'], ['q6_k', 'f32']] as const) {
    const cols = dtypes.some((d) => d.endsWith('_k')) ? 512 : 96;
    for (const batch of [1, 4, 9]) {
      const ws = dtypes.map((d, i) => makeMatrix(d, 16 * (i + 1) + (i === 2 ? 3 : 0), cols, randn(rng, (16 * (i + 1) + 3) * cols, 0.1)));
      const x = randn(rng, batch * cols);
      const want = ws.map((w) => new Float32Array(batch * w.rows));
      ws.forEach((w, i) => js.matMul(want[i]!, w, x, batch));
      const got = ws.map((w) => new Float32Array(batch * w.rows));
      native!.matMulShared(got, ws.map((w) => native!.prepareMatrix(w)), x, batch);
      ws.forEach((w, i) => assert.ok(relErr(got[i]!, want[i]!) < 1e-5, `${dtypes.join('+')} batch ${batch} matrix ${i}: ${relErr(got[i]!, want[i]!)}`));
    }
  }
});

test('matMul with a row range writes only those rows at the given stride', { skip }, () => {
  const rng = new Rng(1);
  const rows = 21;
  const cols = 45;
  const w = makeMatrix('bf16', rows, cols, randn(rng, rows * cols));
  const x = randn(rng, 3 * cols);
  const range = { rowStart: 5, rowEnd: 18, outStride: 13 };
  const a = new Float32Array(3 * 13).fill(7);
  const b = new Float32Array(3 * 13).fill(7);
  js.matMul(a, w, x, 3, range);
  native!.matMul(b, w, x, 3, range);
  assert.ok(relErr(b, a) < 1e-5);
});

test('activation quantization to Q8 blocks is bit-identical in C and TypeScript', { skip }, () => {
  const rng = new Rng(3);
  const cols = 256;
  const rows = 64;
  const x = randn(rng, rows * cols, 3);
  for (let r = 0; r < rows; r++) x.subarray(r * cols, (r + 1) * cols).forEach((v, i, a) => (a[i] = v * 10 ** (r % 7 - 3)));
  x[5] = 0; x[40] = 2.5; x.fill(0, 64, 96); // a zero block and exact halves
  // A block scaled by exactly 1 (max 127): every value lands on a half, rounded away from zero.
  x.set([127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, 63.5, -63.5, 0.49999997, -0.49999997], 96);
  const ours = quantizeQ8(x, rows, cols);
  const theirs = (binding as any).quantizeQ8(x, cols) as Uint8Array;
  const view = new DataView(theirs.buffer, theirs.byteOffset, theirs.byteLength);
  for (let b = 0; b < (rows * cols) / 32; b++) {
    for (let j = 0; j < 32; j++) assert.equal(view.getInt8(b * 40 + j), ours.qs[b * 32 + j], `block ${b} value ${j}`);
    assert.equal(view.getFloat32(b * 40 + 32, true), ours.d[b], `block ${b} scale`);
    assert.equal(view.getInt32(b * 40 + 36, true), ours.sum[b], `block ${b} sum`);
  }
});

function attentionCase(be: Backend, opts: { window: number; spans: boolean; start?: number; headDim?: number; kvType?: KvType }): Float32Array {
  const rng = new Rng(9);
  const hd = opts.headDim ?? 24;
  const shape = { numHeads: 4, numKvHeads: 2, headDim: hd, scale: 0.2, window: opts.window };
  const kvDim = 2 * hd;
  const start = opts.start ?? 11;
  const T = 9;
  const ring = opts.window ? 16 : 0;
  const slots = ring || start + 6; // more slots than positions, and not whole blocks
  const block = 4;
  const allocated = Math.ceil(slots / block) * block;
  const type = opts.kvType ?? 'f32';
  const stored = (x: Float32Array): Float32Array | Uint16Array => (type === 'f32' ? x : Uint16Array.from(x, (e) => toKvBits(e, type)));
  const cache = { k: stored(randn(rng, allocated * kvDim)), v: stored(randn(rng, allocated * kvDim)), slots, ring, block, type };
  const q = randn(rng, T * 4 * hd);
  const k = randn(rng, T * kvDim);
  const v = randn(rng, T * kvDim);
  const spans = opts.spans
    ? { spanStart: Int32Array.from({ length: T }, (_, t) => (t >= 2 && t < 6 ? 2 : -1)), spanEnd: Int32Array.from({ length: T }, (_, t) => (t >= 2 && t < 6 ? 5 : -1)) }
    : undefined;
  const out = new Float32Array(T * 4 * hd);
  be.attention(out, q, k, v, cache, start, T, shape, spans);
  return out;
}

for (const opts of [{ window: 0, spans: false }, { window: 5, spans: false }, { window: 5, spans: true }, { window: 0, spans: true },
  { window: 0, spans: true, start: 0 }, { window: 0, spans: false, start: 0 }]) {
  test(`attention native equals TypeScript (window ${opts.window}, image span ${opts.spans}, start ${opts.start ?? 11})`, { skip }, () => {
    for (const kvType of KV_TYPES) {
      for (const headDim of [24, 64]) { // 64: the AVX-512 path
        const err = relErr(attentionCase(native!, { ...opts, headDim, kvType }), attentionCase(js, { ...opts, headDim, kvType }));
        assert.ok(err < 1e-5, `${kvType} cache, head size ${headDim}: relative error ${err}`);
      }
    }
  });
}

/**
 * A chunk of T queries at once (prompt tiles) and the same queries one decode step at a time
 * (each step's key and value written to the cache after it): decode runs its own block kernels
 * (key rows read front to back), which must compute every score and output element as the
 * prompt tiles do.
 */
function attentionChunkAndSteps(be: Backend, headDim: number, group: number, kvType: KvType): [Float32Array, Float32Array] {
  const rng = new Rng(21);
  const numKvHeads = 2;
  const shape = { numHeads: numKvHeads * group, numKvHeads, headDim, scale: 0.1, window: 0 };
  const kvDim = numKvHeads * headDim, qDim = shape.numHeads * headDim;
  const start = 11, T = 9, block = 4;
  const slots = start + T + 3;
  const allocated = Math.ceil(slots / block) * block;
  const stored = (x: Float32Array): Float32Array | Uint16Array => (kvType === 'f32' ? x : Uint16Array.from(x, (e) => toKvBits(e, kvType)));
  const keys = randn(rng, allocated * kvDim), values = randn(rng, allocated * kvDim);
  const q = randn(rng, T * qDim), k = randn(rng, T * kvDim), v = randn(rng, T * kvDim);
  const chunk = new Float32Array(T * qDim);
  // The chunk's own keys and values as a 16-bit cache would hold them, so that both ways see the same numbers.
  const asCached = (x: Float32Array): Float32Array => (kvType === 'f32' ? x : Float32Array.from(x, (e) => fromKvBits(toKvBits(e, kvType), kvType)));
  be.attention(chunk, q, asCached(k), asCached(v), { k: stored(keys), v: stored(values), slots, ring: 0, block, type: kvType }, start, T, shape);
  const steps = new Float32Array(T * qDim);
  const cache = { k: stored(keys), v: stored(values), slots, ring: 0, block, type: kvType };
  for (let t = 0; t < T; t++) {
    const kt = k.subarray(t * kvDim, (t + 1) * kvDim), vt = v.subarray(t * kvDim, (t + 1) * kvDim);
    be.attention(steps.subarray(t * qDim, (t + 1) * qDim), q.subarray(t * qDim, (t + 1) * qDim), asCached(kt), asCached(vt), cache, start + t, 1, shape);
    be.writeKv(cache, kt, vt, start + t, 1, numKvHeads, headDim);
  }
  return [chunk, steps];
}

test('attention: a chunk of queries equals the same queries as decode steps, bit for bit (head sizes 24, 64, 256; one or two heads per KV head; every KV type)', { skip }, () => {
  for (const kvType of KV_TYPES) {
    for (const headDim of [24, 64, 256]) {
      for (const group of [1, 2]) {
        const [chunk, steps] = attentionChunkAndSteps(native!, headDim, group, kvType);
        assert.deepEqual(steps, chunk, `${kvType} cache, head size ${headDim}, ${group} heads per KV head`);
      }
    }
  }
});

test('attention over a 16-bit cache equals attention over the same values widened to an f32 cache', { skip }, () => {
  for (const be of [js, native!]) {
    for (const kvType of ['f16', 'bf16'] as const) {
      const reduced = attentionCase(be, { window: 5, spans: true, headDim: 64, kvType });
      // The same cache contents, widened in TypeScript: only the storage differs.
      const widened = attentionCaseWidened(be, kvType);
      assert.deepEqual(reduced, widened, `${be.name} ${kvType}`);
    }
  }
});

function attentionCaseWidened(be: Backend, kvType: KvType): Float32Array {
  const wrapped: Backend = Object.create(be) as Backend;
  wrapped.attention = (out, q, k, v, cache, start, T, shape, spans) => {
    const widen = (x: Float32Array | Uint16Array): Float32Array => Float32Array.from(x as Uint16Array, (bits) => fromKvBits(bits, kvType));
    be.attention(out, q, k, v, { ...cache, k: widen(cache.k), v: widen(cache.v), type: 'f32' }, start, T, shape, spans);
  };
  return attentionCase(wrapped, { window: 5, spans: true, headDim: 64, kvType });
}

/** Values that probe rounding: ties, subnormals, overflow past 65504, signed zeros, and random ones. */
function roundingProbe(rng: Rng, n: number): Float32Array {
  const edge = [0, -0, 1, -1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65504, 65519.99, 65520, -70000, 2 ** -24,
    2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -26, 2 ** -15 + 2 ** -25, 1e-30, 3e38, -3.4e38, 2 ** -133];
  const x = randn(rng, n, 3);
  for (let i = 0; i < edge.length && i < n; i++) x[i * 3] = edge[i]!;
  return x;
}

test('rounding a chunk to each KV type: native equals TypeScript bit for bit', { skip }, () => {
  const rng = new Rng(31);
  for (const kvType of KV_TYPES) {
    for (const n of [1, 7, 8, 67, 256]) {
      const x = roundingProbe(rng, n);
      const a = x.slice();
      const b = x.slice();
      js.roundToKvType(a, n, kvType);
      native!.roundToKvType(b, n, kvType);
      assert.deepEqual(b, a, `${kvType}, ${n} values`);
      for (let i = 0; i < n; i++) assert.equal(a[i], kvType === 'f32' ? x[i] : fromKvBits(toKvBits(x[i]!, kvType), kvType));
    }
  }
  // The reference conversions themselves: f16 keeps 11 significant bits, bf16 8, ties to even.
  assert.equal(fromKvBits(toKvBits(1 + 2 ** -11, 'f16'), 'f16'), 1);
  assert.equal(fromKvBits(toKvBits(1 + 3 * 2 ** -11, 'f16'), 'f16'), 1 + 2 ** -9);
  assert.equal(fromKvBits(toKvBits(65520, 'f16'), 'f16'), Infinity);
  assert.equal(fromKvBits(toKvBits(1 + 2 ** -8, 'bf16'), 'bf16'), 1);
  assert.equal(fromKvBits(toKvBits(1 + 3 * 2 ** -8, 'bf16'), 'bf16'), 1 + 2 ** -6);
});

test('writing keys and values into the blocked cache equals TypeScript (ring wrap, chunk longer than the ring)', { skip }, () => {
  const rng = new Rng(23);
  for (const [ring, slots, block, start, T] of [[0, 19, 4, 3, 9], [8, 8, 8, 5, 6], [8, 8, 2, 2, 11], [0, 12, 64, 0, 12]] as const) {
    const heads = 3;
    const hd = 16;
    const k = randn(rng, T * heads * hd);
    const v = randn(rng, T * heads * hd);
    const n = Math.ceil(slots / block) * block * heads * hd;
    for (const type of KV_TYPES) {
      const make = () => (type === 'f32' ? new Float32Array(n) : new Uint16Array(n));
      const a = { k: make(), v: make(), slots, ring, block, type };
      const b = { k: make(), v: make(), slots, ring, block, type };
      js.writeKv(a, k, v, start, T, heads, hd);
      native!.writeKv(b, k, v, start, T, heads, hd);
      assert.deepEqual(b.k, a.k, type);
      assert.deepEqual(b.v, a.v, type);
    }
  }
  // Rounding edge cases stored through both: ties, subnormals, overflow.
  for (const type of ['f16', 'bf16'] as const) {
    const x = roundingProbe(rng, 64 * 3);
    const a = { k: new Uint16Array(64 * 3), v: new Uint16Array(64 * 3), slots: 64, ring: 0, block: 64, type };
    const b = { k: new Uint16Array(64 * 3), v: new Uint16Array(64 * 3), slots: 64, ring: 0, block: 64, type };
    js.writeKv(a, x, x, 0, 64, 1, 3);
    native!.writeKv(b, x, x, 0, 64, 1, 3);
    assert.deepEqual(b.k, a.k, `${type} rounding`);
    assert.deepEqual(Array.from(a.k), Array.from(x, (e) => toKvBits(e, type)), `${type} bits`);
  }
  const half = { k: new Uint16Array(4 * 16), v: new Uint16Array(4 * 16), slots: 4, ring: 0, block: 4, type: 'f16' as const };
  assert.throws(() => native!.writeKv({ ...half, k: new Uint16Array(4 * 16 - 1) }, new Float32Array(64), new Float32Array(64), 0, 4, 1, 16), /sizes/);
  assert.throws(() => native!.writeKv({ ...half, type: 'f32' }, new Float32Array(16), new Float32Array(16), 0, 1, 1, 16), /Float32Array/);
  const full = { k: new Float32Array(4 * 16), v: new Float32Array(4 * 16), slots: 4, ring: 0, block: 4 };
  assert.throws(() => native!.writeKv(full, new Float32Array(16), new Float32Array(16), 4, 1, 1, 16), /sizes/);
});

test('the KV cache index: kvIndex (TypeScript) and kv_index (native/attention.h) agree', { skip }, () => {
  for (const block of [1, 2, 16, 256, 1 << 16]) {
    for (const [numKvHeads, headDim] of [[1, 1], [4, 256], [3, 72], [8, 128]] as const) {
      const store = { k: new Float32Array(0), v: new Float32Array(0), slots: 0, ring: 0, block };
      for (const slot of [0, 1, block - 1, block, block + 1, 3 * block + 5, 131071]) {
        for (const head of [0, numKvHeads - 1]) {
          assert.equal(binding instanceof Error ? NaN : binding.kvIndex(slot, head, numKvHeads, headDim, block),
            kvIndex(store, slot, head, numKvHeads, headDim), `block ${block} heads ${numKvHeads} headDim ${headDim} slot ${slot} head ${head}`);
        }
      }
    }
  }
});

test('fullAttention (every token sees every token, the SigLIP case) equals TypeScript', { skip }, () => {
  const rng = new Rng(5);
  for (const [T, heads, headDim] of [[37, 3, 20], [16, 2, 16], [5, 1, 72], [131, 3, 72]] as const) {
    const D = heads * headDim;
    const q = randn(rng, T * D);
    const k = randn(rng, T * D);
    const v = randn(rng, T * D);
    const spans = { spanStart: new Int32Array(T).fill(0), spanEnd: new Int32Array(T).fill(T - 1) };
    const shape = { numHeads: heads, numKvHeads: heads, headDim, scale: headDim ** -0.5, window: 0 };
    const empty = { k: new Float32Array(0), v: new Float32Array(0), slots: 0, ring: 0, block: 1 };
    const a = new Float32Array(T * D);
    const b = new Float32Array(T * D);
    js.attention(a, q, k, v, empty, 0, T, shape, spans);
    const c = new Float32Array(T * D);
    js.fullAttention(c, q, k, v, T, shape);
    assert.deepEqual(c, a, 'the TypeScript fullAttention is attention with every token in one span, bit for bit');
    native!.fullAttention(b, q, k, v, T, shape);
    const err = relErr(b, a);
    assert.ok(err < 1e-5, `T ${T} heads ${heads} headDim ${headDim}: relative error ${err}`);
  }
});

test('RMSNorm and RMSNorm-into-the-residual equal TypeScript, in place too', { skip }, () => {
  const rng = new Rng(22);
  for (const [rows, n] of [[1, 7], [3, 256], [40, 1000], [1, 2560]] as const) {
    const x = randn(rng, rows * n, 2);
    const scale = randn(rng, n);
    const a = new Float32Array(rows * n);
    const b = new Float32Array(rows * n);
    js.rmsNorm(a, x, scale, 1e-6, rows, n);
    native!.rmsNorm(b, x, scale, 1e-6, rows, n);
    assert.ok(relErr(b, a) < 1e-6, `rmsNorm ${rows}x${n}: relative error ${relErr(b, a)}`);
    const inPlace = x.slice();
    native!.rmsNorm(inPlace, inPlace, scale, 1e-6, rows, n);
    assert.deepEqual(inPlace, b);
    const residualA = randn(rng, rows * n);
    const residualB = residualA.slice();
    js.rmsNormAdd(residualA, x, scale, 1e-6, rows, n);
    native!.rmsNormAdd(residualB, x, scale, 1e-6, rows, n);
    assert.ok(relErr(residualB, residualA) < 1e-6, `rmsNormAdd ${rows}x${n}: relative error ${relErr(residualB, residualA)}`);
  }
});

test('the GeGLU activation equals TypeScript', { skip }, () => {
  const rng = new Rng(21);
  for (const n of [7, 5000, 40003]) {
    const gate = randn(rng, n, 3);
    const up = randn(rng, n);
    const a = gate.slice();
    geluTanhMul(a, up, n);
    const b = gate.slice();
    native!.geluTanhMul(b, up, n);
    assert.ok(relErr(b, a) < 1e-6, `n ${n}: relative error ${relErr(b, a)}`);
    const plainA = gate.slice();
    const plainB = gate.slice();
    js.geluTanh(plainA, n);
    native!.geluTanh(plainB, n);
    assert.ok(relErr(plainB, plainA) < 1e-6, `plain GELU n ${n}: relative error ${relErr(plainB, plainA)}`);
  }
});

test('the addon rejects sizes that do not match the arrays instead of reading out of bounds', { skip }, () => {
  const w = makeMatrix('f32', 4, 8, new Float32Array(32));
  assert.throws(() => native!.matMul(new Float32Array(4), w, new Float32Array(4), 1), /sizes/);
  assert.throws(() => native!.matMul(new Float32Array(2), w, new Float32Array(8), 1), /sizes/);
});

test('the addon reports the kernels it selected', { skip }, () => {
  const expected = process.env.GEMMA3_NATIVE_KERNELS;
  const { kernels, threads, kquantKernels } = native!.info;
  assert.ok(['avx512', 'avx2', 'avx2-vnni', 'avx2-packed', 'generic'].includes(kernels));
  if (expected) assert.equal(kernels, expected);
  assert.equal(kquantKernels, kernels === 'avx2-packed' ? 'avx2' : kernels, 'the K-quant kernels follow the same class (avx2-vnni: the K-quant x16 products with dpbusd)');
  assert.equal(threads, 2);
});

// More pool threads than free cores (a busy loop beside them): workers are descheduled in the
// middle of jobs, arrive after the caller has closed one (and skip it), or hold the caller up
// while they finish an item; every pooled op must still give exactly the one-thread results.
test('with a CPU-bound neighbour and more pool threads than cores, pooled ops equal the one-thread results', { skip, timeout: 120_000 }, async (t) => {
  const setThreads = (n: number) => (binding as { setThreads(n: number): void }).setThreads(n);
  const neighbour = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  try {
    const rng = new Rng(17);
    const cols = 1024, rows = 256;
    const q8 = makeMatrix('q8_0', rows, cols, randn(rng, rows * cols, 0.05));
    const bf16 = makeMatrix('bf16', rows, cols, randn(rng, rows * cols, 0.05));
    const batches = [1, 2, 9, 64];
    const xs = batches.map((b) => randn(rng, b * cols));
    const scale = randn(rng, cols);
    const run = () => {
      const outs: Float32Array[] = [];
      for (const [i, batch] of batches.entries()) {
        for (const w of [q8, bf16]) {
          const out = new Float32Array(batch * rows);
          native!.matMul(out, w, xs[i]!, batch);
          outs.push(out);
        }
        const normed = new Float32Array(batch * cols);
        native!.rmsNorm(normed, xs[i]!, scale, 1e-6, batch, cols);
        outs.push(normed);
      }
      const gate = xs[3]!.slice(), up = xs[3]!.slice().reverse();
      native!.geluTanhMul(gate, up, gate.length);
      outs.push(gate);
      return outs;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const timed = (repeats: number, check: (got: Float32Array[], r: number) => void) => {
      const times: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const started = performance.now();
        const got = run();
        times.push(performance.now() - started);
        check(got, r);
      }
      return median(times);
    };
    setThreads(1);
    const expected = run();
    const alone = timed(30, () => {});
    const threads = availableParallelism() + 1;
    setThreads(threads);
    const pooled = timed(150, (got, r) => {
      for (let i = 0; i < got.length; i++) assert.deepEqual(got[i], expected[i], `repeat ${r}, op ${i}`);
    });
    t.diagnostic(`median per round of ${expected.length} ops: ${alone.toFixed(2)} ms on 1 thread, ${pooled.toFixed(2)} ms on ${threads}`);
    // A pool that waited for descheduled workers took 20-100x longer here (spinning through their
    // time slices). On one core every thread takes turns with the neighbour: no bound there.
    if (availableParallelism() > 1) assert.ok(pooled < 8 * alone, `${threads} threads beside a busy neighbour: ${pooled.toFixed(2)} ms per round, 1 thread ${alone.toFixed(2)} ms`);
  } finally {
    neighbour.kill('SIGKILL');
    setThreads(2);
  }
});
