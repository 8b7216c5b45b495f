// Request → prompt ids, in the worker: the chat template for conversations, the tokenizer for
// raw completions, and image parts handed to the library's vision pipeline when the model has one.
import { dirname } from 'node:path';
import type { ChatMessage, ContentPart } from '../chat/messages.js';
import { GemmaError } from '../errors.js';
import type { Gemma3 } from '../gemma3.js';
import { ApiError, invalidParam, toApiError, type ApiErrorData } from './api-error.js';
import type { Job, JobMessage } from './protocol.js';
import { Prompt } from '../model/prompt.js';

/** How a job's preparation learns that its client went away. */
export interface PrepareSignals {
  /** Aborted by the cancel message (stops image decoding between awaits). */
  signal: AbortSignal;
  /** Also true when the cancel flag in shared memory is set (polled inside the vision tower). */
  cancelled: { readonly aborted: boolean };
}

/** The prompt of a job; ApiError (400) when it cannot be built. */
export async function preparePrompt(model: Gemma3, job: Job, signals?: PrepareSignals): Promise<Prompt> {
  if (job.kind === 'complete') {
    if (typeof job.prompt === 'string') return Prompt.ofIds(model.tokenizer.encode(job.prompt, { addBos: true }));
    const V = model.config.text.vocabSize;
    const bad = job.prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined) throw invalidParam('prompt', `token id ${bad} is outside the vocabulary [0, ${V})`);
    if (job.prompt.length === 0) throw invalidParam('prompt', 'the prompt has no tokens');
    if (job.prompt.includes(model.config.imageTokenId)) {
      throw invalidParam('prompt', `token id ${model.config.imageTokenId} (<image_soft_token>) is reserved for image positions`, 'reserved_token');
    }
    return Prompt.ofIds([...job.prompt]);
  }
  const messages = job.messages.map(toChatMessage);
  const images = job.messages.reduce((n, m) => n + (Array.isArray(m.content) ? m.content.filter((p) => p.type === 'image').length : 0), 0);
  if (images === 0) return Prompt.ofIds(model.chatIds(messages));
  if (!model.config.vision) throw noVision();
  return imagePrompt(model, messages, signals);
}

/** Image markers a client may not write as text: the tokenizer would turn them into image positions with no image. */
const RESERVED_TEXT = ['<image_soft_token>', '<start_of_image>', '<end_of_image>'];

/** ApiError 400 when `text` contains an image marker literally. */
export function checkReservedText(text: string, param: string): void {
  const found = RESERVED_TEXT.find((t) => text.includes(t));
  if (found) throw invalidParam(param, `the text contains ${found}, which is reserved for images; send images as image parts`, 'reserved_token');
}

export interface PromptLimits {
  /** KV cache capacity: a prompt must leave room for one generated token. */
  context: number;
  /** The longest vocabulary piece, in UTF-16 units: no token covers more text than this. */
  maxPieceLength: number;
}

export function promptLimits(model: Gemma3, context: number): PromptLimits {
  let maxPieceLength = 1;
  for (let id = 0; id < model.tokenizer.size; id++) maxPieceLength = Math.max(maxPieceLength, model.tokenizer.piece(id).length);
  return { context, maxPieceLength };
}

/**
 * Refuses, before tokenizing, a text that cannot fit the context: tokenizing tens of megabytes
 * blocks the model thread for seconds, and no token covers more than `maxPieceLength` characters,
 * so such a text has at least chars / maxPieceLength tokens.
 */
export function checkPromptSize(job: Job, limits: PromptLimits): void {
  let chars = 0;
  if (job.kind === 'complete') chars = typeof job.prompt === 'string' ? job.prompt.length : 0;
  else {
    for (const m of job.messages) {
      if (typeof m.content === 'string') chars += m.content.trim().length;
      else for (const p of m.content) if (p.type === 'text') chars += p.text.trim().length;
    }
  }
  const atLeast = Math.ceil(chars / limits.maxPieceLength);
  if (atLeast < limits.context) return;
  const param = job.kind === 'chat' ? 'messages' : 'prompt';
  throw new ApiError(400,
    `This model's maximum context length is ${limits.context} tokens. However, your ${param} has ${chars} characters, ` +
    `which is at least ${atLeast} tokens. Please reduce the length of the ${param}.`, 'invalid_request_error', param, 'context_length_exceeded');
}

/**
 * An error for the client: the image a library error is about named as the request field that
 * carried it, and no server file paths (the model folder becomes the model's id).
 */
export function clientError(err: unknown, job: Job, modelPath: string, modelId: string): ApiErrorData {
  const e = toApiError(err);
  let param = e.param;
  if (err instanceof GemmaError && err.imageIndex !== undefined && job.kind === 'chat') {
    param = imageParams(job)[err.imageIndex] ?? param;
  }
  let message = e.message;
  for (const path of [modelPath, dirname(modelPath)]) if (path.length > 1) message = message.split(path).join(modelId);
  return { ...e.toData(), param, message };
}

/** The request field of each image part, in prompt order. */
function imageParams(job: Extract<Job, { kind: 'chat' }>): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (const m of job.messages) if (Array.isArray(m.content)) for (const p of m.content) if (p.type === 'image') out.push(p.param);
  return out;
}

export function noVision(): ApiError {
  return invalidParam('messages', 'this model does not accept images (it has no vision encoder); send text only', 'images_not_supported');
}

/** Job messages → library chat messages: images become `{ type: 'image', image: data URL | Buffer }`. */
export function toChatMessage(m: JobMessage): ChatMessage {
  if (typeof m.content === 'string') return { role: m.role, content: m.content };
  const content: ContentPart[] = m.content.map((p) => p.type === 'text'
    ? { type: 'text', text: p.text }
    : { type: 'image', image: typeof p.image === 'string' ? p.image : Buffer.from(p.image.buffer, p.image.byteOffset, p.image.byteLength) });
  return { role: m.role, content };
}

/** The library's vision path: prepareChat (decode, preprocess, render, expand, tokenize), then the tower. */
async function imagePrompt(model: Gemma3, messages: ChatMessage[], signals?: PrepareSignals): Promise<Prompt> {
  const prepared = await model.prepareChat(messages, signals ? { signal: signals.signal } : {});
  return model.encodeImages(prepared, signals?.cancelled);
}
