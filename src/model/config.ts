// Gemma 3 hyper-parameters as one flat typed record, and its parser from Hugging Face
// config.json. Nothing below this file reads config.json.
import { join } from 'node:path';
import { GemmaError } from '../errors.js';
import { Fields, isObject, readJsonFile, tokenIds, type Json } from './json-fields.js';

export { loadGenerationConfig, parseGenerationConfig, type GenerationConfig } from './generation-config.js';

export type LayerType = 'sliding' | 'global';

export interface Gemma3TextConfig {
  vocabSize: number; // embedding rows (262144 for 1B, 262208 for 4B+)
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  queryPreAttnScalar: number; // attention scale = queryPreAttnScalar^-0.5
  slidingWindow: number;
  layerTypes: LayerType[]; // length numLayers
  ropeGlobalBase: number; // rope_theta
  ropeLocalBase: number; // rope_local_base_freq
  ropeGlobalScalingFactor: number; // linear rope_scaling factor on global layers (1 = none)
  ropeLocalScalingFactor: number; // 1 unless a v5 config scales sliding layers too
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  finalLogitSoftcap: number | null;
  attnLogitSoftcap: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenIds: number[];
  padTokenId: number;
}

export interface SiglipVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
}

export interface Gemma3Config {
  modelType: 'gemma3_text' | 'gemma3';
  text: Gemma3TextConfig;
  /** Present only for multimodal checkpoints (model_type gemma3). */
  vision: SiglipVisionConfig | null;
  mmTokensPerImage: number; // 256 for the real models
  boiTokenId: number; // 255999
  eoiTokenId: number; // 256000
  imageTokenId: number; // 262144
}

/**
 * Upper bounds on hyper-parameters, far above every Gemma 3 (27B: 62 layers, width 5376, FFN 21504,
 * 32 heads of 128, vocabulary 262208, context 131072; its SigLIP tower: 27 layers of width 1152 on
 * 896-pixel images cut into 64x64 patches). A config or GGUF beyond one is corrupt or hostile, and
 * is refused before anything is sized by it (a layer list, a weight-name table, a cache).
 */
export const LIMITS = {
  layers: 1024,
  hiddenSize: 1 << 16,
  intermediateSize: 1 << 20,
  heads: 1024,
  headDim: 1 << 12,
  vocabSize: 1 << 24,
  /** max_position_embeddings, sliding_window. */
  positions: 1 << 24,
  /** Pixels per side of the vision tower's input (the preprocessed picture is imageSize² x 3 floats). */
  imageSize: 4096,
  /** Patches per side of the vision tower (attention is quadratic in their square). */
  patchesPerSide: 128,
} as const;

// ---------------------------------------------------------------------------------------------
// Parsing Hugging Face config.json. Missing keys get the defaults of transformers 4.57's
// Gemma3TextConfig / SiglipVisionConfig / Gemma3Config, so the sparse released files (4B/12B/27B
// list only a handful of keys) come out exactly as transformers sees them. Unknown keys are ignored.

/** Gemma3TextConfig defaults (transformers 4.57). */
const TEXT_DEFAULTS = {
  vocab_size: 262208,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  sliding_window_pattern: 6,
  rope_theta: 1_000_000,
  rope_local_base_freq: 10_000,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 131072,
  bos_token_id: 2,
  eos_token_id: 1,
  pad_token_id: 0,
} as const;

/** SiglipVisionConfig defaults (transformers 4.57). */
const VISION_DEFAULTS = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 16,
  layer_norm_eps: 1e-6,
} as const;

/** Gemma3Config defaults (transformers 4.57). */
const MM_DEFAULTS = { mm_tokens_per_image: 256, boi_token_index: 255999, eoi_token_index: 256000, image_token_index: 262144 } as const;

/** Builds the typed config from a parsed config.json (text-only `gemma3_text` or multimodal `gemma3`). */
export function parseConfig(json: unknown, file = 'config.json'): Gemma3Config {
  if (!isObject(json)) throw new GemmaError('BAD_FORMAT', `${file}: not a JSON object`);
  const top = new Fields(json, file, '');
  const modelType = resolveModelType(json, file);
  if (modelType === 'gemma3_text') {
    return { modelType, text: parseText(top, null), vision: null, ...imageTokens(top, null) };
  }
  const textJson = json['text_config'] ?? {};
  if (!isObject(textJson)) throw top.bad('text_config', 'an object');
  const visionJson = json['vision_config'] ?? {};
  if (!isObject(visionJson)) throw top.bad('vision_config', 'an object');
  const textFields = new Fields(textJson, file, 'text_config.');
  textFields.only('model_type', ['gemma3_text'], 'text_config of a Gemma 3 model must be gemma3_text');
  const visionFields = new Fields(visionJson, file, 'vision_config.');
  visionFields.only('model_type', ['siglip_vision_model'], 'the Gemma 3 vision tower is SigLIP');
  const vision = parseVision(visionFields);
  return { modelType, text: parseText(textFields, top), vision, ...imageTokens(top, vision) };
}

function resolveModelType(json: Json, file: string): 'gemma3_text' | 'gemma3' {
  let mt = json['model_type'];
  if (mt === undefined) {
    const arch = Array.isArray(json['architectures']) ? json['architectures'][0] : undefined;
    if (arch === 'Gemma3ForCausalLM') mt = 'gemma3_text';
    else if (arch === 'Gemma3ForConditionalGeneration') mt = 'gemma3';
    else throw new GemmaError('BAD_FORMAT', `${file}: no model_type (and no Gemma 3 architecture to infer it from)`);
  }
  if (mt === 'gemma3_text' || mt === 'gemma3') return mt;
  throw new GemmaError(
    'UNSUPPORTED_MODEL',
    `${file}: model_type ${JSON.stringify(mt)} is not supported (this engine runs Gemma 3: gemma3_text or gemma3)`,
  );
}

/** Text decoder fields; `outer` is the top level of a multimodal config (fallback for token ids). */
function parseText(f: Fields, outer: Fields | null): Gemma3TextConfig {
  const d = TEXT_DEFAULTS;
  f.only('hidden_activation', ['gelu_pytorch_tanh'], 'Gemma 3 uses gelu_pytorch_tanh');
  f.only('attention_bias', [false], 'Gemma 3 has no attention bias');
  f.only('use_bidirectional_attention', [false], 'bidirectional (embedding) models are not generative Gemma 3');
  const L = LIMITS;
  const numLayers = f.posInt('num_hidden_layers', d.num_hidden_layers, L.layers);
  const numHeads = f.posInt('num_attention_heads', d.num_attention_heads, L.heads);
  const numKvHeads = f.posInt('num_key_value_heads', d.num_key_value_heads, L.heads);
  if (numHeads % numKvHeads !== 0) {
    throw new GemmaError(
      'BAD_FORMAT',
      `${f.file}: ${f.path('num_attention_heads')} (${numHeads}) must be a multiple of ${f.path('num_key_value_heads')} (${numKvHeads})`,
    );
  }
  const headDim = f.posInt('head_dim', d.head_dim, L.headDim);
  if (headDim % 2 !== 0) throw f.bad('head_dim', 'even (rotary embedding rotates pairs)');
  const rope = parseRope(f);
  return {
    vocabSize: f.posInt('vocab_size', d.vocab_size, L.vocabSize),
    hiddenSize: f.posInt('hidden_size', d.hidden_size, L.hiddenSize),
    intermediateSize: f.posInt('intermediate_size', d.intermediate_size, L.intermediateSize),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    queryPreAttnScalar: f.posNum('query_pre_attn_scalar', d.query_pre_attn_scalar),
    slidingWindow: f.posInt('sliding_window', d.sliding_window, L.positions),
    layerTypes: parseLayerTypes(f, numLayers),
    ...rope,
    rmsNormEps: f.posNum('rms_norm_eps', d.rms_norm_eps),
    maxPositionEmbeddings: f.posInt('max_position_embeddings', d.max_position_embeddings, L.positions),
    finalLogitSoftcap: f.posNumOrNull('final_logit_softcapping'),
    attnLogitSoftcap: f.posNumOrNull('attn_logit_softcapping'),
    tieWordEmbeddings: pick(f, outer, 'tie_word_embeddings', (g, k) => g.bool(k, true)),
    bosTokenId: pick(f, outer, 'bos_token_id', (g, k) => g.tokenId(k, d.bos_token_id)),
    eosTokenIds: pick(f, outer, 'eos_token_id', (g, k) => tokenIds(g, k) ?? [d.eos_token_id]),
    padTokenId: pick(f, outer, 'pad_token_id', (g, k) => g.tokenId(k, d.pad_token_id)),
  };
}

/** The text_config value if it has the key, else the top level's, else the default. */
function pick<T>(f: Fields, outer: Fields | null, key: string, read: (g: Fields, key: string) => T): T {
  if (f.obj[key] == null && outer !== null && outer.obj[key] != null) return read(outer, key);
  return read(f, key);
}

function parseLayerTypes(f: Fields, numLayers: number): LayerType[] {
  const lt = f.obj['layer_types'];
  if (lt !== undefined && lt !== null) {
    if (!Array.isArray(lt) || lt.length !== numLayers) {
      throw f.bad('layer_types', `an array of ${numLayers} entries (num_hidden_layers)`);
    }
    return lt.map((t, i) => {
      if (t === 'sliding_attention') return 'sliding';
      if (t === 'full_attention') return 'global';
      throw new GemmaError(
        'BAD_FORMAT',
        `${f.file}: ${f.path('layer_types')}[${i}] must be "sliding_attention" or "full_attention", got ${JSON.stringify(t)}`,
      );
    });
  }
  const p = f.obj['sliding_window_pattern'] == null ? TEXT_DEFAULTS.sliding_window_pattern : f.posInt('sliding_window_pattern', 6, LIMITS.layers + 1);
  return Array.from({ length: numLayers }, (_, i): LayerType => ((i + 1) % p !== 0 ? 'sliding' : 'global'));
}

type Rope = Pick<Gemma3TextConfig, 'ropeGlobalBase' | 'ropeLocalBase' | 'ropeGlobalScalingFactor' | 'ropeLocalScalingFactor'>;

/**
 * RoPE from either the flat 4.x keys (rope_theta, rope_local_base_freq, rope_scaling on global
 * layers only) or the v5 `rope_parameters` ({full_attention: {...}, sliding_attention: {...}}).
 */
function parseRope(f: Fields): Rope {
  const flatGlobal = f.posNum('rope_theta', TEXT_DEFAULTS.rope_theta);
  const flatLocal = f.posNum('rope_local_base_freq', TEXT_DEFAULTS.rope_local_base_freq);
  const rp = f.obj['rope_parameters'];
  if (rp !== undefined && rp !== null) {
    if (!isObject(rp)) throw f.bad('rope_parameters', 'an object');
    const perType = 'full_attention' in rp || 'sliding_attention' in rp;
    const full = perType ? rp['full_attention'] : rp;
    const sliding = perType ? rp['sliding_attention'] : undefined;
    const g = ropeEntry(f, full, perType ? 'rope_parameters.full_attention' : 'rope_parameters', flatGlobal);
    const l = ropeEntry(f, sliding, 'rope_parameters.sliding_attention', flatLocal);
    return { ropeGlobalBase: g.base, ropeLocalBase: l.base, ropeGlobalScalingFactor: g.factor, ropeLocalScalingFactor: l.factor };
  }
  return {
    ropeGlobalBase: flatGlobal,
    ropeLocalBase: flatLocal,
    ropeGlobalScalingFactor: ropeFactor(f, f.obj['rope_scaling'], 'rope_scaling'),
    ropeLocalScalingFactor: 1,
  };
}

function ropeEntry(f: Fields, entry: unknown, key: string, defaultBase: number): { base: number; factor: number } {
  if (entry === undefined || entry === null) return { base: defaultBase, factor: 1 };
  if (!isObject(entry)) throw new GemmaError('BAD_FORMAT', `${f.file}: ${f.prefix}${key} must be an object`);
  const sub = new Fields(entry, f.file, `${f.prefix}${key}.`);
  return { base: sub.posNum('rope_theta', defaultBase), factor: ropeFactor(f, entry, key) };
}

/** Linear scaling factor of one RoPE spec: null/absent/"default" → 1, "linear" → factor. */
function ropeFactor(f: Fields, spec: unknown, key: string): number {
  if (spec === undefined || spec === null) return 1;
  if (!isObject(spec)) throw new GemmaError('BAD_FORMAT', `${f.file}: ${f.prefix}${key} must be an object or null`);
  const type = spec['rope_type'] ?? spec['type'] ?? 'default';
  if (type === 'default') return 1;
  if (type !== 'linear') {
    throw new GemmaError('UNSUPPORTED_MODEL', `${f.file}: ${f.prefix}${key} rope_type ${JSON.stringify(type)} is not supported (only linear)`);
  }
  const factor = spec['factor'];
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0) {
    throw new GemmaError('BAD_FORMAT', `${f.file}: ${f.prefix}${key}.factor must be a positive number, got ${JSON.stringify(factor)}`);
  }
  return factor;
}

function parseVision(f: Fields): SiglipVisionConfig {
  const d = VISION_DEFAULTS;
  f.only('hidden_act', ['gelu_pytorch_tanh'], 'the Gemma 3 SigLIP tower uses gelu_pytorch_tanh');
  const L = LIMITS;
  const v: SiglipVisionConfig = {
    hiddenSize: f.posInt('hidden_size', d.hidden_size, L.hiddenSize),
    intermediateSize: f.posInt('intermediate_size', d.intermediate_size, L.intermediateSize),
    numLayers: f.posInt('num_hidden_layers', d.num_hidden_layers, L.layers),
    numHeads: f.posInt('num_attention_heads', d.num_attention_heads, L.heads),
    numChannels: f.posInt('num_channels', d.num_channels),
    imageSize: f.posInt('image_size', d.image_size, L.imageSize),
    patchSize: f.posInt('patch_size', d.patch_size, L.imageSize),
    layerNormEps: f.posNum('layer_norm_eps', d.layer_norm_eps),
  };
  // Images reach the tower as RGB, whatever the file says.
  if (v.numChannels !== 3) throw new GemmaError('UNSUPPORTED_MODEL', `${f.file}: ${f.path('num_channels')} is ${v.numChannels}; the Gemma 3 vision tower takes RGB (3)`);
  if (v.hiddenSize % v.numHeads !== 0) throw f.bad('num_attention_heads', `a divisor of hidden_size ${v.hiddenSize}`);
  if (v.imageSize % v.patchSize !== 0) throw f.bad('patch_size', `a divisor of image_size ${v.imageSize}`);
  if (v.imageSize / v.patchSize > L.patchesPerSide) {
    throw f.bad('patch_size', `at least image_size / ${L.patchesPerSide} (${v.imageSize / v.patchSize} patches per side is more than any Gemma 3 vision tower has)`);
  }
  return v;
}

function imageTokens(top: Fields, vision: SiglipVisionConfig | null): Pick<Gemma3Config, 'mmTokensPerImage' | 'boiTokenId' | 'eoiTokenId' | 'imageTokenId'> {
  const d = MM_DEFAULTS;
  // transformers accepts both spellings (attribute_map: boi_token_id → boi_token_index, ...).
  const id = (index: string, alias: string, def: number): number =>
    top.obj[index] == null && top.obj[alias] != null ? top.tokenId(alias, def) : top.tokenId(index, def);
  const mmTokensPerImage = top.posInt('mm_tokens_per_image', d.mm_tokens_per_image, LIMITS.patchesPerSide ** 2);
  if (vision !== null) {
    const perSide = Math.round(Math.sqrt(mmTokensPerImage));
    const patchesPerSide = vision.imageSize / vision.patchSize;
    if (perSide * perSide !== mmTokensPerImage || patchesPerSide % perSide !== 0) {
      throw new GemmaError(
        'BAD_FORMAT',
        `${top.file}: mm_tokens_per_image (${mmTokensPerImage}) must be a square k*k with k dividing the ${patchesPerSide} patches per side of the vision tower`,
      );
    }
  }
  return {
    mmTokensPerImage,
    boiTokenId: id('boi_token_index', 'boi_token_id', d.boi_token_index),
    eoiTokenId: id('eoi_token_index', 'eoi_token_id', d.eoi_token_index),
    imageTokenId: id('image_token_index', 'image_token_id', d.image_token_index),
  };
}

/** Reads and parses `dir/config.json`. */
export function loadConfig(dir: string): Gemma3Config {
  const path = join(dir, 'config.json');
  return parseConfig(readJsonFile(path, 'config.json', false), path);
}
