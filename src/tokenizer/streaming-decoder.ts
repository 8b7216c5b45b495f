// Incremental detokenizer: push ids one at a time, get the text they add. The concatenation of
// everything returned (pushes plus the final flush) equals `tokenizer.decode(ids)` exactly.
//
// The only cross-token effect in Gemma's decoder is a run of byte-fallback pieces (`<0xNN>`),
// which is decoded as one UTF-8 string (or one U+FFFD per byte if the run is not valid UTF-8).
// Such a run is held back until a non-byte token ends it (or `flush()`), so no half character,
// and no U+FFFD that a later byte would have completed, is ever emitted. Ids dropped by decode()
// (out of range, or special with skipSpecialTokens) yield '' and do not end a run, as in decode().

import type { Tokenizer } from './tokenizer.js';

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class StreamingDetokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly skipSpecial: boolean;
  private pending: number[] = [];

  constructor(tokenizer: Tokenizer, options?: { skipSpecialTokens?: boolean }) {
    this.tokenizer = tokenizer;
    this.skipSpecial = options?.skipSpecialTokens === true;
  }

  /** Feeds one id; returns the text that is now final (often '' while a byte run is open). */
  push(id: number): string {
    const tok = this.tokenizer;
    if (!(Number.isInteger(id) && id >= 0 && id < tok.size)) return '';
    if (this.skipSpecial && tok.isSpecial(id)) return '';
    const b = tok.byteValue(id);
    if (b >= 0) {
      this.pending.push(b);
      return '';
    }
    const text = tok.pieceText(id);
    return this.pending.length > 0 ? this.flush() + text : text;
  }

  /** Ends the stream (or an open byte run): returns whatever was held back. */
  flush(): string {
    const bytes = this.pending;
    if (bytes.length === 0) return '';
    this.pending = [];
    try {
      return fatalDecoder.decode(Uint8Array.from(bytes));
    } catch {
      return '\uFFFD'.repeat(bytes.length);
    }
  }

  /** Number of byte-fallback bytes held back. */
  get pendingBytes(): number {
    return this.pending.length;
  }
}
