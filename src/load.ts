// load(path): a Hugging Face checkpoint folder, or a llama.cpp GGUF file (load-gguf.ts) → a ready
// Gemma3. Checks everything a user can get wrong (missing folder, missing files, bad options)
// before reading gigabytes.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { selectBackend } from './backend/native-backend.js';
import { loadChatTemplate, type ChatTemplate } from './chat/chat-template.js';
import { GemmaError, invalidArgument } from './errors.js';
import { quantPlan, quantizingSource } from './convert/load-quant.js';
import { openCheckpoint } from './formats/safetensors.js';
import type { TensorSource } from './formats/tensor-source.js';
import { loadGgufModel } from './load-gguf.js';
import { Gemma3, type GenerationDefaults, type VisionSupport } from './gemma3.js';
import { loadConfig, loadGenerationConfig } from './model/config.js';
import { loadTextDecoder } from './model/text-model.js';
import { loadVisionEncoder } from './model/vision-model.js';
import { resolveTextTensors, resolveVisionTensors } from './model/weight-names.js';
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
  /**
   * GGUF models: the vision projector file (llama.cpp's `mmproj-*.gguf`) that gives the model its
   * image input. Default: the single `mmproj*.gguf` in the model file's folder, if there is exactly
   * one; false: none (text only). Not allowed with a Hugging Face folder (its vision tower is inside).
   */
  mmproj?: string | false;
  /**
   * Quantise the float weights as they load, with the tensor types `gemma3 convert --type` gives
   * (q8_0: every matrix Q8_0; q4_0: Q4_0, the tied embedding / output head Q8_0). Norms and 1-D
   * tensors stay float; already-quantised GGUF tensors are kept. Default: weights as stored.
   */
  quant?: 'q8_0' | 'q4_0';
  /**
   * GGUF models on the native backend: serve the weights from a memory mapping of the file
   * instead of copies made at load (Q4_0 / Q8_0 are then used in the file's row layout).
   * 'auto' (default): when the page cache holds the file in 2 MiB pages (then it loads in seconds
   * and decodes as fast as from copies); true: always; false: never.
   * The GEMMA3_MMAP environment variable (1 / 0) sets the default.
   */
  mmap?: 'auto' | boolean;
}

export const DEFAULT_CONTEXT_LENGTH = 8192;

export async function load(path: string, options: LoadOptions = {}): Promise<Gemma3> {
  if (typeof path !== 'string' || path === '') throw invalidArgument('path', 'a model folder or GGUF file path', path);
  if (options.backend !== undefined && !['auto', 'native', 'js'].includes(options.backend)) {
    throw invalidArgument('backend', "'auto', 'native' or 'js'", options.backend);
  }
  if (options.mmap !== undefined && options.mmap !== 'auto' && typeof options.mmap !== 'boolean') {
    throw invalidArgument('mmap', "'auto', true or false", options.mmap);
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
  if (options.mmproj !== undefined && options.mmproj !== false && (typeof options.mmproj !== 'string' || options.mmproj === '')) {
    throw invalidArgument('mmproj', 'the path of an mmproj GGUF file, or false', options.mmproj);
  }
  if (options.quant !== undefined && options.quant !== 'q8_0' && options.quant !== 'q4_0') {
    throw invalidArgument('quant', "'q8_0' or 'q4_0'", options.quant);
  }
  const dir = resolve(path);
  if (!existsSync(dir)) {
    throw new GemmaError('FILE_NOT_FOUND', `${/\.gguf$/i.test(dir) ? 'GGUF file' : 'model folder'} ${dir} does not exist`);
  }
  if (!statSync(dir).isDirectory()) {
    if (/\.gguf$/i.test(dir) || startsWithGgufMagic(dir)) return loadGgufModel(dir, options);
    throw new GemmaError('UNSUPPORTED_MODEL',
      `${dir} is neither a checkpoint folder (config.json, *.safetensors, tokenizer.json) nor a GGUF file`);
  }
  if (options.mmproj !== undefined && options.mmproj !== false) {
    throw new GemmaError('INVALID_ARGUMENT',
      `mmproj applies to GGUF models; ${dir} is a Hugging Face checkpoint folder, whose vision tower (if any) is in its safetensors`);
  }
  const config = loadConfig(dir);
  const maxContext = config.text.maxPositionEmbeddings;
  const contextLength = options.contextLength ?? Math.min(DEFAULT_CONTEXT_LENGTH, maxContext);
  if (!Number.isInteger(contextLength) || contextLength < 2 || contextLength > maxContext) {
    throw invalidArgument('contextLength', `an integer in [2, ${maxContext}]`, options.contextLength);
  }
  const generationConfig = loadGenerationConfig(dir);
  // The weights' headers are checked against the config first: a truncated download or a
  // mismatched config.json is reported at once, before the tokenizer's 33 MB are parsed.
  const checkpoint = openCheckpoint(dir);
  let decoder;
  let vision: VisionSupport | null = null;
  let tokenizer;
  let chatTemplate: ChatTemplate | null = null;
  try {
    const textNames = resolveTextTensors(checkpoint, config);
    const visionNames = config.vision ? resolveVisionTensors(checkpoint, config) : undefined;
    tokenizer = await loadTokenizer(dir);
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

    let source: TensorSource = checkpoint;
    if (options.quant !== undefined) {
      source = quantizingSource(checkpoint, quantPlan(checkpoint, config, options.quant, textNames, visionNames));
    }
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
    checkpoint.close();
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

/** Whether the file begins with "GGUF" (a GGUF model without the .gguf extension). */
function startsWithGgufMagic(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === 'GGUF';
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
