// Tool calling for Gemma 3, which has no tool tokens: the prompt of Google's "Function calling
// with Gemma" (JSON variant) offers the tools, earlier calls and results are written back into the
// conversation as text, and a grammar holds the reply to the call format (tool-grammar.ts). The
// exact text is documented in README.md ("Tool calling"); test/server-tools.test.ts pins it.
import type { ToolGrammarSpec } from '../grammar/tool-grammar.js';
import { callPrefix, CALL_END } from '../grammar/tool-grammar.js';
import { describe, invalidParam, wrongType } from './api-error.js';
import type { JobMessage, JobPart } from './protocol.js';
import { checkedSchema } from './structured.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface ToolDefinition {
  name: string;
  description?: string;
  parameters: Obj;
}

/** The tools of a request and how the model may use them. */
export interface ToolMode {
  tools: ToolDefinition[];
  /** auto: text or calls; required: at least one call; a name: exactly that function. */
  choice: 'auto' | 'required' | { name: string };
  parallel: boolean;
}

/** A call as the conversation carries it (OpenAI's shape, arguments as JSON text). */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A parsed message before rendering: a job message, or a tool result / an assistant turn with calls. */
export type ConversationMessage = JobMessage & { toolCalls?: ToolCall[]; toolCallId?: string; toolName?: string };

export const MAX_TOOLS = 128;
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * OpenAI `tools` (+ `tool_choice`, `parallel_tool_calls`) or Ollama `tools` (same function
 * objects) → the tool mode, or null when no tool is offered (or tool_choice is 'none').
 */
export function parseTools(o: Obj, choiceKey: string | null = 'tool_choice'): ToolMode | null {
  const raw = o.tools;
  const choice = choiceKey ? o[choiceKey] : undefined;
  const parallelRaw = o.parallel_tool_calls;
  if (parallelRaw != null && typeof parallelRaw !== 'boolean') throw wrongType('parallel_tool_calls', 'a boolean', parallelRaw);
  if (raw == null || (Array.isArray(raw) && raw.length === 0)) {
    if (choice != null && choice !== 'none' && choice !== 'auto') throw invalidParam(choiceKey!, `'${choiceKey}' ${describe(choice)} needs 'tools'`);
    return null;
  }
  if (!Array.isArray(raw)) throw wrongType('tools', 'an array of tools', raw);
  if (raw.length > MAX_TOOLS) throw invalidParam('tools', `at most ${MAX_TOOLS} tools, got ${raw.length}`);
  const tools = raw.map((t, i) => parseTool(t, `tools[${i}]`));
  const names = new Set<string>();
  tools.forEach((t, i) => {
    if (names.has(t.name)) throw invalidParam(`tools[${i}].function.name`, `two tools are named '${t.name}'`);
    names.add(t.name);
  });
  let mode: ToolMode['choice'] = 'auto';
  if (choice == null || choice === 'auto') mode = 'auto';
  else if (choice === 'none') return null;
  else if (choice === 'required') mode = 'required';
  else if (isObj(choice) && choice.type === 'function' && isObj(choice.function) && typeof choice.function.name === 'string') {
    const name = choice.function.name;
    if (!names.has(name)) throw invalidParam(`${choiceKey}.function.name`, `'${choiceKey}' names the function '${name}', which is not among the tools (${[...names].join(', ')})`);
    mode = { name };
  } else throw wrongType(choiceKey!, "'none', 'auto', 'required' or { type: 'function', function: { name } }", choice);
  return { tools, choice: mode, parallel: parallelRaw !== false };
}

function parseTool(t: unknown, where: string): ToolDefinition {
  if (!isObj(t)) throw wrongType(where, "a tool { type: 'function', function: { name, description, parameters } }", t);
  if (t.type !== 'function') throw invalidParam(`${where}.type`, `'${where}.type' must be 'function', got ${describe(t.type)}`);
  const f = t.function;
  if (!isObj(f)) throw wrongType(`${where}.function`, 'an object { name, description, parameters }', f);
  if (typeof f.name !== 'string' || !NAME.test(f.name)) throw wrongType(`${where}.function.name`, 'a name of 1 to 64 letters, digits, _ or -', f.name);
  if (f.description != null && typeof f.description !== 'string') throw wrongType(`${where}.function.description`, 'a string', f.description);
  if (f.strict != null && typeof f.strict !== 'boolean') throw wrongType(`${where}.function.strict`, 'a boolean', f.strict);
  const param = `${where}.function.parameters`;
  const parameters = f.parameters == null ? { type: 'object', properties: {} } : f.parameters;
  if (!isObj(parameters)) throw wrongType(param, 'a JSON schema object with type "object"', parameters);
  if (parameters.type !== undefined && parameters.type !== 'object') throw invalidParam(`${param}.type`, `'${param}.type' must be 'object', got ${describe(parameters.type)}`);
  checkedSchema(parameters, param);
  return { name: f.name, ...(f.description ? { description: f.description } : {}), parameters: { type: 'object', ...parameters } };
}

/** The grammar the reply is held to. */
export function toolGrammar(mode: ToolMode): ToolGrammarSpec {
  const tools = typeof mode.choice === 'object' ? mode.tools.filter((t) => t.name === (mode.choice as { name: string }).name) : mode.tools;
  return {
    kind: 'tool_calls', mode: mode.choice === 'auto' ? 'auto' : 'required',
    parallel: typeof mode.choice === 'object' ? false : mode.parallel,
    tools: tools.map((t) => ({ name: t.name, parameters: JSON.stringify(t.parameters) })),
  };
}

/** The instructions of Google's JSON prompt, followed by the tools as a JSON list. */
export function toolInstructions(mode: ToolMode): string {
  const lines = [
    'You have access to functions. If you decide to invoke any of the function(s), you MUST put it in the format of',
    '{"name": function name, "parameters": dictionary of argument name and its value}',
    '',
    'You SHOULD NOT include any other text in the response if you call a function',
  ];
  if (mode.parallel && typeof mode.choice !== 'object') lines.push('To call several functions, write one call per line.');
  if (mode.choice === 'required') lines.push('You MUST call at least one function.');
  else if (typeof mode.choice === 'object') lines.push(`You MUST call the function ${mode.choice.name}.`);
  const defs = mode.tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters }));
  return `${lines.join('\n')}\n${JSON.stringify(defs, null, 2)}`;
}

/** A call as the model writes it (and as earlier calls are written back). */
export function renderCall(name: string, args: unknown): string {
  return `${callPrefix(name)}${pyJson(args)}${CALL_END}`;
}

/** JSON with Python's json.dumps separators (", " and ": "), the layout the grammars produce. */
export function pyJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  if (isObj(v)) return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyJson(x)}`).join(', ')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** A tool result as the next user turn shows it. */
export function renderToolResult(content: string): string {
  return '```tool_output\n' + content + '\n```';
}

/**
 * The conversation as plain user/assistant/system messages for the chat template: the tool
 * instructions before the system text (the template puts the system text at the top of the first
 * user turn), assistant calls as call lines, and each run of tool results as one user turn (with
 * a user message that follows it, since Gemma's turns must alternate).
 */
export function renderToolConversation(messages: ConversationMessage[], mode: ToolMode | null): JobMessage[] {
  const out: JobMessage[] = [];
  if (mode) {
    const instructions = toolInstructions(mode);
    const first = messages[0];
    if (first && first.role === 'system') {
      out.push({ role: 'system', content: prependText(instructions, first.content) });
      messages = messages.slice(1);
    } else out.push({ role: 'system', content: instructions });
  }
  let results: string[] = [];
  const flushResults = () => {
    if (results.length) out.push({ role: 'user', content: results.join('\n') });
    results = [];
  };
  for (const m of messages) {
    if (m.role === 'tool') {
      results.push(renderToolResult(typeof m.content === 'string' ? m.content : textOf(m.content)));
      continue;
    }
    if (m.role === 'user' && results.length) {
      const joined = results.join('\n');
      results = [];
      out.push({ role: 'user', content: prependText(joined, m.content) });
      continue;
    }
    flushResults();
    if (m.role === 'assistant' && m.toolCalls?.length) {
      const text = typeof m.content === 'string' ? m.content : textOf(m.content);
      const calls = m.toolCalls.map((c) => renderCall(c.name, JSON.parse(c.arguments)));
      out.push({ role: 'assistant', content: [text.trim(), ...calls].filter((s) => s !== '').join('\n') });
      continue;
    }
    out.push({ role: m.role, content: m.content });
  }
  flushResults();
  return out;
}

function prependText(text: string, content: string | JobPart[]): string | JobPart[] {
  if (typeof content === 'string') return content === '' ? text : `${text}\n\n${content}`;
  return [{ type: 'text', text: `${text}\n\n` }, ...content];
}

function textOf(parts: JobPart[]): string {
  return parts.map((p) => (p.type === 'text' ? p.text : '')).join('');
}
