// Continuous batching. Each active sequence owns a KvCache and a Reply; every step
//   1. admits waiting sequences while fewer than `parallel` are active,
//   2. runs ONE decoder step (the weights are read once for all of it) holding the next token of
//      every decoding sequence and prompt chunks of newly admitted ones (up to the work of
//      `prefillBudget` prompt tokens at depth 0 a step: fewer tokens deep in a long prompt,
//      prefill-cost.ts), and feeds each logits row to that sequence's Reply.
// New sequences join between steps; a cancelled one leaves at once and its cache goes back to
// the pool. Synchronous math, driven by an async loop that yields to the event loop between
// steps so that submissions and cancellations arrive.
import { SAMPLABLE_VOCAB } from '../generate/sampler.js';
import type { GrammarConstraint } from '../grammar/grammar.js';
import type { TokenLogprob } from '../generate/logprobs.js';
import { Reply, type ReplyOptions, type ReplyStep } from '../generate/reply.js';
import type { Gemma3TextDecoder, Segment } from '../model/gemma3-text.js';
import { Prompt } from '../model/prompt.js';
import type { KvCache, RingSnapshot } from '../model/kv-cache.js';
import { imageKeysOf, MIN_CHECKPOINT_TOKENS, PromptCache, type ImageKey } from './prompt-cache.js';
import { prefillTokensAt } from './prefill-cost.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { DoneData } from './protocol.js';


export interface SchedulerEvents {
  /** A token was sampled; `text` is what it releases (often '' while bytes are held back). */
  token(id: number, text: string, logprob?: TokenLogprob): void;
  done(id: number, done: DoneData): void;
  failed(id: number, message: string): void;
  /** The number of active (prefilling or decoding) and waiting sequences changed. */
  load(active: number, waiting: number): void;
  /** A decode step advanced `batch` sequences together in `ms` milliseconds. */
  step?(batch: number, ms: number): void;
  /** The prompt cache now holds `sequences` finished sequences in `bytes`. */
  promptCache?(sequences: number, bytes: number): void;
  /** A good moment to deliver the events so far (after the prompts of a step, and after its decode). */
  flush?(): void;
}

export interface SchedulerOptions {
  /** Most sequences active at once (each holds a KV cache). */
  parallel: number;
  /** KV cache capacity of each sequence, in tokens. */
  context: number;
  /** Most prompt tokens computed in one step, so a long prompt does not stall the others. Default 256. */
  prefillBudget?: number;
  /**
   * Bytes of finished sequences' caches kept for reuse by later prompts that start the same way
   * (see prompt-cache.ts). Default 0: none (a finished cache is only recycled as a blank one).
   */
  cacheBytes?: number;
}

interface Sequence {
  readonly id: number;
  readonly prompt: Prompt;
  readonly reply: Reply;
  cache: KvCache | null;
  /** Prompt tokens already in the cache. */
  prefilled: number;
  /** Whether this sequence may start from, and be kept in, the prompt cache. */
  readonly cachePrompt: boolean;
  /** Prompt tokens that came from the prompt cache. */
  reused: number;
  /** Generated tokens fed back (written to the cache after the prompt), in order. */
  readonly fed: number[];
  /** The prompt's image blocks by content hash. */
  images: ImageKey[];
  /** Ring snapshots of this sequence's history (see KvCache.snapshotRings). */
  checkpoints: RingSnapshot[];
  /** A prompt position worth a ring snapshot (a prefix other prompts share), or 0. */
  checkpointAt: number;
  /**
   * A snapshot of the prompt's end is due: taken before the next step (or at release), once the
   * first token is on its way, so it does not delay it. The rings are then at most one position
   * past the prompt's end, well within their rollback.
   */
  snapshotDue: boolean;
  /** The token to feed next (decode phase), or -1 while the prompt is being computed. */
  next: number;
  activatedAt: number;
  firstTokenAt: number;
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private readonly pool: KvCache[] = [];
  private readonly promptCache: PromptCache;
  private readonly allowedVocab: number;
  private readonly prefillBudget: number;
  private running = false;
  private lastLoad = '';
  /** Logits of the last decode step, kept across steps (a fresh buffer per step costs page faults). */
  private logitsBuffer = new Float32Array(0);

  constructor(
    private readonly decoder: Gemma3TextDecoder,
    private readonly tokenizer: Tokenizer,
    private readonly options: SchedulerOptions,
    private readonly events: SchedulerEvents,
  ) {
    if (!Number.isInteger(options.parallel) || options.parallel < 1) throw new RangeError('parallel must be a positive integer');
    this.allowedVocab = Math.min(SAMPLABLE_VOCAB, decoder.config.vocabSize);
    this.prefillBudget = options.prefillBudget ?? 256;
    this.promptCache = new PromptCache(options.cacheBytes ?? 0);
    // Streams will decode together: let the decoder's kernels prepare for it now, while the server idles.
    if (options.parallel > 1) decoder.expectStreams(options.parallel);
  }

  /** Sequences active (holding a cache) and waiting for a slot. */
  get load(): { active: number; waiting: number } {
    return { active: this.active.length, waiting: this.waiting.length };
  }

  /** KV caches allocated for sequences (active plus pooled blank ones): at most `parallel` each. */
  get cachesAllocated(): number {
    return this.active.filter((s) => s.cache).length + this.pool.length;
  }

  /** Finished sequences kept by the prompt cache, and the bytes they hold. */
  get promptCacheUse(): { sequences: number; bytes: number } {
    return { sequences: this.promptCache.size, bytes: this.promptCache.bytes };
  }

  /**
   * Queues a prompt. `options` are complete (defaults applied); the prompt must leave room for at
   * least one generated token (checked by the caller, which can tell the client). `constraint`: the
   * sequence's own grammar matcher, if its reply is constrained (the scheduler frees it at the end).
   * `cachePrompt`: false computes the whole prompt and keeps nothing of it for later prompts.
   */
  add(id: number, promptOrIds: Prompt | readonly number[], options: ReplyOptions, constraint: GrammarConstraint | null = null, cachePrompt = true): void {
    const prompt = Prompt.from(promptOrIds);
    if (prompt.length === 0 || prompt.length >= this.options.context) {
      throw new RangeError(`prompt of ${prompt.length} tokens does not fit the context of ${this.options.context}`);
    }
    const reply = new Reply(this.tokenizer, prompt.ids, options, this.allowedVocab, constraint);
    this.waiting.push({
      id, prompt, reply, cache: null, prefilled: 0, next: -1, activatedAt: 0, firstTokenAt: 0,
      cachePrompt, reused: 0, fed: [], images: [], checkpoints: [], checkpointAt: 0, snapshotDue: false,
    });
    this.reportLoad();
    void this.drive();
  }

  /** Stops a sequence now (finish reason 'abort') and frees its cache. False if it is unknown. */
  cancel(id: number): boolean {
    const w = this.waiting.findIndex((s) => s.id === id);
    if (w >= 0) {
      const [seq] = this.waiting.splice(w, 1);
      seq!.reply.end('abort');
      this.finish(seq!);
      return true;
    }
    const seq = this.active.find((s) => s.id === id);
    if (!seq) return false;
    seq.reply.end('abort');
    this.finish(seq);
    return true;
  }

  /** Cancels every sequence, waiting or active. */
  cancelAll(): void {
    for (const seq of [...this.waiting, ...this.active]) this.cancel(seq.id);
  }

  /** One scheduling step (synchronous). Returns whether work remains. */
  step(): boolean {
    this.admit();
    this.reportLoad();
    this.computeStep();
    this.reportLoad();
    this.events.flush?.();
    return this.active.length + this.waiting.length > 0;
  }

  /** Runs steps until nothing is left, yielding to the event loop between them. */
  private async drive(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.active.length + this.waiting.length > 0) {
        await this.prepareGrammars();
        this.step();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Computes the next-token masks of constrained replies before a step (xgrammar's call is
   * asynchronous; it takes microseconds to a few milliseconds per sequence).
   */
  private async prepareGrammars(): Promise<void> {
    const pending = [...this.active, ...this.waiting].filter((s) => s.reply.needsPrepare);
    if (pending.length) await Promise.all(pending.map((s) => s.reply.prepare()));
  }

  private admit(): void {
    while (this.active.length < this.options.parallel && this.waiting.length > 0) {
      // A sequence queued after this step's grammar masks were computed waits for the next step
      // (its first token needs its mask); first come, first served still.
      if (this.waiting[0]!.reply.needsPrepare) break;
      const seq = this.waiting.shift()!;
      seq.activatedAt = performance.now();
      const blank = () => this.pool.pop() ?? this.decoder.createCache(this.options.context);
      const found = seq.cachePrompt && this.promptCache.budgetBytes > 0 ? this.promptCache.acquire(seq.prompt, blank) : null;
      if (found) {
        seq.cache = found.cache;
        seq.prefilled = seq.reused = found.reused;
        seq.checkpoints = found.checkpoints;
        seq.checkpointAt = found.checkpointAt;
      } else {
        seq.cache = blank();
        seq.cache.reset();
      }
      if (seq.cachePrompt) seq.images = imageKeysOf(seq.prompt);
      this.active.push(seq);
    }
  }

  /**
   * One pass over the weights for everything active: the next token of every decoding sequence
   * and, oldest first, a prompt chunk of each sequence still reading its prompt, up to the step's
   * budget of prompt tokens. A newcomer's prompt so rides along with the others' decoding instead
   * of costing a pass of its own.
   */
  private computeStep(): void {
    for (const seq of this.active) if (seq.snapshotDue) this.snapshot(seq);
    const work: { seq: Sequence; segment: Segment; end: number }[] = [];
    let decoding = 0;
    for (const seq of [...this.active]) {
      if (seq.next < 0 || seq.reply.needsPrepare) continue;
      if (seq.cache!.length + 1 > seq.cache!.capacity) {
        seq.reply.end('length'); // context full
        this.finish(seq);
        continue;
      }
      work.push({ seq, segment: { cache: seq.cache!, input: { ids: [seq.next] }, logits: 'last' }, end: -1 });
      decoding++;
    }
    let budget = this.prefillBudget;
    for (const seq of this.active) {
      if (budget <= 0) break;
      if (seq.next >= 0 || !seq.cache) continue;
      const begin = seq.prefilled;
      // Deep in a long prompt a token costs more (attention): the chunk shrinks so the step, which
      // every decoding stream waits for, takes about as long as at the start.
      const atDepth = prefillTokensAt(this.decoder.config, begin, this.prefillBudget);
      const tokens = Math.max(1, Math.floor((budget * atDepth) / this.prefillBudget));
      // A chunk ends where a ring snapshot is due, so the snapshot holds exactly that prefix.
      const end = seq.checkpointAt > begin ? Math.min(seq.checkpointAt, seq.prompt.chunkEnd(begin, tokens)) : seq.prompt.chunkEnd(begin, tokens);
      const last = end === seq.prompt.length;
      work.push({ seq, segment: { cache: seq.cache, input: seq.prompt.slice(begin, end), logits: last ? 'last' : 'none' }, end });
      budget -= ((end - begin) * this.prefillBudget) / atDepth; // the budget counts work, in tokens at depth 0
    }
    if (work.length === 0) return;
    const started = performance.now();
    const rows = this.run(work.map((w) => w.segment));
    if (rows === null) {
      // A segment was refused (before anything was computed): run each alone, so only it fails.
      for (const w of work) {
        try {
          this.collect([w], this.decoder.step([w.segment], this.buffer(1)));
        } catch (err) {
          this.fail(w.seq, err);
        }
      }
      return;
    }
    if (decoding) this.events.step?.(decoding, performance.now() - started);
    this.collect(work, rows);
  }

  /** The step's logits, or null when the decoder refused one of the segments. */
  private run(segments: Segment[]): Float32Array | null {
    try {
      return this.decoder.step(segments, this.buffer(segments.filter((s) => s.logits !== 'none').length));
    } catch {
      return null;
    }
  }

  private buffer(rows: number): Float32Array {
    const need = rows * this.decoder.config.vocabSize;
    if (this.logitsBuffer.length < need) this.logitsBuffer = new Float32Array(need);
    return this.logitsBuffer;
  }

  /** Hands each logits row to its sequence: a reply's next token, or the first one after a prompt. */
  private collect(work: readonly { seq: Sequence; segment: Segment; end: number }[], rows: Float32Array): void {
    const V = this.decoder.config.vocabSize;
    let row = 0;
    for (const { seq, segment, end } of work) {
      if (end >= 0) {
        seq.prefilled = end;
        this.maybeSnapshot(seq);
      } else {
        seq.fed.push(seq.next);
      }
      if (segment.logits === 'none') continue;
      const logits = rows.subarray(row * V, (row + 1) * V);
      row++;
      let step: ReplyStep;
      try {
        step = seq.reply.accept(logits);
      } catch (err) {
        this.fail(seq, err); // e.g. a grammar that rejected its own token: only this sequence fails
        continue;
      }
      this.advance(seq, step);
    }
  }

  /**
   * Keeps a copy of the sliding rings where a later prompt may want to cut back to: the end of a
   * long prompt (a regenerated reply, an edited last message) and a prefix other prompts share.
   */
  private maybeSnapshot(seq: Sequence): void {
    const cache = seq.cache!;
    if (!seq.cachePrompt || this.promptCache.budgetBytes === 0) return;
    if (!cache.layers.some((l) => l.ring > 0 && l.ring < cache.capacity)) return; // the rings hold everything
    if (seq.prefilled === seq.prompt.length) seq.snapshotDue = seq.prompt.length >= MIN_CHECKPOINT_TOKENS;
    else if (seq.prefilled === seq.checkpointAt) this.snapshot(seq);
  }

  private snapshot(seq: Sequence, cache = seq.cache!): void {
    seq.snapshotDue = false;
    if (!seq.checkpoints.some((c) => c.length === cache.length)) seq.checkpoints.push(cache.snapshotRings());
  }

  private advance(seq: Sequence, step: ReplyStep): void {
    if (seq.firstTokenAt === 0) seq.firstTokenAt = performance.now();
    this.events.token(seq.id, step.text, step.logprob);
    if (step.feed === null) this.finish(seq);
    else seq.next = step.feed;
  }

  private finish(seq: Sequence): void {
    this.release(seq);
    const now = performance.now();
    const prefillMs = seq.firstTokenAt ? seq.firstTokenAt - seq.activatedAt : 0;
    const decodeMs = seq.firstTokenAt ? now - seq.firstTokenAt : 0;
    // Nothing is released after an abort: the client is gone or asked to stop.
    const tail = seq.reply.finishReason === 'abort' ? '' : seq.reply.flush();
    this.reportLoad(); // before `done`: whoever hears of the end sees the slot free already
    this.events.done(seq.id, {
      text: tail, finishReason: seq.reply.finishReason ?? 'abort', promptTokens: seq.prompt.length, cachedTokens: seq.reused,
      completionTokens: seq.reply.generated, prefillMs, decodeMs,
    });
  }

  private fail(seq: Sequence, err: unknown): void {
    seq.reply.end('abort'); // frees its grammar
    this.release(seq, false);
    this.reportLoad();
    this.events.failed(seq.id, err instanceof Error ? err.message : String(err));
  }

  /**
   * Takes the sequence out of the active list; its cache goes to the prompt cache (with the ids it
   * holds) or back to the pool. `keep`: false after a failed step (the cache's contents are unknown).
   */
  private release(seq: Sequence, keep = true): void {
    const i = this.active.indexOf(seq);
    if (i >= 0) this.active.splice(i, 1);
    const cache = seq.cache;
    if (!cache) return;
    seq.cache = null;
    let blanks = [cache];
    const ids = [...seq.prompt.ids.slice(0, seq.prefilled), ...seq.fed];
    if (keep && seq.cachePrompt && ids.length === cache.length) {
      if (seq.snapshotDue) this.snapshot(seq, cache);
      blanks = this.promptCache.put(cache, { ids, images: seq.images, checkpoints: seq.checkpoints });
    }
    if (this.promptCache.budgetBytes > 0) this.events.promptCache?.(this.promptCache.size, this.promptCache.bytes);
    for (const b of blanks) if (this.pool.length < this.options.parallel) this.pool.push(b);
  }

  private reportLoad(): void {
    const key = `${this.active.length}/${this.waiting.length}`;
    if (key === this.lastLoad) return;
    this.lastLoad = key;
    this.events.load(this.active.length, this.waiting.length);
  }
}
