// The prefill + decode loop: prompt ids in, an async stream of text chunks out. Owns sampling,
// stop ids and stop strings, the UTF-8-safe detokenizer, cancellation and timing; knows nothing
// of chat formats or HTTP.
import { GemmaError, invalidArgument } from '../errors.js';
import type { DecoderInput, Gemma3TextDecoder } from '../model/gemma3-text.js';
import type { KvCache } from '../model/kv-cache.js';
import { StreamingDetokenizer, type Tokenizer } from '../tokenizer/tokenizer.js';
import { Sampler, validateSamplingOptions, type SamplingOptions } from './sampler.js';
import { StopMatcher } from './stop.js';

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (default 512); generation also ends when the context is full. */
  maxTokens?: number;
  /** Extra strings that end generation; the reply is cut before them. */
  stop?: readonly string[];
  /** Token ids that end generation (default: the model's eos ids, e.g. 1 and 106). */
  stopTokenIds?: readonly number[];
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationStats {
  promptTokens: number;
  /** Prompt tokens actually computed (the rest came from the reused cache). */
  promptTokensComputed: number;
  generatedTokens: number;
  timeToFirstTokenMs: number;
  promptTokensPerSecond: number;
  generatedTokensPerSecond: number;
}

export interface GenerationChunk {
  /** Text since the previous chunk; never half a UTF-8 character, never part of a stop string. */
  text: string;
  /** Ids sampled since the previous chunk (a stop id is not included). */
  tokenIds: number[];
  /** Present on the last chunk only. */
  finishReason?: FinishReason;
  stats?: GenerationStats;
}

/** Ids that are real tokens: the untrained embedding rows past the tokenizer are never sampled. */
export const SAMPLABLE_VOCAB = 262144;

export interface GenerationTarget {
  decoder: Gemma3TextDecoder;
  cache: KvCache;
  tokenizer: Tokenizer;
  /** Ids already in the cache (kept in sync here, for prefix reuse by the caller). */
  cachedIds: number[];
}

export function validateGenerateOptions(o: GenerateOptions): void {
  validateSamplingOptions(o);
  if (o.maxTokens !== undefined && (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)) {
    throw invalidArgument('maxTokens', 'a positive integer', o.maxTokens);
  }
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string' || s === ''))) {
    throw invalidArgument('stop', 'an array of non-empty strings', o.stop);
  }
}

/**
 * Generates after `promptIds`. The cache may already hold a prefix of the prompt (tracked by
 * target.cachedIds); only the rest is computed.
 */
export async function* generate(target: GenerationTarget, promptIds: readonly number[], options: GenerateOptions,
                                extra?: Pick<DecoderInput, 'embeddings' | 'imageBlocks'>): AsyncGenerator<GenerationChunk> {
  validateGenerateOptions(options);
  const { decoder, cache, tokenizer } = target;
  if (promptIds.length === 0) throw new GemmaError('INVALID_ARGUMENT', 'the prompt is empty');
  if (promptIds.length >= cache.capacity) {
    throw new GemmaError('CONTEXT_FULL',
      `the prompt has ${promptIds.length} tokens but the context holds ${cache.capacity} (at least one more is needed to reply); ` +
      'shorten the prompt or load the model with a larger contextLength');
  }
  const maxTokens = options.maxTokens ?? 512;
  const stopIds = new Set(options.stopTokenIds ?? []);
  const sampler = new Sampler(options, Math.min(SAMPLABLE_VOCAB, decoder.config.vocabSize));
  const detok = new StreamingDetokenizer(tokenizer, { skipSpecialTokens: true });
  const stops = new StopMatcher(options.stop ?? []);
  const context: number[] = [...promptIds];

  const reused = reusablePrefix(target, promptIds, extra);
  const started = performance.now();
  let logits = decoder.forward(
    { ids: promptIds.slice(reused), ...shiftExtra(extra, reused) }, cache, { logits: 'last' });
  target.cachedIds = [...promptIds];
  const prefillMs = performance.now() - started;
  let firstTokenMs = 0;
  let generated = 0;
  let finishReason: FinishReason = 'length';
  const decodeStarted = performance.now();

  while (generated < maxTokens) {
    if (options.signal?.aborted) {
      finishReason = 'abort';
      break;
    }
    const id = sampler.sample(logits, context);
    if (generated === 0) firstTokenMs = performance.now() - started;
    generated++;
    if (stopIds.has(id)) {
      finishReason = 'stop';
      break;
    }
    context.push(id);
    const { emit, stopped } = stops.push(detok.push(id));
    if (stopped) {
      finishReason = 'stop';
      if (emit) yield { text: emit, tokenIds: [id] };
      break;
    }
    yield { text: emit, tokenIds: [id] };
    if (generated >= maxTokens) break;
    if (cache.length + 1 > cache.capacity) break; // context full: finish with 'length'
    logits = decoder.forward({ ids: [id] }, cache, { logits: 'last' });
    target.cachedIds.push(id);
    // Let timers, I/O and abort handlers run between tokens.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const decodeMs = performance.now() - decodeStarted;
  const tail = finishReason === 'stop' ? '' : stops.push(detok.flush()).emit + stops.flush();
  const computed = promptIds.length - reused;
  yield {
    text: tail,
    tokenIds: [],
    finishReason,
    stats: {
      promptTokens: promptIds.length,
      promptTokensComputed: computed,
      generatedTokens: generated,
      timeToFirstTokenMs: firstTokenMs,
      promptTokensPerSecond: prefillMs > 0 ? (computed / prefillMs) * 1000 : 0,
      generatedTokensPerSecond: generated > 1 && decodeMs > 0 ? ((generated - 1) / decodeMs) * 1000 : 0,
    },
  };
}

/**
 * How many leading prompt ids the cache already holds. At least the last prompt token is always
 * recomputed (its logits are needed); image tokens are never reused partially.
 */
function reusablePrefix(target: GenerationTarget, promptIds: readonly number[], extra?: Pick<DecoderInput, 'embeddings' | 'imageBlocks'>): number {
  const { cache, cachedIds } = target;
  let n = 0;
  const limit = Math.min(cachedIds.length, cache.length, promptIds.length - 1);
  while (n < limit && cachedIds[n] === promptIds[n]) n++;
  // Image embeddings are keyed by content the ids don't show: never reuse across an image.
  if (extra?.embeddings && extra.embeddings.size > 0) n = Math.min(n, Math.min(...extra.embeddings.keys()));
  if (!cache.canTruncateTo(n)) n = 0;
  cache.truncate(n);
  target.cachedIds.length = n;
  return n;
}

function shiftExtra(extra: Pick<DecoderInput, 'embeddings' | 'imageBlocks'> | undefined, by: number): Pick<DecoderInput, 'embeddings' | 'imageBlocks'> {
  if (!extra) return {};
  const embeddings = extra.embeddings && new Map([...extra.embeddings].map(([k, v]) => [k - by, v] as const));
  const imageBlocks = extra.imageBlocks?.map(([s, e]) => [s - by, e - by] as const);
  return { ...(embeddings ? { embeddings } : {}), ...(imageBlocks ? { imageBlocks } : {}) };
}
