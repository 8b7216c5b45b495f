// load(path): a Hugging Face checkpoint folder or a llama.cpp GGUF file → a ready Gemma3, in
// three steps: options checked and settled (the environment is read here, once, and nowhere
// below), the files read into a ModelDescription by the reader of their format
// (load/checkpoint-folder.ts, load/gguf-file.ts), and the model built from it by the one
// assembler (load/assemble.ts). Everything a user can get wrong (missing folder, missing
// files, bad options) is reported before gigabytes are read.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { KV_TYPES, type KvType } from './backend/backend.js';
import { GemmaError, invalidArgument } from './errors.js';
import type { Gemma3 } from './gemma3.js';
import { assembleModel, DEFAULT_CONTEXT_LENGTH, type AssemblyOptions, type ContextLength } from './load/assemble.js';
import { readCheckpointFolder } from './load/checkpoint-folder.js';
import type { ModelDescription } from './load/description.js';
import { readGgufFile } from './load/gguf-file.js';

export { DEFAULT_CONTEXT_LENGTH, type ContextLength } from './load/assemble.js';
export type { KvType } from './backend/backend.js';

/** The KV cache type when load() is given none (README, "KV cache types", says why). */
export const DEFAULT_KV_TYPE: KvType = 'f32';

export interface LoadOptions {
  /**
   * Kernels: 'native' (the C addon; fails if it is not built), 'js' (pure TypeScript, same
   * results, much slower) or 'auto' (native when available, else js with one warning). Default 'auto'.
   */
  backend?: 'auto' | 'native' | 'js';
  /** Threads for the native kernels. Default: $GEMMA3_THREADS, else one per physical core. */
  threads?: number;
  /**
   * KV cache capacity in tokens: a number (refused above the model's max_position_embeddings), or
   * `{ atMost: n }` for n or the model's own limit if that is lower. Default
   * `{ atMost: DEFAULT_CONTEXT_LENGTH }` (8192). The capacity chosen is the model's contextLength.
   */
  contextLength?: ContextLength;
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
   * (q8_0: every matrix Q8_0; q4_0: Q4_0, the tied embedding / output head Q8_0; q4_k_m, q5_k_m
   * and q6_k: llama-quantize's Q4_K_M / Q5_K_M / Q6_K recipes, with its fallbacks for matrices
   * whose rows are not 256-blocks: Q5_0, Q5_1, Q8_0). Norms and 1-D
   * tensors stay float; already-quantised GGUF tensors are kept. Default: weights as stored.
   */
  quant?: 'q8_0' | 'q4_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k';
  /**
   * GGUF models on the native backend: serve the weights from a memory mapping of the file
   * instead of copies made at load (Q4_0 / Q8_0 are then used in the file's row layout).
   * 'auto' (default): BF16 / F16 / F32 weights when the page cache holds the file in 2 MiB pages
   * (then it loads in seconds and decodes as fast as from copies); Q4_0 / Q8_0 weights are read
   * into the kernels' x16 layout (load/mapped-weights.ts says why). true: always (Q4_0 / Q8_0
   * too); false: never.
   * The GEMMA3_MMAP environment variable (1 / 0) sets the default.
   */
  mmap?: 'auto' | boolean;
  /**
   * How the KV cache stores keys and values: 'f32' (default), or 'f16' / 'bf16' (half the
   * memory; keys and values are rounded to nearest even when stored and widened to float32 for
   * the attention arithmetic). README, "KV cache types", gives the memory per model and context.
   */
  kvType?: KvType;
}

export async function load(path: string, options: LoadOptions = {}): Promise<Gemma3> {
  if (typeof path !== 'string' || path === '') throw invalidArgument('path', 'a model folder or GGUF file path', path);
  const settled = settle(options, process.env);
  const target = resolve(path);
  if (!existsSync(target)) {
    throw new GemmaError('FILE_NOT_FOUND', `${/\.gguf$/i.test(target) ? 'GGUF file' : 'model folder'} ${target} does not exist`);
  }
  let model: ModelDescription;
  if (statSync(target).isDirectory()) {
    if (options.mmproj !== undefined && options.mmproj !== false) {
      throw new GemmaError('INVALID_ARGUMENT',
        `mmproj applies to GGUF models; ${target} is a Hugging Face checkpoint folder, whose vision tower (if any) is in its safetensors`);
    }
    model = await readCheckpointFolder(target);
  } else if (/\.gguf$/i.test(target) || startsWithGgufMagic(target)) {
    model = readGgufFile(target, options.mmproj);
  } else {
    throw new GemmaError('UNSUPPORTED_MODEL',
      `${target} is neither a checkpoint folder (config.json, *.safetensors, tokenizer.json) nor a GGUF file`);
  }
  try {
    return assembleModel(model, settled);
  } finally {
    model.close();
  }
}

/**
 * Checks the options and settles every default, the environment's included (README,
 * "Environment knobs"): GEMMA3_THREADS for `threads`, GEMMA3_MMAP for `mmap`, GEMMA3_HUGE_PAGES.
 */
function settle(options: LoadOptions, env: NodeJS.ProcessEnv): AssemblyOptions {
  if (options.backend !== undefined && !['auto', 'native', 'js'].includes(options.backend)) {
    throw invalidArgument('backend', "'auto', 'native' or 'js'", options.backend);
  }
  if (options.mmap !== undefined && options.mmap !== 'auto' && typeof options.mmap !== 'boolean') {
    throw invalidArgument('mmap', "'auto', true or false", options.mmap);
  }
  if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1 || options.threads > 64)) {
    throw invalidArgument('threads', 'an integer in [1, 64]', options.threads);
  }
  const contextLength = options.contextLength ?? { atMost: DEFAULT_CONTEXT_LENGTH };
  const tokens = typeof contextLength === 'object' && contextLength !== null ? contextLength.atMost : contextLength;
  if (!Number.isInteger(tokens) || tokens < 2) {
    // The model's own limit is checked by the assembler, once the model is read.
    throw invalidArgument('contextLength', 'an integer of at least 2, or { atMost: such an integer }', options.contextLength);
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
  if (options.quant !== undefined && !['q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k'].includes(options.quant)) {
    throw invalidArgument('quant', "'q8_0', 'q4_0', 'q4_k_m', 'q5_k_m' or 'q6_k'", options.quant);
  }
  if (options.kvType !== undefined && !KV_TYPES.includes(options.kvType)) {
    throw invalidArgument('kvType', KV_TYPES.map((t) => `'${t}'`).join(', '), options.kvType);
  }
  const envThreads = Number(env.GEMMA3_THREADS);
  const threads = options.threads ?? (Number.isInteger(envThreads) && envThreads > 0 ? envThreads : undefined);
  return {
    contextLength,
    backend: options.backend ?? 'auto',
    ...(threads !== undefined ? { threads } : {}),
    ...(options.quant !== undefined ? { quant: options.quant } : {}),
    mmap: options.mmap ?? (env.GEMMA3_MMAP === '1' ? true : env.GEMMA3_MMAP === '0' ? false : 'auto'),
    hugePages: env.GEMMA3_HUGE_PAGES !== '0',
    ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
    allowRemoteImages: options.allowRemoteImages ?? false,
    ...(maxImagePixels !== undefined ? { maxImagePixels } : {}),
    ...(options.panAndScan !== undefined ? { panAndScan: options.panAndScan } : {}),
    kvType: options.kvType ?? DEFAULT_KV_TYPE,
  };
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
