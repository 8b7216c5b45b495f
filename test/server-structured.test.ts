// Structured output through the real `openai` client (and Ollama's `format`) against the server
// on the tiny fixture. Its weights are random, so only the grammar makes a reply valid JSON:
// every reply that finishes with "stop" must parse and validate (ajv) against its schema,
// greedy and sampled, streamed and not.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import type OpenAI from 'openai';
import type { RunningServer } from '../src/server/server.js';
import { client, ndjson, postJson, startTestServer } from './server-helpers.js';
import { SCHEMAS, type NamedSchema } from './structured-schemas.js';

let server: RunningServer;
let openai: OpenAI;
before(async () => {
  server = await startTestServer({ parallel: 4, context: 512 });
  openai = client(server);
});
after(async () => server?.close());

const ajv = new Ajv2020.default({ strict: false, validateFormats: true, formats: FORMATS() });

/** The formats the schemas use, checked as JSON Schema defines them (ajv-formats is not installed). */
function FORMATS(): Record<string, RegExp> {
  return {
    date: /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/,
    time: /^([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/i,
    uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  };
}

interface Outcome {
  name: string;
  mode: string;
  finish: string | null;
  text: string;
}

const MAX_TOKENS = 160;

async function ask(s: NamedSchema, mode: { stream: boolean; temperature: number; seed: number }): Promise<Outcome> {
  const body = {
    model: server.engine.info.id,
    messages: [{ role: 'user' as const, content: `Fill in the ${s.name.replace(/_/g, ' ')}.` }],
    max_tokens: MAX_TOKENS, temperature: mode.temperature, seed: mode.seed,
    response_format: { type: 'json_schema' as const, json_schema: { name: s.name, schema: s.schema, strict: true } },
  };
  const label = `${mode.stream ? 'stream' : 'plain'} T=${mode.temperature}`;
  if (!mode.stream) {
    const r = await openai.chat.completions.create(body);
    return { name: s.name, mode: label, finish: r.choices[0]!.finish_reason, text: r.choices[0]!.message.content ?? '' };
  }
  const stream = await openai.chat.completions.create({ ...body, stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { name: s.name, mode: label, finish, text };
}

test(`${SCHEMAS.length} JSON schemas: every reply that stops parses and validates (greedy and sampled, streamed and not)`, async () => {
  assert.ok(SCHEMAS.length >= 30);
  const outcomes: Outcome[] = [];
  // Four schemas at a time (the server decodes them together); each asked twice, covering all four
  // combinations of streaming and sampling across the set.
  for (let i = 0; i < SCHEMAS.length; i += 4) {
    const batch = SCHEMAS.slice(i, i + 4);
    const results = await Promise.all(batch.flatMap((s, j) => {
      const k = i + j;
      return [
        ask(s, { stream: k % 2 === 0, temperature: 0, seed: k }),
        ask(s, { stream: k % 2 === 1, temperature: 1, seed: k }),
      ];
    }));
    outcomes.push(...results);
  }
  let stopped = 0;
  const cut: string[] = [];
  for (const o of outcomes) {
    const schema = SCHEMAS.find((s) => s.name === o.name)!.schema;
    if (o.finish !== 'stop') {
      assert.equal(o.finish, 'length', `${o.name} ${o.mode}`);
      cut.push(`${o.name} (${o.mode})`);
      continue;
    }
    stopped++;
    let value: unknown;
    try {
      value = JSON.parse(o.text);
    } catch (err) {
      assert.fail(`${o.name} ${o.mode}: not JSON: ${o.text} (${(err as Error).message})`);
    }
    const validate = ajv.compile(schema);
    assert.ok(validate(value), `${o.name} ${o.mode}: ${o.text}: ${ajv.errorsText(validate.errors)}`);
  }
  const modes = new Set(outcomes.filter((o) => o.finish === 'stop').map((o) => o.mode));
  assert.equal(modes.size, 4, `valid replies in every mode: ${[...modes].join(', ')}`);
  // Report the replies that hit max_tokens (a random model may ramble inside an array or number).
  if (cut.length) console.log(`# ${cut.length} of ${outcomes.length} replies reached max_tokens=${MAX_TOKENS}: ${cut.join(', ')}`);
  assert.ok(stopped >= 0.8 * outcomes.length, `${stopped} of ${outcomes.length} replies finished with stop`);
});

test('json_object mode gives a JSON object; Ollama format "json" and a schema format are enforced too', async () => {
  const r = await openai.chat.completions.create({
    model: server.engine.info.id, messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 200, temperature: 0.7, seed: 4,
    response_format: { type: 'json_object' },
  });
  const text = r.choices[0]!.message.content!;
  if (r.choices[0]!.finish_reason === 'stop') {
    const v = JSON.parse(text);
    assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), text);
  } else assert.match(text, /^\{/);
  // The same request without a format: the random weights write no JSON (so the grammar is what makes it).
  const free = await openai.chat.completions.create({
    model: server.engine.info.id, messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 40, temperature: 0.7, seed: 4,
  });
  assert.throws(() => JSON.parse(free.choices[0]!.message.content!));

  const schema = SCHEMAS.find((s) => s.name === 'weather')!.schema;
  const validate = ajv.compile(schema);
  const chat = await postJson(server, '/api/chat', {
    model: server.engine.info.id, stream: false, format: schema, options: { temperature: 0, num_predict: 120 },
    messages: [{ role: 'user', content: 'Weather?' }],
  });
  assert.equal(chat.status, 200);
  const cj = await chat.json() as { message: { content: string }; done_reason: string };
  assert.equal(cj.done_reason, 'stop');
  assert.ok(validate(JSON.parse(cj.message.content)), cj.message.content);

  const gen = await postJson(server, '/api/generate', {
    model: server.engine.info.id, prompt: 'Weather?', format: schema, options: { temperature: 1, seed: 9, num_predict: 120 },
  });
  assert.equal(gen.status, 200);
  const lines = ndjson(await gen.text());
  const last = lines.at(-1);
  assert.equal(last.done, true);
  const text2 = lines.map((l) => l.response ?? '').join('');
  if (last.done_reason === 'stop') assert.ok(validate(JSON.parse(text2)), text2);
});

test('bad response_format and format: 400 naming the field or keyword, and the server keeps serving', async () => {
  const base = { model: server.engine.info.id, messages: [{ role: 'user', content: 'x' }], max_tokens: 4 };
  const cases: [unknown, string, RegExp][] = [
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { n: { type: 'integer', multipleOf: 2 } } } } },
      'response_format.json_schema.schema.properties.n.multipleOf', /multipleOf/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'strnig' } } }, 'response_format.json_schema.schema.type', /strnig/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/gone' } } }, 'response_format.json_schema.schema.$ref', /does not resolve/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: 'not a schema' } }, 'response_format.json_schema.schema', /JSON schema object/],
    [{ type: 'json_schema', json_schema: { schema: { type: 'object' } } }, 'response_format.json_schema.name', /name/],
    [{ type: 'json_schema' }, 'response_format.json_schema', /object/],
    [{ type: 'xml' }, 'response_format.type', /xml/],
    ['json', 'response_format', /object/],
  ];
  for (const [rf, param, message] of cases) {
    const res = await postJson(server, '/v1/chat/completions', { ...base, response_format: rf });
    assert.equal(res.status, 400, JSON.stringify(rf));
    const e = (await res.json() as { error: { param: string; message: string } }).error;
    assert.equal(e.param, param, JSON.stringify(rf));
    assert.match(e.message, message);
  }
  const ollama = await postJson(server, '/api/chat', {
    model: server.engine.info.id, stream: false, messages: [{ role: 'user', content: 'x' }], format: { type: 'array', uniqueItems: true },
  });
  assert.equal(ollama.status, 400);
  assert.match((await ollama.json() as { error: string }).error, /uniqueItems/);
  const wrong = await postJson(server, '/api/generate', { model: server.engine.info.id, prompt: 'x', format: 'yaml' });
  assert.equal(wrong.status, 400);
  assert.match((await wrong.json() as { error: string }).error, /format/);
  // Still serving, grammar included.
  const ok = await openai.chat.completions.create({ ...base, messages: [{ role: 'user', content: 'x' }], max_tokens: 20,
    response_format: { type: 'json_schema', json_schema: { name: 'b', schema: { type: 'boolean' } } } });
  assert.ok(['true', 'false'].includes(ok.choices[0]!.message.content!), ok.choices[0]!.message.content!);
});
