// Every error the server answers, in the OpenAI error shape with its status: malformed JSON,
// wrong types, unknown model, prompt longer than the context, body too large, bad images,
// missing or wrong API key, overload (429), plus unsupported options and unknown routes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { RunningServer } from '../src/server/server.js';
import { client, postJson, startTestServer, testImage, waitFor } from './server-helpers.js';

const KEY = 'test-key-123';
const AUTH = { Authorization: `Bearer ${KEY}` };
const MODEL = 'tiny-text';
let server: RunningServer;

before(async () => {
  server = await startTestServer({ apiKey: KEY, context: 48, maxBodyBytes: 64 * 1024, parallel: 1, maxQueue: 1, corsOrigin: 'https://app.example' });
});
after(async () => {
  await server?.close();
});

/** Posts `body` with the key and checks the status and the OpenAI error shape; returns the error. */
async function expectError(path: string, body: unknown, status: number, check: { param?: string | null; code?: string; message?: RegExp } = {},
                           headers: Record<string, string> = AUTH): Promise<any> {
  const res = await postJson(server, path, body, headers);
  assert.equal(res.status, status, `${path} ${JSON.stringify(body).slice(0, 80)}`);
  assert.match(res.headers.get('content-type')!, /application\/json/);
  const json: any = await res.json();
  assert.deepEqual(Object.keys(json), ['error']);
  assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof json.error.message, 'string');
  if (check.param !== undefined) assert.equal(json.error.param, check.param);
  if (check.code) assert.equal(json.error.code, check.code);
  if (check.message) assert.match(json.error.message, check.message);
  return json.error;
}

const chat = (extra: object = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, ...extra });

test('missing API key: 401 (the page and /health stay open)', async () => {
  const e = await expectError('/v1/chat/completions', chat(), 401, { code: 'missing_api_key' }, {});
  assert.equal(e.type, 'authentication_error');
  assert.equal((await fetch(`${server.url}/v1/models`)).status, 401);
  assert.equal((await fetch(`${server.url}/metrics`)).status, 401);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  assert.equal((await fetch(`${server.url}/`)).status, 200);
  const ollama = await postJson(server, '/api/chat', { model: MODEL, messages: [] });
  assert.equal(ollama.status, 401);
  assert.match(((await ollama.json()) as any).error, /API key/);
});

test('wrong API key: 401, also through the openai client', async () => {
  await expectError('/v1/chat/completions', chat(), 401, { code: 'invalid_api_key' }, { Authorization: 'Bearer nope' });
  await assert.rejects(client(server, 'nope').models.list(), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError);
    assert.equal(err.status, 401);
    return true;
  });
  const ok = await client(server, KEY).models.list();
  assert.equal(ok.data[0]!.id, MODEL);
});

test('malformed JSON: 400 invalid_json', async () => {
  await expectError('/v1/chat/completions', '{"model": "tiny-text", "messages": [', 400, { code: 'invalid_json', message: /parse the JSON/ });
  await expectError('/v1/completions', '', 400, { code: 'invalid_json' });
  await expectError('/v1/chat/completions', '[1, 2]', 400, { code: 'invalid_type', message: /JSON object/ });
});

test('wrong types: 400 naming the field', async () => {
  const cases: [object, string][] = [
    [{ temperature: 'hot' }, 'temperature'],
    [{ temperature: 3 }, 'temperature'],
    [{ max_tokens: 1.5 }, 'max_tokens'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ max_completion_tokens: '8' }, 'max_completion_tokens'],
    [{ top_p: 2 }, 'top_p'],
    [{ seed: 'abc' }, 'seed'],
    [{ stop: 5 }, 'stop'],
    [{ stream: 'yes' }, 'stream'],
    [{ model: 42 }, 'model'],
    [{ messages: 'Hi' }, 'messages'],
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'robot', content: 'Hi' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'audio', data: 'x' }] }] }, 'messages[0].content[0].type'],
    [{ stream_options: { include_usage: true } }, 'stream_options'],
    [{ n: 9 }, 'n'],
    [{ n: 0 }, 'n'],
    [{ logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    [{ top_logprobs: 2 }, 'top_logprobs'],
    [{ logit_bias: { abc: 5 } }, 'logit_bias.abc'],
    [{ logit_bias: { 17: 101 } }, 'logit_bias.17'],
    [{ presence_penalty: 3 }, 'presence_penalty'],
    [{ tools: [{ type: 'function', function: { parameters: {} } }] }, 'tools[0].function.name'],
    [{ frobnicate: true }, 'frobnicate'],
  ];
  for (const [extra, param] of cases) {
    const e = await expectError('/v1/chat/completions', chat(extra), 400, { param });
    assert.equal(e.type, 'invalid_request_error');
  }
  await expectError('/v1/chat/completions', { model: MODEL }, 400, { param: 'messages', code: 'missing_required_parameter' });
  await expectError('/v1/completions', { model: MODEL, prompt: { text: 'x' } }, 400, { param: 'prompt' });
  await expectError('/v1/completions', { model: MODEL, prompt: ['a', 'b'] }, 400, { param: 'prompt', code: 'unsupported_value' });
  const ollama = await postJson(server, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'x' }], options: { temperature: 'hot' } }, AUTH);
  assert.equal(ollama.status, 400);
  assert.match(((await ollama.json()) as any).error, /options\.temperature/);
});

test('unknown model: 404 model_not_found', async () => {
  const e = await expectError('/v1/chat/completions', chat({ model: 'gpt-4o' }), 404, { param: 'model', code: 'model_not_found', message: /gpt-4o/ });
  assert.match(e.message, /tiny-text/);
  await assert.rejects(client(server, KEY).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    (err: unknown) => err instanceof OpenAI.NotFoundError);
  const res = await fetch(`${server.url}/v1/models/gpt-4o`, { headers: AUTH });
  assert.equal(res.status, 404);
  const ollama = await postJson(server, '/api/generate', { model: 'llama3', prompt: 'x' }, AUTH);
  assert.equal(ollama.status, 404);
  assert.match(((await ollama.json()) as any).error, /llama3/);
});

test('prompt longer than the context: 400 context_length_exceeded with the token counts', async () => {
  await expectError('/v1/completions', { model: MODEL, prompt: Array(100).fill(1000), max_tokens: 2 }, 400,
    { code: 'context_length_exceeded', param: 'prompt', message: /maximum context length is 48 tokens.*resulted in 100 tokens/ });
  const long = 'word '.repeat(80);
  const e = await expectError('/v1/chat/completions', chat({ messages: [{ role: 'user', content: long }] }), 400,
    { code: 'context_length_exceeded', param: 'messages', message: /48 tokens/ });
  const count = Number(/resulted in (\d+) tokens/.exec(e.message)![1]);
  assert.ok(count > 48, e.message);
  // Exactly at the limit is refused too (no room for a reply); one below is fine.
  await expectError('/v1/completions', { model: MODEL, prompt: Array(48).fill(1000), max_tokens: 2 }, 400, { code: 'context_length_exceeded' });
  const ok = await postJson(server, '/v1/completions', { model: MODEL, prompt: Array(47).fill(1000), max_tokens: 2 }, AUTH);
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as any).choices[0].finish_reason, 'length');
});

test('body too large: 413', async () => {
  const big = chat({ messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] });
  await expectError('/v1/chat/completions', big, 413, { code: 'request_too_large', message: /65536 bytes/ });
  // Without a Content-Length (chunked upload) the limit holds as well.
  const body = JSON.stringify(big);
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < body.length; i += 8192) c.enqueue(new TextEncoder().encode(body.slice(i, i + 8192)));
      c.close();
    },
  });
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...AUTH }, body: stream, duplex: 'half',
  } as RequestInit);
  assert.equal(res.status, 413);
  await assert.rejects(client(server, KEY).chat.completions.create(big as any), (err: any) => err.status === 413);
});

test('bad images: 400 invalid_image / invalid_image_url naming the part', async () => {
  const withImage = (url: string) => chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url } }] }] });
  const param = 'messages[0].content[1].image_url';
  await expectError('/v1/chat/completions', withImage('data:image/png;base64,AAAAAAAAAAAA'), 400, { param, code: 'invalid_image', message: /invalid image/ });
  await expectError('/v1/chat/completions', withImage('data:image/png;base64,@@@not base64@@@'), 400, { param, code: 'invalid_image' });
  await expectError('/v1/chat/completions', withImage('data:text/plain,hello'), 400, { param, code: 'invalid_image' });
  await expectError('/v1/chat/completions', withImage('https://example.com/cat.png'), 400, { param, code: 'invalid_image_url', message: /--allow-remote-images/ });
  await expectError('/v1/chat/completions', withImage('/etc/passwd'), 400, { param, code: 'invalid_image_url' });
  await expectError('/v1/chat/completions', withImage('file:///etc/passwd'), 400, { param, code: 'invalid_image_url' });
  // A valid image on this text-only model: the model says it takes none.
  await expectError('/v1/chat/completions', withImage(testImage().dataUrl), 400, { code: 'images_not_supported', message: /does not accept images/ });
  const ollama = await postJson(server, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'x', images: ['%%%'] }] }, AUTH);
  assert.equal(ollama.status, 400);
  assert.match(((await ollama.json()) as any).error, /base64/);
});

test('overload: 429 with Retry-After once `parallel` run and the queue is full', async () => {
  // parallel 1 + queue 1: two requests fill the server, the third is refused.
  const aborts = [new AbortController(), new AbortController()];
  const running = aborts.map((a) => postJson(server, '/v1/completions', { model: MODEL, prompt: 'Hello', max_tokens: 200, stream: true }, AUTH)
    .then(async (r) => {
      const reader = r.body!.getReader();
      a.signal.addEventListener('abort', () => void reader.cancel().catch(() => {}));
      while (!(await reader.read()).done) { /* drain */ }
    }).catch(() => {}));
  try {
    await waitFor(() => server.engine.outstanding === 2, 10_000, 'two requests in flight');
    const res = await postJson(server, '/v1/chat/completions', chat(), AUTH);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    const json: any = await res.json();
    assert.equal(json.error.type, 'rate_limit_error');
    assert.equal(json.error.code, 'server_busy');
    await assert.rejects(client(server, KEY).chat.completions.create(chat() as any), (err: unknown) => err instanceof OpenAI.RateLimitError);
    const health: any = await (await fetch(`${server.url}/health`)).json();
    assert.equal(health.active + health.queued, 2);
  } finally {
    for (const a of aborts) a.abort();
    await Promise.all(running);
  }
  await waitFor(() => server.engine.outstanding === 0, 10_000, 'the cancelled requests to finish');
  const after = await postJson(server, '/v1/chat/completions', chat(), AUTH);
  assert.equal(after.status, 200);
});

test('unknown routes 404, wrong methods 405', async () => {
  const res = await fetch(`${server.url}/v1/engines`, { headers: AUTH });
  assert.equal(res.status, 404);
  assert.equal(((await res.json()) as any).error.code, 'unknown_url');
  const get = await fetch(`${server.url}/v1/chat/completions`, { headers: AUTH });
  assert.equal(get.status, 405);
});

test('CORS only for the configured origin; the preflight needs no key', async () => {
  const pre = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.match(pre.headers.get('access-control-allow-headers')!, /Authorization/);
});
