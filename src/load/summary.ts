// What a model is, read from its files without loading the weights (`gemma3 show`): the
// headers and configs are parsed and checked as load() would, no tensor is read.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { GemmaError } from '../errors.js';
import { countParameters } from '../model/parameters.js';
import { readCheckpointFolder } from './checkpoint-folder.js';
import type { ModelDescription } from './description.js';
import { readGgufFile } from './gguf-file.js';

export interface ModelSummary {
  path: string;
  format: 'safetensors' | 'gguf';
  /** `gemma3` (with a vision tower) or `gemma3_text`. */
  architecture: 'gemma3' | 'gemma3_text';
  parameters: number;
  /** The longest context the model was trained for (max_position_embeddings). */
  contextLength: number;
  /** The storage type of most of the decoder's weight bytes ('BF16', 'Q4_0', ...). */
  quantization: string;
  vision: boolean;
  layers: number;
  hiddenSize: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  slidingWindow: number;
  /** The chat template's Jinja source and where it came from, or null. */
  template: { source: string; origin: string } | null;
}

export async function summarizeModel(path: string): Promise<ModelSummary> {
  const target = resolve(path);
  if (!existsSync(target)) throw new GemmaError('FILE_NOT_FOUND', `${target} does not exist`);
  const folder = statSync(target).isDirectory();
  const model: ModelDescription = folder ? await readCheckpointFolder(target) : readGgufFile(target, undefined);
  try {
    const bytesByType = new Map<string, number>();
    for (const stored of model.text.names.values()) {
      const info = model.text.source.info(stored);
      bytesByType.set(info.dtype, (bytesByType.get(info.dtype) ?? 0) + info.sizeBytes);
    }
    const [top] = [...bytesByType].sort((a, b) => b[1] - a[1]);
    const t = model.config.text;
    return {
      path: target, format: folder ? 'safetensors' : 'gguf', architecture: model.vision ? 'gemma3' : 'gemma3_text',
      parameters: countParameters(model.config), contextLength: t.maxPositionEmbeddings,
      quantization: (top?.[0] ?? 'unknown').toUpperCase(), vision: model.vision !== null,
      layers: t.numLayers, hiddenSize: t.hiddenSize, heads: t.numHeads, kvHeads: t.numKvHeads, vocabSize: t.vocabSize,
      slidingWindow: t.slidingWindow,
      template: model.chatTemplate ? { source: model.chatTemplate.source, origin: model.chatTemplate.origin } : null,
    };
  } finally {
    model.close();
  }
}
