// Activations quantized to Q8 blocks for Q8_0/Q4_0/Q5_0 weights, as llama.cpp does
// (quantize_row_q8_0_ref), and for Q5_1 weights with Q8_1's extra s = d·Σqs
// (quantize_row_q8_1_ref): integer block dot products, then one float scale per block. The
// native kernels do the same, so both backends give the same results on quantized weights.
import { f16ToF32 } from '../formats/dtypes.js';
import { f32ToF16 } from '../formats/quant.js';

export interface Q8Rows {
  qs: Int8Array; // [rows, cols]
  d: Float32Array; // [rows, cols / 32], the f16-rounded scale
  sum: Int32Array; // [rows, cols / 32], Σ qs of each block
  s: Float32Array; // [rows, cols / 32], Q8_1's f16-rounded Σqs · d (d before its f16 rounding)
}

/** Quantizes `rows` rows of `cols` values (cols % 32 == 0). */
export function quantizeQ8(x: Float32Array, rows: number, cols: number, into?: Q8Rows): Q8Rows {
  const nb = cols / 32;
  const out = into && into.qs.length >= rows * cols
    ? into
    : { qs: new Int8Array(rows * cols), d: new Float32Array(rows * nb), sum: new Int32Array(rows * nb), s: new Float32Array(rows * nb) };
  for (let b = 0; b < rows * nb; b++) {
    const o = b * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[o + j]! * id);
      const q = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5); // C roundf: half away from zero
      out.qs[o + j] = q;
      sum += out.qs[o + j]!; // the stored int8 (a NaN or infinite q of a block of subnormals is 0), as quantize_row_q8_1_ref sums
    }
    out.d[b] = f16ToF32(f32ToF16(d));
    out.sum[b] = sum;
    out.s[b] = f16ToF32(f32ToF16(Math.fround(sum * d)));
  }
  return out;
}

/**
 * Σ_blocks (d_w · d_x) · Σ_j w_j · x_j for one weight row (Q8_0, Q4_0 or Q5_0 blocks) and one
 * activation row; Q5_1 (unsigned quants, min m): Σ_blocks (d_w · d_x) · Σ_j q_j · x_j + m · s_x.
 */
export function dotQuantRow(w: Uint8Array, rowOffset: number, dtype: 'q8_0' | 'q4_0' | 'q5_0' | 'q5_1', x: Q8Rows, xRow: number, cols: number): number {
  const nb = cols / 32;
  let s = 0;
  const xo = xRow * cols;
  const qs = x.qs;
  if (dtype === 'q8_0') {
    for (let b = 0; b < nb; b++) {
      const o = rowOffset + b * 34;
      const dw = f16ToF32(w[o]! | (w[o + 1]! << 8));
      let isum = 0;
      const xq = xo + b * 32;
      for (let j = 0; j < 32; j++) isum += ((w[o + 2 + j]! << 24) >> 24) * qs[xq + j]!;
      s += Math.fround(dw * x.d[xRow * nb + b]!) * isum;
    }
  } else if (dtype === 'q5_0' || dtype === 'q5_1') {
    const q51 = dtype === 'q5_1';
    const bytes = q51 ? 24 : 22;
    const qhAt = q51 ? 4 : 2;
    const offset = q51 ? 0 : 16;
    for (let b = 0; b < nb; b++) {
      const o = rowOffset + b * bytes;
      const dw = f16ToF32(w[o]! | (w[o + 1]! << 8));
      const qh = (w[o + qhAt]! | (w[o + qhAt + 1]! << 8) | (w[o + qhAt + 2]! << 16) | (w[o + qhAt + 3]! << 24)) >>> 0;
      let isum = 0;
      const xq = xo + b * 32;
      for (let j = 0; j < 16; j++) {
        const byte = w[o + qhAt + 4 + j]!;
        const lo = (byte & 0x0f) | (((qh >>> j) & 1) << 4);
        const hi = (byte >> 4) | (((qh >>> (j + 16)) & 1) << 4);
        isum += (lo - offset) * qs[xq + j]! + (hi - offset) * qs[xq + j + 16]!;
      }
      s += Math.fround(dw * x.d[xRow * nb + b]!) * isum;
      if (q51) s += Math.fround(f16ToF32(w[o + 2]! | (w[o + 3]! << 8)) * x.s[xRow * nb + b]!);
    }
  } else {
    for (let b = 0; b < nb; b++) {
      const o = rowOffset + b * 18;
      const dw = f16ToF32(w[o]! | (w[o + 1]! << 8));
      let isum = 0;
      const xq = xo + b * 32;
      for (let j = 0; j < 16; j++) {
        const byte = w[o + 2 + j]!;
        isum += ((byte & 0x0f) - 8) * qs[xq + j]! + ((byte >> 4) - 8) * qs[xq + j + 16]!;
      }
      s += Math.fround(dw * x.d[xRow * nb + b]!) * isum;
    }
  }
  return s;
}
