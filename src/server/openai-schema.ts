// Strict validation of OpenAI request bodies (chat completions and legacy completions) into jobs.
// Every refusal is a 400 in the OpenAI error shape naming the offending field.
import { ApiError, describe, invalidParam, wrongType } from './api-error.js';
import { checkReservedText } from './prompt.js';
import type { Job, JobMessage, JobOptions, JobPart } from './protocol.js';
import { parseResponseFormat } from './structured.js';
import { MAX_TOP_LOGPROBS } from '../generate/logprobs.js';
import { SAMPLABLE_VOCAB } from '../generate/sampler.js';
import { parseTools, renderToolConversation, toolGrammar, type ConversationMessage, type ToolCall, type ToolMode } from './tools.js';

type Obj = Record<string, unknown>;

/** Most choices one request may ask for (`n`): each is its own sequence. */
export const MAX_CHOICES = 8;

export interface ChatRequest {
  model: string;
  /** Choices (`n`). */
  n: number;
  /** Log-probabilities asked for. */
  logprobs: boolean;
  job: Extract<Job, { kind: 'chat' }>;
  stream: boolean;
  includeUsage: boolean;
  /** The tools offered (null: none, or tool_choice 'none'): the reply is read for calls. */
  tools: ToolMode | null;
  /** Image parts to fetch/check: they hold the URL until `loadImages` replaces it with bytes. */
  images: { part: { type: 'image'; image: string | Uint8Array; param?: string }; param: string }[];
}

export interface CompletionRequest {
  model: string;
  n: number;
  logprobs: boolean;
  job: Extract<Job, { kind: 'complete' }>;
  stream: boolean;
  includeUsage: boolean;
}

/** Fields accepted and ignored (or accepted only with their neutral value, checked below). */
const COMMON_FIELDS = ['model', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'n', 'user',
  'frequency_penalty', 'presence_penalty', 'logit_bias', 'logprobs', 'metadata', 'store', 'service_tier',
  // Extensions (as in llama.cpp and vLLM)
  'top_k', 'min_p', 'repetition_penalty', 'cache_prompt'];
const CHAT_FIELDS = new Set([...COMMON_FIELDS, 'messages', 'max_completion_tokens', 'top_logprobs', 'response_format', 'tools',
  'tool_choice', 'parallel_tool_calls', 'functions', 'function_call', 'modalities', 'reasoning_effort']);
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'echo', 'suffix', 'best_of']);

export function asObject(body: unknown): Obj {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, `The request body must be a JSON object, got ${describe(body)}.`, 'invalid_request_error', null, 'invalid_type');
  }
  return body as Obj;
}

export function parseChatRequest(body: unknown): ChatRequest {
  const o = asObject(body);
  rejectUnknown(o, CHAT_FIELDS);
  const common = parseCommon(o);
  const maxCompletion = int(o, 'max_completion_tokens', 1);
  if (maxCompletion !== undefined) common.options.maxTokens = maxCompletion;
  const logprobs = bool(o, 'logprobs') ?? false;
  const top = int(o, 'top_logprobs', 0);
  if (top !== undefined) {
    if (top > MAX_TOP_LOGPROBS) throw invalidParam('top_logprobs', `'top_logprobs' must be at most ${MAX_TOP_LOGPROBS}, got ${top}`);
    if (!logprobs) throw invalidParam('top_logprobs', "'top_logprobs' needs 'logprobs': true");
  }
  if (logprobs) common.options.logprobs = top ?? 0;
  Object.assign(common.options, parseResponseFormat(o.response_format));
  // The deprecated `functions` API: its successor `tools` is supported.
  if (o.functions != null && !(Array.isArray(o.functions) && o.functions.length === 0)) throw unsupported('functions', "the deprecated 'functions' is not supported; use 'tools'");
  if (o.function_call != null && o.function_call !== 'none' && o.function_call !== 'auto') throw unsupported('function_call', "the deprecated 'function_call' is not supported; use 'tool_choice'");
  const tools = parseTools(o);
  if (tools) {
    if (common.options.responseFormat) throw unsupported('response_format', "response_format cannot be combined with tools (the reply follows the tools' call format)");
    common.options.grammarSpec = toolGrammar(tools);
    common.options.grammarParam = 'tools';
  }
  if (o.modalities != null && !(Array.isArray(o.modalities) && o.modalities.every((m) => m === 'text'))) {
    throw unsupported('modalities', "only ['text'] output is supported");
  }
  if (o.messages === undefined) throw invalidParam('messages', "Missing required parameter: 'messages'.", 'missing_required_parameter');
  if (!Array.isArray(o.messages) || o.messages.length === 0) throw wrongType('messages', 'a non-empty array of messages', o.messages);
  const images: ChatRequest['images'] = [];
  const parsed = o.messages.map((m, i) => parseMessage(m, `messages[${i}]`, images));
  const messages = renderToolConversation(parsed, tools);
  return { ...common, logprobs, job: { kind: 'chat', messages, options: common.options }, images, tools };
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const o = asObject(body);
  rejectUnknown(o, COMPLETION_FIELDS);
  const common = parseCommon(o);
  common.options.maxTokens ??= 16; // OpenAI's default for completions
  if (o.echo != null && o.echo !== false) throw unsupported('echo', 'echo is not supported');
  if (o.suffix != null && o.suffix !== '') throw unsupported('suffix', 'suffix (insertion) is not supported');
  if (o.best_of != null && o.best_of !== 1) throw unsupported('best_of', 'best_of must be 1');
  const logprobs = int(o, 'logprobs', 0);
  if (logprobs !== undefined && logprobs > MAX_TOP_LOGPROBS) throw invalidParam('logprobs', `'logprobs' must be at most ${MAX_TOP_LOGPROBS}, got ${logprobs}`);
  if (logprobs !== undefined) common.options.logprobs = logprobs;
  const p = o.prompt;
  if (p === undefined) throw invalidParam('prompt', "Missing required parameter: 'prompt'.", 'missing_required_parameter');
  let prompt: string | number[];
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);
  if (typeof p === 'string') prompt = p;
  else if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') prompt = p[0];
  else if (isIds(p)) prompt = p;
  else if (Array.isArray(p) && p.length === 1 && isIds(p[0])) prompt = p[0];
  else if (Array.isArray(p) && p.length > 1 && (p.every((x) => typeof x === 'string') || p.every(isIds))) {
    throw unsupported('prompt', 'one prompt per request: batches of prompts are not supported (send concurrent requests instead)');
  } else throw wrongType('prompt', 'a string or an array of token ids', p);
  if (typeof prompt === 'string') checkReservedText(prompt, 'prompt');
  return { ...common, logprobs: logprobs !== undefined, job: { kind: 'complete', prompt, options: common.options } };
}

function parseCommon(o: Obj): { model: string; n: number; stream: boolean; includeUsage: boolean; options: JobOptions } {
  if (o.model === undefined) throw invalidParam('model', "Missing required parameter: 'model'.", 'missing_required_parameter');
  if (typeof o.model !== 'string' || o.model === '') throw wrongType('model', 'a non-empty string', o.model);
  const stream = bool(o, 'stream') ?? false;
  let includeUsage = false;
  if (o.stream_options != null) {
    if (!isObj(o.stream_options)) throw wrongType('stream_options', 'an object', o.stream_options);
    if (!stream) throw invalidParam('stream_options', "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    includeUsage = bool(o.stream_options, 'include_usage', 'stream_options.include_usage') ?? false;
  }
  const n = int(o, 'n', 1) ?? 1;
  if (n > MAX_CHOICES) throw invalidParam('n', `'n' must be at most ${MAX_CHOICES}, got ${n}`);
  if (o.user != null && typeof o.user !== 'string') throw wrongType('user', 'a string', o.user);
  const options: JobOptions = {};
  const presence = num(o, 'presence_penalty', -2, 2);
  if (presence) options.presencePenalty = presence;
  const frequency = num(o, 'frequency_penalty', -2, 2);
  if (frequency) options.frequencyPenalty = frequency;
  const bias = logitBias(o.logit_bias);
  if (bias) options.logitBias = bias;
  const set = <K extends keyof JobOptions>(k: K, v: JobOptions[K] | undefined) => {
    if (v !== undefined) options[k] = v;
  };
  set('maxTokens', int(o, 'max_tokens', 1));
  set('temperature', num(o, 'temperature', 0, 2));
  const topP = num(o, 'top_p', 0, 1);
  if (topP === 0) throw invalidParam('top_p', "'top_p' must be greater than 0 and at most 1, got 0 (use temperature 0 for greedy decoding)");
  set('topP', topP);
  set('topK', int(o, 'top_k', 0));
  set('minP', num(o, 'min_p', 0, 1));
  const rep = num(o, 'repetition_penalty', 0, Infinity);
  if (rep === 0) throw invalidParam('repetition_penalty', "'repetition_penalty' must be greater than 0");
  set('repetitionPenalty', rep);
  set('seed', int(o, 'seed', Number.MIN_SAFE_INTEGER));
  set('stop', stopList(o.stop, 'stop'));
  set('cachePrompt', bool(o, 'cache_prompt'));
  return { model: o.model, n, stream, includeUsage, options };
}

const ROLES: Record<string, string> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant', tool: 'tool' };

function parseMessage(m: unknown, where: string, images: ChatRequest['images']): ConversationMessage {
  if (!isObj(m)) throw wrongType(where, 'an object { role, content }', m);
  if (typeof m.role !== 'string') throw wrongType(`${where}.role`, "one of 'system', 'developer', 'user', 'assistant', 'tool'", m.role);
  // An own property only: 'constructor' or 'toString' must not find Object.prototype's.
  const role = Object.hasOwn(ROLES, m.role) ? ROLES[m.role] : undefined;
  if (!role) {
    throw invalidParam(`${where}.role`, `'${where}.role' must be one of 'system', 'developer', 'user', 'assistant', 'tool', got ${describe(m.role)}` +
      (m.role === 'function' ? " (the deprecated 'function' role is not supported; use 'tool')" : ''), 'invalid_value');
  }
  if (m.function_call != null) throw unsupported(`${where}.function_call`, "the deprecated 'function_call' is not supported; use 'tool_calls'");
  if (m.tool_calls != null && role !== 'assistant') throw invalidParam(`${where}.tool_calls`, `'tool_calls' belong to assistant messages, not ${m.role} messages`);
  const toolCalls = role === 'assistant' && m.tool_calls != null ? parseToolCalls(m.tool_calls, `${where}.tool_calls`) : undefined;
  if (m.name != null && typeof m.name !== 'string') throw wrongType(`${where}.name`, 'a string', m.name);
  if (role === 'tool') {
    if (typeof m.tool_call_id !== 'string' || m.tool_call_id === '') {
      throw invalidParam(`${where}.tool_call_id`, `'${where}.tool_call_id' is required for tool messages (the id of the call this result answers)`,
        m.tool_call_id === undefined ? 'missing_required_parameter' : 'invalid_value');
    }
    const content = parseTextContent(m.content, `${where}.content`);
    return { role, content, toolCallId: m.tool_call_id };
  }
  const c = m.content;
  if (typeof c === 'string') {
    checkReservedText(c, `${where}.content`);
    return { role, content: c, ...(toolCalls?.length ? { toolCalls } : {}) };
  }
  if (c == null && role === 'assistant') return { role, content: '', ...(toolCalls?.length ? { toolCalls } : {}) };
  if (!Array.isArray(c)) throw wrongType(`${where}.content`, 'a string or an array of content parts', c);
  const parts = c.map((p, j): JobPart => {
    const pw = `${where}.content[${j}]`;
    if (!isObj(p)) throw wrongType(pw, 'a content part object', p);
    if (p.type === 'text') {
      if (typeof p.text !== 'string') throw wrongType(`${pw}.text`, 'a string', p.text);
      checkReservedText(p.text, `${pw}.text`);
      return { type: 'text', text: p.text };
    }
    if (p.type === 'image_url') {
      if (role !== 'user') throw invalidParam(pw, `images are only allowed in user messages, not in ${m.role} messages`);
      const iu = p.image_url;
      const url = typeof iu === 'string' ? iu : isObj(iu) ? iu.url : undefined;
      if (typeof url !== 'string' || url === '') throw wrongType(`${pw}.image_url.url`, 'a non-empty string (a data: URL)', url);
      if (isObj(iu) && iu.detail != null && !['auto', 'low', 'high'].includes(iu.detail as string)) {
        throw wrongType(`${pw}.image_url.detail`, "'auto', 'low' or 'high'", iu.detail);
      }
      const part = { type: 'image' as const, image: url as string | Uint8Array };
      images.push({ part, param: `${pw}.image_url` });
      return part;
    }
    if (p.type === 'refusal' && role === 'assistant' && typeof p.refusal === 'string') return { type: 'text', text: p.refusal };
    throw invalidParam(`${pw}.type`, `content part type ${describe(p.type)} is not supported; use 'text' or 'image_url'`, 'invalid_value');
  });
  return { role, content: parts };
}

/** An assistant message's earlier calls: ids, names and arguments (a JSON object as text). */
function parseToolCalls(v: unknown, where: string): ToolCall[] {
  if (!Array.isArray(v)) throw wrongType(where, 'an array of tool calls', v);
  return v.map((c, j) => {
    const w = `${where}[${j}]`;
    if (!isObj(c)) throw wrongType(w, "a tool call { id, type: 'function', function: { name, arguments } }", c);
    if (typeof c.id !== 'string' || c.id === '') throw wrongType(`${w}.id`, 'a non-empty string', c.id);
    if (c.type != null && c.type !== 'function') throw invalidParam(`${w}.type`, `'${w}.type' must be 'function', got ${describe(c.type)}`);
    const f = c.function;
    if (!isObj(f)) throw wrongType(`${w}.function`, 'an object { name, arguments }', f);
    if (typeof f.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(f.name)) throw wrongType(`${w}.function.name`, 'a function name', f.name);
    if (typeof f.arguments !== 'string') throw wrongType(`${w}.function.arguments`, 'a JSON object as a string', f.arguments);
    let args: unknown;
    try {
      args = JSON.parse(f.arguments);
    } catch {
      throw invalidParam(`${w}.function.arguments`, `'${w}.function.arguments' is not valid JSON`);
    }
    if (!isObj(args)) throw wrongType(`${w}.function.arguments`, 'a JSON object as a string', f.arguments);
    return { id: c.id, name: f.name, arguments: f.arguments };
  });
}

/** A tool result's content: a string, or text parts. */
function parseTextContent(c: unknown, where: string): string {
  let text: string;
  if (typeof c === 'string') text = c;
  else if (Array.isArray(c) && c.every((p) => isObj(p) && p.type === 'text' && typeof p.text === 'string')) text = c.map((p) => (p as { text: string }).text).join('');
  else throw wrongType(where, 'a string or an array of text parts', c);
  checkReservedText(text, where);
  return text;
}

/** OpenAI `logit_bias`: { "token id": bias in [-100, 100] }. */
function logitBias(v: unknown): Record<number, number> | undefined {
  if (v == null) return undefined;
  if (!isObj(v)) throw wrongType('logit_bias', 'an object mapping token ids to biases', v);
  const out: Record<number, number> = {};
  const entries = Object.entries(v);
  if (entries.length > 1024) throw invalidParam('logit_bias', `'logit_bias' may hold at most 1024 tokens, got ${entries.length}`);
  for (const [k, b] of entries) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || !Number.isSafeInteger(id) || id >= SAMPLABLE_VOCAB) throw invalidParam(`logit_bias.${k}`, `'logit_bias' keys must be token ids below ${SAMPLABLE_VOCAB}, got ${describe(k)}`);
    if (typeof b !== 'number' || !Number.isFinite(b) || b < -100 || b > 100) throw wrongType(`logit_bias.${k}`, 'a number between -100 and 100', b);
    if (b !== 0) out[id] = b;
  }
  return Object.keys(out).length ? out : undefined;
}

export function stopList(v: unknown, param: string): string[] | undefined {
  if (v == null) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw wrongType(param, 'a string or an array of strings', v);
  if (list.length > 16) throw invalidParam(param, `'${param}' may hold at most 16 sequences, got ${list.length}`);
  const stops = (list as string[]).filter((s) => s !== '');
  return stops.length ? stops : undefined;
}

function rejectUnknown(o: Obj, known: Set<string>): void {
  for (const key of Object.keys(o)) {
    if (!known.has(key)) throw invalidParam(key, `Unrecognized request argument supplied: ${key}`, 'unknown_parameter');
  }
}

function unsupported(param: string, message: string): ApiError {
  return invalidParam(param, `'${param}': ${message}.`, 'unsupported_value');
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function num(o: Obj, key: string, min: number, max: number, param = key): number | undefined {
  const v = o[key];
  if (v == null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw wrongType(param, max === Infinity ? `a number >= ${min}` : `a number between ${min} and ${max}`, v);
  }
  return v;
}

export function int(o: Obj, key: string, min: number, param = key): number | undefined {
  const v = o[key];
  if (v == null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw wrongType(param, min === Number.MIN_SAFE_INTEGER ? 'an integer' : `an integer >= ${min}`, v);
  }
  return v;
}

export function bool(o: Obj, key: string, param = key): boolean | undefined {
  const v = o[key];
  if (v == null) return undefined;
  if (typeof v !== 'boolean') throw wrongType(param, 'a boolean', v);
  return v;
}
