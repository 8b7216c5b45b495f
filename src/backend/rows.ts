// Widening one stored matrix row to float32: used by the JS kernels and by embedding lookups.
import { rowBytes } from '../formats/dtypes.js';
import { HALF_TABLE, dequantizeRow } from '../formats/quant.js';
import type { WeightMatrix } from './backend.js';

/** Writes row r of w (any supported dtype) into out[0..cols) as float32. */
export function decodeRow(w: WeightMatrix, r: number, out: Float32Array): void {
  const cols = w.cols;
  const data = w.data;
  switch (w.dtype) {
    case 'f32':
      out.set(new Float32Array(data.buffer, data.byteOffset + r * cols * 4, cols));
      return;
    case 'bf16': {
      const src = new Uint16Array(data.buffer, data.byteOffset + r * cols * 2, cols);
      const dst = new Uint32Array(out.buffer, out.byteOffset, cols);
      for (let c = 0; c < cols; c++) dst[c] = src[c]! << 16;
      return;
    }
    case 'f16': {
      const src = new Uint16Array(data.buffer, data.byteOffset + r * cols * 2, cols);
      for (let c = 0; c < cols; c++) out[c] = HALF_TABLE[src[c]!]!;
      return;
    }
    case 'q8_0':
    case 'q4_0':
      if (w.layout === 'x16') decodeX16Row(w, r, out);
      else dequantizeRow(w.dtype, data, r * rowBytes(w.dtype, cols), out, 0, cols);
      return;
    case 'q4_k':
    case 'q5_k':
    case 'q6_k':
      if (w.layout === 'x16') dequantizeRow(w.dtype, kquantX16RowBytes(w, r), 0, out, 0, cols);
      else dequantizeRow(w.dtype, data, r * rowBytes(w.dtype, cols), out, 0, cols);
      return;
    case 'q5_0':
    case 'q5_1':
      // Rows are whole blocks back to back, so row r starts at r · rowBytes.
      dequantizeRow(w.dtype, data, r * rowBytes(w.dtype, cols), out, 0, cols);
      return;
  }
}

/**
 * The fields of a stored Q4_K / Q5_K / Q6_K super-block in the order the K-quant x16 layout keeps them
 * (native/repack.c): offset and length in the super-block, and bytes per lane.
 */
const KQUANT_X16_FIELDS: Readonly<Record<'q4_k' | 'q5_k' | 'q6_k', readonly (readonly [number, number, number])[]>> = {
  q4_k: [[0, 2, 2], [2, 2, 2], [4, 12, 4], [16, 128, 4]],
  q5_k: [[0, 2, 2], [2, 2, 2], [4, 12, 4], [16, 32, 4], [48, 128, 4]],
  // Per value half h and c < 8, in the order the kernels read them: ql bytes 64h + 4c, 64h + 32 + 4c, qh bytes 128 + 32h + 4c.
  q6_k: [[208, 2, 2], [192, 16, 4], ...[0, 1].flatMap((h) => [0, 1, 2, 3, 4, 5, 6, 7].flatMap((c) =>
    [[64 * h + 4 * c, 4, 4], [64 * h + 32 + 4 * c, 4, 4], [128 + 32 * h + 4 * c, 4, 4]] as const))],
};

/**
 * Row r of a Q4_K / Q5_K / Q6_K matrix in the K-quant x16 layout, back in the row layout's bytes: each
 * field of group super-block b is chunks of sixteen lanes, lane i holding row i's next bytes.
 */
export function kquantX16RowBytes(w: WeightMatrix, r: number): Uint8Array {
  const dtype = w.dtype as 'q4_k' | 'q5_k' | 'q6_k';
  const block = rowBytes(dtype, 256);
  const nb = w.cols / 256;
  const out = new Uint8Array(nb * block);
  const i = r & 15;
  for (let b = 0; b < nb; b++) {
    let o = ((r >> 4) * nb + b) * 16 * block;
    for (const [offset, bytes, lane] of KQUANT_X16_FIELDS[dtype]) {
      for (let c = 0; c < bytes / lane; c++) {
        const from = o + c * 16 * lane + i * lane;
        out.set(w.data.subarray(from, from + lane), b * block + offset + c * lane);
      }
      o += 16 * bytes;
    }
  }
  return out;
}

/**
 * Row r of a Q4_0/Q8_0 matrix in the native kernels' interleaved x16 layout (native/repack.c):
 * group r/16, block b holds f16 d[16], then 64-byte chunks whose 4-byte lane i is row i's
 * next four quant bytes.
 */
function decodeX16Row(w: WeightMatrix, r: number, out: Float32Array): void {
  const nb = w.cols / 32;
  const q4 = w.dtype === 'q4_0';
  const groupBlock = 32 + 16 * (q4 ? 16 : 32);
  const i = r & 15;
  const data = w.data;
  for (let b = 0; b < nb; b++) {
    const o = ((r >> 4) * nb + b) * groupBlock;
    const d = HALF_TABLE[data[o + 2 * i]! | (data[o + 2 * i + 1]! << 8)]!;
    const y = b * 32;
    for (let c = 0; c < (q4 ? 4 : 8); c++) {
      for (let e = 0; e < 4; e++) {
        const byte = data[o + 32 + 64 * c + 4 * i + e]!;
        if (q4) {
          out[y + 4 * c + e] = ((byte & 0x0f) - 8) * d;
          out[y + 16 + 4 * c + e] = ((byte >> 4) - 8) * d;
        } else {
          out[y + 4 * c + e] = ((byte << 24) >> 24) * d;
        }
      }
    }
  }
}
