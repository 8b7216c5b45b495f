// The continuous-batching scheduler in-process (no HTTP, no worker): batched decoding gives the
// same tokens as the library's one-at-a-time loop, sequences join and leave between steps,
// cancellation frees the cache, chunked prefill and the context limit behave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, load, type GenerationResult } from '../src/index.js';
import { Scheduler } from '../src/server/scheduler.js';
import { prefillTokensAt } from '../src/server/prefill-cost.js';
import type { DoneData } from '../src/server/protocol.js';
import { fixturePath } from './helpers.js';

const model = await load(fixturePath('tiny-text'), { contextLength: 128 });
const prompts = ['Hello!', 'Why is the sky blue?', 'Count to ten please.', 'One two'];

interface Outcome { text: string; tokens: number; done?: DoneData; failed?: string }

/** A scheduler whose events are collected per id, and a spy on the decoder's batch sizes. */
function harness(options: { parallel: number; context?: number; prefillBudget?: number }) {
  const out = new Map<number, Outcome>();
  const batches: number[] = [];
  const loads: [number, number][] = [];
  const get = (id: number) => out.get(id) ?? (out.set(id, { text: '', tokens: 0 }), out.get(id)!);
  const scheduler = new Scheduler(model.decoder, model.tokenizer, { context: 128, ...options }, {
    token: (id, text) => {
      get(id).text += text;
      get(id).tokens++;
    },
    done: (id, done) => {
      get(id).done = done;
      get(id).text += done.text;
    },
    failed: (id, message) => (get(id).failed = message),
    load: (a, w) => loads.push([a, w]),
    step: (batch) => batches.push(batch),
  });
  const finished = (ids: number[]) => new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 60_000;
    const check = () => {
      if (ids.every((id) => out.get(id)?.done || out.get(id)?.failed)) resolve();
      else if (Date.now() > deadline) reject(new Error('scheduler did not finish'));
      else setTimeout(check, 5);
    };
    check();
  });
  return { scheduler, out, batches, loads, finished };
}

const greedy = (maxTokens: number) => model.withDefaults({ temperature: 0, maxTokens });

test('batched decoding gives exactly the tokens of each sequence alone; at most `parallel` are active', async () => {
  const expected: GenerationResult[] = [];
  for (const p of prompts) expected.push(await collect(model.chat([{ role: 'user', content: p }], { temperature: 0, maxTokens: 8 })));
  const h = harness({ parallel: 3 });
  prompts.forEach((p, i) => h.scheduler.add(i, model.chatIds([{ role: 'user', content: p }]), greedy(8)));
  await h.finished(prompts.map((_, i) => i));
  prompts.forEach((_, i) => {
    const o = h.out.get(i)!;
    assert.equal(o.failed, undefined);
    assert.equal(o.text, expected[i]!.text, prompts[i]);
    assert.equal(o.done!.finishReason, expected[i]!.finishReason);
    assert.equal(o.done!.completionTokens, expected[i]!.stats.generatedTokens);
    assert.equal(o.tokens, o.done!.completionTokens);
    assert.equal(o.done!.promptTokens, expected[i]!.stats.promptTokens);
  });
  assert.equal(Math.max(...h.batches), 3, `batch sizes: ${h.batches.join(',')}`);
  assert.ok(h.loads.every(([a]) => a <= 3));
  assert.ok(h.loads.some(([, w]) => w >= 1), 'the fourth sequence waited for a slot');
  assert.ok(h.scheduler.cachesAllocated <= 3);
  assert.deepEqual(h.scheduler.load, { active: 0, waiting: 0 });
});

test('a sequence that joins later is batched with the running ones and still matches', async () => {
  const expected = await collect(model.chat([{ role: 'user', content: prompts[1]! }], { temperature: 0, maxTokens: 6 }));
  const h = harness({ parallel: 4 });
  h.scheduler.add(1, model.chatIds([{ role: 'user', content: prompts[0]! }]), greedy(400));
  // Join once the first sequence is a few decode steps in (polled: the speed varies by backend).
  for (let i = 0; i < 5000 && (h.out.get(1)?.tokens ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 1));
  h.scheduler.add(2, model.chatIds([{ role: 'user', content: prompts[1]! }]), greedy(6));
  await h.finished([2]);
  h.scheduler.cancelAll();
  assert.equal(h.out.get(2)!.text, expected.text);
  assert.ok(h.batches.includes(2), `batch sizes: ${h.batches.join(',')}`);
});

test('cancel stops a sequence at once (finish reason abort) and returns its cache', async () => {
  const h = harness({ parallel: 2 });
  h.scheduler.add(1, model.chatIds([{ role: 'user', content: 'Go.' }]), greedy(100));
  h.scheduler.add(2, model.chatIds([{ role: 'user', content: 'Wait.' }]), greedy(100));
  h.scheduler.add(3, model.chatIds([{ role: 'user', content: 'Queued.' }]), greedy(100));
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(h.scheduler.load, { active: 2, waiting: 1 });
  assert.equal(h.scheduler.cancel(3), true); // waiting
  assert.equal(h.scheduler.cancel(1), true); // active
  assert.equal(h.out.get(3)!.done!.finishReason, 'abort');
  assert.equal(h.out.get(1)!.done!.finishReason, 'abort');
  assert.deepEqual(h.scheduler.load, { active: 1, waiting: 0 });
  const tokens = h.out.get(1)!.tokens;
  h.scheduler.cancelAll();
  await h.finished([2]);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(h.out.get(1)!.tokens, tokens, 'no token after the cancel');
  assert.equal(h.out.get(2)!.done!.finishReason, 'abort');
  assert.equal(h.scheduler.cancel(1), false);
  assert.ok(h.scheduler.cachesAllocated <= 2);
});

test('chunked prefill (a small budget per step) gives the same reply as one pass', async () => {
  const messages = [{ role: 'user', content: 'Please describe, in some detail, how a bicycle works and why it stays upright.' }];
  const expected = await collect(model.chat(messages, { temperature: 0, maxTokens: 6 }));
  const h = harness({ parallel: 2, prefillBudget: 5 });
  h.scheduler.add(7, model.chatIds(messages), greedy(6));
  await h.finished([7]);
  assert.equal(h.out.get(7)!.text, expected.text);
});

test('generation ends with length when the context is full', async () => {
  const h = harness({ parallel: 1, context: 16 });
  const ids = model.chatIds([{ role: 'user', content: 'Hi' }]);
  assert.ok(ids.length < 16);
  h.scheduler.add(1, ids, greedy(1000));
  await h.finished([1]);
  const done = h.out.get(1)!.done!;
  assert.equal(done.finishReason, 'length');
  assert.equal(done.promptTokens + done.completionTokens, 17); // the last token needs no cache slot
  assert.throws(() => h.scheduler.add(2, Array(16).fill(1000), greedy(4)), RangeError);
});

test('a long prompt is read in chunks that shrink with depth while another stream gets a token every step', async () => {
  const steps: { decode: number; chunks: { depth: number; tokens: number }[] }[] = [];
  const decoder = model.decoder;
  const step = decoder.step.bind(decoder);
  decoder.step = (segments, into) => {
    steps.push({
      decode: segments.filter((s) => s.input.ids.length === 1 && s.cache.length > 0 && s.logits === 'last').length,
      chunks: segments.filter((s) => s.input.ids.length > 1).map((s) => ({ depth: s.cache.length, tokens: s.input.ids.length })),
    });
    return step(segments, into);
  };
  try {
    const budget = 48;
    const h = harness({ parallel: 2, context: 512, prefillBudget: budget });
    h.scheduler.add(1, model.chatIds([{ role: 'user', content: 'Hello!' }]), greedy(60));
    await new Promise((r) => setTimeout(r, 50)); // the first stream is decoding
    const longIds = [2, ...Array.from({ length: 399 }, (_, i) => 1000 + ((i * 7919) % 5000))];
    h.scheduler.add(2, longIds, greedy(2));
    await h.finished([1, 2]);
    const prefill = steps.filter((s) => s.chunks.some((c) => c.depth > 0 || c.tokens > 20));
    const longChunks = prefill.flatMap((s) => s.chunks).filter((c) => c.tokens > 1);
    assert.equal(longChunks.reduce((n, c) => n + c.tokens, 0) >= 399, true, 'the long prompt was read');
    // Each chunk is what the work budget allows at its depth, so chunks shrink as the prompt deepens.
    for (const c of longChunks) {
      if (c.depth + c.tokens < longIds.length) assert.equal(c.tokens, prefillTokensAt(decoder.config, c.depth, budget), `chunk at depth ${c.depth}`);
    }
    assert.ok(longChunks.at(-2)!.tokens < longChunks[0]!.tokens, `chunks ${longChunks.map((c) => c.tokens)}`);
    // The other stream was never held back: every step that read the long prompt also decoded it, while it ran.
    const doneAt = h.out.get(1)!.tokens;
    assert.ok(doneAt >= 20, 'the first stream kept generating');
    const whileBoth = prefill.filter((s) => s.chunks.some((c) => c.depth > 0)).slice(0, Math.min(prefill.length, doneAt) - 1);
    for (const s of whileBoth) assert.equal(s.decode, 1, 'a step read the prompt without decoding the stream');
  } finally {
    decoder.step = step;
  }
});
