// Tokenizer against the golden fixtures (reference: the HF Rust `tokenizers` core).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GemmaError } from '../src/errors.js';
import { loadTokenizer, StreamingDetokenizer, tokenizerFromJson, type Tokenizer } from '../src/tokenizer/tokenizer.js';
import { fixturePath, readJson } from './helpers.js';

interface EncodeCase {
  id: string;
  text: string;
  ids: number[];
  tokens: string[];
  ids_with_special: number[];
  decoded: { with_special: { keep: string; skip: string }; without_special: { keep: string; skip: string } };
}
interface DecodeCase {
  id: string;
  ids: number[];
  decoded: { keep: string; skip: string };
}

const cases = readJson<{ cases: EncodeCase[]; decode_cases: DecodeCase[] }>(fixturePath('tokenizer', 'gemma3-tokenizer-cases.json'));
const fuzz = readJson<{ cases: [string, string, number[], boolean][] }>(fixturePath('tokenizer', 'gemma3-tokenizer-fuzz.json'));

const loadStart = performance.now();
const tok: Tokenizer = await loadTokenizer(fixturePath('tiny-text'));
const loadMs = performance.now() - loadStart;

function isGemmaError(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof GemmaError && e.code === code;
}

test('loads the Gemma 3 tokenizer', (t) => {
  assert.equal(tok.size, 262145);
  assert.equal(tok.bosId, 2);
  assert.equal(tok.eosId, 1);
  assert.equal(tok.padId, 0);
  assert.equal(tok.unkId, 3);
  assert.equal(tok.endOfTurnId, 106);
  assert.equal(tok.configEosId, 106);
  t.diagnostic(`tokenizer load: ${loadMs.toFixed(0)} ms`);
});

test('pieces, ids and special flags', () => {
  assert.equal(tok.piece(1902), '▁world');
  assert.equal(tok.piece(248), '<0x0A>');
  assert.equal(tok.piece(106), '<end_of_turn>');
  assert.equal(tok.piece(262144), '<image_soft_token>');
  assert.equal(tok.tokenId('<image_soft_token>'), 262144);
  assert.equal(tok.tokenId('<start_of_turn>'), 105);
  assert.equal(tok.tokenId('▁world'), 1902);
  assert.equal(tok.tokenId('no such piece at all'), undefined);
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    const id = tok.tokenId(name);
    assert.ok(id === undefined || tok.piece(id) === name, name); // no prototype leaks
  }
  for (const id of [-1, 262145, 1.5, NaN]) assert.throws(() => tok.piece(id), isGemmaError('INVALID_ARGUMENT'));
  const special = [0, 1, 2, 3, 105, 106, 255999, 256000, 262144];
  for (const id of special) assert.equal(tok.isSpecial(id), true, `id ${id}`);
  for (const id of [4, 5, 6, 107, 138, 168, 255968, 9259, -1, 262145]) assert.equal(tok.isSpecial(id), false, `id ${id}`);
  assert.equal(tok.byteValue(248), 0x0a);
  assert.equal(tok.byteValue(9259), -1);
});

test('spec examples', () => {
  assert.deepEqual(tok.tokenize('Hello world'), ['Hello', '▁world']);
  assert.deepEqual(tok.encode('<start_of_turn>user\n', { addBos: false }), [105, 2364, 107]);
  assert.deepEqual(tok.encode('\n'), [2, 107]);
  assert.deepEqual(tok.encode(''), [2]);
  assert.deepEqual(tok.encode('', { addBos: false }), []);
});

test(`encode: ${cases.cases.length} fixture cases (ids, ids with BOS, pieces)`, () => {
  let ok = 0;
  for (const c of cases.cases) {
    assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, `${c.id} ids`);
    assert.deepEqual(tok.encode(c.text), c.ids_with_special, `${c.id} ids_with_special`);
    assert.deepEqual(tok.tokenize(c.text), c.tokens, `${c.id} tokens`);
    ok++;
  }
  assert.equal(ok, 196);
});

test(`decode: ${cases.cases.length} fixture cases x 4 variants`, () => {
  for (const c of cases.cases) {
    const d = c.decoded;
    assert.equal(tok.decode(c.ids_with_special), d.with_special.keep, `${c.id} with_special.keep`);
    assert.equal(tok.decode(c.ids_with_special, { skipSpecialTokens: true }), d.with_special.skip, `${c.id} with_special.skip`);
    assert.equal(tok.decode(c.ids), d.without_special.keep, `${c.id} without_special.keep`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), d.without_special.skip, `${c.id} without_special.skip`);
  }
});

test(`decode: ${cases.decode_cases.length} decode-only cases`, () => {
  assert.equal(cases.decode_cases.length, 22);
  for (const c of cases.decode_cases) {
    assert.equal(tok.decode(c.ids), c.decoded.keep, `${c.id} keep`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded.skip, `${c.id} skip`);
  }
});

test(`fuzz: ${fuzz.cases.length} random strings`, () => {
  assert.equal(fuzz.cases.length, 1000);
  for (const [id, text, ids, roundtrip] of fuzz.cases) {
    assert.deepEqual(tok.encode(text, { addBos: false }), ids, id);
    assert.equal(tok.decode(ids) === text, roundtrip, `${id} roundtrip`);
  }
});

test('encode is stable across the chunk cache (second pass, reversed order)', () => {
  for (let k = fuzz.cases.length - 1; k >= 0; k--) {
    const [id, text, ids] = fuzz.cases[k]!;
    assert.deepEqual(tok.encode(text, { addBos: false }), ids, id);
  }
});

test('lone surrogates are read as U+FFFD (as the Rust core through N-API)', () => {
  assert.deepEqual(tok.encode(' \ud800', { addBos: false }), [58588]);
  assert.deepEqual(tok.encode('\udc00x\ud83d', { addBos: false }), tok.encode('\ufffdx\ufffd', { addBos: false }));
  assert.deepEqual(tok.encode('a\ud83d\ude00b', { addBos: false }), tok.encode('a😀b', { addBos: false }));
  // Long runs (heap merge path and bigram cuts) with surrogates in odd places.
  const long = '\ud800漢字テキスト'.repeat(20) + '\udfff' + 'x'.repeat(100) + '\ud83d';
  const wellFormed = (long as unknown as { toWellFormed(): string }).toWellFormed();
  assert.notEqual(wellFormed, long);
  assert.deepEqual(tok.encode(long, { addBos: false }), tok.encode(wellFormed, { addBos: false }));
});

test('bench text: 221,604 ids with the reference sha256', () => {
  const text = readFileSync(fixturePath('tokenizer', 'bench-mixed-1mb.txt'), 'utf8');
  const ids = tok.encode(text, { addBos: false });
  assert.equal(ids.length, 221604);
  const hash = createHash('sha256').update(new Uint8Array(Uint32Array.from(ids).buffer)).digest('hex');
  assert.equal(hash, '8aab3ae954e35976e73f08200e15a94e1205dde0018caa3b78c1783785d83c70');
});

function checkStreaming(ids: readonly number[], skip: boolean, label: string): void {
  const full = tok.decode(ids, { skipSpecialTokens: skip });
  const detok = new StreamingDetokenizer(tok, { skipSpecialTokens: skip });
  let acc = '';
  const pieces: string[] = [];
  for (const id of ids) pieces.push(detok.push(id));
  pieces.push(detok.flush());
  for (const p of pieces) {
    // Never half a character: every chunk is well-formed UTF-16 ...
    assert.ok(!/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(p), `${label}: lone surrogate in a chunk`);
    // ... and a U+FFFD only where the full decode has one at that spot.
    for (let k = p.indexOf('\ufffd'); k >= 0; k = p.indexOf('\ufffd', k + 1)) {
      assert.equal(full[acc.length + k], '\ufffd', `${label}: U+FFFD at ${acc.length + k} not in the full decode`);
    }
    acc += p;
  }
  assert.equal(acc, full, label);
}

test('streaming detokenizer equals decode() on every case', () => {
  let n = 0;
  for (const c of cases.cases) {
    for (const skip of [false, true]) {
      checkStreaming(c.ids_with_special, skip, `${c.id} skip=${skip}`);
      n++;
    }
  }
  for (const c of cases.decode_cases) {
    for (const skip of [false, true]) {
      checkStreaming(c.ids, skip, `${c.id} skip=${skip}`);
      n++;
    }
  }
  for (const [id, , ids] of fuzz.cases) {
    checkStreaming(ids, false, id);
    n++;
  }
  assert.equal(n, 2 * 196 + 2 * 22 + 1000);
});

test('streaming detokenizer holds back a byte run until it is complete', () => {
  const detok = new StreamingDetokenizer(tok);
  // 😀 as <0xF0><0x9F><0x98><0x80>, then "Hello"
  assert.equal(detok.push(478), '');
  assert.equal(detok.push(397), '');
  assert.equal(detok.push(390), '');
  assert.equal(detok.push(366), '');
  assert.equal(detok.push(9259), '😀Hello');
  assert.equal(detok.flush(), '');
  // a special token skipped in the middle of a run does not end it (as decode() does)
  const s = new StreamingDetokenizer(tok, { skipSpecialTokens: true });
  const ids = [464, 2, 368, 410, 1902];
  assert.equal(ids.map((id) => s.push(id)).join('') + s.flush(), tok.decode(ids, { skipSpecialTokens: true }));
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), '€ world');
  // an unfinished run at the end comes out of flush()
  const t = new StreamingDetokenizer(tok);
  assert.equal(t.push(464) + t.push(368), '');
  assert.equal(t.flush(), '\ufffd\ufffd');
});

test('never throws on odd input', () => {
  const odd = ['\u0000', '\ud800', '\udfff\ud800', '<', '<<bos>', '<bos', '▁', '▁'.repeat(70), ' '.repeat(100), '\t'.repeat(77), '\r\n'.repeat(5), '\uFEFFabc', '\u{10FFFF}', 'a'.repeat(5000), '字'.repeat(3000)];
  for (const s of odd) {
    const ids = tok.encode(s);
    assert.equal(ids[0], 2);
    tok.decode(ids);
  }
  assert.deepEqual(tok.encode('<<bos>', { addBos: false }), [236820, 2]);
  assert.equal(tok.decode([238 + 0xef, 238 + 0xbb, 238 + 0xbf]), '\ufeff'); // a BOM in a byte run is kept
});

test('errors: missing file, bad JSON, wrong structure', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma-tok-'));
  try {
    await assert.rejects(loadTokenizer(dir), (e: unknown) => isGemmaError('FILE_NOT_FOUND')(e) && (e as Error).message.includes(join(dir, 'tokenizer.json')));
    await assert.rejects(loadTokenizer(join(dir, 'nope')), isGemmaError('FILE_NOT_FOUND'));
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": {');
    await assert.rejects(loadTokenizer(dir), (e: unknown) => isGemmaError('BAD_FORMAT')(e) && (e as Error).message.includes('tokenizer.json'));
    const bad = [
      {},
      { model: { type: 'Unigram', vocab: [] } },
      { model: { type: 'BPE', merges: [] } },
      { model: { type: 'BPE', vocab: { a: 0 } } },
      { model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [['a', 'b']] } }, // "ab" missing
      { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [{ content: 'x' }] },
      [],
      'null',
    ];
    for (const j of bad) assert.throws(() => tokenizerFromJson(j), isGemmaError('BAD_FORMAT'), JSON.stringify(j));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
    await assert.rejects(loadTokenizer(dir), isGemmaError('BAD_FORMAT'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tiny hand-made BPE tokenizer', () => {
  const t = tokenizerFromJson({
    added_tokens: [{ id: 0, content: '<bos>', special: true }],
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<bos>': { id: '<bos>', ids: [0], tokens: ['<bos>'] } } },
    model: {
      type: 'BPE',
      unk_token: '<unk>',
      fuse_unk: true,
      byte_fallback: false,
      vocab: { '<bos>': 0, '<unk>': 1, a: 2, b: 3, '▁': 4, ab: 5, '▁ab': 6, aa: 7 },
      merges: [['a', 'b'], ['▁', 'ab'], ['a', 'a']],
    },
  });
  assert.deepEqual(t.encode('ab ab'), [0, 5, 6]);
  assert.deepEqual(t.encode('aaa', { addBos: false }), [7, 2]);
  assert.deepEqual(t.encode('xyab', { addBos: false }), [1, 5]); // unknowns fused
  assert.equal(t.decode([0, 5, 6], { skipSpecialTokens: true }), 'ab ab');
});

test('the JSON.parse load path gives the same tokenizer as the fast byte-scanning path', () => {
  const text = readFileSync(fixturePath('tiny-text', 'tokenizer.json'), 'utf8');
  const config = readFileSync(fixturePath('tiny-text', 'tokenizer_config.json'), 'utf8');
  const slow = tokenizerFromJson(text, config);
  assert.equal(slow.size, tok.size);
  for (const id of [0, 2, 106, 107, 138, 238, 493, 1902, 236743, 255968, 262143, 262144]) assert.equal(slow.piece(id), tok.piece(id));
  for (const c of cases.cases) assert.deepEqual(slow.encode(c.text), c.ids_with_special, c.id);
  for (const [id, s, ids] of fuzz.cases.slice(0, 200)) assert.deepEqual(slow.encode(s, { addBos: false }), ids, id);
  assert.equal(slow.tokenId('▁world'), 1902);
});

test('fast load path: escapes, non-ASCII and astral pieces; falls back when escapes differ', async () => {
  const vocab: Record<string, number> = { '<unk>': 0, '<bos>': 1, a: 2, '"': 3, '\\': 4, '\n': 5, é: 6, '😀': 7, '▁': 8, 'a"': 9, '\\\n': 10, 'é😀': 11, '▁a': 12, '0': 13, '1': 14, '01': 15 };
  const merges = [['a', '"'], ['\\', '\n'], ['é', '😀'], ['▁', 'a'], ['0', '1']];
  const json = {
    version: '1.0',
    added_tokens: [{ id: 1, content: '<bos>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }],
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: false, vocab, merges },
  };
  const text = 'a"\\\né😀 a01<bos>zz';
  const expected = [9, 10, 11, 12, 15, 1, 0];
  const dir = mkdtempSync(join(tmpdir(), 'gemma-tok-'));
  try {
    const compact = JSON.stringify(json);
    const variants = [
      compact,
      JSON.stringify(json, null, 2),
      // é written as \u00e9 in the merges only: the byte scan cannot match it and the JSON.parse path takes over
      compact.replace('[["a","\\""],', '[["a","\\""],').replace('["é","😀"]', '["\\u00e9","😀"]'),
    ];
    assert.ok(variants[2]!.includes('\\u00e9'));
    for (const v of variants) {
      writeFileSync(join(dir, 'tokenizer.json'), v);
      const t = await loadTokenizer(dir);
      assert.deepEqual(t.encode(text, { addBos: false }), expected);
      assert.deepEqual(tokenizerFromJson(v).encode(text, { addBos: false }), expected);
      assert.equal(t.piece(10), '\\\n');
      assert.equal(t.tokenId('é😀'), 11);
      assert.equal(t.decode(expected), 'a"\\\né😀 a01<bos><unk>');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
