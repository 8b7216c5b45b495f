// Hostile HTTP bodies against the server (issue 17): hand-made nasties (deep nesting, huge arrays,
// prototype keys, lone surrogates, absurd numbers) and seeded random mutations of valid requests
// on every POST endpoint. Every answer must be a client error or a success, never a 500, a hang
// or a crash; afterwards the server is healthy, holds no request and no budget, and still answers.
// GEMMA3_FUZZ_ITERATIONS=N runs N random cases instead of the default 60.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningServer } from '../src/server/server.js';
import { mulberry32 } from './fuzz-mutate.js';
import { fixturePath } from './helpers.js';
import { startTestServer, testImage, waitFor } from './server-helpers.js';

const ITERATIONS = Number(process.env.GEMMA3_FUZZ_ITERATIONS ?? 60);
const SEED = Number(process.env.GEMMA3_FUZZ_SEED ?? 20261204);
const ALLOWED = new Set([200, 400, 404, 405, 413, 429]);
let server: RunningServer;

before(async () => {
  server = await startTestServer({ modelPath: fixturePath('tiny-vlm'), context: 64, parallel: 2, maxQueue: 64, maxBodyBytes: 2_000_000 });
});
after(async () => {
  await server?.close();
});

async function send(path: string, body: string, timeoutMs = 20_000): Promise<number> {
  const res = await fetch(server.url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return res.status;
}

const image = testImage().dataUrl;
const VALID: Record<string, () => any> = {
  '/v1/chat/completions': () => ({
    model: 'tiny-vlm', max_tokens: 3, temperature: 0.7, seed: 1, stop: ['x'],
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'image_url', image_url: { url: image } }] }],
  }),
  '/v1/completions': () => ({ model: 'tiny-vlm', prompt: 'Once upon', max_tokens: 3, top_p: 0.9, top_k: 5 }),
  '/api/chat': () => ({ model: 'tiny-vlm', stream: false, messages: [{ role: 'user', content: 'Hi', images: [testImage().base64] }], options: { num_predict: 3 } }),
  '/api/generate': () => ({ model: 'tiny-vlm', prompt: 'Hi', stream: true, options: { num_predict: 3, temperature: 0 } }),
};

const HOSTILE_VALUES: unknown[] = [
  null, true, -1, 0, -0, 1e308, -1e308, 2 ** 53, 1.5, '', ' ', '\u0000', '\ud800', 'x'.repeat(10_000), [], [[]], {}, { __proto__: { x: 1 } },
  'constructor', '__proto__', 'toString', '<image_soft_token>', '<start_of_image>', 'data:image/png;base64,AAAA', 'http://127.0.0.1/', 'file:///etc/passwd',
  Array.from({ length: 2000 }, () => 'a'), { role: 'user' }, { type: 'image_url' }, { type: 'image_url', image_url: { url: image } },
];

/** A random structural mutation of `v` (returns the new value). */
function mutate(v: any, r: () => number, depth = 0): any {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  if (depth > 4 || v === null || typeof v !== 'object' || r() < 0.25) return r() < 0.5 ? pick(HOSTILE_VALUES) : v;
  if (Array.isArray(v)) {
    const out = [...v];
    const op = r();
    if (op < 0.3 && out.length) out.splice(Math.floor(r() * out.length), 1);
    else if (op < 0.5) out.push(pick(HOSTILE_VALUES));
    else if (out.length) {
      const i = Math.floor(r() * out.length);
      out[i] = mutate(out[i], r, depth + 1);
    }
    return out;
  }
  const out: Record<string, unknown> = { ...v };
  const keys = Object.keys(out);
  const op = r();
  if (op < 0.2 && keys.length) delete out[pick(keys)];
  else if (op < 0.3) out[pick(['__proto__', 'constructor', 'n', 'stream', 'stream_options', 'tools', 'format', 'logprobs', 'extra'])] = pick(HOSTILE_VALUES);
  else if (keys.length) {
    const k = pick(keys);
    out[k] = mutate(out[k], r, depth + 1);
  }
  return out;
}

test('hand-made hostile bodies: client errors, never 500', async () => {
  const deep = '['.repeat(200_000) + ']'.repeat(200_000);
  const bodies: [string, string][] = [
    ['/v1/chat/completions', deep],
    ['/v1/chat/completions', `{"model":"tiny-vlm","messages":${deep}}`],
    ['/v1/chat/completions', JSON.stringify({ model: 'tiny-vlm', messages: Array.from({ length: 50_000 }, () => ({ role: 'user', content: 'a' })) })],
    ['/v1/chat/completions', JSON.stringify({ model: 'tiny-vlm', messages: [{ role: 'user', content: Array.from({ length: 50_000 }, () => ({ type: 'text', text: 'a' })) }] })],
    ['/v1/chat/completions', '{"model":"tiny-vlm","__proto__":{"polluted":1},"messages":[{"role":"user","content":"hi","__proto__":{"role":"x"}}],"max_tokens":2}'],
    ['/v1/chat/completions', JSON.stringify({ model: 'tiny-vlm', messages: [{ role: 'user', content: '\ud800\udfff\ud800' }], max_tokens: 2 })],
    ['/v1/chat/completions', JSON.stringify({ model: 'tiny-vlm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1e15, seed: -(2 ** 53) + 1 })],
    ['/v1/completions', JSON.stringify({ model: 'tiny-vlm', prompt: Array.from({ length: 100_000 }, (_, i) => i % 1000) })],
    ['/v1/completions', JSON.stringify({ model: 'tiny-vlm', prompt: [2, -1, 1.5] })],
    ['/api/chat', JSON.stringify({ model: 'tiny-vlm', messages: [{ role: 'user', content: 'x', images: Array.from({ length: 500 }, () => 'AAAA') }] })],
    ['/api/generate', JSON.stringify({ model: 'tiny-vlm', prompt: 'x', options: { num_predict: 1e300, temperature: -1 } })],
    ['/api/generate', '"just a string"'],
    ['/api/generate', '\u0000\u0001\u0002'],
  ];
  for (const [path, body] of bodies) {
    const started = Date.now();
    const status = await send(path, body);
    if (process.env.GEMMA3_FUZZ_VERBOSE) console.log(`${Date.now() - started} ms ${status} ${body.slice(0, 50)}`);
    assert.ok(ALLOWED.has(status), `${path} ${body.slice(0, 60)} → ${status}`);
  }
  assert.equal(({} as any).polluted, undefined);
});

test(`random mutations of valid requests (${ITERATIONS} cases, seed ${SEED}): client errors or answers, never 500`, async () => {
  const r = mulberry32(SEED);
  const paths = Object.keys(VALID);
  const seen = new Map<number, number>();
  for (let i = 0; i < ITERATIONS; i++) {
    const path = paths[i % paths.length]!;
    let body: any = VALID[path]!();
    const rounds = 1 + Math.floor(r() * 3);
    for (let k = 0; k < rounds; k++) body = mutate(body, r);
    const text = JSON.stringify(body) ?? 'null';
    const status = await send(path, text);
    seen.set(status, (seen.get(status) ?? 0) + 1);
    assert.ok(ALLOWED.has(status), `case ${i} (seed ${SEED}): ${path} ${text.slice(0, 200)} → ${status}`);
  }
  assert.ok((seen.get(400) ?? 0) > 0 && (seen.get(200) ?? 0) > 0, `both refusals and answers occur: ${JSON.stringify([...seen])}`);
  await waitFor(() => server.engine.outstanding === 0, 20_000, 'every request to end');
  assert.equal(server.engine.budget.bytes, 0);
  assert.equal(server.engine.budget.pixels, 0);
  const health: any = await (await fetch(`${server.url}/health`)).json();
  assert.equal(health.status, 'ok');
  assert.equal(await send('/v1/completions', JSON.stringify({ model: 'tiny-vlm', prompt: 'Hi', max_tokens: 2 })), 200);
});
