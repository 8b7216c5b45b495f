// The Gemma 3 tokenizer from GGUF metadata (tokenizer.ggml.model "llama": a SentencePiece vocabulary
// with scores and token types), rebuilt as the Hugging Face tokenizer.json that transformers'
// converter makes from the same SentencePiece model, so it encodes and decodes exactly like
// loadTokenizer() on the checkpoint's tokenizer.json.
//
// Merges. SentencePiece BPE merges the adjacent pair whose merged piece scores highest. HF's
// converter (convert_slow_tokenizer.py `generate_merges`) turns that into a merge list: every piece
// p, every split p = l + r (at code point boundaries) with l and r both pieces, ranked by
// (score(p), len(l), len(r)) descending, ties in piece-id order. tokenizer.json's 514 906 merges are
// exactly that list. Score caveats:
//   * llama.cpp's converter overwrites the score of every added token (tokenizer_config.json's
//     added_tokens_decoder: control tokens, <unusedN>, the whitespace runs "\n\n"…, "▁▁"…, "\t\t"…,
//     the HTML tags) with -1000. Those are SentencePiece USER_DEFINED / CONTROL pieces, whose
//     score in tokenizer.model is 0, the highest; HF ranks their merges first (the run "▁▁" must
//     merge before "▁x"). So CONTROL and USER_DEFINED pieces get score 0 here.
//   * This engine's own converter (convert/vocab.ts), lacking tokenizer.model, scores the NORMAL
//     pieces 0, -1, -2, … in the order of their first merge in tokenizer.json, as the
//     SentencePiece trainer does; the first ("▁t") ties with the user-defined pieces at 0, which
//     is where tokenizer.json has its merge. Rebuilt from those, the merge list is exactly
//     tokenizer.json's (tested).
//
// Added tokens (matched verbatim in the raw text before BPE, like tokenizer.json's added_tokens):
// every CONTROL, USER_DEFINED and UNKNOWN token. The converter pre-normalised user-defined tokens
// ("▁▁" stored as two spaces): spaces are turned back into "▁", as tokenizer.json has them (matched
// on raw text, so "  " is not the added token "▁▁": it goes through BPE, which merges it to "▁▁").
// `special` (what decode's skipSpecialTokens drops): CONTROL tokens except the ones the converter
// marks CONTROL only because they look special (<unusedN>, <mask>), plus UNKNOWN. Gemma's chat and
// image tokens count as special whatever their type (some third-party files mark them NORMAL).
// <image_soft_token> is not in the SentencePiece model; as in tokenizer.json it is appended as a
// special added token with the next id (262144).
import { GemmaError } from '../errors.js';
import { describeGgufValue, type GgufValue } from '../formats/gguf.js';
import type { AddedToken } from './added-tokens.js';
import type { ModelTables } from './fast-load.js';
import { tokenizerFromTables, type Tokenizer } from './tokenizer.js';

/** llama.cpp token types (gguf-py TokenType). */
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, BYTE = 6;
const META = '\u2581';
/** CONTROL only by llama.cpp's does_token_look_special; not special in tokenizer.json. */
const CONTROL_BY_LOOK = /^(<unused\d+>|<mask>)$/;
/** Gemma 3 tokens that are special in tokenizer.json whatever type a file gives them. */
const GEMMA_SPECIAL = new Set(['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>', '<start_of_image>', '<end_of_image>']);
export const IMAGE_SOFT_TOKEN = '<image_soft_token>';
/** Longest vocabulary piece accepted (Gemma 3's longest is 31 characters). */
const MAX_PIECE_LENGTH = 1 << 12;

export interface GgufTokenizerParts {
  /** Pieces by id, as tokenizer.json's vocab has them (user-defined spaces back to "▁"). */
  pieces: string[];
  added: AddedToken[];
  tables: ModelTables;
}

/**
 * Builds the tokenizer from a GGUF file's metadata. `source` names the file in errors.
 * Throws UNSUPPORTED_MODEL for a vocabulary this engine does not implement, BAD_FORMAT for
 * missing or malformed keys.
 */
export function tokenizerFromGguf(metadata: ReadonlyMap<string, GgufValue>, source = 'GGUF'): Tokenizer {
  const m = new Keys(metadata, source);
  const parts = ggufTokenizerParts(metadata, source);
  const { pieces } = parts;
  const idKey = (k: string, def: number): number => {
    const v = m.optInt(`tokenizer.ggml.${k}`);
    return v !== undefined && v < pieces.length ? v : def;
  };
  const types = (metadata.get('tokenizer.ggml.token_type') as number[] | undefined) ?? [];
  const bos = idKey('bos_token_id', 2);
  const eos = idKey('eos_token_id', 1);
  const unk = idKey('unknown_token_id', types.indexOf(UNKNOWN));
  const pad = idKey('padding_token_id', -1);
  const hasBytes = parts.tables.pieces.some((p) => p !== undefined && /^<0x[0-9A-F]{2}>$/.test(p));
  const root: Record<string, unknown> = {
    model: {
      type: 'BPE', dropout: null, fuse_unk: true, ignore_merges: false,
      byte_fallback: hasBytes && types.some((t) => t === BYTE),
      unk_token: unk >= 0 ? pieces[unk] : null,
    },
    added_tokens: parts.added.map((t) => ({ ...t, normalized: false, lstrip: false, rstrip: false, single_word: false })),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: META },
    pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: META }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
  };
  const config: Record<string, unknown> = {
    add_bos_token: m.optBool('tokenizer.ggml.add_bos_token') ?? true,
    add_eos_token: m.optBool('tokenizer.ggml.add_eos_token') ?? false,
    bos_token: pieces[bos],
    eos_token: pieces[eos],
  };
  if (pad >= 0) config['pad_token'] = pieces[pad];
  return tokenizerFromTables(root, parts.tables, config, source);
}

/** tokenizerFromGguf for a GGUF file on disk (reads only the header). */
export async function loadGgufTokenizer(path: string): Promise<Tokenizer> {
  const { openGguf } = await import('../formats/gguf.js');
  const g = openGguf(path);
  try {
    return tokenizerFromGguf(g.metadata, path);
  } finally {
    g.close();
  }
}

/** The pieces, added tokens and merge tables (exported for tests and tools). */
export function ggufTokenizerParts(metadata: ReadonlyMap<string, GgufValue>, source = 'GGUF'): GgufTokenizerParts {
  const m = new Keys(metadata, source);
  const model = metadata.get('tokenizer.ggml.model');
  if (model === undefined) throw new GemmaError('BAD_FORMAT', `${source}: no tokenizer in the file (tokenizer.ggml.model is missing)`);
  if (model !== 'llama') {
    throw new GemmaError('UNSUPPORTED_MODEL',
      `${source}: tokenizer.ggml.model is ${describeGgufValue(model)}; only the SentencePiece vocabulary ("llama") of Gemma 3 is supported`);
  }
  if (m.optBool('tokenizer.ggml.add_space_prefix') === true) {
    throw new GemmaError('UNSUPPORTED_MODEL', `${source}: tokenizer.ggml.add_space_prefix is true; Gemma 3's tokenizer adds no space prefix`);
  }
  const tokens = m.array('tokenizer.ggml.tokens', 'string');
  const n = tokens.length;
  if (n === 0) throw new GemmaError('BAD_FORMAT', `${source}: tokenizer.ggml.tokens is empty`);
  const types = metadata.has('tokenizer.ggml.token_type') ? m.array('tokenizer.ggml.token_type', 'number') : new Array<number>(n).fill(NORMAL);
  const scores = metadata.has('tokenizer.ggml.scores') ? m.array('tokenizer.ggml.scores', 'number') : null;
  if (types.length !== n) throw m.bad('tokenizer.ggml.token_type', `${n} entries (one per token), got ${types.length}`);
  if (scores === null) throw m.bad('tokenizer.ggml.scores', 'present (the merge priorities of a SentencePiece vocabulary)');
  if (scores.length !== n) throw m.bad('tokenizer.ggml.scores', `${n} entries (one per token), got ${scores.length}`);

  const pieces: string[] = new Array(n);
  const added: AddedToken[] = [];
  const mergeScore = new Float64Array(n);
  for (let id = 0; id < n; id++) {
    const type = types[id]!;
    let piece = tokens[id]!;
    if (piece.length > MAX_PIECE_LENGTH) {
      // The merge tables index every prefix of every piece: a megabyte "token" is a corrupt file.
      throw m.bad('tokenizer.ggml.tokens', `pieces of at most ${MAX_PIECE_LENGTH} characters (token ${id} has ${piece.length}; the file is corrupt)`);
    }
    if (type === USER_DEFINED && piece.includes(' ')) piece = piece.replaceAll(' ', META);
    pieces[id] = piece;
    const gemma = GEMMA_SPECIAL.has(piece);
    if (type === CONTROL || type === USER_DEFINED || type === UNKNOWN || gemma) {
      added.push({ id, content: piece, special: gemma || type === UNKNOWN || (type === CONTROL && !CONTROL_BY_LOOK.test(piece)) });
    }
    const s = scores[id]!;
    mergeScore[id] = type === CONTROL || type === USER_DEFINED ? 0 : Number.isFinite(s) ? s : -1e30;
  }
  if (!pieces.includes(IMAGE_SOFT_TOKEN)) {
    pieces.push(IMAGE_SOFT_TOKEN);
    added.push({ id: n, content: IMAGE_SOFT_TOKEN, special: true });
  }
  return { pieces, added, tables: mergeTables(pieces.slice(0, n), mergeScore) };
}

/**
 * HF's generate_merges over the model pieces: all splits of every piece into two pieces, ranked by
 * (score, left length, right length) descending, then piece id (lengths in code points).
 * Pieces are found by a polynomial hash of their UTF-16 code units (prefix hashes built up one
 * unit at a time, suffix hashes derived from the whole piece's), so no substring is allocated.
 */
export function mergeTables(pieces: readonly string[], score: Float64Array): ModelTables {
  const index = new PieceIndex(pieces);
  let cap = 1 << 20;
  let left = new Int32Array(cap);
  let right = new Int32Array(cap);
  let merged = new Int32Array(cap);
  let lens = new Int32Array(cap); // len(l) << 16 | len(r), clamped to stay positive
  let count = 0;
  const pow = index.pow;
  for (let id = 0; id < pieces.length; id++) {
    const p = pieces[id]!;
    const L = p.length;
    if (L < 2) continue;
    let cps = 0; // code points in p
    for (let i = 0; i < L; i++) if (!isLowAfterHigh(p, i)) cps++;
    const whole = index.hashes[id]!;
    let h = 0;
    let lcps = 0; // code points in p[0, i)
    for (let i = 1; i < L; i++) {
      h = (Math.imul(h, HASH_MUL) + p.charCodeAt(i - 1)) | 0;
      if (!isLowAfterHigh(p, i - 1)) lcps++;
      if (isLowAfterHigh(p, i)) continue; // a split inside a surrogate pair is never two pieces
      const l = index.findPrefix(p, i, h);
      if (l < 0) continue;
      const r = index.findSuffix(p, L - i, (whole - Math.imul(h, pow[L - i]!)) | 0);
      if (r < 0) continue;
      if (count === cap) {
        cap *= 2;
        left = grow(left, cap);
        right = grow(right, cap);
        merged = grow(merged, cap);
        lens = grow(lens, cap);
      }
      left[count] = l;
      right[count] = r;
      merged[count] = id;
      lens[count] = (Math.min(lcps, 0x7fff) << 16) | Math.min(cps - lcps, 0xffff);
      count++;
    }
  }
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  // Candidates were produced in piece-id order, so ties fall back to the index.
  order.sort((a, b) => (score[merged[b]!]! - score[merged[a]!]!) || (lens[b]! - lens[a]!) || (a - b));
  const L = new Int32Array(count), R = new Int32Array(count), M = new Int32Array(count);
  for (let k = 0; k < count; k++) {
    const i = order[k]!;
    L[k] = left[i]!;
    R[k] = right[i]!;
    M[k] = merged[i]!;
  }
  return { pieces: pieces.slice(), idOf: (piece) => index.find(piece), left: L, right: R, merged: M };
}

const HASH_MUL = 0x01000193;

function isLowAfterHigh(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 0xdc00 || c > 0xdfff || i === 0) return false;
  const b = s.charCodeAt(i - 1);
  return b >= 0xd800 && b <= 0xdbff;
}

/** Open-addressing hash table piece → id (a later duplicate wins, as in HF's vocab dict). */
class PieceIndex {
  readonly hashes: Int32Array;
  readonly pow: Int32Array; // HASH_MUL^k mod 2^32
  private readonly slots: Int32Array; // id + 1, 0 = empty
  private readonly mask: number;

  constructor(private readonly pieces: readonly string[]) {
    const n = pieces.length;
    let maxLen = 1;
    this.hashes = new Int32Array(n);
    for (let id = 0; id < n; id++) {
      const p = pieces[id]!;
      let h = 0;
      for (let i = 0; i < p.length; i++) h = (Math.imul(h, HASH_MUL) + p.charCodeAt(i)) | 0;
      this.hashes[id] = h;
      if (p.length > maxLen) maxLen = p.length;
    }
    this.pow = new Int32Array(maxLen + 1);
    this.pow[0] = 1;
    for (let k = 1; k <= maxLen; k++) this.pow[k] = Math.imul(this.pow[k - 1]!, HASH_MUL);
    let cap = 16;
    while (cap < n * 2) cap *= 2;
    this.mask = cap - 1;
    this.slots = new Int32Array(cap);
    for (let id = 0; id < n; id++) {
      const p = pieces[id]!;
      let s = mix(this.hashes[id]!) & this.mask;
      for (;;) {
        const e = this.slots[s]!;
        if (e === 0 || pieces[e - 1] === p) break;
        s = (s + 1) & this.mask;
      }
      this.slots[s] = id + 1;
    }
  }

  /** Id of the piece equal to p[0, len) whose hash is h, or -1. */
  findPrefix(p: string, len: number, h: number): number {
    for (let s = mix(h) & this.mask; ; s = (s + 1) & this.mask) {
      const e = this.slots[s]!;
      if (e === 0) return -1;
      const q = this.pieces[e - 1]!;
      if (this.hashes[e - 1] === h && q.length === len && p.startsWith(q)) return e - 1;
    }
  }

  /** Id of the piece equal to the last len units of p whose hash is h, or -1. */
  findSuffix(p: string, len: number, h: number): number {
    for (let s = mix(h) & this.mask; ; s = (s + 1) & this.mask) {
      const e = this.slots[s]!;
      if (e === 0) return -1;
      const q = this.pieces[e - 1]!;
      if (this.hashes[e - 1] === h && q.length === len && p.endsWith(q)) return e - 1;
    }
  }

  find(piece: string): number | undefined {
    if (typeof piece !== 'string') return undefined;
    let h = 0;
    for (let i = 0; i < piece.length; i++) h = (Math.imul(h, HASH_MUL) + piece.charCodeAt(i)) | 0;
    const id = this.findPrefix(piece, piece.length, h);
    return id < 0 ? undefined : id;
  }
}

/** Spreads a polynomial hash's bits (its low bits alone cluster). */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return h ^ (h >>> 13);
}

function grow(a: Int32Array<ArrayBuffer>, cap: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(cap);
  b.set(a);
  return b;
}

class Keys {
  constructor(readonly m: ReadonlyMap<string, GgufValue>, readonly file: string) {}

  bad(key: string, expected: string): GemmaError {
    return new GemmaError('BAD_FORMAT', `${this.file}: metadata ${key} must be ${expected}`);
  }

  array<T extends 'string' | 'number'>(key: string, type: T): (T extends 'string' ? string : number)[] {
    const v = this.m.get(key);
    if (!Array.isArray(v)) throw this.bad(key, `an array of ${type}s, got ${v === undefined ? 'nothing' : typeof v}`);
    for (let i = 0; i < v.length; i++) {
      if (typeof v[i] !== type) throw this.bad(key, `an array of ${type}s (entry ${i} is ${typeof v[i]})`);
    }
    return v as (T extends 'string' ? string : number)[];
  }

  optInt(key: string): number | undefined {
    const v = this.m.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.bad(key, `a non-negative integer, got ${String(v)}`);
    return v;
  }

  optBool(key: string): boolean | undefined {
    const v = this.m.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this.bad(key, `a boolean, got ${String(v)}`);
    return v;
  }
}

