// Tensor names of llama.cpp GGUF files ↔ the engine's canonical names. The canonical names ARE
// llama.cpp's (see weight-names.ts), so for a text GGUF the map is the identity; what this file
// adds is the presence/shape checks and the two mmproj quirks:
// * legacy mmproj files (examples/llava/gemma3_convert_encoder_to_gguf.py, March 2025) call fc1
//   `ffn_down` and fc2 `ffn_up`; llama.cpp (tools/mtmd/clip.cpp) detects the swap by shape, and so
//   do we: the SigLIP MLP matrix that maps hidden → intermediate is fc1 (canonical ffn_up);
// * layouts need no change: `v.patch_embd.weight` is the HF conv kernel [hidden, 3, p, p]
//   (ne = [p, p, 3, hidden]) and `mm.input_projection.weight` is the HF [visionHidden,
//   textHidden] array unchanged (ne = [textHidden, visionHidden]), i.e. NOT transposed into an
//   nn.Linear weight: llama.cpp multiplies by its transpose. Both match visionWeightSpecs.
// Norms: text GGUFs store 1 + w for every `*norm.weight`, mmproj files only for
// mm.soft_emb_norm (SigLIP LayerNorms are plain): load with NormConvention 'stored-as-is'.
import { GemmaError } from '../errors.js';
import type { Gemma3Config, Gemma3TextConfig } from '../model/config.js';
import { checkLayerCount, textWeightSpecs, visionWeightSpecs, type WeightSpec } from '../model/weight-names.js';
import type { TensorSource } from './tensor-source.js';

/**
 * Maps every text tensor the config requires to its GGUF name (the identity), checking presence
 * and shape. An untied config also needs `output.weight`. Throws MISSING_TENSOR / SHAPE_MISMATCH.
 */
export function resolveGgufTextTensors(source: TensorSource, config: Gemma3Config | Gemma3TextConfig): Map<string, string> {
  const text = 'text' in config ? config.text : config;
  checkLayerCount(source, 'blk.', 'attn_norm.weight', text.numLayers, 'gemma3.block_count');
  const out = new Map<string, string>();
  for (const spec of textWeightSpecs(text)) out.set(spec.canonical, check(source, spec, spec.canonical));
  return out;
}

/**
 * The same for the SigLIP tower and projector in an mmproj GGUF (empty map for a text-only
 * config), undoing the legacy ffn_up/ffn_down naming swap per layer.
 */
export function resolveGgufVisionTensors(source: TensorSource, config: Gemma3Config): Map<string, string> {
  const out = new Map<string, string>();
  const v = config.vision;
  if (v === null) return out;
  checkLayerCount(source, 'v.blk.', 'ln1.weight', v.numLayers, 'clip.vision.block_count');
  const swapped = new Set<number>();
  for (let j = 0; j < v.numLayers; j++) {
    const down = `v.blk.${j}.ffn_down.weight`;
    if (v.hiddenSize !== v.intermediateSize && source.has(down)) {
      const s = source.info(down).shape;
      if (s.length === 2 && s[0] === v.intermediateSize && s[1] === v.hiddenSize) swapped.add(j);
    }
  }
  for (const spec of visionWeightSpecs(config)) {
    const m = /^v\.blk\.(\d+)\.ffn_(up|down)\.(weight|bias)$/.exec(spec.canonical);
    const name = m !== null && swapped.has(Number(m[1]))
      ? `v.blk.${m[1]}.ffn_${m[2] === 'up' ? 'down' : 'up'}.${m[3]}`
      : spec.canonical;
    out.set(spec.canonical, check(source, spec, name));
  }
  return out;
}

function check(source: TensorSource, spec: WeightSpec, name: string): string {
  if (!source.has(name)) {
    const where = source.names().length > 0 ? source.info(source.names()[0]!).file : 'the GGUF file';
    throw new GemmaError('MISSING_TENSOR', `tensor ${name} (${spec.canonical}) is missing from ${where}`);
  }
  const info = source.info(name);
  if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i])) {
    throw new GemmaError(
      'SHAPE_MISMATCH',
      `tensor ${name} in ${info.file} has shape [${info.shape.join(', ')}], the metadata implies [${spec.shape.join(', ')}]`,
    );
  }
  return name;
}
