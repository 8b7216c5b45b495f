// Gemma 3 hyper-parameters from llama.cpp GGUF metadata, following exactly what llama.cpp does
// for LLM_ARCH_GEMMA3 (src/llama-model.cpp load_hparams + the gemma3 case, src/models/gemma3.cpp):
//   required: gemma3.context_length, embedding_length, block_count,
//             attention.layer_norm_rms_epsilon
//   optional: feed_forward_length and attention.head_count (scalars or per-layer arrays; we need
//             them and require all layers equal), attention.head_count_kv (default head_count),
//             attention.key_length / value_length (default embedding_length / head_count),
//             rope.freq_base (default 10000), rope.scaling.type (default "linear") and
//             rope.scaling.factor (or the old rope.scale_linear; freq scale = 1/factor),
//             attention.sliding_window, final_logit_softcapping
// Hard-coded by llama.cpp, not read from the file:
//   * sliding window present and > 0: 5 sliding : 1 global (layer il is sliding iff il % 6 < 5),
//     sliding layers use RoPE base 10000 and scale 1 (gemma3.rope.freq_base_swa is ignored), and
//     the final logit soft-capping is NEVER applied (the iSWA graph has no soft-cap);
//   * no sliding window: every layer global, soft-capping applied if the key is present;
//   * attention scale: 1/sqrt(floor(n_embd / n_head)) when block_count is 62 (the 27B), else
//     1/sqrt(key_length); `query_pre_attn_scalar` is never read (there is no key for it);
//   * no attention logit soft-capping.
// The vocabulary size is the token embedding's row count (262144 in llama.cpp-style files, whose
// converter drops the 64 padding rows of the 4B/12B/27B embedding).
import { GemmaError } from '../errors.js';
import { describeGgufValue, type GgufSource, type GgufValue } from '../formats/gguf.js';
import { LIMITS, type Gemma3Config, type Gemma3TextConfig, type LayerType, type SiglipVisionConfig } from './config.js';
import { layersPresent } from './weight-names.js';

const ARCH = 'gemma3';
/** Gemma 3's ids, used when a file lacks the tokenizer keys (llama.cpp's SPM defaults differ). */
const DEFAULT_BOS = 2, DEFAULT_EOS = 1, DEFAULT_PAD = 0, END_OF_TURN = 106;
/** Image token ids of Gemma 3 (transformers' Gemma3Config defaults). */
const BOI = 255999, EOI = 256000, IMAGE_TOKEN = 262144;

/** Typed reads of GGUF metadata with errors that name the file and key. */
class Meta {
  constructor(readonly m: ReadonlyMap<string, GgufValue>, readonly file: string) {}

  bad(key: string, expected: string): GemmaError {
    const v = this.m.get(key);
    return new GemmaError('BAD_FORMAT', `${this.file}: metadata ${key} must be ${expected}, got ${v === undefined ? 'nothing' : describeGgufValue(v)}`);
  }

  has(key: string): boolean {
    return this.m.has(key);
  }

  int(key: string, def?: number): number {
    const v = this.m.get(key);
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.bad(key, 'a non-negative integer');
    return v;
  }

  /** A positive integer; `max` refuses a size no real model has before anything is sized by it. */
  posInt(key: string, def?: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.int(key, def);
    if (v === 0) throw this.bad(key, 'a positive integer');
    if (v > max) throw this.bad(key, `at most ${max} (larger than any Gemma 3 model; the file is corrupt)`);
    return v;
  }

  /** A key llama.cpp reads with get_key_or_arr: a scalar, or one value per layer (all equal here). */
  perLayer(key: string, layers: number, max: number, def?: number): number {
    const v = this.m.get(key);
    if (!Array.isArray(v)) return this.posInt(key, def, max);
    if (v.length !== layers || !v.every((x) => x === v[0]) || typeof v[0] !== 'number' || !Number.isSafeInteger(v[0]) || v[0] <= 0 || v[0] > max) {
      throw this.bad(key, `one positive integer up to ${max}, or ${layers} equal ones (per-layer values that differ are not supported)`);
    }
    return v[0];
  }

  /**
   * The layer count `key` declares, checked against the layers the file has tensors for (when
   * known) before anything per layer is built: a corrupt count must not size a list first.
   */
  layerCount(key: string, layersInFile: number | undefined, exact: boolean): number {
    const n = this.posInt(key);
    if (layersInFile !== undefined && n > layersInFile) {
      throw new GemmaError('MISSING_TENSOR',
        `${this.file}: metadata ${key} declares ${n} layers, but the file has tensors for ${layersInFile}: it is corrupt or incomplete`);
    }
    if (exact && layersInFile !== undefined && n < layersInFile) {
      // llama.cpp refuses such a file too ("wrong number of tensors"): running the first n layers would be garbage.
      throw new GemmaError('BAD_FORMAT', `${this.file}: metadata ${key} declares ${n} layers, but the file has tensors for ${layersInFile}: it is corrupt`);
    }
    if (n > LIMITS.layers) throw this.bad(key, `at most ${LIMITS.layers} (larger than any Gemma 3 model; the file is corrupt)`);
    return n;
  }

  num(key: string, def?: number): number {
    const v = this.m.get(key);
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(key, 'a number');
    return v;
  }

  posNum(key: string, def?: number): number {
    const v = this.num(key, def);
    if (v <= 0) throw this.bad(key, 'a positive number');
    return v;
  }

  str(key: string, def?: string): string {
    const v = this.m.get(key);
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'string') throw this.bad(key, 'a string');
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.m.get(key);
    if (v === undefined) return def;
    if (typeof v !== 'boolean') throw this.bad(key, 'a boolean');
    return v;
  }
}

export interface GgufTensorFacts {
  /** Rows of token_embd.weight: the vocabulary size. */
  embeddingRows?: number;
  /** Whether the file has a separate output.weight (untied head). */
  hasOutput?: boolean;
  /** How many layers (`blk.N.`) the file has tensors for. */
  layers?: number;
}

/**
 * The text config of a `gemma3` GGUF. `tensors` supplies what llama.cpp takes from the tensors
 * (vocabulary = token_embd rows, tied head unless output.weight exists); without it the vocabulary
 * size is the length of tokenizer.ggml.tokens and the head is tied. Throws UNSUPPORTED_MODEL for
 * another architecture, BAD_FORMAT for missing or malformed keys.
 */
export function configFromGguf(metadata: ReadonlyMap<string, GgufValue>, file: string, tensors: GgufTensorFacts = {}): Gemma3Config {
  const m = new Meta(metadata, file);
  const arch = metadata.get('general.architecture');
  if (arch !== ARCH) {
    throw new GemmaError('UNSUPPORTED_MODEL',
      `${file}: general.architecture is ${describeGgufValue(arch ?? null)}; this engine runs Gemma 3 GGUFs (architecture "gemma3")`);
  }
  const k = (s: string): string => `${ARCH}.${s}`;
  const L = LIMITS;
  const numLayers = m.layerCount(k('block_count'), tensors.layers, true);
  const hiddenSize = m.posInt(k('embedding_length'), undefined, L.hiddenSize);
  const numHeads = m.perLayer(k('attention.head_count'), numLayers, L.heads);
  const numKvHeads = m.perLayer(k('attention.head_count_kv'), numLayers, L.heads, numHeads);
  if (numHeads % numKvHeads !== 0) throw m.bad(k('attention.head_count_kv'), `a divisor of the head count ${numHeads}`);
  const headDim = m.posInt(k('attention.key_length'), Math.floor(hiddenSize / numHeads), L.headDim);
  if (m.posInt(k('attention.value_length'), Math.floor(hiddenSize / numHeads), L.headDim) !== headDim) {
    throw new GemmaError('UNSUPPORTED_MODEL', `${file}: attention.value_length differs from key_length (not a Gemma 3 layout)`);
  }
  if (headDim % 2 !== 0) throw m.bad(k('attention.key_length'), 'even (rotary embedding rotates pairs)');
  const rotDims = m.posInt(k('rope.dimension_count'), headDim);
  if (rotDims !== headDim) throw new GemmaError('UNSUPPORTED_MODEL', `${file}: partial rotary embedding (rope.dimension_count ${rotDims} ≠ ${headDim})`);
  const maxPositionEmbeddings = m.posInt(k('context_length'), undefined, L.positions);

  const swa = m.int(k('attention.sliding_window'), 0);
  if (swa > L.positions) throw m.bad(k('attention.sliding_window'), `at most ${L.positions}`);
  const layerTypes: LayerType[] = Array.from({ length: numLayers }, (_, il) => (swa > 0 && il % 6 < 5 ? 'sliding' : 'global'));
  const softcap = m.num(k('final_logit_softcapping'), 0);

  const scalingType = m.str(k('rope.scaling.type'), 'linear');
  if (scalingType !== 'linear' && scalingType !== 'none') {
    throw new GemmaError('UNSUPPORTED_MODEL', `${file}: rope.scaling.type ${JSON.stringify(scalingType)} is not supported (only linear)`);
  }
  const factorKey = m.has(k('rope.scaling.factor')) ? k('rope.scaling.factor') : k('rope.scale_linear');
  const factor = m.num(factorKey, 0);
  if (factor < 0) throw m.bad(factorKey, 'a non-negative number');

  const vocabSize = tensors.embeddingRows ?? tokenCount(m);
  if (vocabSize > L.vocabSize) throw new GemmaError('BAD_FORMAT', `${file}: a vocabulary of ${vocabSize} tokens is larger than any Gemma 3 model's (the file is corrupt)`);
  const text: Gemma3TextConfig = {
    vocabSize,
    hiddenSize,
    intermediateSize: m.perLayer(k('feed_forward_length'), numLayers, L.intermediateSize),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    // llama.cpp: f_attention_scale = 1/sqrt(n_embd / n_head) for LLM_TYPE_27B (62 layers), else 1/sqrt(n_embd_head_k)
    queryPreAttnScalar: numLayers === 62 ? Math.floor(hiddenSize / numHeads) : headDim,
    slidingWindow: swa > 0 ? swa : maxPositionEmbeddings,
    layerTypes,
    ropeGlobalBase: m.posNum(k('rope.freq_base'), 10000),
    ropeLocalBase: 10000,
    ropeGlobalScalingFactor: factor === 0 ? 1 : factor,
    ropeLocalScalingFactor: 1,
    rmsNormEps: m.num(k('attention.layer_norm_rms_epsilon')),
    maxPositionEmbeddings,
    finalLogitSoftcap: swa === 0 && softcap > 0 ? softcap : null,
    attnLogitSoftcap: null,
    tieWordEmbeddings: !(tensors.hasOutput ?? false),
    bosTokenId: m.int('tokenizer.ggml.bos_token_id', DEFAULT_BOS),
    eosTokenIds: eosIds(m, vocabSize),
    padTokenId: m.int('tokenizer.ggml.padding_token_id', DEFAULT_PAD),
  };
  if (text.rmsNormEps <= 0) throw m.bad(k('attention.layer_norm_rms_epsilon'), 'a positive number');
  return { modelType: 'gemma3_text', text, vision: null, mmTokensPerImage: 256, boiTokenId: BOI, eoiTokenId: EOI, imageTokenId: IMAGE_TOKEN };
}

/** configFromGguf with the vocabulary and head tying taken from the file's tensors. */
export function configFromGgufSource(source: GgufSource): Gemma3Config {
  if (!source.has('token_embd.weight')) {
    // Checked here so the error is about the file, not a missing vocabulary size.
    configFromGguf(source.metadata, source.path, { embeddingRows: 1 });
    throw new GemmaError('MISSING_TENSOR', `tensor token_embd.weight is missing from ${source.path}`);
  }
  const shape = source.info('token_embd.weight').shape;
  return configFromGguf(source.metadata, source.path, {
    embeddingRows: shape[0], hasOutput: source.has('output.weight'), layers: layersPresent(source.names(), 'blk.'),
  });
}

function tokenCount(m: Meta): number {
  const tokens = m.m.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0) {
    throw new GemmaError('BAD_FORMAT', `${m.file}: no vocabulary size (no token_embd.weight rows given and no tokenizer.ggml.tokens)`);
  }
  return tokens.length;
}

/**
 * Stop tokens: the file's eos (and eot / eom if present) plus <eos> (1) and <end_of_turn> (106)
 * regardless of the file (some published files set eos to one of the two only).
 */
function eosIds(m: Meta, vocab: number): number[] {
  const ids = [m.int('tokenizer.ggml.eos_token_id', DEFAULT_EOS)];
  for (const key of ['tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) if (m.has(key)) ids.push(m.int(key));
  ids.push(DEFAULT_EOS, END_OF_TURN);
  return [...new Set(ids)].filter((id) => id < vocab);
}

/** What an mmproj GGUF (clip.projector_type gemma3) says about the vision tower and projector. */
export interface MmprojConfig {
  vision: SiglipVisionConfig;
  /** Text hidden size the projector maps to (clip.vision.projection_dim). */
  projectionDim: number;
  /** (image_size / patch_size / scale_factor)²; llama.cpp's default scale factor for gemma3 is 4. */
  mmTokensPerImage: number;
  imageMean: number[];
  imageStd: number[];
}

/**
 * Reads the clip.vision.* keys of a Gemma 3 mmproj file. `layersInFile`: how many layers
 * (`v.blk.N.`) the file has tensors for, checked against block_count when given.
 */
export function visionConfigFromMmproj(metadata: ReadonlyMap<string, GgufValue>, file = 'mmproj', layersInFile?: number): MmprojConfig {
  const m = new Meta(metadata, file);
  const arch = metadata.get('general.architecture');
  const proj = metadata.get('clip.projector_type');
  if (arch !== 'clip' || proj !== 'gemma3') {
    throw new GemmaError('UNSUPPORTED_MODEL',
      `${file}: not a Gemma 3 mmproj file (general.architecture ${describeGgufValue(arch ?? null)}, clip.projector_type ${describeGgufValue(proj ?? null)}; expected "clip" and "gemma3")`);
  }
  if (!m.bool('clip.has_vision_encoder', false)) throw m.bad('clip.has_vision_encoder', 'true');
  const v = (s: string): string => `clip.vision.${s}`;
  const L = LIMITS;
  const vision: SiglipVisionConfig = {
    hiddenSize: m.posInt(v('embedding_length'), undefined, L.hiddenSize),
    intermediateSize: m.posInt(v('feed_forward_length'), undefined, L.intermediateSize),
    numLayers: m.layerCount(v('block_count'), layersInFile, false),
    numHeads: m.posInt(v('attention.head_count'), undefined, L.heads),
    numChannels: 3,
    imageSize: m.posInt(v('image_size'), undefined, L.imageSize),
    patchSize: m.posInt(v('patch_size'), undefined, L.imageSize),
    layerNormEps: m.num(v('attention.layer_norm_epsilon'), 1e-6),
  };
  if (vision.hiddenSize % vision.numHeads !== 0) throw m.bad(v('attention.head_count'), `a divisor of ${vision.hiddenSize}`);
  if (vision.imageSize % vision.patchSize !== 0) throw m.bad(v('patch_size'), `a divisor of image_size ${vision.imageSize}`);
  const perSide = vision.imageSize / vision.patchSize;
  if (perSide > L.patchesPerSide) {
    throw m.bad(v('patch_size'), `at least image_size / ${L.patchesPerSide} (${perSide} patches per side is more than any Gemma 3 vision tower has)`);
  }
  const scale = m.posInt(v('projector.scale_factor'), 4);
  if (perSide % scale !== 0) throw m.bad(v('projector.scale_factor'), `a divisor of the ${perSide} patches per side`);
  const triple = (key: string): number[] => {
    const a = metadata.get(key) ?? [0.5, 0.5, 0.5];
    if (!Array.isArray(a) || a.length !== 3 || !a.every((x) => typeof x === 'number' && Number.isFinite(x))) throw m.bad(key, 'three finite numbers');
    return a as number[];
  };
  return {
    vision,
    projectionDim: m.posInt(v('projection_dim'), undefined, L.hiddenSize),
    mmTokensPerImage: (perSide / scale) ** 2,
    imageMean: triple(v('image_mean')),
    imageStd: triple(v('image_std')),
  };
}

/** A text GGUF config plus its mmproj: the multimodal Gemma3Config. */
export function withMmproj(config: Gemma3Config, mmproj: MmprojConfig, file = 'mmproj'): Gemma3Config {
  if (mmproj.projectionDim !== config.text.hiddenSize) {
    throw new GemmaError('SHAPE_MISMATCH',
      `${file}: clip.vision.projection_dim ${mmproj.projectionDim} does not match the text model's embedding_length ${config.text.hiddenSize}`);
  }
  return { ...config, modelType: 'gemma3', vision: mmproj.vision, mmTokensPerImage: mmproj.mmTokensPerImage };
}
