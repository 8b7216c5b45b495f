// The rest of the OpenAI and Ollama request fields (logprobs, n, seed, penalties, logit_bias,
// Ollama options) and the endpoints clients probe (/api/show, /api/ps, /tokenize, /detokenize,
// /props), against the server on the tiny fixture; log-probabilities checked against the
// library's own logits.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type OpenAI from 'openai';
import { collect, load, type Gemma3 } from '../src/index.js';
import { LogitAdjuster } from '../src/generate/logit-adjust.js';
import type { RunningServer } from '../src/server/server.js';
import { fixturePath } from './helpers.js';
import { client, postJson, startTestServer } from './server-helpers.js';

let server: RunningServer;
let openai: OpenAI;
let model: Gemma3;
before(async () => {
  server = await startTestServer({ parallel: 4, context: 512 });
  openai = client(server);
  model = await load(fixturePath('tiny-text'), { contextLength: 512 });
});
after(async () => {
  await server?.close();
  model?.dispose();
});
const id = () => server.engine.info.id;
const MESSAGES = [{ role: 'user' as const, content: 'Tell me a story.' }];

test('chat logprobs equal the log-softmax of the library’s logits at each step (within 1e-5), with the top alternatives', async () => {
  const steps = 6;
  const r = await openai.chat.completions.create({ model: id(), messages: MESSAGES, max_tokens: steps, temperature: 0, logprobs: true, top_logprobs: 5 });
  const content = r.choices[0]!.logprobs!.content!;
  const greedy = await collect(model.chat(MESSAGES, { temperature: 0, maxTokens: steps }));
  assert.equal(content.length, greedy.tokenIds.length);
  const prompt = model.chatIds(MESSAGES);
  const scored = model.logits([...prompt, ...greedy.tokenIds], 5);
  let worst = 0;
  for (let k = 0; k < content.length; k++) {
    const pos = scored.positions[prompt.length - 1 + k]!;
    const [topId, topLogit] = pos.top[0]!;
    assert.equal(topId, greedy.tokenIds[k], 'greedy picks the most likely id');
    const expected = topLogit - pos.logsumexp;
    worst = Math.max(worst, Math.abs(content[k]!.logprob - expected));
    assert.equal(content[k]!.top_logprobs.length, 5);
    pos.top.forEach(([, logit], j) => assert.ok(Math.abs(content[k]!.top_logprobs[j]!.logprob - (logit - pos.logsumexp)) < 1e-5, `step ${k} alt ${j}`));
    assert.equal(content[k]!.top_logprobs[0]!.token, content[k]!.token);
    assert.ok(Array.isArray(content[k]!.bytes) && content[k]!.bytes!.length > 0);
  }
  console.log(`# largest |logprob - library log-softmax| over ${content.length} steps: ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-5, `largest difference ${worst}`);
  // The library reports the same numbers (chunk.logprobs).
  const lib = await collect(model.chat(MESSAGES, { temperature: 0, maxTokens: steps, logprobs: 2 }));
  assert.equal(lib.text, greedy.text);

  // Streamed: every token's entry arrives, in order.
  const s = await openai.chat.completions.create({ model: id(), messages: MESSAGES, max_tokens: steps, temperature: 0, logprobs: true, stream: true });
  const streamed: number[] = [];
  for await (const chunk of s) for (const e of chunk.choices[0]?.logprobs?.content ?? []) streamed.push(e.logprob);
  assert.deepEqual(streamed, content.map((c) => c.logprob));
});

test('completions logprobs: tokens, token_logprobs, top_logprobs and text_offset', async () => {
  const r = await openai.completions.create({ model: id(), prompt: 'Once upon', max_tokens: 4, temperature: 0, logprobs: 3 });
  const lp = r.choices[0]!.logprobs!;
  assert.equal(lp.tokens!.length, r.usage!.completion_tokens);
  assert.equal(lp.token_logprobs!.length, lp.tokens!.length);
  for (const [i, alts] of lp.top_logprobs!.entries()) {
    assert.equal(Object.keys(alts).length <= 3, true);
    assert.ok(lp.token_logprobs![i]! <= 0);
    assert.ok(Math.abs(Math.max(...Object.values(alts)) - lp.token_logprobs![i]!) < 1e-6, 'greedy: the token is the top alternative');
  }
  assert.equal(lp.text_offset![0], 0);
});

test('n = 3: three choices, each equal to the one-choice reply with seed s + i; a seed is reproducible', async () => {
  const body = { model: id(), messages: MESSAGES, max_tokens: 12, temperature: 1, seed: 40 };
  const three = await openai.chat.completions.create({ ...body, n: 3 });
  assert.deepEqual(three.choices.map((c) => c.index), [0, 1, 2]);
  for (let i = 0; i < 3; i++) {
    const one = await openai.chat.completions.create({ ...body, seed: 40 + i });
    assert.equal(three.choices[i]!.message.content, one.choices[0]!.message.content, `choice ${i}`);
  }
  assert.notEqual(three.choices[0]!.message.content, three.choices[1]!.message.content);
  const again = await openai.chat.completions.create({ ...body, user: 'someone' });
  assert.equal(again.choices[0]!.message.content, three.choices[0]!.message.content);
  // Usage: the prompt once, the completions of all three choices.
  if (three.choices.every((c) => c.finish_reason === 'length')) assert.equal(three.usage!.completion_tokens, 36);
  assert.equal(three.usage!.prompt_tokens, model.chatIds(MESSAGES).length);
  // Streamed n = 2: each index gets its own deltas and finish.
  const s = await openai.chat.completions.create({ ...body, n: 2, stream: true });
  const texts = ['', ''];
  const finishes: (string | null)[] = [null, null];
  for await (const chunk of s) {
    for (const c of chunk.choices) {
      texts[c.index] += c.delta.content ?? '';
      if (c.finish_reason) finishes[c.index] = c.finish_reason;
    }
  }
  assert.deepEqual(texts, [three.choices[0]!.message.content, three.choices[1]!.message.content]);
  assert.ok(finishes.every((f) => f !== null));
});

test('logit_bias forces or bans a token; presence and frequency penalties lower repeated tokens', async () => {
  const forced = model.tokenizer.encode(' banana', { addBos: false });
  assert.equal(forced.length, 1);
  const r = await openai.chat.completions.create({ model: id(), messages: MESSAGES, max_tokens: 3, temperature: 0, logit_bias: { [forced[0]!]: 100 } });
  assert.equal(r.choices[0]!.message.content, ' banana banana banana');
  const free = await collect(model.chat(MESSAGES, { temperature: 0, maxTokens: 1 }));
  const banned = await openai.chat.completions.create({ model: id(), messages: MESSAGES, max_tokens: 1, temperature: 0, logit_bias: { [free.tokenIds[0]!]: -100 } });
  assert.notEqual(banned.choices[0]!.message.content, free.text);

  const adjust = LogitAdjuster.of({ presencePenalty: 0.5, frequencyPenalty: 0.25 })!;
  adjust.accept(3);
  adjust.accept(3);
  adjust.accept(5);
  const row = new Float32Array([1, 1, 1, 1, 1, 1]);
  adjust.apply(row);
  assert.deepEqual([...row], [1, 1, 1, 1 - 0.5 - 0.5, 1, 1 - 0.5 - 0.25]);
  // Through the server: a strong frequency penalty changes a greedy reply that repeats tokens.
  const plain = await openai.chat.completions.create({ model: id(), messages: MESSAGES, max_tokens: 30, temperature: 0 });
  const penalised = await openai.chat.completions.create({ model: id(), messages: MESSAGES, max_tokens: 30, temperature: 0, frequency_penalty: 2, presence_penalty: 2 });
  const ids = model.tokenizer.encode(plain.choices[0]!.message.content!, { addBos: false });
  if (new Set(ids).size < ids.length) assert.notEqual(penalised.choices[0]!.message.content, plain.choices[0]!.message.content);
});

test('Ollama options: num_predict, stop, seed, temperature, top_k, top_p, min_p, repeat_penalty, num_ctx', async () => {
  const body = { model: id(), prompt: 'Hello', stream: false, options: { num_predict: 5, seed: 3, temperature: 0.8, top_k: 40, top_p: 0.9, min_p: 0.05, repeat_penalty: 1.1, num_ctx: 2048 } };
  const a = await (await postJson(server, '/api/generate', body)).json() as { response: string; eval_count: number };
  const b = await (await postJson(server, '/api/generate', body)).json() as { response: string; eval_count: number };
  assert.equal(a.eval_count, 5);
  assert.equal(a.response, b.response, 'same seed, same reply');
  const word = a.response.trim().split(/\s+/)[1];
  if (word) {
    const cut = await (await postJson(server, '/api/generate', { ...body, options: { ...body.options, stop: [word] } })).json() as { response: string };
    assert.ok(!cut.response.includes(word));
  }
  const bad = await postJson(server, '/api/generate', { ...body, options: { num_ctx: 'big' } });
  assert.equal(bad.status, 400);
  assert.match((await bad.json() as { error: string }).error, /options\.num_ctx/);
});

test('/api/show, /api/ps, /tokenize, /detokenize and /props describe the model', async () => {
  const show = await postJson(server, '/api/show', { model: id() });
  assert.equal(show.status, 200);
  const s = await show.json() as any;
  assert.equal(s.model_info['general.architecture'], 'gemma3');
  assert.equal(s.model_info['gemma3.context_length'], 512);
  assert.equal(s.model_info['gemma3.block_count'], model.config.text.numLayers);
  assert.deepEqual(s.capabilities, ['completion', 'tools']);
  assert.match(s.template, /start_of_turn/);
  assert.match(s.parameters, /num_ctx 512/);
  assert.equal(s.details.quantization_level, server.engine.info.quantization);
  assert.equal((await postJson(server, '/api/show', { model: 'llama3' })).status, 404);
  assert.equal((await postJson(server, '/api/show', {})).status, 400);

  const ps = await (await fetch(`${server.url}/api/ps`)).json() as any;
  assert.equal(ps.models[0].name, `${id()}:latest`);
  assert.equal(ps.models[0].context_length, 512);

  const tok = await (await postJson(server, '/tokenize', { content: 'Hello world', add_special: true })).json() as { tokens: number[] };
  assert.deepEqual(tok.tokens, model.tokenizer.encode('Hello world', { addBos: true }));
  const pieces = await (await postJson(server, '/tokenize', { content: 'Hello world', with_pieces: true })).json() as { tokens: { id: number; piece: string }[] };
  assert.equal(pieces.tokens.map((t) => t.piece).join(''), 'Hello world');
  const detok = await (await postJson(server, '/detokenize', { tokens: tok.tokens.slice(1) })).json() as { content: string };
  assert.equal(detok.content, 'Hello world');
  const badTok = await postJson(server, '/detokenize', { tokens: [1, -4] });
  assert.equal(badTok.status, 400);
  assert.equal((await badTok.json() as any).error.param, 'tokens[1]');
  assert.equal((await postJson(server, '/tokenize', { text: 'x' })).status, 400);

  const props = await (await fetch(`${server.url}/props`)).json() as any;
  assert.equal(props.default_generation_settings.n_ctx, 512);
  assert.equal(props.total_slots, 4);
  assert.equal(props.modalities.vision, false);
  assert.match(props.chat_template, /start_of_turn/);
});
