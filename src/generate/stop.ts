// Stop strings over streamed text. Text that could still turn out to be the start of a stop string
// is held back; when a stop string completes, only the text before it is emitted.
//
// The result does not depend on how the text is split into pushes: it is what pushing one
// character at a time would give, i.e. the stop that *completes first* wins (earliest end; among
// stops ending at the same place, the longest, i.e. earliest start), and everything before that
// stop's start is emitted.
import { invalidArgument } from '../errors.js';

export interface StopPush {
  /** Text that is now safe to show. */
  emit: string;
  /** True once a stop string has completed (this push or an earlier one). */
  stopped: boolean;
}

export class StopMatcher {
  private readonly stops: readonly string[];
  private readonly maxLen: number;
  private held = '';
  private done = false;

  constructor(stops: readonly string[]) {
    if (!Array.isArray(stops)) throw invalidArgument('stop', 'an array of strings', stops);
    const unique: string[] = [];
    for (const s of stops) {
      if (typeof s !== 'string' || s.length === 0) throw invalidArgument('stop', 'a list of non-empty strings', s);
      if (!unique.includes(s)) unique.push(s);
    }
    this.stops = unique;
    this.maxLen = unique.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Whether a stop string has completed. */
  get stopped(): boolean {
    return this.done;
  }

  /** Feeds the next piece of decoded text. After a stop, further pushes emit nothing. */
  push(text: string): StopPush {
    if (typeof text !== 'string') throw invalidArgument('text', 'a string', text);
    if (this.done) return { emit: '', stopped: true };
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buf = this.held + text;

    let bestStart = -1;
    let bestEnd = Infinity;
    for (const s of this.stops) {
      // Nothing complete can lie wholly inside the held text (it would have stopped already),
      // so the first occurrence of each stop is also its earliest completion.
      const at = buf.indexOf(s);
      if (at < 0) continue;
      const end = at + s.length;
      if (end < bestEnd || (end === bestEnd && at < bestStart)) {
        bestEnd = end;
        bestStart = at;
      }
    }
    if (bestStart >= 0) {
      this.done = true;
      this.held = '';
      return { emit: buf.slice(0, bestStart), stopped: true };
    }

    const hold = this.holdLength(buf);
    this.held = buf.slice(buf.length - hold);
    return { emit: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** End of stream without a stop: returns the held-back text (empty after a stop). */
  flush(): string {
    const out = this.held;
    this.held = '';
    return this.done ? '' : out;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private holdLength(buf: string): number {
    for (let h = Math.min(buf.length, this.maxLen - 1); h > 0; h--) {
      const from = buf.length - h;
      for (const s of this.stops) {
        if (s.length > h && s.startsWith(buf.slice(from))) return h;
      }
    }
    return 0;
  }
}
