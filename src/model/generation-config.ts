// generation_config.json: the sampling defaults a checkpoint ships with (all optional).
import { join } from 'node:path';
import { GemmaError } from '../errors.js';
import { Fields, isObject, readJsonFile, tokenIds } from './json-fields.js';

/** The fields of generation_config.json the engine uses; each undefined when not set. */
export interface GenerationConfig {
  eosTokenIds?: number[];
  bosTokenId?: number;
  padTokenId?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
}

export function parseGenerationConfig(json: unknown, file = 'generation_config.json'): GenerationConfig {
  if (!isObject(json)) throw new GemmaError('BAD_FORMAT', `${file}: not a JSON object`);
  const f = new Fields(json, file, '');
  const opt = <T>(key: string, read: () => T): T | undefined => (json[key] == null ? undefined : read());
  const nonNeg = (key: string): number => {
    const v = json[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw f.bad(key, 'a non-negative number');
    return v;
  };
  const out: GenerationConfig = {
    eosTokenIds: tokenIds(f, 'eos_token_id'),
    bosTokenId: opt('bos_token_id', () => f.tokenId('bos_token_id', 0)),
    padTokenId: opt('pad_token_id', () => f.tokenId('pad_token_id', 0)),
    doSample: opt('do_sample', () => f.bool('do_sample', false)),
    temperature: opt('temperature', () => nonNeg('temperature')),
    topK: opt('top_k', () => {
      const v = nonNeg('top_k');
      if (!Number.isSafeInteger(v)) throw f.bad('top_k', 'a non-negative integer');
      return v;
    }),
    topP: opt('top_p', () => nonNeg('top_p')),
    minP: opt('min_p', () => nonNeg('min_p')),
    repetitionPenalty: opt('repetition_penalty', () => f.posNum('repetition_penalty', 1)),
  };
  for (const k of Object.keys(out) as (keyof GenerationConfig)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Reads `dir/generation_config.json`; the file is optional (missing → every field undefined). */
export function loadGenerationConfig(dir: string): GenerationConfig {
  const path = join(dir, 'generation_config.json');
  const json = readJsonFile(path, 'generation_config.json', true);
  return json === undefined ? {} : parseGenerationConfig(json, path);
}
