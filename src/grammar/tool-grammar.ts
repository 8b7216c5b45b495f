// The grammar of tool calls in the format Google's "Function calling with Gemma" prompt asks for:
// `{"name": "get_weather", "parameters": {"city": "Paris"}}`, one call per line when several are
// allowed. Built as an xgrammar structural tag: each tool is a tag whose begin is the literal
// prefix with its name and whose content is its parameters' JSON schema (one-line JSON, as the
// JSON-schema grammars), so a call always parses and its arguments always match.
import { xgrammar } from './xgrammar-module.js';

export interface ToolGrammarSpec {
  kind: 'tool_calls';
  /** Each tool's name and parameters schema (JSON text). */
  tools: { name: string; parameters: string }[];
  /**
   * auto: free text, or a call once the model writes its opening (then the call is held to the
   * grammar); required: one call or more and nothing else; the named case is `required` with one tool.
   */
  mode: 'auto' | 'required';
  /** Several calls (one per line) allowed. */
  parallel: boolean;
}

/** What opens a call (the trigger of the auto mode) and the full prefix of a call to `name`. */
export const CALL_TRIGGER = '{"name": "';
export const callPrefix = (name: string): string => `${CALL_TRIGGER}${name}", "parameters": `;
export const CALL_END = '}';
export const CALL_SEPARATOR = '\n';

/** The structural tag (JSON text) xgrammar compiles for a tool spec. */
export async function toolCallTag(spec: ToolGrammarSpec): Promise<string> {
  const xg = xgrammar();
  const tags = [];
  for (const tool of spec.tools) {
    const grammar = await xg.Testings._jsonSchemaToEBNF(tool.parameters, false, -1, undefined, true);
    tags.push({ type: 'tag', begin: callPrefix(tool.name), content: { type: 'grammar', grammar }, end: CALL_END });
  }
  const format = spec.mode === 'auto'
    ? { type: 'triggered_tags', triggers: [CALL_TRIGGER.trimEnd().slice(0, -1)], tags, at_least_one: false, stop_after_first: !spec.parallel }
    : tags.length === 1 && !spec.parallel
      ? tags[0]
      : { type: 'tags_with_separator', tags, separator: CALL_SEPARATOR, at_least_one: true, stop_after_first: !spec.parallel };
  return JSON.stringify({ type: 'structural_tag', format });
}
