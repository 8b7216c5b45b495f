// ggml block formats: layouts, hand-checked blocks, and bit-exactness against llama.cpp's C
// reference functions (quantize_row_{q8_0,q4_0,q6_K}_ref, dequantize_row_*), whose outputs for a
// fixed pseudo-random input were produced by compiling ggml-quants.c's code with
// gcc -O2 -ffp-contract=off; their SHA-256 digests are pinned here.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { JsBackend } from '../src/backend/js-backend.js';
import { decodeRow } from '../src/backend/rows.js';
import { GemmaError } from '../src/errors.js';
import { ELEMENT_SIZE, f16ToF32, rowBytes, tensorBytes, toFloat32 } from '../src/formats/dtypes.js';
import { referenceInput } from './helpers.js';
import {
  BLOCK_LAYOUT, dequantizeRow, f32ToF16, quantizeRow, quantizeRowQ4_0, quantizeRowQ6_K, quantizeRowQ8_0, type BlockType,
} from '../src/formats/quant.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const f32bytes = (f: Float32Array): Uint8Array => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);


describe('block layouts', () => {
  test('block sizes match ggml-common.h', () => {
    assert.deepEqual(BLOCK_LAYOUT, {
      q8_0: { blockSize: 32, blockBytes: 34 }, q4_0: { blockSize: 32, blockBytes: 18 }, q5_0: { blockSize: 32, blockBytes: 22 },
      q5_1: { blockSize: 32, blockBytes: 24 }, q5_k: { blockSize: 256, blockBytes: 176 },
      q4_k: { blockSize: 256, blockBytes: 144 }, q6_k: { blockSize: 256, blockBytes: 210 },
    });
    assert.equal(ELEMENT_SIZE.q8_0 * 32, 34);
    assert.equal(rowBytes('q4_0', 2560), 80 * 18);
    assert.equal(rowBytes('q6_k', 2560), 10 * 210);
    assert.equal(tensorBytes('q8_0', [3, 64]), 3 * 2 * 34);
    assert.equal(tensorBytes('bf16', [3, 5]), 30);
    assert.throws(() => rowBytes('q6_k', 1152), (e: unknown) => e instanceof GemmaError && e.code === 'BAD_FORMAT' && /1152/.test(e.message));
  });
});

describe('f32 → f16', () => {
  test('every finite half round-trips; NaN stays NaN', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16ToF32(h);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(f16ToF32(f32ToF16(v))));
      else assert.equal(f32ToF16(v), h, `0x${h.toString(16)}`);
    }
  });

  test('round to nearest even, subnormals and overflow', () => {
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    assert.equal(f32ToF16(Math.fround(1 + 2 ** -11 + 2 ** -20)), 0x3c01);
    assert.equal(f32ToF16(65519), 0x7bff);
    assert.equal(f32ToF16(65520), 0x7c00); // rounds past 65504
    assert.equal(f32ToF16(-1e10), 0xfc00);
    assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal → 0
    assert.equal(f32ToF16(3 * 2 ** -25), 0x0002); // tie between 1 and 2 subnormal units → 2
    assert.equal(f32ToF16(-(2 ** -24)), 0x8001);
    assert.equal(f32ToF16(Math.fround(2 ** -14 - 2 ** -26)), 0x0400); // rounds up into the normals
    assert.equal(f32ToF16(-0), 0x8000);
  });
});

describe('Q8_0', () => {
  test('a hand-checked block: d = amax / 127, q = roundf(x / d) (halves away from zero)', () => {
    const x = new Float32Array(32);
    x.set([-127, 100.5, 2.5, -2.5, 0.25, -0.5, 126.49]);
    const q = quantizeRowQ8_0(x);
    assert.equal(q.length, 34);
    assert.deepEqual([...q.subarray(0, 2)], [0x00, 0x3c]); // d = 1.0
    const qs = [...new Int8Array(q.buffer, 2, 7)];
    assert.deepEqual(qs, [-127, 101, 3, -3, 0, -1, 126]);
    const y = new Float32Array(32);
    dequantizeRow('q8_0', q, 0, y, 0, 32);
    assert.deepEqual([...y.subarray(0, 7)], [-127, 101, 3, -3, 0, -1, 126]);
  });

  test('all-zero blocks quantise to zeros', () => {
    assert.deepEqual([...quantizeRowQ8_0(new Float32Array(64))], new Array(68).fill(0));
  });
});

describe('Q4_0', () => {
  test('a hand-checked block: d = max / -8, nibble = min(15, (int)(x/d + 8.5)), low = x[j], high = x[j+16]', () => {
    const x = new Float32Array(32);
    x.set([-8, 7, -0.5, 0.5, 1.49, -3]);
    x.set([3, -1.5, 6.6], 16);
    const q = quantizeRowQ4_0(x);
    assert.deepEqual([...q.subarray(0, 2)], [0x00, 0x3c]); // d = -8 / -8 = 1
    assert.deepEqual([...q.subarray(2, 8)], [0xb0, 0x7f, 0xf8, 0x89, 0x89, 0x85]);
    assert.ok(q.subarray(8).every((b) => b === 0x88));
    const y = new Float32Array(32);
    dequantizeRow('q4_0', q, 0, y, 0, 32);
    assert.deepEqual([...y.subarray(0, 6)], [-8, 7, 0, 1, 1, -3]);
    assert.deepEqual([...y.subarray(16, 19)], [3, -1, 7]);
  });

  test('a positive extreme gives a negative scale', () => {
    const x = new Float32Array(32);
    x.set([8, -7, 4]);
    const q = quantizeRowQ4_0(x);
    assert.deepEqual([...q.subarray(0, 2)], [0x00, 0xbc]); // d = -1
    assert.deepEqual([q[2]! & 15, q[3]! & 15, q[4]! & 15], [0, 15, 4]);
    const y = new Float32Array(32);
    dequantizeRow('q4_0', q, 0, y, 0, 32);
    assert.deepEqual([...y.subarray(0, 3)], [8, -7, 4]);
  });
});

describe('bit-exact with the llama.cpp C reference', () => {
  const x = referenceInput(65536);
  const cases: [BlockType, string, string][] = [
    ['q8_0', 'fe56173848520e0ada3c8cd30ade4b7d3f8d6a4423a12a09a7be777e048f3edc', '2a3a78f8d687f5d6925f98e2880a5110f022d960f411eae33c38267ca213807d'],
    ['q4_0', '04e322e377de98eda4a773fd362872e2a932e36f206e5b45522a467b507d1f0a', 'adc8609e17d01149f178b881e9bce0da38303f56463ddd2fb2e43744896dc4e0'],
    ['q6_k', '33c126583c3d050697946b3e4c1eb76641c23399074a397d38108e6e1321a62a', '18cec4c53756dcc5a4017950bde667338f86cecabc003b80b5c41e86669aef28'],
  ];
  for (const [type, quantDigest, dequantDigest] of cases) {
    test(`${type}: quantize_row_${type}_ref bytes and dequantize_row_${type} values`, () => {
      const q = quantizeRow(type, x);
      assert.equal(q.length, (x.length / BLOCK_LAYOUT[type].blockSize) * BLOCK_LAYOUT[type].blockBytes);
      assert.equal(sha256(q), quantDigest);
      const y = new Float32Array(x.length);
      dequantizeRow(type, q, 0, y, 0, x.length);
      assert.equal(sha256(f32bytes(y)), dequantDigest);
    });
  }

  test('q4_k: dequantize_row_q4_K of two reference blocks', () => {
    const hex = 'a6287b14fffbfffbcf10004afb0f8b3f0000000000fe00000000000000000000000000000000000000000000000000000000000000fe00000000000000000000000000000000000000000000000000000000000000ef00000000000000000000000000000000000000000000000000000000000000ef00000000000000000000000000000000000000000000000000006b1c1e28fffbfffcfebefffffffaeb6a08021ec5ad6335faf7afb8b74b0f600f49eada6ca7bbc02910b3fbde8ccc56ea1e5f050cc1bb706b0130745e04aa570fc4b8dd5d885d51fe807c4c89c5d707f15fb49958e7b8b66abd1f2139a0c411ce4c5bc9293ab3c546504c537a8e076005e000fa41af74cbd0188482adde2faed4edda92ec0d8abb691b177e5ad58974ed';
    const blocks = new Uint8Array(Buffer.from(hex, 'hex'));
    const y = new Float32Array(512);
    dequantizeRow('q4_k', blocks, 0, y, 0, 512);
    assert.equal(sha256(f32bytes(y)), '2413e0e308b7889f2f02bcbcb3c8a2048c1bfa952cd79b3269fda27239ff7a9a');
    assert.equal(y[0], Math.fround(-0.01640796661376953));
  });
});

/** Packs 8 six-bit (scale, min) pairs like quantize_row_q4_K_ref. */
function packScalesK4(sc: number[], mn: number[]): Uint8Array {
  const q = new Uint8Array(12);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      q[j] = sc[j]!;
      q[j + 4] = mn[j]!;
    } else {
      q[j + 4] = (sc[j]! & 0xf) | ((mn[j]! & 0xf) << 4);
      q[j - 4]! |= (sc[j]! >> 4) << 6;
      q[j]! |= (mn[j]! >> 4) << 6;
    }
  }
  return q;
}

describe('k-quant layouts, hand-built blocks', () => {
  test('q4_k: y = d·scale·q − dmin·min per 32-value sub-block, 6-bit scales with their high bits', () => {
    const sc = [1, 2, 3, 63, 40, 17, 33, 8];
    const mn = [0, 5, 63, 1, 2, 48, 7, 31];
    const block = new Uint8Array(144);
    block.set([0x00, 0x3c, 0x00, 0x38]); // d = 1, dmin = 0.5
    block.set(packScalesK4(sc, mn), 4);
    for (let l = 0; l < 128; l++) block[16 + l] = (l % 16) | ((15 - (l % 16)) << 4);
    const y = new Float32Array(256);
    dequantizeRow('q4_k', block, 0, y, 0, 256);
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) {
        assert.equal(y[64 * j + l], sc[2 * j]! * (l % 16) - 0.5 * mn[2 * j]!);
        assert.equal(y[64 * j + 32 + l], sc[2 * j + 1]! * (15 - (l % 16)) - 0.5 * mn[2 * j + 1]!);
      }
    }
  });

  test('q6_k: y = d·scale·(q − 32), ql low/high nibbles and qh 2-bit pairs', () => {
    const L = Array.from({ length: 256 }, (_, i) => (i * 7 + 3) % 64);
    const scales = Array.from({ length: 16 }, (_, i) => (i % 2 ? -1 : 1) * (i * 8 + 1)); // int8: up to ±121
    const block = new Uint8Array(210);
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const [a, b, c, e] = [0, 32, 64, 96].map((k) => L[128 * h + l + k]!);
        block[64 * h + l] = (a! & 0xf) | ((c! & 0xf) << 4);
        block[64 * h + l + 32] = (b! & 0xf) | ((e! & 0xf) << 4);
        block[128 + 32 * h + l] = (a! >> 4) | ((b! >> 4) << 2) | ((c! >> 4) << 4) | ((e! >> 4) << 6);
      }
    }
    scales.forEach((s, i) => (block[192 + i] = s & 0xff));
    block.set([0x00, 0x38], 208); // d = 0.5
    const y = new Float32Array(256);
    dequantizeRow('q6_k', block, 0, y, 0, 256);
    for (let i = 0; i < 256; i++) assert.equal(y[i], 0.5 * scales[i >> 4]! * (L[i]! - 32), `value ${i}`);
  });
});

describe('round trips', () => {
  // Gaussian-ish weights with a few outliers, like a trained matrix.
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const x = Float32Array.from({ length: 4096 }, (_, i) => (rnd() + rnd() + rnd() - 1.5) * 0.05 * (i % 97 === 0 ? 8 : 1));

  test('q8_0 error ≤ 0.57·d, q4_0 ≤ 1.01·|d| per block (d rounded to f16 adds 127·d·2^-11); q6_k relative RMS < 4%', () => {
    for (const type of ['q8_0', 'q4_0'] as const) {
      const q = quantizeRow(type, x);
      const y = new Float32Array(x.length);
      dequantizeRow(type, q, 0, y, 0, x.length);
      for (let b = 0; b < x.length; b += 32) {
        const d = Math.abs(f16ToF32(q[(b / 32) * BLOCK_LAYOUT[type].blockBytes]! | (q[(b / 32) * BLOCK_LAYOUT[type].blockBytes + 1]! << 8)));
        const bound = type === 'q8_0' ? 0.57 * d : 1.01 * d;
        for (let j = b; j < b + 32; j++) assert.ok(Math.abs(y[j]! - x[j]!) <= bound, `${type} value ${j}: ${y[j]} vs ${x[j]} (d ${d})`);
      }
    }
    const q6 = quantizeRowQ6_K(x);
    const y = new Float32Array(x.length);
    dequantizeRow('q6_k', q6, 0, y, 0, x.length);
    let err = 0, norm = 0;
    for (let i = 0; i < x.length; i++) {
      err += (y[i]! - x[i]!) ** 2;
      norm += x[i]! ** 2;
    }
    assert.ok(Math.sqrt(err / norm) < 0.04, `q6_k relative RMS ${Math.sqrt(err / norm)}`);
  });

  test('decodeRow, toFloat32 and the JS matMul agree on every block type', () => {
    // q8_0 / q4_0 matMuls quantise the activations to Q8 blocks, q4_k / q6_k to Q8_K super-blocks,
    // as llama.cpp does, so they agree with the dequantised f32 product only to within that rounding.
    const rows = 4, cols = 512;
    const w = x.subarray(0, rows * cols);
    const input = Float32Array.from({ length: 2 * cols }, (_, i) => Math.sin(i));
    for (const type of ['q8_0', 'q4_0', 'q4_k', 'q6_k'] as const) {
      const data = quantizeRow(type, w);
      const full = toFloat32({ name: 'w', dtype: type, shape: [rows, cols], data });
      const row = new Float32Array(cols);
      for (let r = 0; r < rows; r++) {
        decodeRow({ dtype: type, rows, cols, data }, r, row);
        assert.deepEqual(row, full.subarray(r * cols, (r + 1) * cols));
      }
      const out = new Float32Array(2 * rows), ref = new Float32Array(2 * rows);
      const backend = new JsBackend();
      backend.matMul(out, { dtype: type, rows, cols, data }, input, 2);
      backend.matMul(ref, { dtype: 'f32', rows, cols, data: f32bytes(full) }, input, 2);
      for (let i = 0; i < out.length; i++) {
        let scale = 0;
        for (let c = 0; c < cols; c++) scale += Math.abs(full[(i % rows) * cols + c]! * input[Math.floor(i / rows) * cols + c]!);
        assert.ok(Math.abs(out[i]! - ref[i]!) <= 0.01 * scale, `${type} output ${i}: ${out[i]} vs ${ref[i]}`);
      }
    }
  });

  test('bad arguments', () => {
    const isCode = (code: string) => (e: unknown) => e instanceof GemmaError && e.code === code;
    assert.throws(() => quantizeRowQ8_0(new Float32Array(31)), isCode('INVALID_ARGUMENT'));
    assert.throws(() => quantizeRow('q4_k', new Float32Array(255)), isCode('INVALID_ARGUMENT'));
    assert.throws(() => dequantizeRow('q8_0', new Uint8Array(33), 0, new Float32Array(32), 0, 32), isCode('BAD_FORMAT'));
    assert.throws(() => toFloat32({ name: 'w', dtype: 'q4_0', shape: [2, 32], data: new Uint8Array(35) }), isCode('BAD_FORMAT'));
    assert.throws(() => toFloat32({ name: 'w', dtype: 'q4_0', shape: [2, 48], data: new Uint8Array(54) }), isCode('BAD_FORMAT'));
  });
});
