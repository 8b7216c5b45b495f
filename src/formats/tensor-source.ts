// The boundary between file formats and the model: named raw tensors, exactly as stored.
// Knows nothing about Gemma; safetensors and GGUF readers both implement TensorSource.

/**
 * Storage types a tensor may have on disk: plain floats (safetensors and GGUF), and the ggml
 * block-quantised types of GGUF files (layouts in quant.ts). A block type's rows are whole blocks:
 * 32 values for q8_0 / q4_0 / q5_0 / q5_1, 256 for the k-quants q4_k / q5_k / q6_k.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k';

export interface RawTensor {
  readonly name: string;
  readonly dtype: DType;
  /** Row-major shape as stored (PyTorch order for safetensors). */
  readonly shape: readonly number[];
  /**
   * The stored little-endian bytes, no copy where the platform allows. The view's byteOffset is
   * aligned to the element size, so `new Uint16Array(data.buffer, data.byteOffset, n)` works.
   * Block types: rows of whole blocks, back to back (see rowBytes in dtypes.ts).
   */
  readonly data: Uint8Array;
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly sizeBytes: number;
  /** The file that holds it, for error messages. */
  readonly file: string;
}

export interface TensorSource {
  /** Every tensor name, in file order. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Reads one tensor (per-tensor reads: a checkpoint is never loaded twice into memory). */
  read(name: string): RawTensor;
  /** Releases file handles. */
  close(): void;
}
