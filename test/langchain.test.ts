// A real agent framework against the server: LangChain.js ChatOpenAI with bindTools and
// withStructuredOutput (JSON schema and function-calling methods), on the tiny fixture.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import Ajv2020 from 'ajv/dist/2020.js';
import type { RunningServer } from '../src/server/server.js';
import { startTestServer } from './server-helpers.js';

let server: RunningServer;
let llm: ChatOpenAI;
before(async () => {
  server = await startTestServer({ parallel: 2, context: 1024 });
  llm = new ChatOpenAI({
    model: server.engine.info.id, apiKey: 'no-key', temperature: 0, maxTokens: 200, maxRetries: 0,
    configuration: { baseURL: `${server.url}/v1` },
  });
});
after(async () => server?.close());

const ajv = new Ajv2020.default({ strict: false });

const LOOKUP = {
  type: 'object',
  properties: { sku: { type: 'string', pattern: '^[A-Z]{2}[0-9]{3}$' }, quantity: { type: 'integer', minimum: 1, maximum: 9 } },
  required: ['sku', 'quantity'],
  additionalProperties: false,
};

test('bindTools with a forced tool: the AIMessage carries a parsed call, and the tool loop continues', async () => {
  const tool = { type: 'function' as const, function: { name: 'check_stock', description: 'Stock of an item', parameters: LOOKUP } };
  const bound = llm.bindTools([tool], { tool_choice: 'required', parallel_tool_calls: false });
  const question = new HumanMessage('How many AB123 are left?');
  const ai = await bound.invoke([question]);
  assert.equal(ai.tool_calls?.length, 1);
  const call = ai.tool_calls![0]!;
  assert.equal(call.name, 'check_stock');
  assert.ok(ajv.compile(LOOKUP)(call.args), JSON.stringify(call.args));
  // Send the result back; LangChain renders the assistant call and the tool message.
  const answer = await llm.bindTools([tool]).invoke([question, ai, new ToolMessage({ tool_call_id: call.id!, content: '7 left' })], { tool_choice: 'none' } as any);
  assert.equal(typeof answer.content, 'string');
  assert.equal(answer.tool_calls?.length ?? 0, 0);
});

test('withStructuredOutput gives objects that validate, through response_format and through function calling', async () => {
  const schema = {
    title: 'Review', description: 'A product review',
    type: 'object',
    properties: { rating: { type: 'integer', minimum: 1, maximum: 5 }, verdict: { enum: ['buy', 'skip'] }, tags: { type: 'array', items: { enum: ['cheap', 'solid', 'loud'] }, maxItems: 2 } },
    required: ['rating', 'verdict', 'tags'],
    additionalProperties: false,
  };
  const validate = ajv.compile(schema);
  for (const method of ['jsonSchema', 'functionCalling'] as const) {
    const structured = llm.withStructuredOutput(schema, { name: 'review', method });
    const value = await structured.invoke('Review this kettle.');
    assert.ok(validate(value), `${method}: ${JSON.stringify(value)} ${ajv.errorsText(validate.errors)}`);
  }
});
