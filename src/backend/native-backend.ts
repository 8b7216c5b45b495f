// The native addon (native/*.c, built by node-gyp on install) behind the Backend interface.
// Checks happen in the addon once per call (sizes vs arrays); every stored type has a kernel
// (the K-quants Q4_K / Q6_K in native/kernels-kquant.c, Q5_0 / Q5_1 / Q5_K in native/kernels-q5.c).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GemmaError } from '../errors.js';
import type { AttentionShape, Backend, FullAttentionShape, ImageSpans, KvStore, KvType, RowRange, WeightMatrix } from './backend.js';
import { JsBackend } from './js-backend.js';
import { storeType } from './kv-types.js';
import { MappedMatrixCopies, copiesInHugePages, type BackgroundCopyBinding } from './native-mapped-copies.js';
import { defaultThreads } from './thread-count.js';
import type { NonFiniteScaleFinder } from '../formats/quant.js';

/** What the addon chose when it loaded. */
export interface NativeInfo {
  /** The SIMD level of every kernel family: 'avx512', 'avx2' or 'generic'. */
  kernels: string;
  threads: number;
  /** Q4_0 / Q8_0 matrices are repacked into the x16 layout (AVX-512 VNNI or AVX2 kernels). */
  x16: boolean;
  /** Q4_0 / Q8_0 matrices in the row layout (file-mapping views) run through the x16 kernel (AVX-512 VNNI). */
  x16Views: boolean;
  /** The Q4_K / Q5_K / Q6_K kernels: 'avx512' (VNNI), 'avx2-vnni', 'avx2' or 'generic' (the same results bit for bit). */
  kquantKernels: string;
  /** Q4_K / Q5_K / Q6_K matrices are repacked into the K-quant x16 layout (AVX-512 VNNI or AVX2 kernels). */
  kquantX16: boolean;
}

interface NativeBinding extends BackgroundCopyBinding {
  matMul(out: Float32Array, w: Uint8Array, dtype: number, rows: number, cols: number, x: Float32Array,
         batch: number, rowStart: number, rowEnd: number, outStride: number): void;
  matMulShared(outs: Float32Array[], ws: Uint8Array[], dtypes: number[], rows: number[], cols: number, x: Float32Array, batch: number): void;
  attention(out: Float32Array, q: Float32Array, kChunk: Float32Array, vChunk: Float32Array, cacheK: Float32Array | Uint16Array,
            cacheV: Float32Array | Uint16Array, slots: number, ring: number, block: number, start: number, T: number, numHeads: number, numKvHeads: number,
            headDim: number, scale: number, window: number, spanStart: Int32Array | null, spanEnd: Int32Array | null, kvType: number): void;
  attentionFull(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, N: number, numHeads: number,
                headDim: number, scale: number): void;
  quantizeQ8(x: Float32Array, cols: number): Uint8Array;
  /** Q8_K blocks (f32 d, int8 qs[256], int16 bsums[16]) as native/kernels-kquant.c makes them, for tests. */
  quantizeQ8K(x: Float32Array, cols: number): Uint8Array;
  /** ggml's quantize_row_q4_K_ref (dtype 7) / quantize_row_q6_K_ref (dtype 8) in C. */
  quantizeKQuant(x: Float32Array, dtype: number): Uint8Array;
  geluTanhMul(gate: Float32Array, up: Float32Array | null, n: number): void;
  writeKv(cacheK: Float32Array | Uint16Array, cacheV: Float32Array | Uint16Array, kChunk: Float32Array, vChunk: Float32Array, slots: number,
          ring: number, block: number, start: number, T: number, numKvHeads: number, headDim: number, kvType: number): void;
  /** x[i] = x[i] stored as the KV type and read back, for i < n. */
  roundKv(x: Float32Array, n: number, kvType: number): void;
  /** kv_index of native/attention.h: the C definition kvIndex (backend.ts) must agree with. */
  kvIndex(slot: number, head: number, numKvHeads: number, headDim: number, block: number): number;
  /** The most scratch bytes one thread took in attention since the last reset (reset: back to 0). */
  attentionScratchPeak(reset: boolean): number;
  rmsNorm(out: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number, accumulate: boolean): void;
  repack(w: Uint8Array, dtype: number, rows: number, cols: number, inPlace?: boolean): Uint8Array | null;
  setThreads(n: number): void;
  firstNonFiniteScale(data: Uint8Array, dtype: number): number;
  openMapping(path: string, populate: boolean): { mapping: object; bytes: number; hugeBytes: number } | null;
  mapRange(mapping: object, offset: number, length: number): Uint8Array | null;
  closeMapping(mapping: object): void;
  releaseRange(mapping: object, offset: number, length: number): void;
  allocHuge(bytes: number, populate?: boolean): Uint8Array | null;
  info(): NativeInfo;
}

const NATIVE_DTYPES: Readonly<Record<string, number>> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_k: 7, q6_k: 8, q5_0: 9, q5_1: 10, q5_k: 11 };

/** What a product's activations become (native/matmul-plan.c activation_kind): one job shares one kind. */
const ACTIVATION_KIND: Readonly<Record<string, number>> = { q8_0: 1, q4_0: 1, q5_0: 1, q4_k: 2, q5_k: 2, q6_k: 2, q5_1: 3 };
const X16_DTYPES: Readonly<Record<string, number>> = { q4_0: 5, q8_0: 6, q4_k: 12, q6_k: 13, q5_k: 14 };
/** The addon's codes of the KV cache types (native/kv-types.h). */
const KV_TYPE_CODES: Readonly<Record<KvType, number>> = { f32: 0, f16: 1, bf16: 2 };

/** Query heads per key/value head that native/attention.c handles (MAX_GROUP there). */
const MAX_NATIVE_GROUP = 16;

const ADDON_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'Release', 'gemma3_native.node');

let cached: NativeBinding | Error | undefined;

/** The addon, or the reason it cannot be loaded. */
export function loadNativeBinding(): NativeBinding | Error {
  if (cached === undefined) {
    if (process.env.GEMMA3_DISABLE_NATIVE === '1') return new Error('disabled by GEMMA3_DISABLE_NATIVE=1');
    try {
      cached = createRequire(import.meta.url)(ADDON_PATH) as NativeBinding;
    } catch (err) {
      cached = err instanceof Error ? err : new Error(String(err));
    }
  }
  return cached;
}

export class NativeBackend implements Backend {
  readonly name = 'native' as const;
  private readonly fallback = new JsBackend();
  private readonly mappedCopies: MappedMatrixCopies;

  constructor(private readonly binding: NativeBinding, threads?: number) {
    binding.setThreads(threads ?? defaultThreads());
    this.mappedCopies = new MappedMatrixCopies(binding, (dtype) => NATIVE_DTYPES[dtype]!, copiesInHugePages(binding.info().kquantKernels));
  }

  /**
   * Which SIMD kernels the CPU got ('avx512', 'avx2', 'avx2-vnni': AVX2 with the x16 products on
   * AVX-VNNI, or 'generic'; 'avx2-packed' when forced), the thread count and the x16 layouts' use.
   */
  get info(): NativeInfo {
    return this.binding.info();
  }

  /**
   * Whether Q4_0 / Q8_0 matrices can stay in the row layout, views of a file mapping (never
   * written): the x16 kernels then rearrange each block of sixteen rows as they reach it, with
   * the same results bit for bit. AVX-512 VNNI only (on AVX2 they are read and repacked at load).
   */
  get servesQuantizedViews(): boolean {
    return this.binding.info().x16Views;
  }

  /**
   * For a Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K matrix that is a view of a file mapping: served as it is, in
   * the row layout, until its x16 copy is made in the background (native-mapped-copies.ts says
   * when and why).
   */
  prepareMappedMatrix(w: WeightMatrix): WeightMatrix {
    if (w.layout === 'x16' || w.rows % 16 !== 0) return w;
    if (w.dtype === 'q4_0' || w.dtype === 'q8_0') return this.mappedCopies.serve(w);
    if ((w.dtype === 'q4_k' || w.dtype === 'q5_k' || w.dtype === 'q6_k') && this.repacksKQuants) return this.mappedCopies.serve(w, true);
    return w;
  }

  /** How many mapped matrices are not served from their x16 copies yet. */
  copiesInProgress(): number {
    return this.mappedCopies.inProgress();
  }

  /** Several streams start the copies of mapped matrices; every call serves the finished ones from then on. */
  prepareForStreams(streams: number): void {
    this.mappedCopies.prepareForStreams(streams);
  }

  /** The model's first pass holds one of the two threads that copy mapped matrices until it ends. */
  passStarted(): void {
    this.mappedCopies.passStarted();
  }

  passFinished(): void {
    this.mappedCopies.passFinished();
  }

  /** Whether Q4_K / Q5_K / Q6_K matrices (rows % 16 == 0) move to the K-quant x16 layout in prepareMatrix. */
  get repacksKQuants(): boolean {
    return this.binding.info().kquantX16;
  }

  /**
   * Q4_0 / Q8_0 (and Q4_K / Q5_K / Q6_K) matrices with rows % 16 == 0 move to the interleaved x16
   * layouts where the CPU has kernels for them.
   * With `inPlace` the bytes of `w` are rewritten (no second copy; `w` must not be used after).
   */
  prepareMatrix(w: WeightMatrix, inPlace = false): WeightMatrix {
    if (X16_DTYPES[w.dtype] === undefined || w.layout === 'x16') return w;
    const packed = this.binding.repack(w.data, NATIVE_DTYPES[w.dtype]!, w.rows, w.cols, inPlace);
    return packed ? { dtype: w.dtype, rows: w.rows, cols: w.cols, data: packed, layout: 'x16' } : w;
  }

  geluTanh(x: Float32Array, n: number): void {
    this.binding.geluTanhMul(x, null, n);
  }

  geluTanhMul(gate: Float32Array, up: Float32Array, n: number): void {
    this.binding.geluTanhMul(gate, up, n);
  }

  /**
   * Large buffers (the KV cache) in huge-page-backed memory, faulted in 2 MiB at a time as they
   * fill: a token's keys and values otherwise touch fresh 4 KiB pages in every layer.
   */
  allocateFloats(n: number): Float32Array {
    const bytes = n * 4;
    const huge = bytes >= 2 << 20 ? this.binding.allocHuge(bytes, false) : null;
    return huge ? new Float32Array(huge.buffer, huge.byteOffset, n) : new Float32Array(n);
  }

  rmsNorm(out: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void {
    this.binding.rmsNorm(out, x, scale, eps, rows, n, false);
  }

  rmsNormAdd(residual: Float32Array, x: Float32Array, scale: Float32Array, eps: number, rows: number, n: number): void {
    this.binding.rmsNorm(residual, x, scale, eps, rows, n, true);
  }

  matMul(out: Float32Array, w: WeightMatrix, x: Float32Array, batch: number, range?: RowRange): void {
    this.mappedCopies.refresh(w);
    const code = nativeCode(w);
    if (code === undefined) {
      this.fallback.matMul(out, w, x, batch, range);
      return;
    }
    this.binding.matMul(out, w.data, code, w.rows, w.cols, x, batch,
      range?.rowStart ?? 0, range?.rowEnd ?? w.rows, range?.outStride ?? w.rows);
  }

  writeKv(cache: KvStore, kChunk: Float32Array, vChunk: Float32Array, start: number, T: number, numKvHeads: number, headDim: number): void {
    this.binding.writeKv(cache.k, cache.v, kChunk, vChunk, cache.slots, cache.ring, cache.block, start, T, numKvHeads, headDim,
      KV_TYPE_CODES[storeType(cache)]);
  }

  roundToKvType(x: Float32Array, n: number, type: KvType): void {
    if (type !== 'f32') this.binding.roundKv(x, n, KV_TYPE_CODES[type]);
  }

  matMulShared(outs: readonly Float32Array[], ws: readonly WeightMatrix[], x: Float32Array, batch: number): void {
    for (const w of ws) this.mappedCopies.refresh(w);
    const codes = ws.map(nativeCode);
    const quantized = ws.map((w) => ACTIVATION_KIND[w.dtype] ?? 0);
    const cols = ws[0]!.cols;
    if (ws.length > 4 || codes.some((c) => c === undefined) || quantized.some((q) => q !== quantized[0]) || ws.some((w) => w.cols !== cols)) {
      for (let i = 0; i < ws.length; i++) this.matMul(outs[i]!, ws[i]!, x, batch);
      return;
    }
    this.binding.matMulShared(outs as Float32Array[], ws.map((w) => w.data), codes as number[], ws.map((w) => w.rows), cols, x, batch);
  }

  attention(out: Float32Array, q: Float32Array, kChunk: Float32Array, vChunk: Float32Array, cache: KvStore,
            start: number, T: number, shape: AttentionShape, spans?: ImageSpans): void {
    if (shape.numHeads / shape.numKvHeads > MAX_NATIVE_GROUP) {
      this.fallback.attention(out, q, kChunk, vChunk, cache, start, T, shape, spans);
      return;
    }
    this.binding.attention(out, q, kChunk, vChunk, cache.k, cache.v, cache.slots, cache.ring, cache.block, start, T, shape.numHeads, shape.numKvHeads,
      shape.headDim, shape.scale, shape.window, spans?.spanStart ?? null, spans?.spanEnd ?? null, KV_TYPE_CODES[storeType(cache)]);
  }

  fullAttention(out: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, tokens: number, shape: FullAttentionShape): void {
    this.binding.attentionFull(out, q, k, v, tokens, shape.numHeads, shape.headDim, shape.scale);
  }
}

/** The addon's code for a matrix's type and layout, or undefined when it has no kernel for it. */
function nativeCode(w: WeightMatrix): number | undefined {
  return w.layout === 'x16' ? X16_DTYPES[w.dtype] : NATIVE_DTYPES[w.dtype];
}

/** A whole file mapped by the addon: tensor views share it and keep it mapped while they live. */
export interface FileMapping {
  /** File size in bytes. */
  readonly bytes: number;
  /** Bytes the kernel maps with 2 MiB entries (0 when the mapping was not populated). */
  readonly hugeBytes: number;
  /** The bytes [offset, offset + length) of the file, without copying (null if not possible). */
  view(offset: number, length: number): Uint8Array | null;
  /** Drops the pages inside [offset, offset + length) from memory (bytes not used as views). */
  release(offset: number, length: number): void;
  /** No more views: the file stays mapped while views made so far live, and no longer. */
  close(): void;
}

/**
 * Maps a whole file copy-on-write (undefined without the addon, null when mapping fails).
 * `populate` reads it all in now, the pool's threads in parallel, and counts `hugeBytes`.
 */
export function nativeMapFile(path: string, populate: boolean): FileMapping | null | undefined {
  const binding = loadNativeBinding();
  if (binding instanceof Error) return undefined;
  const opened = binding.openMapping(path, populate);
  if (opened === null) return null;
  const { mapping, bytes, hugeBytes } = opened;
  return {
    bytes,
    hugeBytes,
    view: (offset, length) => binding.mapRange(mapping, offset, length),
    release: (offset, length) => binding.releaseRange(mapping, offset, length),
    close: () => binding.closeMapping(mapping),
  };
}

/**
 * The addon's reference K-quant quantizers (the same bytes as quantizeRowQ4_K / quantizeRowQ5_K / quantizeRowQ6_K
 * in formats/quant.ts, tens of times faster), or undefined without the addon.
 */
export function nativeKQuantizer(): ((dtype: 'q4_k' | 'q5_k' | 'q6_k', values: Float32Array) => Uint8Array) | undefined {
  const binding = loadNativeBinding();
  return binding instanceof Error ? undefined : (dtype, values) => binding.quantizeKQuant(values, NATIVE_DTYPES[dtype]!);
}

/** The addon's scan for a NaN or infinite block scale (formats/quant.ts's, on the pool's threads), or undefined without the addon. */
export function nativeScaleFinder(): NonFiniteScaleFinder | undefined {
  const binding = loadNativeBinding();
  return binding instanceof Error ? undefined : (dtype, data) => binding.firstNonFiniteScale(data, NATIVE_DTYPES[dtype]!);
}

/** Huge-page-backed buffers for weights read at load (undefined without the addon). */
export function nativeAllocator(): ((bytes: number) => Uint8Array | null) | undefined {
  const binding = loadNativeBinding();
  return binding instanceof Error ? undefined : (bytes) => (bytes >= 1 << 20 ? binding.allocHuge(bytes) : null);
}

export type BackendPreference = 'auto' | 'native' | 'js';

/**
 * The backend to use: 'native' fails with NATIVE_UNAVAILABLE when the addon cannot load;
 * 'auto' falls back to TypeScript with one warning.
 */
export function selectBackend(preference: BackendPreference = 'auto', threads?: number): Backend {
  if (preference === 'js') return new JsBackend();
  const binding = loadNativeBinding();
  if (binding instanceof Error) {
    if (preference === 'native') {
      throw new GemmaError('NATIVE_UNAVAILABLE',
        `the native addon could not be loaded (${binding.message.split('\n')[0]}); rebuild it with 'npm run build:native' ` +
        "(needs python3, make and a C compiler) or use backend 'js'", { cause: binding });
    }
    warnOnce(`gemma3: native kernels unavailable (${binding.message.split('\n')[0]}); using the slower TypeScript backend. ` +
      "Run 'npm run build:native' to build them.");
    return new JsBackend();
  }
  return new NativeBackend(binding, threads);
}

let warned = false;
function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(message, { code: 'GEMMA3_NATIVE_UNAVAILABLE' });
}
