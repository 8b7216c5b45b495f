// Rounding to and widening from the KV cache's storage types (KvType in backend.ts), in
// TypeScript: the twins of the conversions in native/attention.c. f16 rounds as f32ToF16
// (IEEE round-to-nearest-even, overflow to ±Infinity), bf16 as f32ToBf16 (round-to-nearest-even).
import { f32ToBf16 } from '../formats/dtypes.js';
import { f32ToF16, HALF_TABLE } from '../formats/quant.js';
import type { KvStore, KvType } from './backend.js';

const bitsU32 = new Uint32Array(1);
const bitsF32 = new Float32Array(bitsU32.buffer);

/** The 16-bit pattern `value` is stored as in a cache of `type` ('f16' or 'bf16'). */
export function toKvBits(value: number, type: KvType): number {
  return type === 'bf16' ? f32ToBf16(value) : f32ToF16(value);
}

/** The float32 value that 16-bit pattern `bits` of `type` stands for. */
export function fromKvBits(bits: number, type: KvType): number {
  if (type === 'f16') return HALF_TABLE[bits]!;
  bitsU32[0] = bits << 16;
  return bitsF32[0]!;
}

/** x[i] = x[i] stored as `type` and read back, for i < n ('f32': unchanged). */
export function roundToKvType(x: Float32Array, n: number, type: KvType): void {
  if (type === 'f32') return;
  for (let i = 0; i < n; i++) x[i] = fromKvBits(toKvBits(x[i]!, type), type);
}

/** The cache's type, checked against the array that holds it. */
export function storeType(store: KvStore): KvType {
  const type = store.type ?? 'f32';
  const wide = type === 'f32';
  if (wide !== store.k instanceof Float32Array || wide !== store.v instanceof Float32Array) {
    throw new Error(`a '${type}' KV cache needs ${wide ? 'Float32Array' : 'Uint16Array'} keys and values`);
  }
  return type;
}

/** into[d] = the float32 value of src[from + d] for d < n, src holding `type`. */
export function widenKvRow(into: Float32Array, src: Float32Array | Uint16Array, from: number, n: number, type: KvType): void {
  if (type === 'f32') {
    for (let d = 0; d < n; d++) into[d] = src[from + d]!;
  } else if (type === 'f16') {
    for (let d = 0; d < n; d++) into[d] = HALF_TABLE[src[from + d]!]!;
  } else {
    for (let d = 0; d < n; d++) {
      bitsU32[0] = src[from + d]! << 16;
      into[d] = bitsF32[0]!;
    }
  }
}
