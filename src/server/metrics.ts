// Prometheus metrics in the text exposition format (version 0.0.4), written by hand: counters,
// gauges and two histograms, no client library.

const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const DURATION_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];
/** Tokens/s is measured over this window. */
const RATE_WINDOW_MS = 10_000;

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    this.buckets.forEach((b, i) => {
      if (value <= b) this.counts[i]!++;
    });
  }

  render(name: string): string[] {
    const lines = this.buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i]}`);
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${round(this.sum)}`, `${name}_count ${this.count}`);
    return lines;
  }
}

export class Metrics {
  /** Responses by endpoint and status code. */
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  /** Prompt tokens of finished requests that came from the prompt cache, and those computed. */
  promptTokensCached = 0;
  promptTokensComputed = 0;
  /** What the prompt cache holds (finished sequences kept for reuse), from the worker's last report. */
  promptCacheSequences = 0;
  promptCacheBytes = 0;
  completionTokens = 0;
  cancelled = 0;
  rejectedBusy = 0;
  readonly timeToFirstToken = new Histogram(TTFT_BUCKETS);
  readonly requestDuration = new Histogram(DURATION_BUCKETS);
  readonly decodeBatchSize = new Histogram(BATCH_BUCKETS);
  readonly decodeStepSeconds = new Histogram(STEP_BUCKETS);
  /** Largest decode batch so far. */
  maxBatch = 0;
  /** Times (ms) of the tokens generated in the last RATE_WINDOW_MS. */
  private readonly recent: number[] = [];

  countRequest(endpoint: string, status: number): void {
    const key = `endpoint="${endpoint}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** A request ended: `cached` of its `prompt` tokens came from the prompt cache. */
  promptDone(prompt: number, cached: number): void {
    this.promptTokensCached += cached;
    this.promptTokensComputed += Math.max(0, prompt - cached);
  }

  tokenGenerated(now = performance.now()): void {
    this.completionTokens++;
    this.recent.push(now);
    this.trim(now);
  }

  decodeStep(batch: number, ms: number): void {
    this.decodeBatchSize.observe(batch);
    this.decodeStepSeconds.observe(ms / 1000);
    this.maxBatch = Math.max(this.maxBatch, batch);
  }

  /** Generated tokens per second over the last 10 s (all sequences together). */
  tokensPerSecond(now = performance.now()): number {
    this.trim(now);
    if (this.recent.length === 0) return 0;
    const span = Math.max(1000, Math.min(RATE_WINDOW_MS, now - this.recent[0]!));
    return (this.recent.length / span) * 1000;
  }

  render(state: { active: number; queued: number; parallel: number; model: string; backend: string; contextLength: number }): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    family('gemma3_model_info', 'gauge', 'The served model.',
      [`gemma3_model_info{model="${escape(state.model)}",backend="${state.backend}",context_length="${state.contextLength}"} 1`]);
    family('gemma3_requests_total', 'counter', 'HTTP requests answered, by endpoint and status code.',
      [...this.requests].map(([labels, n]) => `gemma3_requests_total{${labels}} ${n}`));
    family('gemma3_prompt_tokens_total', 'counter', 'Prompt tokens of accepted requests.', [`gemma3_prompt_tokens_total ${this.promptTokens}`]);
    family('gemma3_prompt_tokens_cached_total', 'counter', 'Prompt tokens of finished requests reused from the prompt cache (not computed).',
      [`gemma3_prompt_tokens_cached_total ${this.promptTokensCached}`]);
    family('gemma3_prompt_tokens_computed_total', 'counter', 'Prompt tokens of finished requests that were computed.',
      [`gemma3_prompt_tokens_computed_total ${this.promptTokensComputed}`]);
    family('gemma3_prompt_cache_sequences', 'gauge', 'Finished sequences whose KV caches the prompt cache keeps.',
      [`gemma3_prompt_cache_sequences ${this.promptCacheSequences}`]);
    family('gemma3_prompt_cache_bytes', 'gauge', 'Bytes the prompt cache holds (KV caches and ring snapshots; at most --cache-ram).',
      [`gemma3_prompt_cache_bytes ${this.promptCacheBytes}`]);
    family('gemma3_completion_tokens_total', 'counter', 'Tokens generated.', [`gemma3_completion_tokens_total ${this.completionTokens}`]);
    family('gemma3_requests_cancelled_total', 'counter', 'Generations stopped because the client went away.',
      [`gemma3_requests_cancelled_total ${this.cancelled}`]);
    family('gemma3_requests_rejected_busy_total', 'counter', 'Requests answered 429 because the queue was full.',
      [`gemma3_requests_rejected_busy_total ${this.rejectedBusy}`]);
    family('gemma3_active_sequences', 'gauge', 'Sequences being generated (at most --parallel).', [`gemma3_active_sequences ${state.active}`]);
    family('gemma3_max_parallel_sequences', 'gauge', 'The --parallel limit.', [`gemma3_max_parallel_sequences ${state.parallel}`]);
    family('gemma3_queue_length', 'gauge', 'Requests waiting for a free sequence slot.', [`gemma3_queue_length ${state.queued}`]);
    family('gemma3_tokens_per_second', 'gauge', 'Generated tokens per second over the last 10 seconds, all sequences together.',
      [`gemma3_tokens_per_second ${round(this.tokensPerSecond())}`]);
    family('gemma3_time_to_first_token_seconds', 'histogram', 'From request arrival to its first generated token (queueing included).',
      this.timeToFirstToken.render('gemma3_time_to_first_token_seconds'));
    family('gemma3_request_duration_seconds', 'histogram', 'From request arrival to its last generated token.',
      this.requestDuration.render('gemma3_request_duration_seconds'));
    family('gemma3_decode_batch_size', 'histogram', 'Sequences advanced together by each batched decode step.',
      this.decodeBatchSize.render('gemma3_decode_batch_size'));
    family('gemma3_decode_step_seconds', 'histogram', 'Duration of each batched decode step.',
      this.decodeStepSeconds.render('gemma3_decode_step_seconds'));
    return out.join('\n') + '\n';
  }

  private trim(now: number): void {
    let drop = 0;
    while (drop < this.recent.length && now - this.recent[drop]! > RATE_WINDOW_MS) drop++;
    if (drop) this.recent.splice(0, drop);
  }
}

function round(x: number): string {
  return String(Math.round(x * 1e6) / 1e6);
}

function escape(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
