// Pure TypeScript kernels: the reference every other backend is compared against, and the
// fallback when the native addon is unavailable. Accumulates in float64 (JavaScript numbers).
import type { AttentionShape, Backend, FullAttentionShape, ImageSpans, KvStore, KvType, RowRange, WeightMatrix } from './backend.js';
import { attendAll, attendChunk, writeKv } from './js-attention.js';
import { roundToKvType } from './kv-types.js';
import { dotQuantRow, quantizeQ8, type Q8Rows } from './q8-activations.js';
import { dotKQuantRow, quantizeQ8K, type Q8KRows } from './q8k-activations.js';
import { decodeRow } from './rows.js';
import { BLOCK_LAYOUT } from '../formats/quant.js';
import { geluTanh, geluTanhMul, rmsNorm, rmsNormAdd } from './js-ops.js';

export class JsBackend implements Backend {
  readonly name: 'js' | 'native' = 'js';
  // One decoded weight row, reused: bf16/f16 rows are widened here, never the whole matrix.
  private rowF32 = new Float32Array(0);
  private q8: Q8Rows | undefined;
  private q8k: Q8KRows | undefined;

  matMul(out: Float32Array, w: WeightMatrix, x: Float32Array, batch: number, range?: RowRange): void {
    if (w.layout === 'x16') throw new Error('internal: an x16-layout matrix reached the TypeScript kernels');
    const { cols } = w;
    const rowStart = range?.rowStart ?? 0;
    const rowEnd = range?.rowEnd ?? w.rows;
    const outStride = range?.outStride ?? w.rows;
    if (w.dtype === 'q8_0' || w.dtype === 'q4_0' || w.dtype === 'q5_0' || w.dtype === 'q5_1') {
      const q8 = (this.q8 = quantizeQ8(x, batch, cols, this.q8));
      const rowBytes = (cols / 32) * BLOCK_LAYOUT[w.dtype].blockBytes;
      for (let r = rowStart; r < rowEnd; r++) {
        for (let n = 0; n < batch; n++) {
          out[n * outStride + r - rowStart] = dotQuantRow(w.data, r * rowBytes, w.dtype, q8, n, cols);
        }
      }
      return;
    }
    if (w.dtype === 'q4_k' || w.dtype === 'q5_k' || w.dtype === 'q6_k') {
      // K-quants multiply activations quantized to Q8_K super-blocks (llama.cpp's scheme).
      const q8k = (this.q8k = quantizeQ8K(x, batch, cols, this.q8k));
      const rowBytes = (cols / 256) * BLOCK_LAYOUT[w.dtype].blockBytes;
      for (let r = rowStart; r < rowEnd; r++) {
        for (let n = 0; n < batch; n++) {
          out[n * outStride + r - rowStart] = dotKQuantRow(w.data, r * rowBytes, w.dtype, q8k, n, cols);
        }
      }
      return;
    }
    if (this.rowF32.length < cols) this.rowF32 = new Float32Array(cols);
    const row = this.rowF32;
    for (let r = rowStart; r < rowEnd; r++) {
      decodeRow(w, r, row);
      for (let n = 0; n < batch; n++) {
        const xo = n * cols;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let c = 0;
        for (; c + 3 < cols; c += 4) {
          s0 += row[c]! * x[xo + c]!;
          s1 += row[c + 1]! * x[xo + c + 1]!;
          s2 += row[c + 2]! * x[xo + c + 2]!;
          s3 += row[c + 3]! * x[xo + c + 3]!;
        }
        for (; c < cols; c++) s0 += row[c]! * x[xo + c]!;
        out[n * outStride + r - rowStart] = s0 + s1 + s2 + s3;
      }
    }
  }

  matMulShared(outs: readonly Float32Array[], ws: readonly WeightMatrix[], x: Float32Array, batch: number): void {
    for (let i = 0; i < ws.length; i++) this.matMul(outs[i]!, ws[i]!, x, batch);
  }

  geluTanh(x: Float32Array, n: number): void {
    geluTanh(x, n);
  }

  geluTanhMul(gate: Float32Array, up: Float32Array, n: number): void {
    geluTanhMul(gate, up, n);
  }

  rmsNorm(out: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void {
    rmsNorm(out, x, scale, eps, rows, n);
  }

  rmsNormAdd(residual: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void {
    rmsNormAdd(residual, x, scale, eps, rows, n);
  }

  writeKv(cache: KvStore, kChunk: Float32Array, vChunk: Float32Array, start: number, T: number, numKvHeads: number, headDim: number): void {
    writeKv(cache, kChunk, vChunk, start, T, numKvHeads, headDim);
  }

  roundToKvType(x: Float32Array, n: number, type: KvType): void {
    roundToKvType(x, n, type);
  }

  attention(out: Float32Array, q: Float32Array, kChunk: Float32Array, vChunk: Float32Array, cache: KvStore,
            start: number, T: number, shape: AttentionShape, spans?: ImageSpans): void {
    attendChunk(out, q, kChunk, vChunk, cache, start, T, shape, spans);
  }

  fullAttention(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, tokens: number, shape: FullAttentionShape): void {
    attendAll(out, q, k, v, tokens, shape);
  }
}
