// Q5_0, Q5_1 and Q5_K used as stored: dequantization and the reference quantizers against
// digests of ggml-quants.c's own output (node-llama-cpp's bundled llama.cpp source compiled with
// gcc -O2 -DNDEBUG -ffp-contract=off, run on test/helpers.ts's reference and extreme inputs and
// on random blocks with extreme f16 scales), and GGUF files carrying them: read as stored, bad
// scales / row lengths / truncation are BAD_FORMAT naming the tensor.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openGguf } from '../src/formats/gguf.js';
import { writeGguf } from '../src/formats/gguf-writer.js';
import { dequantizeRow, quantizeRow, type BlockType } from '../src/formats/quant.js';
import { Rng } from '../src/generate/rng.js';
import { extremeKquantInput, referenceInput, throwsGemma } from './helpers.js';
import { tempDir } from './st-writer.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const f32bytes = (f: Float32Array): Uint8Array => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

const Q5_TYPES = ['q5_0', 'q5_1', 'q5_k'] as const;
type Q5Type = (typeof Q5_TYPES)[number];
const BLOCK: Record<Q5Type, { values: number; bytes: number; scales: number[] }> = {
  q5_0: { values: 32, bytes: 22, scales: [0] },
  q5_1: { values: 32, bytes: 24, scales: [0, 2] },
  q5_k: { values: 256, bytes: 176, scales: [0, 2] },
};

function dequantize(type: BlockType, q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  dequantizeRow(type, q, 0, y, 0, n);
  return y;
}

// ggml-quants.c's quantize_row_q5_*_ref bytes, and its dequantize_row_q5_* of those bytes.
const DIGESTS: Record<'reference' | 'extreme', Record<Q5Type, [string, string]>> = {
  reference: {
    q5_0: ['9966d69c760dc3e4ad15fe0ca31ee3fb46e90c04c9ea84d4a483af59185e54fe', '9f2af3a505ffc2d623002ade143934e79e25420918685acb28ec83c7df2eed24'],
    q5_1: ['89e822102dfca22222807809b687801c76b8d42ae81bf60c1b19028dd6f599d0', '32a488e1a4ade020581cbf28858374f61283ae9d15da5673c27ab2f17f0de4aa'],
    q5_k: ['92d229f42b6ac8059f93e058fa10f290e63716a2e90fc52b216c7f9be7b346d9', '475df7937d60e26ac5fc1eb65aed7e7b26be9692d2639343e44f7b3b902a5f02'],
  },
  extreme: {
    q5_0: ['3157180b082b3723ca7fd9ad6815eb1dd89de7ba3a2abc4cb0473573c12e916f', '9b634627deb0fe96fa5086760d3215d000ebac94fe4ea6477c40461bd32d0dc9'],
    q5_1: ['f65ac69415e1e0cbebefc81787d0857df879b4927d8f390baba88b14e58a1fdc', '2a1b430624972d184bcba4afdcd02add1f69dfadf2e0a64d33430eb8a1dfec08'],
    q5_k: ['ca85349b35770b3c7704dc0dbb739499083a00db8fb2a96aa25d9a5a93c302c8', 'b3358fc918fe1c66914c9f3ac33691306e53a5b7ec611f50b5d4c8223b87c09b'],
  },
};

/**
 * The harness's random blocks: xorshift32 bytes from seed 99; every f16 scale field a third of
 * the time an extreme (0, ±65504, ±subnormals, 1, 1/3), otherwise a random finite half; Q5_K:
 * every 7th super-block's 12 scale bytes all ones (6-bit scales and mins of 63).
 */
function harnessBlocks(): Record<Q5Type, Uint8Array> {
  let s = 99;
  const rnd = (): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const halves = [0x0000, 0x7bff, 0xfbff, 0x0001, 0x8001, 0x03ff, 0x3c00, 0x3555];
  // One generator for the three types, in this order.
  const out = {} as Record<Q5Type, Uint8Array>;
  for (const type of Q5_TYPES) out[type] = harnessBlock(type, rnd, halves);
  return out;
}

function harnessBlock(type: Q5Type, rnd: () => number, halves: readonly number[]): Uint8Array {
  const { bytes, scales } = BLOCK[type];
  const nb = 300 * (type === 'q5_k' ? 1 : 8);
  const b = new Uint8Array(nb * bytes);
  for (let i = 0; i < b.length; i++) b[i] = rnd() & 0xff;
  for (let k = 0; k < nb; k++) {
    for (const f of scales) {
      const h = rnd() % 3 === 0 ? halves[rnd() % 8]! : ((rnd() & 0xffff) & ~0x7c00) | ((rnd() % 31) << 10);
      b[k * bytes + f] = h & 0xff;
      b[k * bytes + f + 1] = h >> 8;
    }
  }
  if (type === 'q5_k') for (let k = 0; k < nb; k += 7) b.fill(0xff, k * bytes + 4, k * bytes + 16);
  return b;
}

describe('Q5_0 / Q5_1 / Q5_K bit for bit with ggml-quants.c', () => {
  for (const [name, input] of [['reference', () => referenceInput(65536)], ['extreme', extremeKquantInput]] as const) {
    for (const type of Q5_TYPES) {
      test(`${type}: quantize_row_${type}_ref bytes and dequantize_row_${type} values on the ${name} input`, () => {
        const x = input();
        const q = quantizeRow(type, x);
        assert.equal(q.length, (x.length / BLOCK[type].values) * BLOCK[type].bytes);
        assert.equal(sha256(q), DIGESTS[name][type][0]);
        assert.equal(sha256(f32bytes(dequantize(type, q, x.length))), DIGESTS[name][type][1]);
      });
    }
  }
  const RANDOM: Record<Q5Type, [string, string]> = {
    q5_0: ['3639156a12bd24fbf2c51a34c6b585282377215c249f3010aac5a30be5296654', 'bd77ecaa24b74d1e6be9ca69c3e21ec1d9ca28b5cac73260dbcb9aef6eb518cb'],
    q5_1: ['182af73fa37eaa42bea63ca1649e82de5f7c237e9f56c2e569ecf6ca40ca9123', 'c31904192b72a7e49c180823e7f7a62d55704f7b74ce622d8c552414b34630ce'],
    q5_k: ['36dfbd0958c79b1f64501e314891019284d416b0606e495ca0d2db88ad95e8ca', 'a747b8d086dad4b4257794627e9f3de1e9854a8f8691d9a5e51f165233395ba0'],
  };
  const blocks = harnessBlocks();
  for (const type of Q5_TYPES) {
    test(`${type}: dequantization of random blocks with extreme scales (±65504, subnormals, 0)`, () => {
      const b = blocks[type];
      assert.equal(sha256(b), RANDOM[type][0]); // the harness's input
      const n = (b.length / BLOCK[type].bytes) * BLOCK[type].values;
      assert.equal(sha256(f32bytes(dequantize(type, b, n))), RANDOM[type][1]);
    });
  }
  test('hand-made blocks: the fifth bit, q5_1\'s min and q5_k\'s sub-block scales', () => {
    // q5_0: d = 1 (0x3c00), qh bit 0 and bit 16 set, qs[0] = 0x21 → value 0 = (1 | 16) − 16 = 1, value 16 = (2 | 16) − 16 = 2.
    const a = new Uint8Array(22);
    a[1] = 0x3c; a[2] = 0x01; a[4] = 0x01; a[6] = 0x21;
    const ya = dequantize('q5_0', a, 32);
    assert.deepEqual([ya[0], ya[1], ya[16], ya[17]], [1, -16, 2, -16]);
    // q5_1: d = 0.5, m = -2: value 0 = 31·0.5 − 2, value 1 = −2.
    const b = new Uint8Array(24);
    b[1] = 0x38; b[3] = 0xc0; b[4] = 0x01; b[8] = 0x0f;
    const yb = dequantize('q5_1', b, 32);
    assert.deepEqual([yb[0], yb[1]], [31 * 0.5 - 2, -2]);
    // q5_k: d = 1, dmin = 1, sub-block 0 scale 2 min 3; ql[0] = 0x0f, qh[0] bit 0 → value 0 = 2·31 − 3; sub-block 1 (high nibbles, qh bit 1) scale 0.
    const c = new Uint8Array(176);
    c[1] = 0x3c; c[3] = 0x3c; c[4] = 2; c[8] = 3; c[16] = 0x01; c[48] = 0x0f;
    const yc = dequantize('q5_k', c, 256);
    assert.deepEqual([yc[0], yc[1], yc[32]], [2 * 31 - 3, -3, 0]);
  });
  test('round trips on Gaussian data: relative RMS error q5_0 < 6%, q5_1 < 6%, q5_k < 6%', () => {
    const rng = new Rng(5);
    const v = new Float32Array(4096);
    for (let i = 0; i < v.length; i++) v[i] = Math.sqrt(-2 * Math.log(Math.max(rng.nextFloat(), 1e-12))) * Math.cos(2 * Math.PI * rng.nextFloat());
    for (const type of Q5_TYPES) {
      const y = dequantize(type, quantizeRow(type, v), v.length);
      let err = 0, norm = 0;
      for (let i = 0; i < v.length; i++) { err += (y[i]! - v[i]!) ** 2; norm += v[i]! ** 2; }
      assert.ok(Math.sqrt(err / norm) < 0.06, `${type}: relative RMS ${Math.sqrt(err / norm)}`);
    }
  });
});

describe('Q5 GGUF tensors: read as stored, bad input a BAD_FORMAT naming the tensor', () => {
  const valid = (type: Q5Type, rows: number, cols: number): Uint8Array => {
    const rng = new Rng(3);
    const v = new Float32Array(rows * cols);
    for (let i = 0; i < v.length; i++) v[i] = rng.nextFloat() - 0.5;
    return quantizeRow(type, v);
  };
  const withFile = (fn: (path: string) => void): void => {
    const tmp = tempDir('q5-bad');
    try {
      fn(join(tmp.dir, 'q5.gguf'));
    } finally {
      tmp.cleanup();
    }
  };

  test('valid tensors of all three types read back as stored', () => withFile((path) => {
    const tensors = Q5_TYPES.map((type, i) => ({ name: `t${i}`, dtype: type, shape: [3, 512], data: valid(type, 3, 512) }));
    writeGguf(path, { metadata: [], tensors });
    const g = openGguf(path);
    try {
      for (const t of tensors) {
        const r = g.read(t.name);
        assert.equal(r.dtype, t.dtype);
        assert.deepEqual(r.data, t.data);
      }
    } finally {
      g.close();
    }
  }));

  for (const [type, field, at, half, what, unit] of [
    ['q5_0', 'd', 0, 0x7e00, 'NaN', 'block'], ['q5_1', 'm', 2, 0xfc00, 'infinite', 'block'], ['q5_1', 'd', 0, 0x7c00, 'infinite', 'block'],
    ['q5_k', 'd', 0, 0x7c01, 'NaN', 'super-block'], ['q5_k', 'dmin', 2, 0x7c00, 'infinite', 'super-block'],
  ] as const) {
    test(`${type}: a ${what} ${field} (0x${half.toString(16)}) in ${unit} 3`, () => withFile((path) => {
      const data = valid(type, 2, 512);
      data[3 * BLOCK[type].bytes + at] = half & 0xff;
      data[3 * BLOCK[type].bytes + at + 1] = half >> 8;
      writeGguf(path, { metadata: [], tensors: [{ name: 'blk.0.attn_k.weight', dtype: type, shape: [2, 512], data }] });
      const g = openGguf(path);
      try {
        throwsGemma(() => g.read('blk.0.attn_k.weight'), 'BAD_FORMAT', 'blk.0.attn_k.weight', `${unit} 3 has`, `${what} scale ${field}`);
      } finally {
        g.close();
      }
    }));
  }

  for (const [type, bad] of [['q5_0', 528], ['q5_1', 500], ['q5_k', 384]] as const) {
    test(`${type}: a row length that is not whole blocks (ne0 patched from 512 to ${bad})`, () => withFile((path) => {
      writeGguf(path, { metadata: [], tensors: [{ name: 'blk.1.attn_q.weight', dtype: type, shape: [2, 512], data: valid(type, 2, 512) }] });
      const file = readFileSync(path);
      const name = Buffer.from('blk.1.attn_q.weight');
      const at = file.indexOf(name) + name.length + 4; // n_dims (u32), then ne0 (i64)
      assert.equal(file.readBigInt64LE(at), 512n);
      file.writeBigInt64LE(BigInt(bad), at);
      writeFileSync(path, file);
      throwsGemma(() => openGguf(path), 'BAD_FORMAT', 'blk.1.attn_q.weight', String(bad));
    }));
  }

  for (const type of Q5_TYPES) {
    test(`${type}: truncated data (the file cut inside the last block)`, () => withFile((path) => {
      writeGguf(path, { metadata: [], tensors: [{ name: 'output.weight', dtype: type, shape: [4, 256], data: valid(type, 4, 256) }] });
      truncateSync(path, readFileSync(path).length - 10);
      throwsGemma(() => openGguf(path), 'BAD_FORMAT', 'output.weight', 'truncated');
    }));
  }
});
