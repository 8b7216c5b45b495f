// Builds a ready-to-run text decoder from any TensorSource (safetensors folder or GGUF).
import type { Backend, WeightMatrix } from '../backend/backend.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { Gemma3TextConfig } from './config.js';
import { Gemma3TextDecoder } from './gemma3-text.js';
import { resolveTextTensors } from './weight-names.js';
import { loadTextWeights, type NormConvention } from './weights.js';

export function loadTextDecoder(source: TensorSource, config: Gemma3TextConfig, backend: Backend,
                                options: { norms?: NormConvention; onTensor?: () => void } = {}): Gemma3TextDecoder {
  const names = resolveTextTensors(source, config);
  // Freshly read tensors are ours alone, so backends may rearrange them in place.
  const prepare = backend.prepareMatrix ? (w: WeightMatrix) => backend.prepareMatrix!(w, true) : undefined;
  const weights = loadTextWeights(source, names, config, options.norms ?? 'offset-by-one', options.onTensor, prepare);
  return new Gemma3TextDecoder(config, weights, backend);
}
