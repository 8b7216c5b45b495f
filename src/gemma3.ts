// The loaded model as users see it: chat and completion streams over one decoder, one KV cache
// (reused across turns when the new prompt extends the old one), the tokenizer and the template.
import type { ChatTemplate } from './chat/chat-template.js';
import type { ChatMessage } from './chat/messages.js';
import { GemmaError, invalidArgument } from './errors.js';
import { generate, validateGenerateOptions, type GenerateOptions, type GenerationChunk, type GenerationTarget } from './generate/generate.js';
import type { Gemma3Config } from './model/config.js';
import type { Gemma3TextDecoder } from './model/gemma3-text.js';
import { KvCache } from './model/kv-cache.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

/** Sampling defaults read from generation_config.json. */
export interface GenerationDefaults {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  eosTokenIds: number[];
}

/** Options of chat() and complete(): see GenerateOptions; unset values use generation_config.json. */
export type ChatOptions = GenerateOptions;

export interface LogitsResult {
  inputIds: number[];
  /** Per position: log-sum-exp of the logits row and the top-K (id, logit) pairs, descending. */
  positions: { logsumexp: number; top: [number, number][] }[];
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: NonNullable<GenerationChunk['finishReason']>;
  stats: NonNullable<GenerationChunk['stats']>;
}

export class Gemma3 {
  private readonly target: GenerationTarget;
  private disposed = false;
  private busy = false;

  constructor(
    /** Model hyper-parameters. */
    readonly config: Gemma3Config,
    readonly tokenizer: Tokenizer,
    /** The checkpoint's chat template, or null when it ships none (chat() then fails). */
    readonly chatTemplate: ChatTemplate | null,
    readonly defaults: GenerationDefaults,
    decoder: Gemma3TextDecoder,
    /** KV cache capacity in tokens. */
    readonly contextLength: number,
    /** Where the model was loaded from. */
    readonly path: string,
  ) {
    this.target = { decoder, cache: new KvCache(config.text, contextLength), tokenizer, cachedIds: [] };
  }

  get backend(): 'js' | 'native' {
    return this.target.decoder.backend.name;
  }

  /** Renders the conversation with the checkpoint's chat template (one BOS, generation prompt). */
  renderChat(messages: readonly ChatMessage[]): string {
    if (!this.chatTemplate) {
      throw new GemmaError('UNSUPPORTED_MODEL', `${this.path} has no chat template; use complete() with a formatted prompt`);
    }
    return this.chatTemplate.render(messages as ChatMessage[], { addGenerationPrompt: true });
  }

  /** Token ids the chat template gives for the conversation (ready for generation). */
  chatIds(messages: readonly ChatMessage[]): number[] {
    return this.tokenizer.encode(this.renderChat(messages), { addBos: false });
  }

  /** Streams the model's reply to a conversation. */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncGenerator<GenerationChunk> {
    this.checkUsable();
    validateGenerateOptions(options);
    return this.run(this.chatIds(messages), options);
  }

  /** Streams a raw completion: a string (tokenized with BOS, no template) or exact token ids. */
  complete(prompt: string | { ids: readonly number[] }, options: ChatOptions = {}): AsyncGenerator<GenerationChunk> {
    this.checkUsable();
    validateGenerateOptions(options);
    let ids: number[];
    if (typeof prompt === 'string') ids = this.tokenizer.encode(prompt, { addBos: true });
    else if (prompt && Array.isArray(prompt.ids)) ids = this.checkIds(prompt.ids);
    else throw invalidArgument('prompt', 'a string or { ids: number[] }', prompt);
    return this.run(ids, options);
  }

  /** One forward pass over `ids`: per-position log-sum-exp and top-K logits (scoring, diagnostics). */
  logits(ids: readonly number[], topK = 10): LogitsResult {
    this.checkUsable();
    const checked = this.checkIds(ids);
    if (!Number.isInteger(topK) || topK < 1) throw invalidArgument('top', 'a positive integer', topK);
    const { decoder } = this.target;
    if (checked.length > this.contextLength) {
      throw new GemmaError('CONTEXT_FULL', `${checked.length} tokens do not fit the context of ${this.contextLength} tokens`);
    }
    const cache = new KvCache(this.config.text, checked.length);
    const V = this.config.text.vocabSize;
    const positions: LogitsResult['positions'] = [];
    // Small chunks keep memory at a few logits rows, not T × vocabulary.
    const CHUNK = 16;
    for (let begin = 0; begin < checked.length; begin += CHUNK) {
      const part = checked.slice(begin, begin + CHUNK);
      const rows = decoder.forward({ ids: part }, cache, { logits: 'all' });
      for (let t = 0; t < part.length; t++) {
        const row = rows.subarray(t * V, (t + 1) * V);
        positions.push({ logsumexp: logSumExp(row), top: topLogits(row, topK) });
      }
    }
    return { inputIds: checked, positions };
  }

  /** Releases the weights and cache; the object is unusable afterwards. */
  dispose(): void {
    this.disposed = true;
    this.target.cachedIds = [];
  }

  /** The decoder, for schedulers that batch several sequences (the server). */
  get decoder(): Gemma3TextDecoder {
    this.checkUsable();
    return this.target.decoder;
  }

  /** Options with the unset values filled from generation_config.json. */
  withDefaults(options: ChatOptions): GenerateOptions {
    const d = this.defaults;
    return {
      temperature: d.temperature, topK: d.topK, topP: d.topP, minP: d.minP, repetitionPenalty: d.repetitionPenalty,
      stopTokenIds: d.eosTokenIds, ...stripUndefined(options),
    };
  }

  private async *run(ids: number[], options: ChatOptions): AsyncGenerator<GenerationChunk> {
    if (this.busy) throw new GemmaError('INVALID_ARGUMENT', 'this model is already generating; wait for the other stream to finish');
    this.busy = true;
    try {
      yield* generate(this.target, ids, this.withDefaults(options));
    } finally {
      this.busy = false;
    }
  }

  private checkIds(ids: readonly number[]): number[] {
    if (!Array.isArray(ids) || ids.length === 0) throw invalidArgument('ids', 'a non-empty array of token ids', ids);
    const V = this.config.text.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw invalidArgument('token id', `an integer in [0, ${V})`, id);
    }
    return [...ids];
  }

  private checkUsable(): void {
    if (this.disposed) throw new GemmaError('DISPOSED', 'this model was disposed');
  }
}

/** Drains a generation stream into its full text, ids, finish reason and stats. */
export async function collect(stream: AsyncIterable<GenerationChunk>): Promise<GenerationResult> {
  let text = '';
  const tokenIds: number[] = [];
  for await (const chunk of stream) {
    text += chunk.text;
    tokenIds.push(...chunk.tokenIds);
    if (chunk.finishReason && chunk.stats) return { text, tokenIds, finishReason: chunk.finishReason, stats: chunk.stats };
  }
  throw new GemmaError('ABORTED', 'the generation stream ended without a final chunk');
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function logSumExp(row: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - max);
  return max + Math.log(s);
}

function topLogits(row: Float32Array, k: number): [number, number][] {
  const top: [number, number][] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (top.length === k && v <= top[k - 1]![1]) continue;
    let j = top.length < k ? top.length : k - 1;
    if (top.length < k) top.push([i, v]);
    while (j > 0 && top[j - 1]![1] < v) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = [i, v];
  }
  return top;
}
