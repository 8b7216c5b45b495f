// The per-sequence state of a reply after its prompt: sampling, stop ids, stop strings and the
// UTF-8-safe detokenizer. Shared by the single-stream loop (generate.ts) and the server's
// continuous-batching scheduler, which feed it logits from different decoder calls.
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { StreamingDetokenizer } from '../tokenizer/tokenizer.js';
import { Sampler, type SamplingOptions } from './sampler.js';
import { StopMatcher } from './stop.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface ReplyOptions extends SamplingOptions {
  maxTokens?: number;
  stop?: readonly string[];
  stopTokenIds?: readonly number[];
}

export interface ReplyStep {
  /** Text to emit now (possibly empty while UTF-8 bytes or a possible stop string are held back). */
  text: string;
  /** The sampled id, unless it was a stop id. */
  tokenIds: number[];
  /** The id to feed to the model next, or null when the reply is finished. */
  feed: number | null;
}

export class Reply {
  generated = 0;
  finishReason: FinishReason | null = null;
  private readonly sampler: Sampler;
  private readonly detok: StreamingDetokenizer;
  private readonly stops: StopMatcher;
  private readonly stopIds: Set<number>;
  private readonly context: number[];
  private readonly maxTokens: number;

  constructor(tokenizer: Tokenizer, promptIds: readonly number[], options: ReplyOptions, allowedVocab: number) {
    this.sampler = new Sampler(options, allowedVocab);
    this.detok = new StreamingDetokenizer(tokenizer, { skipSpecialTokens: true });
    this.stops = new StopMatcher(options.stop ?? []);
    this.stopIds = new Set(options.stopTokenIds ?? []);
    this.context = [...promptIds];
    this.maxTokens = options.maxTokens ?? 512;
  }

  get done(): boolean {
    return this.finishReason !== null;
  }

  /** Samples from the logits of the latest position and advances the reply. */
  accept(logits: Float32Array): ReplyStep {
    const id = this.sampler.sample(logits, this.context);
    this.generated++;
    if (this.stopIds.has(id)) {
      this.finishReason = 'stop';
      return { text: '', tokenIds: [], feed: null };
    }
    this.context.push(id);
    const { emit, stopped } = this.stops.push(this.detok.push(id));
    if (stopped) this.finishReason = 'stop';
    else if (this.generated >= this.maxTokens) this.finishReason = 'length';
    return { text: emit, tokenIds: [id], feed: this.done ? null : id };
  }

  /** Ends the reply early ('abort' when cancelled, 'length' when the context is full). */
  end(reason: FinishReason): void {
    if (!this.done) this.finishReason = reason;
  }

  /** Text still held back, released at the end (nothing after a stop string). */
  flush(): string {
    if (this.finishReason === 'stop') return '';
    return this.stops.push(this.detok.flush()).emit + this.stops.flush();
  }
}
