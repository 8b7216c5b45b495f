// The public library API end to end on the tiny-text checkpoint: load, chat, complete, logits,
// streaming, cancellation, stop strings, reproducible sampling, and the typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GemmaError, collect, load, type Gemma3 } from '../src/index.js';
import { fixturePath, readJson, tinyTextWith } from './helpers.js';

const manifest = readJson(fixturePath('goldens', 'tiny-text', 'manifest.json'));
const model: Gemma3 = await load(fixturePath('tiny-text'), { contextLength: 128 });

async function rejects(p: Promise<unknown> | (() => unknown), code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (err: unknown) => {
    assert.ok(err instanceof GemmaError, `expected a GemmaError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

test('complete() with token ids reproduces the reference greedy generation', async () => {
  for (const gen of manifest.generation) {
    const result = await collect(model.complete({ ids: gen.prompt_ids }, { temperature: 0, maxTokens: 24 }));
    assert.deepEqual(result.tokenIds, gen.generated_ids);
    assert.equal(result.finishReason, 'length');
    assert.equal(result.text, model.tokenizer.decode(gen.generated_ids, { skipSpecialTokens: true }));
    assert.equal(result.stats.promptTokens, gen.prompt_ids.length);
    assert.equal(result.stats.generatedTokens, 24);
  }
});

test('chat() renders the template with exactly one BOS and matches the reference chat prompt', async () => {
  const ids = model.chatIds(manifest.chat.messages);
  assert.deepEqual(ids, manifest.chat.input_ids);
  assert.equal(ids.filter((id) => id === 2).length, 1);
  const gen = manifest.generation.find((g: any) => g.name === 'gen_chat');
  if (gen) {
    assert.deepEqual(gen.prompt_ids, ids);
    const result = await collect(model.chat(manifest.chat.messages, { temperature: 0, maxTokens: 24 }));
    assert.deepEqual(result.tokenIds, gen.generated_ids);
  }
});

test('streaming yields UTF-8-safe chunks whose concatenation is the full text', async () => {
  const gen = manifest.generation[0];
  let text = '';
  let chunks = 0;
  for await (const chunk of model.complete({ ids: gen.prompt_ids }, { temperature: 0, maxTokens: 24 })) {
    text += chunk.text;
    chunks++;
    assert.ok(!/[\uD800-\uDBFF]$/.test(chunk.text), 'no chunk ends in half a surrogate pair');
  }
  assert.ok(chunks >= 24);
  assert.equal(text, model.tokenizer.decode(gen.generated_ids, { skipSpecialTokens: true }));
});

test('a follow-up turn reuses the cache and gives the same tokens as a fresh model', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story.' }];
  const first = await collect(model.chat(messages, { temperature: 0, maxTokens: 6 }));
  const followUp = [...messages, { role: 'assistant', content: first.text }, { role: 'user', content: 'Go on.' }];
  const reused = await collect(model.chat(followUp, { temperature: 0, maxTokens: 6 }));
  assert.ok(reused.stats.promptTokensComputed < reused.stats.promptTokens, 'part of the prompt came from the cache');
  const fresh = await load(fixturePath('tiny-text'), { contextLength: 128 });
  const expected = await collect(fresh.chat(followUp, { temperature: 0, maxTokens: 6 }));
  fresh.dispose();
  assert.deepEqual(reused.tokenIds, expected.tokenIds);
});

test('seeded sampling is reproducible and different seeds differ', async () => {
  const opts = { temperature: 1, topK: 0, topP: 1, maxTokens: 12 };
  const a = await collect(model.complete('Once upon a time', { ...opts, seed: 7 }));
  const b = await collect(model.complete('Once upon a time', { ...opts, seed: 7 }));
  const c = await collect(model.complete('Once upon a time', { ...opts, seed: 8 }));
  assert.deepEqual(a.tokenIds, b.tokenIds);
  assert.notDeepEqual(a.tokenIds, c.tokenIds);
  assert.ok(a.tokenIds.every((id) => id < 262144), 'only real tokens are sampled');
});

test('an AbortSignal stops the stream with finishReason abort', async () => {
  const controller = new AbortController();
  let n = 0;
  let reason;
  for await (const chunk of model.complete('Hello', { temperature: 0, maxTokens: 50, signal: controller.signal })) {
    if (++n === 3) controller.abort();
    reason = chunk.finishReason ?? reason;
  }
  assert.equal(reason, 'abort');
  assert.ok(n <= 5);
});

test('stop strings cut the reply before the stop text', async () => {
  const gen = manifest.generation[0];
  const full = model.tokenizer.decode(gen.generated_ids, { skipSpecialTokens: true });
  const stop = full.slice(10, 14);
  const result = await collect(model.complete({ ids: gen.prompt_ids }, { temperature: 0, maxTokens: 24, stop: [stop] }));
  assert.equal(result.finishReason, 'stop');
  assert.equal(result.text, full.slice(0, full.indexOf(stop)));
});

test('logits() gives per-position log-sum-exp and top-K equal to the reference', () => {
  const seq = manifest.sequences.find((s: any) => s.name === 'hello');
  const result = model.logits(seq.input_ids, 10);
  assert.deepEqual(result.inputIds, seq.input_ids);
  result.positions.forEach((p, t) => {
    assert.deepEqual(p.top.map(([id]) => id), seq.topk_ids[t]);
    assert.equal(p.top[0]![0], seq.argmax[t]);
  });
});

test('a prompt longer than the context is a CONTEXT_FULL error', async () => {
  const long = Array.from({ length: 200 }, () => 1000);
  await rejects(() => model.complete({ ids: [2, ...long] }).next(), 'CONTEXT_FULL', /200|201/);
});

test('invalid sampling options are INVALID_ARGUMENT errors naming the option', async () => {
  const cases: [object, RegExp][] = [
    [{ temperature: -1 }, /temperature/], [{ topP: 1.5 }, /topP/], [{ topK: 2.5 }, /topK/], [{ minP: 2 }, /minP/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty/], [{ maxTokens: 0 }, /maxTokens/], [{ seed: 1.5 }, /seed/],
    [{ stop: [''] }, /stop/], [{ temperature: Number.NaN }, /temperature/],
  ];
  for (const [options, pattern] of cases) await rejects(() => model.complete('hi', options as any), 'INVALID_ARGUMENT', pattern);
  await rejects(() => model.complete({ ids: [2, 999999999] }), 'INVALID_ARGUMENT', /999999999/);
});

test('load() errors: missing folder, missing files, unknown model_type, corrupt weights, bad options', async () => {
  const root = mkdtempSync(join(tmpdir(), 'gemma3-api-'));
  try {
    await rejects(load(join(root, 'nope')), 'FILE_NOT_FOUND', /nope/);
    const copy = (name: string) => {
      const dir = join(root, name);
      cpSync(fixturePath('tiny-text'), dir, { recursive: true, dereference: false, verbatimSymlinks: true });
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
        rmSync(join(dir, f));
        symlinkSync(fixturePath('tiny-text', f), join(dir, f));
      }
      return dir;
    };
    const noConfig = copy('no-config');
    rmSync(join(noConfig, 'config.json'));
    await rejects(load(noConfig), 'FILE_NOT_FOUND', /config\.json/);
    const noTokenizer = copy('no-tokenizer');
    rmSync(join(noTokenizer, 'tokenizer.json'));
    await rejects(load(noTokenizer), 'FILE_NOT_FOUND', /tokenizer\.json/);
    const noWeights = copy('no-weights');
    rmSync(join(noWeights, 'model.safetensors'));
    await rejects(load(noWeights), 'FILE_NOT_FOUND', /safetensors/);
    const llama = copy('llama');
    writeFileSync(join(llama, 'config.json'), JSON.stringify({ ...readJson(join(llama, 'config.json')), model_type: 'llama' }));
    await rejects(load(llama), 'UNSUPPORTED_MODEL', /llama/);
    const truncated = copy('truncated');
    truncateSync(join(truncated, 'model.safetensors'), 1000);
    await rejects(load(truncated), 'BAD_FORMAT', /model\.safetensors/);
    const wrongShape = copy('wrong-shape');
    writeFileSync(join(wrongShape, 'config.json'), JSON.stringify({ ...readJson(join(wrongShape, 'config.json')), intermediate_size: 96 }));
    await rejects(load(wrongShape), 'SHAPE_MISMATCH', /mlp\.(gate|up|down)_proj/);
    await rejects(load(fixturePath('tiny-text'), { contextLength: 0 }), 'INVALID_ARGUMENT', /contextLength/);
    await rejects(load(fixturePath('tiny-text'), { backend: 'gpu' as any }), 'INVALID_ARGUMENT', /backend/);
    assert.ok(readFileSync(fixturePath('tiny-text', 'config.json')).length > 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('contextLength: a number up to the model\'s limit, { atMost } clamped to it, the default 8192 or the limit if lower', async () => {
  const root = mkdtempSync(join(tmpdir(), 'gemma3-api-'));
  try {
    const short = tinyTextWith(join(root, 'short'), { max_position_embeddings: 96 });
    const contextOf = async (options: Parameters<typeof load>[1]) => {
      const m = await load(short, options);
      m.dispose();
      return m.contextLength;
    };
    assert.equal(await contextOf({ contextLength: 96 }), 96);
    assert.equal(await contextOf({ contextLength: { atMost: 4096 } }), 96);
    assert.equal(await contextOf({ contextLength: { atMost: 40 } }), 40);
    assert.equal(await contextOf({}), 96);
    assert.equal(model.contextLength, 128);
    const m = await load(fixturePath('tiny-text'), { contextLength: { atMost: 64 } });
    assert.equal(m.contextLength, 64);
    m.dispose();
    await rejects(load(short, { contextLength: 97 }), 'INVALID_ARGUMENT', /contextLength must be an integer in \[2, 96\], got 97/);
    await rejects(load(short, { contextLength: { atMost: 1 } }), 'INVALID_ARGUMENT', /contextLength/);
    await rejects(load(short, { contextLength: 'max' as never }), 'INVALID_ARGUMENT', /contextLength/);
    await rejects(load(short, { contextLength: { atMost: 1.5 } }), 'INVALID_ARGUMENT', /contextLength/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a disposed model refuses further use', async () => {
  const m = await load(fixturePath('tiny-text'), { contextLength: 32 });
  m.dispose();
  await rejects(() => m.complete('hi'), 'DISPOSED');
});
