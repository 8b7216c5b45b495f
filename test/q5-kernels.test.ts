// Products with Q5_0 / Q5_1 / Q5_K weights as stored: the TypeScript twin (activations in Q8_0,
// Q8_1 and Q8_K, as llama.cpp's CPU backend) against a transcription of ggml's
// ggml_vec_dot_q5_0_q8_0 / _q5_1_q8_1 / _q5_K_q8_K in float64, and the native kernels
// (native/kernels-q5.c) against the twin bit for bit on odd sizes, row ranges and shared
// products. native-kernels-avx2 / -generic re-run this file with those kernels forced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { quantizeQ8, type Q8Rows } from '../src/backend/q8-activations.js';
import { quantizeQ8K, type Q8KRows } from '../src/backend/q8k-activations.js';
import { f16ToF32 } from '../src/formats/dtypes.js';
import { f32ToF16, quantizeRowQ5_K } from '../src/formats/quant.js';
import { Rng } from '../src/generate/rng.js';
import { extremeKquantInput, referenceInput } from './helpers.js';
import { binding, js, makeMatrix, native, randn, relErr, skip } from './native-test-kit.js';

const TYPES = ['q5_0', 'q5_1', 'q5_k'] as const;
type Q5 = (typeof TYPES)[number];
const half = (w: Uint8Array, o: number): number => f16ToF32(w[o]! | (w[o + 1]! << 8));

/** ggml_vec_dot_q5_0_q8_0 / _q5_1_q8_1 (generic) for one row, float64 instead of float. */
function ggmlDot32(type: 'q5_0' | 'q5_1', w: Uint8Array, rowOffset: number, x: Q8Rows, xRow: number, cols: number): number {
  const nb = cols / 32;
  const bytes = type === 'q5_0' ? 22 : 24;
  let sumf = 0;
  for (let ib = 0; ib < nb; ib++) {
    const o = rowOffset + ib * bytes;
    const qhAt = type === 'q5_0' ? o + 2 : o + 4;
    const qh = new DataView(w.buffer, w.byteOffset + qhAt, 4).getUint32(0, true);
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const xh0 = ((qh & (1 << j)) >>> j) << 4;
      const xh1 = (qh & (1 << (j + 16))) >>> (j + 12);
      const x0 = ((w[qhAt + 4 + j]! & 0x0f) | xh0) - (type === 'q5_0' ? 16 : 0);
      const x1 = ((w[qhAt + 4 + j]! >> 4) | xh1) - (type === 'q5_0' ? 16 : 0);
      sumi += x0 * x.qs[xRow * cols + ib * 32 + j]! + x1 * x.qs[xRow * cols + ib * 32 + j + 16]!;
    }
    sumf += half(w, o) * x.d[xRow * nb + ib]! * sumi + (type === 'q5_1' ? half(w, o + 2) * x.s[xRow * nb + ib]! : 0);
  }
  return sumf;
}

/** ggml_vec_dot_q5_K_q8_K (generic) for one row, float64. */
function ggmlDotQ5K(w: Uint8Array, rowOffset: number, x: Q8KRows, xRow: number, cols: number): number {
  const nb = cols / 256;
  let sumf = 0;
  for (let i = 0; i < nb; i++) {
    const o = rowOffset + i * 176;
    const a: number[] = [];
    for (let j = 0, m = 1; j < 4; j++, m <<= 2) {
      for (let l = 0; l < 32; l++) a.push((w[o + 48 + 32 * j + l]! & 0xf) + (w[o + 16 + l]! & m ? 16 : 0));
      for (let l = 0; l < 32; l++) a.push((w[o + 48 + 32 * j + l]! >> 4) + (w[o + 16 + l]! & (m << 1) ? 16 : 0));
    }
    const s = o + 4;
    const scales: number[] = [], mins: number[] = [];
    for (let j = 0; j < 8; j++) {
      scales.push(j < 4 ? w[s + j]! & 63 : (w[s + j + 4]! & 0xf) | ((w[s + j - 4]! >> 6) << 4));
      mins.push(j < 4 ? w[s + j + 4]! & 63 : (w[s + j + 4]! >> 4) | ((w[s + j]! >> 6) << 4));
    }
    const xb = xRow * nb + i;
    let sumi = 0;
    for (let j = 0; j < 16; j++) sumi += x.bsums[xb * 16 + j]! * mins[j >> 1]!;
    let dot = 0;
    for (let j = 0; j < 256; j++) dot += scales[j >> 5]! * a[j]! * x.qs[xb * 256 + j]!;
    sumf += half(w, o) * x.d[xb]! * dot - half(w, o + 2) * x.d[xb]! * sumi;
  }
  return sumf;
}

test('TypeScript matMul on Q5_0 / Q5_1 / Q5_K as stored equals ggml\'s dot products (activations in Q8_0 / Q8_1 / Q8_K)', () => {
  const rng = new Rng(21);
  for (const type of TYPES) {
    const rows = 7, cols = 768, batch = 3;
    const w = makeMatrix(type, rows, cols, randn(rng, rows * cols, 0.2));
    const x = randn(rng, batch * cols);
    const got = new Float32Array(batch * rows);
    js.matMul(got, w, x, batch);
    const want = new Float32Array(batch * rows);
    const rowBytes = w.data.length / rows;
    for (let n = 0; n < batch; n++) {
      for (let r = 0; r < rows; r++) {
        want[n * rows + r] = type === 'q5_k'
          ? ggmlDotQ5K(w.data, r * rowBytes, quantizeQ8K(x, batch, cols), n, cols)
          : ggmlDot32(type, w.data, r * rowBytes, quantizeQ8(x, batch, cols), n, cols);
      }
    }
    assert.ok(relErr(got, want) < 1e-5, `${type}: relative error ${relErr(got, want)}`);
    assert.ok(want.some((v) => Math.abs(v) > 1), `${type}: products of real size`);
  }
});

test('Q8_1 activations (d, s = f16(Σqs · d) with d before its rounding, qs) are quantize_row_q8_1_ref\'s blocks', () => {
  // ggml-quants.c's quantize_row_q8_1_ref output (block_q8_1: f16 d, f16 s, int8 qs[32]) on these inputs.
  const digests = ['c15356a33bef529d71ae7c7969f60846c25d326cf65deeeb802b4b897133ed01', '5721211c95a17cda362ef2acb14241f0759dd36d3ff75ee2ce996f4533e2dd50'];
  [referenceInput(65536), extremeKquantInput()].forEach((x, i) => {
    const q = quantizeQ8(x, 1, x.length);
    const blocks = new Uint8Array((x.length / 32) * 36);
    for (let b = 0; b < x.length / 32; b++) {
      const d = f32ToF16(q.d[b]!), s = f32ToF16(q.s[b]!);
      blocks.set([d & 0xff, d >> 8, s & 0xff, s >> 8], b * 36);
      blocks.set(new Uint8Array(q.qs.buffer, b * 32, 32), b * 36 + 4);
    }
    assert.equal(createHash('sha256').update(blocks).digest('hex'), digests[i]);
  });
});

// Rows that fill no tile, 1 to 10 (super-)blocks of 256, a block of 32 on its own for Q5_0 / Q5_1.
const SHAPES: Record<Q5, [number, number, number][]> = {
  q5_0: [[1, 13, 32], [2, 8, 96], [5, 7, 768], [3, 17, 2560 + 32], [9, 1, 64], [1, 35, 1152]],
  q5_1: [[1, 13, 32], [2, 8, 96], [5, 7, 768], [3, 17, 2560 + 32], [9, 1, 64], [1, 35, 1152]],
  q5_k: [[1, 13, 256], [2, 8, 512], [5, 7, 768], [3, 17, 2560], [9, 1, 256], [1, 35, 2560]],
};

for (const type of TYPES) {
  test(`matMul ${type}: native equals TypeScript on odd sizes and row ranges (bit for bit)`, { skip }, () => {
    const rng = new Rng({ q5_0: 50, q5_1: 51, q5_k: 55 }[type]);
    for (const [batch, rows, cols] of SHAPES[type]) {
      const w = makeMatrix(type, rows, cols, randn(rng, rows * cols, 0.1));
      const x = randn(rng, batch * cols);
      if (batch === 5) x.fill(0, 0, 256); // all-zero activation blocks: d = 0
      if (batch === 9) w.data.fill(0, 0, w.data.length / 2); // zero scales in the weights
      const a = new Float32Array(batch * rows);
      const b = new Float32Array(batch * rows);
      js.matMul(a, w, x, batch);
      native!.matMul(b, w, x, batch);
      assert.deepEqual(b, a, `${type} batch ${batch} rows ${rows} cols ${cols}: not bit for bit (relative error ${relErr(b, a)})`);
      const c = new Float32Array(batch * rows).fill(7);
      const range = { rowStart: Math.floor(rows / 3), rowEnd: rows - (rows > 2 ? 1 : 0), outStride: rows };
      native!.matMul(c, w, x, batch, range);
      for (let n = 0; n < batch; n++) {
        for (let r = range.rowStart; r < range.rowEnd; r++) assert.equal(c[n * rows + r - range.rowStart], a[n * rows + r]);
      }
    }
  });
}

test('matMul on the extreme input (magnitudes from 1e-40 to 1e14) quantized to each Q5 type: native equals TypeScript', { skip }, () => {
  const v = extremeKquantInput(); // 48 super-blocks
  const rng = new Rng(4);
  for (const type of TYPES) {
    const w = makeMatrix(type, 12, 1024, v);
    const x = randn(rng, 2 * 1024);
    const a = new Float32Array(24);
    const b = new Float32Array(24);
    js.matMul(a, w, x, 2);
    native!.matMul(b, w, x, 2);
    assert.deepEqual(b, a, type);
  }
});

test('shared products with Q5 mixes (q5_0 + q8_0 + q4_0, q5_k + q6_k + q4_k, q5_1 + q5_1) equal separate TypeScript products bit for bit', { skip }, () => {
  const rng = new Rng(32);
  for (const dtypes of [['q5_0', 'q8_0', 'q4_0'], ['q5_k', 'q6_k', 'q4_k'], ['q5_1', 'q5_1'], ['q5_1', 'q5_0'], ['q5_k', 'f32']] as const) {
    const cols = 512;
    for (const batch of [1, 4]) {
      const ws = dtypes.map((d, i) => makeMatrix(d, 8 * (i + 1) + 3, cols, randn(rng, (8 * (i + 1) + 3) * cols, 0.1)));
      const x = randn(rng, batch * cols);
      const want = ws.map((w) => new Float32Array(batch * w.rows));
      ws.forEach((w, i) => js.matMul(want[i]!, w, x, batch));
      const got = ws.map((w) => new Float32Array(batch * w.rows));
      native!.matMulShared(got, ws.map((w) => native!.prepareMatrix(w)), x, batch);
      ws.forEach((w, i) => {
        // The Q5 kernels are the twin's bit for bit; the others are held to their own tests' bound (the x16 kernels round differently).
        if (w.dtype.startsWith('q5')) assert.deepEqual(got[i], want[i], `${dtypes.join('+')} batch ${batch} matrix ${i}`);
        else assert.ok(relErr(got[i]!, want[i]!) < 1e-5, `${dtypes.join('+')} batch ${batch} matrix ${i}: ${relErr(got[i]!, want[i]!)}`);
      });
    }
  }
});

test('the addon\'s Q5_K quantizer writes the bytes of quantize_row_q5_K_ref (TypeScript, pinned to ggml)', { skip }, () => {
  const addon = binding as Exclude<typeof binding, Error>;
  for (const x of [extremeKquantInput(), referenceInput(16384)]) assert.deepEqual(addon.quantizeKQuant(x, 11), quantizeRowQ5_K(x));
  assert.throws(() => addon.quantizeKQuant(new Float32Array(100), 11), RangeError);
});

test('the addon rejects Q5 sizes that are not whole blocks instead of reading out of bounds', { skip }, () => {
  const addon = binding as Exclude<typeof binding, Error>;
  const out = new Float32Array(4);
  assert.throws(() => addon.matMul(out, new Uint8Array(22 * 4), 9, 4, 48, new Float32Array(48), 1, 0, 4, 4), /sizes/);
  assert.throws(() => addon.matMul(out, new Uint8Array(176 * 4), 11, 4, 384, new Float32Array(384), 1, 0, 4, 4), /sizes/);
  assert.throws(() => addon.matMul(out, new Uint8Array(24 * 3), 10, 4, 32, new Float32Array(32), 1, 0, 4, 4), /sizes/);
});
