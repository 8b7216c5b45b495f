// OpenAI's logit adjustments, applied to a logits row before the grammar mask and the sampler:
// logit_bias (added per id) and the presence / frequency penalties over the tokens generated so
// far (logit -= presence * [count > 0] + frequency * count), as OpenAI documents them.
import { invalidArgument } from '../errors.js';

export interface LogitAdjustOptions {
  /** Subtracted once from the logit of every id already generated; in [-2, 2]. */
  presencePenalty?: number;
  /** Subtracted per occurrence from the logit of every id already generated; in [-2, 2]. */
  frequencyPenalty?: number;
  /** Added to the logits of these ids (id → bias in [-100, 100]; -100 in effect bans, 100 forces). */
  logitBias?: Record<number, number>;
}

export function validateLogitAdjust(o: LogitAdjustOptions): void {
  for (const key of ['presencePenalty', 'frequencyPenalty'] as const) {
    const v = o[key];
    if (v != null && !(typeof v === 'number' && Number.isFinite(v) && v >= -2 && v <= 2)) throw invalidArgument(key, 'a number in [-2, 2]', v);
  }
  const bias = o.logitBias;
  if (bias == null) return;
  if (typeof bias !== 'object' || Array.isArray(bias)) throw invalidArgument('logitBias', 'an object { tokenId: bias }', bias);
  for (const [k, v] of Object.entries(bias)) {
    const id = Number(k);
    if (!(Number.isInteger(id) && id >= 0 && String(id) === k)) throw invalidArgument(`logitBias key ${JSON.stringify(k)}`, 'a token id', k);
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= -100 && v <= 100)) throw invalidArgument(`logitBias[${k}]`, 'a number in [-100, 100]', v);
  }
}

export class LogitAdjuster {
  private readonly counts = new Map<number, number>();
  private readonly bias: [number, number][];
  private readonly presence: number;
  private readonly frequency: number;

  private constructor(o: LogitAdjustOptions) {
    this.presence = o.presencePenalty ?? 0;
    this.frequency = o.frequencyPenalty ?? 0;
    this.bias = Object.entries(o.logitBias ?? {}).map(([k, v]) => [Number(k), v]);
  }

  /** An adjuster, or null when the options change nothing. */
  static of(o: LogitAdjustOptions): LogitAdjuster | null {
    const a = new LogitAdjuster(o);
    return a.presence === 0 && a.frequency === 0 && a.bias.every(([, v]) => v === 0) ? null : a;
  }

  /** Adjusts `logits` in place (ids outside the row are ignored). */
  apply(logits: Float32Array): void {
    for (const [id, b] of this.bias) if (id < logits.length) logits[id] = Math.fround(logits[id]! + b);
    if (this.presence === 0 && this.frequency === 0) return;
    for (const [id, n] of this.counts) if (id < logits.length) logits[id] = Math.fround(logits[id]! - this.presence - this.frequency * n);
  }

  /** Counts a generated id. */
  accept(id: number): void {
    if (this.presence !== 0 || this.frequency !== 0) this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }
}
