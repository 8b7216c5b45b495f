// The Gemma 3 tokenizer: HF `tokenizer.json` semantics (the Rust `tokenizers` core is the
// reference), in pure TypeScript.
//
// Encoding: added tokens are matched verbatim in the raw text (leftmost-longest); every other span
// is one BPE word after the normaliser (space -> `▁`; the `Split(" ")` pre-tokenizer is then a no-op),
// encoded by `BpeModel` (merges, byte fallback). The post-processor prepends `<bos>`.
// Decoding: pieces, `▁` -> space, runs of `<0xNN>` pieces decoded as UTF-8 (a run that is not valid
// UTF-8 gives one U+FFFD per byte, like Rust's `String::from_utf8` failing), concatenated.

import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GemmaError } from '../errors.js';
import { AddedTokenMatcher, type AddedToken } from './added-tokens.js';
import { BpeModel, byteOfPiece } from './bpe.js';
import { fastParseTokenizerJson, type ModelTables } from './fast-load.js';

export { StreamingDetokenizer } from './streaming-decoder.js';

export interface EncodeOptions {
  /** Adds the post-processor's special tokens (`<bos>`). Default: `add_bos_token` of tokenizer_config.json, else true. */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drops the tokens flagged `special` (`<bos>`, `<eos>`, `<start_of_turn>`, `<end_of_turn>`, image tokens, …). */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  /** Number of ids (262145 for Gemma 3: 262144 pieces + <image_soft_token>). */
  readonly size: number;
  readonly bosId: number; // 2
  readonly eosId: number; // 1
  readonly padId: number; // 0
  /** Id of `<unk>`, or -1. */
  readonly unkId: number;
  /** Id of `<end_of_turn>` (106 for Gemma 3), or undefined when the vocabulary has none. */
  readonly endOfTurnId: number | undefined;
  /** Id of tokenizer_config.json's `eos_token` (`<end_of_turn>`, 106, for Gemma 3), else `eosId`. */
  readonly configEosId: number;
  /** Encodes text. Added/special tokens written in the raw text (e.g. "<start_of_turn>", "<bos>") become their ids. addBos defaults to true (prepends 2). */
  encode(text: string, options?: EncodeOptions): number[];
  /** Pieces for text, as HF `tokenize` gives (no BOS). */
  tokenize(text: string): string[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The vocabulary piece of an id, e.g. "▁world", "<0x0A>", "<end_of_turn>"; throws GemmaError INVALID_ARGUMENT for an out-of-range id. */
  piece(id: number): string;
  /** Id of an exact piece or added token, or undefined. */
  tokenId(piece: string): number | undefined;
  isSpecial(id: number): boolean;
  /** The byte of a byte-fallback piece `<0xNN>`, or -1 (also for out-of-range ids). */
  byteValue(id: number): number;
  /** The decoded text of one non-byte piece (`▁` -> space); '' for an out-of-range id. */
  pieceText(id: number): string;
  /** Empties the encoder's chunk cache (it is bounded anyway; for benchmarks and memory). */
  clearCache(): void;
}

const META = '\u2581';

interface TokenizerParts {
  pieces: string[]; // by id, all ids (model vocab and added tokens)
  idOf: (piece: string) => number | undefined; // model vocab lookup
  added: AddedToken[];
  model: BpeModel;
  bosId: number;
  eosId: number;
  padId: number;
  unkId: number;
  configEosId: number | undefined;
  addBos: boolean;
  addEos: boolean;
}

class GemmaTokenizer implements Tokenizer {
  readonly size: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly endOfTurnId: number | undefined;
  readonly configEosId: number;
  private readonly pieces: string[];
  private readonly idOf: (piece: string) => number | undefined;
  private readonly addedByContent = new Map<string, number>();
  private readonly special: Uint8Array;
  private readonly bytes: Int16Array; // id -> byte of a <0xNN> piece, -1 otherwise
  private readonly texts: (string | undefined)[]; // decoded piece text, filled lazily
  private readonly matcher: AddedTokenMatcher;
  private readonly model: BpeModel;
  private readonly addBosDefault: boolean;
  private readonly addEos: boolean;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  constructor(p: TokenizerParts) {
    this.pieces = p.pieces;
    this.idOf = p.idOf;
    this.size = p.pieces.length;
    this.bosId = p.bosId;
    this.eosId = p.eosId;
    this.padId = p.padId;
    this.unkId = p.unkId;
    this.model = p.model;
    this.addBosDefault = p.addBos;
    this.addEos = p.addEos;
    this.special = new Uint8Array(this.size);
    for (const t of p.added) {
      this.addedByContent.set(t.content, t.id);
      if (t.special) this.special[t.id] = 1;
    }
    this.matcher = new AddedTokenMatcher(p.added);
    this.bytes = new Int16Array(this.size).fill(-1);
    for (let id = 0; id < this.size; id++) {
      const piece = this.pieces[id];
      if (piece !== undefined && piece.length === 6) this.bytes[id] = byteOfPiece(piece);
    }
    this.texts = new Array<string | undefined>(this.size);
    this.endOfTurnId = this.tokenId('<end_of_turn>');
    this.configEosId = p.configEosId ?? p.eosId;
  }

  encode(text: string, options?: EncodeOptions): number[] {
    if (typeof text !== 'string') throw new GemmaError('INVALID_ARGUMENT', `text must be a string, got ${typeof text}`);
    const addSpecial = options?.addBos ?? this.addBosDefault;
    const out: number[] = [];
    if (addSpecial && this.bosId >= 0) out.push(this.bosId);
    this.encodeInto(text, out);
    if (addSpecial && this.addEos && this.configEosId >= 0) out.push(this.configEosId);
    return out;
  }

  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new GemmaError('INVALID_ARGUMENT', `text must be a string, got ${typeof text}`);
    const ids: number[] = [];
    this.encodeInto(text, ids);
    return ids.map((id) => this.pieces[id]!);
  }

  private encodeInto(text: string, out: number[]): void {
    const matcher = this.matcher;
    const first = matcher.firstUnits;
    const model = this.model;
    const n = text.length;
    let segStart = 0;
    let i = 0;
    while (i < n) {
      if (first[text.charCodeAt(i)] === 1) {
        const len = matcher.match(text, i);
        if (len > 0) {
          if (segStart < i) model.encodeWord(text, segStart, i, out);
          out.push(matcher.matchedId);
          i += len;
          segStart = i;
          continue;
        }
      }
      i++;
    }
    if (segStart < n) model.encodeWord(text, segStart, n, out);
  }

  decode(ids: readonly number[], options?: DecodeOptions): string {
    const skip = options?.skipSpecialTokens === true;
    let out = '';
    let run: number[] | undefined;
    const size = this.size;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      if (!(Number.isInteger(id) && id >= 0 && id < size)) continue; // the Rust core drops unknown ids
      if (skip && this.special[id] === 1) continue;
      const b = this.bytes[id]!;
      if (b >= 0) {
        (run ??= []).push(b);
        continue;
      }
      if (run !== undefined && run.length > 0) {
        out += this.decodeBytes(run);
        run.length = 0;
      }
      out += this.pieceText(id);
    }
    if (run !== undefined && run.length > 0) out += this.decodeBytes(run);
    return out;
  }

  /** A run of byte-fallback bytes: valid UTF-8 as text, else one U+FFFD per byte (as the Rust core). */
  decodeBytes(bytes: readonly number[]): string {
    try {
      return this.decoder.decode(Uint8Array.from(bytes));
    } catch {
      return '\uFFFD'.repeat(bytes.length);
    }
  }

  piece(id: number): string {
    const p = Number.isInteger(id) && id >= 0 && id < this.size ? this.pieces[id] : undefined;
    if (p === undefined) throw new GemmaError('INVALID_ARGUMENT', `token id must be an integer in [0, ${this.size}), got ${String(id)}`);
    return p;
  }

  tokenId(piece: string): number | undefined {
    const added = this.addedByContent.get(piece);
    if (added !== undefined) return added;
    return typeof piece === 'string' ? this.idOf(piece) : undefined;
  }

  isSpecial(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.size && this.special[id] === 1;
  }

  clearCache(): void {
    this.model.clearCache();
  }

  byteValue(id: number): number {
    return Number.isInteger(id) && id >= 0 && id < this.size ? this.bytes[id]! : -1;
  }

  pieceText(id: number): string {
    if (!(Number.isInteger(id) && id >= 0 && id < this.size)) return '';
    let t = this.texts[id];
    if (t === undefined) {
      const p = this.pieces[id];
      t = p === undefined ? '' : p.includes(META) ? p.replaceAll(META, ' ') : p;
      this.texts[id] = t;
    }
    return t;
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

/**
 * Loads `dir/tokenizer.json` (and `dir/tokenizer_config.json` when present, for add_bos_token /
 * add_eos_token / eos_token). `dir` may also name the tokenizer.json file itself, or a GGUF
 * model file (`*.gguf`: the vocabulary in its metadata, see gguf-vocab.ts).
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  let path = join(dir, 'tokenizer.json');
  let configDir = dir;
  try {
    const st = await stat(dir);
    if (st.isFile() && dir.toLowerCase().endsWith('.gguf')) {
      const { loadGgufTokenizer } = await import('./gguf-vocab.js');
      return loadGgufTokenizer(dir);
    }
    if (st.isFile()) {
      path = dir;
      configDir = dirname(dir);
    }
  } catch {
    // reported below as a missing tokenizer.json
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new GemmaError('FILE_NOT_FOUND', `tokenizer file not found: ${path}`, { cause: e });
    }
    throw new GemmaError('BAD_FORMAT', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const configPath = join(configDir, 'tokenizer_config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      throw new GemmaError('BAD_FORMAT', `${configPath} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  const fast = fastParseTokenizerJson(bytes);
  if (fast !== undefined) return buildTokenizer(fast.root, fast.tables, config, path);
  return tokenizerFromJson(bytes.toString('utf8'), config, path);
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Builds a tokenizer from the contents of tokenizer.json (a JSON string or the parsed object) and,
 * optionally, tokenizer_config.json (string or object). `source` names the file in error messages.
 */
export function tokenizerFromJson(json: unknown, configJson?: unknown, source = 'tokenizer.json'): Tokenizer {
  const bad = (msg: string): GemmaError => new GemmaError('BAD_FORMAT', `${source}: ${msg}`);
  let root: unknown = json;
  if (typeof json === 'string') {
    try {
      root = JSON.parse(json);
    } catch (e) {
      throw new GemmaError('BAD_FORMAT', `${source} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  let config: unknown = configJson;
  if (typeof configJson === 'string') {
    try {
      config = JSON.parse(configJson);
    } catch (e) {
      throw new GemmaError('BAD_FORMAT', `tokenizer_config.json is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  if (!isObject(root)) throw bad('expected a JSON object');
  const model = root['model'];
  if (!isObject(model)) throw bad('missing "model"');
  checkModelType(model, bad);
  const vocab = model['vocab'];
  const merges = model['merges'];
  if (!isObject(vocab)) throw bad('model.vocab is missing or not an object');
  if (!Array.isArray(merges)) throw bad('model.merges is missing or not an array');

  // Vocabulary. Every id below the largest must have a piece (checked in buildTokenizer), so an id
  // beyond the number of entries is corrupt, and is refused before it sizes the id table.
  const vocabMap = new Map<string, number>();
  const pieces: string[] = [];
  const keys = Object.keys(vocab);
  const idLimit = keys.length + (Array.isArray(root['added_tokens']) ? root['added_tokens'].length : 0);
  for (const piece of keys) {
    const id = vocab[piece];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw bad(`vocab entry ${shortJson(piece)} has a bad id`);
    if (id >= idLimit) {
      throw bad(`vocab entry ${shortJson(piece)} has id ${id}, but the vocab and added tokens have only ${idLimit} entries (ids run from 0 without gaps): the file is corrupt`);
    }
    if (pieces[id] !== undefined) throw bad(`id ${id} appears twice in the vocab`);
    pieces[id] = piece;
    vocabMap.set(piece, id);
  }

  // Merges, as ids.
  const nm = merges.length;
  const left = new Int32Array(nm);
  const right = new Int32Array(nm);
  const merged = new Int32Array(nm);
  for (let k = 0; k < nm; k++) {
    const m: unknown = merges[k];
    let a: unknown;
    let b: unknown;
    if (Array.isArray(m)) {
      if (m.length === 2) [a, b] = m as unknown[];
    } else if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length === 2) [a, b] = parts;
    }
    if (typeof a !== 'string' || typeof b !== 'string') throw bad(`merge ${k} is not a pair of strings`);
    const ia = vocabMap.get(a);
    const ib = vocabMap.get(b);
    const im = vocabMap.get(a + b);
    if (ia === undefined || ib === undefined) throw bad(`merge ${k} (${shortJson(a)}, ${shortJson(b)}) uses a piece missing from the vocab`);
    if (im === undefined) throw bad(`merge ${k}: ${shortJson(a + b)} is missing from the vocab`);
    left[k] = ia;
    right[k] = ib;
    merged[k] = im;
  }
  const rest: Json = { ...model };
  delete rest['vocab'];
  delete rest['merges'];
  const tables: ModelTables = { pieces, idOf: (p) => vocabMap.get(p), left, right, merged };
  return buildTokenizer({ ...root, model: rest }, tables, config, source);
}

/** A piece or value for an error message, at most ~60 characters. */
function shortJson(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function checkModelType(model: Json, bad: (m: string) => GemmaError): void {
  if (model['type'] !== undefined && model['type'] !== 'BPE') throw bad(`model type is ${shortJson(model['type'])}, expected "BPE"`);
}

/**
 * Builds a tokenizer from a tokenizer.json-shaped object without `model.vocab` / `model.merges`
 * and the vocabulary and merges as tables (used by the GGUF vocabulary, gguf-vocab.ts).
 */
export function tokenizerFromTables(root: Json, tables: ModelTables, config: unknown, source: string): Tokenizer {
  return buildTokenizer(root, tables, config, source);
}

/** Everything but the vocabulary and merges: options, added tokens, special ids. */
function buildTokenizer(root: Json, tables: ModelTables, config: unknown, source: string): Tokenizer {
  const bad = (msg: string): GemmaError => new GemmaError('BAD_FORMAT', `${source}: ${msg}`);
  const unsupported = (msg: string): GemmaError => new GemmaError('UNSUPPORTED_MODEL', `${source}: ${msg}`);
  const model = root['model'];
  if (!isObject(model)) throw bad('missing "model"');
  checkModelType(model, bad);
  if (model['dropout'] != null && model['dropout'] !== 0) throw unsupported('BPE dropout is not supported');
  if (model['continuing_subword_prefix'] || model['end_of_word_suffix']) throw unsupported('continuing_subword_prefix / end_of_word_suffix are not supported');
  if (model['ignore_merges'] === true) throw unsupported('ignore_merges is not supported');

  const modelPieces = tables.pieces;
  const pieces: (string | undefined)[] = modelPieces.slice();

  // Added tokens.
  const addedRaw = root['added_tokens'] ?? [];
  if (!Array.isArray(addedRaw)) throw bad('"added_tokens" is not an array');
  const added: AddedToken[] = [];
  const addedIds = new Map<string, number>();
  const idLimit = modelPieces.length + addedRaw.length; // ids run from 0 without gaps (checked below)
  for (const t of addedRaw as unknown[]) {
    if (!isObject(t) || typeof t['id'] !== 'number' || !Number.isInteger(t['id']) || t['id'] < 0 || typeof t['content'] !== 'string') {
      throw bad('an added token lacks an integer id or a string content');
    }
    const id = t['id'];
    if (id >= idLimit) {
      throw bad(`added token ${shortJson(t['content'])} has id ${id}, but the vocab and added tokens have only ${idLimit} entries: the file is corrupt`);
    }
    const content = t['content'];
    if (pieces[id] !== undefined && pieces[id] !== content) throw bad(`added token ${id} (${shortJson(content)}) disagrees with the vocab (${shortJson(pieces[id])})`);
    if (t['lstrip'] === true || t['rstrip'] === true || t['single_word'] === true) throw unsupported(`added token ${shortJson(content)} uses lstrip/rstrip/single_word`);
    // Tokens with normalized: true (the default for non-special ones) are matched by the Rust core
    // on normalised text; that only differs from raw matching when the token holds a space or `▁`.
    const normalized = typeof t['normalized'] === 'boolean' ? t['normalized'] : t['special'] !== true;
    if (normalized && /[ \u2581]/.test(content)) throw unsupported(`added token ${shortJson(content)} is normalized and contains a space`);
    added.push({ id, content, special: t['special'] === true });
    addedIds.set(content, id);
    pieces[id] = content;
  }
  for (let id = 0; id < pieces.length; id++) if (pieces[id] === undefined) throw bad(`no piece for id ${id}`);

  // Normaliser / pre-tokenizer / decoder: Gemma's, or nothing.
  const spaceToMeta = checkNormalizer(root['normalizer'], unsupported);
  checkPreTokenizer(root['pre_tokenizer'], spaceToMeta, unsupported);
  checkDecoder(root['decoder'], unsupported);

  const unkToken = model['unk_token'];
  const unkId = typeof unkToken === 'string' ? (addedIds.get(unkToken) ?? tables.idOf(unkToken) ?? -1) : -1;
  const bpe = new BpeModel({
    pieces: modelPieces,
    mergeLeft: tables.left,
    mergeRight: tables.right,
    mergedIds: tables.merged,
    unkId,
    byteFallback: model['byte_fallback'] === true,
    fuseUnk: model['fuse_unk'] === true,
    spaceToMeta,
  });

  // Special ids and post-processing.
  const cfg = isObject(config) ? config : {};
  const idOf = (piece: string | undefined): number | undefined => {
    if (piece === undefined) return undefined;
    return addedIds.get(piece) ?? tables.idOf(piece);
  };
  const cfgToken = (key: string): string | undefined => {
    const v = cfg[key];
    if (typeof v === 'string') return v;
    if (isObject(v) && typeof v['content'] === 'string') return v['content'];
    return undefined;
  };
  const templateBos = templatePrefix(root['post_processor']);
  const bosId = idOf(cfgToken('bos_token')) ?? templateBos ?? idOf('<bos>') ?? -1;
  const eosId = idOf('<eos>') ?? idOf(cfgToken('eos_token')) ?? -1;
  const padId = idOf('<pad>') ?? idOf(cfgToken('pad_token')) ?? -1;
  const addBos = typeof cfg['add_bos_token'] === 'boolean' ? cfg['add_bos_token'] : templateBos !== undefined;
  const addEos = cfg['add_eos_token'] === true;
  return new GemmaTokenizer({
    pieces: pieces as string[],
    idOf: tables.idOf,
    added,
    model: bpe,
    bosId,
    eosId,
    padId,
    unkId,
    configEosId: idOf(cfgToken('eos_token')),
    addBos,
    addEos,
  });
}

function checkNormalizer(n: unknown, unsupported: (m: string) => GemmaError): boolean {
  if (n == null) return false;
  const list = isObject(n) && n['type'] === 'Sequence' && Array.isArray(n['normalizers']) ? n['normalizers'] : [n];
  if (list.length === 0) return false;
  if (list.length === 1 && isSpaceReplace(list[0], ' ', META)) return true;
  throw unsupported(`unsupported normalizer ${JSON.stringify(n).slice(0, 200)} (only Replace " " -> "▁" is implemented)`);
}

function checkPreTokenizer(p: unknown, spaceToMeta: boolean, unsupported: (m: string) => GemmaError): void {
  if (p == null) return;
  const list = isObject(p) && p['type'] === 'Sequence' && Array.isArray(p['pretokenizers']) ? p['pretokenizers'] : [p];
  for (const q of list) {
    // Splitting on " " after every space became "▁" finds nothing to split.
    if (spaceToMeta && isObject(q) && q['type'] === 'Split' && isObject(q['pattern']) && q['pattern']['String'] === ' ' && q['invert'] !== true) continue;
    throw unsupported(`unsupported pre_tokenizer ${JSON.stringify(p).slice(0, 200)}`);
  }
}

function checkDecoder(d: unknown, unsupported: (m: string) => GemmaError): void {
  if (d == null) return; // decode() always applies Gemma's decoder
  const list = isObject(d) && d['type'] === 'Sequence' && Array.isArray(d['decoders']) ? d['decoders'] : [d];
  for (const q of list) {
    if (isSpaceReplace(q, META, ' ')) continue;
    if (isObject(q) && (q['type'] === 'ByteFallback' || q['type'] === 'Fuse')) continue;
    throw unsupported(`unsupported decoder ${JSON.stringify(d).slice(0, 200)}`);
  }
}

function isSpaceReplace(q: unknown, from: string, to: string): boolean {
  return isObject(q) && q['type'] === 'Replace' && isObject(q['pattern']) && q['pattern']['String'] === from && q['content'] === to;
}

/** The `<bos>`-like special token at the start of a TemplateProcessing `single` template. */
function templatePrefix(pp: unknown): number | undefined {
  if (!isObject(pp) || pp['type'] !== 'TemplateProcessing' || !Array.isArray(pp['single'])) return undefined;
  const first: unknown = pp['single'][0];
  if (!isObject(first) || !isObject(first['SpecialToken'])) return undefined;
  const name = first['SpecialToken']['id'];
  const specials = pp['special_tokens'];
  if (typeof name !== 'string' || !isObject(specials) || !isObject(specials[name])) return undefined;
  const ids = specials[name]['ids'];
  return Array.isArray(ids) && typeof ids[0] === 'number' ? ids[0] : undefined;
}
