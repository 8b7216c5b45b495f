// Reader of a llama.cpp Gemma 3 GGUF (+ its mmproj vision file) → a ModelDescription.
// What comes from where:
//   hyper-parameters  gemma3.* keys with llama.cpp's hard-coded Gemma 3 rules (model/gguf-config.ts:
//                     5:1 sliding pattern, local RoPE base 10000, attention scale by layer count)
//   weights           llama.cpp names; every norm already stores 1 + w ('stored-as-is'); the
//                     embedding has the tokenizer's 262144 rows and is the tied output head
//   tokenizer         tokenizer.ggml.* rebuilt as tokenizer.json's BPE (tokenizer/gguf-vocab.ts)
//   chat template     tokenizer.chat_template
//   sampling          Gemma's generation_config.json (temperature 1, top-k 64, top-p 0.95); stop on
//                     the file's eos (+ eot / eom) and on <eos> 1 and <end_of_turn> 106
//   vision            an mmproj GGUF (clip.projector_type gemma3): load()'s `mmproj`, else the one
//                     mmproj*.gguf next to the model (none or several: text only). Images are
//                     preprocessed as Hugging Face's Gemma3ImageProcessor does (PIL bilinear to the
//                     file's image_size, its mean / std), not with llama.cpp's own resize.
// The image soft token (262144) has no embedding row in such files: its positions always take the
// image features (the decoder allows ids past the table where an embedding is given).
import { readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ChatTemplate } from '../chat/chat-template.js';
import { GemmaError } from '../errors.js';
import { openGguf, type GgufSource } from '../formats/gguf.js';
import { resolveGgufTextTensors, resolveGgufVisionTensors } from '../formats/gguf-names.js';
import type { Gemma3Config } from '../model/config.js';
import { configFromGgufSource, visionConfigFromMmproj, withMmproj } from '../model/gguf-config.js';
import { layersPresent } from '../model/weight-names.js';
import { IMAGE_SOFT_TOKEN, tokenizerFromGguf } from '../tokenizer/gguf-vocab.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { defaultPreprocessorConfig } from '../vision/preprocess.js';
import type { ModelDescription, VisionParts } from './description.js';

/** Gemma 3's generation_config.json (the GGUF has no sampling keys). */
export const GEMMA3_SAMPLING = { temperature: 1, topK: 64, topP: 0.95 } as const;

/**
 * Reads the GGUF `file` (resolved, known to be a file) and its mmproj: `mmproj` a path, false
 * for none, undefined to look for the single mmproj*.gguf beside it.
 */
export function readGgufFile(file: string, mmproj: string | false | undefined): ModelDescription {
  const source = openGguf(file);
  let opened: OpenedMmproj | null = null;
  try {
    const arch = source.metadata.get('general.architecture');
    if (arch === 'clip') {
      throw new GemmaError('UNSUPPORTED_MODEL',
        `${file} is a vision projector (mmproj) file; load the Gemma 3 model GGUF and give this file as the mmproj option (CLI: --mmproj)`);
    }
    const textConfig = configFromGgufSource(source);
    const tokenizer = tokenizerFromGguf(source.metadata, file);
    if (tokenizer.size < textConfig.text.vocabSize) {
      throw new GemmaError('BAD_FORMAT', `${file}: the vocabulary has ${tokenizer.size} tokens but token_embd.weight has ${textConfig.text.vocabSize} rows`);
    }
    const chatTemplate = templateOf(source, tokenizer, file);

    const mmprojPath = findMmproj(file, mmproj);
    if (mmprojPath !== null) {
      opened = openMmproj(mmprojPath, textConfig);
      const soft = tokenizer.tokenId(IMAGE_SOFT_TOKEN);
      const boi = tokenizer.tokenId('<start_of_image>');
      if (soft !== opened.config.imageTokenId || boi !== opened.config.boiTokenId) {
        throw new GemmaError('UNSUPPORTED_MODEL',
          `${file}: the vocabulary does not have Gemma 3's image tokens (${IMAGE_SOFT_TOKEN} = ${opened.config.imageTokenId}, ` +
          `<start_of_image> = ${opened.config.boiTokenId}), so the images of ${mmprojPath} cannot be placed`);
      }
    }
    const config = opened?.config ?? textConfig;
    const visionFile = opened;
    return {
      path: file,
      config,
      tokenizer,
      chatTemplate,
      defaults: { ...GEMMA3_SAMPLING, minP: 0, repetitionPenalty: 1, eosTokenIds: config.text.eosTokenIds },
      text: { source, names: resolveGgufTextTensors(source, config), norms: 'stored-as-is', mappable: source },
      vision: visionFile?.vision ?? null,
      close: () => {
        source.close();
        visionFile?.source.close();
      },
    };
  } catch (err) {
    source.close();
    opened?.source.close();
    throw err;
  }
}

/** An mmproj file opened and checked against the text model it will serve. */
export interface OpenedMmproj {
  readonly path: string;
  readonly source: GgufSource;
  /** The text model's config with the vision tower added. */
  readonly config: Gemma3Config;
  /** The tower's weights (names checked against `config`) and image preprocessing. */
  readonly vision: VisionParts;
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
    const preprocessor = {
      ...defaultPreprocessorConfig(), // doPanAndScan false, as for the Hugging Face checkpoints
      size: { height: mm.vision.imageSize, width: mm.vision.imageSize },
      imageMean: mm.imageMean as [number, number, number],
      imageStd: mm.imageStd as [number, number, number],
      imageSeqLength: mm.mmTokensPerImage,
    };
    const names = resolveGgufVisionTensors(source, config);
    return { path, source, config, vision: { weights: { source, names, norms: 'stored-as-is' }, preprocessor } };
  } catch (e) {
    source.close();
    throw e;
  }
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
