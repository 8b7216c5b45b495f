// THE mapping table: canonical tensor name (GGUF style) ↔ safetensors name ↔ expected shape.
// Canonical names are llama.cpp's (`blk.{i}.attn_q.weight`, `v.blk.{j}.ln1.weight`, ...); shapes are
// PyTorch shapes ([out, in] for linear weights) computed from the config.
import { dirname } from 'node:path';
import { GemmaError } from '../errors.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { Gemma3Config, Gemma3TextConfig } from './config.js';

/**
 * How a checkpoint prefixes its names:
 * - `causal`: `Gemma3ForCausalLM` saves (the 1B): `model.`
 * - `released`: the 4B/12B/27B files as published (transformers 4.50): `language_model.model.`,
 *   `vision_tower.vision_model.`, `multi_modal_projector.`
 * - `resaved`: re-saved by transformers ≥ 4.52 / v5: `model.language_model.`,
 *   `model.vision_tower.vision_model.`, `model.multi_modal_projector.`
 */
export type PrefixFamily = 'causal' | 'released' | 'resaved';

/** Checked in this order (the longer prefixes first, although the names never collide). */
export const PREFIX_FAMILIES: readonly PrefixFamily[] = ['resaved', 'released', 'causal'];

export type WeightPart = 'text' | 'lm_head' | 'vision' | 'projector';

const PREFIXES: Readonly<Record<WeightPart, Readonly<Record<PrefixFamily, string | null>>>> = {
  text: { causal: 'model.', released: 'language_model.model.', resaved: 'model.language_model.' },
  lm_head: { causal: '', released: 'language_model.', resaved: '' },
  vision: { causal: null, released: 'vision_tower.vision_model.', resaved: 'model.vision_tower.vision_model.' },
  projector: { causal: null, released: 'multi_modal_projector.', resaved: 'model.multi_modal_projector.' },
};

export interface WeightSpec {
  /** GGUF-style name used throughout the engine. */
  readonly canonical: string;
  readonly part: WeightPart;
  /** Name below the part's prefix, e.g. `layers.3.self_attn.q_proj.weight`. */
  readonly local: string;
  /** Expected PyTorch shape. */
  readonly shape: readonly number[];
}

/** The full safetensors name of a tensor under a prefix family (null: that family has no such part). */
export function safetensorsName(spec: WeightSpec, family: PrefixFamily): string | null {
  const prefix = PREFIXES[spec.part][family];
  return prefix === null ? null : prefix + spec.local;
}

/** Per-layer text tensors: canonical suffix, HF suffix, shape. */
function layerSpecs(t: Gemma3TextConfig): [string, string, number[]][] {
  const H = t.hiddenSize;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  const F = t.intermediateSize;
  return [
    ['attn_norm.weight', 'input_layernorm.weight', [H]],
    ['attn_q.weight', 'self_attn.q_proj.weight', [q, H]],
    ['attn_k.weight', 'self_attn.k_proj.weight', [kv, H]],
    ['attn_v.weight', 'self_attn.v_proj.weight', [kv, H]],
    ['attn_q_norm.weight', 'self_attn.q_norm.weight', [t.headDim]],
    ['attn_k_norm.weight', 'self_attn.k_norm.weight', [t.headDim]],
    ['attn_output.weight', 'self_attn.o_proj.weight', [H, q]],
    ['post_attention_norm.weight', 'post_attention_layernorm.weight', [H]],
    ['ffn_norm.weight', 'pre_feedforward_layernorm.weight', [H]],
    ['ffn_gate.weight', 'mlp.gate_proj.weight', [F, H]],
    ['ffn_up.weight', 'mlp.up_proj.weight', [F, H]],
    ['ffn_down.weight', 'mlp.down_proj.weight', [H, F]],
    ['post_ffw_norm.weight', 'post_feedforward_layernorm.weight', [H]],
  ];
}

/** Every text tensor the decoder needs, in load order (13 per layer + 2, + `output.weight` if untied). */
export function textWeightSpecs(text: Gemma3TextConfig): WeightSpec[] {
  const H = text.hiddenSize;
  const specs: WeightSpec[] = [{ canonical: 'token_embd.weight', part: 'text', local: 'embed_tokens.weight', shape: [text.vocabSize, H] }];
  const perLayer = layerSpecs(text);
  for (let i = 0; i < text.numLayers; i++) {
    for (const [c, hf, shape] of perLayer) specs.push({ canonical: `blk.${i}.${c}`, part: 'text', local: `layers.${i}.${hf}`, shape });
  }
  specs.push({ canonical: 'output_norm.weight', part: 'text', local: 'norm.weight', shape: [H] });
  if (!text.tieWordEmbeddings) specs.push({ canonical: 'output.weight', part: 'lm_head', local: 'lm_head.weight', shape: [text.vocabSize, H] });
  return specs;
}

/** SigLIP tower + Gemma 3 projector tensors (empty for a text-only config). */
export function visionWeightSpecs(config: Gemma3Config): WeightSpec[] {
  const v = config.vision;
  if (v === null) return [];
  const H = v.hiddenSize;
  const I = v.intermediateSize;
  const patches = (v.imageSize / v.patchSize) ** 2;
  const specs: WeightSpec[] = [];
  const add = (canonical: string, local: string, shape: number[], part: WeightPart = 'vision'): void => {
    specs.push({ canonical, part, local, shape });
  };
  add('v.patch_embd.weight', 'embeddings.patch_embedding.weight', [H, v.numChannels, v.patchSize, v.patchSize]);
  add('v.patch_embd.bias', 'embeddings.patch_embedding.bias', [H]);
  add('v.position_embd.weight', 'embeddings.position_embedding.weight', [patches, H]);
  const perLayer: [string, string, number[], number[]][] = [
    ['ln1', 'layer_norm1', [H], [H]],
    ['attn_q', 'self_attn.q_proj', [H, H], [H]],
    ['attn_k', 'self_attn.k_proj', [H, H], [H]],
    ['attn_v', 'self_attn.v_proj', [H, H], [H]],
    ['attn_out', 'self_attn.out_proj', [H, H], [H]],
    ['ln2', 'layer_norm2', [H], [H]],
    ['ffn_up', 'mlp.fc1', [I, H], [I]],
    ['ffn_down', 'mlp.fc2', [H, I], [H]],
  ];
  for (let j = 0; j < v.numLayers; j++) {
    for (const [c, hf, wShape, bShape] of perLayer) {
      add(`v.blk.${j}.${c}.weight`, `encoder.layers.${j}.${hf}.weight`, wShape);
      add(`v.blk.${j}.${c}.bias`, `encoder.layers.${j}.${hf}.bias`, bShape);
    }
  }
  add('v.post_ln.weight', 'post_layernorm.weight', [H]);
  add('v.post_ln.bias', 'post_layernorm.bias', [H]);
  add('mm.soft_emb_norm.weight', 'mm_soft_emb_norm.weight', [H], 'projector');
  // Stored [vision_hidden, text_hidden] and used as x·W (not an nn.Linear weight).
  add('mm.input_projection.weight', 'mm_input_projection_weight', [H, config.text.hiddenSize], 'projector');
  return specs;
}

/** Where a source's tensors live, for error messages: its one file, or the shards' folder. */
export function describeSource(source: TensorSource): string {
  const files = new Set(source.names().map((n) => source.info(n).file));
  if (files.size === 0) return 'an empty checkpoint';
  const [first] = files;
  return files.size === 1 ? first! : dirname(first!);
}

/**
 * The layer indices `names` holds tensors for under `prefix` (`blk.`, `model.layers.`, ...). A
 * config declaring more layers is refused before a name is built for each declared layer: a
 * corrupt count (1e9) must not size anything.
 */
export function layerIndices(names: Iterable<string>, prefix: string): Set<number> {
  const seen = new Set<number>();
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const dot = name.indexOf('.', prefix.length);
    const index = name.slice(prefix.length, dot);
    if (dot > prefix.length && index.length < 10 && /^\d+$/.test(index)) seen.add(Number(index));
  }
  return seen;
}

/** How many distinct layers `names` holds tensors for under `prefix`. */
export function layersPresent(names: Iterable<string>, prefix: string): number {
  return layerIndices(names, prefix).size;
}

/**
 * MISSING_TENSOR when `declared` (what `key` says) exceeds the layers the source has tensors for
 * under `prefix`, naming the first layer's tensor `first` (e.g. `attn_norm.weight`) that is missing.
 */
export function checkLayerCount(source: TensorSource, prefix: string, first: string, declared: number, key: string): void {
  const present = layerIndices(source.names(), prefix);
  if (declared <= present.size) return;
  let missing = 0;
  while (present.has(missing)) missing++;
  throw new GemmaError('MISSING_TENSOR',
    `tensor ${prefix}${missing}.${first} is missing from ${describeSource(source)}: ${key} is ${declared}, but it has tensors ` +
    `for ${present.size} layer${present.size === 1 ? '' : 's'} (the checkpoint is incomplete, or the config does not belong to it)`);
}

/** The prefix family of the text decoder, found from where the token embedding is. */
export function detectTextFamily(source: TensorSource): PrefixFamily {
  const embd = EMBEDDING;
  for (const family of PREFIX_FAMILIES) if (source.has(safetensorsName(embd, family)!)) return family;
  const tried = PREFIX_FAMILIES.map((f) => safetensorsName(embd, f)).join(', ');
  throw new GemmaError('MISSING_TENSOR', `no token embedding (${tried}) in ${describeSource(source)}`);
}

const EMBEDDING: WeightSpec = { canonical: 'token_embd.weight', part: 'text', local: 'embed_tokens.weight', shape: [] };

/**
 * Maps every text tensor the config requires to its safetensors name, checking presence and
 * shape. Throws MISSING_TENSOR / SHAPE_MISMATCH naming the tensor and the checkpoint.
 * Takes the whole config or just its text part.
 */
export function resolveTextTensors(source: TensorSource, config: Gemma3Config | Gemma3TextConfig): Map<string, string> {
  const text = 'text' in config ? config.text : config;
  const family = detectTextFamily(source);
  checkLayerCount(source, `${PREFIXES.text[family]}layers.`, 'input_layernorm.weight', text.numLayers, 'num_hidden_layers');
  return resolve(source, textWeightSpecs(text), [family]);
}

/**
 * The same for the SigLIP tower and projector (empty map for a text-only config). The vision
 * prefix is found independently of the text one (both multimodal families are tried).
 */
export function resolveVisionTensors(source: TensorSource, config: Gemma3Config): Map<string, string> {
  if (config.vision === null) return new Map();
  const probe: WeightSpec = { canonical: 'v.patch_embd.weight', part: 'vision', local: 'embeddings.patch_embedding.weight', shape: [] };
  const found = (['resaved', 'released'] as const).filter((f) => source.has(safetensorsName(probe, f)!));
  const families = found.length > 0 ? found : (['released', 'resaved'] as const);
  checkLayerCount(source, `${PREFIXES.vision[families[0]!]}encoder.layers.`, 'layer_norm1.weight', config.vision.numLayers, 'vision_config.num_hidden_layers');
  return resolve(source, visionWeightSpecs(config), families);
}

function resolve(source: TensorSource, specs: WeightSpec[], families: readonly PrefixFamily[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const spec of specs) {
    const candidates = families.map((f) => safetensorsName(spec, f)).filter((n): n is string => n !== null);
    const name = candidates.find((n) => source.has(n));
    if (name === undefined) {
      throw new GemmaError('MISSING_TENSOR', `tensor ${candidates.join(' or ')} (${spec.canonical}) is missing from ${describeSource(source)}`);
    }
    const actual = source.info(name).shape;
    if (!sameShape(actual, spec.shape)) {
      throw new GemmaError(
        'SHAPE_MISMATCH',
        `tensor ${name} in ${source.info(name).file} has shape [${actual.join(', ')}], config.json implies [${spec.shape.join(', ')}]`,
      );
    }
    out.set(spec.canonical, name);
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
