// The grammar options of chat(), complete() and generate(): `responseFormat` (as OpenAI names it)
// or `grammar` (EBNF text), turned into the GrammarSpec a reply is held to.
import { GemmaError, invalidArgument } from '../errors.js';
import type { GrammarSpec } from './grammar.js';
import { checkJsonSchema } from './json-schema.js';

export type ResponseFormat =
  | { type: 'text' }
  /** Any JSON object. */
  | { type: 'json_object' }
  /** A value valid for `schema` (see README for the supported keywords). */
  | { type: 'json_schema'; schema: Record<string, unknown> | boolean };

export interface GrammarOptions {
  /** Constrains the reply to JSON: any object, or a value of a JSON schema. */
  responseFormat?: ResponseFormat;
  /**
   * Constrains the reply to a grammar in xgrammar's EBNF (the GBNF style of llama.cpp: rules
   * `name ::= ...`, the start rule named `root`, "literals", [classes], * + ? and {m,n}).
   */
  grammar?: string;
  /** A prepared grammar (advanced: structural tags for tool calls); wins over the two above. */
  grammarSpec?: GrammarSpec;
}

/** Longest grammar or schema text accepted (compiling is the costly part; this bounds it). */
export const MAX_GRAMMAR_CHARS = 100_000;

/** The spec the options ask for, or null; GemmaError INVALID_ARGUMENT naming the option when malformed. */
export function grammarSpecOf(o: GrammarOptions): GrammarSpec | null {
  if (o.grammarSpec != null) return o.grammarSpec;
  const { responseFormat: rf, grammar } = o;
  if (rf != null && grammar != null) throw new GemmaError('INVALID_ARGUMENT', 'give either responseFormat or grammar, not both');
  if (grammar != null) {
    if (typeof grammar !== 'string' || grammar.trim() === '') throw invalidArgument('grammar', 'a non-empty EBNF string', grammar);
    if (grammar.length > MAX_GRAMMAR_CHARS) throw invalidArgument('grammar', `at most ${MAX_GRAMMAR_CHARS} characters`, `${grammar.length} characters`);
    if (!/(^|\n)\s*root\s*::=/.test(grammar)) throw new GemmaError('INVALID_ARGUMENT', "grammar has no 'root ::= ...' rule (the start rule must be named root)");
    return { kind: 'ebnf', grammar };
  }
  if (rf == null) return null;
  if (typeof rf !== 'object' || Array.isArray(rf)) throw invalidArgument('responseFormat', "an object { type: 'text' | 'json_object' | 'json_schema' }", rf);
  switch (rf.type) {
    case 'text':
      return null;
    case 'json_object':
      return { kind: 'json_schema', schema: '{"type":"object"}', open: true };
    case 'json_schema': {
      checkJsonSchema(rf.schema, 'responseFormat.schema');
      const schema = JSON.stringify(rf.schema);
      if (schema.length > MAX_GRAMMAR_CHARS) throw invalidArgument('responseFormat.schema', `at most ${MAX_GRAMMAR_CHARS} characters of JSON`, `${schema.length} characters`);
      return { kind: 'json_schema', schema };
    }
    default:
      throw invalidArgument('responseFormat.type', "'text', 'json_object' or 'json_schema'", (rf as { type: unknown }).type);
  }
}
