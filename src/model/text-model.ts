// Builds a ready-to-run text decoder from any TensorSource (safetensors folder or GGUF).
import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { Gemma3TextConfig } from './config.js';
import { Gemma3TextDecoder } from './gemma3-text.js';
import { resolveTextTensors } from './weight-names.js';
import { loadTextWeights, type NormConvention } from './weights.js';

export function loadTextDecoder(source: TensorSource, config: Gemma3TextConfig, backend: Backend,
                                options: { norms?: NormConvention; onTensor?: () => void } = {}): Gemma3TextDecoder {
  const names = resolveTextTensors(source, config);
  const prepare = backend.prepareMatrix?.bind(backend);
  const weights = loadTextWeights(source, names, config, options.norms ?? 'offset-by-one', options.onTensor, prepare);
  return new Gemma3TextDecoder(config, weights, backend);
}
