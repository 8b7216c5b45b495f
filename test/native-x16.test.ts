// The interleaved x16 Q4_0 / Q8_0 layouts and their kernels (AVX-512 VNNI: native/kernels-x16.c,
// AVX2: native/kernels-x16-avx2.c) against the TypeScript twins, the dispatch each CPU gets, and
// the two widths' results compared bit for bit.
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import type { WeightMatrix } from '../src/backend/backend.js';
import { decodeRow } from '../src/backend/rows.js';
import { Rng } from '../src/generate/rng.js';
import { SHAPES, assertRowsDecodeAlike, js, makeMatrix, native, productsWithAvx2, randn, relErr, skip } from './native-test-kit.js';

/**
 * Why the x16 kernels cannot run here, or false. They need AVX-512 VNNI (native/kernels-x16.c)
 * or AVX2 (native/kernels-x16-avx2.c) and are not chosen under GEMMA3_NATIVE_KERNELS=generic /
 * norepack: their tests then skip with this reason, visibly, instead of passing under their
 * names on other kernels.
 */
const x16Skip = skip || (native!.info.x16 ? false
  : `the x16 kernels did not run: the addon chose '${native!.info.kernels}' kernels without x16 ` +
    `(${process.env.GEMMA3_NATIVE_KERNELS ? `GEMMA3_NATIVE_KERNELS=${process.env.GEMMA3_NATIVE_KERNELS}` : 'this CPU lacks AVX2'})`);
if (!skip && native!.info.x16 && !native!.info.x16Views) {
  console.warn(`SKIPPED: x16 kernels over the row layout (file-mapping views) need AVX-512 VNNI; the '${native!.info.kernels}' kernels repack instead`);
}
if (x16Skip && !skip) console.warn(`SKIPPED: ${x16Skip}`);

/** The x16 layout of native/repack.c written in TypeScript: group g, block b: f16 d[16], then 4-byte lanes of quants. */
function repackX16(w: WeightMatrix): WeightMatrix {
  const nb = w.cols / 32;
  const qbytes = w.dtype === 'q4_0' ? 16 : 32;
  const block = qbytes + 2;
  const groupBlock = 32 + 16 * qbytes;
  const out = new Uint8Array(w.data.length);
  for (let g = 0; g < w.rows / 16; g++) {
    for (let b = 0; b < nb; b++) {
      const d = (g * nb + b) * groupBlock;
      for (let i = 0; i < 16; i++) {
        const src = ((g * 16 + i) * nb + b) * block;
        out[d + 2 * i] = w.data[src]!;
        out[d + 2 * i + 1] = w.data[src + 1]!;
        for (let c = 0; c < qbytes / 4; c++) out.set(w.data.subarray(src + 2 + 4 * c, src + 6 + 4 * c), d + 32 + 64 * c + 4 * i);
      }
    }
  }
  return { dtype: w.dtype, rows: w.rows, cols: w.cols, data: out, layout: 'x16' };
}

test('the x16 layout\'s TypeScript twins run on every CPU: repacked in TypeScript, every row decodes back; the addon\'s repack gives the same bytes where it has x16', () => {
  const rng = new Rng(31);
  for (const dtype of ['q8_0', 'q4_0'] as const) {
    for (const [rows, cols] of [[16, 32], [48, 160], [32, 2592]] as const) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      const packed = repackX16(w);
      assertRowsDecodeAlike(w, packed, `${dtype} ${rows}x${cols}`);
      if (native?.info.x16) assert.deepEqual(native.prepareMatrix(w).data, packed.data, `${dtype} ${rows}x${cols}: addon repack`);
    }
  }
});

test('the kernel dispatch the addon chose is the one this CPU and GEMMA3_NATIVE_KERNELS call for (x16 and K-quant x16 layouts on AVX-512 VNNI and AVX2), and an x16 matrix never reaches a CPU without x16', { skip }, () => {
  const forced = process.env.GEMMA3_NATIVE_KERNELS;
  const flags = (() => {
    try {
      return new Set(/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? []);
    } catch {
      return undefined;
    }
  })();
  const { kernels, x16, kquantX16, kquantKernels } = native!.info;
  if (forced === 'generic') assert.equal(kernels, 'generic');
  if (forced === 'avx2') assert.ok(kernels === 'avx2' || kernels === 'generic', kernels);
  if (forced === 'avx2-vnni' && flags && flags.size > 0 && process.arch === 'x64') {
    // The 256-bit dpbusd x16 kernel: AVX-VNNI's encoding, or on an AVX-512 VNNI CPU its EVEX twin.
    const vnni256 = flags.has('avx_vnni') || ['avx512vl', 'avx512_vnni'].every((f) => flags.has(f));
    assert.equal(kernels, vnni256 ? 'avx2-vnni' : 'avx2', 'forced avx2-vnni');
    assert.equal(kquantKernels, vnni256 ? 'avx2-vnni' : 'avx2', 'forced avx2-vnni: the K-quant x16 products too');
  }
  if (forced === 'generic' || forced === 'norepack') {
    assert.equal(x16, false, `forced ${forced}`);
    assert.equal(kquantX16, false, `forced ${forced}: no K-quant x16 layout`);
  }
  if (forced === 'avx2') {
    assert.equal(x16, kernels === 'avx2', 'AVX2 has its own x16 kernels');
    assert.equal(kquantX16, kernels === 'avx2', 'AVX2 has its own K-quant x16 kernels');
  }
  if (forced !== undefined) assert.equal(native!.info.x16Views, false, `forced ${forced}: views need AVX-512 VNNI`);
  if (flags && flags.size > 0 && process.arch === 'x64' && forced === undefined) {
    const avx512 = ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni', 'avx2', 'fma', 'f16c'].every((f) => flags.has(f));
    const avx2 = ['avx2', 'fma', 'f16c'].every((f) => flags.has(f));
    const avxVnni = avx2 && flags.has('avx_vnni');
    assert.equal(kernels, avx512 ? 'avx512' : avxVnni ? 'avx2-vnni' : avx2 ? 'avx2' : 'generic', 'the best kernels this CPU supports');
    assert.equal(kquantKernels, kernels, 'the K-quant kernels follow the same class');
    assert.equal(x16, avx2, 'x16 layouts on AVX-512 VNNI and on AVX2');
    assert.equal(kquantX16, avx2, 'the K-quant x16 layout on AVX-512 VNNI and on AVX2');
    assert.equal(native!.info.x16Views, avx512, 'views in the row layout through the x16 kernel: AVX-512 VNNI only');
  }
  assert.equal(native!.servesQuantizedViews, native!.info.x16Views);
  const rng = new Rng(32);
  const w = makeMatrix('q8_0', 32, 64, randn(rng, 32 * 64, 0.1));
  assert.equal(native!.prepareMatrix(w).layout ?? 'rows', x16 ? 'x16' : 'rows');
  if (!x16) {
    // A matrix in the x16 layout (made elsewhere) is refused, never multiplied as something else.
    assert.throws(() => native!.matMul(new Float32Array(32), repackX16(w), new Float32Array(64), 1), /x16 layouts need AVX-512 VNNI/);
  }
});

for (const dtype of ['q8_0', 'q4_0'] as const) {
  test(`matMul ${dtype} in the interleaved x16 layout equals TypeScript on the row layout`, { skip: x16Skip }, () => {
    const rng = new Rng(11);
    // Batches 1..9 cover every tile width and a remainder; 70 crosses the 64-row activation chunk.
    const x16Shapes: [number, number, number][] = [...SHAPES, [1, 16, 32], [3, 32, 96], [8, 48, 160], [9, 16, 64], [70, 32, 64], [5, 16, 2592]];
    for (const [batch, rows, cols] of x16Shapes) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      const packed = native!.prepareMatrix(w);
      const inPlace = native!.prepareMatrix({ ...w, data: w.data.slice() }, true);
      if (packed.layout === 'x16') assert.deepEqual(inPlace.data, packed.data.subarray(0, inPlace.data.length));
      assert.equal(packed.layout ?? 'rows', rows % 16 === 0 ? 'x16' : 'rows');
      const x = randn(rng, batch * cols);
      const a = new Float32Array(batch * rows);
      const b = new Float32Array(batch * rows);
      js.matMul(a, w, x, batch);
      native!.matMul(b, packed, x, batch);
      const err = relErr(b, a);
      assert.ok(err < 1e-5, `${dtype} x16 batch ${batch} rows ${rows} cols ${cols}: relative error ${err}`);
      // The row layout (a matrix served from a file mapping) runs the same kernel, a group
      // rearranged at a time: every bit equal.
      const c = new Float32Array(batch * rows);
      native!.matMul(c, w, x, batch);
      if (packed.layout === 'x16' && native!.info.x16Views) assert.deepEqual(c, b, `${dtype} batch ${batch} rows ${rows}: row layout vs x16`);
      // Embedding lookups read single rows of the packed matrix.
      const r = rows - 1;
      const ref = new Float32Array(cols);
      const got = new Float32Array(cols);
      decodeRow(w, r, ref);
      decodeRow(packed, r, got);
      assert.deepEqual(got, ref);
    }
    // Row ranges that start and end inside a group of sixteen: other outputs stay untouched.
    for (const rows of [13, 48]) {
      const range = { rowStart: 3, rowEnd: rows - 2, outStride: rows };
      const w = makeMatrix(dtype, rows, 64, randn(rng, rows * 64, 0.1));
      const x = randn(rng, 2 * 64);
      const a = new Float32Array(2 * rows).fill(7);
      const b = new Float32Array(2 * rows).fill(7);
      js.matMul(a, w, x, 2, range);
      native!.matMul(b, native!.prepareMatrix(w), x, 2, range);
      assert.ok(relErr(b, a) < 1e-5, `rows ${rows}: relative error ${relErr(b, a)}`);
      const c = new Float32Array(2 * rows).fill(7);
      native!.matMul(c, w, x, 2, range);
      if (rows % 16 === 0 && native!.info.x16Views) assert.deepEqual(c, b);
    }
  });
}

// AVX-VNNI CPUs (Intel since Alder Lake, without AVX-512) run the x16 products with 256-bit
// dpbusd. This machine may lack AVX-VNNI: GEMMA3_NATIVE_KERNELS=avx2-vnni runs the same kernel
// body in its EVEX encoding (AVX-512 VNNI + VL), the same instruction's semantics.
const vnni256Skip = skip || (native!.info.kernels === 'avx512' && native!.info.x16 ? false
  : `the AVX-512 VNNI x16 kernels are not chosen here ('${native!.info.kernels}' kernels): nothing to compare the 256-bit VNNI ones with, and no EVEX twin to run`);
test('the 256-bit VNNI x16 kernels (AVX-VNNI\'s body, here in its EVEX encoding) give the AVX-512 VNNI x16 kernels\' results bit for bit', { skip: vnni256Skip, timeout: 60_000 }, async () => {
  const rng = new Rng(78);
  const cases: { dtype: 'q4_0' | 'q8_0'; rows: number; cols: number; batch: number; w: Uint8Array; x: Float32Array }[] = [];
  for (const dtype of ['q4_0', 'q8_0'] as const) {
    for (const [batch, rows, cols] of [[1, 48, 2592], [2, 16, 64], [3, 32, 160], [70, 32, 96], [5, 64, 1024]] as const) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      // Extreme quants: Q8_0 bytes of -128 and 127, Q4_0 nibbles of 0 and 15, in the first block.
      if (dtype === 'q8_0') for (let i = 0; i < 32; i++) w.data[2 + i] = i % 2 ? 0x80 : 0x7f;
      else for (let i = 0; i < 16; i++) w.data[2 + i] = i % 2 ? 0xf0 : 0x0f;
      cases.push({ dtype, rows, cols, batch, w: w.data, x: randn(rng, batch * cols) });
    }
  }
  const outs = await productsWithAvx2(cases, 'x16', 'avx2-vnni');
  for (const [i, c] of cases.entries()) {
    const out = new Float32Array(c.batch * c.rows);
    native!.matMul(out, native!.prepareMatrix({ dtype: c.dtype, rows: c.rows, cols: c.cols, data: c.w.slice() }), c.x, c.batch);
    assert.deepEqual(outs[i], out, `${c.dtype} batch ${c.batch} ${c.rows}x${c.cols}`);
  }
});

// One layout, two instruction sets: a model repacked on an AVX2 machine computes what it computes
// on an AVX-512 one. A child process with the AVX2 kernels forced multiplies the same matrices.
const crossIsaSkip = skip || (native!.info.kernels === 'avx512' && native!.info.x16 ? false
  : `the AVX-512 VNNI x16 kernels are not chosen here ('${native!.info.kernels}' kernels${native!.info.x16 ? '' : ', no x16'}): nothing to compare the AVX2 ones with`);
test('the AVX2 x16 kernels give the AVX-512 VNNI x16 kernels\' results bit for bit', { skip: crossIsaSkip, timeout: 60_000 }, async () => {
  const rng = new Rng(77);
  const cases: { dtype: 'q4_0' | 'q8_0'; rows: number; cols: number; batch: number; w: Uint8Array; x: Float32Array }[] = [];
  for (const dtype of ['q4_0', 'q8_0'] as const) {
    for (const [batch, rows, cols] of [[1, 48, 2592], [3, 32, 160], [8, 16, 64], [70, 32, 96], [5, 64, 1024]] as const) {
      const w = makeMatrix(dtype, rows, cols, randn(rng, rows * cols, 0.1));
      cases.push({ dtype, rows, cols, batch, w: w.data, x: randn(rng, batch * cols) });
    }
  }
  const outs = await productsWithAvx2(cases, 'x16');
  for (const [i, c] of cases.entries()) {
    const out = new Float32Array(c.batch * c.rows);
    native!.matMul(out, native!.prepareMatrix({ dtype: c.dtype, rows: c.rows, cols: c.cols, data: c.w.slice() }), c.x, c.batch);
    assert.deepEqual(outs[i], out, `${c.dtype} batch ${c.batch} ${c.rows}x${c.cols}`);
  }
});

