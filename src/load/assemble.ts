// The one place a model is built, whatever files it came from: a ModelDescription (from a format
// reader) and load()'s options, every default settled → a ready Gemma3. Here the context length
// is checked against the model, the backend chosen, the weights read (quantised when asked,
// GGUF files mapped where the backend can serve views) and the vision tower assembled.
import type { Backend, KvType } from '../backend/backend.js';
import { selectBackend, type BackendPreference } from '../backend/native-backend.js';
import { quantPlan, quantizingSource, type LoadQuant } from '../convert/load-quant.js';
import { invalidArgument } from '../errors.js';
import type { TensorSource } from '../formats/tensor-source.js';
import { Gemma3, type VisionSupport } from '../gemma3.js';
import type { Gemma3Config } from '../model/config.js';
import { Gemma3TextDecoder } from '../model/gemma3-text.js';
import { loadVisionEncoder } from '../model/vision-model.js';
import { loadTextWeights } from '../model/weights.js';
import type { ModelDescription, VisionParts, WeightSet } from './description.js';
import { placeWeights } from './mapped-weights.js';

/** KV cache capacity when load() is not given one (or the model's limit, if lower). */
export const DEFAULT_CONTEXT_LENGTH = 8192;

/**
 * A KV cache capacity in tokens: a number (refused above the model's limit), or `{ atMost: n }`,
 * n or the model's own limit if that is lower.
 */
export type ContextLength = number | { readonly atMost: number };

/** load()'s options with every default settled (the environment's included). */
export interface AssemblyOptions {
  readonly contextLength: ContextLength;
  readonly backend: BackendPreference;
  /** Threads for the native kernels (undefined: the backend's default). */
  readonly threads?: number;
  /** Quantise the float weights as they are read (convert/load-quant.ts). */
  readonly quant?: LoadQuant;
  /** Serve a GGUF file's weights from a memory mapping: 'auto', always or never (mapped-weights.ts). */
  readonly mmap: 'auto' | boolean;
  /** Read a GGUF file's tensors into huge-page memory, where the backend maps weights. */
  readonly hugePages: boolean;
  readonly onProgress?: (fraction: number) => void;
  readonly allowRemoteImages: boolean;
  readonly maxImagePixels?: number;
  /** Default of the per-request panAndScan (undefined: the preprocessor's do_pan_and_scan). */
  readonly panAndScan?: boolean;
  /** How the KV cache stores keys and values. */
  readonly kvType: KvType;
}

/** Builds the model `model` describes; the caller closes the description afterwards. */
export function assembleModel(model: ModelDescription, options: AssemblyOptions): Gemma3 {
  const { config, text } = model;
  const contextLength = contextLengthFor(config, options.contextLength);
  const backend = selectBackend(options.backend, options.threads);
  const progress = progressOf(model, options.onProgress);
  // Quantising rewrites every tensor it touches: nothing is left to serve from a mapping.
  const placement = text.mappable
    ? placeWeights(text.mappable, backend, options.quant === undefined ? options.mmap : false, options.hugePages)
    : null;
  try {
    const weights = loadTextWeights(readable(text, 'text', config, options.quant, progress), text.names, config.text, text.norms,
      undefined, placement?.prepare ?? ((w) => backend.prepareMatrix?.(w, true) ?? w));
    const decoder = new Gemma3TextDecoder(config.text, weights, backend, { kvType: options.kvType });
    const vision = model.vision ? assembleVision(model.vision, config, backend, options, progress) : null;
    options.onProgress?.(1);
    return new Gemma3({
      config, tokenizer: model.tokenizer, chatTemplate: model.chatTemplate, defaults: model.defaults,
      decoder, contextLength, path: model.path, vision,
    });
  } finally {
    placement?.mapping?.close(); // the views made stay mapped while they live
  }
}

/** The vision tower and image preprocessing of `parts`, ready for Gemma3. */
export function assembleVision(parts: VisionParts, config: Gemma3Config, backend: Backend,
                               options: Pick<AssemblyOptions, 'quant' | 'allowRemoteImages' | 'maxImagePixels' | 'panAndScan'>,
                               onRead?: () => void): VisionSupport {
  const { weights, preprocessor } = parts;
  const source = readable(weights, 'vision', config, options.quant, onRead);
  return {
    encoder: loadVisionEncoder(source, config, backend, { names: weights.names, norms: weights.norms }),
    preprocessor,
    allowRemote: options.allowRemoteImages,
    ...(options.maxImagePixels !== undefined ? { maxPixels: options.maxImagePixels } : {}),
    panAndScan: options.panAndScan ?? preprocessor.doPanAndScan,
  };
}

/** The KV cache capacity `requested` gives for the model: the one check against its limit. */
export function contextLengthFor(config: Gemma3Config, requested: ContextLength): number {
  const limit = config.text.maxPositionEmbeddings;
  const tokens = typeof requested === 'number' ? requested : Math.min(requested.atMost, limit);
  if (!Number.isInteger(tokens) || tokens < 2 || tokens > limit) {
    throw invalidArgument('contextLength', `an integer in [2, ${limit}]`, requested);
  }
  return tokens;
}

/** `weights.source` as the model reads it: quantised as asked, each read counted for progress. */
function readable(weights: WeightSet, part: 'text' | 'vision', config: Gemma3Config, quant: LoadQuant | undefined,
                  onRead: (() => void) | undefined): TensorSource {
  let source = weights.source;
  if (quant !== undefined) {
    const plan = part === 'text'
      ? quantPlan(source, config, quant, weights.names)
      : quantPlan(source, config, quant, new Map(), weights.names);
    source = quantizingSource(source, plan);
  }
  if (onRead === undefined) return source;
  const counted = source;
  return {
    names: () => counted.names(),
    has: (name) => counted.has(name),
    info: (name) => counted.info(name),
    read: (name) => {
      const tensor = counted.read(name);
      onRead();
      return tensor;
    },
    close: () => counted.close(),
  };
}

/** Called once per tensor read: onProgress with the fraction of the model's tensors read so far. */
function progressOf(model: ModelDescription, onProgress: ((fraction: number) => void) | undefined): (() => void) | undefined {
  if (onProgress === undefined) return undefined;
  const total = model.text.names.size + (model.vision?.weights.names.size ?? 0);
  let done = 0;
  return () => onProgress(Math.min(1, ++done / total));
}
