// load(file.gguf): a llama.cpp Gemma 3 GGUF (+ its mmproj vision file) → a ready Gemma3.
// What comes from where:
//   hyper-parameters  gemma3.* keys with llama.cpp's hard-coded Gemma 3 rules (model/gguf-config.ts:
//                     5:1 sliding pattern, local RoPE base 10000, attention scale by layer count)
//   weights           llama.cpp names; every norm already stores 1 + w ('stored-as-is'); the
//                     embedding has the tokenizer's 262144 rows and is the tied output head
//   tokenizer         tokenizer.ggml.* rebuilt as tokenizer.json's BPE (tokenizer/gguf-vocab.ts)
//   chat template     tokenizer.chat_template
//   sampling          Gemma's generation_config.json (temperature 1, top-k 64, top-p 0.95); stop on
//                     the file's eos (+ eot / eom) and on <eos> 1 and <end_of_turn> 106
//   vision            an mmproj GGUF (clip.projector_type gemma3): `options.mmproj`, else the one
//                     mmproj*.gguf next to the model (none or several: text only). Images are
//                     preprocessed as Hugging Face's Gemma3ImageProcessor does (PIL bilinear to the
//                     file's image_size, its mean / std), not with llama.cpp's own resize.
// The image soft token (262144) has no embedding row in such files: its positions always take the
// image features (the decoder allows ids past the table where an embedding is given).
import { readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Backend, WeightMatrix } from './backend/backend.js';
import { NativeBackend, nativeAllocator, nativeMapFile, selectBackend, type FileMapping } from './backend/native-backend.js';
import { ChatTemplate } from './chat/chat-template.js';
import { quantPlan, quantizingSource } from './convert/load-quant.js';
import { GemmaError, invalidArgument } from './errors.js';
import { openGguf, type GgufSource } from './formats/gguf.js';
import { resolveGgufTextTensors, resolveGgufVisionTensors } from './formats/gguf-names.js';
import type { DType, TensorSource } from './formats/tensor-source.js';
import { Gemma3, type GenerationDefaults, type VisionSupport } from './gemma3.js';
import { Gemma3TextDecoder } from './model/gemma3-text.js';
import type { Gemma3Config } from './model/config.js';
import { configFromGgufSource, visionConfigFromMmproj, withMmproj, type MmprojConfig } from './model/gguf-config.js';
import { loadVisionEncoder } from './model/vision-model.js';
import { loadTextWeights } from './model/weights.js';
import { layersPresent, textWeightSpecs } from './model/weight-names.js';
import { IMAGE_SOFT_TOKEN, tokenizerFromGguf } from './tokenizer/gguf-vocab.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import type { LoadOptions } from './load.js';
import { defaultPreprocessorConfig } from './vision/preprocess.js';

/** The options load() passes on (validated there). */
export type GgufLoadOptions = LoadOptions;

/** Gemma 3's generation_config.json (the GGUF has no sampling keys). */
export const GEMMA3_SAMPLING = { temperature: 1, topK: 64, topP: 0.95 } as const;
const DEFAULT_CONTEXT_LENGTH = 8192;

/** Loads a Gemma 3 GGUF file (path already resolved and known to be a file). */
export async function loadGgufModel(file: string, options: GgufLoadOptions): Promise<Gemma3> {
  const source = openGguf(file);
  let mapping: FileMapping | null = null;
  let mmSource: GgufSource | null = null;
  try {
    const arch = source.metadata.get('general.architecture');
    if (arch === 'clip') {
      throw new GemmaError('UNSUPPORTED_MODEL',
        `${file} is a vision projector (mmproj) file; load the Gemma 3 model GGUF and give this file as the mmproj option (CLI: --mmproj)`);
    }
    let config = configFromGgufSource(source);
    const maxContext = config.text.maxPositionEmbeddings;
    const contextLength = options.contextLength ?? Math.min(DEFAULT_CONTEXT_LENGTH, maxContext);
    if (!Number.isInteger(contextLength) || contextLength < 2 || contextLength > maxContext) {
      throw invalidArgument('contextLength', `an integer in [2, ${maxContext}]`, options.contextLength);
    }
    const tokenizer = tokenizerFromGguf(source.metadata, file);
    if (tokenizer.size < config.text.vocabSize) {
      throw new GemmaError('BAD_FORMAT', `${file}: the vocabulary has ${tokenizer.size} tokens but token_embd.weight has ${config.text.vocabSize} rows`);
    }
    const chatTemplate = templateOf(source, tokenizer, file);

    const mmprojPath = findMmproj(file, options.mmproj);
    let mmproj: OpenedMmproj | null = null;
    if (mmprojPath !== null) {
      mmproj = openMmproj(mmprojPath, config);
      mmSource = mmproj.source;
      config = mmproj.config;
      const soft = tokenizer.tokenId(IMAGE_SOFT_TOKEN);
      const boi = tokenizer.tokenId('<start_of_image>');
      if (soft !== config.imageTokenId || boi !== config.boiTokenId) {
        throw new GemmaError('UNSUPPORTED_MODEL',
          `${file}: the vocabulary does not have Gemma 3's image tokens (${IMAGE_SOFT_TOKEN} = ${config.imageTokenId}, ` +
          `<start_of_image> = ${config.boiTokenId}), so the images of ${mmprojPath} cannot be placed`);
      }
    }

    const textNames = resolveGgufTextTensors(source, config);
    let text: TensorSource = source;
    if (options.quant !== undefined) text = quantizingSource(source, quantPlan(source, config, options.quant, textNames));

    const total = textWeightSpecs(config.text).length;
    let done = 0;
    const backend = selectBackend(options.backend ?? 'auto', options.threads);
    let mapped: WeakSet<Uint8Array> | null = null;
    if (backend instanceof NativeBackend) {
      ({ mapping, mapped } = placeWeights(source, options.quant === undefined ? mmapMode(options.mmap) : false, backend));
    }
    // A tensor read is a fresh buffer the backend may rearrange in place; a view of the file
    // mapping must not be written (served in its row layout, see prepareMappedMatrix).
    const prepare = backend instanceof NativeBackend
      ? (w: WeightMatrix) => (mapped?.has(w.data) ? backend.prepareMappedMatrix(w) : backend.prepareMatrix(w, true))
      : undefined;
    const weights = loadTextWeights(text, textNames, config.text, 'stored-as-is', () => options.onProgress?.(Math.min(1, ++done / total)), prepare);
    const decoder = new Gemma3TextDecoder(config.text, weights, backend);
    const visionSupport = mmproj !== null ? loadMmprojVision(mmproj, backend, options) : null;
    options.onProgress?.(1);
    const defaults: GenerationDefaults = {
      ...GEMMA3_SAMPLING, minP: 0, repetitionPenalty: 1, eosTokenIds: config.text.eosTokenIds,
    };
    return new Gemma3(config, tokenizer, chatTemplate, defaults, decoder, contextLength, file, visionSupport);
  } finally {
    mapping?.close();
    source.close();
    mmSource?.close();
  }
}

/** An mmproj file opened and checked against the text model it will serve. */
export interface OpenedMmproj {
  readonly path: string;
  readonly source: GgufSource;
  /** The text model's config with the vision tower added. */
  readonly config: Gemma3Config;
  readonly mm: MmprojConfig;
  /** Canonical → stored tensor names (presence and shapes checked). */
  readonly names: Map<string, string>;
}

/**
 * Opens an mmproj GGUF for a text model whose config is `textConfig`: reads its clip.vision.* keys
 * and checks its tensors against them before anything is read. The caller closes `source`.
 */
export function openMmproj(path: string, textConfig: Gemma3Config): OpenedMmproj {
  const source = openGguf(path);
  try {
    const mm = visionConfigFromMmproj(source.metadata, path, layersPresent(source.names(), 'v.blk.'));
    const config = withMmproj(textConfig, mm, path);
    return { path, source, config, mm, names: resolveGgufVisionTensors(source, config) };
  } catch (e) {
    source.close();
    throw e;
  }
}

/** The vision tower and image preprocessing of an opened mmproj file. */
export function loadMmprojVision(mmproj: OpenedMmproj, backend: Backend, options: GgufLoadOptions): VisionSupport {
  const { source, config, mm, names } = mmproj;
  const vision = options.quant !== undefined
    ? quantizingSource(source, quantPlan(source, config, options.quant, new Map(), names))
    : source;
  const preprocessor = {
    ...defaultPreprocessorConfig(),
    size: { height: mm.vision.imageSize, width: mm.vision.imageSize },
    imageMean: mm.imageMean as [number, number, number],
    imageStd: mm.imageStd as [number, number, number],
    imageSeqLength: mm.mmTokensPerImage,
  };
  return {
    encoder: loadVisionEncoder(vision, config, backend, { names, norms: 'stored-as-is' }),
    preprocessor,
    allowRemote: options.allowRemoteImages ?? false,
    ...(options.maxImagePixels !== undefined ? { maxPixels: options.maxImagePixels } : {}),
    panAndScan: options.panAndScan ?? false,
  };
}

/** Tensor types the native kernels read exactly as stored (Q4_0 / Q8_0: see placeWeights). */
const READ_AS_STORED: ReadonlySet<DType> = new Set<DType>(['f32', 'f16', 'bf16']);

const HUGE_PAGE = 2 << 20;

function mmapMode(option: LoadOptions['mmap']): 'auto' | boolean {
  if (option !== undefined) return option;
  const env = process.env.GEMMA3_MMAP;
  return env === '1' ? true : env === '0' ? false : 'auto';
}

/**
 * Where the native backend's weights live. The file is mapped and read in at once (the pool's
 * threads in parallel, as llama.cpp's MAP_POPULATE does). Where the page cache holds it in 2 MiB
 * folios, tensors are views of that mapping: nothing is copied before the first token, loading
 * needs no fresh memory (whose first touch runs at 0.3-3 GB/s on some virtual machines) and the
 * kernels stream through 2 MiB TLB entries. BF16 / F16 / F32 are views, and so are Q4_0 / Q8_0
 * where the CPU has the x16 kernels (NativeBackend.servesQuantizedViews). Otherwise (4 KiB
 * folios: older kernels, or a file still cached from small writes) tensors are read into
 * huge-page memory, because decoding over a 4 KiB-page mapping ran 1.7x slower here. mode true
 * always maps, false never.
 */
function placeWeights(source: GgufSource, mode: 'auto' | boolean, backend: NativeBackend): { mapping: FileMapping | null; mapped: WeakSet<Uint8Array> | null } {
  const none = { mapping: null, mapped: null };
  const allocate = process.env.GEMMA3_HUGE_PAGES === '0' ? undefined : nativeAllocator();
  if (allocate) source.useAllocator(allocate);
  if (mode === false) return none;
  const quantViews = backend.servesQuantizedViews;
  const viewable = (dtype: DType) => READ_AS_STORED.has(dtype) || (quantViews && (dtype === 'q4_0' || dtype === 'q8_0'));
  let asViews = 0;
  let total = 0;
  for (const name of source.names()) {
    const { dtype, sizeBytes } = source.info(name);
    total += sizeBytes;
    if (viewable(dtype)) asViews += sizeBytes;
  }
  if (asViews === 0 || (mode === 'auto' && asViews < 0.5 * total)) return none;
  const mapping = nativeMapFile(source.path, true);
  if (!mapping) return none;
  if (mode === 'auto' && mapping.hugeBytes < 0.75 * mapping.bytes) {
    mapping.close();
    return none;
  }
  const mapped = new WeakSet<Uint8Array>();
  source.useMapper((_path, offset, length, dtype) => {
    // Small tensors (norms) are read: a view would keep its whole 2 MiB page counted in memory.
    const view = viewable(dtype) && length >= HUGE_PAGE ? mapping.view(offset, length) : null;
    if (view) mapped.add(view);
    else mapping.release(offset, length); // read into a copy instead: its pages need not stay
    return view;
  });
  return { mapping, mapped };
}

/**
 * The mmproj file for `file`: `explicit` (a path; false: none), else the single `mmproj*.gguf`
 * in the same folder (none or several: null).
 */
export function findMmproj(file: string, explicit: string | false | undefined): string | null {
  if (explicit === false) return null;
  if (explicit !== undefined) return resolve(explicit);
  const dir = dirname(file);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return null;
  }
  const found = entries.filter((f) => /^mmproj.*\.gguf$/i.test(f) && f !== basename(file));
  return found.length === 1 ? join(dir, found[0]!) : null;
}

/** tokenizer.chat_template with the special-token variables tokenizer_config.json would give. */
function templateOf(source: GgufSource, tokenizer: Tokenizer, file: string): ChatTemplate | null {
  const t = source.metadata.get('tokenizer.chat_template');
  if (typeof t !== 'string' || t === '') return null;
  const special: Record<string, string> = {};
  const piece = (id: number): string | undefined => (id >= 0 && id < tokenizer.size ? tokenizer.piece(id) : undefined);
  const set = (key: string, value: string | undefined): void => {
    if (value !== undefined) special[key] = value;
  };
  set('bos_token', piece(tokenizer.bosId));
  set('eos_token', piece(tokenizer.configEosId));
  set('pad_token', piece(tokenizer.padId));
  set('unk_token', piece(tokenizer.unkId));
  for (const [key, token] of [['boi_token', '<start_of_image>'], ['eoi_token', '<end_of_image>'], ['image_token', IMAGE_SOFT_TOKEN]] as const) {
    if (tokenizer.tokenId(token) !== undefined) special[key] = token;
  }
  return new ChatTemplate(t, { specialTokens: special, origin: `${file} (tokenizer.chat_template)` });
}
