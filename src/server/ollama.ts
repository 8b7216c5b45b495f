// The Ollama-compatible endpoints: POST /api/chat, POST /api/generate (NDJSON streaming by
// default, `images` as base64) and GET /api/tags. Errors use Ollama's shape `{ "error": "..." }`
// (its clients read that field); the statuses are the same as on the OpenAI endpoints.
import { statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkKeepAlive } from './keep-alive.js';
import { namesServedModel } from './model-id.js';
import { ApiError, describe, invalidParam, wrongType } from './api-error.js';
import { cancelOnDisconnect } from './openai.js';
import { asObject, bool, int, num, stopList } from './openai-schema.js';
import type { Claim } from './engine.js';
import { admitImagePixels, imageFromBase64 } from './images.js';
import { checkReservedText, noVision } from './prompt.js';
import type { DoneData, Job, JobMessage, JobOptions, JobPart } from './protocol.js';
import type { ServerContext } from './server.js';
import { NdjsonStream } from './sse.js';
import { parseOllamaFormat } from './structured.js';
import { ToolCallParser } from './tool-calls.js';
import { parseTools, renderToolConversation, toolGrammar, type ConversationMessage, type ToolCall } from './tools.js';
import { sendJson } from './http.js';
import { cachedModelTags } from './ollama-models.js';

type Obj = Record<string, unknown>;

export async function ollamaChat(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown, claim: Claim): Promise<void> {
  const o = asObject(body);
  const model = checkModel(ctx, o.model);
  rejectUnsupported(o);
  if (!Array.isArray(o.messages ?? [])) throw wrongType('messages', 'an array of messages', o.messages);
  const raw = (o.messages ?? []) as unknown[];
  if (raw.length === 0) return loaded(res, model, { message: { role: 'assistant', content: '' } });
  const messages = raw.map((m, i): ConversationMessage => {
    const where = `messages[${i}]`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw wrongType(where, 'an object { role, content }', m);
    const { role, content, images } = m as Obj;
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'tool') {
      throw invalidParam(`${where}.role`, `'${where}.role' must be 'system', 'user', 'assistant' or 'tool', got ${describe(role)}`);
    }
    if (content != null && typeof content !== 'string') throw wrongType(`${where}.content`, 'a string', content);
    if (typeof content === 'string') checkReservedText(content, `${where}.content`);
    if (role === 'tool') return { role, content: (content as string | undefined) ?? '', toolCallId: '' };
    const toolCalls = role === 'assistant' ? ollamaToolCalls((m as Obj).tool_calls, `${where}.tool_calls`) : [];
    return { role, content: withImages(ctx, (content as string | undefined) ?? '', images, `${where}.images`), ...(toolCalls.length ? { toolCalls } : {}) };
  });
  const { job, tools } = ollamaToolJob(o, messages);
  await answer(ctx, req, res, job, claim, model, bool(o, 'stream') ?? true, 'chat', tools);
}

export async function ollamaGenerate(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown, claim: Claim): Promise<void> {
  const o = asObject(body);
  const model = checkModel(ctx, o.model);
  rejectUnsupported(o);
  if (o.tools != null && !(Array.isArray(o.tools) && o.tools.length === 0)) throw invalidParam('tools', "tools are supported on /api/chat, not /api/generate", 'unsupported_value');
  for (const key of ['suffix', 'template']) {
    if (o[key] != null && o[key] !== '') throw invalidParam(key, `'${key}' is not supported by this server`, 'unsupported_value');
  }
  if (o.context != null && !(Array.isArray(o.context) && o.context.length === 0)) {
    throw invalidParam('context', "'context' (the deprecated conversation state) is not supported; use /api/chat", 'unsupported_value');
  }
  const prompt = o.prompt ?? '';
  if (typeof prompt !== 'string') throw wrongType('prompt', 'a string', prompt);
  if (o.system != null && typeof o.system !== 'string') throw wrongType('system', 'a string', o.system);
  checkReservedText(prompt, 'prompt');
  if (typeof o.system === 'string') checkReservedText(o.system, 'system');
  const images = o.images ?? [];
  if (prompt === '' && Array.isArray(images) && images.length === 0) return loaded(res, model, { response: '' });
  const options = parseOptions(o);
  let job: Job;
  if (bool(o, 'raw')) {
    if (Array.isArray(images) && images.length) throw invalidParam('images', "images cannot be combined with 'raw': true", 'unsupported_value');
    job = { kind: 'complete', prompt, options };
  } else {
    const messages: JobMessage[] = [];
    if (o.system) messages.push({ role: 'system', content: o.system as string });
    messages.push({ role: 'user', content: withImages(ctx, prompt, images, 'images') });
    job = { kind: 'chat', messages, options };
  }
  await answer(ctx, req, res, job, claim, model, bool(o, 'stream') ?? true, 'generate');
}

export function ollamaTags(ctx: ServerContext, res: ServerResponse): void {
  const info = ctx.engine.info;
  let size = 0;
  let modified: Date | null = null;
  try {
    const single = statSync(info.path).isFile(); // a GGUF file rather than a checkpoint folder
    for (const f of single ? [''] : readdirSync(info.path)) {
      const st = statSync(single ? info.path : join(info.path, f));
      if (st.isFile()) size += st.size;
      if ((single || /\.(safetensors|gguf)$/.test(f)) && (!modified || st.mtime > modified)) modified = st.mtime;
    }
  } catch {
    // the folder is unreadable now; report what we have
  }
  sendJson(res, 200, {
    models: [{
      // A GGUF hub name already has its tag (owner/repo:Q4_K_M).
      name: info.id.includes(':') ? info.id : `${info.id}:latest`, model: info.id.includes(':') ? info.id : `${info.id}:latest`, modified_at: (modified ?? new Date(ctx.startedAt * 1000)).toISOString(), size,
      // The files' sha256, computed in the background after start ('' until it is known).
      digest: ctx.digest.value ?? '',
      details: {
        parent_model: '', format: info.path.toLowerCase().endsWith('.gguf') ? 'gguf' : 'safetensors', family: info.family, families: [info.family],
        parameter_size: formatParameters(info.parameters), quantization_level: info.quantization,
      },
    }, ...cachedModelTags(ctx)],
  });
}

function checkModel(ctx: ServerContext, model: unknown): string {
  if (model === undefined) throw invalidParam('model', "Missing required parameter: 'model'.", 'missing_required_parameter');
  if (typeof model !== 'string' || model === '') throw wrongType('model', 'a non-empty string', model);
  const id = ctx.engine.info.id;
  if (!namesServedModel(model, id)) {
    throw new ApiError(404, `model '${model}' not found; this server serves '${id}'`, 'invalid_request_error', 'model', 'model_not_found');
  }
  return model;
}

function rejectUnsupported(o: Obj): void {
  checkKeepAlive(o.keep_alive);
  if (o.think === true) throw invalidParam('think', 'this model has no thinking mode', 'unsupported_value');
}

/** Text plus base64 images → content parts (images first, as Ollama places them). */
function withImages(ctx: ServerContext, text: string, images: unknown, param: string): string | JobPart[] {
  if (images == null) return text;
  if (!Array.isArray(images) || images.some((s) => typeof s !== 'string')) throw wrongType(param, 'an array of base64 strings', images);
  if (images.length === 0) return text;
  const parts: JobPart[] = (images as string[]).map((s, i) => ({
    type: 'image', image: imageFromBase64(s, `${param}[${i}]`, ctx.options.maxBodyBytes), param: `${param}[${i}]`,
  }));
  if (!ctx.engine.info.vision) throw noVision();
  if (text) parts.push({ type: 'text', text });
  return parts;
}

/** Checks every image's size from its header and counts its pixels on the claim. */
async function admitImages(job: Job, claim: Claim, maxPixels: number): Promise<void> {
  if (job.kind !== 'chat') return;
  for (const m of job.messages) {
    if (typeof m.content === 'string') continue;
    for (const p of m.content) if (p.type === 'image' && typeof p.image !== 'string') await admitImagePixels(p.image, p.param ?? 'images', maxPixels, claim);
  }
}

/** Ollama `options` (and the top-level keep_alive etc., ignored) → job options. Unknown options are ignored, as Ollama does. */
function parseOptions(o: Obj): JobOptions {
  const raw = o.options ?? {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw wrongType('options', 'an object', raw);
  const opts = raw as Obj;
  const out: JobOptions = {};
  const set = <K extends keyof JobOptions>(k: K, v: JobOptions[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  const predict = int(opts, 'num_predict', Number.MIN_SAFE_INTEGER, 'options.num_predict');
  if (predict !== undefined && predict > 0) out.maxTokens = predict; // -1 / -2: until the context is full
  set('temperature', num(opts, 'temperature', 0, 100, 'options.temperature'));
  const topP = num(opts, 'top_p', 0, 1, 'options.top_p');
  if (topP !== undefined && topP > 0) out.topP = topP;
  set('topK', int(opts, 'top_k', 0, 'options.top_k'));
  set('minP', num(opts, 'min_p', 0, 1, 'options.min_p'));
  const rep = num(opts, 'repeat_penalty', 0, Infinity, 'options.repeat_penalty');
  if (rep !== undefined && rep > 0) out.repetitionPenalty = rep;
  set('seed', int(opts, 'seed', Number.MIN_SAFE_INTEGER, 'options.seed'));
  set('stop', stopList(opts.stop, 'options.stop'));
  Object.assign(out, parseMoreOllamaOptions(opts));
  // As llama.cpp's server takes it: top level, or among the options.
  set('cachePrompt', bool(opts, 'cache_prompt', 'options.cache_prompt') ?? bool(o, 'cache_prompt'));
  return { ...out, ...parseOllamaFormat(o.format) };
}

/** The answer Ollama gives to an empty request (it loads the model). */
function loaded(res: ServerResponse, model: string, fields: Obj): void {
  sendJson(res, 200, { model, created_at: new Date().toISOString(), ...fields, done: true, done_reason: 'load' });
}

async function answer(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, job: Job, claim: Claim, model: string, stream: boolean,
                      kind: 'chat' | 'generate', tools = false): Promise<void> {
  if (tools) return answerWithTools(ctx, res, job, claim, model, stream);
  const started = performance.now();
  await admitImages(job, claim, ctx.options.maxImagePixels);
  if (res.destroyed) return; // the client left while its images were checked
  const run = ctx.engine.submit(job, claim);
  cancelOnDisconnect(res, run);
  await run.accepted;
  const piece = (text: string) => kind === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text };
  const final = (done: DoneData) => ({
    done: true, done_reason: done.finishReason,
    total_duration: Math.round((performance.now() - started) * 1e6), load_duration: 0,
    prompt_eval_count: done.promptTokens, prompt_eval_duration: Math.round(done.prefillMs * 1e6),
    eval_count: done.completionTokens, eval_duration: Math.round(done.decodeMs * 1e6),
  });
  const now = () => new Date().toISOString();
  if (!stream) {
    let text = '';
    for await (const ev of run) {
      if (ev.type === 'token') {
        text += ev.text;
        continue;
      }
      if (ev.done.finishReason === 'abort') return;
      sendJson(res, 200, { model, created_at: now(), ...piece(text + ev.done.text), ...final(ev.done) });
    }
    return;
  }
  const out = new NdjsonStream(res);
  try {
    for await (const ev of run) {
      if (ev.type === 'token') {
        if (ev.text) out.send({ model, created_at: now(), ...piece(ev.text), done: false });
        continue;
      }
      if (ev.done.finishReason === 'abort') return;
      if (ev.done.text) out.send({ model, created_at: now(), ...piece(ev.done.text), done: false });
      out.send({ model, created_at: now(), ...piece(''), ...final(ev.done) });
    }
  } catch (err) {
    out.send({ error: err instanceof Error ? err.message : String(err) });
  }
  out.end();
}

function formatParameters(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(1)}K`;
}

// ---------------------------------------------------------------------------------------------
// Tools on /api/chat (Ollama's shape: `tools` as OpenAI's, calls with arguments as objects).

/** An assistant message's earlier calls, Ollama style: [{ function: { name, arguments: {...} } }]. */
function ollamaToolCalls(v: unknown, where: string): ToolCall[] {
  if (v == null) return [];
  if (!Array.isArray(v)) throw wrongType(where, 'an array of tool calls', v);
  return v.map((c, j) => {
    const w = `${where}[${j}].function`;
    const f = c !== null && typeof c === 'object' ? (c as Obj).function : undefined;
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw wrongType(w, 'an object { name, arguments }', f);
    const { name, arguments: args } = f as Obj;
    if (typeof name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(name)) throw wrongType(`${w}.name`, 'a function name', name);
    const value = args ?? {};
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw wrongType(`${w}.arguments`, 'an object', args);
    return { id: `call_${j}`, name, arguments: JSON.stringify(value) };
  });
}

/** The job of an /api/chat request, with its tools rendered into the prompt and the call grammar. */
function ollamaToolJob(o: Obj, messages: ConversationMessage[]): { job: Job; tools: boolean } {
  const tools = parseTools(o, null);
  const options = parseOptions(o);
  if (tools) {
    if (options.responseFormat) throw invalidParam('format', "'format' cannot be combined with 'tools'", 'unsupported_value');
    options.grammarSpec = toolGrammar(tools);
    options.grammarParam = 'tools';
  }
  const rendered: JobMessage[] = renderToolConversation(messages, tools);
  return { job: { kind: 'chat', messages: rendered, options }, tools: tools !== null };
}

/** /api/chat with tools: text streams as content; calls are sent whole once complete (as Ollama does). */
async function answerWithTools(ctx: ServerContext, res: ServerResponse, job: Job, claim: Claim, model: string, stream: boolean): Promise<void> {
  const started = performance.now();
  await admitImages(job, claim, ctx.options.maxImagePixels);
  if (res.destroyed) return;
  const run = ctx.engine.submit(job, claim);
  cancelOnDisconnect(res, run);
  await run.accepted;
  const parser = new ToolCallParser();
  let sentCalls = 0;
  const now = () => new Date().toISOString();
  const completeCalls = (final: boolean) => {
    // A call is complete once the next one started or the reply ended; cut-off arguments are dropped.
    const upTo = final ? parser.calls.length : parser.calls.length - 1;
    const out: { function: { name: string; arguments: unknown } }[] = [];
    for (; sentCalls < upTo; sentCalls++) {
      const c = parser.calls[sentCalls]!;
      try {
        out.push({ function: { name: c.name, arguments: JSON.parse(c.arguments) } });
      } catch {
        // the reply ended inside these arguments
      }
    }
    return out;
  };
  const final = (done: DoneData) => ({
    done: true, done_reason: done.finishReason,
    total_duration: Math.round((performance.now() - started) * 1e6), load_duration: 0,
    prompt_eval_count: done.promptTokens, prompt_eval_duration: Math.round(done.prefillMs * 1e6),
    eval_count: done.completionTokens, eval_duration: Math.round(done.decodeMs * 1e6),
  });
  const textOf = (events: ReturnType<ToolCallParser['push']>) => events.map((e) => (e.kind === 'text' ? e.text : '')).join('');
  if (!stream) {
    let text = '';
    for await (const ev of run) {
      if (ev.type === 'token') {
        text += textOf(parser.push(ev.text));
        continue;
      }
      if (ev.done.finishReason === 'abort') return;
      text += textOf(parser.push(ev.done.text)) + textOf(parser.end());
      const calls = completeCalls(true);
      sendJson(res, 200, {
        model, created_at: now(), message: { role: 'assistant', content: calls.length && text.trim() === '' ? '' : text, ...(calls.length ? { tool_calls: calls } : {}) },
        ...final(ev.done),
      });
    }
    return;
  }
  const out = new NdjsonStream(res);
  const send = (text: string, calls: ReturnType<typeof completeCalls>) => {
    if (text || calls.length) out.send({ model, created_at: now(), message: { role: 'assistant', content: text, ...(calls.length ? { tool_calls: calls } : {}) }, done: false });
  };
  try {
    for await (const ev of run) {
      if (ev.type === 'token') {
        send(textOf(parser.push(ev.text)), completeCalls(false));
        continue;
      }
      if (ev.done.finishReason === 'abort') return;
      send(textOf(parser.push(ev.done.text)) + textOf(parser.end()), completeCalls(true));
      out.send({ model, created_at: now(), message: { role: 'assistant', content: '' }, ...final(ev.done) });
    }
  } catch (err) {
    out.send({ error: err instanceof Error ? err.message : String(err) });
  }
  out.end();
}

/**
 * The other Ollama options clients send: num_ctx (checked; each sequence's context is the
 * server's --context, so a smaller or larger value changes nothing), presence / frequency penalties.
 */
function parseMoreOllamaOptions(opts: Obj): JobOptions {
  const out: JobOptions = {};
  int(opts, 'num_ctx', 1, 'options.num_ctx');
  const presence = num(opts, 'presence_penalty', -2, 2, 'options.presence_penalty');
  if (presence) out.presencePenalty = presence;
  const frequency = num(opts, 'frequency_penalty', -2, 2, 'options.frequency_penalty');
  if (frequency) out.frequencyPenalty = frequency;
  return out;
}
