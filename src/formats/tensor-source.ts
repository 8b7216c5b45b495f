// The boundary between file formats and the model: named raw tensors, exactly as stored.
// Knows nothing about Gemma; safetensors and GGUF readers both implement TensorSource.

/** Storage types a tensor may have on disk. Quantized GGUF types join this union later. */
export type DType = 'f32' | 'f16' | 'bf16';

export interface RawTensor {
  readonly name: string;
  readonly dtype: DType;
  /** Row-major shape as stored (PyTorch order for safetensors). */
  readonly shape: readonly number[];
  /**
   * The stored little-endian bytes, no copy where the platform allows. The view's byteOffset is
   * aligned to the element size, so `new Uint16Array(data.buffer, data.byteOffset, n)` works.
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
