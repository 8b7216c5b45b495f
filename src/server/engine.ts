// The HTTP side's handle on the model worker: starts it, numbers jobs, bounds the queue (429),
// turns worker messages into per-request event streams and feeds the metrics.
import { Worker } from 'node:worker_threads';
import { loadNativeBinding } from '../backend/native-backend.js';
import { ApiError } from './api-error.js';
import type { Metrics } from './metrics.js';
import type { DoneData, FromWorker, Job, ModelInfo, TokenLogprobData, ToWorker, WorkerConfig } from './protocol.js';

/** How long close() waits for the worker to stop by itself before terminating it. */
const SHUTDOWN_GRACE_MS = 30_000;

export interface EngineOptions extends WorkerConfig {
  /** Requests allowed to wait for a free slot beyond the `parallel` running ones. */
  maxQueue: number;
  /** Request bytes (bodies and fetched images) held by all unfinished requests together. */
  maxInflightBytes: number;
  /** Image pixels (width × height) held by all unfinished requests together. */
  maxInflightPixels: number;
}

/**
 * What one request holds until it ends, counted against the server-wide budgets the moment it is
 * known (body bytes as they arrive, image pixels from each header), so that a burst is refused
 * with 429 before its work starts instead of piling up memory and CPU behind the queue.
 */
export class Claim {
  bytes = 0;
  pixels = 0;
  /** Bytes of images the server fetched for this request (bounded per request). */
  fetched = 0;
  /** A run took this claim over: it is released when the run ends, not when the request handler returns. */
  adopted = false;
  private released = false;

  constructor(private readonly budget: InflightBudget) {}

  /** Counts more bytes / pixels; ApiError 429 (and nothing counted) when the budget would be exceeded. */
  add(bytes: number, pixels = 0): void {
    if (this.released) return;
    this.budget.take(bytes, pixels);
    this.bytes += bytes;
    this.pixels += pixels;
  }

  /** Counts image bytes fetched for the request. */
  addFetched(bytes: number): void {
    this.add(bytes);
    this.fetched += bytes;
  }

  /** What a request handler calls when it is done: releases the claim unless a run holds it. */
  releaseUnlessAdopted(): void {
    if (!this.adopted) this.release();
  }

  /** Gives everything back (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.give(this.bytes, this.pixels);
  }
}

export class InflightBudget {
  bytes = 0;
  pixels = 0;

  constructor(readonly maxBytes: number, readonly maxPixels: number, private readonly onRefusal: () => void = () => {}) {}

  claim(): Claim {
    return new Claim(this);
  }

  /** @internal */ take(bytes: number, pixels: number): void {
    if (this.bytes + bytes > this.maxBytes || this.pixels + pixels > this.maxPixels) {
      this.onRefusal();
      throw new ApiError(429,
        'The server is busy: the requests it is working on hold as much data (request bytes or image pixels) as it accepts at once. Retry later.',
        'rate_limit_error', null, 'server_busy');
    }
    this.bytes += bytes;
    this.pixels += pixels;
  }

  /** @internal */ give(bytes: number, pixels: number): void {
    this.bytes -= bytes;
    this.pixels -= pixels;
  }
}

export type RunEvent = { type: 'token'; text: string; logprob?: TokenLogprobData } | { type: 'done'; done: DoneData };

/** One request's generation: `accepted` (prompt tokens, or an ApiError), then its events. */
export class Run implements AsyncIterable<RunEvent> {
  readonly accepted: Promise<number>;
  readonly submittedAt = performance.now();
  firstTokenAt = 0;
  private settle!: { resolve: (n: number) => void; reject: (e: ApiError) => void };
  private readonly events: (RunEvent | { type: 'failed'; error: ApiError })[] = [];
  private wake: (() => void) | null = null;
  private finished = false;

  constructor(readonly id: number, private readonly onCancel: (run: Run) => void, readonly claim: Claim | null = null) {
    if (claim) claim.adopted = true;
    this.accepted = new Promise<number>((resolve, reject) => (this.settle = { resolve, reject }));
    this.accepted.catch(() => {}); // handled by whoever awaits it
  }

  /** Whether the worker has finished with this run (done, failed or rejected). */
  get ended(): boolean {
    return this.finished;
  }

  /** Stops generation (the worker frees the sequence's cache at once). */
  cancel(): void {
    if (!this.finished) this.onCancel(this);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    for (;;) {
      while (this.events.length) {
        const ev = this.events.shift()!;
        if (ev.type === 'failed') throw ev.error;
        yield ev;
        if (ev.type === 'done') return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  /** @internal */ accept(promptTokens: number): void {
    this.settle.resolve(promptTokens);
  }

  /** @internal */ push(ev: RunEvent | { type: 'failed'; error: ApiError }): void {
    if (ev.type !== 'token') this.end();
    this.events.push(ev);
    this.wake?.();
  }

  /** @internal */ reject(error: ApiError): void {
    this.end();
    this.settle.reject(error);
    this.push({ type: 'failed', error });
  }

  private end(): void {
    this.finished = true;
    this.claim?.release();
  }
}

export class Engine {
  /** Sequences decoding in the worker / waiting there for a slot (from its last report). */
  active = 0;
  waiting = 0;
  /** Bytes and pixels held by unfinished requests, server-wide. */
  readonly budget: InflightBudget;
  private readonly runs = new Map<number, Run>();
  /** Each unfinished run's cancel flag, shared with the worker so it is seen inside long synchronous work. */
  private readonly cancelFlags = new Map<number, Int32Array>();
  private nextId = 1;
  private dead: string | null = null;
  private exited = false;

  private constructor(private readonly worker: Worker, readonly info: ModelInfo, private readonly options: EngineOptions,
                      private readonly metrics: Metrics) {
    this.budget = new InflightBudget(options.maxInflightBytes, options.maxInflightPixels, () => metrics.rejectedBusy++);
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.die(`the model worker crashed: ${err.message}`));
    worker.on('exit', (code) => {
      this.exited = true;
      this.die(`the model worker exited (code ${code})`);
    });
  }

  /** Starts the worker and waits until the model is loaded. */
  static async start(options: EngineOptions, metrics: Metrics, onProgress?: (fraction: number) => void): Promise<Engine> {
    const config: WorkerConfig = {
      modelPath: options.modelPath, parallel: options.parallel, cacheBytes: options.cacheBytes,
      ...(options.alias !== undefined ? { alias: options.alias } : {}),
      ...(options.context !== undefined ? { context: options.context } : {}), ...(options.load ? { load: options.load } : {}),
    };
    // Keep the native addon loaded in this thread too: when the worker exits, Node unloads the
    // addons only it loaded, and the addon's pool threads would then run unmapped code (SIGSEGV).
    loadNativeBinding();
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: config });
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') resolve(m.info);
        else if (m.type === 'fatal') reject(new Error(m.message));
        else {
          if (m.type === 'progress') onProgress?.(m.fraction);
          return;
        }
        worker.off('message', onMessage);
        worker.off('error', reject);
      };
      worker.on('message', onMessage);
      worker.on('error', reject);
      worker.once('exit', (code) => reject(new Error(`the model worker exited while loading (code ${code})`)));
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new Engine(worker, info, options, metrics);
  }

  /** Requests submitted and not finished (running or queued). */
  get outstanding(): number {
    return this.runs.size;
  }

  /** Requests waiting for a slot (submitted, not yet decoding). */
  get queued(): number {
    return Math.max(0, this.runs.size - this.active);
  }

  get healthy(): boolean {
    return this.dead === null;
  }

  get problem(): string | null {
    return this.dead;
  }

  /**
   * Starts a job; throws ApiError 429 when `parallel` run and `maxQueue` wait already, 503 when the
   * worker died. The run takes over `claim` and releases it when it ends.
   */
  submit(job: Job, claim: Claim | null = null): Run {
    this.checkCapacity();
    const id = this.nextId++;
    const cancelFlag = new Int32Array(new SharedArrayBuffer(4));
    const run = new Run(id, (r) => this.cancel(r.id), claim);
    try {
      this.post({ type: 'submit', id, job, cancelFlag });
    } catch (err) {
      // Nothing reached the worker, so nothing will ever end this run: give its slot back now.
      run.reject(new ApiError(500, `internal error: the request could not be handed to the model: ${(err as Error).message}`,
        'server_error', null, 'internal_error'));
      throw err;
    }
    this.runs.set(id, run);
    this.cancelFlags.set(id, cancelFlag);
    return run;
  }

  /**
   * ApiError 429 when `parallel` requests run and `maxQueue` wait already, 503 when the worker
   * died. Also called before a request's body is read or its images fetched, so a full server
   * refuses at once instead of doing that work first.
   */
  checkCapacity(): void {
    if (this.dead) throw new ApiError(503, this.dead, 'server_error', null, 'worker_unavailable');
    const capacity = this.options.parallel + this.options.maxQueue;
    if (this.runs.size >= capacity) {
      this.metrics.rejectedBusy++;
      throw new ApiError(429,
        `The server is busy: ${this.options.parallel} requests are running and ${this.options.maxQueue} are queued, the most it holds. ` +
        'Retry later.', 'rate_limit_error', null, 'server_busy');
    }
  }

  async close(): Promise<void> {
    this.dead ??= 'the server is shutting down';
    for (const run of this.runs.values()) run.reject(new ApiError(503, this.dead, 'server_error', null, 'shutting_down'));
    this.runs.clear();
    this.cancelFlags.clear();
    if (this.exited) return;
    this.worker.removeAllListeners('error');
    this.worker.on('error', () => {});
    // Ask the worker to stop between two steps: terminating it while a native kernel runs is unsafe.
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'shutdown' });
    const timer = setTimeout(() => void this.worker.terminate(), SHUTDOWN_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private cancel(id: number): void {
    const flag = this.cancelFlags.get(id);
    if (flag) Atomics.store(flag, 0, 1);
    this.post({ type: 'cancel', id });
  }

  private forget(id: number): void {
    this.runs.delete(id);
    this.cancelFlags.delete(id);
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'batch') {
      for (const one of m.messages) this.onMessage(one);
      return;
    }
    if (m.type === 'load') {
      this.active = m.active;
      this.waiting = m.waiting;
      return;
    }
    if (m.type === 'promptCache') {
      this.metrics.promptCacheSequences = m.sequences;
      this.metrics.promptCacheBytes = m.bytes;
      return;
    }
    if (m.type === 'step') {
      this.metrics.decodeStep(m.batch, m.ms);
      return;
    }
    if (m.type === 'ready' || m.type === 'fatal' || m.type === 'progress') return;
    const run = this.runs.get(m.id);
    if (!run) return;
    switch (m.type) {
      case 'accepted':
        this.metrics.promptTokens += m.promptTokens;
        run.accept(m.promptTokens);
        break;
      case 'rejected':
        this.forget(m.id);
        run.reject(ApiError.fromData(m.error));
        break;
      case 'token':
        if (run.firstTokenAt === 0) {
          run.firstTokenAt = performance.now();
          this.metrics.timeToFirstToken.observe((run.firstTokenAt - run.submittedAt) / 1000);
        }
        this.metrics.tokenGenerated();
        run.push({ type: 'token', text: m.text, ...(m.logprob ? { logprob: m.logprob } : {}) });
        break;
      case 'done':
        this.forget(m.id);
        if (m.done.finishReason === 'abort') this.metrics.cancelled++;
        this.metrics.promptDone(m.done.promptTokens, m.done.cachedTokens ?? 0);
        this.metrics.requestDuration.observe((performance.now() - run.submittedAt) / 1000);
        run.push({ type: 'done', done: m.done });
        break;
      case 'failed':
        this.forget(m.id);
        run.reject(new ApiError(500, `generation failed: ${m.message}`, 'server_error', null, 'generation_failed'));
        break;
    }
  }

  private die(reason: string): void {
    if (this.dead) return;
    this.dead = reason;
    for (const run of this.runs.values()) run.reject(new ApiError(500, reason, 'server_error', null, 'worker_crashed'));
    this.runs.clear();
    this.cancelFlags.clear();
  }
}
