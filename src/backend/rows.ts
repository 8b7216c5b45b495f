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
    case 'q5_0':
    case 'q5_1':
    case 'q4_k':
    case 'q5_k':
    case 'q6_k':
      // Rows are whole blocks back to back, so row r starts at r · rowBytes.
      dequantizeRow(w.dtype, data, r * rowBytes(w.dtype, cols), out, 0, cols);
      return;
  }
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
