// Activations quantized to Q8_K super-blocks for Q4_K / Q5_K / Q6_K weights, as llama.cpp does
// (quantize_row_q8_K_ref: a float scale per 256 values, int8 quants, and the sum of every 16
// quants): each super-block's dot product is then exact integer arithmetic under one or two
// float scales. native/kernels-kquant.c computes the same integers in the same order, so both
// backends agree on K-quant weights to float64 rounding of the final sum.
import { HALF_TABLE, nearestIntBits } from '../formats/quant.js';

export const QK_K = 256;
/** Bytes of one block_q8_K: float d, int8 qs[256], int16 bsums[16]. */
export const Q8K_BLOCK_BYTES = 4 + QK_K + 2 * 16;

export interface Q8KRows {
  qs: Int8Array; // [rows, cols]
  d: Float32Array; // [rows, cols / 256]: 1 / iscale, a plain float (not f16-rounded)
  bsums: Int32Array; // [rows, cols / 16]: Σ of each 16 quants
}

const fr = Math.fround;

/** Quantizes `rows` rows of `cols` values (cols % 256 == 0) with quantize_row_q8_K_ref's arithmetic. */
export function quantizeQ8K(x: Float32Array, rows: number, cols: number, into?: Q8KRows): Q8KRows {
  const blocks = (rows * cols) / QK_K;
  const out = into && into.qs.length >= rows * cols
    ? into
    : { qs: new Int8Array(rows * cols), d: new Float32Array(blocks), bsums: new Int32Array(blocks * 16) };
  for (let b = 0; b < blocks; b++) {
    const o = b * QK_K;
    let max = 0;
    let amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[o + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[o + j]!;
      }
    }
    if (amax === 0) {
      out.d[b] = 0;
      out.qs.fill(0, o, o + QK_K);
      out.bsums.fill(0, b * 16, b * 16 + 16);
      continue;
    }
    const iscale = fr(-127 / max);
    // int8_t = MIN(127, v): the low byte, which is also what the out-of-range v of a block of
    // subnormals (iscale = ±Infinity) leaves: 0.
    for (let j = 0; j < QK_K; j++) out.qs[o + j] = Math.min(127, nearestIntBits(fr(iscale * x[o + j]!)));
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) sum += out.qs[o + 16 * g + i]!;
      out.bsums[b * 16 + g] = sum;
    }
    out.d[b] = fr(1 / iscale);
  }
  return out;
}

/** One Q4_K, Q5_K or Q6_K super-block's quants, unpacked in value order (q4: 0..15, q5: 0..31, q6: −32..31). */
const unpacked = new Int8Array(QK_K);

function unpackQ4K(w: Uint8Array, o: number): void {
  for (let j = 0, q = o + 16; j < QK_K; j += 64, q += 32) {
    for (let l = 0; l < 32; l++) {
      unpacked[j + l] = w[q + l]! & 0xf;
      unpacked[j + l + 32] = w[q + l]! >> 4;
    }
  }
}

function unpackQ5K(w: Uint8Array, o: number): void {
  for (let j = 0, q = o + 48, bit = 0; j < QK_K; j += 64, q += 32, bit += 2) {
    for (let l = 0; l < 32; l++) {
      const h = w[o + 16 + l]!;
      unpacked[j + l] = (w[q + l]! & 0xf) | (((h >> bit) & 1) << 4);
      unpacked[j + l + 32] = (w[q + l]! >> 4) | (((h >> (bit + 1)) & 1) << 4);
    }
  }
}

function unpackQ6K(w: Uint8Array, o: number): void {
  for (let half = 0; half < 2; half++) {
    const ql = o + 64 * half, qh = o + 128 + 32 * half, y = 128 * half;
    for (let l = 0; l < 32; l++) {
      const h = w[qh + l]!;
      unpacked[y + l] = ((w[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
      unpacked[y + l + 32] = ((w[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
      unpacked[y + l + 64] = ((w[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
      unpacked[y + l + 96] = ((w[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
    }
  }
}

/** The 6-bit scale (k = 0) or min (k = 1) of Q4_K sub-block j from the 12 packed bytes at s (get_scale_min_k4). */
function scaleMin(w: Uint8Array, s: number, j: number, k: 0 | 1): number {
  if (j < 4) return w[s + j + 4 * k]! & 63;
  return k === 0 ? (w[s + j + 4]! & 0xf) | ((w[s + j - 4]! >> 6) << 4) : (w[s + j + 4]! >> 4) | ((w[s + j]! >> 6) << 4);
}

/**
 * Σ over super-blocks of one weight row (Q4_K, Q5_K or Q6_K) against activation row xRow:
 *   Q4_K, Q5_K: (d·dx)·Σ_j sc_j Σ q·q8 − (dmin·dx)·Σ_j m_j (bsum_2j + bsum_2j+1)
 *   Q6_K: (d·dx)·Σ_j sc_j Σ (q − 32)·q8
 * with exact integer sums and the float products d·dx rounded to float32, accumulated in float64.
 */
export function dotKQuantRow(w: Uint8Array, rowOffset: number, dtype: 'q4_k' | 'q5_k' | 'q6_k', x: Q8KRows, xRow: number, cols: number): number {
  const nb = cols / QK_K;
  let s = 0;
  for (let b = 0; b < nb; b++) {
    const xb = xRow * nb + b;
    const dx = x.d[xb]!;
    const q8 = xb * QK_K;
    if (dtype === 'q4_k' || dtype === 'q5_k') {
      const o = rowOffset + b * (dtype === 'q4_k' ? 144 : 176);
      if (dtype === 'q4_k') unpackQ4K(w, o);
      else unpackQ5K(w, o);
      let isum = 0;
      let msum = 0;
      for (let j = 0; j < 8; j++) {
        let sub = 0;
        for (let l = 0; l < 32; l++) sub += unpacked[32 * j + l]! * x.qs[q8 + 32 * j + l]!;
        isum += scaleMin(w, o + 4, j, 0) * sub;
        msum += scaleMin(w, o + 4, j, 1) * (x.bsums[xb * 16 + 2 * j]! + x.bsums[xb * 16 + 2 * j + 1]!);
      }
      const d = HALF_TABLE[w[o]! | (w[o + 1]! << 8)]!;
      const dmin = HALF_TABLE[w[o + 2]! | (w[o + 3]! << 8)]!;
      s += fr(d * dx) * isum - fr(dmin * dx) * msum;
    } else {
      const o = rowOffset + b * 210;
      unpackQ6K(w, o);
      let isum = 0;
      for (let j = 0; j < 16; j++) {
        let sub = 0;
        for (let l = 0; l < 16; l++) sub += unpacked[16 * j + l]! * x.qs[q8 + 16 * j + l]!;
        isum += ((w[o + 192 + j]! << 24) >> 24) * sub;
      }
      const d = HALF_TABLE[w[o + 208]! | (w[o + 209]! << 8)]!;
      s += fr(d * dx) * isum;
    }
  }
  return s;
}
