// Storage types → float32. Widening bf16 and f16 is exact (all their values are float32s);
// block-quantised types are dequantised exactly as ggml does (quant.ts).
import { GemmaError } from '../errors.js';
import { BLOCK_LAYOUT, dequantizeRow, isBlockType } from './quant.js';
import type { DType, RawTensor } from './tensor-source.js';

export { f32ToF16 } from './quant.js';

/**
 * Bytes per element of each storage type. For block types this is the average (block bytes /
 * block values, e.g. 34/32 for q8_0): exact for any whole number of blocks. Use rowBytes /
 * tensorBytes, which also check block alignment, for sizes of block-typed data.
 */
export const ELEMENT_SIZE: Readonly<Record<DType, number>> = {
  f32: 4,
  f16: 2,
  bf16: 2,
  q8_0: BLOCK_LAYOUT.q8_0.blockBytes / BLOCK_LAYOUT.q8_0.blockSize,
  q4_0: BLOCK_LAYOUT.q4_0.blockBytes / BLOCK_LAYOUT.q4_0.blockSize,
  q5_0: BLOCK_LAYOUT.q5_0.blockBytes / BLOCK_LAYOUT.q5_0.blockSize,
  q5_1: BLOCK_LAYOUT.q5_1.blockBytes / BLOCK_LAYOUT.q5_1.blockSize,
  q4_k: BLOCK_LAYOUT.q4_k.blockBytes / BLOCK_LAYOUT.q4_k.blockSize,
  q5_k: BLOCK_LAYOUT.q5_k.blockBytes / BLOCK_LAYOUT.q5_k.blockSize,
  q6_k: BLOCK_LAYOUT.q6_k.blockBytes / BLOCK_LAYOUT.q6_k.blockSize,
};

export function elementSize(dtype: DType): number {
  return ELEMENT_SIZE[dtype];
}

/** Values per block: 1 for plain types, 32 (q8_0, q4_0, q5_0, q5_1) or 256 (q4_k, q5_k, q6_k). */
export function blockSize(dtype: DType): number {
  return isBlockType(dtype) ? BLOCK_LAYOUT[dtype].blockSize : 1;
}

/** Bytes of one row of `cols` values; throws BAD_FORMAT if a block type's row is not whole blocks. */
export function rowBytes(dtype: DType, cols: number): number {
  if (!isBlockType(dtype)) return cols * ELEMENT_SIZE[dtype];
  const { blockSize: bs, blockBytes } = BLOCK_LAYOUT[dtype];
  if (cols % bs !== 0) throw new GemmaError('BAD_FORMAT', `a ${dtype} row of ${cols} values is not a whole number of ${bs}-value blocks`);
  return (cols / bs) * blockBytes;
}

/** Bytes of a row-major tensor: rows = product of all but the last dimension. */
export function tensorBytes(dtype: DType, shape: readonly number[]): number {
  if (shape.length === 0) return rowBytes(dtype, 1);
  const cols = shape[shape.length - 1]!;
  let rows = 1;
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i]!;
  return rows * rowBytes(dtype, cols);
}

// One scratch word shared by the scalar conversions (reinterpreting bits without DataView).
const scratchU32 = new Uint32Array(1);
const scratchF32 = new Float32Array(scratchU32.buffer);

/** bfloat16 bits → float32 value: bf16 is the upper half of a float32, so this is a shift. */
export function bf16ToF32(u16: number): number {
  scratchU32[0] = (u16 & 0xffff) << 16;
  return scratchF32[0]!;
}

/** IEEE 754 binary16 bits → value (subnormals, ±0, ±Infinity and NaN included). */
export function f16ToF32(u16: number): number {
  const sign = u16 & 0x8000 ? -1 : 1;
  const exp = (u16 >> 10) & 0x1f;
  const mant = u16 & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal: mant · 2^-14 / 2^10
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float32 value → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). For tests and writers. */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

// 65536-entry table for bulk f16 conversion (256 KiB, built on first use).
let f16Table: Float32Array | null = null;
function getF16Table(): Float32Array {
  if (f16Table === null) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/**
 * The tensor's values as float32. For an f32 tensor whose data is 4-byte aligned this is a view
 * of `raw.data` (no copy: writing to it writes the tensor); otherwise a fresh array.
 */
export function toFloat32(raw: RawTensor): Float32Array {
  const count = elementCount(raw);
  let expected: number;
  try {
    expected = tensorBytes(raw.dtype, raw.shape);
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `tensor ${raw.name}: ${(e as Error).message}`, { cause: e });
  }
  if (raw.data.byteLength !== expected) {
    throw new GemmaError(
      'BAD_FORMAT',
      `tensor ${raw.name}: ${raw.data.byteLength} bytes of data for shape [${raw.shape.join(', ')}] ${raw.dtype} (expected ${expected})`,
    );
  }
  if (isBlockType(raw.dtype)) {
    const out = new Float32Array(count);
    dequantizeRow(raw.dtype, raw.data, 0, out, 0, count);
    return out;
  }
  const { buffer, byteOffset } = raw.data;
  switch (raw.dtype) {
    case 'f32':
      if (byteOffset % 4 === 0) return new Float32Array(buffer, byteOffset, count);
      return new Float32Array(copyAligned(raw.data).buffer, 0, count);
    case 'bf16': {
      const src = halfView(raw.data, count);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case 'f16': {
      const src = halfView(raw.data, count);
      const table = getF16Table();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[src[i]!]!;
      return out;
    }
    default:
      throw new GemmaError('BAD_FORMAT', `tensor ${raw.name}: unsupported dtype ${String(raw.dtype)}`);
  }
}

/** Product of the shape (1 for a scalar). */
export function elementCount(t: { readonly shape: readonly number[] }): number {
  let n = 1;
  for (const d of t.shape) n *= d;
  return n;
}

function halfView(data: Uint8Array, count: number): Uint16Array {
  if (data.byteOffset % 2 === 0) return new Uint16Array(data.buffer, data.byteOffset, count);
  return new Uint16Array(copyAligned(data).buffer, 0, count);
}

function copyAligned(data: Uint8Array): Uint8Array {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy;
}
