// The parameter count of a Gemma 3 checkpoint from its config alone: the text decoder and, for
// multimodal checkpoints, the SigLIP tower and the projector.
import type { Gemma3Config } from './config.js';

export function countParameters(config: Gemma3Config): number {
  const c = config.text;
  const perLayer = c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim * c.hiddenSize +
    3 * c.hiddenSize * c.intermediateSize + 4 * c.hiddenSize + 2 * c.headDim;
  const text = c.vocabSize * c.hiddenSize + c.numLayers * perLayer + c.hiddenSize;
  const v = config.vision;
  if (!v) return text;
  const H = v.hiddenSize;
  const patches = (v.imageSize / v.patchSize) ** 2;
  const siglipLayer = 4 * (H * H + H) + 2 * H * v.intermediateSize + v.intermediateSize + H + 4 * H;
  const siglip = v.numChannels * v.patchSize ** 2 * H + H + patches * H + v.numLayers * siglipLayer + 2 * H;
  const projector = H * c.hiddenSize + H;
  return text + siglip + projector;
}
