// Continuous batching through HTTP: 8 clients streaming at once get the same greedy replies as
// each alone, their decode steps really are batched, and a client that disconnects mid-stream
// stops its generation at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, load, type GenerationResult } from '../src/index.js';
import type { RunningServer } from '../src/server/server.js';
import { fixturePath } from './helpers.js';
import { client, metric, startTestServer, waitFor } from './server-helpers.js';

const MODEL = 'tiny-text';
const PROMPTS = [
  'Hello!', 'What is the capital of France?', 'Write a haiku about the sea.', 'Count to five.',
  'Tell me a joke about cats.', 'How do airplanes fly?', 'Name three colours.', 'Translate "good morning" into Spanish.',
];
const MAX_TOKENS = 10;
let server: RunningServer;
let expected: GenerationResult[];

before(async () => {
  // Each prompt alone, through the library (before the server runs: the native thread pool is per process).
  const model = await load(fixturePath('tiny-text'), { contextLength: 256 });
  expected = [];
  for (const p of PROMPTS) expected.push(await collect(model.chat([{ role: 'user', content: p }], { temperature: 0, maxTokens: MAX_TOKENS })));
  model.dispose();
  server = await startTestServer({ parallel: 8 });
});
after(async () => {
  await server?.close();
});

test('8 clients streaming at once all get complete replies identical to running each alone', async () => {
  let maxActive = 0;
  const poll = setInterval(() => (maxActive = Math.max(maxActive, server.engine.active)), 5);
  const results = await Promise.all(PROMPTS.map(async (p) => {
    const stream = await client(server).chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: p }], temperature: 0, max_tokens: MAX_TOKENS, stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    return { text, finish, usage };
  }));
  clearInterval(poll);
  results.forEach((r, i) => {
    assert.equal(r.text, expected[i]!.text, `reply ${i} (${PROMPTS[i]})`);
    assert.equal(r.finish, expected[i]!.finishReason);
    assert.equal(r.usage?.prompt_tokens, expected[i]!.stats.promptTokens);
    assert.equal(r.usage?.completion_tokens, expected[i]!.stats.generatedTokens);
  });
  // The decode steps advanced several sequences together (one batched pass through the weights).
  assert.ok(server.metrics.maxBatch >= 4, `largest decode batch was ${server.metrics.maxBatch}`);
  assert.ok(maxActive >= 4, `at most ${maxActive} sequences were active at once`);
  await waitFor(() => server.engine.outstanding === 0, 5000, 'all requests to finish');
});

test('a client that disconnects mid-stream stops its generation and frees its slot', async () => {
  const before = await (await fetch(`${server.url}/metrics`)).text();
  const cancelledBefore = metric(before, 'gemma3_requests_cancelled_total');
  const tokensBefore = metric(before, 'gemma3_completion_tokens_total');
  const controller = new AbortController();
  const stream = await client(server).chat.completions.create(
    { model: MODEL, messages: [{ role: 'user', content: 'Tell me a very long story.' }], temperature: 0, max_tokens: 500, stream: true },
    { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const _chunk of stream) if (++chunks === 3) controller.abort();
  } catch (err) {
    assert.match(String((err as Error).name) + (err as Error).message, /abort/i);
  }
  // Chunks already on the wire may still arrive; the generation itself must stop (checked below).
  assert.ok(chunks < 100, `${chunks} chunks arrived after the abort`);
  await waitFor(() => server.engine.active === 0 && server.engine.outstanding === 0, 3000, 'the cancelled sequence to leave');
  const afterText = await (await fetch(`${server.url}/metrics`)).text();
  assert.equal(metric(afterText, 'gemma3_requests_cancelled_total'), cancelledBefore + 1);
  assert.equal(metric(afterText, 'gemma3_active_sequences'), 0);
  const generated = metric(afterText, 'gemma3_completion_tokens_total') - tokensBefore;
  assert.ok(generated < 100, `${generated} tokens were generated after the client left`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(metric(await (await fetch(`${server.url}/metrics`)).text(), 'gemma3_completion_tokens_total'), tokensBefore + generated,
    'no tokens are generated once the sequence is cancelled');
  // The server carries on normally.
  const res = await client(server).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: PROMPTS[0]! }], temperature: 0, max_tokens: MAX_TOKENS });
  assert.equal(res.choices[0]!.message.content, expected[0]!.text);
});

test('a non-streaming client that disconnects is cancelled too', async () => {
  await waitFor(() => server.engine.active === 0 && server.engine.outstanding === 0, 5000, 'an idle server');
  const controller = new AbortController();
  const pending = fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: controller.signal,
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 500 }),
  }).catch((e: Error) => e);
  await waitFor(() => server.engine.active === 1 && server.engine.outstanding === 1, 5000, 'generation to start');
  const cancelled = server.metrics.cancelled;
  controller.abort();
  assert.equal(((await pending) as Error).name, 'AbortError');
  await waitFor(() => server.metrics.cancelled === cancelled + 1 && server.engine.active === 0, 3000, 'the cancellation');
});
