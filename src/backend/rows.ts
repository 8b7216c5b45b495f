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
      if (w.layout === 'x4') decodeX4Row(w, r, out);
      else dequantizeRow(w.dtype, data, r * rowBytes(w.dtype, cols), out, 0, cols);
      return;
    case 'q4_k':
    case 'q6_k':
      // Rows are whole blocks back to back, so row r starts at r · rowBytes.
      dequantizeRow(w.dtype, data, r * rowBytes(w.dtype, cols), out, 0, cols);
      return;
  }
}

/**
 * Row r of a Q4_0/Q8_0 matrix in the native kernels' interleaved x4 layout (native/repack.c):
 * group r/4, block b holds f16 d[4] then the four rows' quants.
 */
function decodeX4Row(w: WeightMatrix, r: number, out: Float32Array): void {
  const nb = w.cols / 32;
  const q4 = w.dtype === 'q4_0';
  const qbytes = q4 ? 16 : 32;
  const groupBlock = 8 + 4 * qbytes;
  const i = r & 3;
  const data = w.data;
  for (let b = 0; b < nb; b++) {
    const o = ((r >> 2) * nb + b) * groupBlock;
    const d = HALF_TABLE[data[o + 2 * i]! | (data[o + 2 * i + 1]! << 8)]!;
    const q = o + 8 + i * qbytes;
    const y = b * 32;
    if (q4) {
      for (let j = 0; j < 16; j++) {
        out[y + j] = ((data[q + j]! & 0x0f) - 8) * d;
        out[y + j + 16] = ((data[q + j]! >> 4) - 8) * d;
      }
    } else {
      for (let j = 0; j < 32; j++) out[y + j] = ((data[q + j]! << 24) >> 24) * d;
    }
  }
}
