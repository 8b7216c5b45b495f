// The K-quant x16 layout (native/repack.c) of Q4_K / Q6_K matrices and its kernels (AVX-512 VNNI:
// native/kernels-kquant-x16.c; AVX2: native/kernels-kquant-x16-avx2.c) against the TypeScript
// twins on the row layout, bit for bit: odd batches, row ranges inside a group, shared products.
// (AVX-VNNI: native/kernels-kquant-x16-vnni256.c, run by test/native-kernels-avx2-vnni.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WeightMatrix } from '../src/backend/backend.js';
import { Rng } from '../src/generate/rng.js';
import { f32ToF16 } from '../src/formats/quant.js';
import { assertRowsDecodeAlike, js, makeMatrix, native, productsWithAvx2, randn, skip, type ProductCase } from './native-test-kit.js';

/**
 * Why the x16 K-quant kernels cannot run here, or false: they need AVX-512 VNNI or AVX2 and are
 * not chosen under GEMMA3_NATIVE_KERNELS=generic / norepack. The tests then skip with this
 * reason, visibly, instead of passing for the row kernels under their names.
 */
const kx16Skip = skip || (native!.info.kquantX16 ? false
  : `the x16 K-quant kernels did not run: the addon chose '${native!.info.kquantKernels}' K-quant kernels without the x16 layout ` +
    `(${process.env.GEMMA3_NATIVE_KERNELS ? `GEMMA3_NATIVE_KERNELS=${process.env.GEMMA3_NATIVE_KERNELS}` : 'no x16 K-quant kernel for this CPU'})`);
if (kx16Skip && !skip) console.warn(`SKIPPED: ${kx16Skip}`);

function q6kTriples(): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let h = 0; h < 2; h++) for (let c = 0; c < 8; c++) out.push([64 * h + 4 * c, 4, 4], [64 * h + 32 + 4 * c, 4, 4], [128 + 32 * h + 4 * c, 4, 4]);
  return out;
}

/** The stored super-block's fields in the layout's order: [offset, bytes, bytes per lane]. */
const FIELDS = {
  q4_k: { block: 144, fields: [[0, 2, 2], [2, 2, 2], [4, 12, 4], [16, 128, 4]] },
  q5_k: { block: 176, fields: [[0, 2, 2], [2, 2, 2], [4, 12, 4], [16, 32, 4], [48, 128, 4]] },
  // d, scales, then per value half h and c < 8 three 4-byte spans: ql 64h + 4c, ql 64h + 32 + 4c, qh 128 + 32h + 4c.
  q6_k: { block: 210, fields: [[208, 2, 2], [192, 16, 4], ...q6kTriples()] },
} as const;

/** The K-quant x16 layout written independently in TypeScript: per group of sixteen rows and super-block, each field as chunks of sixteen lanes. */
function repackKquantX16(w: WeightMatrix): WeightMatrix {
  const { block, fields } = FIELDS[w.dtype as 'q4_k' | 'q5_k' | 'q6_k'];
  const nb = w.cols / 256;
  const out = new Uint8Array(w.data.length);
  for (let g = 0; g < w.rows / 16; g++) {
    for (let b = 0; b < nb; b++) {
      let o = (g * nb + b) * 16 * block;
      for (const [offset, bytes, lane] of fields) {
        for (let i = 0; i < 16; i++) {
          const src = ((g * 16 + i) * nb + b) * block + offset;
          for (let c = 0; c < bytes / lane; c++) out.set(w.data.subarray(src + c * lane, src + (c + 1) * lane), o + c * 16 * lane + i * lane);
        }
        o += 16 * bytes;
      }
    }
  }
  return { dtype: w.dtype, rows: w.rows, cols: w.cols, data: out, layout: 'x16' };
}

test('the K-quant x16 layout\'s TypeScript twin runs on every CPU: every row decodes back as stored; the addon\'s repack writes the same bytes where it has the kernels', () => {
  const rng = new Rng(91);
  for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) {
    for (const [rows, cols] of [[16, 256], [48, 768], [32, 2560]] as const) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      const packed = repackKquantX16(w);
      assertRowsDecodeAlike(w, packed, `${dtype} ${rows}x${cols}`);
      if (native?.info.kquantX16) {
        assert.deepEqual(native.prepareMatrix(w).data, packed.data, `${dtype} ${rows}x${cols}: addon repack`);
        assert.deepEqual(native.prepareMatrix({ ...w, data: w.data.slice() }, true).data, packed.data, `${dtype} ${rows}x${cols}: in place`);
      }
    }
  }
});

test('Q4_K / Q6_K matrices whose rows are not a multiple of 16 stay in the row layout; on a CPU without the kernels an x16 matrix is refused', { skip }, () => {
  const rng = new Rng(92);
  const odd = makeMatrix('q4_k', 17, 256, randn(rng, 17 * 256, 0.1));
  assert.equal(native!.prepareMatrix(odd).layout ?? 'rows', 'rows');
  const w = makeMatrix('q6_k', 16, 256, randn(rng, 16 * 256, 0.1));
  assert.equal(native!.prepareMatrix(w).layout ?? 'rows', native!.info.kquantX16 ? 'x16' : 'rows');
  assert.equal(native!.repacksKQuants, native!.info.kquantX16);
  if (!native!.info.kquantX16) {
    assert.throws(() => native!.matMul(new Float32Array(16), repackKquantX16(w), new Float32Array(256), 1), /x16 layouts need/);
  }
});

// Batches 1-5 and 9 cover every tile width (four activation rows) and remainders; 70 crosses the
// 64-row activation chunk; 97 super-blocks (24832 columns) a long row.
const SHAPES: [number, number, number][] = [
  [1, 16, 256], [1, 48, 2560], [2, 32, 512], [3, 32, 768], [4, 16, 1280], [5, 16, 512], [9, 64, 2560], [70, 16, 512], [1, 16, 10240], [2, 16, 24832],
];

for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) {
  test(`matMul ${dtype} in the K-quant x16 layout equals the TypeScript twin on the row layout, bit for bit (batches, row ranges)`, { skip: kx16Skip }, () => {
    const rng = new Rng(dtype === 'q4_k' ? 93 : dtype === 'q5_k' ? 97 : 94);
    for (const [batch, rows, cols] of SHAPES) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      const packed = native!.prepareMatrix(w);
      assert.equal(packed.layout, 'x16');
      const x = randn(rng, batch * cols);
      if (batch === 5) x.fill(0, 256, 512); // an all-zero activation super-block: d = 0
      const a = new Float32Array(batch * rows);
      const b = new Float32Array(batch * rows);
      js.matMul(a, w, x, batch);
      native!.matMul(b, packed, x, batch);
      assert.deepEqual(b, a, `${dtype} batch ${batch} ${rows}x${cols}`);
      // A row range that starts and ends inside a group of sixteen, at a wider stride: the rows
      // outside it stay untouched.
      const range = { rowStart: 5, rowEnd: rows - 3, outStride: rows + 2 };
      const c = new Float32Array(batch * range.outStride).fill(7);
      native!.matMul(c, packed, x, batch, range);
      for (let n = 0; n < batch; n++) {
        for (let j = 0; j < range.outStride; j++) {
          const r = range.rowStart + j;
          const want = j < range.rowEnd - range.rowStart ? a[n * rows + r]! : 7;
          assert.equal(c[n * range.outStride + j], want, `${dtype} batch ${batch} ${rows}x${cols}: range row ${r}`);
        }
      }
    }
  });
}

test('products sharing their activations mix x16 K-quants with the row layout and other types, each equal to its TypeScript product', { skip: kx16Skip }, () => {
  const rng = new Rng(95);
  const cols = 512;
  for (const mix of [['q4_k', 'q6_k', 'q4_k'], ['q6_k', 'q4_k'], ['q5_k', 'q6_k', 'q5_k']] as const) {
    for (const batch of [1, 6]) {
      const ws = mix.map((dtype, i) => makeMatrix(dtype, i === 2 ? 17 : 32, cols, randn(rng, (i === 2 ? 17 : 32) * cols, 0.1)));
      const prepared = ws.map((w) => native!.prepareMatrix(w));
      assert.deepEqual(prepared.map((w) => w.layout ?? 'rows'), ws.map((w) => (w.rows % 16 === 0 ? 'x16' : 'rows')));
      const x = randn(rng, batch * cols);
      const outs = ws.map((w) => new Float32Array(batch * w.rows));
      native!.matMulShared(outs, prepared, x, batch);
      ws.forEach((w, i) => {
        const want = new Float32Array(batch * w.rows);
        js.matMul(want, w, x, batch);
        assert.deepEqual(outs[i], want, `${mix.join('+')} batch ${batch}: part ${i}`);
      });
    }
  }
});

/**
 * Stored super-blocks whose quants reach the int16 bounds the AVX2 kernel's proof rests on: random
 * quant and scale bytes (Q6_K scales down to −128) with every fourth row's quants all at their
 * maximum (15 / 31 / 63), and finite f16 scales.
 */
function saturatingMatrix(rng: Rng, dtype: 'q4_k' | 'q5_k' | 'q6_k', rows: number, cols: number): WeightMatrix {
  const block = FIELDS[dtype].block;
  const nb = cols / 256;
  const data = new Uint8Array(rows * nb * block);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng.nextFloat() * 256);
  const f16 = (v: number): [number, number] => {
    const h = f32ToF16(v);
    return [h & 0xff, h >> 8];
  };
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const o = (r * nb + b) * block;
      if (dtype === 'q4_k' || dtype === 'q5_k') {
        data.set([...f16((rng.nextFloat() - 0.5) * 0.02), ...f16(rng.nextFloat() * 0.01)], o);
        if (r % 4 === 0) data.fill(0xff, o + 16, o + block);
      } else {
        data.set(f16((rng.nextFloat() - 0.5) * 0.02), o + 208);
        if (r % 4 === 0) data.fill(0xff, o, o + 192);
      }
    }
  }
  return { dtype, rows, cols, data };
}

test('the AVX2 and 256-bit VNNI x16 K-quant kernels give the AVX-512 VNNI ones\' results bit for bit (child processes with each forced; odd batches, saturating quants)', {
  skip: skip || (native!.info.kquantX16 && native!.info.kquantKernels === 'avx512' ? false
    : `the AVX-512 VNNI x16 K-quant kernels do not run here ('${native!.info.kquantKernels}' K-quant kernels, ` +
      `${process.env.GEMMA3_NATIVE_KERNELS ? `GEMMA3_NATIVE_KERNELS=${process.env.GEMMA3_NATIVE_KERNELS}` : 'this CPU lacks AVX-512 VNNI'}): nothing to compare the AVX2 ones with`),
  timeout: 60_000,
}, async () => {
  const rng = new Rng(96);
  const cases: ProductCase[] = [];
  for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) {
    for (const [batch, rows, cols] of [[1, 48, 2560], [2, 16, 512], [3, 32, 768], [4, 16, 256], [9, 16, 1280], [70, 32, 512], [1, 16, 24832]] as const) {
      for (const saturating of [false, true]) {
        const w = saturating ? saturatingMatrix(rng, dtype, rows, cols) : makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
        const x = randn(rng, batch * cols);
        // The first activation super-block quantizes to all −127 (a constant block), the last to
        // +127 after its first value (−0.5001, the largest magnitude, sets the scale): with the
        // all-maximum rows, the largest int16 sums the bounds allow, of either sign.
        if (saturating) {
          x.fill(0.5, 0, 256).fill(0.5, batch * cols - 256);
          x[batch * cols - 256] = -0.5001;
        }
        cases.push({ dtype, rows, cols, batch, w: w.data, x });
      }
    }
  }
  const outs = await productsWithAvx2(cases, 'kquant-x16');
  // The 256-bit dpbusd kernels (kernels-kquant-x16-vnni256.c): on this AVX-512 CPU their EVEX twin.
  const vnniOuts = await productsWithAvx2(cases, 'kquant-x16', 'avx2-vnni');
  for (const [i, c] of cases.entries()) {
    const w: WeightMatrix = { dtype: c.dtype, rows: c.rows, cols: c.cols, data: c.w };
    const packed = native!.prepareMatrix(w);
    assert.equal(packed.layout, 'x16');
    const out = new Float32Array(c.batch * c.rows);
    native!.matMul(out, packed, c.x, c.batch);
    const label = `${c.dtype} batch ${c.batch} ${c.rows}x${c.cols} (case ${i})`;
    assert.deepEqual(outs[i], out, `${label}: AVX2 x16 vs AVX-512 x16`);
    assert.deepEqual(vnniOuts[i], out, `${label}: 256-bit VNNI x16 vs AVX-512 x16`);
    const twin = new Float32Array(c.batch * c.rows);
    js.matMul(twin, w, c.x, c.batch);
    assert.deepEqual(out, twin, `${label}: AVX-512 x16 vs the TypeScript twin`);
  }
});
