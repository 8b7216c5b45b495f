// The HTTP server on the tiny-text model, through the official `openai` client and raw HTTP:
// greedy replies equal the library's, usage counts the real tokens, SSE and NDJSON streaming,
// the Ollama endpoints, health, metrics and the web page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, load, type Gemma3 } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { modelDigest } from '../src/server/model-facts.js';
import { fixturePath, REPO_ROOT, tinyTextWith } from './helpers.js';
import { client, metric, ndjson, postJson, sseData, startTestServer, testImage, waitFor } from './server-helpers.js';

let server: RunningServer;
let model: Gemma3;
const MODEL = 'tiny-text';
const messages = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Hello there, how are you today?' },
];

before(async () => {
  // One after the other: the native kernels' thread pool is shared by the whole process.
  model = await load(fixturePath('tiny-text'), { contextLength: 256 });
  server = await startTestServer();
});
after(async () => {
  await server?.close();
  model?.dispose();
});

test('GET /v1/models lists the served model', async () => {
  const list = await client(server).models.list();
  assert.deepEqual(list.data.map((m) => m.id), [MODEL]);
  assert.equal(list.data[0]!.object, 'model');
  const one = await client(server).models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
});

test('non-streaming chat: greedy reply equals the library, usage counts the real tokens', async () => {
  const expected = await collect(model.chat(messages, { temperature: 0, maxTokens: 12 }));
  const res = await client(server).chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 12 });
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.model, MODEL);
  assert.equal(res.choices.length, 1);
  assert.equal(res.choices[0]!.message.role, 'assistant');
  assert.equal(res.choices[0]!.message.content, expected.text);
  assert.equal(res.choices[0]!.finish_reason, expected.finishReason);
  assert.equal(res.usage!.prompt_tokens, model.chatIds(messages).length);
  assert.equal(res.usage!.prompt_tokens, expected.stats.promptTokens);
  assert.equal(res.usage!.completion_tokens, expected.stats.generatedTokens);
  assert.equal(res.usage!.total_tokens, res.usage!.prompt_tokens + res.usage!.completion_tokens);
});

test('streaming chat: deltas add up to the library reply, one finish_reason, usage chunk last', async () => {
  const expected = await collect(model.chat(messages, { temperature: 0, maxTokens: 10 }));
  const stream = await client(server).chat.completions.create({
    model: MODEL, messages, temperature: 0, max_completion_tokens: 10, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  const finishes: string[] = [];
  let usage;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finishes.push(c.finish_reason);
    }
  }
  assert.equal(text, expected.text);
  assert.deepEqual(finishes, [expected.finishReason]);
  assert.ok(chunks >= 3);
  // Earlier tests may have left this prompt in the prompt cache: all but its last token at most.
  const cached = (usage as { prompt_tokens_details?: { cached_tokens?: number } } | undefined)?.prompt_tokens_details?.cached_tokens ?? -1;
  assert.ok(Number.isInteger(cached) && cached >= 0 && cached < expected.stats.promptTokens, `cached_tokens ${cached}`);
  assert.deepEqual(usage, {
    prompt_tokens: expected.stats.promptTokens, completion_tokens: expected.stats.generatedTokens,
    total_tokens: expected.stats.promptTokens + expected.stats.generatedTokens, prompt_tokens_details: { cached_tokens: cached },
  });
});

test('the SSE stream ends with data: [DONE] and its first chunk carries the assistant role', async () => {
  const res = await postJson(server, '/v1/chat/completions', { model: MODEL, messages, max_tokens: 3, temperature: 0, stream: true });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
  const data = sseData(await res.text());
  assert.equal(data.at(-1), '[DONE]');
  assert.equal(JSON.parse(data[0]!).choices[0].delta.role, 'assistant');
  assert.ok(!data.slice(0, -1).some((d) => JSON.parse(d).usage), 'no usage without stream_options.include_usage');
});

test('stop strings, seeds and top_p reach the sampler', async () => {
  const full = await collect(model.chat(messages, { temperature: 0, maxTokens: 12 }));
  const stop = full.text.slice(5, 9);
  const cut = await client(server).chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 12, stop });
  assert.equal(cut.choices[0]!.message.content, full.text.slice(0, full.text.indexOf(stop)));
  assert.equal(cut.choices[0]!.finish_reason, 'stop');
  const sample = () => client(server).chat.completions.create({ model: MODEL, messages, temperature: 1, top_p: 0.9, seed: 1234, max_tokens: 8 });
  const [a, b] = [await sample(), await sample()];
  assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
  const lib = await collect(model.chat(messages, { temperature: 1, topP: 0.9, seed: 1234, maxTokens: 8 }));
  assert.equal(a.choices[0]!.message.content, lib.text);
});

test('POST /v1/completions: raw prompt, greedy equal to complete(), streaming too', async () => {
  const prompt = 'Once upon a time';
  const expected = await collect(model.complete(prompt, { temperature: 0, maxTokens: 8 }));
  const res = await client(server).completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 8 });
  assert.equal(res.object, 'text_completion');
  assert.equal(res.choices[0]!.text, expected.text);
  assert.equal(res.usage!.prompt_tokens, model.tokenizer.encode(prompt, { addBos: true }).length);
  assert.equal(res.usage!.completion_tokens, expected.stats.generatedTokens);
  const stream = await client(server).completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 8, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, expected.text);
  const ids = [2, 818, 5279, 563];
  const byIds = await client(server).completions.create({ model: MODEL, prompt: ids, temperature: 0, max_tokens: 4 });
  assert.equal(byIds.choices[0]!.text, (await collect(model.complete({ ids }, { temperature: 0, maxTokens: 4 }))).text);
  assert.equal(byIds.usage!.prompt_tokens, 4);
});

test('Ollama /api/chat streams NDJSON and answers non-streaming too', async () => {
  const expected = await collect(model.chat(messages, { temperature: 0, maxTokens: 8 }));
  const res = await postJson(server, '/api/chat', { model: MODEL, messages, options: { temperature: 0, num_predict: 8 } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /ndjson/);
  const lines = ndjson(await res.text());
  const last = lines.at(-1);
  assert.equal(last.done, true);
  assert.equal(last.done_reason, expected.finishReason);
  assert.equal(last.prompt_eval_count, expected.stats.promptTokens);
  assert.equal(last.eval_count, expected.stats.generatedTokens);
  assert.ok(lines.slice(0, -1).every((l) => l.done === false && l.message.role === 'assistant'));
  assert.equal(lines.map((l) => l.message.content).join(''), expected.text);
  const single: any = await (await postJson(server, '/api/chat', { model: `${MODEL}:latest`, messages, stream: false, options: { temperature: 0, num_predict: 8 } })).json();
  assert.equal(single.message.content, expected.text);
  assert.equal(single.done, true);
});

test('Ollama /api/generate (templated and raw) and /api/tags', async () => {
  const prompt = 'Why is the sky blue?';
  const chat = await collect(model.chat([{ role: 'user', content: prompt }], { temperature: 0, maxTokens: 6 }));
  const lines = ndjson(await (await postJson(server, '/api/generate', { model: MODEL, prompt, options: { temperature: 0, num_predict: 6 } })).text());
  assert.equal(lines.map((l) => l.response).join(''), chat.text);
  assert.equal(lines.at(-1).done, true);
  const raw = await collect(model.complete(prompt, { temperature: 0, maxTokens: 6 }));
  const r: any = await (await postJson(server, '/api/generate', { model: MODEL, prompt, raw: true, stream: false, options: { temperature: 0, num_predict: 6 } })).json();
  assert.equal(r.response, raw.text);
  const loadOnly: any = await (await postJson(server, '/api/generate', { model: MODEL })).json();
  assert.equal(loadOnly.done_reason, 'load');
  const tags: any = await (await fetch(`${server.url}/api/tags`)).json();
  assert.equal(tags.models[0].name, `${MODEL}:latest`);
  assert.equal(tags.models[0].details.family, 'gemma3');
  assert.ok(tags.models[0].size > 0);
  // The weights' real storage type; the digest is the files' content hash, not their path's.
  assert.equal(tags.models[0].details.quantization_level, model.decoder.weights.layers[0]!.ffnDown.dtype.toUpperCase());
  await waitFor(async () => ((await (await fetch(`${server.url}/api/tags`)).json()) as any).models[0].digest !== '', 10_000, 'the digest');
  const digest = ((await (await fetch(`${server.url}/api/tags`)).json()) as any).models[0].digest;
  assert.equal(digest, await modelDigest(fixturePath('tiny-text')));
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  const version: any = await (await fetch(`${server.url}/api/version`)).json();
  assert.equal(version.version, JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version);
});

test('a text-only model answers 400 "does not accept images" (OpenAI and Ollama)', async () => {
  const img = testImage();
  await assert.rejects(client(server).chat.completions.create({
    model: MODEL, max_tokens: 4,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: img.dataUrl } }, { type: 'text', text: 'What is it?' }] }],
  }), (err: any) => {
    assert.equal(err.status, 400);
    assert.match(err.message, /this model does not accept images/);
    assert.equal(err.code, 'images_not_supported');
    return true;
  });
  const res = await postJson(server, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'hi', images: [img.base64] }] });
  assert.equal(res.status, 400);
  assert.match(((await res.json()) as any).error, /does not accept images/);
});

test('/health answers while the model computes; /metrics reports requests, tokens, queue, tokens/s and TTFT', async () => {
  const controller = new AbortController();
  const stream = await client(server).chat.completions.create(
    { model: MODEL, messages, max_tokens: 200, temperature: 0, stream: true }, { signal: controller.signal });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  await it.next(); // generation is under way
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const h: any = await (await fetch(`${server.url}/health`)).json();
    times.push(performance.now() - t);
    assert.equal(h.status, 'ok');
    assert.equal(h.model, MODEL);
    assert.equal(h.active, 1);
  }
  controller.abort();
  assert.ok(Math.min(...times) < 500, `health took ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
  const text = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(text, /# TYPE gemma3_requests_total counter/);
  assert.ok(metric(text, 'gemma3_requests_total{endpoint="/v1/chat/completions",status="200"}') >= 3);
  assert.ok(metric(text, 'gemma3_prompt_tokens_total') > 0);
  assert.ok(metric(text, 'gemma3_completion_tokens_total') > 0);
  assert.ok(metric(text, 'gemma3_tokens_per_second') > 0);
  assert.ok(metric(text, 'gemma3_time_to_first_token_seconds_count') >= 3);
  assert.equal(metric(text, 'gemma3_queue_length'), 0);
  assert.ok(metric(text, 'gemma3_decode_batch_size_count') > 0);
});

test('the web page and its assets are served by the server itself (no CDN)', async () => {
  const res = await fetch(`${server.url}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /text\/html/);
  const html = await res.text();
  assert.match(html, /<script type="module" src="\/app\.js"><\/script>/);
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
  // Every file of the page is served with its type, and every module the scripts import is one of them.
  const files = readdirSync(join(REPO_ROOT, 'src', 'server', 'web'));
  const types: Record<string, RegExp> = { js: /^text\/javascript/, css: /^text\/css/, html: /^text\/html/, svg: /^image\/svg\+xml/ };
  const imported = new Set<string>();
  for (const name of files) {
    const r = await fetch(`${server.url}/${name}`);
    assert.equal(r.status, 200, name);
    assert.match(r.headers.get('content-type')!, types[name.slice(name.lastIndexOf('.') + 1)]!, name);
    const text = await r.text();
    assert.doesNotMatch(text, /https?:\/\/(cdn|unpkg|fonts)/, name);
    for (const m of text.matchAll(/^(?:import|export)\b[^'"]*?from '\.\/([^']+)'/gm)) imported.add(m[1]!);
  }
  assert.ok(imported.size >= 5, [...imported].join(', '));
  for (const module of imported) assert.ok(files.includes(module), `${module} is imported but not in src/server/web`);
  assert.equal((await fetch(`${server.url}/nope.js`)).status, 404);
});

test('no CORS by default: other web sites get 403 and no CORS header from the API', async () => {
  const res = await fetch(`${server.url}/v1/models`, { headers: { Origin: 'https://evil.example' } });
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
});

test('content given as an array of text parts equals the same text as a string', async () => {
  const asParts = [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'Hello there, how are you today?' }] }];
  const a = await client(server).chat.completions.create({ model: MODEL, messages: asParts, temperature: 0, max_tokens: 4 });
  const b = await client(server).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hello there, how are you today?' }], temperature: 0, max_tokens: 4 });
  assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
  assert.equal(a.usage!.prompt_tokens, b.usage!.prompt_tokens);
});

test('the context: --context if given (refused above the model\'s limit), else 4096 or the model\'s limit if lower', async () => {
  const root = mkdtempSync(join(tmpdir(), 'gemma3-server-'));
  const contextOf = async (modelPath: string, context?: number) => {
    const started = await startServer({ modelPath, host: '127.0.0.1', port: 0, parallel: 1, ...(context !== undefined ? { context } : {}) });
    await started.close();
    return started.engine.info.contextLength;
  };
  try {
    const short = tinyTextWith(join(root, 'short'), { max_position_embeddings: 96 });
    assert.equal(await contextOf(short), 96);
    assert.equal(await contextOf(short, 64), 64);
    await assert.rejects(contextOf(short, 200), /contextLength must be an integer in \[2, 96\]/);
    assert.equal(await contextOf(fixturePath('tiny-text')), 4096);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
