// load(path): a Hugging Face checkpoint folder → a ready Gemma3. Checks everything a user can
// get wrong (missing folder, missing files, bad options) before reading gigabytes.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { selectBackend } from './backend/native-backend.js';
import { loadChatTemplate, type ChatTemplate } from './chat/chat-template.js';
import { GemmaError, invalidArgument } from './errors.js';
import { openCheckpoint } from './formats/safetensors.js';
import { Gemma3, type GenerationDefaults, type VisionSupport } from './gemma3.js';
import { loadConfig, loadGenerationConfig } from './model/config.js';
import { loadTextDecoder } from './model/text-model.js';
import { loadVisionEncoder } from './model/vision-model.js';
import { loadTokenizer } from './tokenizer/tokenizer.js';
import { loadPreprocessorConfig } from './vision/preprocess.js';

export interface LoadOptions {
  /**
   * Kernels: 'native' (the C addon; fails if it is not built), 'js' (pure TypeScript, same
   * results, much slower) or 'auto' (native when available, else js with one warning). Default 'auto'.
   */
  backend?: 'auto' | 'native' | 'js';
  /** Threads for the native kernels. Default: $GEMMA3_THREADS, else every available core. */
  threads?: number;
  /** KV cache capacity in tokens. Default min(8192, the model's max_position_embeddings). */
  contextLength?: number;
  /** Called as weights load, with the fraction done in [0, 1]. */
  onProgress?: (fraction: number) => void;
  /** Allow http(s):// URLs as image sources (default false: they are refused). */
  allowRemoteImages?: boolean;
  /** Largest width × height of an input image, checked before decoding (default 100 million). */
  maxImagePixels?: number;
  /** Default of the per-request `panAndScan` option (default: the checkpoint's do_pan_and_scan, usually false). */
  panAndScan?: boolean;
}

export const DEFAULT_CONTEXT_LENGTH = 8192;

export async function load(path: string, options: LoadOptions = {}): Promise<Gemma3> {
  if (typeof path !== 'string' || path === '') throw invalidArgument('path', 'a model folder path', path);
  if (options.backend !== undefined && !['auto', 'native', 'js'].includes(options.backend)) {
    throw invalidArgument('backend', "'auto', 'native' or 'js'", options.backend);
  }
  if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1 || options.threads > 64)) {
    throw invalidArgument('threads', 'an integer in [1, 64]', options.threads);
  }
  if (options.allowRemoteImages !== undefined && typeof options.allowRemoteImages !== 'boolean') {
    throw invalidArgument('allowRemoteImages', 'a boolean', options.allowRemoteImages);
  }
  if (options.panAndScan !== undefined && typeof options.panAndScan !== 'boolean') {
    throw invalidArgument('panAndScan', 'a boolean', options.panAndScan);
  }
  const maxImagePixels = options.maxImagePixels;
  if (maxImagePixels !== undefined && (typeof maxImagePixels !== 'number' || Number.isNaN(maxImagePixels) || maxImagePixels <= 0)) {
    throw invalidArgument('maxImagePixels', 'a positive number', maxImagePixels);
  }
  const dir = resolve(path);
  if (!existsSync(dir)) throw new GemmaError('FILE_NOT_FOUND', `model folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) {
    throw new GemmaError('UNSUPPORTED_MODEL', `${dir} is a file; pass the checkpoint folder (config.json, *.safetensors, tokenizer.json)`);
  }
  const config = loadConfig(dir);
  const maxContext = config.text.maxPositionEmbeddings;
  const contextLength = options.contextLength ?? Math.min(DEFAULT_CONTEXT_LENGTH, maxContext);
  if (!Number.isInteger(contextLength) || contextLength < 2 || contextLength > maxContext) {
    throw invalidArgument('contextLength', `an integer in [2, ${maxContext}]`, options.contextLength);
  }
  const generationConfig = loadGenerationConfig(dir);
  const tokenizer = await loadTokenizer(dir);
  let chatTemplate: ChatTemplate | null = null;
  try {
    chatTemplate = await loadChatTemplate(dir);
  } catch (err) {
    if (!(err instanceof GemmaError && err.code === 'UNSUPPORTED_MODEL')) throw err;
  }

  const preprocessor = config.vision ? await loadPreprocessorConfig(dir) : null;
  if (config.vision && preprocessor) {
    const { height, width } = preprocessor.size;
    const side = config.vision.imageSize;
    if (height !== side || width !== side) {
      throw new GemmaError('UNSUPPORTED_MODEL',
        `${dir}: the image processor resizes to ${width}x${height} but the vision tower takes ${side}x${side} images`);
    }
  }

  const source = openCheckpoint(dir);
  let decoder;
  let vision: VisionSupport | null = null;
  try {
    const total = source.names().length;
    let done = 0;
    const backend = selectBackend(options.backend ?? 'auto', options.threads);
    decoder = loadTextDecoder(source, config.text, backend, {
      onTensor: () => options.onProgress?.(Math.min(1, ++done / total)),
    });
    if (config.vision && preprocessor) {
      vision = {
        encoder: loadVisionEncoder(source, config, backend),
        preprocessor,
        allowRemote: options.allowRemoteImages ?? false,
        ...(maxImagePixels !== undefined ? { maxPixels: maxImagePixels } : {}),
        panAndScan: options.panAndScan ?? preprocessor.doPanAndScan,
      };
    }
  } finally {
    source.close();
  }
  options.onProgress?.(1);

  const doSample = generationConfig.doSample ?? false;
  const defaults: GenerationDefaults = {
    temperature: doSample ? generationConfig.temperature ?? 1 : 0,
    topK: generationConfig.topK ?? 0,
    topP: generationConfig.topP ?? 1,
    minP: generationConfig.minP ?? 0,
    repetitionPenalty: generationConfig.repetitionPenalty ?? 1,
    eosTokenIds: generationConfig.eosTokenIds ?? config.text.eosTokenIds,
  };
  return new Gemma3(config, tokenizer, chatTemplate, defaults, decoder, contextLength, dir, vision);
}
