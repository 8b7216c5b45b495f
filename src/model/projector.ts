// Gemma 3 multimodal projector: SigLIP patch grid → average pool to mmTokensPerImage tokens →
// Gemma RMSNorm (1 + w) → x · W with W stored [visionHidden, textHidden] (not transposed).
// ref: transformers models/gemma3/modeling_gemma3.py (Gemma3MultiModalProjector)
import type { Backend, WeightMatrix } from '../backend/backend.js';
import { toFloat32 } from '../formats/dtypes.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { Gemma3Config } from './config.js';
import { rmsNorm } from '../backend/js-ops.js';
import type { NormConvention } from './weights.js';

export interface ProjectorWeights {
  softEmbNorm: Float32Array; // effective scale (1 + w), [visionHidden]
  /** The projection transposed once at load to [textHidden, visionHidden], same dtype. */
  projection: WeightMatrix;
}

/** `norms`: 'offset-by-one' for Hugging Face checkpoints (w stored), 'stored-as-is' for mmproj GGUFs (1 + w stored). */
export function loadProjectorWeights(source: TensorSource, names: ReadonlyMap<string, string>,
                                     norms: NormConvention = 'offset-by-one'): ProjectorWeights {
  const norm = toFloat32(source.read(names.get('mm.soft_emb_norm.weight')!));
  if (norms === 'offset-by-one') for (let i = 0; i < norm.length; i++) norm[i] = Math.fround(1 + norm[i]!);
  const w = source.read(names.get('mm.input_projection.weight')!);
  const [inDim, outDim] = w.shape as [number, number];
  const elem = w.dtype === 'f32' ? 4 : 2;
  const transposed = new Uint8Array(inDim * outDim * elem);
  for (let i = 0; i < inDim; i++) {
    for (let o = 0; o < outDim; o++) {
      const src = (i * outDim + o) * elem;
      const dst = (o * inDim + i) * elem;
      for (let b = 0; b < elem; b++) transposed[dst + b] = w.data[src + b]!;
    }
  }
  return { softEmbNorm: norm, projection: { dtype: w.dtype, rows: outDim, cols: inDim, data: transposed } };
}

export interface ProjectorObserver {
  (stage: 'avg_pool' | 'soft_emb_norm', x: Float32Array): void;
}

export class Gemma3Projector {
  constructor(readonly config: Gemma3Config, readonly weights: ProjectorWeights, readonly backend: Backend) {}

  /** Patch features [patchesPerSide², visionHidden] → image embeddings [mmTokensPerImage, textHidden]. */
  project(features: Float32Array, observe?: ProjectorObserver): Float32Array {
    const vision = this.config.vision!;
    const H = vision.hiddenSize;
    const side = vision.imageSize / vision.patchSize;
    const tokensPerSide = Math.round(Math.sqrt(this.config.mmTokensPerImage));
    const kernel = side / tokensPerSide;
    const tokens = tokensPerSide * tokensPerSide;
    const pooled = new Float32Array(tokens * H); // [tokens, H], tokens row-major over the pooled grid
    const acc = new Float64Array(H);
    for (let ty = 0; ty < tokensPerSide; ty++) {
      for (let tx = 0; tx < tokensPerSide; tx++) {
        acc.fill(0);
        for (let ky = 0; ky < kernel; ky++) {
          for (let kx = 0; kx < kernel; kx++) {
            const p = (ty * kernel + ky) * side + tx * kernel + kx;
            for (let i = 0; i < H; i++) acc[i] += features[p * H + i]!;
          }
        }
        const o = (ty * tokensPerSide + tx) * H;
        for (let i = 0; i < H; i++) pooled[o + i] = acc[i]! / (kernel * kernel);
      }
    }
    observe?.('avg_pool', pooled);
    rmsNorm(pooled, pooled, this.weights.softEmbNorm, vision.layerNormEps, tokens, H);
    observe?.('soft_emb_norm', pooled);
    const out = new Float32Array(tokens * this.config.text.hiddenSize);
    this.backend.matMul(out, this.weights.projection, pooled, tokens);
    return out;
  }
}
