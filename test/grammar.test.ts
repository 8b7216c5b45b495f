// Constrained decoding in the library: xgrammar loads from dist/, its masks hold the tiny model
// (random weights: only the grammar makes the output valid) to JSON schemas and EBNF grammars,
// greedy and sampled; schemas it cannot enforce are refused naming the keyword.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import { collect, load, type Gemma3 } from '../src/index.js';
import { GrammarEngine } from '../src/grammar/grammar.js';
import { checkJsonSchema, SchemaError, SUPPORTED_FORMATS } from '../src/grammar/json-schema.js';
import { xgrammar } from '../src/grammar/xgrammar-module.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import { loadTokenizer } from '../src/tokenizer/tokenizer.js';
import { fixturePath, throwsGemma } from './helpers.js';

let model: Gemma3;
before(async () => {
  model = await load(fixturePath('tiny-text'), { contextLength: 512 });
});
after(() => model?.dispose());

const ajv = new Ajv2020.default({ strict: false });

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    role: { enum: ['admin', 'user', 'guest'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 6 }, minItems: 1, maxItems: 3 },
  },
  required: ['name', 'age', 'role', 'tags'],
};

test('xgrammar loads from the built package (UMD bundle under an ES package) and parses a schema', async () => {
  const xg = xgrammar();
  assert.equal(typeof xg.GrammarCompiler.createGrammarCompiler, 'function');
  const ebnf = await xg.Testings._jsonSchemaToEBNF(JSON.stringify({ type: 'integer', minimum: 1, maximum: 3 }), false, -1);
  assert.match(ebnf, /root ::= /);
  assert.doesNotMatch(ebnf.split('\n').find((l) => l.startsWith('root ::='))!, /basic_integer/, 'the range is part of the grammar');
});

test('a JSON schema holds random weights to valid JSON, greedy and sampled, with several seeds', async () => {
  const validate = ajv.compile(PERSON);
  let stopped = 0;
  const runs = [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1, seed: 2 }, { temperature: 1.5, seed: 3, topK: 50 }];
  for (const o of runs) {
    const r = await collect(model.chat([{ role: 'user', content: 'A person, please.' }], { ...o, maxTokens: 120, responseFormat: { type: 'json_schema', schema: PERSON } }));
    if (r.finishReason !== 'stop') continue;
    stopped++;
    const value = JSON.parse(r.text);
    assert.ok(validate(value), `${r.text}: ${ajv.errorsText(validate.errors)}`);
  }
  assert.ok(stopped >= 3, `${stopped} of ${runs.length} replies finished`);
});

test('json_object gives a JSON object; an EBNF grammar gives one of its strings', async () => {
  const r = await collect(model.chat([{ role: 'user', content: 'JSON!' }], { temperature: 1, seed: 5, maxTokens: 200, responseFormat: { type: 'json_object' } }));
  if (r.finishReason === 'stop') {
    const v = JSON.parse(r.text);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
  } else assert.match(r.text, /^\{/);
  const grammar = 'root ::= answer " " digit\nanswer ::= "yes" | "no" | "maybe"\ndigit ::= [0-9]';
  for (const seed of [1, 2, 3]) {
    const g = await collect(model.chat([{ role: 'user', content: 'Well?' }], { temperature: 1, seed, maxTokens: 10, grammar }));
    assert.equal(g.finishReason, 'stop');
    assert.match(g.text, /^(yes|no|maybe) [0-9]$/);
  }
});

test('compiled grammars are cached by their text', async () => {
  const engine = GrammarEngine.for(model.tokenizer, model.config.text.vocabSize);
  const spec = { kind: 'json_schema' as const, schema: JSON.stringify({ type: 'object', properties: { x: { type: 'boolean' } }, required: ['x'] }) };
  const first = engine.compile(spec);
  await first;
  assert.equal(engine.compile({ ...spec }), first, 'the same compiled grammar for an equal spec');
});

test('keywords xgrammar would ignore, and schemas that would abort it, are refused naming the keyword', () => {
  const refused: [unknown, string, string][] = [
    [{ type: 'integer', multipleOf: 3 }, 'multipleOf', ''],
    [{ type: 'object', properties: { a: { type: 'array', uniqueItems: true } } }, 'uniqueItems', 'properties.a.uniqueItems'],
    [{ not: { type: 'string' } }, 'not', 'not'],
    [{ type: 'object', if: {}, then: {} }, 'if', 'if'],
    [{ type: 'array', contains: { type: 'integer' } }, 'contains', 'contains'],
    [{ allOf: [{ type: 'object' }, { required: ['a'] }] }, 'allOf', 'allOf'],
    [{ type: 'strnig' }, 'strnig', 'type'],
    [{ $ref: '#/$defs/missing' }, 'missing', '$ref'],
    [{ $ref: 'https://example.com/s.json' }, 'local', '$ref'],
    [{ type: 'string', pattern: '(?<=a)b' }, 'lookahead and lookbehind', 'pattern'],
    [{ type: 'string', pattern: '[a-' }, 'not a valid regular expression', 'pattern'],
    [{ type: 'string', pattern: '^[a-z]+$', maxLength: 4 }, 'maxLength', 'maxLength'],
    [{ type: 'string', format: 'date', maxLength: 4 }, 'maxLength', 'maxLength'],
    [{ type: 'string', format: 'credit-card' }, 'credit-card', 'format'],
    [{ type: 'array', minItems: 3, maxItems: 2 }, 'minItems', 'minItems'],
    [{ type: 'object', properties: {}, required: ['a'], additionalProperties: false }, "'a' is required", 'required'],
    [false, 'accepts no value', ''],
    ['{"type": "object"}', 'JSON schema object', ''],
  ];
  for (const [schema, fragment, path] of refused) {
    assert.throws(() => checkJsonSchema(schema), (e: unknown) => {
      assert.ok(e instanceof SchemaError, String(e));
      assert.ok(e.message.includes(fragment), `${JSON.stringify(schema)}: ${e.message}`);
      if (path) assert.equal(e.path, path);
      return true;
    });
  }
  throwsGemma(() => model.chat([{ role: 'user', content: 'x' }], { responseFormat: { type: 'json_schema', schema: { type: 'number', multipleOf: 2 } } }),
    'INVALID_ARGUMENT', 'multipleOf');
  throwsGemma(() => model.chat([{ role: 'user', content: 'x' }], { grammar: 'start ::= "a"' }), 'INVALID_ARGUMENT', 'root');
  throwsGemma(() => model.chat([{ role: 'user', content: 'x' }], { grammar: 'root ::= "a"', responseFormat: { type: 'json_object' } }), 'INVALID_ARGUMENT', 'not both');
});

test('every format the checker allows is enforced by xgrammar (not left as any string)', async () => {
  const xg = xgrammar();
  for (const format of SUPPORTED_FORMATS) {
    const ebnf = await xg.Testings._jsonSchemaToEBNF(JSON.stringify({ type: 'string', format }), false, -1);
    const root = ebnf.split('\n').filter((l) => !l.startsWith('basic_')).join('\n');
    assert.doesNotMatch(root, /root ::= basic_string/, `${format} must have its own grammar`);
  }
});

test('an EBNF grammar xgrammar cannot parse is an INVALID_ARGUMENT error, and the engine keeps working', async () => {
  await assert.rejects(collect(model.chat([{ role: 'user', content: 'x' }], { grammar: 'root ::= "a" undefined_rule' })),
    (e: Error) => /grammar could not be compiled: EBNF parser error .*undefined_rule/.test(e.message));
  const r = await collect(model.chat([{ role: 'user', content: 'x' }], { grammar: 'root ::= "ok"', maxTokens: 5 }));
  assert.equal(r.text, 'ok');
});

test('a GGUF model (vocabulary from its metadata) is constrained the same way', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemma3-grammar-'));
  try {
    const gguf = join(dir, 'tiny.gguf');
    convertCheckpoint(fixturePath('tiny-text'), gguf, { type: 'bf16' });
    const fromGguf = await loadTokenizer(gguf);
    // The vocabulary xgrammar is given is the same from both files: pieces and special flags.
    const n = Math.min(fromGguf.size, model.tokenizer.size, 262144);
    for (let id = 0; id < n; id++) {
      assert.equal(fromGguf.isSpecial(id), model.tokenizer.isSpecial(id), `special flag of ${id}`);
      if (!fromGguf.isSpecial(id)) assert.equal(fromGguf.piece(id), model.tokenizer.piece(id), `piece ${id}`);
    }
    const ggufModel = await load(gguf, { contextLength: 256 });
    try {
      const validate = ajv.compile(PERSON);
      const r = await collect(ggufModel.chat([{ role: 'user', content: 'A person.' }], { temperature: 1, seed: 4, maxTokens: 120, responseFormat: { type: 'json_schema', schema: PERSON } }));
      if (r.finishReason === 'stop') assert.ok(validate(JSON.parse(r.text)), r.text);
      else assert.match(r.text, /^\{"name": "/);
    } finally {
      ggufModel.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
