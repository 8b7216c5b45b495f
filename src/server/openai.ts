// The OpenAI-compatible endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.
// Streaming answers are SSE chunks ending in `data: [DONE]`; usage counts real tokens.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { namesServedModel } from './model-id.js';
import { ApiError, toApiError } from './api-error.js';
import type { Claim, Run } from './engine.js';
import { sendJson } from './http.js';
import { admitImagePixels, imageFromUrl, type ImageOptions } from './images.js';
import { parseChatRequest, parseCompletionRequest } from './openai-schema.js';
import { noVision } from './prompt.js';
import type { DoneData, Job, TokenLogprobData } from './protocol.js';
import type { ServerContext } from './server.js';
import { SseStream } from './sse.js';
import { ToolCallParser, type ToolEvent } from './tool-calls.js';

export async function chatCompletions(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown, claim: Claim): Promise<void> {
  const r = parseChatRequest(body);
  checkModel(ctx, r.model);
  if (r.images.length) {
    const imageOptions = imageOptionsFor(ctx, res);
    if (!ctx.engine.info.vision) {
      // Report a malformed image or URL as such; otherwise say the model is text-only (fetching nothing).
      for (const { part, param } of r.images) if (typeof part.image === 'string') await imageFromUrl(part.image, param, imageOptions, claim, true);
      throw noVision();
    }
    for (const { part, param } of r.images) {
      if (typeof part.image === 'string') part.image = await imageFromUrl(part.image, param, imageOptions, claim);
      await admitImagePixels(part.image, param, imageOptions.maxPixels, claim);
      part.param = param;
    }
  }
  await answer(ctx, req, res, r.job, claim, { kind: 'chat', stream: r.stream, includeUsage: r.includeUsage, tools: r.tools !== null, n: r.n, logprobs: r.logprobs });
}

export async function completions(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown, claim: Claim): Promise<void> {
  const r = parseCompletionRequest(body);
  checkModel(ctx, r.model);
  await answer(ctx, req, res, r.job, claim, { kind: 'text', stream: r.stream, includeUsage: r.includeUsage, n: r.n, logprobs: r.logprobs });
}

/** The image limits of this server, with a signal that fires when the client goes away. */
export function imageOptionsFor(ctx: ServerContext, res: ServerResponse): ImageOptions {
  return {
    allowRemote: ctx.options.allowRemoteImages, allowPrivateHosts: ctx.options.allowPrivateImageHosts,
    maxBytes: ctx.options.maxBodyBytes, maxPixels: ctx.options.maxImagePixels, signal: clientGone(res),
    // One slow URL may take the whole allowance, forty of them no more than that together.
    fetchTimeoutMs: ctx.options.imageFetchTimeoutMs, deadline: Date.now() + ctx.options.imageFetchTimeoutMs,
  };
}

/** Aborts when the connection closes before the answer was sent. */
export function clientGone(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

export function listModels(ctx: ServerContext, res: ServerResponse): void {
  sendJson(res, 200, { object: 'list', data: [modelObject(ctx)] });
}

export function getModel(ctx: ServerContext, res: ServerResponse, id: string): void {
  checkModel(ctx, id);
  sendJson(res, 200, modelObject(ctx));
}

function modelObject(ctx: ServerContext) {
  return { id: ctx.engine.info.id, object: 'model', created: ctx.startedAt, owned_by: 'gemma3' };
}

/** 404 unless `model` names the served model. */
export function checkModel(ctx: ServerContext, model: string): void {
  const id = ctx.engine.info.id;
  if (!namesServedModel(model, id)) {
    throw new ApiError(404, `The model '${model}' does not exist. This server serves '${id}'.`, 'invalid_request_error', 'model', 'model_not_found');
  }
}

/** Cancels the run when the client goes away before the answer is complete. */
export function cancelOnDisconnect(res: ServerResponse, run: Run): void {
  clientGone(res).addEventListener('abort', () => run.cancel());
}

interface AnswerFormat {
  kind: 'chat' | 'text';
  stream: boolean;
  includeUsage: boolean;
  /** Tools were offered: the reply is read for calls (chat only). */
  tools?: boolean;
  /** Choices to generate (each its own sequence; with a seed s, choice i uses s + i). */
  n?: number;
  /** Log-probabilities were asked for (chat: `logprobs: true`; completions: `logprobs: k`). */
  logprobs?: boolean;
}

/** One choice's text, log-probabilities and end, as it is collected or streamed. */
interface ChoiceState {
  index: number;
  run: Run;
  text: string;
  logprobs: TokenLogprobData[];
  parser: ToolCallParser | null;
  done?: DoneData;
}

async function answer(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, job: Job, claim: Claim, format: AnswerFormat): Promise<void> {
  if (res.destroyed) return; // the client left while its images were checked
  const runs = submitChoices(ctx, job, claim, format.n ?? 1);
  for (const run of runs) cancelOnDisconnect(res, run);
  try {
    await Promise.all(runs.map((r) => r.accepted));
  } catch (err) {
    for (const r of runs) r.cancel();
    throw err;
  }
  const chat = format.kind === 'chat';
  const base = {
    id: `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: ctx.engine.info.id,
    system_fingerprint: ctx.fingerprint,
  };
  const states: ChoiceState[] = runs.map((run, index) => ({ index, run, text: '', logprobs: [], parser: format.tools ? new ToolCallParser() : null }));
  const totalUsage = () => {
    const done = states.map((s) => s.done!);
    const prompt = done[0]!.promptTokens;
    const completion = done.reduce((n, d) => n + d.completionTokens, 0);
    // With n > 1 each choice computes the prompt on its own: the least any of them reused.
    const cached = Math.min(...done.map((d) => d.cachedTokens ?? 0));
    return {
      prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: cached },
    };
  };

  if (!format.stream) {
    try {
      await Promise.all(states.map(async (st) => {
        for await (const ev of st.run) {
          if (ev.type === 'token') {
            st.text += ev.text;
            if (ev.logprob) st.logprobs.push(ev.logprob);
          } else st.done = ev.done;
        }
      }));
    } catch (err) {
      for (const r of runs) r.cancel(); // one choice failed: the others stop too
      throw err;
    }
    if (states.some((st) => !st.done || st.done.finishReason === 'abort')) return; // the client is gone
    const choices = states.map((st) => {
      const done = st.done!;
      const text = st.text + done.text;
      const logprobs = format.logprobs ? (chat ? chatLogprobs(st.logprobs) : completionLogprobs(st.logprobs)) : null;
      if (!chat) return { index: st.index, text, logprobs, finish_reason: done.finishReason };
      let finish: string = done.finishReason;
      let message: Record<string, unknown> = { role: 'assistant', content: text, refusal: null };
      if (st.parser) {
        const content = [...st.parser.push(text), ...st.parser.end()].map((e) => (e.kind === 'text' ? e.text : '')).join('');
        if (st.parser.calls.length) {
          message = {
            role: 'assistant', content: content.trim() === '' ? null : content, refusal: null,
            tool_calls: st.parser.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
          };
          if (finish === 'stop') finish = 'tool_calls';
        }
      }
      return { index: st.index, message, logprobs, finish_reason: finish };
    });
    sendJson(res, 200, { ...base, object: chat ? 'chat.completion' : 'text_completion', choices, usage: totalUsage() });
    return;
  }

  const sse = new SseStream(res);
  const extra = format.includeUsage ? { usage: null } : {};
  /** A streamed choice: text (or a tool-call delta) with the log-probabilities of the tokens since the last one sent. */
  const send = (st: ChoiceState, delta: Record<string, unknown> | null, finish: string | null = null) => {
    const pending = st.logprobs;
    st.logprobs = [];
    const logprobs = format.logprobs && pending.length ? (chat ? chatLogprobs(pending) : completionLogprobs(pending)) : null;
    const choice = chat
      ? { index: st.index, delta: delta ?? {}, logprobs, finish_reason: finish }
      : { index: st.index, text: (delta?.content as string | undefined) ?? '', logprobs, finish_reason: finish };
    sse.send({ ...base, choices: [choice], ...extra });
  };
  const sendText = (st: ChoiceState, text: string) => {
    if (!text) return;
    if (!st.parser) return send(st, { content: text });
    for (const e of st.parser.push(text)) send(st, toolDelta(e));
  };
  if (chat) for (const st of states) send(st, { role: 'assistant', content: '' });
  try {
    await Promise.all(states.map(async (st) => {
      for await (const ev of st.run) {
        if (ev.type === 'token') {
          if (ev.logprob) st.logprobs.push(ev.logprob);
          sendText(st, ev.text);
          continue;
        }
        const done = ev.done;
        st.done = done;
        if (done.finishReason === 'abort') return;
        sendText(st, done.text);
        if (st.parser) for (const e of st.parser.end()) send(st, toolDelta(e));
        const finish = st.parser?.calls.length && done.finishReason === 'stop' ? 'tool_calls' : done.finishReason;
        send(st, chat ? null : { content: '' }, finish);
      }
    }));
    if (states.some((st) => st.done?.finishReason === 'abort')) return;
    if (format.includeUsage) sse.send({ ...base, choices: [], usage: totalUsage() });
  } catch (err) {
    for (const r of runs) r.cancel();
    sse.send(toApiError(err).toJSON());
  }
  sse.done();
}

/** The n runs of a request; with a seed s, run i gets s + i (so each equals a one-choice request with that seed). */
function submitChoices(ctx: ServerContext, job: Job, claim: Claim, n: number): Run[] {
  const runs: Run[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const seed = job.options.seed;
      const options = seed !== undefined && i > 0 ? { ...job.options, seed: seed + i } : job.options;
      // The request's claim (bytes, pixels) is held by the first run.
      runs.push(ctx.engine.submit(i === 0 ? job : { ...job, options } as Job, i === 0 ? claim : null));
    }
  } catch (err) {
    for (const r of runs) r.cancel();
    throw err;
  }
  return runs;
}

/** OpenAI chat logprobs: { content: [{ token, logprob, bytes, top_logprobs }], refusal: null }. */
function chatLogprobs(list: TokenLogprobData[]) {
  return {
    content: list.map((t) => ({
      token: t.token, logprob: t.logprob, bytes: t.bytes,
      top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes })),
    })),
    refusal: null,
  };
}

/** OpenAI legacy completions logprobs: parallel arrays of tokens, their log-probabilities and alternatives. */
function completionLogprobs(list: TokenLogprobData[]) {
  let offset = 0;
  const textOffset: number[] = [];
  for (const t of list) {
    textOffset.push(offset);
    offset += t.token.length;
  }
  return {
    tokens: list.map((t) => t.token),
    token_logprobs: list.map((t) => t.logprob),
    top_logprobs: list.map((t) => Object.fromEntries(t.top.map((a) => [a.token, a.logprob]))),
    text_offset: textOffset,
  };
}

/** One parser event as a streamed chat delta (OpenAI's delta.tool_calls shape for calls). */
function toolDelta(e: ToolEvent): Record<string, unknown> {
  return e.kind === 'text' ? { content: e.text }
    : e.kind === 'start' ? { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] }
      : { tool_calls: [{ index: e.index, function: { arguments: e.text } }] };
}
