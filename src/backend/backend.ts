// The op-shaped interface between the model and its kernels. The backend never sees a layer,
// a head or a token: only matrices stored exactly as on disk and float32 activations.
import type { DType } from '../formats/tensor-source.js';

/** A weight matrix exactly as stored: row-major [rows, cols], rows = output features. */
export interface WeightMatrix {
  readonly dtype: DType;
  readonly rows: number;
  readonly cols: number;
  /** Raw little-endian elements; never widened to f32 up front. */
  readonly data: Uint8Array;
}

export interface Backend {
  readonly name: 'js' | 'native';
  /**
   * out[n, r] = Σ_c w[r, c] · x[n, c] for n < batch and r in [rowStart, rowEnd).
   * `out` has row stride `outStride` (defaults to w.rows); x has row stride w.cols.
   * The row range lets callers compute only part of a huge matrix (e.g. the output head).
   */
  matMul(out: Float32Array, w: WeightMatrix, x: Float32Array, batch: number, rows?: RowRange): void;
}

export interface RowRange {
  rowStart: number;
  rowEnd: number;
  outStride: number;
}
