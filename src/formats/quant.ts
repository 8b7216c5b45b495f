// ggml block-quantised formats: layouts, dequantisation, and the reference quantisers llama.cpp
// uses to create model files. Everything here is a port of ggml/src/ggml-quants.c and
// ggml-common.h (block_q8_0, block_q4_0, block_q5_0, block_q5_1, block_q4_K, block_q5_K, block_q6_K).
//
// Bit-exactness: the C reference works in float32. Every float operation below is rounded with
// Math.fround exactly where C rounds (products, quotients, sums), so results are identical to a
// build of ggml that evaluates strictly in IEEE float32. A compiler that contracts a*b+c into an
// FMA (gcc -O2 -march=native with its default -ffp-contract=fast) can differ in the last bit of
// an intermediate, which very rarely changes a quantised value; llama.cpp's Python converter
// (gguf-py Q8_0) has no such contraction and matches this file exactly.
import { GemmaError } from '../errors.js';

export type BlockType = 'q8_0' | 'q4_0' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k';

export const QK8_0 = 32; // values per q8_0 block
export const QK4_0 = 32; // values per q4_0 block
export const QK_K = 256; // values per k-quant super-block

/** Values per block and bytes per block of each block type. */
export const BLOCK_LAYOUT: Readonly<Record<BlockType, { readonly blockSize: number; readonly blockBytes: number }>> = {
  q8_0: { blockSize: QK8_0, blockBytes: 2 + QK8_0 }, // f16 d, int8 qs[32]
  q4_0: { blockSize: QK4_0, blockBytes: 2 + QK4_0 / 2 }, // f16 d, uint8 qs[16]: value j low nibble, j+16 high
  q5_0: { blockSize: 32, blockBytes: 2 + 4 + 16 }, // f16 d, qh[4] (bit 4 of value j at bit j), qs[16] as q4_0
  q5_1: { blockSize: 32, blockBytes: 2 + 2 + 4 + 16 }, // f16 d, f16 m, qh[4], qs[16]
  q4_k: { blockSize: QK_K, blockBytes: 2 + 2 + 12 + QK_K / 2 }, // f16 d, f16 dmin, 6-bit scales/mins[12], qs[128]
  q5_k: { blockSize: QK_K, blockBytes: 2 + 2 + 12 + QK_K / 8 + QK_K / 2 }, // q4_k's fields with qh[32] before qs[128]
  q6_k: { blockSize: QK_K, blockBytes: QK_K / 2 + QK_K / 4 + QK_K / 16 + 2 }, // ql[128], qh[64], int8 scales[16], f16 d
};

export function isBlockType(dtype: string): dtype is BlockType {
  return dtype in BLOCK_LAYOUT;
}

// ---------------------------------------------------------------------------------------------
// Half precision (ggml_fp16_t)

/** All 65536 half-precision values widened once (256 KiB): a table beats bit twiddling in JS. */
export const HALF_TABLE = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return table;
})();

const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);

/**
 * float32 → IEEE binary16 bits, round to nearest even (subnormals, overflow to ±Infinity, NaN →
 * quiet NaN 0x7e00 with the sign): what GGML_FP32_TO_FP16 gives, with F16C or without.
 */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (abs >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 rounds past 65504
  if (abs >= 0x38800000) return sign | ((abs + 0xfff + ((abs >>> 13) & 1) - 0x38000000) >>> 13); // normal
  if (abs <= 0x33000000) return sign; // ≤ 2^-25: rounds to ±0 (the tie goes to the even 0)
  const e = abs >>> 23;
  const mant = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - e; // subnormal units of 2^-24
  const q = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (q + (rem > half || (rem === half && (q & 1) === 1) ? 1 : 0));
}

function readHalf(src: Uint8Array, o: number): number {
  return HALF_TABLE[src[o]! | (src[o + 1]! << 8)]!;
}

function writeHalf(dst: Uint8Array, o: number, value: number): void {
  const h = f32ToF16(value);
  dst[o] = h & 0xff;
  dst[o + 1] = h >>> 8;
}

const fr = Math.fround;

/**
 * ggml's nearest_int exactly as its bits work for any float, including the out-of-range values
 * (±Infinity, NaN, |fval| ≥ 2^22) that appear in blocks of tiny subnormals, where 1/max
 * overflows: the low 23 bits of fval + 1.5·2^23, minus 2^22.
 */
export function nearestIntBits(fval: number): number {
  f32[0] = fval + 12582912;
  return (u32[0]! & 0x007fffff) - 0x00400000;
}

/** C roundf: half away from zero. */
function roundf(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/**
 * A C cast float → int8_t as x86-64 compilers emit it (cvttss2si to int32, keep the low byte):
 * NaN, ±Infinity and values outside the int32 range give 0x80000000, i.e. 0. Matters only for
 * blocks whose largest magnitude is below ~1e-38, where 1/d overflows to infinity.
 */
function toInt8(v: number): number {
  if (!(v > -2147483649 && v < 2147483648)) return 0;
  return (Math.trunc(v) << 24) >> 24;
}

// ---------------------------------------------------------------------------------------------
// Dequantisation: n values (a multiple of the block size) from src[srcOffset..] to out[outOffset..]

export function dequantizeRowQ8_0(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += QK8_0, o += 34, y += QK8_0) {
    const d = readHalf(src, o);
    for (let j = 0; j < QK8_0; j++) out[y + j] = ((src[o + 2 + j]! << 24) >> 24) * d;
  }
}

export function dequantizeRowQ4_0(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += QK4_0, o += 18, y += QK4_0) {
    const d = readHalf(src, o);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j]!;
      out[y + j] = ((q & 0x0f) - 8) * d;
      out[y + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

/** The 32 high bits of a q5_0 / q5_1 block (little-endian uint32 at o). */
function readQh(src: Uint8Array, o: number): number {
  return (src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24)) >>> 0;
}

export function dequantizeRowQ5_0(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += 32, o += 22, y += 32) {
    const d = readHalf(src, o);
    const qh = readQh(src, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 6 + j]!;
      out[y + j] = (((q & 0x0f) | (((qh >>> j) << 4) & 0x10)) - 16) * d;
      out[y + j + 16] = (((q >> 4) | ((qh >>> (j + 12)) & 0x10)) - 16) * d;
    }
  }
}

export function dequantizeRowQ5_1(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += 32, o += 24, y += 32) {
    const d = readHalf(src, o);
    const m = readHalf(src, o + 2);
    const qh = readQh(src, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 8 + j]!;
      out[y + j] = fr(((q & 0x0f) | (((qh >>> j) << 4) & 0x10)) * d) + m;
      out[y + j + 16] = fr(((q >> 4) | ((qh >>> (j + 12)) & 0x10)) * d) + m;
    }
  }
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at s. */
function scaleMinK4(j: number, q: Uint8Array, s: number): [number, number] {
  if (j < 4) return [q[s + j]! & 63, q[s + j + 4]! & 63];
  return [(q[s + j + 4]! & 0xf) | ((q[s + j - 4]! >> 6) << 4), (q[s + j + 4]! >> 4) | ((q[s + j]! >> 6) << 4)];
}

export function dequantizeRowQ4_K(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += QK_K, o += 144) {
    const d = readHalf(src, o);
    const min = readHalf(src, o + 2);
    let q = o + 16;
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
      const [sc1, m1q] = scaleMinK4(is, src, o + 4);
      const [sc2, m2q] = scaleMinK4(is + 1, src, o + 4);
      const d1 = fr(d * sc1), m1 = fr(min * m1q);
      const d2 = fr(d * sc2), m2 = fr(min * m2q);
      for (let l = 0; l < 32; l++) out[y++] = fr(d1 * (src[q + l]! & 0xf)) - m1;
      for (let l = 0; l < 32; l++) out[y++] = fr(d2 * (src[q + l]! >> 4)) - m2;
    }
  }
}

export function dequantizeRowQ5_K(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += QK_K, o += 176) {
    const d = readHalf(src, o);
    const min = readHalf(src, o + 2);
    const qh = o + 16;
    let ql = o + 48;
    for (let j = 0, is = 0, u1 = 1, u2 = 2; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      const [sc1, m1q] = scaleMinK4(is, src, o + 4);
      const [sc2, m2q] = scaleMinK4(is + 1, src, o + 4);
      const d1 = fr(d * sc1), m1 = fr(min * m1q);
      const d2 = fr(d * sc2), m2 = fr(min * m2q);
      for (let l = 0; l < 32; l++) out[y++] = fr(d1 * ((src[ql + l]! & 0xf) + (src[qh + l]! & u1 ? 16 : 0))) - m1;
      for (let l = 0; l < 32; l++) out[y++] = fr(d2 * ((src[ql + l]! >> 4) + (src[qh + l]! & u2 ? 16 : 0))) - m2;
    }
  }
}

export function dequantizeRowQ6_K(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  for (let b = 0, o = srcOffset, y = outOffset; b < n; b += QK_K, o += 210) {
    const d = readHalf(src, o + 208);
    let ql = o, qh = o + 128, sc = o + 192;
    for (let half = 0; half < QK_K; half += 128, ql += 64, qh += 32, sc += 8, y += 128) {
      for (let is = 0; is < 2; is++) {
        const s0 = fr(d * ((src[sc + is]! << 24) >> 24));
        const s2 = fr(d * ((src[sc + is + 2]! << 24) >> 24));
        const s4 = fr(d * ((src[sc + is + 4]! << 24) >> 24));
        const s6 = fr(d * ((src[sc + is + 6]! << 24) >> 24));
        for (let l = 16 * is; l < 16 * is + 16; l++) {
          const h = src[qh + l]!;
          const lo = src[ql + l]!;
          const hi = src[ql + l + 32]!;
          out[y + l] = s0 * (((lo & 0xf) | ((h & 3) << 4)) - 32);
          out[y + l + 32] = s2 * (((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32);
          out[y + l + 64] = s4 * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32);
          out[y + l + 96] = s6 * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32);
        }
      }
    }
  }
}

/** The f16 scale fields (name, byte offset in the block) checked by kQuantScaleProblem. */
const SCALE_FIELDS: Readonly<Partial<Record<BlockType, readonly [string, number][]>>> = {
  q5_0: [['d', 0]],
  q5_1: [['d', 0], ['m', 2]],
  q4_k: [['d', 0], ['dmin', 2]],
  q5_k: [['d', 0], ['dmin', 2]],
  q6_k: [['d', 208]],
};

/**
 * Finds the first block of `dtype` data with a NaN or infinite f16 scale (-1: none): the
 * TypeScript scan below, or the native addon's (the pool's threads, several times faster).
 */
export type NonFiniteScaleFinder = (dtype: BlockType, data: Uint8Array) => number;

/** The first block whose scale fields' exponent bits are all ones (±Infinity or NaN), or -1. */
export function firstNonFiniteScaleBlock(dtype: BlockType, data: Uint8Array): number {
  const fields = SCALE_FIELDS[dtype];
  if (fields === undefined) return -1;
  const { blockBytes } = BLOCK_LAYOUT[dtype];
  // The high bytes of at most two fields, read with plain indices: this scan covers every block
  // of every K-quant tensor at load (a loop over the field list per block took 0.6 s for a 4B).
  const high0 = fields[0]![1] + 1, high1 = (fields[1]?.[1] ?? fields[0]![1]) + 1;
  for (let o = 0, b = 0; o + blockBytes <= data.length; o += blockBytes, b++) {
    if ((data[o + high0]! & 0x7c) === 0x7c || (data[o + high1]! & 0x7c) === 0x7c) return b;
  }
  return -1;
}

/**
 * The first block of Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K data whose f16 scale (d, Q5_1's m, the
 * K-quants' dmin) is NaN or infinite, as a sentence naming it; null when all are finite (and
 * for other types). Such a scale turns every product it touches into NaN: a file carrying one
 * is corrupt.
 */
export function kQuantScaleProblem(dtype: string, data: Uint8Array, find: NonFiniteScaleFinder = firstNonFiniteScaleBlock): string | null {
  const fields = SCALE_FIELDS[dtype as BlockType];
  if (fields === undefined) return null;
  const b = find(dtype as BlockType, data);
  if (b < 0) return null;
  const { blockBytes, blockSize } = BLOCK_LAYOUT[dtype as BlockType];
  const o = b * blockBytes;
  const [field, at] = fields.find(([, at]) => (data[o + at + 1]! & 0x7c) === 0x7c)!;
  return `${blockSize === QK_K ? 'super-block' : 'block'} ${b} has a ${Number.isNaN(readHalf(data, o + at)) ? 'NaN' : 'infinite'} scale ${field}`;
}

const DEQUANTIZE: Readonly<Record<BlockType, typeof dequantizeRowQ8_0>> = {
  q8_0: dequantizeRowQ8_0,
  q4_0: dequantizeRowQ4_0,
  q5_0: dequantizeRowQ5_0,
  q5_1: dequantizeRowQ5_1,
  q4_k: dequantizeRowQ4_K,
  q5_k: dequantizeRowQ5_K,
  q6_k: dequantizeRowQ6_K,
};

/** Dequantises n values (a whole number of blocks) starting at byte srcOffset. */
export function dequantizeRow(type: BlockType, src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, n: number): void {
  const { blockSize, blockBytes } = BLOCK_LAYOUT[type];
  if (n % blockSize !== 0) throw new GemmaError('INVALID_ARGUMENT', `${type}: ${n} values is not a whole number of ${blockSize}-value blocks`);
  if (srcOffset < 0 || srcOffset + (n / blockSize) * blockBytes > src.length) {
    throw new GemmaError('BAD_FORMAT', `${type}: ${n} values at byte ${srcOffset} run past the ${src.length}-byte buffer`);
  }
  DEQUANTIZE[type](src, srcOffset, out, outOffset, n);
}

// ---------------------------------------------------------------------------------------------
// Reference quantisers (quantize_row_*_ref): what llama-quantize writes when run without an
// importance matrix, and what convert_hf_to_gguf.py writes for --outtype q8_0.

function prepare(type: BlockType, x: ArrayLike<number>, out: Uint8Array | undefined, outOffset: number): [Float32Array, Uint8Array] {
  const { blockSize, blockBytes } = BLOCK_LAYOUT[type];
  if (x.length % blockSize !== 0) {
    throw new GemmaError('INVALID_ARGUMENT', `${type}: ${x.length} values is not a whole number of ${blockSize}-value blocks`);
  }
  const bytes = (x.length / blockSize) * blockBytes;
  const dst = out ?? new Uint8Array(bytes);
  if (outOffset < 0 || outOffset + bytes > dst.length) throw new GemmaError('INVALID_ARGUMENT', `${type}: output buffer too small`);
  return [x instanceof Float32Array ? x : Float32Array.from(x), dst];
}

/** quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d). Returns the written buffer. */
export function quantizeRowQ8_0(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q8_0', values, out, outOffset);
  for (let i = 0, o = outOffset; i < x.length; i += QK8_0, o += 34) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[i + j]!));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    for (let j = 0; j < QK8_0; j++) dst[o + 2 + j] = toInt8(roundf(fr(x[i + j]! * id))) & 0xff;
  }
  return dst;
}

/** quantize_row_q4_0_ref: d = max/-8 (max = the value of largest magnitude), q = min(15, (int)(x/d + 8.5)). */
export function quantizeRowQ4_0(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q4_0', values, out, outOffset);
  for (let i = 0, o = outOffset; i < x.length; i += QK4_0, o += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK4_0; j++) {
      const v = x[i + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(15, toInt8(fr(fr(x[i + j]! * id) + 8.5))) & 0xff; // uint8_t xi0 = MIN(15, (int8_t)(x0 + 8.5f))
      const xi1 = Math.min(15, toInt8(fr(fr(x[i + 16 + j]! * id) + 8.5))) & 0xff;
      dst[o + 2 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
  return dst;
}

/** Writes a q5_0 / q5_1 block's 32 five-bit quants: low nibbles in qs (value j, j+16 high), bit 4 of value j at bit j of qh. */
function packQ5(dst: Uint8Array, qhAt: number, q: Uint8Array): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    dst[qhAt + 4 + j] = (q[j]! & 0x0f) | ((q[j + 16]! & 0x0f) << 4);
    qh |= ((q[j]! & 0x10) >> 4) << j;
    qh |= ((q[j + 16]! & 0x10) >> 4) << (j + 16);
  }
  dst[qhAt] = qh & 0xff;
  dst[qhAt + 1] = (qh >>> 8) & 0xff;
  dst[qhAt + 2] = (qh >>> 16) & 0xff;
  dst[qhAt + 3] = qh >>> 24;
}

/** quantize_row_q5_0_ref: d = max/-16 (max = the value of largest magnitude), q = min(31, (int8)(x/d + 16.5)). */
export function quantizeRowQ5_0(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q5_0', values, out, outOffset);
  const q = new Uint8Array(32);
  for (let i = 0, o = outOffset; i < x.length; i += 32, o += 22) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[i + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -16);
    const id = d !== 0 ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    // uint8_t xi = MIN(31, (int8_t)(x·id + 16.5f))
    for (let j = 0; j < 32; j++) q[j] = Math.min(31, toInt8(fr(fr(x[i + j]! * id) + 16.5))) & 0xff;
    packQ5(dst, o + 2, q);
  }
  return dst;
}

const FLT_MAX = fr(3.4028234663852886e38);

/** quantize_row_q5_1_ref: m = min, d = (max − min)/31, q = (uint8)((x − min)/d + 0.5). */
export function quantizeRowQ5_1(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q5_1', values, out, outOffset);
  const q = new Uint8Array(32);
  for (let i = 0, o = outOffset; i < x.length; i += 32, o += 24) {
    let min = FLT_MAX;
    let max = -FLT_MAX;
    for (let j = 0; j < 32; j++) {
      const v = x[i + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 31);
    const id = d !== 0 ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    writeHalf(dst, o + 2, min);
    for (let j = 0; j < 32; j++) q[j] = toInt8(fr(fr(fr(x[i + j]! - min) * id) + 0.5)) & 0xff;
    packQ5(dst, o + 4, q);
  }
  return dst;
}

const GROUP_MAX_EPS = fr(1e-15);
const TENTH = fr(0.1);

/** make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL): weights x², scale search over ±0.9. */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  const clamp = (l: number): number => Math.max(-nmax, Math.min(nmax - 1, l));
  const sums = (iscale: number, store: boolean): [number, number] => {
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = clamp(nearestIntBits(fr(iscale * xi)));
      if (store) L[lo + i] = l + nmax;
      const w = fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    return [sumlx, suml2];
  };
  let [sumlx, suml2] = sums(fr(-nmax / max), true);
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    const iscale = fr(-fr(nmax + fr(TENTH * is)) / max);
    [sumlx, suml2] = sums(iscale, false);
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + clamp(nearestIntBits(fr(iscale * x[xo + i]!)));
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/** quantize_row_q6_K_ref: 16 sub-blocks of 16 with int8 scales under one f16 super-scale. */
export function quantizeRowQ6_K(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q6_k', values, out, outOffset);
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(QK_K / 16);
  for (let i = 0, o = outOffset; i < x.length; i += QK_K, o += 210) {
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < QK_K / 16; ib++) {
      const scale = makeQxQuants(16, 32, x, i + 16 * ib, L, 16 * ib);
      scales[ib] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      dst.fill(0, o, o + 210);
      continue;
    }
    const iscale = fr(-128 / maxScale);
    writeHalf(dst, o + 208, fr(1 / iscale));
    const dh = readHalf(dst, o + 208);
    for (let ib = 0; ib < QK_K / 16; ib++) dst[o + 192 + ib] = Math.min(127, nearestIntBits(fr(iscale * scales[ib]!))) & 0xff;
    for (let j = 0; j < QK_K / 16; j++) {
      const d = fr(dh * ((dst[o + 192 + j]! << 24) >> 24));
      if (d === 0) continue; // C's !d: a NaN d (from an infinite scale) goes on, as in ggml
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestIntBits(fr(x[i + 16 * j + ii]! / d));
        L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    let ql = o;
    let qh = o + 128;
    for (let j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const a = L[j + l]!, b = L[j + l + 32]!, c = L[j + l + 64]!, e = L[j + l + 96]!;
        dst[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
        dst[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
        dst[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
    }
  }
  return dst;
}

/**
 * make_qkx2_quants(n, nmax, x, weights, L, &the_min, Laux, rmin, rdelta, nstep, use_mad): an
 * asymmetric (scale, min) fit of n values to 0..nmax, searching nstep + 1 candidate scales.
 * Returns [scale, the_min] (the_min = −min ≥ 0).
 */
function makeQkx2Quants(n: number, nmax: number, x: Float32Array, xo: number, weights: Float32Array, L: Uint8Array, lo: number,
                        Laux: Uint8Array, rmin: number, rdelta: number, nstep: number, useMad: boolean): [number, number] {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = weights[0]!;
  let sumX = fr(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i]!;
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    return [0, -min];
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestIntBits(fr(iscale * fr(x[xo + i]! - min)));
    L[lo + i] = Math.max(0, Math.min(nmax, l));
    let diff = fr(fr(fr(scale * L[lo + i]!) + min) - x[xo + i]!);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(weights[i]! * diff));
  }
  if (nstep < 1) return [scale, -min];
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestIntBits(fr(iscale * fr(x[xo + i]! - min)))));
      Laux[i] = l;
      const w = weights[i]!;
      sumL = fr(sumL + fr(w * l));
      sumL2 = fr(sumL2 + fr(fr(w * l) * l));
      sumXL = fr(sumXL + fr(fr(w * l) * x[xo + i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(fr(fr(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        curError = fr(curError + fr(weights[i]! * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/**
 * quantize_row_q4_K_ref: eight 32-value sub-blocks, each an asymmetric 4-bit fit (weights
 * rms + |x|), whose scales and mins are quantized to 6 bits under two f16 super-scales.
 */
export function quantizeRowQ4_K(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q4_k', values, out, outOffset);
  quantizeScaleMinK(x, dst, outOffset, false);
  return dst;
}

/** quantize_row_q5_K_ref: q4_K's scheme with 5-bit quants (0..31), the fit searching 16 scales from −0.5. */
export function quantizeRowQ5_K(values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  const [x, dst] = prepare('q5_k', values, out, outOffset);
  quantizeScaleMinK(x, dst, outOffset, true);
  return dst;
}

/** The common body of quantize_row_q4_K_ref and quantize_row_q5_K_ref (five: the q5_K one). */
function quantizeScaleMinK(x: Float32Array, dst: Uint8Array, outOffset: number, five: boolean): void {
  const nmax = five ? 31 : 15;
  const blockBytes = five ? 176 : 144;
  const L = new Uint8Array(QK_K);
  const Laux = new Uint8Array(32);
  const weights = new Float32Array(32);
  const mins = new Float32Array(8);
  const scales = new Float32Array(8);
  for (let i = 0, o = outOffset; i < x.length; i += QK_K, o += blockBytes) {
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[i + 32 * j + l]! * x[i + 32 * j + l]!));
      const avX = fr(Math.sqrt(fr(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[i + 32 * j + l]!));
      const [scale, min] = five
        ? makeQkx2Quants(32, 31, x, i + 32 * j, weights, L, 32 * j, Laux, -0.5, TENTH, 15, false)
        : makeQkx2Quants(32, 15, x, i + 32 * j, weights, L, 32 * j, Laux, -1, TENTH, 20, false);
      scales[j] = scale;
      mins[j] = min;
      if (scale > maxScale) maxScale = scale;
      if (min > maxMin) maxMin = min;
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
    const packed = o + 4;
    dst.fill(0, packed, packed + 12);
    for (let j = 0; j < 8; j++) {
      // uint8_t ls = nearest_int(...): the int's low byte, then MIN(63, ls).
      const ls = Math.min(63, nearestIntBits(fr(invScale * scales[j]!)) & 0xff);
      const lm = Math.min(63, nearestIntBits(fr(invMin * mins[j]!)) & 0xff);
      if (j < 4) {
        dst[packed + j] = ls;
        dst[packed + j + 4] = lm;
      } else {
        dst[packed + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        dst[packed + j - 4]! |= (ls >> 4) << 6;
        dst[packed + j]! |= (lm >> 4) << 6;
      }
    }
    writeHalf(dst, o, fr(maxScale / 63));
    writeHalf(dst, o + 2, fr(maxMin / 63));
    const dAll = readHalf(dst, o);
    const dminAll = readHalf(dst, o + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(j, dst, packed);
      const d = fr(dAll * sc);
      if (d === 0) continue; // C's !d: a NaN d (from an infinite scale) goes on, as in ggml
      const dm = fr(dminAll * m);
      for (let ii = 0; ii < 32; ii++) {
        const l = nearestIntBits(fr(fr(x[i + 32 * j + ii]! + dm) / d));
        L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
      }
    }
    if (!five) {
      for (let j = 0, q = o + 16; j < QK_K; j += 64, q += 32) {
        for (let l = 0; l < 32; l++) dst[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
      }
      continue;
    }
    // q5_K: the low nibbles as q4_K's, bit 4 of value n + j (n = 64k) at bit 2k of qh[j], of value n + j + 32 at bit 2k + 1.
    const qh = o + 16;
    dst.fill(0, qh, qh + 32);
    for (let n = 0, ql = o + 48, m1 = 1, m2 = 2; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j]!;
        if (l1 > 15) {
          l1 -= 16;
          dst[qh + j]! |= m1;
        }
        let l2 = L[n + j + 32]!;
        if (l2 > 15) {
          l2 -= 16;
          dst[qh + j]! |= m2;
        }
        dst[ql + j] = l1 | (l2 << 4);
      }
    }
  }
}

/** The reference quantiser of a type. */
export function quantizeRow(type: BlockType, values: ArrayLike<number>, out?: Uint8Array, outOffset = 0): Uint8Array {
  switch (type) {
    case 'q8_0': return quantizeRowQ8_0(values, out, outOffset);
    case 'q4_0': return quantizeRowQ4_0(values, out, outOffset);
    case 'q6_k': return quantizeRowQ6_K(values, out, outOffset);
    case 'q5_0': return quantizeRowQ5_0(values, out, outOffset);
    case 'q5_1': return quantizeRowQ5_1(values, out, outOffset);
    case 'q4_k': return quantizeRowQ4_K(values, out, outOffset);
    case 'q5_k': return quantizeRowQ5_K(values, out, outOffset);
  }
}
