// The prefill + decode loop: prompt ids in, an async stream of text chunks out. Owns sampling,
// stop ids and stop strings, the UTF-8-safe detokenizer, cancellation and timing; knows nothing
// of chat formats or HTTP.
import { GemmaError, invalidArgument } from '../errors.js';
import type { Gemma3TextDecoder } from '../model/gemma3-text.js';
import { Prompt } from '../model/prompt.js';
import type { KvCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { GrammarEngine, type GrammarConstraint } from '../grammar/grammar.js';
import { grammarSpecOf, type GrammarOptions } from '../grammar/options.js';
import { validateLogitAdjust, type LogitAdjustOptions } from './logit-adjust.js';
import { MAX_TOP_LOGPROBS, type TokenLogprob } from './logprobs.js';
import { Reply, type FinishReason } from './reply.js';
import { SAMPLABLE_VOCAB, validateSamplingOptions, type SamplingOptions } from './sampler.js';

export interface GenerateOptions extends SamplingOptions, GrammarOptions, LogitAdjustOptions {
  /** Report each sampled token's log-probability (chunk.logprobs) with this many alternatives (0..20). */
  logprobs?: number;
  /** Most tokens to generate (default 512); generation also ends when the context is full. */
  maxTokens?: number;
  /** Extra strings that end generation; the reply is cut before them. */
  stop?: readonly string[];
  /** Token ids that end generation (default: the model's eos ids, e.g. 1 and 106). */
  stopTokenIds?: readonly number[];
  signal?: AbortSignal;
}

export type { FinishReason } from './reply.js';

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
  /** With the logprobs option: the log-probability of each id in tokenIds, with the top alternatives. */
  logprobs?: TokenLogprob[];
  /** Present on the last chunk only. */
  finishReason?: FinishReason;
  stats?: GenerationStats;
}


export interface GenerationTarget {
  decoder: Gemma3TextDecoder;
  cache: KvCache;
  tokenizer: Tokenizer;
  /** Ids already in the cache (kept in sync here, for prefix reuse by the caller). */
  cachedIds: number[];
  /**
   * The first image position among the cached ids, if any: the ids there are placeholders whose
   * embeddings the cache does not record, so no later prompt reuses past it.
   */
  cachedFirstImage?: number;
}

export function validateGenerateOptions(o: GenerateOptions): void {
  validateSamplingOptions(o);
  if (o.maxTokens !== undefined && (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)) {
    throw invalidArgument('maxTokens', 'a positive integer', o.maxTokens);
  }
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string' || s === ''))) {
    throw invalidArgument('stop', 'an array of non-empty strings', o.stop);
  }
  grammarSpecOf(o);
  validateLogitAdjust(o);
  if (o.logprobs != null && !(Number.isInteger(o.logprobs) && o.logprobs >= 0 && o.logprobs <= MAX_TOP_LOGPROBS)) {
    throw invalidArgument('logprobs', `an integer in [0, ${MAX_TOP_LOGPROBS}] (alternatives per token)`, o.logprobs);
  }
}

/**
 * The grammar a reply is held to, compiled (cached) for this vocabulary, or null. Stop ids end
 * the reply only where the grammar may end.
 */
export async function constraintFor(tokenizer: Tokenizer, vocabSize: number, o: GenerateOptions): Promise<GrammarConstraint | null> {
  const spec = grammarSpecOf(o);
  if (!spec) return null;
  const stopIds = o.stopTokenIds?.length ? o.stopTokenIds : [tokenizer.eosId];
  return GrammarEngine.for(tokenizer, vocabSize).constraint(spec, stopIds);
}

/**
 * Generates after `prompt` (token ids, or a Prompt with image blocks). The cache may already hold
 * a prefix of the prompt (tracked by target.cachedIds); only the rest is computed.
 */
export async function* generate(target: GenerationTarget, prompt: Prompt | readonly number[], options: GenerateOptions): AsyncGenerator<GenerationChunk> {
  validateGenerateOptions(options);
  const { decoder, cache, tokenizer } = target;
  const input = Prompt.from(prompt);
  const promptIds = input.ids;
  if (promptIds.length === 0) throw new GemmaError('INVALID_ARGUMENT', 'the prompt is empty');
  if (promptIds.length >= cache.capacity) {
    throw new GemmaError('CONTEXT_FULL',
      `the prompt has ${promptIds.length} tokens but the context holds ${cache.capacity} (at least one more is needed to reply); ` +
      'shorten the prompt or load the model with a larger contextLength');
  }
  const constraint = await constraintFor(tokenizer, decoder.config.vocabSize, options);
  const reply = new Reply(tokenizer, promptIds, options, Math.min(SAMPLABLE_VOCAB, decoder.config.vocabSize), constraint);
  try {
    const reused = reusablePrefix(target, input);
    const started = performance.now();
    const logitsBuffer = new Float32Array(decoder.config.vocabSize);
    let logits = decoder.forward(input.slice(reused), cache, { logits: 'last', into: logitsBuffer });
    target.cachedIds = [...promptIds];
    if (input.blocks.length) target.cachedFirstImage = Math.min(target.cachedFirstImage ?? Infinity, input.firstImagePosition);
    const prefillMs = performance.now() - started;
    let firstTokenMs = 0;
    const decodeStarted = performance.now();

    for (;;) {
      if (options.signal?.aborted) {
        reply.end('abort');
        break;
      }
      if (reply.needsPrepare) await reply.prepare();
      const step = reply.accept(logits);
      if (reply.generated === 1) firstTokenMs = performance.now() - started;
      if (step.text || step.tokenIds.length) yield { text: step.text, tokenIds: step.tokenIds, ...(step.logprob ? { logprobs: [step.logprob] } : {}) };
      if (step.feed === null) break;
      if (cache.length + 1 > cache.capacity) {
        reply.end('length'); // context full
        break;
      }
      logits = decoder.forward({ ids: [step.feed] }, cache, { logits: 'last', into: logitsBuffer });
      target.cachedIds.push(step.feed);
      // Let timers, I/O and abort handlers run between tokens.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const decodeMs = performance.now() - decodeStarted;
    const tail = reply.flush();
    const finishReason = reply.finishReason!;
    const generated = reply.generated;
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
  } finally {
    reply.end('abort'); // frees the grammar of a stream its consumer left early (no-op when done)
  }
}

/**
 * How many leading prompt ids the cache already holds. At least the last prompt token is always
 * recomputed (its logits are needed); image tokens are never reused partially.
 */
function reusablePrefix(target: GenerationTarget, prompt: Prompt): number {
  const { cache, cachedIds } = target;
  const promptIds = prompt.ids;
  let n = 0;
  const limit = Math.min(cachedIds.length, cache.length, promptIds.length - 1);
  while (n < limit && cachedIds[n] === promptIds[n]) n++;
  // Image embeddings are keyed by content the ids don't show: never reuse across an image.
  n = Math.min(n, prompt.firstImagePosition, target.cachedFirstImage ?? Infinity);
  if (!cache.canTruncateTo(n)) n = 0;
  cache.truncate(n);
  target.cachedIds.length = n;
  if ((target.cachedFirstImage ?? Infinity) >= n) delete target.cachedFirstImage;
  return n;
}
