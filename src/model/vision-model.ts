// Image pixels → soft-token embeddings: the SigLIP tower followed by the Gemma 3 projector.
import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { Gemma3Config } from './config.js';
import { Gemma3Projector, loadProjectorWeights, type ProjectorObserver } from './projector.js';
import { SiglipEncoder, loadSiglipWeights, type SiglipObserver } from './siglip.js';
import { resolveVisionTensors } from './weight-names.js';
import type { NormConvention } from './weights.js';

export class VisionEncoder {
  constructor(readonly siglip: SiglipEncoder, readonly projector: Gemma3Projector) {}

  /** One normalised image [3, imageSize, imageSize] → [mmTokensPerImage, textHidden]. */
  encodeImage(pixels: Float32Array, observe?: { siglip?: SiglipObserver; projector?: ProjectorObserver }): Float32Array {
    const features = this.siglip.encode(pixels, observe?.siglip);
    return this.projector.project(features, observe?.projector);
  }
}

/**
 * `options.names`: canonical → stored names (default: resolveVisionTensors, the safetensors
 * layouts; an mmproj GGUF passes resolveGgufVisionTensors'). `options.norms`: how
 * mm.soft_emb_norm is stored (default 'offset-by-one'; mmproj GGUFs: 'stored-as-is').
 */
export function loadVisionEncoder(source: TensorSource, config: Gemma3Config, backend: Backend,
                                  options: { names?: ReadonlyMap<string, string>; norms?: NormConvention } = {}): VisionEncoder {
  if (!config.vision) throw new Error('internal: loadVisionEncoder on a text-only config');
  const names = options.names ?? resolveVisionTensors(source, config);
  return new VisionEncoder(
    new SiglipEncoder(config.vision, loadSiglipWeights(source, names, config.vision), backend),
    new Gemma3Projector(config, loadProjectorWeights(source, names, options.norms), backend),
  );
}
