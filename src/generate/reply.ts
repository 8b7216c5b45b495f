// The per-sequence state of a reply after its prompt: sampling, stop ids, stop strings and the
// UTF-8-safe detokenizer. Shared by the single-stream loop (generate.ts) and the server's
// continuous-batching scheduler, which feed it logits from different decoder calls.
import type { GrammarConstraint } from '../grammar/grammar.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { StreamingDetokenizer } from '../tokenizer/tokenizer.js';
import { LogitAdjuster, type LogitAdjustOptions } from './logit-adjust.js';
import { tokenLogprob, type TokenLogprob } from './logprobs.js';
import { Sampler, type SamplingOptions } from './sampler.js';
import { StopMatcher } from './stop.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface ReplyOptions extends SamplingOptions, LogitAdjustOptions {
  maxTokens?: number;
  stop?: readonly string[];
  stopTokenIds?: readonly number[];
  /** Report each sampled token's log-probability with this many alternatives (0..20); unset = off. */
  logprobs?: number;
}

export interface ReplyStep {
  /** Text to emit now (possibly empty while UTF-8 bytes or a possible stop string are held back). */
  text: string;
  /** The sampled id, unless it was a stop id. */
  tokenIds: number[];
  /** The id to feed to the model next, or null when the reply is finished. */
  feed: number | null;
  /** The sampled token's log-probability (when asked for; not for a stop id). */
  logprob?: TokenLogprob;
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
  private readonly allowedVocab: number;
  private readonly adjuster: LogitAdjuster | null;
  private readonly logprobs: number | undefined;

  /**
   * `constraint`: the grammar this reply is held to (the reply owns it and frees it when done);
   * its mask must be computed (`prepare()`) before each accept().
   */
  constructor(tokenizer: Tokenizer, promptIds: readonly number[], options: ReplyOptions, allowedVocab: number,
              private readonly constraint: GrammarConstraint | null = null) {
    this.sampler = new Sampler(options, allowedVocab);
    this.allowedVocab = allowedVocab;
    this.adjuster = LogitAdjuster.of(options);
    this.logprobs = options.logprobs ?? undefined;
    this.detok = new StreamingDetokenizer(tokenizer, { skipSpecialTokens: true });
    this.stops = new StopMatcher(options.stop ?? []);
    this.stopIds = new Set(options.stopTokenIds ?? []);
    this.context = [...promptIds];
    this.maxTokens = options.maxTokens ?? 512;
  }

  get done(): boolean {
    return this.finishReason !== null;
  }

  /** Whether prepare() must run before the next accept() (a grammar's next mask is not computed yet). */
  get needsPrepare(): boolean {
    return !this.done && this.constraint !== null && this.constraint.needsPrepare;
  }

  /** Computes what the grammar allows next (asynchronous in xgrammar); nothing without a grammar. */
  async prepare(): Promise<void> {
    if (this.needsPrepare) await this.constraint!.prepare();
  }

  /**
   * Samples from the logits of the latest position and advances the reply. With a grammar, the
   * ids it does not allow are set to -Infinity in `logits` first (the row is changed in place).
   */
  accept(logits: Float32Array): ReplyStep {
    this.adjuster?.apply(logits);
    if (this.constraint && this.constraint.apply(logits, this.allowedVocab) === 0) {
      // The grammar is complete and allows no stop id either (none was given): the reply ends here.
      this.finish('stop');
      return { text: '', tokenIds: [], feed: null };
    }
    const id = this.sampler.sample(logits, this.context);
    this.generated++;
    if (this.stopIds.has(id)) {
      this.finish('stop');
      return { text: '', tokenIds: [], feed: null };
    }
    const logprob = this.logprobs !== undefined ? tokenLogprob(logits, id, this.logprobs, this.allowedVocab) : undefined;
    this.constraint?.accept(id);
    this.adjuster?.accept(id);
    this.context.push(id);
    const { emit, stopped } = this.stops.push(this.detok.push(id));
    if (stopped) this.finish('stop');
    else if (this.generated >= this.maxTokens) this.finish('length');
    return { text: emit, tokenIds: [id], feed: this.done ? null : id, ...(logprob ? { logprob } : {}) };
  }

  /** Ends the reply early ('abort' when cancelled, 'length' when the context is full). */
  end(reason: FinishReason): void {
    if (!this.done) this.finish(reason);
  }

  private finish(reason: FinishReason): void {
    this.finishReason = reason;
    this.constraint?.dispose();
  }

  /** Text still held back, released at the end (nothing after a stop string). */
  flush(): string {
    // After a stop string nothing follows; after a stop id, bytes of a byte-fallback run still
    // held back (say a "}" sampled as <0x7D>) are part of the reply.
    if (this.stops.stopped) return '';
    return this.stops.push(this.detok.flush()).emit + this.stops.flush();
  }
}
