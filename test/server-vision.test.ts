// Images through the server on the tiny-vlm model: OpenAI image_url data: URLs (and http(s) URLs,
// which this server is started to allow), Ollama base64 images; greedy replies and token counts
// equal the library's for the same messages.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collect, load, type Gemma3 } from '../src/index.js';
import type { RunningServer } from '../src/server/server.js';
import { fixturePath } from './helpers.js';
import { client, ndjson, postJson, startTestServer, testImage } from './server-helpers.js';

const MODEL = 'tiny-vlm';
const img = testImage('square.png');
let server: RunningServer;
let model: Gemma3;
let images: Server;
let imagesUrl: string;

model = await load(fixturePath('tiny-vlm'), { contextLength: 256 });

before(async () => {
  // The image server below is on loopback, which remote image URLs may reach only when allowed.
  server = await startTestServer({ modelPath: fixturePath('tiny-vlm'), allowRemoteImages: true, allowPrivateImageHosts: true });
  images = createServer((req, res) => {
    if (req.url === '/square.png') res.writeHead(200, { 'Content-Type': 'image/png' }).end(img.bytes);
    else res.writeHead(404).end();
  });
  await new Promise<void>((ok) => images.listen(0, '127.0.0.1', ok));
  imagesUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
});
after(async () => {
  await server?.close();
  await new Promise((ok) => images?.close(ok));
  model?.dispose();
});

const question = 'What is in this picture?';
const libMessages = () => [{ role: 'user', content: [{ type: 'image', image: img.bytes }, { type: 'text', text: question }] }];
const apiMessages = (url = img.dataUrl) => [{
  role: 'user' as const,
  content: [{ type: 'image_url' as const, image_url: { url } }, { type: 'text' as const, text: question }],
}];

test('the vision model reports vision and answers text-only chats like the library', async () => {
  const health: any = await (await fetch(`${server.url}/health`)).json();
  assert.equal(health.vision, true);
  const messages = [{ role: 'user' as const, content: 'Hello!' }];
  const expected = await collect(model.chat(messages, { temperature: 0, maxTokens: 8 }));
  const res = await client(server).chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 8 });
  assert.equal(res.choices[0]!.message.content, expected.text);
});

test('non-streaming chat with an image: greedy reply and usage equal the library', async () => {
  const expected = await collect(model.chat(libMessages(), { temperature: 0, maxTokens: 8 }));
  const res = await client(server).chat.completions.create({ model: MODEL, messages: apiMessages(), temperature: 0, max_tokens: 8 });
  assert.equal(res.choices[0]!.message.content, expected.text);
  assert.equal(res.usage!.prompt_tokens, expected.stats.promptTokens);
  assert.ok(res.usage!.prompt_tokens > model.chatIds([{ role: 'user', content: question }]).length, 'the image tokens are counted');
  assert.equal(res.usage!.completion_tokens, expected.stats.generatedTokens);
});

test('streaming chat with an image equals the library too', async () => {
  const expected = await collect(model.chat(libMessages(), { temperature: 0, maxTokens: 8 }));
  const stream = await client(server).chat.completions.create({
    model: MODEL, messages: apiMessages(), temperature: 0, max_tokens: 8, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, expected.text);
  assert.equal(usage?.prompt_tokens, expected.stats.promptTokens);
});

test('an http(s) image URL is fetched when the server allows it', async () => {
  const expected = await collect(model.chat(libMessages(), { temperature: 0, maxTokens: 6 }));
  const res = await client(server).chat.completions.create({
    model: MODEL, messages: apiMessages(`${imagesUrl}/square.png`), temperature: 0, max_tokens: 6,
  });
  assert.equal(res.choices[0]!.message.content, expected.text);
  const missing = await postJson(server, '/v1/chat/completions', { model: MODEL, messages: apiMessages(`${imagesUrl}/missing.png`), max_tokens: 2 });
  assert.equal(missing.status, 400);
  assert.match(((await missing.json()) as any).error.message, /HTTP 404/);
});

test('Ollama /api/chat and /api/generate with base64 images equal the library', async () => {
  const expected = await collect(model.chat(libMessages(), { temperature: 0, maxTokens: 6 }));
  const lines = ndjson(await (await postJson(server, '/api/chat', {
    model: MODEL, messages: [{ role: 'user', content: question, images: [img.base64] }], options: { temperature: 0, num_predict: 6 },
  })).text());
  assert.equal(lines.map((l) => l.message.content).join(''), expected.text);
  assert.equal(lines.at(-1).prompt_eval_count, expected.stats.promptTokens);
  const gen: any = await (await postJson(server, '/api/generate', {
    model: MODEL, prompt: question, images: [img.base64], stream: false, options: { temperature: 0, num_predict: 6 },
  })).json();
  assert.equal(gen.response, expected.text);
});

test('a corrupt image (right magic bytes, broken data) is a 400', async () => {
  const broken = Buffer.concat([img.bytes.subarray(0, 40), Buffer.alloc(40)]);
  const res = await postJson(server, '/v1/chat/completions', {
    model: MODEL, max_tokens: 2, messages: apiMessages(`data:image/png;base64,${broken.toString('base64')}`),
  });
  assert.equal(res.status, 400);
  const json: any = await res.json();
  assert.equal(json.error.type, 'invalid_request_error');
});
