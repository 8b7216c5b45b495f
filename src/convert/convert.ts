// Hugging Face Gemma 3 checkpoint → llama.cpp GGUF (+ mmproj GGUF for multimodal checkpoints),
// with the metadata, tensor names and types llama.cpp's tools produce:
//   bf16 / f16 / f32 / q8_0: convert_hf_to_gguf.py --outtype <type> (Gemma3Model, Gemma3VisionModel)
//   q4_0 / q4_k_m / q5_k_m / q6_k: that bf16 file then `llama-quantize … Q4_0 | Q4_K_M | Q5_K_M | Q6_K` without an
//   importance matrix (quantize_row_*_ref, llama_tensor_get_type's per-tensor recipe).
// Rules followed (conversion/base.py prepare_tensors, conversion/gemma.py, src/llama-quant.cpp):
// * every `*norm.weight` gets +1 (in float32) and is stored F32, as is every 1-D tensor;
// * token_embd keeps only the tokenizer's rows (262144; the 4B+ checkpoints have 262208);
// * q8_0: every 2-D weight, token_embd included, is Q8_0 (F16 if a row is not whole blocks);
// * q4_0: every 2-D weight is Q4_0 except the tied token_embd (also the output head), which
//   llama-quantize makes Q6_K, or Q8_0 when its rows are not whole 256-blocks (the 1B's 1152);
// * q4_k_m / q5_k_m: every 2-D weight Q4_K / Q5_K, except the tied token_embd (Q6_K), attn_v and
//   ffn_down of the layers use_more_bits picks (the first and last eighth, and every third
//   between: Q6_K); q6_k: every 2-D weight Q6_K. Rows that are not whole 256-blocks (the 1B's
//   1152) take tensor_type_fallback's type: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0;
// * q4_0 / q4_k_m / q5_k_m / q6_k: tensors in llama-quantize's order (by layer, then by name);
// * mmproj: patch and position embeddings F32, mm.input_projection F16, biases/norms F32,
//   only mm.soft_emb_norm gets +1; other matrices in the file type (a q4_0 conversion writes an
//   F16 mmproj: llama-quantize does not quantise mmproj files).
// Values are quantised from the checkpoint's exact float32 values (bf16 widened), which is what
// quantising a bf16 or f32 intermediate GGUF gives.
import { basename, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { nativeKQuantizer } from '../backend/native-backend.js';
import { GemmaError, invalidArgument } from '../errors.js';
import { f16ToF32, f32ToBf16, f32ToF16, rowBytes, tensorBytes, toFloat32 } from '../formats/dtypes.js';
import { writeGguf, type GgufMetadataEntry, type GgufTensorInput } from '../formats/gguf-writer.js';
import { quantizeRow } from '../formats/quant.js';
import { openCheckpoint } from '../formats/safetensors.js';
import type { DType, RawTensor, TensorSource } from '../formats/tensor-source.js';
import { loadConfig, type Gemma3Config } from '../model/config.js';
import { resolveTextTensors, resolveVisionTensors, textWeightSpecs, visionWeightSpecs, type WeightSpec } from '../model/weight-names.js';
import { readGgufVocab } from './vocab.js';

export type ConvertType = 'bf16' | 'q8_0' | 'q4_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k' | 'f16' | 'f32';

export interface ConvertProgress {
  file: string;
  tensor: string;
  index: number; // tensors written to `file` so far, 1-based
  count: number;
}

export interface ConvertOptions {
  type: ConvertType;
  /** Also write the vision tower + projector as an mmproj GGUF here (multimodal checkpoints only). */
  mmprojOut?: string;
  /** general.name (default: the folder name). */
  name?: string;
  onProgress?: (p: ConvertProgress) => void;
}

export interface ConvertResult {
  vocabSize: number;
  textTensors: number;
  mmprojTensors: number;
}

/** llama_ftype values written as general.file_type. */
export const FILE_TYPE: Readonly<Record<ConvertType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15, q5_k_m: 17, q6_k: 18, bf16: 32 };
const QK = 32;
/** The types made by llama-quantize from convert_hf_to_gguf.py's file (its tensor order; mmproj files left F16). */
const BY_LLAMA_QUANTIZE: ReadonlySet<ConvertType> = new Set<ConvertType>(['q4_0', 'q4_k_m', 'q5_k_m', 'q6_k']);
/** Rows widened to float32 at a time (bounds memory for multi-GB tensors). */
const CHUNK_VALUES = 1 << 24;

export function convertCheckpoint(dir: string, outPath: string, options: ConvertOptions): ConvertResult {
  if (!(options.type in FILE_TYPE)) throw invalidArgument('type', 'one of bf16, f16, f32, q8_0, q4_0, q4_k_m, q5_k_m, q6_k', options.type);
  const config = loadConfig(dir);
  if (options.mmprojOut !== undefined && config.vision === null) {
    throw new GemmaError('INVALID_ARGUMENT', `mmprojOut given, but ${dir} is a text-only checkpoint (model_type gemma3_text)`);
  }
  const vocab = readGgufVocab(dir);
  const name = options.name ?? basename(dir);
  const source = openCheckpoint(dir);
  try {
    const text = config.text;
    const nVocab = vocab.tokens.length;
    if (nVocab > text.vocabSize) {
      throw new GemmaError('BAD_FORMAT', `${dir}: the tokenizer has ${nVocab} tokens but the embedding only ${text.vocabSize} rows`);
    }
    const names = resolveTextTensors(source, config);
    const tensors: GgufTensorInput[] = [];
    for (const spec of textWeightSpecs(text)) {
      const hfName = names.get(spec.canonical)!;
      const isEmbd = spec.canonical === 'token_embd.weight';
      // llama.cpp wants n_vocab rows in the embedding and in an (untied) output head alike.
      const rows = isEmbd || spec.canonical === 'output.weight' ? nVocab : spec.shape[0]!;
      const shape = spec.shape.length === 2 ? [rows, spec.shape[1]!] : [...spec.shape];
      const tied = text.tieWordEmbeddings && isEmbd;
      const dtype = textTensorType(spec, shape, options.type, tied || spec.canonical === 'output.weight', text.numLayers);
      const plusOne = spec.canonical.endsWith('norm.weight');
      tensors.push({ name: spec.canonical, dtype, shape, data: () => encode(source.read(hfName), shape, dtype, plusOne) });
    }
    // llama-quantize writes its file in its own tensor order.
    if (BY_LLAMA_QUANTIZE.has(options.type)) tensors.sort((a, b) => llamaQuantizeOrder(a.name, b.name));
    let metadata: GgufMetadataEntry[] = [
      ['general.architecture', 'string', 'gemma3'],
      ['general.type', 'string', 'model'],
      ['general.name', 'string', name],
      ...textParameters(config, FILE_TYPE[options.type]),
      ['general.quantization_version', 'u32', 2],
      ...vocab.metadata,
    ];
    // llama-quantize copies its BF16 input's keys, then sets these two again, which moves them last.
    if (BY_LLAMA_QUANTIZE.has(options.type)) {
      const last = ['general.quantization_version', 'general.file_type'];
      metadata = [...metadata.filter(([key]) => !last.includes(key)), ...last.map((key) => metadata.find(([k]) => k === key)!)];
    }
    writeGguf(outPath, { metadata, tensors, onTensor: progress(outPath, options) });

    let mmprojTensors = 0;
    if (options.mmprojOut !== undefined) mmprojTensors = writeMmproj(dir, source, config, options.mmprojOut, name, options);
    return { vocabSize: nVocab, textTensors: tensors.length, mmprojTensors };
  } finally {
    source.close();
  }
}

function progress(file: string, options: ConvertOptions): ((i: number, n: number, t: string) => void) | undefined {
  const cb = options.onProgress;
  return cb && ((i, count, tensor) => cb({ file, tensor, index: i + 1, count }));
}

/**
 * The stored type of one text tensor under a conversion type (see the header): what
 * convert_hf_to_gguf.py, and for q4_0 / q4_k_m / q5_k_m / q6_k then llama-quantize, would write.
 * `numLayers` (q4_k_m / q5_k_m) places a layer among use_more_bits's. Exported for tests.
 */
export function textTensorType(spec: WeightSpec, shape: readonly number[], type: ConvertType, outputHead: boolean, numLayers = 0): DType {
  if (shape.length <= 1 || spec.canonical.endsWith('_norm.weight')) return 'f32';
  const cols = shape[shape.length - 1]!;
  switch (type) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return type;
    case 'q8_0':
      return cols % QK === 0 ? 'q8_0' : 'f16'; // gguf-py raises QuantError; the converter falls back to F16
    case 'q4_0':
      if (cols % QK !== 0) {
        throw new GemmaError('UNSUPPORTED_MODEL', `${spec.canonical}: rows of ${cols} values are not whole 32-value blocks (llama-quantize has no fallback)`);
      }
      // llama_tensor_get_type: the output head (or a tied token_embd) → Q6_K; tensor_type_fallback
      // turns Q6_K into Q8_0 when rows are not whole 256-blocks (the 1B's 1152, this tiny model's 64).
      if (outputHead) return cols % 256 === 0 ? 'q6_k' : 'q8_0';
      return 'q4_0';
    case 'q4_k_m':
    case 'q5_k_m':
    case 'q6_k': {
      if (cols % QK !== 0) {
        throw new GemmaError('UNSUPPORTED_MODEL', `${spec.canonical}: rows of ${cols} values are not whole 32-value blocks (llama-quantize would write F16 here)`);
      }
      const base = type === 'q4_k_m' ? 'q4_k' : type === 'q5_k_m' ? 'q5_k' : 'q6_k';
      const wanted = outputHead || moreBitsKM(spec.canonical, numLayers) ? 'q6_k' : base;
      if (cols % 256 === 0) return wanted;
      // tensor_type_fallback (the output head's own rule gives the same Q8_0).
      return KQUANT_FALLBACK[wanted];
    }
  }
}

/**
 * The order llama-quantize writes tensors in (llama_model_loader's weights_map,
 * weight_name_comparer): by the layer number of `blk.N.` (-1 for the others), then by name.
 */
export function llamaQuantizeOrder(a: string, b: string): number {
  const layer = (name: string): number => {
    const m = /^blk\.(\d+)\./.exec(name);
    return m === null ? -1 : Number(m[1]);
  };
  const la = layer(a), lb = layer(b);
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** llama-quantize's tensor_type_fallback for rows that are not whole 256-value super-blocks. */
const KQUANT_FALLBACK: Readonly<Record<'q4_k' | 'q5_k' | 'q6_k', DType>> = { q4_k: 'q5_0', q5_k: 'q5_1', q6_k: 'q8_0' };

/**
 * llama_tensor_get_type_impl for LLAMA_FTYPE_MOSTLY_Q4_K_M and _Q5_K_M (not Falcon, no experts):
 * attn_v and ffn_down of layer i become Q6_K when use_more_bits(i, n): i < n/8, i ≥ 7n/8, or
 * (i − n/8) % 3 == 2 (C integer division; attn_v counts its tensors in llama-quantize's order,
 * which is layer order). For q6_k every tensor is Q6_K anyway.
 */
function moreBitsKM(canonical: string, numLayers: number): boolean {
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(canonical);
  if (m === null) return false;
  const i = Number(m[1]);
  const n = numLayers;
  const eighth = Math.trunc(n / 8);
  return i < eighth || i >= Math.trunc((7 * n) / 8) || (i - eighth) % 3 === 2;
}

/** The gemma3.* hyper-parameters as convert_hf_to_gguf.py writes them (TextModel + Gemma3Model). */
export function textParameters(config: Gemma3Config, fileType: number): GgufMetadataEntry[] {
  const t = config.text;
  const k = (s: string): string => `gemma3.${s}`;
  const out: GgufMetadataEntry[] = [
    [k('block_count'), 'u32', t.numLayers],
    [k('context_length'), 'u32', t.maxPositionEmbeddings],
    [k('embedding_length'), 'u32', t.hiddenSize],
    [k('feed_forward_length'), 'u32', t.intermediateSize],
    [k('attention.head_count'), 'u32', t.numHeads],
    [k('attention.head_count_kv'), 'u32', t.numKvHeads],
  ];
  if (t.ropeGlobalScalingFactor !== 1) {
    out.push([k('rope.scaling.type'), 'string', 'linear'], [k('rope.scaling.factor'), 'f32', t.ropeGlobalScalingFactor]);
  }
  out.push(
    [k('rope.freq_base'), 'f32', t.ropeGlobalBase],
    [k('rope.freq_base_swa'), 'f32', t.ropeLocalBase],
    [k('attention.layer_norm_rms_epsilon'), 'f32', t.rmsNormEps],
    [k('attention.key_length'), 'u32', t.headDim],
    [k('attention.value_length'), 'u32', t.headDim],
    ['general.file_type', 'u32', fileType],
  );
  if (t.finalLogitSoftcap !== null) out.push([k('final_logit_softcapping'), 'f32', t.finalLogitSoftcap]);
  if (t.layerTypes.some((l) => l === 'sliding')) out.push([k('attention.sliding_window'), 'u32', t.slidingWindow]);
  return out;
}

/**
 * The first `shape` rows of a stored tensor in `dtype`, widened and re-encoded in chunks
 * (yielded one by one so a multi-GB tensor is never widened whole). `plusOne`: the norm shift.
 */
function encode(raw: RawTensor, shape: readonly number[], dtype: DType, plusOne: boolean): Iterable<Uint8Array> {
  const cols = shape[shape.length - 1]!;
  const rows = shape.length === 1 ? 1 : shape.slice(0, -1).reduce((a, b) => a * b, 1);
  if (dtype === raw.dtype && !plusOne) return [raw.data.subarray(0, rows * rowBytes(dtype, cols))];
  const srcRow = rowBytes(raw.dtype, cols);
  const step = Math.max(1, Math.floor(CHUNK_VALUES / cols));
  return (function* () {
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      const part: RawTensor = { name: raw.name, dtype: raw.dtype, shape: [n, cols], data: raw.data.subarray(r0 * srcRow, (r0 + n) * srcRow) };
      let v = toFloat32(part);
      if (plusOne) {
        v = Float32Array.from(v); // never shift the source in place (an f32 view aliases it)
        // In the reference the shift happens in the source precision: float32 for bf16/f32 sources, float16 for f16.
        for (let i = 0; i < v.length; i++) v[i] = raw.dtype === 'f16' ? f16ToF32(f32ToF16(1 + v[i]!)) : Math.fround(1 + v[i]!);
      }
      yield encodeValues(v, dtype);
    }
  })();
}

/** A whole stored tensor re-encoded in `dtype` (load({ quant }) quantising on load). */
export function encodeTensor(raw: RawTensor, dtype: DType): Uint8Array {
  const out = new Uint8Array(tensorBytes(dtype, raw.shape));
  let at = 0;
  for (const chunk of encode(raw, raw.shape, dtype, false)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function encodeValues(v: Float32Array, dtype: DType): Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
    case 'f16':
    case 'bf16': {
      const out = new Uint16Array(v.length);
      const conv = dtype === 'f16' ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < v.length; i++) out[i] = conv(v[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'q4_k':
    case 'q5_k':
    case 'q6_k':
      // The addon's C twins write the same bytes (test/native-kernels.test.ts, q5-kernels.test.ts) ~30x faster.
      return (kQuantizer ??= nativeKQuantizer() ?? ((t, x) => quantizeRow(t, x)))(dtype, v);
    default:
      return quantizeRow(dtype, v);
  }
}

let kQuantizer: ((dtype: 'q4_k' | 'q5_k' | 'q6_k', values: Float32Array) => Uint8Array) | undefined;

/** llama-quantize leaves mmproj files alone: a q4_0 / q4_k_m / q5_k_m / q6_k conversion writes an F16 one. */
function mmprojType(type: ConvertType): 'bf16' | 'f16' | 'f32' | 'q8_0' {
  return type === 'bf16' || type === 'f32' || type === 'q8_0' ? type : 'f16';
}

/** Writes the SigLIP tower + projector as llama.cpp's mmproj file (Gemma3VisionModel). */
function writeMmproj(dir: string, source: TensorSource, config: Gemma3Config, path: string, name: string, options: ConvertOptions): number {
  const v = config.vision!;
  const names = resolveVisionTensors(source, config);
  const type = mmprojType(options.type);
  const tensors: GgufTensorInput[] = visionWeightSpecs(config).map((spec) => {
    const cols = spec.shape[spec.shape.length - 1]!;
    let dtype: DType;
    if (spec.canonical.startsWith('v.patch_embd.') || spec.canonical === 'v.position_embd.weight' || spec.shape.length <= 1) dtype = 'f32';
    else if (spec.canonical === 'mm.input_projection.weight') dtype = 'f16';
    else if (type === 'q8_0') dtype = cols % QK === 0 ? 'q8_0' : 'f16';
    else dtype = type;
    const plusOne = spec.canonical === 'mm.soft_emb_norm.weight';
    const hf = names.get(spec.canonical)!;
    return { name: spec.canonical, dtype, shape: spec.shape, data: () => encode(source.read(hf), spec.shape, dtype, plusOne) };
  });
  const pre = readPreprocessor(dir);
  const seq = typeof pre['image_seq_length'] === 'number' ? pre['image_seq_length'] : config.mmTokensPerImage;
  const scale = Math.floor(v.imageSize / v.patchSize / Math.floor(Math.sqrt(seq)));
  const triple = (key: string): number[] => (Array.isArray(pre[key]) ? (pre[key] as number[]) : [0.5, 0.5, 0.5]);
  const metadata: GgufMetadataEntry[] = [
    ['general.architecture', 'string', 'clip'],
    ['general.type', 'string', 'mmproj'],
    ['general.name', 'string', name],
    ['general.file_type', 'u32', FILE_TYPE[type]],
    ['clip.has_vision_encoder', 'bool', true],
    ['clip.vision.projection_dim', 'u32', config.text.hiddenSize],
    ['clip.vision.image_size', 'u32', v.imageSize],
    ['clip.vision.patch_size', 'u32', v.patchSize],
    ['clip.vision.embedding_length', 'u32', v.hiddenSize],
    ['clip.vision.feed_forward_length', 'u32', v.intermediateSize],
    ['clip.vision.block_count', 'u32', v.numLayers],
    ['clip.vision.attention.head_count', 'u32', v.numHeads],
    ['clip.vision.image_mean', { array: 'f32' }, triple('image_mean')],
    ['clip.vision.image_std', { array: 'f32' }, triple('image_std')],
    ['clip.projector_type', 'string', 'gemma3'],
    ['clip.vision.attention.layer_norm_epsilon', 'f32', v.layerNormEps],
    ['clip.use_gelu', 'bool', true],
  ];
  if (scale > 0 && scale !== 4) metadata.push(['clip.vision.projector.scale_factor', 'u32', scale]);
  metadata.push(['general.quantization_version', 'u32', 2]);
  writeGguf(path, { metadata, tensors, onTensor: progress(path, options) });
  return tensors.length;
}

function readPreprocessor(dir: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of ['preprocessor_config.json', 'processor_config.json']) {
    const p = join(dir, f);
    if (!existsSync(p)) continue;
    try {
      const j = JSON.parse(readFileSync(p, 'utf8'));
      Object.assign(out, j, typeof j['image_processor'] === 'object' ? j['image_processor'] : {});
    } catch (e) {
      throw new GemmaError('BAD_FORMAT', `${p}: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}
