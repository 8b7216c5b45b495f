// Seeded mutations of requests that use the agent features (tools, response_format, Ollama
// format and tools, logprobs, n, logit_bias) and the introspection endpoints: a client error or
// an answer, never a 500 or a hang, and nothing held afterwards. Schemas are where xgrammar
// would abort on malformed input, so they are mutated deepest.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningServer } from '../src/server/server.js';
import { startTestServer, waitFor } from './server-helpers.js';
import { mulberry32 } from './fuzz-mutate.js';

const SEED = Number(process.env.GEMMA3_FUZZ_SEED ?? 13);
const ITERATIONS = Number(process.env.GEMMA3_FUZZ_ITERATIONS ?? 90);
const ALLOWED = new Set([200, 400, 404, 413, 429]);

let server: RunningServer;
before(async () => {
  server = await startTestServer({ parallel: 2, context: 256 });
});
after(async () => server?.close());

const SCHEMA = {
  type: 'object',
  properties: { a: { enum: ['x', 'y'] }, b: { type: 'integer', minimum: 0, maximum: 9 }, c: { type: 'array', items: { type: 'boolean' }, maxItems: 2 }, d: { $ref: '#/$defs/d' } },
  required: ['a', 'b'],
  $defs: { d: { type: 'string', pattern: '^[a-z]{1,3}$' } },
};
const TOOL = { type: 'function', function: { name: 'f', description: 'd', parameters: SCHEMA } };

const VALID: [string, () => any][] = [
  ['/v1/chat/completions', () => ({ model: 'tiny-text', max_tokens: 30, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 's', schema: SCHEMA } } })],
  ['/v1/chat/completions', () => ({
    model: 'tiny-text', max_tokens: 30, tools: [TOOL], tool_choice: 'required', parallel_tool_calls: false,
    messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":"x","b":1}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'ok' }],
  })],
  ['/v1/chat/completions', () => ({ model: 'tiny-text', max_tokens: 3, n: 2, logprobs: true, top_logprobs: 3, logit_bias: { 100: 5 }, presence_penalty: 0.5, messages: [{ role: 'user', content: 'x' }] })],
  ['/v1/completions', () => ({ model: 'tiny-text', prompt: 'x', max_tokens: 3, logprobs: 2, frequency_penalty: 1 })],
  ['/api/chat', () => ({ model: 'tiny-text', stream: false, format: SCHEMA, options: { num_predict: 30, num_ctx: 512 }, messages: [{ role: 'user', content: 'x' }] })],
  ['/api/chat', () => ({ model: 'tiny-text', stream: true, tools: [TOOL], options: { num_predict: 10 }, messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'r' }] })],
  ['/api/generate', () => ({ model: 'tiny-text', prompt: 'x', format: 'json', options: { num_predict: 10 } })],
  ['/api/show', () => ({ model: 'tiny-text' })],
  ['/tokenize', () => ({ content: 'hello', add_special: true, with_pieces: true })],
  ['/detokenize', () => ({ tokens: [2, 100, 200] })],
];

const HOSTILE: unknown[] = [
  null, true, -1, 0, 1e308, 2 ** 53, 1.5, '', '\u0000', '\ud800', 'x'.repeat(5000), [], [[]], {}, 'constructor', '__proto__',
  '#/$defs/nope', 'strnig', '(?<=a)b', '[a-', '^(a)\\1$', { type: 'strnig' }, { $ref: '#/nope' }, { type: 'object', required: ['zz'], additionalProperties: false },
  { anyOf: [] }, { enum: [] }, { type: [] }, { pattern: '\\p{L}' }, { format: 'date', maxLength: 2 }, { minItems: 5, maxItems: 1 }, { not: {} },
  { type: 'array', items: { $ref: '#' } }, { $defs: { x: { $ref: '#/$defs/x' } }, $ref: '#/$defs/x' },
];
const KEYS = ['type', 'properties', 'items', 'enum', '$ref', 'pattern', 'format', 'minimum', 'required', 'anyOf', 'tools', 'tool_choice',
  'response_format', 'format', 'n', 'logprobs', 'top_logprobs', 'logit_bias', 'tool_calls', 'tool_call_id', 'arguments', 'name', 'parameters'];

function mutate(v: any, r: () => number, depth = 0): any {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  if (depth > 7 || v === null || typeof v !== 'object' || r() < 0.15) return r() < 0.6 ? pick(HOSTILE) : v;
  if (Array.isArray(v)) {
    const out = [...v];
    const op = r();
    if (op < 0.2 && out.length) out.splice(Math.floor(r() * out.length), 1);
    else if (op < 0.35) out.push(pick(HOSTILE));
    else if (out.length) {
      const i = Math.floor(r() * out.length);
      out[i] = mutate(out[i], r, depth + 1);
    }
    return out;
  }
  const out: Record<string, unknown> = { ...v };
  const keys = Object.keys(out);
  const op = r();
  if (op < 0.15 && keys.length) delete out[pick(keys)];
  else if (op < 0.3) out[pick(KEYS)] = pick(HOSTILE);
  else if (keys.length) {
    const k = pick(keys);
    out[k] = mutate(out[k], r, depth + 1);
  }
  return out;
}

test(`agent features: ${ITERATIONS} seeded mutations (seed ${SEED}) are answered or refused, never a 500`, async () => {
  const r = mulberry32(SEED);
  const seen = new Map<number, number>();
  for (let i = 0; i < ITERATIONS; i++) {
    const [path, make] = VALID[i % VALID.length]!;
    let body = make();
    const rounds = 1 + Math.floor(r() * 3);
    for (let k = 0; k < rounds; k++) body = mutate(body, r);
    const text = JSON.stringify(body) ?? 'null';
    const res = await fetch(server.url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text, signal: AbortSignal.timeout(60_000) });
    const reply = await res.text();
    seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
    assert.ok(ALLOWED.has(res.status), `case ${i}: ${path} ${text.slice(0, 300)} → ${res.status} ${reply.slice(0, 300)}`);
  }
  assert.ok((seen.get(400) ?? 0) > 0 && (seen.get(200) ?? 0) > 0, `both refusals and answers: ${JSON.stringify([...seen])}`);
  await waitFor(() => server.engine.outstanding === 0, 30_000, 'every request to end');
  assert.equal(server.engine.budget.bytes, 0);
  const health = await (await fetch(`${server.url}/health`)).json() as { status: string };
  assert.equal(health.status, 'ok');
  // Grammars still work after all that.
  const ok = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-text', max_tokens: 10, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'b', schema: { type: 'boolean' } } } }),
  });
  const j = await ok.json() as { choices: { message: { content: string } }[] };
  assert.ok(['true', 'false'].includes(j.choices[0]!.message.content));
});
