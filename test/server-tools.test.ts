// Tool calling in Gemma's prompted JSON format through the real `openai` client and Ollama's
// /api/chat, on the tiny fixture (random weights: the grammar alone makes calls parse).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import type OpenAI from 'openai';
import { load, type Gemma3 } from '../src/index.js';
import type { RunningServer } from '../src/server/server.js';
import { ToolCallParser } from '../src/server/tool-calls.js';
import { renderToolConversation, toolGrammar, type ConversationMessage } from '../src/server/tools.js';
import { GrammarEngine } from '../src/grammar/grammar.js';
import { fixturePath } from './helpers.js';
import { client, ndjson, postJson, startTestServer } from './server-helpers.js';

let server: RunningServer;
let openai: OpenAI;
let model: Gemma3;
before(async () => {
  server = await startTestServer({ parallel: 4, context: 1024 });
  openai = client(server);
  model = await load(fixturePath('tiny-text'), { contextLength: 1024 });
});
after(async () => {
  await server?.close();
  model?.dispose();
});

const ajv = new Ajv2020.default({ strict: false });

const WEATHER = {
  type: 'object',
  properties: { city: { enum: ['Paris', 'Oslo', 'Lima'] }, days: { type: 'integer', minimum: 1, maximum: 7 }, unit: { enum: ['C', 'F'] } },
  required: ['city', 'days'],
};
const TIME = { type: 'object', properties: { tz: { type: 'string', pattern: '^[A-Z]{3}$' } }, required: ['tz'] };
const TOOLS = [
  { type: 'function' as const, function: { name: 'get_weather', description: 'The forecast for a city', parameters: WEATHER } },
  { type: 'function' as const, function: { name: 'get_time', description: 'The time in a time zone', parameters: TIME } },
];
const SCHEMA_OF: Record<string, object> = { get_weather: WEATHER, get_time: TIME };
const id = () => server.engine.info.id;

type Choice = 'required' | { type: 'function'; function: { name: string } };

async function call(toolChoice: Choice, seed: number, stream: boolean): Promise<{ finish: string | null; calls: { id: string; name: string; arguments: string }[] }> {
  const body = {
    model: id(), messages: [{ role: 'user' as const, content: 'What is the weather in Paris?' }], tools: TOOLS, tool_choice: toolChoice,
    parallel_tool_calls: false, max_tokens: 200, temperature: seed === 0 ? 0 : 1, seed,
  };
  if (!stream) {
    const r = await openai.chat.completions.create(body);
    const c = r.choices[0]!;
    return { finish: c.finish_reason, calls: (c.message.tool_calls ?? []).map((t) => ({ id: t.id, name: (t as any).function.name, arguments: (t as any).function.arguments })) };
  }
  const s = await openai.chat.completions.create({ ...body, stream: true });
  const calls: { id: string; name: string; arguments: string }[] = [];
  let finish: string | null = null;
  for await (const chunk of s) {
    const c = chunk.choices[0];
    if (!c) continue;
    for (const t of c.delta.tool_calls ?? []) {
      if (t.id) calls[t.index] = { id: t.id, name: t.function?.name ?? '', arguments: t.function?.arguments ?? '' };
      else calls[t.index]!.arguments += t.function?.arguments ?? '';
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { finish, calls };
}

test("tool_choice 'required' and a named function always give a call whose arguments validate (greedy, sampled, streamed)", async () => {
  const runs: Promise<[string, Choice, Awaited<ReturnType<typeof call>>]>[] = [];
  for (let seed = 0; seed < 6; seed++) {
    for (const choice of ['required', { type: 'function', function: { name: 'get_time' } }] as Choice[]) {
      const stream = seed % 2 === 1;
      runs.push(call(choice, seed, stream).then((r) => [`seed ${seed} ${stream ? 'stream' : 'plain'}`, choice, r]));
    }
  }
  for (const [label, choice, r] of await Promise.all(runs)) {
    assert.equal(r.finish, 'tool_calls', label);
    assert.equal(r.calls.length, 1, label);
    const c = r.calls[0]!;
    assert.match(c.id, /^call_[0-9a-f]{24}$/);
    if (typeof choice === 'object') assert.equal(c.name, choice.function.name, label);
    const validate = ajv.compile(SCHEMA_OF[c.name]!);
    assert.ok(validate(JSON.parse(c.arguments)), `${label}: ${c.name}(${c.arguments}) ${ajv.errorsText(validate.errors)}`);
  }
});

test('a streamed call equals the unstreamed one with the same seed', async () => {
  const plain = await call('required', 11, false);
  const streamed = await call('required', 11, true);
  assert.deepEqual(streamed.calls.map((c) => [c.name, c.arguments]), plain.calls.map((c) => [c.name, c.arguments]));
});

const LOOP: ConversationMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Weather in Oslo for 2 days?' },
  { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Oslo","days":2}' }] },
  { role: 'tool', content: '{"forecast": "rain"}', toolCallId: 'call_1' },
];

/** The documented rendering (README "Tool calling"), written out by hand. */
const EXPECTED_PROMPT = '<bos><start_of_turn>user\n' +
  'You have access to functions. If you decide to invoke any of the function(s), you MUST put it in the format of\n' +
  '{"name": function name, "parameters": dictionary of argument name and its value}\n\n' +
  'You SHOULD NOT include any other text in the response if you call a function\n' +
  'To call several functions, write one call per line.\n' +
  JSON.stringify(TOOLS.map((t) => t.function), null, 2) + '\n\n' +
  'Be brief.\n\n' +
  'Weather in Oslo for 2 days?<end_of_turn>\n' +
  '<start_of_turn>model\n' +
  '{"name": "get_weather", "parameters": {"city": "Oslo", "days": 2}}<end_of_turn>\n' +
  '<start_of_turn>user\n' +
  '```tool_output\n{"forecast": "rain"}\n```<end_of_turn>\n' +
  '<start_of_turn>model\n';

test('a multi-turn tool loop renders the documented prompt (exact token ids) and the server answers it end to end', async () => {
  const mode = { tools: TOOLS.map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters })), choice: 'auto' as const, parallel: true };
  const rendered = renderToolConversation(LOOP, mode);
  const ids = model.chatIds(rendered as any);
  const expected = model.tokenizer.encode(EXPECTED_PROMPT, { addBos: false });
  assert.deepEqual(ids, expected);

  // The same conversation through the client: the prompt the server built has exactly those tokens.
  const r = await openai.chat.completions.create({
    model: id(), tools: TOOLS, max_tokens: 8, temperature: 0,
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Weather in Oslo for 2 days?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo","days":2}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"forecast": "rain"}' },
    ],
  });
  assert.equal(r.usage!.prompt_tokens, expected.length);
  assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0]!.finish_reason));

  // A full loop: a required call, its result sent back, then an answer.
  const first = await openai.chat.completions.create({ model: id(), tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, temperature: 0,
    messages: [{ role: 'user', content: 'Weather in Lima?' }] });
  const asked = first.choices[0]!.message;
  assert.equal(first.choices[0]!.finish_reason, 'tool_calls');
  const second = await openai.chat.completions.create({ model: id(), tools: TOOLS, tool_choice: 'none', max_tokens: 6, temperature: 0,
    messages: [{ role: 'user', content: 'Weather in Lima?' }, asked, { role: 'tool', tool_call_id: asked.tool_calls![0]!.id, content: 'sunny' }] });
  assert.equal(second.choices[0]!.message.tool_calls, undefined);
  assert.equal(typeof second.choices[0]!.message.content, 'string');
});

test("tool_choice 'auto': free text is allowed, and once the model writes the call prefix the rest is held to a valid call", async () => {
  const mode = { tools: TOOLS.map((t) => ({ name: t.function.name, parameters: t.function.parameters })), choice: 'auto' as const, parallel: false };
  const engine = GrammarEngine.for(model.tokenizer, model.config.text.vocabSize);
  const V = model.config.text.vocabSize;
  let rng = 7;
  const random = () => ((rng = (Math.imul(rng, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let trial = 0; trial < 4; trial++) {
    const constraint = await engine.constraint(toolGrammar(mode), [1, 106]);
    const ids: number[] = [];
    // The model's own start: text, then the call prefix (each token must be allowed by the mask).
    for (const id of model.tokenizer.encode('Let me look. {"name": ', { addBos: false })) {
      await constraint.prepare();
      const row = new Float32Array(V);
      constraint.apply(row, V);
      assert.notEqual(row[id], -Infinity, `token ${model.tokenizer.piece(id)} allowed in free text`);
      constraint.accept(id);
      ids.push(id);
    }
    // Then random logits (a model with random weights): the mask alone must complete a valid call.
    for (let step = 0; step < 300; step++) {
      await constraint.prepare();
      const row = Float32Array.from({ length: V }, () => random() * 10);
      constraint.apply(row, V);
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i]! > row[best]!) best = i;
      if (best === 1 || best === 106) break;
      constraint.accept(best);
      ids.push(best);
    }
    constraint.dispose();
    const parser = new ToolCallParser();
    const text = model.tokenizer.decode(ids);
    const events = [...parser.push(text), ...parser.end()];
    assert.equal(events.filter((e) => e.kind === 'text').map((e) => (e as { text: string }).text).join(''), 'Let me look. ');
    assert.equal(parser.calls.length, 1, text);
    const c = parser.calls[0]!;
    assert.ok(ajv.compile(SCHEMA_OF[c.name]!)(JSON.parse(c.arguments)), text);
  }
});

test('the call parser: text before a call, a call split at every position, several calls', () => {
  const text = 'Let me check.\n{"name": "get_weather", "parameters": {"city": "Oslo", "note": "a}\\"b"}}\n{"name": "get_time", "parameters": {"tz": "UTC"}}';
  const whole = new ToolCallParser();
  const events = [...whole.push(text), ...whole.end()];
  assert.equal(events.filter((e) => e.kind === 'text').map((e) => (e as { text: string }).text).join(''), 'Let me check.\n');
  assert.deepEqual(whole.calls.map((c) => [c.name, JSON.parse(c.arguments)]), [['get_weather', { city: 'Oslo', note: 'a}"b' }], ['get_time', { tz: 'UTC' }]]);
  for (let cut = 0; cut <= text.length; cut++) {
    const p = new ToolCallParser();
    const ev = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut)), ...p.end()];
    assert.deepEqual(p.calls.map((c) => [c.name, c.arguments]), whole.calls.map((c) => [c.name, c.arguments]), `cut at ${cut}`);
    const args = ev.filter((e) => e.kind === 'arguments' && e.index === 0).map((e) => (e as { text: string }).text).join('');
    assert.equal(args, whole.calls[0]!.arguments);
  }
  const plain = new ToolCallParser();
  assert.equal([...plain.push('{"nam'), ...plain.push('e is x'), ...plain.end()].map((e) => (e as { text: string }).text).join(''), '{"name is x');
  assert.equal(plain.calls.length, 0);
});

test('Ollama /api/chat with tools: calls with arguments as objects, streamed and not', async () => {
  const body = { model: id(), messages: [{ role: 'user', content: 'Weather?' }], tools: TOOLS, options: { temperature: 0, num_predict: 200 } };
  // Ollama has no tool_choice (auto): the random model may answer in text; every call that comes must validate.
  const res = await postJson(server, '/api/chat', { ...body, stream: false });
  assert.equal(res.status, 200);
  const j = await res.json() as { message: { content: string; tool_calls?: { function: { name: string; arguments: object } }[] } };
  for (const c of j.message.tool_calls ?? []) assert.ok(ajv.compile(SCHEMA_OF[c.function.name]!)(c.function.arguments));
  const streamed = await postJson(server, '/api/chat', { ...body, stream: true });
  const lines = ndjson(await streamed.text());
  assert.equal(lines.at(-1).done, true);
  // A tool result in the history renders (role 'tool'), and an earlier call with object arguments too.
  const loop = await postJson(server, '/api/chat', {
    model: id(), stream: false, tools: TOOLS, options: { num_predict: 4 },
    messages: [{ role: 'user', content: 'Weather?' }, { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Oslo', days: 1 } } }] },
      { role: 'tool', content: 'rain' }],
  });
  assert.equal(loop.status, 200);
  const lj = await loop.json() as { prompt_eval_count: number };
  const expected = model.chatIds(renderToolConversation([
    { role: 'user', content: 'Weather?' }, { role: 'assistant', content: '', toolCalls: [{ id: 'x', name: 'get_weather', arguments: '{"city":"Oslo","days":1}' }] },
    { role: 'tool', content: 'rain', toolCallId: '' }],
  { tools: TOOLS.map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters })), choice: 'auto', parallel: true }) as any);
  assert.equal(lj.prompt_eval_count, expected.length);
});

test('bad tools input: 400 naming the field, and the server keeps serving', async () => {
  const base = { model: id(), messages: [{ role: 'user', content: 'x' }], max_tokens: 4 };
  const fn = (f: object) => [{ type: 'function', function: f }];
  const cases: [object, string, RegExp][] = [
    [{ tools: fn({ parameters: WEATHER }) }, 'tools[0].function.name', /name/],
    [{ tools: fn({ name: 'bad name!', parameters: WEATHER }) }, 'tools[0].function.name', /name/],
    [{ tools: fn({ name: 'f', parameters: 'object' }) }, 'tools[0].function.parameters', /object/],
    [{ tools: fn({ name: 'f', parameters: { type: 'array' } }) }, 'tools[0].function.parameters.type', /object/],
    [{ tools: fn({ name: 'f', parameters: { type: 'object', properties: { a: { type: 'string', format: 'phone' } } } }) }, 'tools[0].function.parameters.properties.a.format', /phone/],
    [{ tools: [...fn({ name: 'f' }), ...fn({ name: 'f' })] }, 'tools[1].function.name', /two tools/],
    [{ tools: [{ type: 'retrieval' }] }, 'tools[0].type', /function/],
    [{ tools: fn({ name: 'f' }), tool_choice: { type: 'function', function: { name: 'g' } } }, 'tool_choice.function.name', /'g'/],
    [{ tools: fn({ name: 'f' }), tool_choice: 'sometimes' }, 'tool_choice', /required/],
    [{ tool_choice: 'required' }, 'tool_choice', /tools/],
    [{ tools: fn({ name: 'f' }), response_format: { type: 'json_object' } }, 'response_format', /tools/],
    [{ tools: fn({ name: 'f' }), parallel_tool_calls: 'yes' }, 'parallel_tool_calls', /boolean/],
    [{ messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'r' }] }, 'messages[1].tool_call_id', /tool_call_id/],
    [{ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{nope' } }] }] },
      'messages[0].tool_calls[0].function.arguments', /JSON/],
    [{ messages: [{ role: 'user', content: 'x', tool_calls: [] }] }, 'messages[0].tool_calls', /assistant/],
  ];
  for (const [extra, param, message] of cases) {
    const res = await postJson(server, '/v1/chat/completions', { ...base, ...extra });
    assert.equal(res.status, 400, JSON.stringify(extra));
    const e = (await res.json() as { error: { param: string; message: string } }).error;
    assert.equal(e.param, param, `${JSON.stringify(extra)}: ${e.message}`);
    assert.match(e.message, message);
  }
  const ollama = await postJson(server, '/api/chat', { model: id(), stream: false, messages: [{ role: 'user', content: 'x' }], tools: fn({ name: 'f', parameters: 7 }) });
  assert.equal(ollama.status, 400);
  assert.match((await ollama.json() as { error: string }).error, /parameters/);
  const ok = await openai.chat.completions.create({ ...base, messages: [{ role: 'user', content: 'x' }] });
  assert.ok(ok.choices[0]);
});
