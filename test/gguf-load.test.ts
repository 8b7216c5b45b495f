// load() on llama.cpp GGUF files: the tokenizer rebuilt from the GGUF vocabulary (identical to
// tokenizer.json's on every fixture), the text model and the mmproj vision file against the same
// checkpoint loaded from safetensors, quantisation on load (`quant`), `gemma3 convert` and the
// GGUF flags of the CLI, and the errors for corrupt or unsupported files.
//
// The checkpoint is tiny-vlm (whose tokenizer is tiny-text's real Gemma 3 tokenizer) with
// query_pre_attn_scalar = head_dim: llama.cpp's GGUF has no key for it and uses 1/sqrt(head_dim),
// so only with that value do the safetensors and GGUF loads run the same model.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import { GemmaError, type GemmaErrorCode } from '../src/errors.js';
import { openGguf, type GgufValue } from '../src/formats/gguf.js';
import { writeGguf } from '../src/formats/gguf-writer.js';
import { NativeBackend, loadNativeBinding } from '../src/backend/native-backend.js';
import { collect, load, type ChatMessage, type Gemma3, type LogitsResult } from '../src/index.js';
import { ggufTokenizerParts, tokenizerFromGguf } from '../src/tokenizer/gguf-vocab.js';
import { loadTokenizer, type Tokenizer } from '../src/tokenizer/tokenizer.js';
import { REPO_ROOT, fixturePath, readJson } from './helpers.js';
import { tempDir } from './st-writer.js';

const VLM = fixturePath('tiny-vlm');
const tmp = tempDir('gguf-load');
after(() => tmp.cleanup());

/** tiny-vlm with query_pre_attn_scalar = head_dim (weights and tokenizer symlinked). */
const CKPT = join(tmp.dir, 'ckpt');
mkdirSync(CKPT);
const hfConfig = readJson(join(VLM, 'config.json'));
hfConfig.text_config.query_pre_attn_scalar = hfConfig.text_config.head_dim;
writeFileSync(join(CKPT, 'config.json'), JSON.stringify(hfConfig, null, 2));
for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'generation_config.json',
  'preprocessor_config.json', 'processor_config.json']) symlinkSync(join(VLM, f), join(CKPT, f));

/** bf16 GGUF + its mmproj, alone in their folder (so the mmproj is found automatically). */
const BF16_DIR = join(tmp.dir, 'bf16');
mkdirSync(BF16_DIR);
const BF16 = join(BF16_DIR, 'tiny.gguf');
const MMPROJ = join(BF16_DIR, 'mmproj-tiny.gguf');
convertCheckpoint(CKPT, BF16, { type: 'bf16', mmprojOut: MMPROJ });

const OPTS = { contextLength: 128, threads: 1 };
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

async function rejects(p: Promise<unknown>, code: GemmaErrorCode, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GemmaError, `expected a GemmaError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** Same top ids everywhere and top logits within `tol` (log-sum-exp differs: the HF embedding has 64 more rows). */
function assertSameLogits(a: LogitsResult, b: LogitsResult, tol: number): number {
  assert.deepEqual(a.inputIds, b.inputIds);
  let worst = 0;
  a.positions.forEach((p, t) => {
    const q = b.positions[t]!;
    assert.deepEqual(p.top.map(([id]) => id), q.top.map(([id]) => id), `top ids at position ${t}`);
    p.top.forEach(([, v], j) => (worst = Math.max(worst, Math.abs(v - q.top[j]![1]))));
  });
  assert.ok(worst <= tol, `logits differ by ${worst}`);
  return worst;
}

describe('tokenizer from GGUF metadata', async () => {
  interface EncodeCase { id: string; text: string; ids: number[]; tokens: string[]; ids_with_special: number[];
    decoded: { with_special: { keep: string; skip: string }; without_special: { keep: string; skip: string } } }
  const cases = readJson<{ cases: EncodeCase[]; decode_cases: { id: string; ids: number[]; decoded: { keep: string; skip: string } }[] }>(
    fixturePath('tokenizer', 'gemma3-tokenizer-cases.json'));
  const fuzz = readJson<{ cases: [string, string, number[], boolean][] }>(fixturePath('tokenizer', 'gemma3-tokenizer-fuzz.json'));
  const g = openGguf(BF16);
  const metadata = g.metadata;
  g.close();
  let started = performance.now();
  const json: Tokenizer = await loadTokenizer(VLM);
  const jsonMs = performance.now() - started;
  started = performance.now();
  const tok = tokenizerFromGguf(metadata, BF16);
  const ggufMs = performance.now() - started;

  test('same vocabulary, special ids and flags as tokenizer.json', (t) => {
    t.diagnostic(`load: tokenizer.json ${jsonMs.toFixed(0)} ms, GGUF metadata ${ggufMs.toFixed(0)} ms (after the header is read)`);
    for (const k of ['size', 'bosId', 'eosId', 'padId', 'unkId', 'endOfTurnId', 'configEosId'] as const) assert.equal(tok[k], json[k], k);
    assert.equal(tok.size, 262145);
    for (let id = 0; id < tok.size; id++) {
      if (tok.piece(id) !== json.piece(id) || tok.isSpecial(id) !== json.isSpecial(id)) {
        assert.fail(`id ${id}: ${JSON.stringify([tok.piece(id), tok.isSpecial(id)])} vs ${JSON.stringify([json.piece(id), json.isSpecial(id)])}`);
      }
    }
    assert.equal(tok.tokenId('<image_soft_token>'), 262144);
    assert.equal(tok.piece(138), '▁▁'); // stored as two spaces (pre-normalised by the converter)
  });

  test('the merges rebuilt from the scores are tokenizer.json\'s, in order', () => {
    const merges: ([string, string] | string)[] = JSON.parse(readFileSync(join(VLM, 'tokenizer.json'), 'utf8')).model.merges;
    const { tables } = ggufTokenizerParts(metadata);
    assert.equal(tables.left.length, merges.length);
    for (let k = 0; k < merges.length; k++) {
      const m = merges[k]!;
      const [a, b] = typeof m === 'string' ? m.split(' ') : m;
      if (tables.pieces[tables.left[k]!] !== a || tables.pieces[tables.right[k]!] !== b) {
        assert.fail(`merge ${k}: ${JSON.stringify([a, b])} vs ${JSON.stringify([tables.pieces[tables.left[k]!], tables.pieces[tables.right[k]!]])}`);
      }
    }
  });

  test(`encode and decode: ${cases.cases.length} fixture cases, ${cases.decode_cases.length} decode cases, ${fuzz.cases.length} fuzz strings`, () => {
    for (const c of cases.cases) {
      assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, `${c.id} ids`);
      assert.deepEqual(tok.encode(c.text), c.ids_with_special, `${c.id} ids_with_special`);
      assert.deepEqual(tok.tokenize(c.text), c.tokens, `${c.id} tokens`);
      const d = c.decoded;
      assert.equal(tok.decode(c.ids_with_special), d.with_special.keep, `${c.id} with_special.keep`);
      assert.equal(tok.decode(c.ids_with_special, { skipSpecialTokens: true }), d.with_special.skip, `${c.id} with_special.skip`);
      assert.equal(tok.decode(c.ids), d.without_special.keep, `${c.id} without_special.keep`);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), d.without_special.skip, `${c.id} without_special.skip`);
    }
    for (const c of cases.decode_cases) {
      assert.equal(tok.decode(c.ids), c.decoded.keep, `${c.id} keep`);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded.skip, `${c.id} skip`);
    }
    for (const [id, text, ids] of fuzz.cases) {
      const got = tok.encode(text, { addBos: false });
      assert.deepEqual(got, ids, id);
      assert.equal(tok.decode(got), json.decode(ids), `${id} decode`);
    }
  });

  test('Gemma\'s chat tokens stay special when a file marks them NORMAL; bad vocabularies are clear errors', () => {
    const types = [...(metadata.get('tokenizer.ggml.token_type') as number[])];
    types[105] = 1;
    types[106] = 1;
    const broken = tokenizerFromGguf(new Map([...metadata, ['tokenizer.ggml.token_type', types]]), 'broken.gguf');
    assert.deepEqual(broken.encode('<start_of_turn>user\nHi<end_of_turn>', { addBos: false }), [105, 2364, 107, 10979, 106]);
    assert.ok(broken.isSpecial(105) && broken.isSpecial(106));
    const without = (key: string) => new Map([...metadata].filter(([k]) => k !== key));
    const throwsCode = (m: ReadonlyMap<string, GgufValue>, code: GemmaErrorCode, re: RegExp) =>
      assert.throws(() => tokenizerFromGguf(m, 'x.gguf'), (e: unknown) => e instanceof GemmaError && e.code === code && re.test(e.message));
    throwsCode(new Map([...metadata, ['tokenizer.ggml.model', 'gpt2']]), 'UNSUPPORTED_MODEL', /x\.gguf.*gpt2/);
    throwsCode(without('tokenizer.ggml.model'), 'BAD_FORMAT', /tokenizer\.ggml\.model/);
    throwsCode(without('tokenizer.ggml.scores'), 'BAD_FORMAT', /tokenizer\.ggml\.scores/);
    throwsCode(new Map([...metadata, ['tokenizer.ggml.token_type', [1, 2, 3]]]), 'BAD_FORMAT', /token_type/);
    throwsCode(new Map([...metadata, ['tokenizer.ggml.add_space_prefix', true]]), 'UNSUPPORTED_MODEL', /add_space_prefix/);
  });

  test('loadTokenizer() takes a .gguf file', async () => {
    const fromFile = await loadTokenizer(BF16);
    assert.deepEqual(fromFile.encode('Hello world <start_of_turn>'), json.encode('Hello world <start_of_turn>'));
  });
});

describe('load() of a GGUF model', () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'Tell me a story.' }];
  let hf: Gemma3;
  let gg: Gemma3;

  test('text: template, tokenizer, Gemma sampling defaults, the safetensors model\'s logits', async () => {
    hf = await load(CKPT, OPTS);
    gg = await load(BF16, { ...OPTS, mmproj: false });
    assert.equal(gg.hasVision, false);
    assert.equal(gg.path, BF16);
    assert.equal(gg.config.text.vocabSize, 262144);
    assert.equal(gg.config.text.queryPreAttnScalar, 32);
    assert.deepEqual({ ...gg.defaults }, { temperature: 1, topK: 64, topP: 0.95, minP: 0, repetitionPenalty: 1, eosTokenIds: [106, 1] });
    assert.equal(gg.renderChat(messages), hf.renderChat(messages));
    assert.deepEqual(gg.chatIds(messages), hf.chatIds(messages));
    assertSameLogits(gg.logits(gg.chatIds(messages), 8), hf.logits(hf.chatIds(messages), 8), 1e-4);
    const a = await collect(gg.chat(messages, { temperature: 0, maxTokens: 8 }));
    const b = await collect(hf.chat(messages, { temperature: 0, maxTokens: 8 }));
    assert.deepEqual(a.tokenIds, b.tokenIds);
    const sampled = await collect(gg.chat(messages, { maxTokens: 4, seed: 3 })); // temperature 1, top-k 64, top-p 0.95
    assert.equal(sampled.tokenIds.length, 4);
  });

  test('vision: the mmproj next to the model is found; image prompts give the safetensors logits', async () => {
    const withVision = await load(BF16, OPTS);
    assert.equal(withVision.hasVision, true);
    assert.equal(withVision.config.mmTokensPerImage, 4);
    const image: ChatMessage[] = [{ role: 'user', content: [
      { type: 'image', image: fixturePath('goldens', 'images', 'square.png') }, { type: 'text', text: 'What is this?' }] }];
    const ours = await withVision.logitsForMessages(image, 8);
    assert.ok(ours.inputIds.includes(262144), 'the prompt holds image soft tokens (id 262144, past the GGUF embedding)');
    // mm.input_projection is F16 in the mmproj (BF16 in the checkpoint): not bit-exact.
    const err = assertSameLogits(ours, await hf.logitsForMessages(image, 8), 2e-3);
    const a = await collect(withVision.chat(image, { temperature: 0, maxTokens: 6 }));
    const b = await collect(hf.chat(image, { temperature: 0, maxTokens: 6 }));
    assert.deepEqual(a.tokenIds, b.tokenIds, `largest logit difference ${err}`);
    const explicit = await load(BF16, { ...OPTS, mmproj: MMPROJ });
    assert.deepEqual((await explicit.logitsForMessages(image, 8)).positions, ours.positions);
    for (const m of [withVision, explicit]) m.dispose();
  });

  test('mmproj discovery: none or several next to the model give a text-only model; a GGUF without .gguf loads', async () => {
    const dir = join(tmp.dir, 'two');
    mkdirSync(dir);
    symlinkSync(BF16, join(dir, 'model.gguf'));
    copyFileSync(MMPROJ, join(dir, 'mmproj-a.gguf'));
    copyFileSync(MMPROJ, join(dir, 'mmproj-b.gguf'));
    const two = await load(join(dir, 'model.gguf'), OPTS);
    assert.equal(two.hasVision, false);
    symlinkSync(BF16, join(dir, 'model.bin'));
    const noExt = await load(join(dir, 'model.bin'), { ...OPTS, mmproj: join(dir, 'mmproj-a.gguf') });
    assert.equal(noExt.hasVision, true);
    for (const m of [two, noExt]) m.dispose();
  });

  test('mmap: weights served from a mapping of the file give exactly the logits of read copies', async (t) => {
    if (loadNativeBinding() instanceof Error) return t.skip('the native addon is not built');
    const ids = gg.chatIds(messages);
    const mappedRanges = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(BF16)).length;
    const copied = await load(BF16, { ...OPTS, mmproj: false, mmap: false, backend: 'native' });
    const before = mappedRanges();
    const mapped = await load(BF16, { ...OPTS, mmproj: false, mmap: true, backend: 'native' });
    assert.ok(mappedRanges() > before, 'mmap: true maps the file');
    assert.equal(mapped.decoder.weights.layers[0]!.attnQ.dtype, 'bf16');
    const a = mapped.logits(ids, 8);
    assert.deepEqual(a.positions, copied.logits(ids, 8).positions);
    const c = await collect(mapped.chat(messages, { temperature: 0, maxTokens: 6 }));
    const d = await collect(copied.chat(messages, { temperature: 0, maxTokens: 6 }));
    assert.deepEqual(c.tokenIds, d.tokenIds);
    const auto = await load(BF16, { ...OPTS, mmproj: false, backend: 'native' }); // mapped or copied by the page cache's state
    assert.deepEqual(auto.logits(ids, 8).positions, a.positions);
    // GEMMA3_MMAP (1 / 0) is the default of `mmap`: load() reads it, for the library, CLI and server alike.
    const envMmap = process.env.GEMMA3_MMAP;
    try {
      process.env.GEMMA3_MMAP = '0';
      const ranges = mappedRanges();
      const never = await load(BF16, { ...OPTS, mmproj: false, backend: 'native' });
      assert.ok(mappedRanges() <= ranges, 'GEMMA3_MMAP=0: read, not mapped');
      process.env.GEMMA3_MMAP = '1';
      const always = await load(BF16, { ...OPTS, mmproj: false, backend: 'native' });
      assert.ok(mappedRanges() > ranges, 'GEMMA3_MMAP=1: mapped');
      assert.deepEqual(always.logits(ids, 8).positions, a.positions);
      for (const m of [never, always]) m.dispose();
    } finally {
      if (envMmap === undefined) delete process.env.GEMMA3_MMAP;
      else process.env.GEMMA3_MMAP = envMmap;
    }
    for (const m of [copied, mapped, auto]) m.dispose();
    await rejects(load(BF16, { ...OPTS, mmap: 'yes' as never }), 'INVALID_ARGUMENT', /mmap/);
  });

  test('GEMMA3_THREADS is the default of `threads` (read by load())', async (t) => {
    if (loadNativeBinding() instanceof Error) return t.skip('the native addon is not built');
    const envThreads = process.env.GEMMA3_THREADS;
    try {
      process.env.GEMMA3_THREADS = '3';
      const { threads: _, ...noThreads } = OPTS;
      const m = await load(BF16, { ...noThreads, mmproj: false, backend: 'native' });
      assert.equal((m.decoder.backend as NativeBackend).info.threads, 3);
      m.dispose();
      const given = await load(BF16, { ...OPTS, mmproj: false, backend: 'native' });
      assert.equal((given.decoder.backend as NativeBackend).info.threads, 1, 'the option wins');
      given.dispose();
    } finally {
      if (envThreads === undefined) delete process.env.GEMMA3_THREADS;
      else process.env.GEMMA3_THREADS = envThreads;
    }
  });

  test('mmap of Q8_0 / Q4_0 files: served from the mapping in the row layout, x16 copies once streams decode together, every logit bit the same', async (t) => {
    if (loadNativeBinding() instanceof Error) return t.skip('the native addon is not built');
    for (const type of ['q8_0', 'q4_0'] as const) {
      const file = join(tmp.dir, `rows-${type}.gguf`);
      convertCheckpoint(CKPT, file, { type });
      const ids = gg.chatIds(messages);
      const copied = await load(file, { ...OPTS, mmproj: false, mmap: false, backend: 'native' });
      const expected = copied.logits(ids, 8).positions;
      const mapped = await load(file, { ...OPTS, mmproj: false, mmap: true, backend: 'native' });
      const backend = mapped.decoder.backend as NativeBackend;
      // In this tiny model only the tied embedding, the output head (262144 rows), is large enough
      // to be a view (smaller tensors are read and repacked): Q8_0 in both files, as convert keeps
      // the embedding at Q8_0 like llama.cpp (the Q4_0 kernels are compared in native-kernels).
      const head = mapped.decoder.weights.tokenEmbd;
      assert.equal(head.dtype, 'q8_0');
      if (backend.servesQuantizedViews) {
        assert.equal(copied.decoder.weights.layers[0]!.attnQ.layout, 'x16', 'a file read into memory is repacked');
        assert.equal(head.layout, 'rows', 'a view of the mapping stays in the row layout');
      }
      assert.deepEqual(mapped.logits(ids, 8).positions, expected, `${type}: mapped vs repacked`);
      const a = await collect(mapped.chat(messages, { temperature: 0, maxTokens: 6 }));
      const b = await collect(copied.chat(messages, { temperature: 0, maxTokens: 6 }));
      assert.deepEqual(a.tokenIds, b.tokenIds);
      assert.equal(backend.copiesInProgress(), 0, 'one stream makes no copies');
      // Two streams decoding together start the background copies; they replace the views.
      const caches = [mapped.decoder.createCache(16), mapped.decoder.createCache(16)];
      mapped.decoder.decodeBatch([2, 2], caches);
      for (let i = 0; i < 400 && backend.copiesInProgress() > 0; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(backend.copiesInProgress(), 0, `${type}: the background copies finish`);
      if (backend.servesQuantizedViews) assert.equal(head.layout, 'x16', 'the copy replaced the mapped view');
      assert.deepEqual(mapped.logits(ids, 8).positions, expected, `${type}: after the copies`);
      // A model dropped while its copies are still queued is cleaned up without waiting for them.
      const dropped = await load(file, { ...OPTS, mmproj: false, mmap: true, backend: 'native' });
      dropped.decoder.backend.prepareForStreams?.(2);
      dropped.dispose();
      for (const m of [copied, mapped]) m.dispose();
    }
  });

  test('quant on load: the types convert writes, and the converted GGUF\'s logits', async () => {
    const q4 = join(tmp.dir, 'tiny-q4_0.gguf');
    convertCheckpoint(CKPT, q4, { type: 'q4_0' });
    const fromGguf = await load(q4, { ...OPTS, mmproj: false });
    const quantised = await load(CKPT, { ...OPTS, quant: 'q4_0' });
    const w = quantised.decoder.weights;
    assert.equal(w.tokenEmbd.dtype, 'q8_0'); // tied head: Q8_0 (convert: Q6_K, or Q8_0 for rows that are not 256-blocks, as here)
    assert.equal(w.layers[0]!.attnQ.dtype, 'q4_0');
    assert.equal(w.layers[7]!.ffnDown.dtype, 'q4_0');
    assert.ok(w.layers[0]!.attnNorm instanceof Float32Array);
    assert.equal(fromGguf.decoder.weights.layers[0]!.attnQ.dtype, 'q4_0');
    const ids = quantised.chatIds(messages);
    assertSameLogits(quantised.logits(ids, 8), fromGguf.logits(ids, 8), 1e-4);
    const q8 = await load(CKPT, { ...OPTS, quant: 'q8_0' });
    assert.equal(q8.decoder.weights.layers[3]!.ffnGate.dtype, 'q8_0');
    const image: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: fixturePath('goldens', 'images', 'wide.png') }, { type: 'text', text: 'Hi' }] }];
    const a = await q8.logitsForMessages(image, 4);
    const b = await hf.logitsForMessages(image, 4);
    assert.equal(a.positions.length, b.positions.length); // the quantised vision tower runs
    await rejects(load(CKPT, { quant: 'q5_0' as 'q8_0' }), 'INVALID_ARGUMENT', /quant/);
    for (const m of [fromGguf, quantised, q8]) m.dispose();
  });

  test('quant q5_k_m on load: llama-quantize\'s fallbacks for 64-wide rows (Q5_1, Q8_0 for Q6_K), and the converted GGUF\'s logits', async () => {
    const file = join(tmp.dir, 'tiny-q5_k_m.gguf');
    convertCheckpoint(CKPT, file, { type: 'q5_k_m' });
    const fromGguf = await load(file, { ...OPTS, mmproj: false });
    const quantised = await load(CKPT, { ...OPTS, quant: 'q5_k_m' });
    const w = quantised.decoder.weights;
    assert.equal(w.tokenEmbd.dtype, 'q8_0'); // tied head: Q6_K → Q8_0
    assert.equal(w.layers[1]!.attnQ.dtype, 'q5_1');
    assert.equal(w.layers[1]!.ffnDown.dtype, 'q5_1');
    assert.equal(w.layers[0]!.attnV.dtype, 'q8_0'); // use_more_bits(0, 8): Q6_K → Q8_0
    assert.equal(fromGguf.decoder.weights.layers[1]!.attnQ.dtype, 'q5_1');
    const ids = quantised.chatIds(messages);
    assertSameLogits(quantised.logits(ids, 8), fromGguf.logits(ids, 8), 1e-4);
    for (const m of [fromGguf, quantised]) m.dispose();
  });

  test('corrupt and unsupported files are clear GemmaErrors', async () => {
    const bad = (name: string, bytes: Uint8Array | string) => tmp.write(name, bytes);
    await rejects(load(bad('junk.gguf', 'definitely not a gguf file')), 'BAD_FORMAT', /junk\.gguf.*not a GGUF file/);
    const truncated = join(tmp.dir, 'truncated.gguf');
    copyFileSync(BF16, truncated);
    truncateSync(truncated, 4000);
    await rejects(load(truncated), 'BAD_FORMAT', /truncated\.gguf: .*(truncated|bytes left in the file)/);
    const cut = join(tmp.dir, 'cut.gguf');
    copyFileSync(BF16, cut);
    truncateSync(cut, Math.floor(readFileSync(BF16).length * 0.9));
    await rejects(load(cut), 'BAD_FORMAT', /out of bounds/);
    const llama = join(tmp.dir, 'llama.gguf');
    writeGguf(llama, { metadata: [['general.architecture', 'string', 'llama'], ['llama.block_count', 'u32', 2]], tensors: [] });
    await rejects(load(llama), 'UNSUPPORTED_MODEL', /llama\.gguf.*"llama".*gemma3/);
    const g = openGguf(BF16);
    const noVocab = join(tmp.dir, 'no-vocab.gguf');
    writeGguf(noVocab, {
      metadata: [...g.metadata].filter(([k]) => !k.startsWith('tokenizer.')).map(([k, v]) => [k, g.metadataTypes.get(k)!, v] as const),
      tensors: g.names().map((n) => ({ name: n, dtype: g.info(n).dtype, shape: g.info(n).shape, data: () => g.read(n).data })),
    });
    g.close();
    await rejects(load(noVocab, { mmproj: false }), 'BAD_FORMAT', /no-vocab\.gguf.*tokenizer/);
    await rejects(load(MMPROJ), 'UNSUPPORTED_MODEL', /mmproj/);
    await rejects(load(BF16, { mmproj: join(tmp.dir, 'nope.gguf') }), 'FILE_NOT_FOUND', /nope\.gguf/);
    await rejects(load(BF16, { mmproj: noVocab }), 'UNSUPPORTED_MODEL', /not a Gemma 3 mmproj/);
    await rejects(load(BF16, { mmproj: 42 as unknown as string }), 'INVALID_ARGUMENT', /mmproj/);
    await rejects(load(CKPT, { mmproj: MMPROJ }), 'INVALID_ARGUMENT', /mmproj applies to GGUF/);
    await rejects(load(join(tmp.dir, 'missing.gguf')), 'FILE_NOT_FOUND', /GGUF file .*missing\.gguf/);
    await rejects(load(bad('notes.txt', 'hello')), 'UNSUPPORTED_MODEL', /neither a checkpoint folder .* nor a GGUF file/);
  });

  after(() => {
    hf?.dispose();
    gg?.dispose();
  });
});

describe('CLI: gemma3 convert, --model FILE.gguf, --mmproj, --quant', () => {
  const out = join(tmp.dir, 'cli');
  mkdirSync(out);

  test('convert writes the GGUF and the default mmproj next to it, with progress on stderr; run and tokenize use them', () => {
    const r = cli('convert', CKPT, '--out', join(out, 'vlm-q8.gguf'), '--type', 'q8_0');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /writing .*vlm-q8\.gguf \(106 tensors\)/);
    assert.match(r.stderr, /wrote .*vlm-q8\.gguf .* and .*mmproj-vlm-q8\.gguf/);
    const g = openGguf(join(out, 'mmproj-vlm-q8.gguf'));
    assert.equal(g.metadata.get('clip.projector_type'), 'gemma3');
    g.close();
    const run = cli('run', '--model', join(out, 'vlm-q8.gguf'), '--ids', '2,105,2364,107', '--max-tokens', '3', '--temperature', '0', '--json', '--threads', '1');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).generated_ids.length, 3);
    // Served from the mapping, exiting while background copies may still be under way.
    const early = cli('run', '--model', join(out, 'vlm-q8.gguf'), '--mmap', 'on', '--ids', '2,105,2364,107', '--max-tokens', '3', '--temperature', '0', '--json', '--threads', '1');
    assert.equal(early.status, 0, early.stderr);
    assert.deepEqual(JSON.parse(early.stdout).generated_ids, JSON.parse(run.stdout).generated_ids);
    const args = ['--ids', '2,105,2364,107', '--max-tokens', '4', '--temperature', '0', '--json', '--threads', '1', '--mmproj', MMPROJ];
    const mapped = cli('run', '--model', BF16, '--mmap', 'on', ...args);
    const copied = cli('run', '--model', BF16, '--mmap', 'off', ...args);
    assert.equal(mapped.status, 0, mapped.stderr);
    assert.deepEqual(JSON.parse(mapped.stdout).generated_ids, JSON.parse(copied.stdout).generated_ids);
    const image = cli('run', '--model', join(out, 'vlm-q8.gguf'), '--mmproj', join(out, 'mmproj-vlm-q8.gguf'), '--image',
      fixturePath('goldens', 'images', 'square.png'), '--max-tokens', '2', '--temperature', '0', '--json', '--threads', '1', 'What is it?');
    assert.equal(image.status, 0, image.stderr);
    const tok = cli('tokenize', '--model', join(out, 'vlm-q8.gguf'), '--json', 'Hello world');
    assert.equal(tok.status, 0, tok.stderr);
    assert.deepEqual(JSON.parse(tok.stdout).ids, [2, 9259, 1902]);
    const quant = cli('run', '--model', CKPT, '--quant', 'q4_0', '--ids', '2,105', '--max-tokens', '2', '--temperature', '0', '--json', '--threads', '1');
    assert.equal(quant.status, 0, quant.stderr);
  });

  test('clear errors', () => {
    const cases: [string[], RegExp][] = [
      [['convert', CKPT], /needs --out/],
      [['convert', CKPT, '--out', join(out, 'x.gguf'), '--type', 'q5_1'], /--type must be one of bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, f16, f32/],
      [['convert', join(tmp.dir, 'nope'), '--out', join(out, 'x.gguf')], /checkpoint folder .*nope does not exist/],
      [['convert', CKPT, '--out', join(tmp.dir, 'no-such-dir', 'x.gguf')], /output folder .*no-such-dir does not exist/],
      [['convert', fixturePath('tiny-text'), '--out', join(out, 'x.gguf'), '--mmproj-out', join(out, 'm.gguf')], /text-only checkpoint/],
      [['convert', CKPT, 'extra', '--out', join(out, 'x.gguf')], /one checkpoint folder/],
      [['run', '--model', BF16, '--quant', 'q2', 'hi'], /--quant must be q8_0, q4_0, q4_k_m, q5_k_m or q6_k/],
      [['run', '--model', BF16, '--mmap', 'yes', 'hi'], /--mmap must be auto, on or off/],
      [['run', '--model', MMPROJ, 'hi'], /vision projector \(mmproj\) file/],
    ];
    for (const [args, pattern] of cases) {
      const r = cli(...args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.doesNotMatch(r.stderr, /unexpected error|at .*\.js:\d+/, args.join(' '));
    }
    const help = cli('convert', '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--mmproj-out/);
  });
});
