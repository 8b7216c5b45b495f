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
import type { DoneData, Job } from './protocol.js';
import type { ServerContext } from './server.js';
import { SseStream } from './sse.js';

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
  await answer(ctx, req, res, r.job, claim, { kind: 'chat', stream: r.stream, includeUsage: r.includeUsage });
}

export async function completions(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, body: unknown, claim: Claim): Promise<void> {
  const r = parseCompletionRequest(body);
  checkModel(ctx, r.model);
  await answer(ctx, req, res, r.job, claim, { kind: 'text', stream: r.stream, includeUsage: r.includeUsage });
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
}

async function answer(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, job: Job, claim: Claim, format: AnswerFormat): Promise<void> {
  if (res.destroyed) return; // the client left while its images were checked
  const run = ctx.engine.submit(job, claim);
  cancelOnDisconnect(res, run);
  await run.accepted;
  const chat = format.kind === 'chat';
  const base = {
    id: `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: ctx.engine.info.id,
    system_fingerprint: ctx.fingerprint,
  };
  const choice = (text: string | null, finish: string | null, first = false) => chat
    ? { index: 0, delta: text === null ? {} : first ? { role: 'assistant', content: text } : { content: text }, logprobs: null, finish_reason: finish }
    : { index: 0, text: text ?? '', logprobs: null, finish_reason: finish };

  if (!format.stream) {
    let text = '';
    let done: DoneData | undefined;
    for await (const ev of run) {
      if (ev.type === 'token') text += ev.text;
      else done = ev.done;
    }
    if (!done || done.finishReason === 'abort') return; // the client is gone
    text += done.text;
    const finish = done.finishReason;
    sendJson(res, 200, {
      ...base,
      object: chat ? 'chat.completion' : 'text_completion',
      choices: [chat
        ? { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish }
        : { index: 0, text, logprobs: null, finish_reason: finish }],
      usage: usage(done),
    });
    return;
  }

  const sse = new SseStream(res);
  const extra = format.includeUsage ? { usage: null } : {};
  if (chat) sse.send({ ...base, choices: [choice('', null, true)], ...extra });
  try {
    for await (const ev of run) {
      if (ev.type === 'token') {
        if (ev.text) sse.send({ ...base, choices: [choice(ev.text, null)], ...extra });
        continue;
      }
      const done = ev.done;
      if (done.finishReason === 'abort') return;
      if (done.text) sse.send({ ...base, choices: [choice(done.text, null)], ...extra });
      sse.send({ ...base, choices: [choice(chat ? null : '', done.finishReason)], ...extra });
      if (format.includeUsage) sse.send({ ...base, choices: [], usage: usage(done) });
    }
  } catch (err) {
    sse.send(toApiError(err).toJSON());
  }
  sse.done();
}

function usage(done: DoneData) {
  return { prompt_tokens: done.promptTokens, completion_tokens: done.completionTokens, total_tokens: done.promptTokens + done.completionTokens };
}
