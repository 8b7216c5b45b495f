// The BPE model of a HF `tokenizer.json` (SentencePiece-style BPE as Gemma 3 uses it): byte
// fallback, fused unknowns, merges applied lowest rank first (leftmost first among equal ranks),
// exactly like the Rust `tokenizers` core (`Word::merge_all`).
//
// Speed comes from three things:
// * Chunking. A BPE "word" (a whole line for Gemma, whose pre-tokenizer is a no-op) is cut into
//   chunks at boundaries that no vocabulary piece spans: no merge can cross such a boundary, so
//   the merges on either side are independent and the result is the concatenation of the
//   chunks' results (exact, not an approximation). Spaces are cheap boundaries: for Gemma only
//   `>▁</` has a `▁` after another character, so a space run starts a new chunk unless it follows
//   `>`. Long chunks (CJK runs) are further cut between two characters that never occur next to
//   each other in any piece.
// * A chunk cache (most chunks are common words).
// * Merge ranks in an open-addressing hash table keyed by the pair of ids (no strings), and an
//   allocation-free merge loop: a simple quadratic scan for short chunks, a binary heap over a
//   linked list of symbols for long ones.

/** U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space. */
export const META_SPACE = 0x2581;
import { NO_RANK, PairTable } from './pair-table.js';

export interface BpeModelOptions {
  /** Piece strings by id (model vocabulary only). Holes are allowed. */
  pieces: readonly (string | undefined)[];
  /** Merge pairs as ids: merges[2k], merges[2k+1] merge into mergedIds[k] with rank k. */
  mergeLeft: Int32Array;
  mergeRight: Int32Array;
  mergedIds: Int32Array;
  unkId: number; // -1 if none
  byteFallback: boolean;
  fuseUnk: boolean;
  /** Normaliser "Replace ' ' -> '▁'": a space is looked up as `▁`. */
  spaceToMeta: boolean;
}

const SHORT_CHUNK = 24; // quadratic merge loop up to this many symbols, heap above
const LONG_CHUNK = 24; // chunks longer than this (UTF-16 units) are cut at impossible bigrams
const CACHE_MAX_KEY = 64; // longest chunk (UTF-16 units) kept in the cache
const CACHE_MAX_ENTRIES = 1 << 17;

export class BpeModel {
  private readonly bmpIds: Int32Array; // code unit -> id of the one-character piece, -1 if none
  private readonly astralIds: Map<number, number>;
  private readonly byteIds: Int32Array; // byte -> id of <0xNN>, -1 if none
  private readonly allBytes: boolean;
  private readonly pairs: PairTable;
  private readonly unkId: number;
  private readonly byteFallback: boolean;
  private readonly fuseUnk: boolean;
  private readonly spaceToMeta: boolean;
  private readonly pieces: readonly (string | undefined)[];
  /** Code units x (BMP) such that some piece contains x immediately followed by `▁`. */
  private readonly joinsMetaBmp: Uint8Array;
  private readonly joinsMetaAstral: Set<number>;
  private bigrams: PairTable | undefined; // built on first use
  private readonly cache = new Map<string, Int32Array>();

  // Scratch buffers, grown on demand.
  private syms = new Int32Array(256);
  private ranks = new Int32Array(256);
  private outs = new Int32Array(256);
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private heap = new Float64Array(768);

  constructor(opts: BpeModelOptions) {
    this.pieces = opts.pieces;
    this.unkId = opts.unkId;
    this.byteFallback = opts.byteFallback;
    this.fuseUnk = opts.fuseUnk;
    this.spaceToMeta = opts.spaceToMeta;
    this.bmpIds = new Int32Array(65536).fill(-1);
    this.astralIds = new Map();
    this.byteIds = new Int32Array(256).fill(-1);
    this.joinsMetaBmp = new Uint8Array(65536);
    this.joinsMetaAstral = new Set();
    const pieces = opts.pieces;
    for (let id = 0; id < pieces.length; id++) {
      const p = pieces[id];
      if (p === undefined) continue;
      const len = p.length;
      if (len === 1) {
        if (this.bmpIds[p.charCodeAt(0)] === -1) this.bmpIds[p.charCodeAt(0)] = id;
      } else if (len === 2) {
        const cp = p.codePointAt(0)!;
        if (cp > 0xffff && !this.astralIds.has(cp)) this.astralIds.set(cp, id);
      }
      if (len === 6 && p.charCodeAt(0) === 0x3c && p.charCodeAt(1) === 0x30 && p.charCodeAt(2) === 0x78 && p.charCodeAt(5) === 0x3e) {
        const b = parseHexByte(p.charCodeAt(3), p.charCodeAt(4));
        if (b >= 0 && this.byteIds[b] === -1) this.byteIds[b] = id;
      }
      // Which characters ever precede a `▁` inside a piece?
      let k = p.indexOf('\u2581', 1);
      while (k > 0) {
        const before = p.charCodeAt(k - 1);
        if (before !== META_SPACE) {
          if (before >= 0xdc00 && before <= 0xdfff && k >= 2) this.joinsMetaAstral.add(p.codePointAt(k - 2)!);
          else this.joinsMetaBmp[before] = 1;
        }
        k = p.indexOf('\u2581', k + 1);
      }
    }
    if (this.spaceToMeta) this.bmpIds[0x20] = this.bmpIds[META_SPACE]!;
    let all = true;
    for (let b = 0; b < 256; b++) if (this.byteIds[b] === -1) all = false;
    this.allBytes = all;

    const n = opts.mergedIds.length;
    this.pairs = new PairTable(n);
    const l = opts.mergeLeft;
    const r = opts.mergeRight;
    const m = opts.mergedIds;
    for (let k = 0; k < n; k++) this.pairs.set(l[k]!, r[k]!, k, m[k]!);
  }

  /** Number of distinct merge pairs. */
  get mergeCount(): number {
    return this.pairs.size;
  }

  /** Empties the chunk cache. */
  clearCache(): void {
    this.cache.clear();
  }

  /**
   * Encodes text[start, end) as one BPE word (spaces read as `▁` when the normaliser says so) and
   * appends the ids to `out`.
   */
  encodeWord(text: string, start: number, end: number, out: number[]): void {
    // Cut before each run of spaces unless the character before it can join a `▁` in a piece.
    const toMeta = this.spaceToMeta;
    let chunkStart = start;
    let prevMeta = true; // so that a run at `start` does not cut
    for (let j = start; j < end; j++) {
      const c = text.charCodeAt(j);
      const isMeta = c === META_SPACE || (c === 0x20 && toMeta);
      if (isMeta && !prevMeta && j > chunkStart && !this.joinsMetaBefore(text, j, start)) {
        this.encodeChunk(text, chunkStart, j, out);
        chunkStart = j;
      }
      prevMeta = isMeta;
    }
    if (chunkStart < end) this.encodeChunk(text, chunkStart, end, out);
  }

  private joinsMetaBefore(text: string, j: number, start: number): boolean {
    const p = text.charCodeAt(j - 1);
    if (p >= 0xd800 && p <= 0xdfff) {
      // Surrogates: an astral character, or a lone surrogate read as U+FFFD.
      if (p >= 0xdc00 && j - 2 >= start) {
        const h = text.charCodeAt(j - 2);
        if (h >= 0xd800 && h <= 0xdbff) return this.joinsMetaAstral.has(((h - 0xd800) << 10) + (p - 0xdc00) + 0x10000);
      }
      return this.joinsMetaBmp[0xfffd] === 1;
    }
    return this.joinsMetaBmp[p] === 1;
  }

  private encodeChunk(text: string, start: number, end: number, out: number[]): void {
    if (end - start > LONG_CHUNK) {
      this.encodeLongChunk(text, start, end, out);
      return;
    }
    this.encodeCached(text, start, end, out);
  }

  private encodeCached(text: string, start: number, end: number, out: number[]): void {
    const len = end - start;
    if (len === 1) {
      const c = text.charCodeAt(start);
      const id = this.bmpIds[c]!;
      if (id >= 0 && !(c >= 0xd800 && c <= 0xdfff)) {
        out.push(id);
        return;
      }
    }
    if (len > CACHE_MAX_KEY) {
      const n = this.mergeAll(this.symbolize(text, start, end));
      const syms = this.syms;
      for (let i = 0; i < n; i++) out.push(syms[i]!);
      return;
    }
    const key = text.slice(start, end);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      for (let i = 0; i < hit.length; i++) out.push(hit[i]!);
      return;
    }
    const n = this.mergeAll(this.symbolize(text, start, end));
    const res = this.emit(n, out);
    if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
    this.cache.set(key, res);
  }

  /** Cuts a long chunk between characters that are never adjacent in any piece. */
  private encodeLongChunk(text: string, start: number, end: number, out: number[]): void {
    const bigrams = this.bigrams ?? this.buildBigrams();
    let chunkStart = start;
    let prevCp = -1;
    let j = start;
    while (j < end) {
      let cp = text.charCodeAt(j);
      let w = 1;
      if (cp >= 0xd800 && cp <= 0xdfff) {
        if (cp <= 0xdbff && j + 1 < end) {
          const lo = text.charCodeAt(j + 1);
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
            w = 2;
          } else cp = 0xfffd;
        } else cp = 0xfffd;
      } else if (cp === 0x20 && this.spaceToMeta) cp = META_SPACE;
      if (prevCp >= 0 && !bigrams.has(prevCp, cp)) {
        this.encodeCached(text, chunkStart, j, out);
        chunkStart = j;
      }
      prevCp = cp;
      j += w;
    }
    this.encodeCached(text, chunkStart, end, out);
  }

  private buildBigrams(): PairTable {
    const table = new PairTable(1 << 16);
    const pieces = this.pieces;
    for (let id = 0; id < pieces.length; id++) {
      const p = pieces[id];
      if (p === undefined || p.length < 2) continue;
      let prev = -1;
      for (let i = 0; i < p.length; ) {
        const cp = p.codePointAt(i)!;
        if (prev >= 0) table.set(prev, cp, 0, 0);
        prev = cp;
        i += cp > 0xffff ? 2 : 1;
      }
    }
    this.bigrams = table;
    return table;
  }

  /** Writes the initial symbols of text[start, end) into `syms`; returns their count. */
  private symbolize(text: string, start: number, end: number): number {
    if ((end - start) * 4 + 4 > this.syms.length) this.grow((end - start) * 4 + 4);
    const syms = this.syms;
    const bmp = this.bmpIds;
    let n = 0;
    let pendingUnk = false;
    for (let j = start; j < end; j++) {
      let cp = text.charCodeAt(j);
      let id: number;
      if (cp >= 0xd800 && cp <= 0xdfff) {
        if (cp <= 0xdbff && j + 1 < end) {
          const lo = text.charCodeAt(j + 1);
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
            j++;
          } else cp = 0xfffd;
        } else cp = 0xfffd;
        id = cp > 0xffff ? (this.astralIds.get(cp) ?? -1) : bmp[cp]!;
      } else {
        id = bmp[cp]!;
      }
      if (id >= 0) {
        syms[n++] = id;
        pendingUnk = false;
        continue;
      }
      if (cp === 0x20 && this.spaceToMeta) cp = META_SPACE;
      if (this.byteFallback && this.allBytes) {
        n = this.pushUtf8(cp, n);
        pendingUnk = false;
        continue;
      }
      if (this.byteFallback) {
        // Only some byte pieces exist: fall back only if all of this character's do.
        const save = n;
        n = this.pushUtf8(cp, n);
        let ok = true;
        for (let k = save; k < n; k++) if (syms[k]! < 0) ok = false;
        if (ok) {
          pendingUnk = false;
          continue;
        }
        n = save;
      }
      if (this.unkId < 0) continue; // no unk token: the character is dropped
      if (pendingUnk && this.fuseUnk) continue;
      syms[n++] = this.unkId;
      pendingUnk = true;
    }
    return n;
  }

  private pushUtf8(cp: number, n: number): number {
    const syms = this.syms;
    const b = this.byteIds;
    if (cp < 0x80) {
      syms[n++] = b[cp]!;
    } else if (cp < 0x800) {
      syms[n++] = b[0xc0 | (cp >> 6)]!;
      syms[n++] = b[0x80 | (cp & 63)]!;
    } else if (cp < 0x10000) {
      syms[n++] = b[0xe0 | (cp >> 12)]!;
      syms[n++] = b[0x80 | ((cp >> 6) & 63)]!;
      syms[n++] = b[0x80 | (cp & 63)]!;
    } else {
      syms[n++] = b[0xf0 | (cp >> 18)]!;
      syms[n++] = b[0x80 | ((cp >> 12) & 63)]!;
      syms[n++] = b[0x80 | ((cp >> 6) & 63)]!;
      syms[n++] = b[0x80 | (cp & 63)]!;
    }
    return n;
  }

  private grow(size: number): void {
    let cap = this.syms.length;
    while (cap < size) cap *= 2;
    this.syms = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    this.outs = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.heap = new Float64Array(cap * 3);
  }

  /** Appends syms[0, n) to out and returns a copy for the cache. */
  private emit(n: number, out: number[]): Int32Array {
    const syms = this.syms;
    for (let i = 0; i < n; i++) out.push(syms[i]!);
    return syms.slice(0, n);
  }

  /** Applies the merges to syms[0, n); the result is left compacted in syms. Returns its length. */
  private mergeAll(n: number): number {
    if (n < 2) return n;
    return n <= SHORT_CHUNK ? this.mergeShort(n) : this.mergeLong(n);
  }

  /** Quadratic scan: merge the lowest-rank (then leftmost) adjacent pair until none is left. */
  private mergeShort(n: number): number {
    const syms = this.syms;
    const ranks = this.ranks;
    const outs = this.outs;
    const pairs = this.pairs;
    for (let i = 0; i + 1 < n; i++) {
      const s = pairs.find(syms[i]!, syms[i + 1]!);
      if (s < 0) ranks[i] = NO_RANK;
      else {
        ranks[i] = pairs.rankAt(s);
        outs[i] = pairs.mergedAt(s);
      }
    }
    while (n > 1) {
      let best = NO_RANK;
      let bi = -1;
      for (let i = 0; i + 1 < n; i++) {
        const r = ranks[i]!;
        if (r < best) {
          best = r;
          bi = i;
        }
      }
      if (bi < 0) break;
      syms[bi] = outs[bi]!;
      n--;
      for (let k = bi + 1; k < n; k++) {
        syms[k] = syms[k + 1]!;
        ranks[k] = ranks[k + 1]!;
        outs[k] = outs[k + 1]!;
      }
      if (bi > 0) {
        const s = pairs.find(syms[bi - 1]!, syms[bi]!);
        if (s < 0) ranks[bi - 1] = NO_RANK;
        else {
          ranks[bi - 1] = pairs.rankAt(s);
          outs[bi - 1] = pairs.mergedAt(s);
        }
      }
      if (bi + 1 < n) {
        const s = pairs.find(syms[bi]!, syms[bi + 1]!);
        if (s < 0) ranks[bi] = NO_RANK;
        else {
          ranks[bi] = pairs.rankAt(s);
          outs[bi] = pairs.mergedAt(s);
        }
      }
    }
    return n;
  }

  /** Heap of (rank, position) over a linked list of symbols, as in the Rust core. */
  private mergeLong(n: number): number {
    const syms = this.syms;
    const prev = this.prev;
    const next = this.next;
    const heap = this.heap;
    const pairs = this.pairs;
    const POS = 4294967296; // key = rank * 2^32 + position
    let size = 0;
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const push = (key: number): void => {
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        const pk = heap[parent]!;
        if (pk <= key) break;
        heap[i] = pk;
        i = parent;
      }
      heap[i] = key;
    };
    for (let i = 0; i + 1 < n; i++) {
      const s = pairs.find(syms[i]!, syms[i + 1]!);
      if (s >= 0) push(pairs.rankAt(s) * POS + i);
    }
    while (size > 0) {
      const top = heap[0]!;
      // pop
      const last = heap[--size]!;
      if (size > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= size) break;
          const r = l + 1;
          const c = r < size && heap[r]! < heap[l]! ? r : l;
          if (heap[c]! >= last) break;
          heap[i] = heap[c]!;
          i = c;
        }
        heap[i] = last;
      }
      const rank = Math.floor(top / POS);
      const pos = top - rank * POS;
      const a = syms[pos]!;
      if (a < 0) continue; // merged into its left neighbour
      const q = next[pos]!;
      if (q < 0) continue;
      const s = pairs.find(a, syms[q]!);
      if (s < 0 || pairs.rankAt(s) !== rank) continue; // stale
      const merged = pairs.mergedAt(s);
      syms[pos] = merged;
      syms[q] = -1;
      const nq = next[q]!;
      next[pos] = nq;
      if (nq >= 0) prev[nq] = pos;
      const p = prev[pos]!;
      if (p >= 0) {
        const s2 = pairs.find(syms[p]!, merged);
        if (s2 >= 0) push(pairs.rankAt(s2) * POS + p);
      }
      if (nq >= 0) {
        const s2 = pairs.find(merged, syms[nq]!);
        if (s2 >= 0) push(pairs.rankAt(s2) * POS + pos);
      }
    }
    let m = 0;
    for (let i = 0; i >= 0; i = next[i]!) syms[m++] = syms[i]!;
    return m;
  }
}

function parseHexByte(hi: number, lo: number): number {
  const h = hexDigit(hi);
  const l = hexDigit(lo);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Byte value of a `<0xNN>` piece (what the ByteFallback decoder accepts), or -1. */
export function byteOfPiece(p: string): number {
  if (p.length !== 6 || !p.startsWith('<0x') || p.charCodeAt(5) !== 0x3e) return -1;
  return parseHexByte(p.charCodeAt(3), p.charCodeAt(4));
}
