// K-quants (Q4_K, Q6_K) used as stored: dequantization against a line-by-line transcription of
// ggml's dequantize_row_q4_K / dequantize_row_q6_K on random blocks (extreme scales included),
// the reference quantizers and quantize_row_q8_K_ref against digests of ggml-quants.c's own
// output (node-llama-cpp's bundled llama.cpp source, compiled with gcc -O2 -DNDEBUG
// -ffp-contract=off and run on the input of test/quant.test.ts), and the TypeScript matMul
// (activations in Q8_K) against a transcription of ggml_vec_dot_q4_K_q8_K / _q6_K_q8_K.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { JsBackend } from '../src/backend/js-backend.js';
import { Q8K_BLOCK_BYTES, quantizeQ8K, type Q8KRows } from '../src/backend/q8k-activations.js';
import { decodeRow } from '../src/backend/rows.js';
import { f16ToF32 } from '../src/formats/dtypes.js';
import { BLOCK_LAYOUT, dequantizeRow, firstNonFiniteScaleBlock, quantizeRowQ4_K, quantizeRowQ6_K } from '../src/formats/quant.js';
import { nativeScaleFinder } from '../src/backend/native-backend.js';
import { Rng } from '../src/generate/rng.js';
import { openGguf } from '../src/formats/gguf.js';
import { writeGguf } from '../src/formats/gguf-writer.js';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './st-writer.js';
import { extremeKquantInput, referenceInput, throwsGemma } from './helpers.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const f32bytes = (f: Float32Array): Uint8Array => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
const fr = Math.fround;


/** Random super-blocks: random bytes, with the f16 scales drawn from extremes (0, ±65504, subnormals, ±1) half the time. */
function randomBlocks(rng: Rng, count: number, bytes: number, scaleOffsets: number[]): Uint8Array {
  const extremes = [0x0000, 0x7bff, 0xfbff, 0x0001, 0x8001, 0x03ff, 0x3c00, 0xbc00, 0x0400];
  const out = new Uint8Array(count * bytes);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rng.nextFloat() * 256);
  for (let b = 0; b < count; b++) {
    for (const so of scaleOffsets) {
      if (rng.nextFloat() < 0.5) {
        const h = extremes[Math.floor(rng.nextFloat() * extremes.length)]!;
        out[b * bytes + so] = h & 0xff;
        out[b * bytes + so + 1] = h >> 8;
      }
    }
    if (b % 3 === 0) out.fill(0xff, b * bytes + (bytes === 144 ? 4 : 192), b * bytes + (bytes === 144 ? 16 : 208)); // largest scales
  }
  return out;
}

// ---- straightforward transcriptions of ggml-quants.c (float32 arithmetic via fround)
function getScaleMinK4(j: number, q: Uint8Array): [number, number] {
  if (j < 4) return [q[j]! & 63, q[j + 4]! & 63];
  return [(q[j + 4]! & 0xf) | ((q[j - 4]! >> 6) << 4), (q[j + 4]! >> 4) | ((q[j - 0]! >> 6) << 4)];
}

function refDequantQ4K(block: Uint8Array): Float32Array {
  const y = new Float32Array(256);
  const d = f16ToF32(block[0]! | (block[1]! << 8));
  const min = f16ToF32(block[2]! | (block[3]! << 8));
  const scales = block.subarray(4, 16);
  let q = 16, is = 0, k = 0;
  for (let j = 0; j < 256; j += 64) {
    let [sc, m] = getScaleMinK4(is + 0, scales);
    const d1 = fr(d * sc), m1 = fr(min * m);
    [sc, m] = getScaleMinK4(is + 1, scales);
    const d2 = fr(d * sc), m2 = fr(min * m);
    for (let l = 0; l < 32; ++l) y[k++] = fr(fr(d1 * (block[q + l]! & 0xf)) - m1);
    for (let l = 0; l < 32; ++l) y[k++] = fr(fr(d2 * (block[q + l]! >> 4)) - m2);
    q += 32; is += 2;
  }
  return y;
}

function refDequantQ6K(block: Uint8Array): Float32Array {
  const y = new Float32Array(256);
  const d = f16ToF32(block[208]! | (block[209]! << 8));
  const i8 = (v: number): number => (v << 24) >> 24;
  let ql = 0, qh = 128, sc = 192, yo = 0;
  for (let n = 0; n < 256; n += 128) {
    for (let l = 0; l < 32; ++l) {
      const is = Math.floor(l / 16);
      const q1 = i8((block[ql + l]! & 0xF) | (((block[qh + l]! >> 0) & 3) << 4)) - 32;
      const q2 = i8((block[ql + l + 32]! & 0xF) | (((block[qh + l]! >> 2) & 3) << 4)) - 32;
      const q3 = i8((block[ql + l]! >> 4) | (((block[qh + l]! >> 4) & 3) << 4)) - 32;
      const q4 = i8((block[ql + l + 32]! >> 4) | (((block[qh + l]! >> 6) & 3) << 4)) - 32;
      y[yo + l + 0] = fr(fr(d * i8(block[sc + is + 0]!)) * q1);
      y[yo + l + 32] = fr(fr(d * i8(block[sc + is + 2]!)) * q2);
      y[yo + l + 64] = fr(fr(d * i8(block[sc + is + 4]!)) * q3);
      y[yo + l + 96] = fr(fr(d * i8(block[sc + is + 6]!)) * q4);
    }
    yo += 128; ql += 64; qh += 32; sc += 8;
  }
  return y;
}

/** ggml_vec_dot_q4_K_q8_K_generic (float sums[8] per lane, then sumf), one row. */
function refDotQ4K(w: Uint8Array, x: Q8KRows, xRow: number, nb: number): number {
  const sums = new Float32Array(8);
  let sumf = 0;
  for (let i = 0; i < nb; i++) {
    const blk = w.subarray(i * 144, i * 144 + 144);
    const xb = xRow * nb + i;
    const aux8 = new Int8Array(256);
    for (let j = 0, a = 0, q = 16; j < 4; j++, q += 32) {
      for (let l = 0; l < 32; l++) aux8[a++] = blk[q + l]! & 0xf;
      for (let l = 0; l < 32; l++) aux8[a++] = blk[q + l]! >> 4;
    }
    const scales = blk.subarray(4, 16);
    let sumi = 0;
    for (let j = 0; j < 16; j++) sumi += x.bsums[xb * 16 + j]! * getScaleMinK4(j >> 1, scales)[1];
    const aux32 = new Int32Array(8);
    for (let j = 0; j < 8; j++) {
      const scale = getScaleMinK4(j, scales)[0];
      for (let l = 0; l < 32; l++) aux32[l % 8] += scale * aux8[32 * j + l]! * x.qs[xb * 256 + 32 * j + l]!;
    }
    const d = fr(f16ToF32(blk[0]! | (blk[1]! << 8)) * x.d[xb]!);
    for (let l = 0; l < 8; l++) sums[l] = fr(sums[l]! + fr(d * aux32[l]!));
    const dmin = fr(f16ToF32(blk[2]! | (blk[3]! << 8)) * x.d[xb]!);
    sumf = fr(sumf - fr(dmin * sumi));
  }
  for (let l = 0; l < 8; l++) sumf = fr(sumf + sums[l]!);
  return sumf;
}

/** ggml_vec_dot_q6_K_q8_K_generic, one row. */
function refDotQ6K(w: Uint8Array, x: Q8KRows, xRow: number, nb: number): number {
  const sums = new Float32Array(8);
  for (let i = 0; i < nb; i++) {
    const blk = w.subarray(i * 210, i * 210 + 210);
    const xb = xRow * nb + i;
    const aux8 = new Int8Array(256);
    for (let j = 0, a = 0, ql = 0, qh = 128; j < 256; j += 128, a += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        aux8[a + l + 0] = ((blk[ql + l]! & 0xF) | (((blk[qh + l]! >> 0) & 3) << 4)) - 32;
        aux8[a + l + 32] = ((blk[ql + l + 32]! & 0xF) | (((blk[qh + l]! >> 2) & 3) << 4)) - 32;
        aux8[a + l + 64] = ((blk[ql + l]! >> 4) | (((blk[qh + l]! >> 4) & 3) << 4)) - 32;
        aux8[a + l + 96] = ((blk[ql + l + 32]! >> 4) | (((blk[qh + l]! >> 6) & 3) << 4)) - 32;
      }
    }
    const aux32 = new Int32Array(8);
    for (let j = 0; j < 16; j++) {
      const scale = (blk[192 + j]! << 24) >> 24;
      for (let l = 0; l < 16; l++) aux32[l % 8] += scale * aux8[16 * j + l]! * x.qs[xb * 256 + 16 * j + l]!;
    }
    const d = fr(f16ToF32(blk[208]! | (blk[209]! << 8)) * x.d[xb]!);
    for (let l = 0; l < 8; l++) sums[l] = fr(sums[l]! + fr(d * aux32[l]!));
  }
  let sumf = 0;
  for (let l = 0; l < 8; l++) sumf = fr(sumf + sums[l]!);
  return sumf;
}

/** Q8_K rows as the bytes of block_q8_K[] (float d, int8 qs[256], int16 bsums[16]). */
function q8kBytes(q: Q8KRows): Uint8Array {
  const blocks = q.d.length;
  const out = new Uint8Array(blocks * Q8K_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const o = b * Q8K_BLOCK_BYTES;
    view.setFloat32(o, q.d[b]!, true);
    out.set(new Uint8Array(q.qs.buffer, q.qs.byteOffset + b * 256, 256), o + 4);
    for (let g = 0; g < 16; g++) view.setInt16(o + 260 + 2 * g, q.bsums[b * 16 + g]!, true);
  }
  return out;
}

describe('K-quant dequantization equals the ggml reference formulas', () => {
  const rng = new Rng(1414);
  test('q4_k: 300 random super-blocks (extreme d / dmin, all-ones scale bytes) bit for bit', () => {
    const blocks = randomBlocks(rng, 300, 144, [0, 2]);
    const y = new Float32Array(300 * 256);
    dequantizeRow('q4_k', blocks, 0, y, 0, y.length);
    for (let b = 0; b < 300; b++) {
      const want = refDequantQ4K(blocks.subarray(b * 144, b * 144 + 144));
      assert.deepEqual(f32bytes(y.subarray(b * 256, b * 256 + 256)), f32bytes(want), `block ${b}`);
    }
  });
  test('q6_k: 300 random super-blocks (extreme d, ±127/−128 scales) bit for bit', () => {
    const blocks = randomBlocks(rng, 300, 210, [208]);
    const y = new Float32Array(300 * 256);
    dequantizeRow('q6_k', blocks, 0, y, 0, y.length);
    for (let b = 0; b < 300; b++) {
      const want = refDequantQ6K(blocks.subarray(b * 210, b * 210 + 210));
      assert.deepEqual(f32bytes(y.subarray(b * 256, b * 256 + 256)), f32bytes(want), `block ${b}`);
    }
  });
  test('known byte vectors: one q4_k and one q6_k block by hand', () => {
    // q4_k: d = 1, dmin = 0.5, scale/min of sub-block 0 = 2/3 (packed bytes 0 and 4), quants 0x21.
    const q4 = new Uint8Array(144);
    q4.set([0x00, 0x3c, 0x00, 0x38, 2, 0, 0, 0, 3, 0, 0, 0]);
    q4[16] = 0x21;
    const y4 = new Float32Array(256);
    dequantizeRow('q4_k', q4, 0, y4, 0, 256);
    assert.equal(y4[0], 2 * 1 - 1.5); // d·sc·1 − dmin·m
    assert.equal(y4[1], -1.5);
    assert.equal(y4[32], 0); // high nibble 2 with sub-block 1's scale 0, min 0
    // q6_k: d = 0.25, scale 0 = −3; ql[0] = 0x0f, qh[0] = 0x03 → q = 0x3f − 32 = 31.
    const q6 = new Uint8Array(210);
    q6[0] = 0x0f; q6[128] = 0x03; q6[192] = 0xfd; q6[208] = 0x00; q6[209] = 0x34;
    const y6 = new Float32Array(256);
    dequantizeRow('q6_k', q6, 0, y6, 0, 256);
    assert.equal(y6[0], 0.25 * -3 * 31);
    assert.equal(y6[1], 0.25 * -3 * -32);
  });
});

describe('reference quantizers bit for bit with ggml-quants.c', () => {
  const x = referenceInput(65536);
  test('quantize_row_q4_K_ref bytes and dequantize_row_q4_K values', () => {
    const q = quantizeRowQ4_K(x);
    assert.equal(q.length, 256 * 144);
    assert.equal(sha256(q), '1f6293c170e16cc5e654b2491ae91d893500b954cd70eb0b863cba0a182ddd5e');
    const y = new Float32Array(x.length);
    dequantizeRow('q4_k', q, 0, y, 0, x.length);
    assert.equal(sha256(f32bytes(y)), 'b73722099c69aee9478a2fc90d3e06e9494470f64f422a47d990e3a68900106d');
  });
  test('quantize_row_q6_K_ref bytes (the same harness run)', () => {
    assert.equal(sha256(quantizeRowQ6_K(x)), '33c126583c3d050697946b3e4c1eb76641c23399074a397d38108e6e1321a62a');
  });
  test('quantize_row_q8_K_ref blocks (d, qs, bsums), subnormal blocks included', () => {
    const q = quantizeQ8K(x, 1, x.length);
    assert.equal(sha256(q8kBytes(q)), '485dfb698c900a47415ce82b474760ec253e7c6a749b28a792120269fe1ea832');
  });
  test('extreme magnitudes (1e-16 to 1e14 · 60, where x³ overflows float32 and a scale becomes NaN): digests of ggml\'s output', () => {
    // The input of the native C-vs-TypeScript quantizer test; ggml-quants.c run on it gave these.
    const x = extremeKquantInput();
    assert.equal(sha256(quantizeRowQ4_K(x)), '97249af4b460b54604da79d030bd713f09535d312bb7d0beead016f7d5489b1e');
    assert.equal(sha256(quantizeRowQ6_K(x)), '080368d1e7df0a393a1cadc4b664643e97f78f245072710c7c9bc44b9bbbb7a2');
  });
  test('q4_k round trip: relative RMS error below 12% on Gaussian data', () => {
    const rng = new Rng(7);
    const v = new Float32Array(4096);
    for (let i = 0; i < v.length; i++) v[i] = Math.sqrt(-2 * Math.log(Math.max(rng.nextFloat(), 1e-12))) * Math.cos(2 * Math.PI * rng.nextFloat());
    const y = new Float32Array(v.length);
    dequantizeRow('q4_k', quantizeRowQ4_K(v), 0, y, 0, v.length);
    let err = 0, norm = 0;
    for (let i = 0; i < v.length; i++) { err += (y[i]! - v[i]!) ** 2; norm += v[i]! ** 2; }
    assert.ok(Math.sqrt(err / norm) < 0.12, `relative RMS ${Math.sqrt(err / norm)}`);
  });
});

describe('TypeScript matMul on K-quant weights as stored', () => {
  const js = new JsBackend();
  for (const dtype of ['q4_k', 'q6_k'] as const) {
    test(`${dtype}: equals ggml_vec_dot_${dtype === 'q4_k' ? 'q4_K' : 'q6_K'}_q8_K (relative 1e-5), rows 13, cols 768, batch 3`, () => {
      const rng = new Rng(dtype === 'q4_k' ? 41 : 61);
      const rows = 13, cols = 768, batch = 3, nb = cols / 256;
      const bytes = dtype === 'q4_k' ? 144 : 210;
      const w = randomBlocks(rng, rows * nb, bytes, dtype === 'q4_k' ? [0, 2] : [208]);
      // Finite, moderate scales so the float32 reference is meaningful.
      for (let b = 0; b < rows * nb; b++) {
        for (const so of dtype === 'q4_k' ? [0, 2] : [208]) { w[b * bytes + so] = Math.floor(rng.nextFloat() * 256); w[b * bytes + so + 1] = 0x20 + Math.floor(rng.nextFloat() * 8); }
      }
      const x = new Float32Array(batch * cols);
      for (let i = 0; i < x.length; i++) x[i] = (rng.nextFloat() - 0.5) * 4;
      const out = new Float32Array(batch * rows);
      js.matMul(out, { dtype, rows, cols, data: w }, x, batch);
      const q8 = quantizeQ8K(x, batch, cols);
      for (let n = 0; n < batch; n++) {
        for (let r = 0; r < rows; r++) {
          const row = w.subarray(r * nb * bytes, (r + 1) * nb * bytes);
          const want = dtype === 'q4_k' ? refDotQ4K(row, q8, n, nb) : refDotQ6K(row, q8, n, nb);
          const got = out[n * rows + r]!;
          assert.ok(Math.abs(got - want) <= 1e-5 * Math.max(1, Math.abs(want)), `row ${r} batch ${n}: ${got} vs ${want}`);
        }
      }
      // decodeRow gives the dequantized row (the embedding lookup path).
      const row = new Float32Array(cols);
      decodeRow({ dtype, rows, cols, data: w }, 5, row);
      const want = new Float32Array(cols);
      dequantizeRow(dtype, w, 5 * nb * bytes, want, 0, cols);
      assert.deepEqual(row, want);
    });
  }
});

describe('K-quant GGUF tensors: bad input is a BAD_FORMAT naming the tensor', () => {
  const rng = new Rng(99);
  const valid = (dtype: 'q4_k' | 'q6_k', rows: number, cols: number): Uint8Array => {
    const v = new Float32Array(rows * cols);
    for (let i = 0; i < v.length; i++) v[i] = rng.nextFloat() - 0.5;
    return dtype === 'q4_k' ? quantizeRowQ4_K(v) : quantizeRowQ6_K(v);
  };
  const withFile = (fn: (path: string) => void): void => {
    const tmp = tempDir('kquant-bad');
    try {
      fn(join(tmp.dir, 'k.gguf'));
    } finally {
      tmp.cleanup();
    }
  };

  test('valid Q4_K / Q6_K tensors read back as stored', () => withFile((path) => {
    const a = valid('q4_k', 2, 512), b = valid('q6_k', 3, 256);
    writeGguf(path, { metadata: [], tensors: [{ name: 'a', dtype: 'q4_k', shape: [2, 512], data: a }, { name: 'b', dtype: 'q6_k', shape: [3, 256], data: b }] });
    const g = openGguf(path);
    try {
      assert.deepEqual(g.read('a').data, a);
      assert.deepEqual(g.read('b').data, b);
    } finally {
      g.close();
    }
  }));

  for (const [dtype, field, at, half, what] of [
    ['q4_k', 'd', 0, 0x7e00, 'NaN'], ['q4_k', 'dmin', 2, 0x7c00, 'infinite'], ['q4_k', 'dmin', 2, 0xfc00, 'infinite'], ['q6_k', 'd', 208, 0x7c01, 'NaN'],
  ] as const) {
    test(`${dtype}: a ${what} ${field} (0x${half.toString(16)}) in super-block 3`, () => withFile((path) => {
      const bytes = dtype === 'q4_k' ? 144 : 210;
      const data = valid(dtype, 2, 512);
      data[3 * bytes + at] = half & 0xff;
      data[3 * bytes + at + 1] = half >> 8;
      writeGguf(path, { metadata: [], tensors: [{ name: 'blk.0.ffn_down.weight', dtype, shape: [2, 512], data }] });
      const g = openGguf(path);
      try {
        throwsGemma(() => g.read('blk.0.ffn_down.weight'), 'BAD_FORMAT', 'blk.0.ffn_down.weight', `super-block 3`, `${what} scale ${field}`);
      } finally {
        g.close();
      }
    }));
  }

  const nativeFind = nativeScaleFinder();
  test('the addon\'s parallel scale scan finds the block TypeScript\'s finds (every scaled type, several bad blocks, across its 8192-block slices)', { skip: nativeFind ? false : 'no native addon' }, () => {
    const fields = { q5_0: [0], q5_1: [0, 2], q4_k: [0, 2], q5_k: [0, 2], q6_k: [208] } as const;
    for (const [dtype, ats] of Object.entries(fields) as [keyof typeof fields, readonly number[]][]) {
      const { blockBytes } = BLOCK_LAYOUT[dtype];
      const blocks = 20_011; // three slices, the last one partial
      const data = new Uint8Array(blocks * blockBytes + 5); // a trailing partial block is not scanned
      const badHalves = [0x7c00, 0xfc00, 0x7e00, 0x7c01];
      for (const bad of [[], [20_010], [8192, 3], [16_383, 16_384, 19_000], [0]]) {
        data.fill(0x3c); // 0x3c3c: a finite f16 in every field
        data.fill(0x7c, blocks * blockBytes); // not a whole block
        bad.forEach((b, i) => {
          const at = ats[i % ats.length]!, half = badHalves[(b + i) % badHalves.length]!;
          data[b * blockBytes + at] = half & 0xff;
          data[b * blockBytes + at + 1] = half >> 8;
        });
        const want = bad.length === 0 ? -1 : Math.min(...bad);
        assert.equal(firstNonFiniteScaleBlock(dtype, data), want, `${dtype} TypeScript, bad ${bad}`);
        assert.equal(nativeFind!(dtype, data), want, `${dtype} native, bad ${bad}`);
      }
    }
  });

  test('q6_k: a NaN d read through the native scan is the same BAD_FORMAT naming the tensor', { skip: nativeFind ? false : 'no native addon' }, () => withFile((path) => {
    const data = valid('q6_k', 2, 512);
    data[3 * 210 + 209] = 0x7e;
    writeGguf(path, { metadata: [], tensors: [{ name: 'blk.0.ffn_down.weight', dtype: 'q6_k', shape: [2, 512], data }] });
    const g = openGguf(path);
    try {
      g.useScaleFinder(nativeFind!);
      throwsGemma(() => g.read('blk.0.ffn_down.weight'), 'BAD_FORMAT', 'blk.0.ffn_down.weight', 'super-block 3', 'NaN scale d');
    } finally {
      g.close();
    }
  }));

  test('a row length that is not a multiple of 256 (ne0 patched from 512 to 384)', () => withFile((path) => {
    writeGguf(path, { metadata: [], tensors: [{ name: 'blk.1.attn_q.weight', dtype: 'q4_k', shape: [2, 512], data: valid('q4_k', 2, 512) }] });
    const file = readFileSync(path);
    const name = Buffer.from('blk.1.attn_q.weight');
    const at = file.indexOf(name) + name.length + 4; // n_dims (u32), then ne0 (i64)
    assert.equal(file.readBigInt64LE(at), 512n);
    file.writeBigInt64LE(384n, at);
    writeFileSync(path, file);
    throwsGemma(() => openGguf(path), 'BAD_FORMAT', 'blk.1.attn_q.weight', '384', '256');
  }));

  test('truncated super-blocks (the file cut 100 bytes into the last block)', () => withFile((path) => {
    writeGguf(path, { metadata: [], tensors: [{ name: 'output.weight', dtype: 'q6_k', shape: [4, 256], data: valid('q6_k', 4, 256) }] });
    const size = readFileSync(path).length;
    truncateSync(path, size - 110);
    throwsGemma(() => openGguf(path), 'BAD_FORMAT', 'output.weight', 'truncated');
  }));
});
