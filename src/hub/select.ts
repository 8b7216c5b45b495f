// Which files of a repository the engine needs: for a checkpoint folder, the configs, tokenizer,
// chat template, processor configs and the safetensors (the shards the index lists, nothing
// else); for a GGUF repository, one quantisation's file and the vision projector (mmproj).
import { GemmaError } from '../errors.js';

/** The small files of a checkpoint folder the engine reads (each optional but config.json). */
export const CHECKPOINT_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'chat_template.json', 'chat_template.jinja', 'preprocessor_config.json', 'processor_config.json',
] as const;

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
export const SAFETENSORS_SINGLE = 'model.safetensors';

/**
 * The quantisation taken when a GGUF repository is named without one: Q4_K_M (the default of
 * llama.cpp's -hf and Ollama), else Q4_0, else Q8_0, else the first file in name order.
 */
export const DEFAULT_QUANTS = ['Q4_K_M', 'Q4_0', 'Q8_0'] as const;

export type ModelKind = 'safetensors' | 'gguf';

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function isMmproj(path: string): boolean {
  return /^mmproj.*\.gguf$/i.test(baseName(path));
}

/** The model .gguf files (not the vision projectors), in name order. */
export function ggufModels(paths: readonly string[]): string[] {
  return paths.filter((p) => /\.gguf$/i.test(p) && !isMmproj(p)).sort();
}

/** The quantisation named in a GGUF file name (`gemma-3-4b-it-Q4_K_M.gguf` → `Q4_K_M`), upper-cased. */
export function quantOf(path: string): string | undefined {
  const stem = baseName(path).replace(/\.gguf$/i, '');
  const m = /(?:^|[-._])((?:I?Q\d(?:_[A-Za-z0-9]+)*)|BF16|F16|F32)(?=$|[-.])/i.exec(stem);
  return m?.[1]?.toUpperCase();
}

/** The quantisations a repository offers, for messages. */
export function availableQuants(paths: readonly string[]): string[] {
  return [...new Set(ggufModels(paths).map((p) => quantOf(p) ?? baseName(p)))];
}

const SPLIT = /-\d{5}-of-\d{5}\.gguf$/i;

/**
 * The model file for `quant` (case-insensitive, as llama.cpp's -hf matches it: the quantisation
 * as a whole word of the name first, else anywhere in it), or the default. Throws, listing what
 * there is, when nothing matches.
 */
export function pickGguf(paths: readonly string[], quant: string | undefined, repo: string): { file: string; quant: string } {
  const models = ggufModels(paths);
  if (models.length === 0) throw new GemmaError('FILE_NOT_FOUND', `${repo} has no GGUF model files`);
  let file: string | undefined;
  if (quant === undefined) {
    for (const q of DEFAULT_QUANTS) {
      file = models.find((p) => quantOf(p) === q);
      if (file) break;
    }
    file ??= models[0]!;
  } else {
    const wanted = quant.toUpperCase();
    file = models.find((p) => quantOf(p) === wanted) ?? models.find((p) => baseName(p).toUpperCase().includes(wanted));
    if (!file) {
      throw new GemmaError('FILE_NOT_FOUND',
        `${repo} has no GGUF file for quantisation ${quant}; available: ${availableQuants(paths).join(', ')}`);
    }
  }
  if (SPLIT.test(file)) {
    throw new GemmaError('UNSUPPORTED_MODEL', `${repo}: ${file} is one part of a split GGUF file, which this engine does not read; pick another quantisation`);
  }
  return { file, quant: quantOf(file) ?? baseName(file).replace(/\.gguf$/i, '') };
}

/** The vision projector to fetch with a GGUF model: F16 preferred, then BF16, F32, else the first. */
export function pickMmproj(paths: readonly string[]): string | undefined {
  const files = paths.filter(isMmproj).sort();
  for (const q of ['F16', 'BF16', 'F32']) {
    const hit = files.find((p) => quantOf(p) === q);
    if (hit) return hit;
  }
  return files[0];
}

/** What kind of repository this is for a reference with or without a quantisation; throws when neither. */
export function modelKind(paths: readonly string[], quant: string | undefined, repo: string): ModelKind {
  const has = new Set(paths);
  const checkpoint = has.has('config.json') && (has.has(SAFETENSORS_INDEX) || has.has(SAFETENSORS_SINGLE));
  if (quant !== undefined) {
    if (ggufModels(paths).length) return 'gguf';
    throw new GemmaError('FILE_NOT_FOUND', `${repo} has no GGUF files, so ':${quant}' names nothing${checkpoint ? `; pull ${repo} without ':${quant}' for its safetensors checkpoint` : ''}`);
  }
  if (checkpoint) return 'safetensors';
  if (ggufModels(paths).length) return 'gguf';
  throw new GemmaError('UNSUPPORTED_MODEL',
    `${repo} has no Gemma 3 files this engine reads: neither config.json with model.safetensors (or ${SAFETENSORS_INDEX}) nor a .gguf file`);
}

/** The shard names an index lists, checked against the repository's files. */
export function shardsOf(indexJson: unknown, paths: readonly string[], repo: string): string[] {
  const map = (indexJson as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new GemmaError('BAD_FORMAT', `${repo}: ${SAFETENSORS_INDEX} has no weight_map object`);
  }
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  const has = new Set(paths);
  for (const s of shards) {
    if (typeof s !== 'string' || !has.has(s)) {
      throw new GemmaError('BAD_FORMAT', `${repo}: ${SAFETENSORS_INDEX} names shard ${JSON.stringify(s)}, which the repository does not have`);
    }
  }
  return (shards as string[]).sort();
}
