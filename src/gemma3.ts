// The loaded model as users see it: chat and completion streams over one decoder, one KV cache
// (reused across turns when the new prompt extends the old one), the tokenizer and the template;
// for vision checkpoints also the vision tower, run on the image parts of chat messages.
import type { KvType } from './backend/backend.js';
import type { ChatTemplate } from './chat/chat-template.js';
import type { ChatMessage } from './chat/messages.js';
import { imagePartsOf, prepareChat, type PreparedPrompt } from './chat/prompt.js';
import { GemmaError, invalidArgument } from './errors.js';
import { generate, validateGenerateOptions, type GenerateOptions, type GenerationChunk, type GenerationTarget } from './generate/generate.js';
import type { Gemma3Config } from './model/config.js';
import type { Gemma3TextDecoder } from './model/gemma3-text.js';
import { ImageFeatureCache } from './model/image-features.js';
import { Prompt } from './model/prompt.js';
import { KvCache } from './model/kv-cache.js';
import type { VisionEncoder } from './model/vision-model.js';
import { modelFingerprint, readSessionFile, Session } from './session.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import type { PreprocessorConfig } from './vision/preprocess.js';

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
export interface ChatOptions extends GenerateOptions {
  /**
   * chat() with images: add pan & scan crops of very wide or tall images (default: load()'s
   * `panAndScan`, else the checkpoint's do_pan_and_scan, which is false for the Google checkpoints).
   */
  panAndScan?: boolean;
}

/** Options of prepareChat() and logitsForMessages(). */
export interface PrepareOptions {
  panAndScan?: boolean;
  /** Aborts a remote image fetch. */
  signal?: AbortSignal;
}

/** What a vision checkpoint adds to the model (built by load()). */
export interface VisionSupport {
  encoder: VisionEncoder;
  preprocessor: PreprocessorConfig;
  /** Accept http(s) image URLs. */
  allowRemote: boolean;
  /** Largest input image in pixels (undefined: the decoder's default, 100 million). */
  maxPixels?: number;
  /** Default of the per-request panAndScan option. */
  panAndScan: boolean;
}


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

/** What a Gemma3 is made of (load() assembles them: load/assemble.ts). */
export interface Gemma3Parts {
  /** Model hyper-parameters. */
  config: Gemma3Config;
  tokenizer: Tokenizer;
  /** The checkpoint's chat template, or null when it ships none (chat() then fails). */
  chatTemplate: ChatTemplate | null;
  defaults: GenerationDefaults;
  decoder: Gemma3TextDecoder;
  /** KV cache capacity in tokens. */
  contextLength: number;
  /** Where the model was loaded from. */
  path: string;
  /** The vision tower and image preprocessing; absent or null for a text-only model. */
  vision?: VisionSupport | null;
}

export class Gemma3 {
  /** Model hyper-parameters. */
  readonly config: Gemma3Config;
  readonly tokenizer: Tokenizer;
  /** The checkpoint's chat template, or null when it ships none (chat() then fails). */
  readonly chatTemplate: ChatTemplate | null;
  readonly defaults: GenerationDefaults;
  /** KV cache capacity in tokens. */
  readonly contextLength: number;
  /** Where the model was loaded from. */
  readonly path: string;
  private readonly vision: VisionSupport | null;
  private readonly target: GenerationTarget;
  private readonly features: ImageFeatureCache | null;
  private disposed = false;
  private busy = false;

  constructor(parts: Gemma3Parts) {
    const { config, tokenizer, chatTemplate, defaults, decoder, contextLength, path, vision = null } = parts;
    this.config = config;
    this.tokenizer = tokenizer;
    this.chatTemplate = chatTemplate;
    this.defaults = defaults;
    this.contextLength = contextLength;
    this.path = path;
    this.vision = vision;
    this.target = { decoder, cache: decoder.createCache(contextLength), tokenizer, cachedIds: [] };
    this.features = vision ? new ImageFeatureCache(vision.encoder) : null;
  }

  /** How the KV cache stores keys and values (load's kvType). */
  get kvType(): KvType {
    return this.target.decoder.kvType;
  }

  /** Whether the checkpoint has a vision tower (chat messages may then carry image parts). */
  get hasVision(): boolean {
    return this.vision !== null;
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

  /**
   * Token ids the chat template gives for the conversation (ready for generation). Image parts stay
   * a bare `<start_of_image>` here: use prepareChat() for conversations with images.
   */
  chatIds(messages: readonly ChatMessage[]): number[] {
    return this.tokenizer.encode(this.renderChat(messages), { addBos: false });
  }

  /**
   * Token ids and pixel values for a conversation whose messages may carry image parts
   * (`{ type: 'image', image }`): images decoded and preprocessed (pan & scan crops when enabled),
   * the template rendered, each image placeholder expanded, the text tokenized. The vision tower
   * is not run. Fails with INVALID_ARGUMENT on a text-only checkpoint given images.
   */
  async prepareChat(messages: readonly ChatMessage[], options: PrepareOptions = {}): Promise<PreparedPrompt> {
    this.checkUsable();
    return this.prepare(messages, options, this.contextLength);
  }

  /**
   * Streams the model's reply to a conversation. Messages may carry image parts on vision
   * checkpoints (see ImagePart); images are decoded and encoded when the stream is first read.
   */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): AsyncGenerator<GenerationChunk> {
    return this.chatOn(this.target, messages, options);
  }

  /** @internal chat() on a given KV cache (a Session's). */
  chatOn(target: GenerationTarget, messages: readonly ChatMessage[], options: ChatOptions): AsyncGenerator<GenerationChunk> {
    this.checkUsable();
    validateGenerateOptions(options);
    checkPanAndScan(options.panAndScan);
    if (imagePartsOf(messages).length === 0) return this.run(target, this.chatIds(messages), options);
    this.requireVision(messages);
    this.renderChat(messages); // template and message errors now, not on the first read
    const snapshot = [...messages]; // the caller may push to its history before reading the stream
    return this.run(target, async () => {
      const prepared = await this.prepare(snapshot, options, this.contextLength - 1);
      return this.encodeImages(prepared, options.signal);
    }, options);
  }

  /** Streams a raw completion: a string (tokenized with BOS, no template) or exact token ids. */
  complete(prompt: string | { ids: readonly number[] }, options: ChatOptions = {}): AsyncGenerator<GenerationChunk> {
    return this.completeOn(this.target, prompt, options);
  }

  /** @internal complete() on a given KV cache (a Session's). */
  completeOn(target: GenerationTarget, prompt: string | { ids: readonly number[] }, options: ChatOptions): AsyncGenerator<GenerationChunk> {
    this.checkUsable();
    validateGenerateOptions(options);
    let ids: number[];
    if (typeof prompt === 'string') ids = this.tokenizer.encode(prompt, { addBos: true });
    else if (prompt && Array.isArray(prompt.ids)) ids = this.checkIds(prompt.ids);
    else throw invalidArgument('prompt', 'a string or { ids: number[] }', prompt);
    return this.run(target, ids, options);
  }

  /** One forward pass over `ids`: per-position log-sum-exp and top-K logits (scoring, diagnostics). */
  logits(ids: readonly number[], topK = 10): LogitsResult {
    this.checkUsable();
    const checked = this.checkIds(ids);
    checkTop(topK);
    return this.scoreIds(checked, topK);
  }

  /**
   * logits() of a conversation rendered with the chat template and the generation prompt, image
   * parts included (decoded, encoded by the vision tower and placed at their soft tokens).
   */
  async logitsForMessages(messages: readonly ChatMessage[], topK = 10, options: PrepareOptions = {}): Promise<LogitsResult> {
    this.checkUsable();
    checkTop(topK);
    if (imagePartsOf(messages).length === 0) return this.scoreIds(this.chatIds(messages), topK);
    const prepared = await this.prepare(messages, options, this.contextLength);
    return this.scoreIds(this.encodeImages(prepared, options.signal), topK);
  }

  private scoreIds(prompt: Prompt | number[], topK: number): LogitsResult {
    const { decoder } = this.target;
    const input = Prompt.from(prompt);
    const ids = input.ids;
    if (ids.length > this.contextLength) {
      throw new GemmaError('CONTEXT_FULL', `${ids.length} tokens do not fit the context of ${this.contextLength} tokens`);
    }
    const cache = new KvCache(this.config.text, ids.length, { type: decoder.kvType });
    const V = this.config.text.vocabSize;
    const positions: LogitsResult['positions'] = [];
    // Small chunks keep memory at a few logits rows, not T × vocabulary.
    const CHUNK = 16;
    for (let begin = 0; begin < ids.length;) {
      const end = input.chunkEnd(begin, CHUNK);
      const rows = decoder.forward(input.slice(begin, end), cache, { logits: 'all' });
      for (let t = 0; t < end - begin; t++) {
        const row = rows.subarray(t * V, (t + 1) * V);
        positions.push({ logsumexp: logSumExp(row), top: topLogits(row, topK) });
      }
      begin = end;
    }
    return { inputIds: [...ids], positions };
  }

  /**
   * A KV cache of its own for chat() and complete() calls: each call reuses the longest prefix of
   * its prompt that the session already holds (up to the first image), e.g. a long system prompt
   * or document kept across questions, side by side with the model's own conversation. Sessions
   * can be saved to a file and loaded back (see Session.save, loadSession).
   */
  createSession(): Session {
    this.checkUsable();
    return new Session(this, { ...this.target, cache: this.target.decoder.createCache(this.contextLength), cachedIds: [] });
  }

  /**
   * A session saved by Session.save(). Fails with BAD_FORMAT for a file that is not one, or is
   * corrupt or truncated, and with INVALID_ARGUMENT for one saved from another model, context
   * length or KV layout: never a cache that would silently give other logits.
   */
  async loadSession(path: string): Promise<Session> {
    const session = this.createSession();
    await readSessionFile(path, session.target, modelFingerprint(this.config.text, this.target.decoder.weights));
    return session;
  }

  /** Releases the weights and cache; the object is unusable afterwards. */
  dispose(): void {
    this.disposed = true;
    this.target.cachedIds = [];
    this.features?.clear();
  }

  /** The decoder, for schedulers that batch several sequences (the server). */
  get decoder(): Gemma3TextDecoder {
    this.checkUsable();
    return this.target.decoder;
  }

  /** Options with the unset values filled from generation_config.json. */
  withDefaults(options: ChatOptions): GenerateOptions {
    const d = this.defaults;
    const { panAndScan: _, ...generateOptions } = options;
    return {
      temperature: d.temperature, topK: d.topK, topP: d.topP, minP: d.minP, repetitionPenalty: d.repetitionPenalty,
      stopTokenIds: d.eosTokenIds, ...stripUndefined(generateOptions),
    };
  }

  private async *run(target: GenerationTarget, prompt: number[] | (() => Promise<Prompt>), options: ChatOptions): AsyncGenerator<GenerationChunk> {
    if (this.busy) throw new GemmaError('INVALID_ARGUMENT', 'this model is already generating; wait for the other stream to finish');
    this.busy = true;
    try {
      yield* generate(target, Array.isArray(prompt) ? prompt : await prompt(), this.withDefaults(options));
    } finally {
      this.busy = false;
    }
  }

  private async prepare(messages: readonly ChatMessage[], options: PrepareOptions, contextTokens: number): Promise<PreparedPrompt> {
    checkPanAndScan(options.panAndScan);
    const vision = this.requireVision(messages);
    if (!this.chatTemplate) this.renderChat(messages); // throws the no-template error
    return prepareChat(messages, {
      template: this.chatTemplate!,
      tokenizer: this.tokenizer,
      config: this.config,
      preprocessor: vision?.preprocessor ?? null,
      panAndScan: options.panAndScan ?? vision?.panAndScan ?? false,
      decode: {
        allowRemote: vision?.allowRemote ?? false,
        ...(vision?.maxPixels !== undefined ? { maxPixels: vision.maxPixels } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
      maxTokens: contextTokens,
      contextLength: this.contextLength,
    });
  }

  /**
   * Runs the vision tower on a prepared prompt's pictures: the embeddings and image blocks the
   * decoder needs (used by the server's batching scheduler).
   */
  encodeImages(prepared: PreparedPrompt, signal?: { readonly aborted: boolean }): Prompt {
    if (prepared.images.length === 0) return Prompt.ofIds(prepared.ids);
    const features = prepared.images.map((pixels) => {
      if (signal?.aborted) throw new GemmaError('ABORTED', 'aborted while encoding the images');
      return this.features!.encode(pixels, signal);
    });
    return Prompt.withImages(prepared.ids, features, this.config.imageTokenId);
  }

  /** The vision support, or (for messages with image parts) an error naming the missing tower. */
  private requireVision(messages: readonly ChatMessage[]): VisionSupport | null {
    if (this.vision || imagePartsOf(messages).length === 0) return this.vision;
    throw new GemmaError('INVALID_ARGUMENT',
      `the model in ${this.path} is text-only (it has no vision tower), so it cannot take images; ` +
      'use a Gemma 3 4B, 12B or 27B checkpoint for image input');
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

function checkPanAndScan(value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') throw invalidArgument('panAndScan', 'a boolean', value);
}

function checkTop(topK: number): void {
  if (!Number.isInteger(topK) || topK < 1) throw invalidArgument('top', 'a positive integer', topK);
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
