// Reader of a Hugging Face checkpoint folder: config.json, generation_config.json, the
// safetensors (one file or shards), tokenizer.json, the chat template and, for vision
// checkpoints, preprocessor_config.json → a ModelDescription.
import { loadChatTemplate, type ChatTemplate } from '../chat/chat-template.js';
import { GemmaError } from '../errors.js';
import { openCheckpoint } from '../formats/safetensors.js';
import type { GenerationDefaults } from '../gemma3.js';
import { loadConfig, loadGenerationConfig, type Gemma3Config, type GenerationConfig } from '../model/config.js';
import { resolveTextTensors, resolveVisionTensors } from '../model/weight-names.js';
import { loadTokenizer } from '../tokenizer/tokenizer.js';
import { loadPreprocessorConfig } from '../vision/preprocess.js';
import type { ModelDescription, VisionParts } from './description.js';

/** Reads the checkpoint folder `dir` (resolved, known to be a folder). */
export async function readCheckpointFolder(dir: string): Promise<ModelDescription> {
  const config = loadConfig(dir);
  const generationConfig = loadGenerationConfig(dir);
  // The weights' headers are checked against the config first: a truncated download or a
  // mismatched config.json is reported at once, before the tokenizer's 33 MB are parsed.
  const checkpoint = openCheckpoint(dir);
  try {
    const textNames = resolveTextTensors(checkpoint, config);
    const visionNames = config.vision ? resolveVisionTensors(checkpoint, config) : null;
    const tokenizer = await loadTokenizer(dir);
    let chatTemplate: ChatTemplate | null = null;
    try {
      chatTemplate = await loadChatTemplate(dir);
    } catch (err) {
      if (!(err instanceof GemmaError && err.code === 'UNSUPPORTED_MODEL')) throw err;
    }

    let vision: VisionParts | null = null;
    if (config.vision && visionNames) {
      const preprocessor = await loadPreprocessorConfig(dir);
      const { height, width } = preprocessor.size;
      const side = config.vision.imageSize;
      if (height !== side || width !== side) {
        throw new GemmaError('UNSUPPORTED_MODEL',
          `${dir}: the image processor resizes to ${width}x${height} but the vision tower takes ${side}x${side} images`);
      }
      vision = { weights: { source: checkpoint, names: visionNames, norms: 'offset-by-one' }, preprocessor };
    }
    return {
      path: dir,
      config,
      tokenizer,
      chatTemplate,
      defaults: generationDefaults(generationConfig, config),
      text: { source: checkpoint, names: textNames, norms: 'offset-by-one' },
      vision,
      close: () => checkpoint.close(),
    };
  } catch (err) {
    checkpoint.close();
    throw err;
  }
}

/** generation_config.json's sampling; unset keys sample as transformers does (greedy unless do_sample). */
function generationDefaults(generation: GenerationConfig, config: Gemma3Config): GenerationDefaults {
  const doSample = generation.doSample ?? false;
  return {
    temperature: doSample ? generation.temperature ?? 1 : 0,
    topK: generation.topK ?? 0,
    topP: generation.topP ?? 1,
    minP: generation.minP ?? 0,
    repetitionPenalty: generation.repetitionPenalty ?? 1,
    eosTokenIds: generation.eosTokenIds ?? config.text.eosTokenIds,
  };
}
