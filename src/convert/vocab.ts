// Tokenizer metadata for a Gemma 3 GGUF, from tokenizer.json (+ tokenizer_config.json, chat
// template files), the way llama.cpp's converter writes it for a SentencePiece model
// (convert_hf_to_gguf.py `_set_vocab_sentencepiece` + gguf-py `SpecialVocab`):
//   tokenizer.ggml.model "llama", pre "default", tokens / scores / token_type,
//   bos / eos / unk / pad ids, add_bos_token / add_eos_token, chat_template, add_space_prefix false.
// The converter reads tokens, scores and types from tokenizer.model; a checkpoint with only
// tokenizer.json has no scores, so they are derived from the BPE merges. Hugging Face built those
// merges from the SentencePiece scores (merges sorted by the merged piece's score, best first), so
// ordering the NORMAL pieces by the rank of the first merge that produces each and scoring them
// 0, -1, -2, … reproduces the SentencePiece BPE scores (the trainer scores its i-th piece -i). That
// order is all llama.cpp's SPM tokenizer uses (it merges the highest-scoring bigram first), and
// tokenizer/gguf-vocab.ts rebuilds tokenizer.json's exact merge list from it: the first piece's 0
// ties with the user-defined pieces' 0 there, as in tokenizer.model (the first normal merge, "▁t",
// sits among the whitespace-run merges). Pieces no merge produces (single characters) score below
// every merged piece.
// Then, as in `_create_vocab_sentencepiece`, every added token of tokenizer_config.json becomes
// CONTROL (special, or looks special: <unused…>, <mask>, <|…|>) or USER_DEFINED (▁ replaced by a
// space), score -1000; <0xXX> pieces are BYTE and the unknown piece UNKNOWN.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GemmaError } from '../errors.js';
import type { GgufMetadataEntry } from '../formats/gguf-writer.js';

/** Ids a vocabulary may skip (filled with [PADi] tokens). */
const MAX_VOCAB_HOLES = 1 << 16;

/** gguf-py TokenType. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, any>;

function readJson(path: string): Json {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new GemmaError('BAD_FORMAT', `${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** TextModel.does_token_look_special of convert_hf_to_gguf.py. */
function looksSpecial(t: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t)
    || (t.startsWith('<|') && t.endsWith('|>'))
    || (t.startsWith('<｜') && t.endsWith('｜>'))
    || (t.startsWith('<unused') && t.endsWith('>'));
}

export interface GgufVocab {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  /** The tokenizer.* metadata entries, in the order the converter writes them. */
  metadata: GgufMetadataEntry[];
}

/** Builds the tokenizer metadata from the checkpoint folder `dir`. */
export function readGgufVocab(dir: string): GgufVocab {
  const tokPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokPath)) throw new GemmaError('FILE_NOT_FOUND', `tokenizer.json not found in ${dir} (needed for the GGUF vocabulary)`);
  const tok = readJson(tokPath);
  const model = tok['model'];
  if (!model || model.type !== 'BPE' || typeof model.vocab !== 'object' || !Array.isArray(model.merges)) {
    throw new GemmaError('UNSUPPORTED_MODEL', `${tokPath}: expected the Gemma SentencePiece-BPE tokenizer (model.type BPE with vocab and merges)`);
  }
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = existsSync(cfgPath) ? readJson(cfgPath) : {};

  let n = 0;
  const ids = Object.values(model.vocab as Record<string, number>);
  for (const id of ids) if (Number.isSafeInteger(id) && id >= n) n = id + 1;
  // Holes become [PADi] tokens, as in llama.cpp's converter; ids far past the entry count are a
  // corrupt file, refused before they size the token list.
  if (n > ids.length + MAX_VOCAB_HOLES) {
    throw new GemmaError('BAD_FORMAT', `${tokPath}: a vocab id of ${n - 1} with only ${ids.length} entries: the file is corrupt`);
  }
  const tokens: string[] = Array.from({ length: n }, (_, i) => `[PAD${i}]`);
  const scores = new Float32Array(n).fill(-10000);
  const types = new Int32Array(n).fill(TokenType.UNUSED);

  const firstMerge = new Map<string, number>();
  (model.merges as (string | [string, string])[]).forEach((m, rank) => {
    const piece = Array.isArray(m) ? m[0] + m[1] : m.replace(' ', '');
    if (!firstMerge.has(piece)) firstMerge.set(piece, rank);
  });
  const ranked: [number, number][] = []; // [first merge rank, id] of the NORMAL pieces a merge produces
  for (const [piece, id] of Object.entries(model.vocab as Record<string, number>)) {
    if (!Number.isSafeInteger(id) || id < 0) throw new GemmaError('BAD_FORMAT', `${tokPath}: vocab id of ${JSON.stringify(piece)} is ${id}`);
    tokens[id] = piece;
    if (model.byte_fallback && /^<0x[0-9A-F]{2}>$/.test(piece)) {
      types[id] = TokenType.BYTE;
      scores[id] = 0;
    } else if (piece === model.unk_token) {
      types[id] = TokenType.UNKNOWN;
      scores[id] = 0;
    } else {
      types[id] = TokenType.NORMAL;
      const rank = firstMerge.get(piece);
      if (rank !== undefined) ranked.push([rank, id]);
    }
  }

  // Added tokens: tokenizer_config.json's added_tokens_decoder (what the converter reads), else tokenizer.json's list.
  const added: { id: number; content: string; special: boolean }[] = cfg['added_tokens_decoder']
    ? Object.entries(cfg['added_tokens_decoder'] as Record<string, Json>).map(([id, t]) => ({ id: Number(id), content: t['content'], special: !!t['special'] }))
    : ((tok['added_tokens'] ?? []) as Json[]).map((t) => ({ id: t['id'], content: t['content'], special: !!t['special'] }));
  for (const { id, content, special } of added) {
    if (!Number.isSafeInteger(id) || id < 0 || id >= n || typeof content !== 'string') continue; // out of range: ignored, as the converter does
    const control = special || looksSpecial(content);
    types[id] = control ? TokenType.CONTROL : TokenType.USER_DEFINED;
    tokens[id] = control ? content : content.replaceAll('\u2581', ' ');
    scores[id] = -1000;
  }
  // SentencePiece-style scores of the NORMAL pieces (added tokens are scored -1000 above).
  const scored = new Uint8Array(n);
  let next = 0;
  for (const [, id] of ranked.sort((a, b) => a[0] - b[0])) {
    if (types[id] !== TokenType.NORMAL) continue;
    scores[id] = -next++;
    scored[id] = 1;
  }
  for (let id = 0; id < n; id++) if (types[id] === TokenType.NORMAL && scored[id] === 0) scores[id] = -next;

  const metadata: GgufMetadataEntry[] = [
    ['tokenizer.ggml.model', 'string', 'llama'],
    ['tokenizer.ggml.pre', 'string', 'default'],
    ['tokenizer.ggml.tokens', { array: 'string' }, tokens],
    ['tokenizer.ggml.scores', { array: 'f32' }, scores],
    ['tokenizer.ggml.token_type', { array: 'i32' }, types],
  ];
  metadata.push(...specialTokens(dir, tok, cfg, n));
  const template = chatTemplate(dir, cfg);
  if (template !== null) metadata.push(...template);
  metadata.push(['tokenizer.ggml.add_space_prefix', 'bool', false]);
  return { tokens, scores, types, metadata };
}

/** gguf-py SpecialVocab: special ids from tokenizer_config.json (looked up among added tokens), else config.json. */
function specialTokens(dir: string, tok: Json, cfg: Json, n: number): GgufMetadataEntry[] {
  const keys: [string, string][] = [['bos', 'bos_token_id'], ['eos', 'eos_token_id'], ['unk', 'unknown_token_id'],
    ['sep', 'seperator_token_id'], ['pad', 'padding_token_id'], ['cls', 'cls_token_id'], ['mask', 'mask_token_id']];
  const addedList = (tok['added_tokens'] ?? []) as Json[];
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  const out: GgufMetadataEntry[] = [];
  for (const [typ, key] of keys) {
    const entry = cfg[`${typ}_token`];
    const content = typeof entry === 'string' ? entry : entry && typeof entry === 'object' ? entry['content'] : undefined;
    let id: unknown = content === undefined ? undefined : addedList.find((a) => a['content'] === content)?.['id'];
    if (typeof id !== 'number') id = config[`${typ}_token_id`] ?? (config['text_config'] ?? {})[`${typ}_token_id`];
    if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 && id < n) out.push([`tokenizer.ggml.${key}`, 'u32', id]);
  }
  for (const typ of ['bos', 'eos']) {
    const v = cfg[`add_${typ}_token`];
    if (typeof v === 'boolean') out.push([`tokenizer.ggml.add_${typ}_token`, 'bool', v]);
  }
  return out;
}

/** tokenizer_config.json's chat_template, else chat_template.jinja, else chat_template.json. */
function chatTemplate(dir: string, cfg: Json): GgufMetadataEntry[] | null {
  let t: unknown = cfg['chat_template'];
  if (t === undefined) {
    const jinja = join(dir, 'chat_template.jinja');
    const json = join(dir, 'chat_template.json');
    if (existsSync(jinja)) t = readFileSync(jinja, 'utf8');
    else if (existsSync(json)) t = readJson(json)['chat_template'];
  }
  if (typeof t === 'string') return [['tokenizer.chat_template', 'string', t]];
  if (Array.isArray(t)) {
    // A list of named templates: "default" is the main one, the others get their own keys.
    const out: GgufMetadataEntry[] = [];
    for (const e of t as Json[]) {
      if (typeof e['name'] !== 'string' || typeof e['template'] !== 'string') continue;
      out.push([e['name'] === 'default' ? 'tokenizer.chat_template' : `tokenizer.chat_template.${e['name']}`, 'string', e['template']]);
    }
    return out;
  }
  return null;
}
