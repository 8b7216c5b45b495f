// What the native kernel tests share: the addon (or why it is missing), the two backends, random
// matrices of every weight type and the error measure.
import type { WeightMatrix } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js-backend.js';
import { NativeBackend, loadNativeBinding } from '../src/backend/native-backend.js';
import { f32ToBf16 } from '../src/formats/dtypes.js';
import { f32ToF16, quantizeRow } from '../src/formats/quant.js';
import type { Rng } from '../src/generate/rng.js';

export const binding: ReturnType<typeof loadNativeBinding> = loadNativeBinding();
export const skip = binding instanceof Error ? `native addon not built: ${binding.message.split('\n')[0]}` : false;
export const js = new JsBackend();

export function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng.nextFloat(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat()) * scale;
  }
  return out;
}

export function makeMatrix(dtype: WeightMatrix['dtype'], rows: number, cols: number, values: Float32Array): WeightMatrix {
  switch (dtype) {
    case 'f32':
      return { dtype, rows, cols, data: new Uint8Array(values.buffer.slice(0)) };
    case 'bf16':
    case 'f16': {
      const u16 = Uint16Array.from(values, (v) => (dtype === 'bf16' ? f32ToBf16(v) : f32ToF16(v)));
      return { dtype, rows, cols, data: new Uint8Array(u16.buffer) };
    }
    case 'q8_0':
    case 'q4_0':
    case 'q5_0':
    case 'q5_1':
    case 'q4_k':
    case 'q5_k':
    case 'q6_k': {
      const parts: Uint8Array[] = [];
      for (let r = 0; r < rows; r++) {
        const row = values.subarray(r * cols, (r + 1) * cols);
        parts.push(quantizeRow(dtype, row));
      }
      const data = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        data.set(p, o);
        o += p.length;
      }
      return { dtype, rows, cols, data };
    }
    default:
      throw new Error(dtype);
  }
}

export function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-30);
}

export const native = skip ? undefined : new NativeBackend(binding as Exclude<typeof binding, Error>, 2);

export const SHAPES: [number, number, number][] = [[2, 8, 96], [1, 13, 64], [5, 7, 96], [6, 33, 160], [64, 1, 32], [3, 17, 2560 + 32]];
