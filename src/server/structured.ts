// Structured output on the HTTP side: OpenAI `response_format` and Ollama `format` checked into
// the library's grammar options. Schemas are checked here (400 naming the keyword, before any
// work); the worker compiles them (a compile failure is a 400 on `param` too).
import { MAX_GRAMMAR_CHARS, type GrammarOptions } from '../grammar/options.js';
import { checkJsonSchema, SchemaError } from '../grammar/json-schema.js';
import { describe, invalidParam, wrongType } from './api-error.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Grammar options plus the request field they came from (named by errors found in the worker). */
export type StructuredOptions = GrammarOptions & { grammarParam?: string };

/** OpenAI `response_format`: text, json_object, or json_schema { name, description?, schema?, strict? }. */
export function parseResponseFormat(v: unknown): StructuredOptions {
  if (v == null) return {};
  if (!isObj(v)) throw wrongType('response_format', "an object { type: 'text' | 'json_object' | 'json_schema' }", v);
  switch (v.type) {
    case 'text':
      return {};
    case 'json_object':
      return { responseFormat: { type: 'json_object' }, grammarParam: 'response_format' };
    case 'json_schema': {
      const js = v.json_schema;
      if (!isObj(js)) throw wrongType('response_format.json_schema', 'an object { name, schema, strict }', js);
      if (typeof js.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name)) {
        throw wrongType('response_format.json_schema.name', 'a name of 1 to 64 letters, digits, _ or -', js.name);
      }
      if (js.description != null && typeof js.description !== 'string') throw wrongType('response_format.json_schema.description', 'a string', js.description);
      if (js.strict != null && typeof js.strict !== 'boolean') throw wrongType('response_format.json_schema.strict', 'a boolean', js.strict);
      if (js.schema == null) return { responseFormat: { type: 'json_object' }, grammarParam: 'response_format.json_schema' };
      const param = 'response_format.json_schema.schema';
      return { responseFormat: { type: 'json_schema', schema: checkedSchema(js.schema, param) }, grammarParam: param };
    }
    default:
      throw invalidParam('response_format.type', `'response_format.type' must be 'text', 'json_object' or 'json_schema', got ${describe(v.type)}`);
  }
}

/** Ollama `format`: "json" (any JSON object) or a JSON schema object; '' = none. */
export function parseOllamaFormat(v: unknown): StructuredOptions {
  if (v == null || v === '') return {};
  if (v === 'json') return { responseFormat: { type: 'json_object' }, grammarParam: 'format' };
  if (!isObj(v)) throw wrongType('format', '"json" or a JSON schema object', v);
  return { responseFormat: { type: 'json_schema', schema: checkedSchema(v, 'format') }, grammarParam: 'format' };
}

/** The schema, or a 400 naming the keyword's path under `param`. */
export function checkedSchema(schema: unknown, param: string): Record<string, unknown> {
  if (!isObj(schema)) throw wrongType(param, 'a JSON schema object', schema);
  if (JSON.stringify(schema).length > MAX_GRAMMAR_CHARS) throw invalidParam(param, `'${param}' is larger than ${MAX_GRAMMAR_CHARS} characters of JSON`);
  try {
    checkJsonSchema(schema, param);
  } catch (err) {
    if (err instanceof SchemaError) throw invalidParam(err.path ? `${param}.${err.path}` : param, err.message, 'unsupported_schema');
    throw err;
  }
  return schema;
}
