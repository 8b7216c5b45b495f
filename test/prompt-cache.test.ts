// The server's prompt cache (src/server/prompt-cache.ts through the scheduler): a prompt that
// starts like a finished sequence computes only the rest, and every logits row it produces is
// bit for bit the row of the same prompt computed from scratch (same backend): follow-up turns,
// regenerated replies, edited last messages, shared prefixes longer than the sliding window
// (the tiny fixtures' window is 16, their rings 16 + 256 slots), images (never shared across
// different pictures), eviction, concurrency and the cache_prompt opt-out; then the HTTP side:
// usage.prompt_tokens_details.cached_tokens, /metrics and the bad-input errors. Last, the
// library's Session: reuse across complete() calls, and its file (save, load, typed errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load, type Gemma3, type GenerationChunk } from '../src/index.js';
import { Prompt } from '../src/model/prompt.js';
import type { Gemma3TextDecoder, Segment } from '../src/model/gemma3-text.js';
import { Scheduler } from '../src/server/scheduler.js';
import type { DoneData } from '../src/server/protocol.js';
import type { ChatMessage } from '../src/chat/messages.js';
import { fixturePath, REPO_ROOT, tinyTextWith } from './helpers.js';
import { rejectsWith } from './vision-helpers.js';
import { client, metric, postJson, startTestServer, testImage } from './server-helpers.js';

const CONTEXT = 1024;
const model = await load(fixturePath('tiny-text'), { contextLength: CONTEXT });
const RING = model.decoder.createCache(CONTEXT).layers.find((l) => l.ring > 0)!.ring;

/** About `words` tokens of varied text. */
function text(seed: string, words: number): string {
  const vocab = ['river', 'stone', 'light', 'quiet', 'north', 'garden', 'paper', 'window', 'silver', 'market', 'winter', 'song'];
  return Array.from({ length: words }, (_, i) => `${seed}${vocab[(i * 7 + seed.length) % vocab.length]}`).join(' ');
}

interface Run { done: DoneData; text: string; rows: Float32Array[] }

/**
 * A scheduler over a decoder that records the logits rows of every step, one sequence at a time
 * unless `parallel` says otherwise (rows then belong to the sequences in step order).
 */
function harness(m: Gemma3, cacheBytes: number, parallel = 1) {
  const rows = new Map<number, Float32Array[]>();
  const decoder = Object.create(m.decoder) as Gemma3TextDecoder;
  const ids = new Map<object, number>(); // cache → sequence id, learnt from the order of add()
  let current: number[] = [];
  decoder.step = (segments: Segment[], into: Float32Array) => {
    const out = m.decoder.step(segments, into);
    const V = m.decoder.config.vocabSize;
    let r = 0;
    for (const s of segments) {
      if (s.logits === 'none') continue;
      let id = ids.get(s.cache);
      if (id === undefined) {
        id = current.shift()!;
        ids.set(s.cache, id);
      }
      rows.get(id)!.push(out.slice(r * V, (r + 1) * V));
      r++;
    }
    return out;
  };
  const outs = new Map<number, { text: string; done?: DoneData; failed?: string; resolve: () => void }>();
  const scheduler = new Scheduler(decoder, m.tokenizer, { parallel, context: CONTEXT, cacheBytes }, {
    token: (id, t) => (outs.get(id)!.text += t),
    done: (id, done) => {
      const o = outs.get(id)!;
      o.done = done;
      o.text += done.text;
      o.resolve();
      for (const [cache, owner] of ids) if (owner === id) ids.delete(cache);
    },
    failed: (id, message) => {
      outs.get(id)!.failed = message;
      outs.get(id)!.resolve();
    },
    load: () => {},
  });
  let nextId = 1;
  /** Runs prompts together (greedy, `maxTokens` each, no stop id: replies run to their length). */
  const run = async (prompts: (Prompt | number[])[], maxTokens: number, cachePrompt = true): Promise<Run[]> => {
    const waits = prompts.map((p) => {
      const id = nextId++;
      rows.set(id, []);
      current.push(id);
      return new Promise<Run>((resolve, reject) => {
        outs.set(id, { text: '', resolve: () => {
          const o = outs.get(id)!;
          if (o.failed) reject(new Error(o.failed));
          else resolve({ done: o.done!, text: o.text, rows: rows.get(id)! });
        } });
        scheduler.add(id, p, { ...m.withDefaults({ temperature: 0, maxTokens }), stopTokenIds: [] }, null, cachePrompt);
      });
    });
    const results = await Promise.all(waits);
    current = [];
    return results;
  };
  return { scheduler, run: async (p: Prompt | number[], maxTokens: number, cachePrompt = true) => (await run([p], maxTokens, cachePrompt))[0]!, runAll: run };
}

/** The same prompt computed from scratch (no prompt cache), rows included. */
async function fromScratch(m: Gemma3, p: Prompt | number[], maxTokens: number): Promise<Run> {
  return harness(m, 0).run(p, maxTokens);
}

function assertSameRows(cached: Run, fresh: Run, what: string): void {
  assert.equal(cached.text, fresh.text, `${what}: text`);
  assert.equal(cached.rows.length, fresh.rows.length, `${what}: rows`);
  cached.rows.forEach((row, i) => {
    const a = Buffer.from(row.buffer, row.byteOffset, row.byteLength);
    const b = Buffer.from(fresh.rows[i]!.buffer, fresh.rows[i]!.byteOffset, fresh.rows[i]!.byteLength);
    assert.ok(a.equals(b), `${what}: logits row ${i} differs from the uncached computation`);
  });
}

/** The length of the common prefix of two id lists. */
function common(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });

const document = text('d', 300);
const first = [user(`${document}\nSummarise this.`)];

test('a follow-up turn reuses the whole history, and its logits equal those computed from scratch bit for bit', async () => {
  const h = harness(model, 64 << 20);
  const p1 = model.chatIds(first);
  assert.ok(p1.length > RING, `the prompt (${p1.length}) is longer than the sliding ring (${RING})`);
  const turn1 = await h.run(p1, 20);
  assert.equal(turn1.done.cachedTokens, 0);
  assertSameRows(turn1, await fromScratch(model, p1, 20), 'first turn');

  const p2 = model.chatIds([...first, assistant(turn1.text), user('And the second part?')]);
  const turn2 = await h.run(p2, 20);
  assert.ok(turn2.done.cachedTokens! >= p1.length, `reused ${turn2.done.cachedTokens} of ${p2.length}, at least the first prompt (${p1.length})`);
  assert.ok(turn2.done.cachedTokens! < p2.length);
  assertSameRows(turn2, await fromScratch(model, p2, 20), 'follow-up');
});

test('regenerating a long reply and editing the last message reuse through the ring snapshot at the prompt end', async () => {
  const h = harness(model, 64 << 20);
  const prompt = model.chatIds([...first, assistant('A short summary.'), user('Tell me more about the garden.')]);
  // A reply longer than the rollback: the rings no longer reach back to the prompt's end.
  const long = await h.run(prompt, 300);
  assert.equal(long.done.completionTokens, 300);

  const again = await h.run(prompt, 12);
  assert.equal(again.done.cachedTokens, prompt.length - 1, 'all but the last prompt token');
  assertSameRows(again, await fromScratch(model, prompt, 12), 'regenerate');

  const edited = model.chatIds([...first, assistant('A short summary.'), user('Tell me more about the market instead.')]);
  const shared = common(edited, prompt);
  const edit = await h.run(edited, 12);
  assert.equal(edit.done.cachedTokens, shared, 'everything before the edit');
  assertSameRows(edit, await fromScratch(model, edited, 12), 'edited message');

  // The long reply's cache keeps its prompt-end snapshot; a short reply's does not need one (its
  // rings still reach as far back), so only the cache is kept.
  const cacheBytes = model.decoder.createCache(CONTEXT).sizeBytes;
  const withLong = harness(model, 64 << 20);
  await withLong.run(prompt, 300);
  assert.ok(withLong.scheduler.promptCacheUse.bytes > cacheBytes, 'the cache and its ring snapshot are kept');
  const short = harness(model, 64 << 20);
  await short.run(prompt, 1); // the snapshot is taken at release, then found redundant
  assert.equal(short.scheduler.promptCacheUse.sequences, 1);
  assert.equal(short.scheduler.promptCacheUse.bytes, cacheBytes, 'no redundant snapshot');
});

test('many users sharing a long system prompt: the second one leaves a snapshot where they part, the third reuses it', async () => {
  const h = harness(model, 64 << 20);
  const system: ChatMessage = { role: 'system', content: text('s', 140) };
  const question = (seed: string) => model.chatIds([system, user(`${seed} ${text(seed, 140)}`)]);
  const [q1, q2, q3] = [question('Alpha'), question('Beta'), question('Gamma')];
  const shared = common(q1, q2);
  assert.ok(shared > RING && q1.length - shared > RING, 'the shared prefix and each question are longer than the rings');

  await h.run(q1, 30);
  // An opted-out request leaves its (used) cache in the pool of blank ones: the second user gets it.
  await h.run(model.chatIds([user('Something unrelated.')]), 4, false);
  const second = await h.run(q2, 8);
  assert.equal(second.done.cachedTokens, 0, 'the first cache\'s rings and its prompt-end snapshot are too far past the shared prefix');
  assertSameRows(second, await fromScratch(model, q2, 8), 'second user');
  const third = await h.run(q3, 8);
  assert.equal(third.done.cachedTokens, shared, 'the third user starts after the shared system prompt');
  assertSameRows(third, await fromScratch(model, q3, 8), 'third user');
});

test('cache_prompt false computes everything and keeps nothing; two concurrent requests on one prefix are both right', async () => {
  const h = harness(model, 64 << 20, 2);
  const p1 = model.chatIds(first);
  const turn1 = await h.run(p1, 10, false);
  const p2 = model.chatIds([...first, assistant(turn1.text), user('Why?')]);
  const optedOut = await h.run(p2, 10, false);
  assert.equal(optedOut.done.cachedTokens, 0);
  assert.equal(h.scheduler.promptCacheUse.sequences, 0, 'nothing was kept');

  await h.run(p1, 10); // cached for the next two
  const pa = model.chatIds([...first, assistant(turn1.text), user('Why?')]);
  const pb = model.chatIds([...first, assistant(turn1.text), user('How so?')]);
  const [a, b] = await h.runAll([pa, pb], 10);
  assert.ok(a.done.cachedTokens! > 0 || b.done.cachedTokens! > 0, 'one of them reused the first turn');
  // Rows of two sequences decoded together come back in step order per sequence.
  assertSameRows(a, await fromScratch(model, pa, 10), 'concurrent A');
  assertSameRows(b, await fromScratch(model, pb, 10), 'concurrent B');
});

test('a budget of one cache evicts the least recently used, and answers stay right', async () => {
  const oneCache = model.decoder.createCache(CONTEXT).sizeBytes;
  const h = harness(model, oneCache);
  const pa = model.chatIds([user(`${text('a', 60)} first`)]);
  const pb = model.chatIds([user(`${text('b', 60)} second`)]);
  const ra = await h.run(pa, 6);
  const rb = await h.run(pb, 6);
  assert.equal(h.scheduler.promptCacheUse.sequences, 1);
  const followA = model.chatIds([user(`${text('a', 60)} first`), assistant(ra.text), user('more')]);
  const followB = model.chatIds([user(`${text('b', 60)} second`), assistant(rb.text), user('more')]);
  const fa = await h.run(followA, 6);
  assert.equal(fa.done.cachedTokens, common(followA, pb), 'A was evicted when B finished: only the template\'s opening is shared with B');
  assertSameRows(fa, await fromScratch(model, followA, 6), 'after eviction');
  // A's follow-up took B's place, so B's follow-up finds only the opening too.
  assert.equal(h.scheduler.promptCacheUse.sequences, 1);
  const fb = await h.run(followB, 6);
  assert.equal(fb.done.cachedTokens, common(followB, followA));
  assertSameRows(fb, await fromScratch(model, followB, 6), 'B after eviction');

  const none = harness(model, 1);
  await none.run(pa, 4);
  assert.equal(none.scheduler.promptCacheUse.sequences, 0, 'a cache larger than the budget is not kept');
});

test('images: the same picture is reused past its block, a different picture with the same placeholders never is', async () => {
  const vlm = await load(fixturePath('tiny-vlm'), { contextLength: CONTEXT });
  try {
    const ask = (image: string, question: string): ChatMessage[] =>
      [{ role: 'user', content: [{ type: 'text', text: `${text('v', 20)} ${question}` }, { type: 'image', image: testImage(image).path }] } as ChatMessage];
    const prompt = async (messages: ChatMessage[]) => vlm.encodeImages(await vlm.prepareChat(messages));
    const square = await prompt(ask('square.png', 'What is it?'));
    const wide = await prompt(ask('wide.png', 'What is it?'));
    assert.deepEqual(square.ids, wide.ids, 'the same placeholder tokens');
    const imageStart = square.firstImagePosition;
    const h = harness(vlm, 64 << 20);
    const r1 = await h.run(square, 6);
    assertSameRows(r1, await fromScratch(vlm, square, 6), 'first image');
    const r2 = await h.run(wide, 6);
    assert.equal(r2.done.cachedTokens, imageStart, 'reused up to the image, not into it');
    assertSameRows(r2, await fromScratch(vlm, wide, 6), 'other picture');
    const again = await prompt(ask('square.png', 'What is it?'));
    const r3 = await h.run(again, 6);
    assert.equal(r3.done.cachedTokens, again.length - 1, 'the same picture (decoded again) is reused whole');
    assertSameRows(r3, await fromScratch(vlm, again, 6), 'same picture again');
  } finally {
    vlm.dispose();
  }
});

test('HTTP: usage.prompt_tokens_details.cached_tokens and /metrics count reused and computed prompt tokens; cache_prompt is checked', async () => {
  const server = await startTestServer({ context: 512, parallel: 1 });
  try {
    const openai = client(server);
    const messages = [{ role: 'user' as const, content: text('h', 80) }];
    const one = await openai.chat.completions.create({ model: 'tiny-text', messages, max_tokens: 5, temperature: 0 });
    assert.equal(one.usage!.prompt_tokens_details!.cached_tokens, 0);
    const follow = [...messages, { role: 'assistant' as const, content: one.choices[0]!.message.content! }, { role: 'user' as const, content: 'go on' }];
    const two = await openai.chat.completions.create({ model: 'tiny-text', messages: follow, max_tokens: 5, temperature: 0 });
    const cached = two.usage!.prompt_tokens_details!.cached_tokens!;
    assert.ok(cached >= one.usage!.prompt_tokens && cached < two.usage!.prompt_tokens, `cached ${cached}`);
    const off = await postJson(server, '/v1/chat/completions', { model: 'tiny-text', messages: follow, max_tokens: 5, temperature: 0, cache_prompt: false });
    const offBody = await off.json() as any;
    assert.equal(offBody.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(offBody.choices[0].message.content, two.choices[0]!.message.content, 'the same reply computed from scratch');

    const ollama = await postJson(server, '/api/chat', { model: 'tiny-text', messages: follow, stream: false, options: { temperature: 0, num_predict: 5 } });
    const ollamaBody = await ollama.json() as any;
    assert.equal(ollamaBody.prompt_eval_count, two.usage!.prompt_tokens, 'Ollama counts the whole prompt, cached or not');

    const m = await (await fetch(server.url + '/metrics')).text();
    const total = one.usage!.prompt_tokens + 2 * two.usage!.prompt_tokens + ollamaBody.prompt_eval_count;
    const cachedTotal = metric(m, 'gemma3_prompt_tokens_cached_total');
    assert.ok(cachedTotal >= 2 * cached, `cached total ${cachedTotal}`);
    assert.equal(cachedTotal + metric(m, 'gemma3_prompt_tokens_computed_total'), total);
    assert.ok(metric(m, 'gemma3_prompt_cache_sequences') >= 1);
    const oneCache = model.decoder.createCache(512).sizeBytes;
    const held = metric(m, 'gemma3_prompt_cache_bytes');
    assert.equal(held % oneCache, 0, `${held} bytes: whole caches (no snapshots for prompts under 256 tokens)`);
    assert.equal(held / oneCache, metric(m, 'gemma3_prompt_cache_sequences'));

    const bad = await postJson(server, '/v1/chat/completions', { model: 'tiny-text', messages, cache_prompt: 'no' });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(await bad.json()), /cache_prompt/);
    const badOllama = await postJson(server, '/api/chat', { model: 'tiny-text', messages, options: { cache_prompt: 1 } });
    assert.equal(badOllama.status, 400);
    assert.match(JSON.stringify(await badOllama.json()), /options\.cache_prompt/);
  } finally {
    await server.close();
  }
});

test('--cache-ram negative or not a number is a clear error naming the option', () => {
  const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  for (const value of ['-5', 'lots']) {
    const r = spawnSync(process.execPath, [cli, 'serve', '--demo', `--cache-ram=${value}`, '--port', '0'], { encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--cache-ram/, r.stderr);
  }
});

// The library's Session: a cache handle for arbitrary prompts, saved to and loaded from a file.

/** Greedy tokens with their log-probabilities (top 5), and how much of the prompt was computed. */
async function greedyRun(stream: AsyncIterable<GenerationChunk>) {
  const tokens: number[] = [];
  const logprobs: unknown[] = [];
  let computed = -1;
  for await (const c of stream) {
    tokens.push(...c.tokenIds);
    logprobs.push(...(c.logprobs ?? []));
    if (c.stats) computed = c.stats.promptTokensComputed;
  }
  return { tokens, logprobs, computed };
}

const GREEDY = { temperature: 0, maxTokens: 6, logprobs: 5 };
const docIds = model.tokenizer.encode(text('doc', 150), { addBos: true });
const question = (q: string) => ({ ids: [...docIds, ...model.tokenizer.encode(q, { addBos: false })] });

test('Session: a kept document is reused by the next prompts, with the tokens and log-probabilities of a fresh computation', async () => {
  const session = model.createSession();
  await greedyRun(session.complete({ ids: docIds }, GREEDY));
  assert.ok(session.ids.length > docIds.length, 'the session holds the document and the reply');
  const prompt = question(' What is the first word?');
  const reused = await greedyRun(session.complete(prompt, GREEDY));
  assert.equal(reused.computed, prompt.ids.length - docIds.length, 'only the question was computed');
  const fresh = await greedyRun(model.createSession().complete(prompt, GREEDY));
  assert.equal(fresh.computed, prompt.ids.length);
  assert.deepEqual(reused.tokens, fresh.tokens);
  assert.deepEqual(reused.logprobs, fresh.logprobs);
});

test('Session: saved to a file and loaded back, it continues exactly; bad files are typed errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-session-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const session = model.createSession();
  await greedyRun(session.complete({ ids: docIds }, { ...GREEDY, maxTokens: 1 }));
  const file = join(dir, 'doc.kv');
  await session.save(file);
  const loaded = await model.loadSession(file);
  assert.deepEqual(loaded.ids, session.ids);
  const prompt = question(' Name the last word.');
  const resumed = await greedyRun(loaded.complete(prompt, GREEDY));
  assert.equal(resumed.computed, prompt.ids.length - docIds.length);
  const fresh = await greedyRun(model.createSession().complete(prompt, GREEDY));
  assert.deepEqual(resumed.tokens, fresh.tokens);
  assert.deepEqual(resumed.logprobs, fresh.logprobs);

  const bytes = readFileSync(file);
  const variant = (name: string, data: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, data);
    return p;
  };
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 100]! ^= 0x40;
  await rejectsWith(model.loadSession(variant('flipped.kv', flipped)), 'BAD_FORMAT', /corrupt/);
  await rejectsWith(model.loadSession(variant('short.kv', bytes.subarray(0, bytes.length - 1000))), 'BAD_FORMAT', /truncated/);
  await rejectsWith(model.loadSession(variant('header.kv', bytes.subarray(0, 20))), 'BAD_FORMAT', /truncated/);
  await rejectsWith(model.loadSession(variant('other.kv', Buffer.from('not a session at all'))), 'BAD_FORMAT', /magic/);
  await rejectsWith(model.loadSession(join(dir, 'missing.kv')), 'FILE_NOT_FOUND');

  const quantized = await load(fixturePath('tiny-text'), { contextLength: CONTEXT, quant: 'q8_0' });
  await rejectsWith(quantized.loadSession(file), 'INVALID_ARGUMENT', /another model/);
  quantized.dispose();
  const smaller = await load(fixturePath('tiny-text'), { contextLength: 512 });
  await rejectsWith(smaller.loadSession(file), 'INVALID_ARGUMENT', /another layout/);
  smaller.dispose();
  const other = await load(tinyTextWith(join(dir, 'other-model'), { rms_norm_eps: 1e-5 }), { contextLength: CONTEXT });
  await rejectsWith(other.loadSession(file), 'INVALID_ARGUMENT', /another model/);
  other.dispose();
  // f16 and bf16 caches have the same array type and size: only the KV type tells them apart.
  const f16 = await load(fixturePath('tiny-text'), { contextLength: CONTEXT, kvType: 'f16' });
  const halfSession = f16.createSession();
  await greedyRun(halfSession.complete({ ids: docIds }, { ...GREEDY, maxTokens: 1 }));
  const halfFile = join(dir, 'doc-f16.kv');
  await halfSession.save(halfFile);
  f16.dispose();
  const bf16 = await load(fixturePath('tiny-text'), { contextLength: CONTEXT, kvType: 'bf16' });
  await rejectsWith(bf16.loadSession(halfFile), 'INVALID_ARGUMENT', /another layout.*f16/);
  bf16.dispose();
});
